#!/usr/bin/env bash
# `make image`: one image per service from the Dockerfile's targets, tagged
# $IMAGE_PREFIX/<service>:$TAG (defaults ghcr.io/careers and the workspace version).
# Needs a Docker engine with BuildKit; this project's build machine has none.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
prefix=${IMAGE_PREFIX:-ghcr.io/careers}
tag=${TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}
for target in gateway occupations lmi casenotes ambassadors careersctl; do
  echo "image: $prefix/$target:$tag" >&2
  DOCKER_BUILDKIT=1 docker build --target "$target" --tag "$prefix/$target:$tag" \
    --build-arg "CAREERS_COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" .
done
