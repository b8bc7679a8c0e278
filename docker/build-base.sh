#!/usr/bin/env bash
# Build a minimal Debian bookworm base image with python3, from Debian's archive alone.
#
# For machines that can reach Debian's package archive but no container registry: the root
# file system comes from debootstrap and is imported with `docker import`. With registry
# access, skip this and build the job image FROM an official Python image instead.
#
#   docker/build-base.sh TAG
set -euo pipefail

tag=${1:?usage: build-base.sh TAG}
# python3-venv brings ensurepip (the job image's venv needs pip); ca-certificates lets pip
# and the jobs verify TLS with Debian's bundle.
packages=python3,python3-venv,ca-certificates

if ! command -v debootstrap >/dev/null 2>&1; then
    echo "build-base: debootstrap is missing; installing it with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
fi

root=$(mktemp -d /var/tmp/taskscheduler-base.XXXXXX)
trap 'rm -rf "$root"' EXIT

echo "build-base: debootstrap bookworm into $root (a few minutes)" >&2
# Debian's default mirror; set DEBOOTSTRAP_MIRROR to use another one.
debootstrap --variant=minbase --include="$packages" bookworm "$root" ${DEBOOTSTRAP_MIRROR:-} >&2

# What a container never needs: downloaded packages, package lists, docs, man pages.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*

tar -C "$root" --numeric-owner -c . \
    | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$tag" >&2
echo "build-base: imported $tag" >&2
