#!/usr/bin/env bash
# `make lint`: formatting, clippy with warnings as errors, buf lint on the protos, and
# cargo-deny's licence, ban and source checks, and no import loops between the modules of
# any crate (scripts/module-loops.py). Each stage prints its wall time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/tools.sh buf cargo-deny
export PATH="$root/.tools/bin:$PATH"

stage() {
  local name=$1; shift
  local start=$SECONDS
  echo "== $name"
  "$@"
  echo "== $name: $((SECONDS - start)) s"
}

stage "cargo fmt" cargo fmt --all -- --check
stage "buf lint" buf lint proto
stage "import loops" sh -c "python3 scripts/module-loops.py --self-test && python3 scripts/module-loops.py"
stage "cargo deny" cargo deny --log-level error check licenses bans sources
stage "cargo clippy" cargo clippy --workspace --all-targets --quiet -- -D warnings
