//! Unit tests of resource and group policies, dependencies, resource states and the
//! executor's commands (22 and later).

use std::collections::BTreeMap;

use crate::settings::{self, group_setting, resource_setting};
use crate::tests::{cluster, rejected, update, with_group};
use crate::*;

fn with_resources(names: &[&str]) -> ClusterState {
    let mut state = with_group(cluster());
    for name in names {
        let create = Command::CreateResource {
            name: name.to_string(),
            group: "web".into(),
            resource_type: ResourceType::Process,
            params: BTreeMap::from([("command".to_string(), "sleep 100".to_string())]),
        };
        assert_eq!(state.apply(&update(6, create)), CommandResult::Ok);
    }
    state
}

fn set(state: &mut ClusterState, resource: &str, pairs: &[(&str, &str)]) -> CommandResult {
    let settings = pairs
        .iter()
        .map(|(k, v)| resource_setting(state, k, v))
        .collect::<Result<Vec<_>, _>>()
        .expect("settings parse");
    let command = Command::SetResource {
        name: resource.into(),
        settings,
    };
    state.apply(&update(7, command))
}

fn depend(state: &mut ClusterState, resource: &str, expression: &str) -> CommandResult {
    let command = Command::SetDependencies {
        resource: resource.into(),
        expression: Some(expression.into()),
    };
    state.apply(&update(8, command))
}

fn place(state: &mut ClusterState, node: NodeId, generation: u64) {
    let command = Command::PlaceGroup {
        group: "web".into(),
        node,
        generation,
        reason: "start".into(),
        failover: false,
    };
    assert_eq!(state.apply(&update(10, command)), CommandResult::Ok);
}

fn report(state: &mut ClusterState, resource: &str, now_ms: u64, rstate: ResourceState) {
    let command = Command::ReportResourceState {
        resource: resource.into(),
        node: 1,
        generation: 1,
        state: rstate,
        message: "exited with code 1".into(),
        misconfigured: false,
    };
    assert_eq!(state.apply(&update(now_ms, command)), CommandResult::Ok);
}

#[test]
fn resource_settings_parse_and_apply() {
    // Checks each resource key's syntax and that the values land in the policy.
    let mut state = with_resources(&["app"]);
    let pairs = [
        ("looks_alive", "500ms"),
        ("is_alive", "1m30s"),
        ("pending_timeout", "20s"),
        ("restart", "2/15m,no-failover"),
        ("retry_period", "2h"),
        ("possible_owners", "n2,n1"),
        ("param.env.MODE", "prod"),
    ];
    assert_eq!(set(&mut state, "app", &pairs), CommandResult::Ok);
    let policy = &state.resources["app"].policy;
    assert_eq!(policy.looks_alive_ms, 500);
    assert_eq!(policy.is_alive_ms, 90_000);
    assert_eq!(policy.pending_timeout_ms, 20_000);
    assert_eq!(policy.restart.mode, RestartMode::NoFailover);
    assert_eq!(
        (policy.restart.threshold, policy.restart.period_ms),
        (2, 900_000)
    );
    assert_eq!(policy.retry_period_ms, 7_200_000);
    assert_eq!(policy.possible_owners, Some(vec![2, 1]));
    assert_eq!(state.resources["app"].params["env.MODE"], "prod");
    assert_eq!(settings::restart_text(&policy.restart), "2/15m,no-failover");
    let never = resource_setting(&state, "restart", "never").unwrap();
    assert!(matches!(never, ResourceSetting::Restart(r) if r.mode == RestartMode::Never));
}

#[test]
fn bad_settings_name_the_field_and_the_fix() {
    // Checks unknown keys list the known ones and bad values say what is accepted.
    let state = with_resources(&["app"]);
    let error = resource_setting(&state, "looks", "5s")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("unknown resource setting `looks`"),
        "{error}"
    );
    assert!(error.contains("looks_alive"), "{error}");
    let error = resource_setting(&state, "is_alive", "5")
        .unwrap_err()
        .to_string();
    assert!(error.contains("invalid is_alive `5`"), "{error}");
    assert!(error.contains("such as 500ms"), "{error}");
    let error = resource_setting(&state, "restart", "x/15m")
        .unwrap_err()
        .to_string();
    assert!(error.contains("restart"), "{error}");
    let error = resource_setting(&state, "possible_owners", "n1,n9").unwrap_err();
    assert!(
        error.to_string().contains("node n9 is not a member"),
        "{error}"
    );
    let error = group_setting(&state, "failback", "window:1-5").unwrap_err();
    assert!(error.to_string().contains("window:HH:MM-HH:MM"), "{error}");
    let error = group_setting(&state, "priority", "urgent").unwrap_err();
    assert!(error.to_string().contains("no-auto-start"), "{error}");
}

#[test]
fn group_settings_parse_and_apply() {
    // Checks the group keys, including a failback window across midnight.
    let mut state = with_group(cluster());
    let pairs = [
        ("failover_threshold", "2"),
        ("failover_period", "1h"),
        ("failback", "window:22:00-02:30"),
        ("priority", "no-auto-start"),
        ("anti_affinity", "db, db,sql"),
        ("preferred_owners", "n3,n1"),
    ];
    let settings = pairs
        .iter()
        .map(|(k, v)| group_setting(&state, k, v).unwrap())
        .collect();
    let command = Command::SetGroup {
        name: "web".into(),
        settings,
    };
    assert_eq!(state.apply(&update(7, command)), CommandResult::Ok);
    let group = &state.groups["web"];
    assert_eq!(group.policy.failover_threshold, Some(2));
    assert_eq!(group.policy.failover_period_ms, 3_600_000);
    let window = Failback::Window {
        start_min: 22 * 60,
        end_min: 150,
    };
    assert_eq!(group.policy.failback, window);
    assert_eq!(settings::failback_text(&window), "window:22:00-02:30");
    assert_eq!(group.policy.priority, Priority::NoAutoStart);
    assert_eq!(group.policy.anti_affinity, vec!["db", "sql"]);
    assert_eq!(group.preferred_owners, vec![3, 1]);
}

#[test]
fn preferred_owner_must_be_a_member() {
    // Checks a preferred owner id that is not a member is refused, naming the field.
    let mut state = cluster();
    let create = Command::CreateGroup {
        name: "web".into(),
        preferred_owners: vec![1, 9],
    };
    let reason = rejected(state.apply(&update(5, create)));
    assert!(
        reason.contains("preferred_owners: node #9 is not a member"),
        "{reason}"
    );
    let mut state = with_group(state);
    let command = Command::SetGroup {
        name: "web".into(),
        settings: vec![GroupSetting::PreferredOwners(vec![2, 7])],
    };
    let reason = rejected(state.apply(&update(6, command)));
    assert!(reason.contains("preferred_owners"), "{reason}");
    assert_eq!(state.groups["web"].preferred_owners, vec![1, 2, 3]);
}

#[test]
fn possible_owners_must_leave_a_node() {
    // Checks possible owners of two resources with no node in common are refused, saying why.
    let mut state = with_resources(&["a", "b"]);
    assert_eq!(
        set(&mut state, "a", &[("possible_owners", "n1")]),
        CommandResult::Ok
    );
    let reason = rejected(set(&mut state, "b", &[("possible_owners", "n2,n3")]));
    assert!(
        reason.contains("possible owners leave no node to run group `web`"),
        "{reason}"
    );
    assert!(
        reason.contains("a may run on n1; b may run on n2,n3"),
        "{reason}"
    );
    assert_eq!(state.resources["b"].policy.possible_owners, None);
    assert_eq!(
        set(&mut state, "b", &[("possible_owners", "n1,n3")]),
        CommandResult::Ok
    );
}

#[test]
fn unknown_and_required_parameters() {
    // Checks process, systemd and ocf type names and their parameters.
    assert_eq!(
        ResourceType::parse("ocf:heartbeat:Dummy"),
        Some(ResourceType::Ocf {
            provider: "heartbeat".into(),
            agent: "Dummy".into()
        })
    );
    assert_eq!(ResourceType::parse("ocf:../x:y"), None);
    assert_eq!(ResourceType::parse("ocf:heartbeat"), None);
    let mut state = with_resources(&["app"]);
    let reason = rejected(set(&mut state, "app", &[("param.colour", "red")]));
    assert!(reason.contains("no parameter `colour`"), "{reason}");
    assert!(reason.contains("check_http"), "{reason}");
    let reason = rejected(set(&mut state, "app", &[("param.command", "")]));
    assert!(reason.contains("requires parameter `command`"), "{reason}");
    let reason = rejected(set(&mut state, "app", &[("param.check_tcp", "localhost")]));
    assert!(reason.contains("HOST:PORT"), "{reason}");
    let unit = Command::CreateResource {
        name: "svc".into(),
        group: "web".into(),
        resource_type: ResourceType::Systemd,
        params: BTreeMap::new(),
    };
    let reason = rejected(state.apply(&update(9, unit)));
    assert!(
        reason.contains("systemd requires parameter `unit`"),
        "{reason}"
    );
}

#[test]
fn dependencies_are_normalized_and_checked() {
    // Checks syntax errors, names outside the group, cycles (named), and deletion refusals.
    let mut state = with_resources(&["a", "b", "c", "ip1", "ip2"]);
    assert_eq!(
        depend(&mut state, "a", "b AND (ip1 or ip2)"),
        CommandResult::Ok
    );
    let stored = state.resources["a"].policy.depends_on.clone();
    assert_eq!(stored.as_deref(), Some("b and (ip1 or ip2)"));
    let reason = rejected(depend(&mut state, "b", "c and"));
    assert!(reason.contains("column"), "{reason}");
    let reason = rejected(depend(&mut state, "b", "nosuch"));
    assert!(reason.contains("not a resource of group `web`"), "{reason}");
    assert_eq!(depend(&mut state, "b", "c"), CommandResult::Ok);
    let reason = rejected(depend(&mut state, "c", "a"));
    assert!(reason.contains("dependency cycle in group web"), "{reason}");
    assert!(reason.contains("c -> a -> b -> c"), "{reason}");
    let reason = rejected(depend(&mut state, "c", "c"));
    assert!(reason.contains("c -> c"), "{reason}");
    let delete = Command::DeleteResource { name: "b".into() };
    let reason = rejected(state.apply(&update(9, delete)));
    assert!(reason.contains("`b` is a dependency of a"), "{reason}");
    let clear = Command::SetDependencies {
        resource: "a".into(),
        expression: None,
    };
    assert_eq!(state.apply(&update(9, clear)), CommandResult::Ok);
    assert_eq!(state.resources["a"].policy.depends_on, None);
}

#[test]
fn resource_failure_restart_and_placement_reset() {
    // Checks a failure sets failed_at, a restart request appends history once, and a new
    // placement starts every resource afresh.
    let mut state = with_resources(&["app"]);
    place(&mut state, 1, 1);
    report(&mut state, "app", 100, ResourceState::Online);
    report(&mut state, "app", 200, ResourceState::Failed);
    let status = &state.resources["app"].status;
    assert_eq!(status.failed_at_ms, Some(200));
    assert_eq!(status.message, "exited with code 1");
    let restart = Command::RestartResource {
        resource: "app".into(),
        node: 1,
        generation: 1,
        reason: "restart 1 of 1".into(),
    };
    assert_eq!(
        state.apply(&update(300, restart.clone())),
        CommandResult::Ok
    );
    let status = &state.resources["app"].status;
    assert_eq!(status.state, ResourceState::OnlinePending);
    assert_eq!(status.restart_history_ms, vec![300]);
    assert_eq!(status.restart_requests, 1);
    // Repeated by a coordinator with a stale view: refused, nothing doubles.
    assert!(rejected(state.apply(&update(301, restart))).contains("not failed"));
    let release = Command::ReleaseGroup {
        group: "web".into(),
        generation: 1,
        target: Some(2),
        reason: "failover".into(),
        pending_reason: Some(baton_policy::Reason::Start),
    };
    state.apply(&update(400, release));
    assert_eq!(
        state.groups["web"].pending_reason,
        Some(baton_policy::Reason::Start)
    );
    let stopped = Command::GroupStopped {
        group: "web".into(),
        node: 1,
        generation: 1,
    };
    assert_eq!(state.apply(&update(401, stopped)), CommandResult::Ok);
    place(&mut state, 2, 2);
    let status = &state.resources["app"].status;
    assert_eq!(status.state, ResourceState::Offline);
    assert!(status.restart_history_ms.is_empty() && status.failed_at_ms.is_none());
    assert_eq!(
        status.restart_requests, 1,
        "the request counter never goes back"
    );
    assert_eq!(state.groups["web"].pending_reason, None);
}

#[test]
fn clear_assignment_only_of_a_down_owner() {
    // Checks the coordinator cannot clear the assignment of a live owner.
    let mut state = with_resources(&["app"]);
    place(&mut state, 1, 1);
    report(&mut state, "app", 100, ResourceState::Online);
    let clear = Command::ClearAssignment {
        group: "web".into(),
        node: 1,
        generation: 1,
        reason: "lease of n1 expired".into(),
    };
    let reason = rejected(state.apply(&update(200, clear.clone())));
    assert!(reason.contains("is not down"), "{reason}");
    let down = Command::NodeDown {
        node: 1,
        reason: "silent".into(),
    };
    state.apply(&update(300, down));
    assert_eq!(state.apply(&update(400, clear)), CommandResult::Ok);
    assert_eq!(state.groups["web"].assignment, None);
    assert_eq!(state.groups["web"].last_reason, "lease of n1 expired");
    assert_eq!(state.resources["app"].status.state, ResourceState::Offline);
}

#[test]
fn online_clears_a_misconfiguration() {
    // Checks `baton group online` on a failed group gives misconfigured resources a new try.
    let mut state = with_resources(&["app"]);
    place(&mut state, 1, 1);
    let report = Command::ReportResourceState {
        resource: "app".into(),
        node: 1,
        generation: 1,
        state: ResourceState::Failed,
        message: "bad ip".into(),
        misconfigured: true,
    };
    state.apply(&update(100, report));
    let fail = Command::FailGroup {
        group: "web".into(),
        reason: "misconfigured".into(),
    };
    state.apply(&update(101, fail));
    let online = Command::SetGroupDesired {
        group: "web".into(),
        desired: Desired::Online,
    };
    state.apply(&update(102, online));
    assert!(!state.resources["app"].status.misconfigured);
    assert_eq!(state.groups["web"].status, GroupStatus::Offline);
}

#[test]
fn older_snapshots_decode_with_defaults() {
    // Checks a group and a resource stored before policies existed still decode.
    let group: Group = serde_json::from_str(
        r#"{"name":"web","preferred_owners":[1],"desired":"Online","assignment":null,
            "generation":3,"status":"Offline","status_message":"","move_request":null,
            "pending_target":null,"last_reason":"created","failover_history_ms":[]}"#,
    )
    .unwrap();
    assert_eq!(group.policy, GroupPolicy::default());
    let resource: Resource = serde_json::from_str(
        r#"{"name":"app","group":"web","resource_type":"Process","params":{"command":"x"}}"#,
    )
    .unwrap();
    assert_eq!(resource.policy.looks_alive_ms, 5_000);
    assert_eq!(resource.status.state, ResourceState::Offline);
}

#[test]
fn durations_round_trip() {
    // Checks the duration syntax both ways and that a bare number is refused.
    for (text, ms) in [
        ("250ms", 250),
        ("5s", 5_000),
        ("1h30m", 5_400_000),
        ("2d", 172_800_000),
    ] {
        assert_eq!(settings::parse_duration_ms(text), Some(ms), "{text}");
        assert_eq!(settings::format_duration_ms(ms), text);
    }
    assert_eq!(settings::parse_duration_ms("5"), None);
    assert_eq!(settings::parse_duration_ms("5 parsecs"), None);
    assert_eq!(settings::parse_duration_ms(""), None);
}
