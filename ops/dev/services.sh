#!/usr/bin/env bash
# Makes sure Postgres (127.0.0.1:5432, user postgres) and NATS with JetStream
# (127.0.0.1:4222) are running, and that a C compiler is there for the crates that build C
# (ring, mimalloc); on a bare Debian machine installs them first.
# Idempotent: does nothing when all of them are already there.
set -euo pipefail

# shellcheck source=ops/dev/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for_port() {
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.1; done
  echo "services: nothing listens on 127.0.0.1:$1 after 10 s ($2)" >&2
  return 1
}

if ! port_open 5432; then
  installed_now=0
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "services: installing PostgreSQL" >&2
    apt_install postgresql
    installed_now=1
  fi
  version="$(ls /etc/postgresql | sort -V | tail -n1)"
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  if [ "$installed_now" = 1 ] || ! grep -q "collab: trust loopback" "$hba"; then
    # Development and CI only: trust loopback connections, as the README's defaults expect.
    as_root sed -i '1i host all all 127.0.0.1/32 trust # collab: trust loopback\nhost all all ::1/128 trust # collab: trust loopback' "$hba"
  fi
  echo "services: starting PostgreSQL $version" >&2
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for_port 5432 postgres
fi

if ! port_open 4222; then
  if [ ! -x /usr/sbin/nats-server ] && ! command -v nats-server >/dev/null 2>&1; then
    echo "services: installing nats-server" >&2
    apt_install nats-server
  fi
  bin="$(command -v nats-server || echo /usr/sbin/nats-server)"
  as_root mkdir -p /var/lib/nats-server
  echo "services: starting nats-server with JetStream" >&2
  as_root start-stop-daemon --start --oknodo --background --exec "$bin" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_for_port 4222 nats
fi

if ! command -v cc >/dev/null 2>&1; then
  echo "services: installing a C compiler (gcc) for the crates that build C" >&2
  apt_install gcc libc6-dev
fi
