//! Test-only stand-in for `baton resource-host`: the integration tests spawn this binary,
//! since the real `baton` binary lives in another crate.

fn main() {
    baton_host::run_host()
}
