#!/usr/bin/env bash
# `make fresh-check`: the README's two commands on a stock Debian 12, as a new user meets
# them. A debootstrap chroot holds only what CONTRACT.md calls a fresh machine (the Rust
# toolchain, gcc, make, git, Python 3 with pip and venv, Node with npm; no PostgreSQL,
# nats-server, kubectl or ../shared) and a clean clone of this repository's HEAD. In it:
# `make test` must pass, then `make run` must print its ready line and the README's walk
# through must work against it.
#
# Needs root (debootstrap, chroot, mounts) and the package registries. The base image is
# cached under $CAREERS_TOOLS_CACHE/fresh-check (default ~/.cache/careers-tools); every run
# starts from a pristine copy of it. `scripts/fresh-check.sh base` only builds that image. Commit first: uncommitted changes are not in the clone.
# The chroot shares this machine's network, so `make run`'s ports (8080, 50051, 14222, ...)
# must be free while it runs.
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CAREERS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/careers-tools}/fresh-check
base="$cache/debian12-base"
work="$cache/run"
log_dir="$cache/logs"
started=$SECONDS

say() { echo "fresh-check: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, chroot and mounts); run it with sudo"
[ "$(uname -m)" = x86_64 ] || fail "pinned tools are for x86_64 only"

# What a user's machine has: Debian 12's own packages, nothing newer, no recommends.
PACKAGES="ca-certificates git gcc libc6-dev make python3 python3-pip python3-venv nodejs npm procps curl"

# The Debian mirror this machine's apt already uses (the chroot gets the same one).
debian_mirror() {
  local mirror
  mirror=$(grep -rhoE '^(URIs:|deb) +[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
    2>/dev/null | awk '{print $2}' | grep -v -- '-security' | grep -E '/debian/?$' | head -n 1 || true)
  [ -n "$mirror" ] || fail "no Debian mirror found in /etc/apt/sources.list*"
  echo "$mirror"
}

make_base() {
  if [ -f "$base/.complete" ]; then return; fi
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  if [ ! -f "$base/.debootstrapped" ]; then
    local mirror
    mirror=$(debian_mirror)
    say "building the Debian 12 base image from $mirror (a few minutes, once)"
    rm -rf "$base"
    mkdir -p "$base"
    # shellcheck disable=SC2086
    if ! debootstrap --variant=minbase bookworm "$base" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
      ! chroot "$base" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $PACKAGES" \
        >>"$cache/debootstrap.log" 2>&1; then
      fail "building the base image failed; see $cache/debootstrap.log"
    fi
    touch "$base/.debootstrapped"
  fi
  # The Rust toolchain as rustup installs it: the default toolchain and rustup's own
  # binaries, on PATH through ~/.profile.
  local toolchain
  toolchain=$(rustup default | cut -d' ' -f1)
  local sysroot
  sysroot=$(rustc --print sysroot)
  rm -rf "$base/root/.rustup" "$base/root/.cargo"
  mkdir -p "$base/root/.rustup/toolchains" "$base/root/.cargo/bin"
  cp -a "$sysroot" "$base/root/.rustup/toolchains/$toolchain"
  printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "default"\nauto_self_update = "disable"\n' \
    "$toolchain" >"$base/root/.rustup/settings.toml"
  cp "$(command -v rustup)" "$base/root/.cargo/bin/rustup"
  local tool
  for tool in cargo rustc rustdoc rustfmt cargo-fmt cargo-clippy clippy-driver; do
    ln -s rustup "$base/root/.cargo/bin/$tool"
  done
  # shellcheck disable=SC2016
  grep -q cargo/bin "$base/root/.profile" 2>/dev/null ||
    echo 'export PATH="$HOME/.cargo/bin:$PATH"' >>"$base/root/.profile"
  # As in Debian's container images: packages installed in the chroot start no daemons
  # (a PostgreSQL started by its package would meet this machine's own on port 5432).
  printf '#!/bin/sh\nexit 101\n' >"$base/usr/sbin/policy-rc.d"
  chmod +x "$base/usr/sbin/policy-rc.d"
  touch "$base/.complete"
}

mounted=()
cleanup() {
  local status=$?
  # Stop whatever the chroot left running (make run, servers) before unmounting.
  if [ -d "$work/proc" ]; then
    local pid
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
      if [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$work" ]; then
        kill -9 "$pid" 2>/dev/null || true
      fi
    done
  fi
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -l "${mounted[$i]}" 2>/dev/null || true
  done
  exit "$status"
}
trap cleanup EXIT

mount_into() {
  local type=$1 source=$2 target="$work$3"
  mkdir -p "$target"
  if [ "$type" = bind ]; then mount --bind "$source" "$target"; else mount -t "$type" "$source" "$target"; fi
  mounted+=("$target")
}

# Runs a login shell in the chroot with a clean environment, as a user's terminal would.
in_chroot() {
  chroot "$work" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 "${trust_env[@]}" /bin/bash -lc "$1"
}

make_base
if [ "${1:-}" = base ]; then say "base image ready in $base"; exit 0; fi
say "laying a fresh copy of the base image and a clean clone of HEAD ($(git -C "$root" rev-parse --short HEAD))"
rm -rf "$work"
cp -a "$base" "$work"
rm -f "$work/.complete"
git clone --quiet --no-hardlinks "$root" "$work/root/careers"
[ ! -e "$work/root/shared" ] || fail "the chroot must not hold ../shared"
cp /etc/resolv.conf "$work/etc/resolv.conf"
# The network's TLS trust is this machine's: local certificate authorities (a proxy's, a
# company's) are added to the chroot's store, and the variables that point tools at a
# bundle are passed through.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$work/usr/local/share/ca-certificates/"
  chroot "$work" /usr/sbin/update-ca-certificates >/dev/null 2>&1 ||
    fail "update-ca-certificates failed in the chroot"
fi
trust_env=()
for variable in SSL_CERT_FILE SSL_CERT_DIR NODE_EXTRA_CA_CERTS PIP_CERT REQUESTS_CA_BUNDLE \
  CURL_CA_BUNDLE GIT_SSL_CAINFO; do
  [ -z "${!variable:-}" ] || trust_env+=("$variable=${!variable}")
done
mount_into proc proc /proc
mount_into sysfs sys /sys
mount_into bind /dev /dev
mount_into devpts devpts /dev/pts
mount_into tmpfs tmpfs /dev/shm
mkdir -p "$log_dir"

say "make test (log: $log_dir/make-test.log)"
test_started=$SECONDS
if ! in_chroot 'cd /root/careers && make test' >"$log_dir/make-test.log" 2>&1; then
  tail -n 40 "$log_dir/make-test.log" >&2
  fail "make test failed after $((SECONDS - test_started)) s; see $log_dir/make-test.log"
fi
test_took=$((SECONDS - test_started))
say "make test passed in $test_took s; its last lines:"
tail -n 5 "$log_dir/make-test.log" >&2

say "make run (log: $log_dir/make-run.log)"
run_started=$SECONDS
# In its own process group, so that Ctrl-C can be sent to all of it as a terminal would.
setsid chroot "$work" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 "${trust_env[@]}" \
  /bin/bash -lc 'cd /root/careers && exec make run' >"$log_dir/make-run.log" 2>&1 &
run_pid=$!
ready_line='careers is ready at http://127.0.0.1:8080'
while ! grep -qF "$ready_line" "$log_dir/make-run.log"; do
  kill -0 "$run_pid" 2>/dev/null || {
    tail -n 40 "$log_dir/make-run.log" >&2
    fail "make run stopped before its ready line"
  }
  [ $((SECONDS - run_started)) -lt 1800 ] || fail "make run printed no ready line in 30 minutes"
  sleep 2
done
[ "$(tail -n 1 "$log_dir/make-run.log")" = "$ready_line" ] || fail "the ready line is not make run's last line"
run_took=$((SECONDS - run_started))
say "make run ready in $run_took s; its last lines:"
tail -n 3 "$log_dir/make-run.log" >&2

# The README's first walk through, exactly as written there, then what it promises.
say "the README walk-through"
awk '/^### A first walk through/{f=1} f&&/^```sh/{c=1;next} c&&/^```/{exit} c' \
  "$work/root/careers/README.md" >"$work/root/walk-through.sh"
[ -s "$work/root/walk-through.sh" ] || fail "no walk-through found in the README"
in_chroot 'cd /root/careers && set -e && . /root/walk-through.sh' >"$log_dir/walk-through.log" 2>&1 ||
  fail "the walk-through failed; see $log_dir/walk-through.log"
grep -q '"accepted":1' "$log_dir/walk-through.log" || fail "the walk-through's submission did not accept its good row"
grep -q '"rule":"soc_code_known"' "$log_dir/walk-through.log" || fail "the walk-through's bad row was not reported"
grep -q '54669' "$log_dir/walk-through.log" || fail "the walk-through's figure did not reach the occupation"
grep -q '"client_id"' "$log_dir/walk-through.log" || fail "the walk-through's note was not recorded"

kill -INT -- "-$run_pid" 2>/dev/null || true
wait "$run_pid" 2>/dev/null || true
say "passed in $((SECONDS - started)) s (make test $test_took s, make run ready in $run_took s)"
