//! Scenario tests, after Pacemaker's cts/scheduler: every
//! `tests/scenarios/<name>.toml` is planned and rendered, and the text must
//! equal `<name>.plan`. `UPDATE_EXPECT=1 cargo test -p baton-policy --test
//! scenarios` rewrites the `.plan` files; review the diff before committing.
//! Every scenario must be listed in `tests/scenarios/README.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use baton_policy::scenario::load_file;
use baton_policy::{plan, render, simulate_file, PlanInput};

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

/// Scenario names (file stems) of every file in the directory with `extension`.
fn names_with_extension(extension: &str) -> BTreeSet<String> {
    std::fs::read_dir(scenario_dir())
        .expect("read tests/scenarios")
        .map(|entry| entry.expect("read directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .map(|path| {
            path.file_stem()
                .expect("file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn scenarios_match_expected_plans() {
    // Checks every scenario's rendered plan against its `.plan` file.
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    let names = names_with_extension("toml");
    assert!(
        names.len() >= 40,
        "expected at least 40 scenarios, found {}",
        names.len()
    );
    for name in &names {
        let input_path = scenario_dir().join(format!("{name}.toml"));
        let expected_path = scenario_dir().join(format!("{name}.plan"));
        let actual = simulate_file(&input_path).unwrap_or_else(|e| panic!("{e}"));
        if update {
            std::fs::write(&expected_path, &actual).expect("write .plan");
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{name}: plan differs (UPDATE_EXPECT=1 to accept)\n--- expected\n{expected}\
                 --- actual\n{actual}"
            )),
            Err(_) => failures.push(format!("{name}: missing {name}.plan (UPDATE_EXPECT=1)")),
        }
    }
    let orphans: Vec<_> = names_with_extension("plan")
        .difference(&names)
        .cloned()
        .collect();
    if !orphans.is_empty() {
        failures.push(format!(".plan files without a scenario: {orphans:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn scenarios_are_registered() {
    // Checks the README registry names every scenario, and nothing else.
    let readme = std::fs::read_to_string(scenario_dir().join("README.md")).expect("README.md");
    let listed: BTreeSet<String> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_string())
        .collect();
    let names = names_with_extension("toml");
    let unlisted: Vec<_> = names.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&names).collect();
    assert!(
        unlisted.is_empty(),
        "scenarios missing from README.md: {unlisted:?}"
    );
    assert!(
        missing.is_empty(),
        "README.md lists scenarios with no file: {missing:?}"
    );
}

#[test]
fn scenarios_are_deterministic_and_round_trip() {
    // Checks planning twice gives the same plan, and that an input survives a
    // JSON round trip (the coordinator's saved inputs) with the same plan.
    for name in names_with_extension("toml") {
        let input = load_file(&scenario_dir().join(format!("{name}.toml"))).expect("load");
        let first = plan(&input);
        assert_eq!(first, plan(&input), "{name}: plan is not deterministic");
        let json = serde_json::to_string(&input).expect("to json");
        let back: PlanInput = serde_json::from_str(&json).expect("from json");
        assert_eq!(
            render(&first),
            render(&plan(&back)),
            "{name}: JSON round trip changed the plan"
        );
    }
}
