#!/usr/bin/env bash
# `make run`: the whole system on this machine (careersctl dev): the project's own
# nats-server, every service on SQLite under ./data, the seeds loaded. Ctrl-C stops all;
# the data is kept for the next run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/tools.sh nats-server >&2
scripts/build.sh >&2
exec ./bin/careersctl dev --data data --nats-server .tools/bin/nats-server
