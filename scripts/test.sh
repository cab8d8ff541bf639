#!/usr/bin/env bash
# `make test`: every test of the workspace under nextest, against one PostgreSQL cluster
# started for the run (unless CAREERS_TEST_DATABASE_URL names a server) and nats-servers
# the tests start themselves, after the Kubernetes manifests and the Dockerfile are checked
# (deploy/check.py). Extra arguments go to nextest, and skip the manifest checks.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/tools.sh nats-server cargo-nextest postgres schemathesis connect-es promtool chromium deploy-check
export PATH="$root/.tools/bin:$PATH"
if [ $# -eq 0 ]; then
  deploy-check
fi
# Every binary, linked into ./bin: make run's entry point is tested with them.
scripts/build.sh >/dev/null
cargo build --quiet -p careers-testkit --bin with-postgres
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target/debug/with-postgres" cargo nextest run --workspace --no-fail-fast "$@"
