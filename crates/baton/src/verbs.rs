//! The CLI verbs that talk to a running cluster.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use baton_client::{
    Client, ClientConfig, ClientError, ClusterInfo, CreateGroup, CreateJoinToken, CreateResource,
    GroupInfo, MoveGroup, PauseNode, SetProperties,
};
use serde::Serialize;

use crate::cli::{ClusterCommand, Command, GroupCommand, NodeCommand, ResourceCommand, Wait};
use crate::exit::{self, parse_duration};
use crate::output::{fields, or_dash, print_json, seconds, table, timestamp, until};
use crate::{setup, Ctx};

/// How often a waiting verb asks for the group again.
const POLL: Duration = Duration::from_millis(50);

impl Ctx {
    pub fn load_config(&self) -> anyhow::Result<ClientConfig> {
        Ok(ClientConfig::load(&self.config_path)?)
    }

    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(&self.load_config()?)?)
    }
}

pub async fn run(ctx: &Ctx, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Cluster(ClusterCommand::Create {
            cluster,
            listen,
            data_dir,
            node_name,
            no_start,
        }) => setup::create(ctx, &cluster, listen, &data_dir.path, &node_name, no_start).await,
        Command::Cluster(ClusterCommand::Show) => cluster_show(ctx).await,
        Command::Cluster(ClusterCommand::Set { pairs }) => cluster_set(ctx, &pairs).await,
        Command::Node(NodeCommand::Join {
            token,
            listen,
            data_dir,
            name,
            no_start,
            peer,
        }) => setup::join(ctx, &token, listen, &data_dir.path, name, no_start, peer).await,
        Command::Node(NodeCommand::Token { ttl }) => node_token(ctx, &ttl).await,
        Command::Node(NodeCommand::List) => node_list(ctx).await,
        Command::Node(NodeCommand::Pause { name, drain }) => node_pause(ctx, &name, drain).await,
        Command::Node(NodeCommand::Resume { name }) => node_resume(ctx, &name).await,
        Command::Node(NodeCommand::Evict { name }) => node_evict(ctx, &name).await,
        Command::Group(command) => group(ctx, command).await,
        Command::Resource(command) => resource(ctx, command).await,
        Command::ResourceType(command) => crate::resources::resource_type(ctx, command).await,
        Command::Events { limit } => events(ctx, limit).await,
        Command::Daemon { .. }
        | Command::ResourceHost
        | Command::ServeHttp { .. }
        | Command::Demo { .. }
        | Command::Simulate { .. }
        | Command::Bench(_) => unreachable!("run outside the CLI runtime"),
    }
}

// ---- cluster ----

async fn cluster_show(ctx: &Ctx) -> anyhow::Result<()> {
    let info = ctx.client()?.cluster().await?;
    if ctx.json {
        return print_json(&info);
    }
    print!("{}", cluster_fields(&info));
    if info.properties.is_empty() {
        println!("properties:   (none set)");
    } else {
        println!("properties:");
        print_properties(&info.properties);
    }
    Ok(())
}

fn cluster_fields(info: &ClusterInfo) -> String {
    fields(&[
        ("cluster", info.name.clone()),
        ("answering", info.node.clone()),
        ("coordinator", or_dash(&info.coordinator)),
        ("quorum", quorum(info)),
    ])
}

fn quorum(info: &ClusterInfo) -> String {
    format!(
        "{} ({}/{} votes up)",
        if info.has_quorum { "yes" } else { "NO" },
        info.votes_up,
        info.votes_total
    )
}

fn print_properties(properties: &BTreeMap<String, String>) {
    let rows: Vec<Vec<String>> = properties
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    for line in table(&["KEY", "VALUE"], &rows).lines() {
        println!("  {line}");
    }
}

/// `KEY VALUE KEY VALUE...`, `KEY=VALUE...`, or a mix.
fn parse_pairs(args: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut pairs = BTreeMap::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (key, value) = match arg.split_once('=') {
            Some((key, value)) => (key.to_string(), value.to_string()),
            None => match args.next() {
                Some(value) => (arg.clone(), value.clone()),
                None => {
                    return Err(exit::usage(format!(
                    "property `{arg}` has no value: use `baton cluster set KEY VALUE` or KEY=VALUE"
                )))
                }
            },
        };
        if key.is_empty() {
            return Err(exit::usage(format!(
                "`{arg}` has no property name: use KEY=VALUE"
            )));
        }
        pairs.insert(key, value);
    }
    Ok(pairs)
}

async fn cluster_set(ctx: &Ctx, args: &[String]) -> anyhow::Result<()> {
    let properties = parse_pairs(args)?;
    let client = ctx.client()?;
    let info = client
        .set_properties(&SetProperties {
            properties: properties.clone(),
        })
        .await?;
    if ctx.json {
        return print_json(&info);
    }
    let set: Vec<Vec<String>> = properties
        .iter()
        .map(|(k, _)| {
            let now = info.properties.get(k).cloned().unwrap_or_default();
            vec![k.clone(), now]
        })
        .collect();
    print!("{}", table(&["KEY", "VALUE"], &set));
    Ok(())
}

// ---- nodes ----

async fn node_token(ctx: &Ctx, ttl: &str) -> anyhow::Result<()> {
    let ttl = parse_duration("--ttl", ttl)?;
    let client = ctx.client()?;
    let token = client
        .create_join_token(&CreateJoinToken {
            ttl_s: ttl.as_secs().max(1),
        })
        .await?;
    if ctx.json {
        return print_json(&token);
    }
    // The token alone on stdout, so `T=$(baton node token)` works; the hint on stderr.
    println!("{}", token.token);
    eprintln!(
        "single use, valid for {}; on the new node run: {}",
        until(token.expires_ms),
        setup::join_command(&token.token, client.endpoints().first().map(String::as_str))
    );
    Ok(())
}

async fn node_list(ctx: &Ctx) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let nodes = client.nodes().await?;
    if ctx.json {
        return print_json(&nodes);
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.id.to_string(),
                n.addr.clone(),
                n.state.clone(),
                n.votes.to_string(),
                n.groups.join(","),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["NAME", "ID", "ADDR", "STATE", "VOTES", "GROUPS"], &rows)
    );
    // The cluster summary is best effort: the node list already answered.
    match client.cluster().await {
        Ok(info) => println!(
            "quorum: {}, coordinator: {}",
            quorum(&info),
            info.coordinator.as_deref().unwrap_or("none")
        ),
        Err(e) => println!("quorum: unknown ({e})"),
    }
    Ok(())
}

async fn node_pause(ctx: &Ctx, name: &str, drain: bool) -> anyhow::Result<()> {
    let node = ctx.client()?.pause_node(name, &PauseNode { drain }).await?;
    if ctx.json {
        return print_json(&node);
    }
    println!("node {} is {}", node.name, node.state);
    if !node.groups.is_empty() {
        let how = if drain {
            "moving away"
        } else {
            "staying (use --drain to move them)"
        };
        println!("groups on it, {how}: {}", node.groups.join(", "));
    }
    Ok(())
}

async fn node_resume(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let node = ctx.client()?.resume_node(name).await?;
    if ctx.json {
        return print_json(&node);
    }
    println!("node {} is {}", node.name, node.state);
    Ok(())
}

#[derive(Serialize)]
struct Deleted<'a> {
    kind: &'a str,
    name: &'a str,
}

fn print_deleted(ctx: &Ctx, kind: &str, name: &str, verb: &str) -> anyhow::Result<()> {
    if ctx.json {
        return print_json(&Deleted { kind, name });
    }
    println!("{kind} {name} {verb}");
    Ok(())
}

async fn node_evict(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    ctx.client()?.evict_node(name).await?;
    print_deleted(ctx, "node", name, "evicted")
}

// ---- groups ----

async fn group(ctx: &Ctx, command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::Create { name, preferred } => {
            let group = ctx
                .client()?
                .create_group(&CreateGroup {
                    name,
                    preferred_owners: preferred,
                })
                .await?;
            if ctx.json {
                return print_json(&group);
            }
            println!("group {} created ({})", group.name, group.status);
            Ok(())
        }
        GroupCommand::Delete { name } => {
            ctx.client()?.delete_group(&name).await?;
            print_deleted(ctx, "group", &name, "deleted")
        }
        GroupCommand::Online { name, wait } => change(ctx, &name, Goal::Online, &wait).await,
        GroupCommand::Offline { name, wait } => change(ctx, &name, Goal::Offline, &wait).await,
        GroupCommand::Move { name, to, wait } => {
            change(ctx, &name, Goal::Moved { to }, &wait).await
        }
        GroupCommand::List => {
            let groups = ctx.client()?.groups().await?;
            if ctx.json {
                return print_json(&groups);
            }
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|g| {
                    vec![
                        g.name.clone(),
                        g.status.clone(),
                        or_dash(&g.owner),
                        g.generation.to_string(),
                        g.preferred_owners.join(","),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["NAME", "STATUS", "OWNER", "GEN", "PREFERRED"], &rows)
            );
            Ok(())
        }
        GroupCommand::Show { name } => {
            let g = ctx.client()?.group(&name).await?;
            if ctx.json {
                return print_json(&g);
            }
            crate::resources::print_group(&g);
            Ok(())
        }
        GroupCommand::Set { name, pairs } => crate::resources::group_set(ctx, &name, &pairs).await,
    }
}

/// What a waiting group verb waits for.
#[derive(Debug)]
enum Goal {
    Online,
    Offline,
    /// Online on `to`, or on any node but the owner before the move.
    Moved {
        to: Option<String>,
    },
}

impl Goal {
    fn reached(&self, group: &GroupInfo, owner_before: &Option<String>) -> bool {
        match self {
            Goal::Online => group.status == "Online",
            Goal::Offline => group.status == "Offline",
            Goal::Moved { to } => {
                group.status == "Online"
                    && match to {
                        Some(to) => group.owner.as_deref() == Some(to.as_str()),
                        None => group.owner.is_some() && group.owner != *owner_before,
                    }
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Goal::Online => "come online".into(),
            Goal::Offline => "go offline".into(),
            Goal::Moved { to: Some(to) } => format!("come online on {to}"),
            Goal::Moved { to: None } => "come online on another node".into(),
        }
    }
}

/// Online, offline or move: ask, then (unless --no-wait) wait for the outcome.
async fn change(ctx: &Ctx, name: &str, goal: Goal, wait: &Wait) -> anyhow::Result<()> {
    let timeout = parse_duration("--timeout", &wait.timeout)?;
    let client = ctx.client()?;
    let before = client.group(name).await?;
    let started = Instant::now();
    let accepted = match &goal {
        Goal::Online => client.online_group(name).await?,
        Goal::Offline => client.offline_group(name).await?,
        Goal::Moved { to } => {
            client
                .move_group(name, &MoveGroup { to: to.clone() })
                .await?
        }
    };
    if wait.no_wait {
        if ctx.json {
            return print_json(&accepted);
        }
        println!(
            "requested: group {} to {} (now {}{})",
            accepted.name,
            goal.describe(),
            accepted.status,
            accepted
                .owner
                .as_ref()
                .map(|o| format!(" on {o}"))
                .unwrap_or_default()
        );
        return Ok(());
    }
    let group = wait_for(&client, name, &goal, &before, started, timeout).await?;
    let elapsed = started.elapsed();
    if ctx.json {
        return print_json(&group);
    }
    let owner = or_dash(&group.owner);
    match goal {
        Goal::Online => println!(
            "group {} is online on {owner} ({})",
            group.name,
            seconds(elapsed)
        ),
        Goal::Offline => println!("group {} is offline ({})", group.name, seconds(elapsed)),
        Goal::Moved { .. } => println!(
            "group {} moved {} -> {owner} ({})",
            group.name,
            or_dash(&before.owner),
            seconds(elapsed)
        ),
    }
    Ok(())
}

/// Polls the group every [`POLL`] until `goal` is reached (the group), it fails (exit 1),
/// or `timeout` since `started` passes (exit 4). Transient errors (no endpoint answers, a
/// 5xx during an election) are retried until the timeout.
async fn wait_for(
    client: &Client,
    name: &str,
    goal: &Goal,
    before: &GroupInfo,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<GroupInfo> {
    // A group that was already Failed stays so until the request takes effect: that old
    // failure is not the answer.
    let mut stale_failure = before.status == "Failed";
    let mut last: Option<GroupInfo> = None;
    let mut last_error: Option<String>;
    loop {
        match client.group(name).await {
            Ok(group) => {
                last_error = None;
                if goal.reached(&group, &before.owner) {
                    return Ok(group);
                }
                if group.status != "Failed" || group.generation != before.generation {
                    stale_failure = false;
                }
                if group.status == "Failed" && !stale_failure {
                    return Err(exit::failed(format!(
                        "group {name} failed{}: {}",
                        group
                            .owner
                            .as_ref()
                            .map(|o| format!(" on {o}"))
                            .unwrap_or_default(),
                        if group.status_message.is_empty() {
                            "no reason given; see `baton events`"
                        } else {
                            &group.status_message
                        }
                    )));
                }
                last = Some(group);
            }
            Err(e) if transient(&e) => last_error = Some(e.to_string()),
            Err(e) => return Err(e.into()),
        }
        if started.elapsed() >= timeout {
            let now = match (&last_error, &last) {
                (Some(error), _) => format!("last error: {error}"),
                (None, Some(g)) => format!(
                    "now {}{}{}",
                    g.status,
                    g.owner
                        .as_ref()
                        .map(|o| format!(" on {o}"))
                        .unwrap_or_default(),
                    if g.status_message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", g.status_message)
                    }
                ),
                (None, None) => "no answer yet".into(),
            };
            return Err(exit::timed_out(format!(
                "timed out after {} waiting for group {name} to {} ({now}); it may still get there: watch `baton group show {name}`",
                humantime::format_duration(timeout),
                goal.describe()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Worth asking again: nobody answered, or the cluster is busy (electing a coordinator).
pub fn transient(error: &ClientError) -> bool {
    match error {
        ClientError::Unreachable { .. } | ClientError::NoAnswer { .. } => true,
        ClientError::Api { status, .. } => *status >= 500,
        _ => false,
    }
}

// ---- resources ----

async fn resource(ctx: &Ctx, command: ResourceCommand) -> anyhow::Result<()> {
    match command {
        ResourceCommand::Create {
            name,
            group,
            resource_type,
            params,
        } => {
            let resource = ctx
                .client()?
                .create_resource(&CreateResource {
                    name,
                    group,
                    resource_type,
                    params: params.into_iter().collect(),
                })
                .await?;
            if ctx.json {
                return print_json(&resource);
            }
            println!(
                "resource {} ({}) created in group {}",
                resource.name, resource.resource_type, resource.group
            );
            Ok(())
        }
        ResourceCommand::Delete { name } => {
            ctx.client()?.delete_resource(&name).await?;
            print_deleted(ctx, "resource", &name, "deleted")
        }
        ResourceCommand::Show { name } => crate::resources::resource_show(ctx, &name).await,
        ResourceCommand::Set { name, pairs } => {
            crate::resources::resource_set(ctx, &name, &pairs).await
        }
        ResourceCommand::Depend { name, expression } => {
            crate::resources::resource_depend(ctx, &name, &expression).await
        }
        ResourceCommand::List => {
            let resources = ctx.client()?.resources().await?;
            if ctx.json {
                return print_json(&resources);
            }
            let rows: Vec<Vec<String>> = resources
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.group.clone(),
                        r.resource_type.clone(),
                        or_dash(&r.owner),
                        r.state.clone(),
                        r.depends_on.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &["NAME", "GROUP", "TYPE", "OWNER", "STATE", "DEPENDS ON"],
                    &rows
                )
            );
            Ok(())
        }
    }
}

// ---- events ----

async fn events(ctx: &Ctx, limit: usize) -> anyhow::Result<()> {
    let events = ctx.client()?.events(limit).await?;
    if ctx.json {
        return print_json(&events);
    }
    for event in &events {
        println!("{}  {}", timestamp(event.time_ms), event.text);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pairs_in_both_forms() {
        let pairs = parse_pairs(&strings(&["a", "1", "b=2", "c", "x=y"])).unwrap();
        assert_eq!(pairs["a"], "1");
        assert_eq!(pairs["b"], "2");
        assert_eq!(pairs["c"], "x=y");
        assert!(parse_pairs(&strings(&["a"])).is_err());
        assert!(parse_pairs(&strings(&["=1"])).is_err());
    }

    fn group(status: &str, owner: Option<&str>) -> GroupInfo {
        GroupInfo {
            name: "web".into(),
            desired: "Online".into(),
            owner: owner.map(String::from),
            generation: 1,
            status: status.into(),
            ..GroupInfo::default()
        }
    }

    #[test]
    fn move_goals() {
        let before = Some("n1".to_string());
        let any = Goal::Moved { to: None };
        assert!(!any.reached(&group("Online", Some("n1")), &before));
        assert!(!any.reached(&group("Pending", Some("n2")), &before));
        assert!(any.reached(&group("Online", Some("n2")), &before));
        let to3 = Goal::Moved {
            to: Some("n3".into()),
        };
        assert!(!to3.reached(&group("Online", Some("n2")), &before));
        assert!(to3.reached(&group("Online", Some("n3")), &before));
    }
}
