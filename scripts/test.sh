#!/usr/bin/env bash
# The whole test suite: unit, scenario, storage-conformance and multi-process integration
# tests, the demo itself (a real failover on a local 3-node cluster), then the chaos batch
# (fault injection against daemons in network namespaces, tests/chaos/run --ci).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --workspace --all-targets --locked
if cargo nextest --version >/dev/null 2>&1; then
  # Integration tests start real clusters: two at a time fit a 2-core machine.
  cargo nextest run --workspace --locked --test-threads 2 --no-fail-fast
else
  cargo test --workspace --locked -- --test-threads 2
fi
cargo test --workspace --locked --doc

echo "== demo"
demo_log=$(mktemp)
if ! timeout 300 target/debug/baton demo 2>&1 | tee "$demo_log"; then
  echo "the demo failed"
  exit 1
fi
grep -q "failover OK" "$demo_log" || { echo "the demo did not report a successful failover"; exit 1; }
rm -f "$demo_log"

# Fault injection against real daemons in network namespaces (needs root): fails on any
# double run or lost acknowledged change. The batch itself stays under 10 minutes.
echo "== chaos"
mkdir -p target/chaos
if ! timeout 900 tests/chaos/run --ci --report target/chaos/ci-report.json; then
  echo "the chaos batch failed: see target/chaos/ci-report.json and target/chaos/kept/"
  exit 1
fi
