//! The CLI's usage contract: exit codes and one-line errors, without a cluster.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs `baton ARGS` with a client configuration path that does not exist.
fn baton(args: &[&str]) -> Output {
    let missing = missing_config();
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .env("BATON_CONFIG", &missing)
        .env_remove("BATON_LOG")
        .env_remove("BATON_DATA_DIR")
        .output()
        .expect("run baton")
}

fn missing_config() -> PathBuf {
    std::env::temp_dir()
        .join(format!("baton-cli-usage-{}", std::process::id()))
        .join("no-such-client.json")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_works_and_documents_exit_codes() {
    let output = baton(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Exit codes:"), "{text}");
    for line in [
        "0  success",
        "2  usage error",
        "3  cluster unreachable",
        "4  timed out",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    // Subcommand help works too.
    let output = baton(&["group", "move", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("--timeout"));
}

#[test]
fn unknown_verb_is_a_usage_error() {
    let output = baton(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).starts_with("error:"));
}

#[test]
fn bad_duration_is_a_usage_error_naming_the_flag() {
    let output = baton(&["group", "online", "web", "--timeout", "5x"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        "error: invalid --timeout `5x`: use e.g. 500ms, 30s\n"
    );
    let output = baton(&["node", "token", "--ttl", "soon"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("invalid --ttl `soon`"));
}

#[test]
fn missing_config_fails_with_one_clear_line() {
    let output = baton(&["group", "list"]);
    // Exit code 1, not 3: a missing configuration will not fix itself on retry.
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with(&format!(
            "error: no client configuration at {}",
            missing_config().display()
        )),
        "{text}"
    );
    assert!(text.contains("baton cluster create"), "{text}");
    assert!(output.stdout.is_empty());
}

#[test]
fn explicit_config_flag_wins_over_the_environment() {
    let path = std::env::temp_dir().join("baton-cli-usage-other.json");
    let output = baton(&["--config", path.to_str().unwrap(), "node", "list"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("baton-cli-usage-other.json"));
}

#[test]
fn malformed_join_token_is_a_usage_error() {
    let output = baton(&[
        "node",
        "join",
        "--token",
        "nonsense",
        "--listen",
        "127.0.0.1:1",
        "--data-dir",
        "/nonexistent/baton-test",
        "127.0.0.1:2",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).starts_with("error: malformed join token"));
}

#[test]
fn unreachable_cluster_exits_3() {
    let dir = std::env::temp_dir().join(format!("baton-cli-unreachable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("client.json");
    let ca = baton_transport::pki::ClusterCa::generate("test").unwrap();
    // Two loopback ports nobody listens on: both refuse at once.
    let free = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let endpoints = [free(), free()];
    let json = serde_json::json!({
        "cluster_name": "c",
        "endpoints": endpoints,
        "token": "t",
        "ca_cert_pem": ca.cert_pem,
    });
    std::fs::write(&config, json.to_string()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["--config", config.to_str().unwrap(), "group", "list"])
        .output()
        .unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("error: cluster unreachable"), "{text}");
    for endpoint in &endpoints {
        assert!(text.contains(endpoint.as_str()), "{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../policy/tests/scenarios")
        .join(name)
}

#[test]
fn simulate_prints_the_scenarios_expected_plan() {
    // Checks `baton simulate` prints exactly the checked-in plan of a scenario, offline.
    let input = scenario("restart-threshold-exceeded-fails-over.toml");
    let output = baton(&["simulate", input.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let expected =
        std::fs::read_to_string(scenario("restart-threshold-exceeded-fails-over.plan")).unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
}

#[test]
fn simulate_refuses_a_bad_file_with_exit_1() {
    // Checks a missing file and a file that is not a scenario fail with one clear line.
    let output = baton(&["simulate", "/no/such/scenario.toml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("error: cannot read scenario file /no/such/scenario.toml"),
        "{}",
        stderr(&output)
    );
    let dir = tempfile_dir();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "nodes = 3\n").unwrap();
    let output = baton(&["simulate", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(error.contains("is not a valid plan input"), "{error}");
    assert_eq!(error.lines().count(), 1, "{error}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn settings_without_a_value_are_usage_errors() {
    // Checks `resource set` and `group set` want KEY=VALUE before talking to any cluster.
    let output = baton(&["resource", "set", "app", "looks_alive"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("`looks_alive` is not KEY=VALUE"));
    let output = baton(&["group", "set", "web"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("baton-cli-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
