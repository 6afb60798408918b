//! `key=value` settings of resources and groups (`baton resource set`, `baton group set`):
//! parsing into typed `ResourceSetting`/`GroupSetting`s, and the same text back for display.
//! One place for the syntax, so the API, the CLI and the errors agree.

use crate::error::ModelError;
use crate::resource::*;
use crate::state::ClusterState;
use crate::types::NodeId;
use crate::validate::check_name;

/// Keys of `baton resource set`.
pub const RESOURCE_KEYS: &[&str] = &[
    "looks_alive",
    "is_alive",
    "pending_timeout",
    "restart",
    "retry_period",
    "possible_owners",
    "param.NAME",
];

/// Keys of `baton group set`.
pub const GROUP_KEYS: &[&str] = &[
    "failover_threshold",
    "failover_period",
    "failback",
    "priority",
    "anti_affinity",
    "preferred_owners",
];

/// Shortest health check interval or timeout: below it checks would load the node.
const INTERVAL_MS_MIN: u64 = 100;
/// Longest interval, timeout or period: a week.
const PERIOD_MS_MAX: u64 = 7 * 24 * HOUR_MS;
const RESTART_THRESHOLD_MAX: u32 = 100;
const FAILOVER_THRESHOLD_MAX: u32 = 1000;

/// Parses one `baton resource set` pair.
pub fn resource_setting(
    state: &ClusterState,
    key: &str,
    value: &str,
) -> Result<ResourceSetting, ModelError> {
    let value = value.trim();
    if let Some(param) = key.strip_prefix("param.") {
        check_param_key(param)?;
        let value = (!value.is_empty()).then(|| value.to_string());
        return Ok(ResourceSetting::Param {
            key: param.to_string(),
            value,
        });
    }
    Ok(match key {
        "looks_alive" => ResourceSetting::LooksAliveMs(interval(key, value)?),
        "is_alive" => ResourceSetting::IsAliveMs(interval(key, value)?),
        "pending_timeout" => ResourceSetting::PendingTimeoutMs(interval(key, value)?),
        "retry_period" => ResourceSetting::RetryPeriodMs(interval(key, value)?),
        "restart" => ResourceSetting::Restart(restart_policy(value)?),
        "possible_owners" => ResourceSetting::PossibleOwners(match value {
            "" | "all" => None,
            list => Some(node_list(state, "possible_owners", list)?),
        }),
        _ => return Err(unknown("resource", key, RESOURCE_KEYS)),
    })
}

/// Parses one `baton group set` pair.
pub fn group_setting(
    state: &ClusterState,
    key: &str,
    value: &str,
) -> Result<GroupSetting, ModelError> {
    let value = value.trim();
    Ok(match key {
        "failover_threshold" => GroupSetting::FailoverThreshold(failover_threshold(value)?),
        "failover_period" => GroupSetting::FailoverPeriodMs(interval(key, value)?),
        "failback" => GroupSetting::Failback(failback(value)?),
        "priority" => GroupSetting::Priority(priority(value)?),
        "anti_affinity" => GroupSetting::AntiAffinity(classes(value)?),
        "preferred_owners" => GroupSetting::PreferredOwners(match value {
            "" => Vec::new(),
            list => node_list(state, "preferred_owners", list)?,
        }),
        _ => return Err(unknown("group", key, GROUP_KEYS)),
    })
}

fn unknown(kind: &'static str, key: &str, keys: &[&str]) -> ModelError {
    ModelError::UnknownSetting {
        kind,
        key: key.to_string(),
        accepted: keys.join(", "),
    }
}

fn invalid(field: &str, value: &str, fix: &str) -> ModelError {
    ModelError::InvalidSetting {
        field: field.to_string(),
        value: value.to_string(),
        fix: fix.to_string(),
    }
}

/// Parameter names become `OCF_RESKEY_<name>` or `env.<NAME>` variables.
pub fn check_param_key(key: &str) -> Result<(), ModelError> {
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(invalid(
            "parameter name",
            key,
            "use letters, digits, '_', '.' or '-' (e.g. param.ip=10.0.0.5)",
        ));
    }
    Ok(())
}

fn interval(field: &str, value: &str) -> Result<u64, ModelError> {
    match parse_duration_ms(value) {
        Some(ms) if (INTERVAL_MS_MIN..=PERIOD_MS_MAX).contains(&ms) => Ok(ms),
        _ => Err(invalid(
            field,
            value,
            "use a duration between 100ms and 7d, such as 500ms, 5s, 15m or 1h30m",
        )),
    }
}

/// `N/PERIOD` (restart in place N times in PERIOD, then fail over), `N/PERIOD,no-failover`
/// (then stay failed until the retry period), or `never`.
fn restart_policy(value: &str) -> Result<RestartPolicy, ModelError> {
    let fix = "use N/PERIOD (e.g. 1/15m), N/PERIOD,no-failover, or never";
    if value == "never" {
        return Ok(RestartPolicy {
            mode: RestartMode::Never,
            ..RestartPolicy::default()
        });
    }
    let (budget, mode) = match value.split_once(',') {
        None => (value, RestartMode::Restart),
        Some((budget, "no-failover")) => (budget, RestartMode::NoFailover),
        Some((budget, "failover")) => (budget, RestartMode::Restart),
        Some(_) => return Err(invalid("restart", value, fix)),
    };
    let (count, period) = budget
        .split_once('/')
        .ok_or_else(|| invalid("restart", value, fix))?;
    let threshold: u32 = count
        .trim()
        .parse()
        .ok()
        .filter(|n| *n <= RESTART_THRESHOLD_MAX)
        .ok_or_else(|| invalid("restart", value, "the count is 0 to 100, e.g. 2/15m"))?;
    let period_ms = interval("restart period", period.trim())?;
    Ok(RestartPolicy {
        mode,
        threshold,
        period_ms,
    })
}

fn failover_threshold(value: &str) -> Result<Option<u32>, ModelError> {
    if value == "default" {
        return Ok(None);
    }
    value
        .parse()
        .ok()
        .filter(|n| *n <= FAILOVER_THRESHOLD_MAX)
        .map(Some)
        .ok_or_else(|| {
            invalid(
                "failover_threshold",
                value,
                "use a count of failovers (0 to 1000), or default (nodes - 1)",
            )
        })
}

/// `prevent`, `immediate` or `window:HH:MM-HH:MM` (UTC, end exclusive).
fn failback(value: &str) -> Result<Failback, ModelError> {
    let fix = "use prevent, immediate or window:HH:MM-HH:MM (UTC), e.g. window:01:00-05:00";
    match value {
        "prevent" => return Ok(Failback::Prevent),
        "immediate" => return Ok(Failback::Immediate),
        _ => {}
    }
    let window = value
        .strip_prefix("window:")
        .ok_or_else(|| invalid("failback", value, fix))?;
    let (start, end) = window
        .split_once('-')
        .ok_or_else(|| invalid("failback", value, fix))?;
    match (minute_of_day(start), minute_of_day(end)) {
        (Some(start_min), Some(end_min)) if start_min != end_min => {
            Ok(Failback::Window { start_min, end_min })
        }
        _ => Err(invalid("failback", value, fix)),
    }
}

/// `HH:MM` to minutes after midnight.
fn minute_of_day(text: &str) -> Option<u16> {
    let (hours, minutes) = text.trim().split_once(':')?;
    let hours: u16 = hours.parse().ok().filter(|h| *h < 24)?;
    let minutes: u16 = minutes.parse().ok().filter(|m| *m < 60)?;
    Some(hours * 60 + minutes)
}

fn priority(value: &str) -> Result<Priority, ModelError> {
    match value {
        "high" => Ok(Priority::High),
        "medium" => Ok(Priority::Medium),
        "low" => Ok(Priority::Low),
        "no-auto-start" => Ok(Priority::NoAutoStart),
        _ => Err(invalid(
            "priority",
            value,
            "use high, medium, low or no-auto-start",
        )),
    }
}

fn classes(value: &str) -> Result<Vec<String>, ModelError> {
    let mut classes: Vec<String> = Vec::new();
    for class in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        check_name("anti_affinity class", class)?;
        if !classes.iter().any(|c| c == class) {
            classes.push(class.to_string());
        }
    }
    Ok(classes)
}

/// Comma-separated node names to ids, in order, each a member, none repeated.
fn node_list(
    state: &ClusterState,
    field: &'static str,
    list: &str,
) -> Result<Vec<NodeId>, ModelError> {
    let mut ids = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let node = state.node_by_name(name).ok_or(ModelError::NotAMember {
            field,
            node: name.to_string(),
        })?;
        if !ids.contains(&node.id) {
            ids.push(node.id);
        }
    }
    Ok(ids)
}

/// `250ms`, `5s`, `15m`, `6h`, `2d`, and sums such as `1h30m`. A bare number is refused: the
/// unit is never guessed.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let mut total: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let number: u64 = rest[..digits].parse().ok()?;
        let after = &rest[digits..];
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let unit_ms = match &after[..unit_len] {
            "ms" => 1,
            "s" => SECOND_MS,
            "m" | "min" => MINUTE_MS,
            "h" => HOUR_MS,
            "d" => 24 * HOUR_MS,
            _ => return None,
        };
        total = total.checked_add(number.checked_mul(unit_ms)?)?;
        rest = &after[unit_len..];
    }
    Some(total)
}

/// The inverse of `parse_duration_ms`, shortest form: `5s`, `15m`, `1h30m`, `250ms`.
pub fn format_duration_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let units = [
        (24 * HOUR_MS, "d"),
        (HOUR_MS, "h"),
        (MINUTE_MS, "m"),
        (SECOND_MS, "s"),
        (1, "ms"),
    ];
    let mut text = String::new();
    let mut left = ms;
    for (unit_ms, suffix) in units {
        if left >= unit_ms {
            text.push_str(&format!("{}{suffix}", left / unit_ms));
            left %= unit_ms;
        }
    }
    text
}

/// `1/15m`, `2/1h,no-failover` or `never`: what `restart=` accepts.
pub fn restart_text(restart: &RestartPolicy) -> String {
    let budget = format!(
        "{}/{}",
        restart.threshold,
        format_duration_ms(restart.period_ms)
    );
    match restart.mode {
        RestartMode::Restart => budget,
        RestartMode::NoFailover => format!("{budget},no-failover"),
        RestartMode::Never => "never".to_string(),
    }
}

/// `prevent`, `immediate` or `window:01:00-05:00`: what `failback=` accepts.
pub fn failback_text(failback: &Failback) -> String {
    match failback {
        Failback::Prevent => "prevent".to_string(),
        Failback::Immediate => "immediate".to_string(),
        Failback::Window { start_min, end_min } => format!(
            "window:{:02}:{:02}-{:02}:{:02}",
            start_min / 60,
            start_min % 60,
            end_min / 60,
            end_min % 60
        ),
    }
}

/// `high`, `medium`, `low` or `no-auto-start`: what `priority=` accepts.
pub fn priority_text(priority: Priority) -> &'static str {
    match priority {
        Priority::High => "high",
        Priority::Medium => "medium",
        Priority::Low => "low",
        Priority::NoAutoStart => "no-auto-start",
    }
}
