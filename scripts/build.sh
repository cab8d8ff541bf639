#!/usr/bin/env bash
# `make build`: builds every binary and links them into ./bin/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
profile=${PROFILE:-dev}
cargo build --workspace --bins --profile "$profile"
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
mkdir -p bin
for binary in gateway occupations lmi casenotes ambassadors careersctl; do
  ln -sfn "$target/$dir/$binary" "bin/$binary"
done
