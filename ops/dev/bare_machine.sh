#!/usr/bin/env bash
# Runs the README's two commands on a bare Debian system and checks that they do all the
# set-up by themselves: a minimal Debian 12 made with debootstrap, the Rust toolchain
# bind-mounted in, nothing else installed. Inside it, `ops/dev/serve.sh` must install and
# start Postgres and NATS, build, and serve /readyz; then `ops/dev/test.sh` must pass.
#
#   ops/dev/bare_machine.sh            # as root; about 40 minutes on 2 cores
#
# The system shares this machine's network, so the services this machine runs on 5432 and
# 4222 are stopped for the run (and started again at the end): otherwise the commands would
# find them and install nothing. Settings: BARE_ROOT (where the system is made, default
# /var/tmp/collab-bare; kept between runs unless BARE_FRESH=1), BARE_MIRROR (a Debian
# mirror), BARE_LOG (the run's log). Exit 0 only when every check passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"
root="${BARE_ROOT:-/var/tmp/collab-bare}"
mirror="${BARE_MIRROR:-http://deb.debian.org/debian}"
log="${BARE_LOG:-$repo/target/bare-machine.log}"
mkdir -p "$(dirname "$log")"
: >"$log"
say() { echo "bare: $*" | tee -a "$log" >&2; }
fail() { say "FAILED: $*"; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (debootstrap, chroot and mounts need it)"
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
if [ "${BARE_FRESH:-0}" = 1 ]; then rm -rf "$root"; fi
if [ ! -x "$root/usr/bin/apt-get" ]; then
  say "making a minimal Debian 12 in $root"
  rm -rf "$root"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >>"$log" 2>&1 ||
    fail "debootstrap (see $log)"
fi
# What is checked below must come from the commands, not from an earlier run.
for p in postgresql nats-server nodejs gcc; do
  if chroot "$root" dpkg -s "$p" >/dev/null 2>&1; then
    fail "$root already has $p installed: run with BARE_FRESH=1"
  fi
done

# The machine's network settings, so the system reaches the mirrors and registries as this
# machine does (including a TLS-inspecting egress CA, where the network has one).
cp /etc/resolv.conf /etc/hosts "$root/etc/"
if [ -d /usr/local/share/ca-certificates ]; then
  mkdir -p "$root/usr/local/share/ca-certificates" "$root/etc/ssl/certs"
  cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi
for f in /etc/apt/apt.conf.d/99artifact-registry; do [ -f "$f" ] && cp "$f" "$root$f"; done

mounted=()
mount_in() { # mount_in SOURCE TARGET [options...]
  local src="$1" dst="$root$2"; shift 2
  mkdir -p "$dst"
  mount "$@" "$src" "$dst"
  mounted=("$dst" "${mounted[@]}")
}
stopped=()
cleanup() {
  set +e
  chroot "$root" /bin/sh -c 'pg_ctlcluster --skip-systemctl-redirect 15 main stop' >/dev/null 2>&1
  pkill -f "^/work/collab/target/debug/collab" 2>/dev/null
  pkill -x nats-server 2>/dev/null
  for _ in $(seq 1 50); do port_open 5432 || port_open 4222 || break; sleep 0.2; done
  for m in "${mounted[@]}"; do umount -l "$m"; done
  for s in "${stopped[@]}"; do
    case "$s" in
      postgres) pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start ;;
      nats) start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
              -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log ;;
    esac
  done
}
trap cleanup EXIT

mount_in proc /proc -t proc
mount_in sysfs /sys -t sysfs
mount_in /dev /dev --bind
mount_in devpts /dev/pts -t devpts
mount_in tmpfs /dev/shm -t tmpfs
mount_in "${RUSTUP_HOME:-$HOME/.rustup}" /root/.rustup --bind
mount_in "${CARGO_HOME:-$HOME/.cargo}/bin" /root/.cargo/bin --bind

# A clean checkout of what is committed, as CI gets it.
rm -rf "$root/work/collab"
mkdir -p "$root/work"
git clone -q --no-hardlinks "$repo" "$root/work/collab"
say "checkout $(git -C "$root/work/collab" rev-parse --short HEAD)"

# Free the standard ports: this machine's own services would otherwise be found.
if port_open 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main stop
  stopped+=(postgres)
fi
if port_open 4222; then
  pkill -x nats-server || true
  stopped+=(nats)
fi
for _ in $(seq 1 100); do port_open 5432 || port_open 4222 || break; sleep 0.1; done
if port_open 5432 || port_open 4222; then fail "5432 or 4222 still taken"; fi

# The network's CA settings, as this machine's own environment has them (where it has them).
net_env=()
for v in SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE NODE_EXTRA_CA_CERTS PIP_CERT REQUESTS_CA_BUNDLE \
  GIT_SSL_CAINFO PIP_DEFAULT_TIMEOUT; do
  if [ -n "${!v:-}" ]; then net_env+=("$v=${!v}"); fi
done
inside() { # runs a shell command in the bare system, as a fresh login would
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb CI="${CI:-true}" "${net_env[@]}" \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "cd /work/collab && $1"
}

started=$(date +%s)
say "command 1: ops/dev/serve.sh"
inside 'setsid ops/dev/serve.sh >/work/serve.log 2>&1 </dev/null & echo $! >/work/serve.pid'
ready=0
for _ in $(seq 1 2400); do # the first build: up to 40 minutes
  if inside 'exec 3<>/dev/tcp/127.0.0.1/7700 && printf "GET /readyz HTTP/1.0\r\n\r\n" >&3 && head -n1 <&3' 2>/dev/null |
    grep -q ' 200'; then
    ready=1
    break
  fi
  if ! inside 'kill -0 $(cat /work/serve.pid)' 2>/dev/null; then break; fi
  sleep 1
done
cat "$root/work/serve.log" >>"$log"
[ "$ready" = 1 ] || fail "the server never answered /readyz with 200 (see $log)"
say "serve.sh: /readyz 200 after $(($(date +%s) - started)) s"
for p in postgresql nats-server gcc; do
  inside "dpkg -s $p >/dev/null 2>&1" || fail "serve.sh did not install $p"
done
say "serve.sh installed postgresql, nats-server and gcc by itself"
inside 'kill $(cat /work/serve.pid)' || true

started=$(date +%s)
say "command 2: ops/dev/test.sh"
if inside 'ops/dev/test.sh' >>"$log" 2>&1; then
  say "test.sh passed in $(($(date +%s) - started)) s"
else
  fail "test.sh failed after $(($(date +%s) - started)) s (see $log)"
fi
grep -E '^ +Summary|test result:' "$log" | tail -n 3 | tee -a /dev/stderr >/dev/null || true
say "passed: both commands set up a bare Debian system by themselves"
