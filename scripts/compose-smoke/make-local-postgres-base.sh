#!/usr/bin/env bash
# Builds a local PostgreSQL image that stands in for the official `postgres` image on machines
# that cannot pull from a registry: a minimal Debian root filesystem (debootstrap) with Debian's
# PostgreSQL server package, imported with `docker import`, plus the entrypoint of this directory
# (POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, initdb on first start, password auth on the
# network, runs as postgres). Usage: scripts/compose-smoke/make-local-postgres-base.sh [image]
#
# Version: the compose file names PostgreSQL 16, but no suite on deb.debian.org carries it
# (bookworm and bookworm-security: 15; bookworm-backports: none; trixie: 17; sid: 18), and
# nothing else is reachable here. The default is the nearest newer one, 17 from trixie: every
# SQL feature of 16 is in 17, and the test suite already runs on 15 (the CI's cluster), so the
# two bracket 16. PG_SUITE / PG_MAJOR choose another (e.g. PG_SUITE=bookworm PG_MAJOR=15).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PG_SUITE="${PG_SUITE:-trixie}"
PG_MAJOR="${PG_MAJOR:-17}"
IMAGE="${1:-keymint-postgres:local}"
ROOTFS_IMAGE="keymint-postgres-rootfs:${PG_MAJOR}"
ROOTFS="${PG_ROOTFS:-/tmp/keymint-pg-rootfs-${PG_SUITE}}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ ! -x "$ROOTFS/usr/lib/postgresql/${PG_MAJOR}/bin/postgres" ]; then
  if [ ! -x "$ROOTFS/bin/sh" ]; then
    command -v debootstrap >/dev/null || apt-get install -y debootstrap
    debootstrap --variant=minbase "$PG_SUITE" "$ROOTFS" "$MIRROR"
  fi
  # No services start inside the chroot, and the package creates no cluster: the entrypoint
  # makes one in PGDATA on the first start of a container, like the official image.
  printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
  chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
  mkdir -p "$ROOTFS/etc/postgresql-common"
  echo 'create_main_cluster = false' >"$ROOTFS/etc/postgresql-common/createcluster.conf"
  chroot "$ROOTFS" apt-get update -q
  chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "postgresql-${PG_MAJOR}"
  chroot "$ROOTFS" apt-get clean
  rm -rf "$ROOTFS"/var/lib/apt/lists/*
fi
chroot "$ROOTFS" "/usr/lib/postgresql/${PG_MAJOR}/bin/postgres" --version

# The root filesystem only (docker import takes no STOPSIGNAL); the image's settings and its
# entrypoint come from the Dockerfile next to this script, so editing them needs no new rootfs.
if ! docker image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1 || [ -n "${PG_REIMPORT:-}" ]; then
  tar -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$ROOTFS_IMAGE"
fi
docker build -q --build-arg "BASE=${ROOTFS_IMAGE}" --build-arg "PG_MAJOR=${PG_MAJOR}" \
  -f "$HERE/postgres.Dockerfile" -t "$IMAGE" "$HERE" >/dev/null
echo "built $IMAGE ($(docker run --rm --entrypoint postgres "$IMAGE" --version))"
