#!/usr/bin/env bash
# Builds the image of ops/deploy/Dockerfile with podman, from Debian's packages only, on
# base images made here with debootstrap, then starts it against this machine's Postgres
# and NATS and checks it: `/readyz` answers 200, the process runs as uid 10001 and can
# write its directories, the image's HEALTHCHECK reports healthy (and fails when no server
# answers), SIGTERM stops it. Then it removes the container, the database and the NATS
# streams it made, and prints the build time and the image size (ops/deploy/README.md,
# "Image").
#
# For a Debian 12 machine, as root (debootstrap and podman need it), no standard input:
# podman and debootstrap (and psql) are installed with apt-get when missing. Postgres
# (trust for user postgres) and NATS with JetStream must listen on 127.0.0.1:5432 and
# 127.0.0.1:4222 (ops/dev/services.sh starts them). The Rust toolchain comes from this
# machine (`rustc --print sysroot` in the repository, as rustup installs it), nothing is
# pulled from a container registry; cargo inside the build fetches crates from crates.io
# (the builder base trusts the certificate authorities this machine adds to Debian's).
#
#   nice -n 19 env CARGO_BUILD_JOBS=1 ops/deploy/image.sh
#
# CARGO_BUILD_JOBS goes to the build (empty: one job per core). The base images are kept
# as tarballs in ${XDG_CACHE_HOME:-~/.cache}/collab/images and made again only when missing
# (the builder's when the toolchain's version changes); DEBIAN_MIRROR and
# DEBIAN_SECURITY_MIRROR pick the mirrors.
# The cargo registry and target directory of the build are podman's cache mounts, so a
# second run recompiles only what changed. The image stays, tagged candlefish/collab.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'image.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: debootstrap and podman (rootful) need it"

RUNTIME_BASE=localhost/debian:bookworm-slim-local
BUILDER_BASE=localhost/rust:bookworm-local
IMAGE=candlefish/collab
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/collab/images
PG_URL=postgres://postgres@127.0.0.1:5432
NATS_HOST=127.0.0.1
NATS_PORT=4222

# --- Tools -------------------------------------------------------------------------
missing=()
command -v podman >/dev/null || missing+=(podman)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v psql >/dev/null || missing+=(postgresql-client)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # With podman's recommended packages (its network backend, among others).
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v rustc >/dev/null || die "no rustc: the builder image takes this machine's toolchain (rustup)"

# What podman needs in this kind of sandbox (a VM without systemd, cgroups v1 with a
# cgroup2 hierarchy beside them, root without CAP_SYS_RESOURCE); on an ordinary Debian 12
# with systemd none of it applies and podman's defaults are kept:
# - no systemd to be the cgroup manager, nor journald for events: cgroupfs and a file.
#   (`podman run` still logs "unable to get systemd connection" errors for the health
#   check's timer: harmless, the check is run by hand below.)
# - crun refuses hybrid cgroups ("cgroups in hybrid mode not supported"): runc does not.
# - without CAP_SYS_RESOURCE no limit can be raised, and podman's defaults for containers
#   (nofile 1048576, nproc 4194304) are above this machine's hard limits, so every
#   container fails in setrlimit ("Operation not permitted"): the limits podman itself
#   runs with are given instead (it lowers its own nproc to 32768).
# The storage driver (overlay) works as it is; on a root filesystem that is itself
# overlayfs, set STORAGE_DRIVER=vfs.
podman=(podman)
if [ ! -d /run/systemd/system ]; then
    podman+=(--cgroup-manager=cgroupfs --events-backend=file)
fi
if [ -n "${STORAGE_DRIVER:-}" ]; then
    podman+=(--storage-driver "$STORAGE_DRIVER")
fi
if [ "$(stat -f -c %T /sys/fs/cgroup)" != cgroup2fs ] && [ -d /sys/fs/cgroup/unified ]; then
    if ! command -v runc >/dev/null; then
        log "installing runc (crun does not run on hybrid cgroups)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends runc >/dev/null
    fi
    podman+=(--runtime runc)
fi
limits=()
cap_eff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
if (( (0x$cap_eff >> 24 & 1) == 0 )); then  # CAP_SYS_RESOURCE is bit 24
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
    limits=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
fi

# --- Base images (debootstrap) ----------------------------------------------------
mkdir -p "$CACHE/debs"
rm -rf "$CACHE"/rootfs-*  # left by an interrupted run

# debootstrap ROOTFS PACKAGES: a minbase bookworm with PACKAGES, upgraded from
# bookworm-updates and bookworm-security (debootstrap installs the point release only).
bootstrap() {
    local rootfs=$1 include=$2
    log "debootstrap bookworm (minbase + $include) into $rootfs"
    debootstrap --variant=minbase --include="$include" --cache-dir="$CACHE/debs" \
        bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 \
        || { tail -n 30 "$rootfs.log" >&2; die "debootstrap failed (log: $rootfs.log)"; }
    cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
    cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    DEBIAN_FRONTEND=noninteractive chroot "$rootfs" sh -ec '
        apt-get update -qq
        apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade >/dev/null
        apt-get clean
        rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
    ' >>"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; die "upgrade in $rootfs failed"; }
    # A container engine provides these.
    : >"$rootfs/etc/resolv.conf"
    : >"$rootfs/etc/hostname"
    rm -f "$rootfs/etc/machine-id" "$rootfs/var/lib/dbus/machine-id"
}

# tar_rootfs ROOTFS TARBALL
tar_rootfs() {
    tar --numeric-owner --xattrs -C "$1" -cf "$2.part" . && mv "$2.part" "$2"
}

# import_base TARBALL IMAGE [--change ...]: imports TARBALL as IMAGE unless IMAGE is
# already that tarball (a label records the tarball's size and time).
import_base() {
    local tarball=$1 image=$2 key
    shift 2
    key=$(stat -c %s-%Y "$tarball")
    if [ "$("${podman[@]}" image inspect --format '{{index .Config.Labels "collab.base"}}' \
            "$image" 2>/dev/null)" != "$key" ]; then
        log "importing $image"
        "${podman[@]}" import --quiet "$@" --change "LABEL collab.base=$key" \
            --change 'CMD ["bash"]' "$tarball" "$image" >/dev/null
    fi
}

# The runtime base: what debian:bookworm-slim is, locally (minbase, no documentation,
# manual pages or translations), with ca-certificates.
runtime_tar=$CACHE/debian-bookworm-slim-local.tar
if [ ! -s "$runtime_tar" ]; then
    rootfs=$(mktemp -d "$CACHE/rootfs-runtime.XXXXXX")
    bootstrap "$rootfs" ca-certificates
    # As the official slim images: dpkg leaves these out of later installs too.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/{man,info,locale,lintian,linda}/*
    tar_rootfs "$rootfs" "$runtime_tar"
    rm -rf "$rootfs" "$rootfs.log"
fi
import_base "$runtime_tar" "$RUNTIME_BASE"

# The builder base: the same plus a C toolchain and this machine's Rust toolchain in
# /usr/local/rust (rustc finds its libraries relative to itself; cargo calls the rustc
# on PATH). No rustup: the toolchain is copied, not downloaded.
sysroot=$(rustc --print sysroot)
rust_version=$(rustc --version | awk '{print $2}')
cargo_bin=$sysroot/bin/cargo
if [ ! -x "$cargo_bin" ]; then
    cargo_bin=$(rustup which cargo 2>/dev/null) || die "no cargo in $sysroot/bin and no rustup"
fi
builder_tar=$CACHE/rust-$rust_version-bookworm-local.tar
if [ ! -s "$builder_tar" ]; then
    rootfs=$(mktemp -d "$CACHE/rootfs-builder.XXXXXX")
    bootstrap "$rootfs" ca-certificates,gcc,libc6-dev,pkg-config,make
    # The certificate authorities this machine adds to Debian's (a TLS-inspecting proxy's,
    # here): cargo in the build reaches crates.io through the same network. The builder
    # base only: nothing of it goes into the image.
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
        chroot "$rootfs" update-ca-certificates >>"$rootfs.log" 2>&1
    fi
    log "copying the Rust toolchain $rust_version ($sysroot) into /usr/local/rust"
    mkdir -p "$rootfs/usr/local/rust" "$rootfs/usr/local/cargo"
    # The documentation (about 800 MB) is not needed to build.
    tar -C "$sysroot" --exclude=./share/doc -cf - . | tar -C "$rootfs/usr/local/rust" -xf -
    install -m 0755 "$cargo_bin" "$rootfs/usr/local/rust/bin/cargo"
    tar_rootfs "$rootfs" "$builder_tar"
    rm -rf "$rootfs" "$rootfs.log"
fi
import_base "$builder_tar" "$BUILDER_BASE" \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV CARGO_HOME=/usr/local/cargo'
"${podman[@]}" run --rm "${limits[@]}" "$BUILDER_BASE" sh -c 'rustc --version && cargo --version && cc --version | head -n 1' \
    || die "the toolchain does not run in $BUILDER_BASE"

# --- Build ---------------------------------------------------------------------------
# --format docker: the OCI format has no HEALTHCHECK (podman drops it with a warning).
# --network=host: the build reaches crates.io through this machine's network as it is,
# with no bridge or NAT for podman to set up.
log "building $IMAGE (CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-all cores})"
build_start=$SECONDS
"${podman[@]}" build "${limits[@]}" --format docker --network=host \
    --build-arg BUILDER_IMAGE="$BUILDER_BASE" \
    --build-arg RUNTIME_IMAGE="$RUNTIME_BASE" \
    --build-arg CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-}" \
    -f ops/deploy/Dockerfile -t "$IMAGE" .
build_secs=$((SECONDS - build_start))
log "built in ${build_secs} s"

healthcheck=$("${podman[@]}" image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")
case $healthcheck in
    *readyz*) ;;
    *) die "the image has no HEALTHCHECK (got: $healthcheck)" ;;
esac

# --- Run and check -------------------------------------------------------------------
# http_status PORT PATH: the status code of GET PATH on 127.0.0.1:PORT, or nothing.
http_status() {
    local line
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 0
    printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$2" >&3
    IFS=' ' read -r -t 5 _ line _ <&3 || true
    exec 3<&-
    printf '%s' "$line"
}

# A free port: nothing answers on it.
port=
for _ in $(seq 50); do
    candidate=$((20000 + RANDOM % 20000))
    if ! { exec 3<>"/dev/tcp/127.0.0.1/$candidate"; } 2>/dev/null; then
        port=$candidate
        break
    fi
    exec 3<&-
done
[ -n "$port" ] || die "no free port found"

run_id=$(date +%s)$$
db=collab_image_check_$run_id
prefix=imagecheck$run_id
name=collab-image-check-$run_id
streams=("${prefix^^}_EVENTS" "${prefix^^}_PRESENCE")

# delete_stream NAME: JetStream's API over the NATS protocol (no nats CLI needed).
delete_stream() {
    {
        exec 4<>"/dev/tcp/$NATS_HOST/$NATS_PORT"
        IFS= read -r -t 5 _ <&4
        # shellcheck disable=SC2016 # $JS is a subject, not a variable
        printf 'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.imagecheck 1\r\nPUB $JS.API.STREAM.DELETE.%s _INBOX.imagecheck 0\r\n\r\n' "$1" >&4
        local line
        while IFS= read -r -t 5 line <&4; do
            case $line in MSG*) break ;; esac
        done
        exec 4<&-
    } 2>/dev/null || true
}

cleanup() {
    local status=$?
    set +e
    if "${podman[@]}" container exists "$name" 2>/dev/null; then
        if [ $status -ne 0 ]; then
            log "container logs (last 40 lines)"
            "${podman[@]}" logs --tail 40 "$name" >&2
        fi
        "${podman[@]}" rm -f -t 10 "$name" >/dev/null
    fi
    "${podman[@]}" rm -f -t 0 "$name-idle" >/dev/null 2>&1
    psql "$PG_URL/postgres" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    for stream in "${streams[@]}"; do delete_stream "$stream"; done
    exit $status
}
trap cleanup EXIT

log "starting $IMAGE on 127.0.0.1:$port (database $db, subject prefix $prefix)"
# Host networking: the container reaches Postgres and NATS on this machine's loopback.
"${podman[@]}" run "${limits[@]}" -d --name "$name" --network=host \
    -e COLLAB_LISTEN="127.0.0.1:$port" \
    -e COLLAB_DATABASE_URL="$PG_URL/$db" \
    -e COLLAB_NATS_URL="nats://$NATS_HOST:$NATS_PORT" \
    -e COLLAB_SUBJECT_PREFIX="$prefix" \
    -e COLLAB_JWT_SECRET="image-check-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" \
    "$IMAGE" >/dev/null

# /readyz: polled until 200, for at most 120 s, while the container runs.
ready_start=$SECONDS
status=
while [ $((SECONDS - ready_start)) -lt 120 ]; do
    status=$(http_status "$port" /readyz)
    [ "$status" = 200 ] && break
    [ "$("${podman[@]}" inspect --format '{{.State.Running}}' "$name")" = true ] \
        || die "the container exited before /readyz answered 200"
    sleep 0.5
done
[ "$status" = 200 ] || die "/readyz did not answer 200 within 120 s (last: ${status:-no answer})"
log "/readyz: 200 after $((SECONDS - ready_start)) s"
healthz=$(http_status "$port" /healthz)
[ "$healthz" = 200 ] || die "/healthz answered ${healthz:-nothing}"

# The user: the image's, inside, and the server process's as the host sees it.
config_user=$("${podman[@]}" image inspect --format '{{.Config.User}}' "$IMAGE")
# shellcheck disable=SC2016 # expanded in the container
inside=$("${podman[@]}" exec "$name" sh -c 'echo "$(id -u):$(id -g) $(id -un)"')
pid=$("${podman[@]}" inspect --format '{{.State.Pid}}' "$name")
host_uid=$(ps -o uid= -p "$pid" | tr -d ' ')
log "user: image $config_user; inside $inside; server process uid $host_uid"
if [ "${inside%% *}" != 10001:10001 ] || [ "$host_uid" != 10001 ]; then
    die "not running as uid 10001"
fi
"${podman[@]}" exec "$name" sh -c 'touch /var/lib/collab/search/.w /var/lib/collab/blobs/.w && rm /var/lib/collab/search/.w /var/lib/collab/blobs/.w' \
    || die "the user cannot write /var/lib/collab/{search,blobs}"

# The HEALTHCHECK, run now (without systemd podman has no timer to run it periodically).
"${podman[@]}" healthcheck run "$name" || die "the health check failed"
health=$("${podman[@]}" inspect --format '{{.State.Health.Status}}' "$name" 2>/dev/null \
    || "${podman[@]}" inspect --format '{{.State.Healthcheck.Status}}' "$name")
log "health check: $health"
[ "$health" = healthy ] || die "the health status is '$health'"

# ...and fails when nothing answers: the same image with the server replaced by `sleep`.
"${podman[@]}" run "${limits[@]}" -d --name "$name-idle" --network=host \
    -e COLLAB_LISTEN="127.0.0.1:$port" --entrypoint sleep "$IMAGE" 60 >/dev/null
"${podman[@]}" stop -t 10 "$name" >/dev/null
if "${podman[@]}" healthcheck run "$name-idle" >/dev/null; then
    die "the health check passed with no server"
fi
log "health check with no server: fails, as it should"
"${podman[@]}" rm -f -t 0 "$name-idle" >/dev/null

exit_code=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$name")
log "stopped (SIGTERM): exit code $exit_code"

size=$("${podman[@]}" image inspect --format '{{.Size}}' "$IMAGE")
base_size=$("${podman[@]}" image inspect --format '{{.Size}}' "$RUNTIME_BASE")
binary=$("${podman[@]}" run --rm "${limits[@]}" --no-healthcheck --entrypoint stat "$IMAGE" -c %s /usr/local/bin/collab)
log "image $IMAGE: $((size / 1000000)) MB ($size bytes; runtime base $((base_size / 1000000)) MB, collab binary $((binary / 1000000)) MB)"
printf 'ok: build %s s, /readyz 200, uid 10001, health check %s, image %s MB\n' \
    "$build_secs" "$health" "$((size / 1000000))"
