#!/usr/bin/env bash
# Make the Docker pieces of the platform present, building or starting only what is missing.
#
#   docker/ensure.sh engine   start the Docker daemon when none answers (apt-get installs it
#                             when missing, as root)
#   docker/ensure.sh image    build the local base (debootstrap) and the job image unless an
#                             image for the current inputs exists; print the job image's tag
#   docker/ensure.sh local    build stand-ins for the postgres, redis and nginx images of
#                             docker-compose.yml from the local base (docker/local/); print
#                             POSTGRES_IMAGE=… REDIS_IMAGE=… PROXY_IMAGE=… lines
#   docker/ensure.sh all      engine and job image (what `make up` runs)
#   docker/ensure.sh test     all of the above (what `make test` runs)
#
# Images are tagged with a content hash of their inputs, so an unchanged checkout reuses them
# and any change to the code, the lock file or the Dockerfile builds a new one (the dependency
# layer is still reused by Docker's layer cache while uv.lock is unchanged).
#
# Environment: TASKS_BASE_IMAGE (use this base instead of the local Debian one, e.g. an
# official Python image), TASKS_STATE_DIR (where dockerd's log goes, default .run),
# DOCKER_START_TIMEOUT (seconds, default 60).
set -euo pipefail

cd "$(dirname "$0")/.."
state_dir=${TASKS_STATE_DIR:-.run}
export DOCKER_BUILDKIT=0 # the classic builder: no buildx plugin needed, same on every engine

log() { echo "docker/ensure: $*" >&2; }
answers() { docker info >/dev/null 2>&1; }

apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        log "cannot install $* here (needs root and apt-get); install it and retry"
        return 1
    fi
    log "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "$@" >&2
}

ensure_engine() {
    answers && return 0
    if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
        apt_install docker.io || return 1
        answers && return 0 # the package may have started it
    fi
    if [ "$(id -u)" != 0 ]; then
        log "no Docker daemon answers and only root can start one; start Docker and retry"
        return 1
    fi
    mkdir -p "$state_dir/logs"
    local daemon_log="$state_dir/logs/dockerd.log"
    log "no Docker daemon answers; starting dockerd (log: $daemon_log)"
    # No iptables and no default bridge: this kind of machine has no netfilter to manage, and
    # every container of the platform uses host networking or a compose network of its own.
    setsid dockerd --iptables=false --ip6tables=false --bridge=none \
        --storage-driver="${DOCKER_STORAGE_DRIVER:-overlay2}" \
        </dev/null >>"$daemon_log" 2>&1 &
    local deadline=$((SECONDS + ${DOCKER_START_TIMEOUT:-60}))
    until answers; do
        if [ $SECONDS -ge $deadline ] || ! kill -0 $! 2>/dev/null; then
            log "dockerd did not answer within ${DOCKER_START_TIMEOUT:-60} s; last lines of $daemon_log:"
            tail -n 20 "$daemon_log" >&2
            return 1
        fi
        sleep 0.5
    done
    log "dockerd is up"
}

# sha256 over the names and contents of the given files/folders (caches and bytecode excluded).
content_hash() {
    find "$@" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

ensure_base() {
    if [ -n "${TASKS_BASE_IMAGE:-}" ]; then
        echo "$TASKS_BASE_IMAGE"
        return
    fi
    local tag="taskscheduler-base:bookworm-$(content_hash docker/build-base.sh)"
    if ! have_image "$tag"; then
        docker/build-base.sh "$tag"
    fi
    echo "$tag"
}

ensure_image() {
    local base tag
    base=$(ensure_base)
    tag="taskscheduler:$( { echo "$base"; content_hash docker/Dockerfile .dockerignore \
        pyproject.toml uv.lock README.md src flows deployments; } | sha256sum | cut -c1-12)"
    if have_image "$tag"; then
        log "reusing $tag"
    else
        # The build fetches packages through pip/uv's normal clients; give it this machine's
        # CA bundle (registries behind a local CA verify too). Only the build stage reads it.
        mkdir -p docker/certs
        if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
            cp /etc/ssl/certs/ca-certificates.crt docker/certs/build-ca.crt
        fi
        log "building $tag from $base"
        # Host networking: this engine may have no bridge, and the build must reach the index.
        docker build --network host --build-arg "BASE_IMAGE=$base" \
            --label "io.taskscheduler.inputs=$tag" -f docker/Dockerfile -t "$tag" . >&2
        # Every change of the inputs leaves an image behind: drop those (and their build
        # stages) that no container uses and that are over a day old; recent ones may still
        # be the job image of another checkout's running platform.
        docker image prune --all --force --filter label=io.taskscheduler.inputs \
            --filter until=24h >/dev/null || true
        docker image prune --force --filter until=24h >/dev/null || true
    fi
    echo "$tag"
}

# A compose tool: the v2 plugin where there is one, else Debian's docker-compose (1.29).
ensure_compose() {
    docker compose version >/dev/null 2>&1 || docker-compose version >/dev/null 2>&1 \
        || apt_install docker-compose
}

# The compose stack's third-party services, built from Debian's packages on the local base.
ensure_local() {
    local base hash target tag
    base=$(ensure_base)
    hash=$( { echo "$base"; content_hash docker/local; } | sha256sum | cut -c1-12)
    for target in postgres redis proxy; do
        tag="taskscheduler-$target:$hash"
        if have_image "$tag"; then
            log "reusing $tag"
        else
            log "building $tag from $base"
            docker build --network host --build-arg "BASE_IMAGE=$base" --target "$target" \
                --label "io.taskscheduler.inputs=$tag" -f docker/local/Dockerfile -t "$tag" \
                docker/local >&2
        fi
        echo "$(echo "$target" | tr a-z A-Z)_IMAGE=$tag"
    done
}

case "${1:-all}" in
    engine) ensure_engine ;;
    base) ensure_engine && ensure_base ;;
    image) ensure_engine && ensure_image ;;
    local) ensure_engine && ensure_compose && ensure_local ;;
    all) ensure_engine && ensure_image ;;
    test) ensure_engine && ensure_compose && ensure_image >/dev/null && ensure_local >/dev/null ;;
    *) echo "usage: $0 [engine|base|image|local|all|test]" >&2; exit 2 ;;
esac
