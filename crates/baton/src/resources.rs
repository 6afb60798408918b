//! CLI verbs for resource and group policies, dependencies, resource types, and the
//! offline `baton simulate`.

use std::collections::BTreeMap;
use std::path::Path;

use baton_client::{GroupInfo, ResourceInfo, SetDependencies, SetSettings};

use crate::cli::ResourceTypeCommand;
use crate::exit;
use crate::output::{fields, or_dash, print_json, table};
use crate::Ctx;

/// `baton simulate FILE`: the plan `baton_policy` makes for a scenario, with its reasons.
pub fn simulate(file: &Path) -> anyhow::Result<()> {
    let plan =
        baton_policy::simulate_file(file).map_err(|error| exit::failed(error.to_string()))?;
    print!("{plan}");
    Ok(())
}

/// `KEY=VALUE` arguments; a missing `=` is a usage error naming the argument.
pub fn parse_assignments(args: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut pairs = BTreeMap::new();
    for arg in args {
        match arg.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                pairs.insert(key.trim().to_string(), value.to_string());
            }
            _ => {
                return Err(exit::usage(format!(
                    "`{arg}` is not KEY=VALUE: e.g. looks_alive=5s or failback=immediate"
                )))
            }
        }
    }
    Ok(pairs)
}

pub async fn resource_show(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let resource = ctx.client()?.resource(name).await?;
    if ctx.json {
        return print_json(&resource);
    }
    print_resource(&resource);
    Ok(())
}

fn print_resource(r: &ResourceInfo) {
    let state = match (r.misconfigured, r.status_message.is_empty()) {
        (true, _) => format!("{} (misconfigured): {}", r.state, r.status_message),
        (false, true) => r.state.clone(),
        (false, false) => format!("{}: {}", r.state, r.status_message),
    };
    let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    print!(
        "{}",
        fields(&[
            ("resource", r.name.clone()),
            ("type", r.resource_type.clone()),
            ("group", format!("{} ({})", r.group, r.status)),
            ("owner", or_dash(&r.owner)),
            ("state", state),
            ("depends on", r.depends_on.clone().unwrap_or_default()),
            ("restarts recent", r.restarts_recent.to_string()),
            ("parameters", params.join(" ")),
        ])
    );
    println!("settings:");
    print_settings(&r.settings);
}

fn print_settings(settings: &BTreeMap<String, String>) {
    let rows: Vec<Vec<String>> = settings
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    for line in table(&["KEY", "VALUE"], &rows).lines() {
        println!("  {line}");
    }
}

pub async fn resource_set(ctx: &Ctx, name: &str, args: &[String]) -> anyhow::Result<()> {
    let settings = parse_assignments(args)?;
    let request = SetSettings { settings };
    let resource = ctx.client()?.set_resource(name, &request).await?;
    if ctx.json {
        return print_json(&resource);
    }
    println!("resource {} set", resource.name);
    print_settings(&resource.settings);
    Ok(())
}

pub async fn resource_depend(ctx: &Ctx, name: &str, expression: &str) -> anyhow::Result<()> {
    let request = SetDependencies {
        expression: expression.to_string(),
    };
    let resource = ctx.client()?.set_dependencies(name, &request).await?;
    if ctx.json {
        return print_json(&resource);
    }
    match &resource.depends_on {
        Some(expression) => println!("resource {} depends on {expression}", resource.name),
        None => println!("resource {} depends on nothing", resource.name),
    }
    Ok(())
}

pub async fn group_set(ctx: &Ctx, name: &str, args: &[String]) -> anyhow::Result<()> {
    let settings = parse_assignments(args)?;
    let request = SetSettings { settings };
    let group = ctx.client()?.set_group(name, &request).await?;
    if ctx.json {
        return print_json(&group);
    }
    println!("group {} set", group.name);
    print_settings(&group_settings(&group));
    Ok(())
}

/// The group's settings with its preferred owners, as `group set` takes them.
fn group_settings(group: &GroupInfo) -> BTreeMap<String, String> {
    let mut settings = group.settings.clone();
    settings.insert("preferred_owners".into(), group.preferred_owners.join(","));
    settings
}

/// The `baton group show` text: where, why, policy, and each resource's state.
pub fn print_group(g: &GroupInfo) {
    print!(
        "{}",
        fields(&[
            ("group", g.name.clone()),
            ("status", g.status.clone()),
            ("status message", g.status_message.clone()),
            ("owner", or_dash(&g.owner)),
            ("desired", g.desired.clone()),
            ("generation", g.generation.to_string()),
            ("preferred owners", g.preferred_owners.join(", ")),
            ("recent failovers", g.failovers_recent.to_string()),
            ("why here", g.last_reason.clone()),
            ("plan", g.explanation.clone()),
        ])
    );
    if !g.settings.is_empty() {
        println!("settings:");
        print_settings(&g.settings);
    }
    let rows: Vec<Vec<String>> = g
        .resources
        .iter()
        .map(|name| {
            let state = g.resource_states.get(name).cloned().unwrap_or_default();
            vec![name.clone(), state]
        })
        .collect();
    if rows.is_empty() {
        println!("resources: none");
        return;
    }
    println!("resources:");
    for line in table(&["RESOURCE", "STATE"], &rows).lines() {
        println!("  {line}");
    }
}

pub async fn resource_type(ctx: &Ctx, command: ResourceTypeCommand) -> anyhow::Result<()> {
    let client = ctx.client()?;
    match command {
        ResourceTypeCommand::List => {
            let types = client.resource_types().await?;
            if ctx.json {
                return print_json(&types);
            }
            let rows: Vec<Vec<String>> = types
                .iter()
                .map(|t| vec![t.name.clone(), t.description.clone()])
                .collect();
            print!("{}", table(&["TYPE", "DESCRIPTION"], &rows));
            Ok(())
        }
        ResourceTypeCommand::Show { name } => {
            let info = client.resource_type(&name).await?;
            if ctx.json {
                return print_json(&info);
            }
            println!("{}: {}", info.name, info.description);
            if !info.long_description.is_empty() {
                println!("{}", info.long_description);
            }
            let rows: Vec<Vec<String>> = info
                .parameters
                .iter()
                .map(|p| {
                    let required = if p.required { "yes" } else { "no" };
                    let default = p.default.clone().unwrap_or_default();
                    vec![
                        p.name.clone(),
                        required.into(),
                        default,
                        p.description.clone(),
                    ]
                })
                .collect();
            println!("parameters (from {}):", info.node);
            for line in table(&["NAME", "REQUIRED", "DEFAULT", "DESCRIPTION"], &rows).lines() {
                println!("  {line}");
            }
            println!("actions: {}", info.actions.join(", "));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_need_an_equals_sign() {
        // Checks KEY=VALUE parsing keeps `=` inside values and refuses a bare key.
        let args = ["looks_alive=5s".to_string(), "param.cmd=a=b".to_string()];
        let pairs = parse_assignments(&args).unwrap();
        assert_eq!(pairs["looks_alive"], "5s");
        assert_eq!(pairs["param.cmd"], "a=b");
        let error = parse_assignments(&["restart".to_string()]).unwrap_err();
        assert_eq!(exit::code_of(&error), exit::USAGE);
        assert!(error.to_string().contains("`restart` is not KEY=VALUE"));
    }
}
