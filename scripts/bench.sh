#!/usr/bin/env bash
# `make bench` (BENCH=name for one): release build, then every benchmark prints its
# figure beside a baseline measured in the same run. Needs the pinned nats-server and
# PostgreSQL, like the tests; starts its own servers on free ports.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/tools.sh nats-server postgres
# The gateway binary too: the observability bench runs it as a process.
cargo build --quiet --release -p careers-bench -p careers-testkit -p careers-gateway \
  --bin careers-bench --bin with-postgres --bin gateway
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target/release/with-postgres" "$target/release/careers-bench" ${BENCH:-}
