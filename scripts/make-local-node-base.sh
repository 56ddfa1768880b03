#!/usr/bin/env bash
# Builds a local Docker base image with Node.js for machines that cannot pull from a registry:
# a minimal Debian root filesystem (debootstrap) plus this machine's Node.js and npm, imported
# with `docker import`. Usage: scripts/make-local-node-base.sh [image-name]
set -euo pipefail
IMAGE="${1:-keymint-node-base:20}"
ROOTFS="${ROOTFS:-/tmp/keymint-rootfs}"
NODE_BIN="$(readlink -f "$(command -v node)")"
NPM_DIR="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"

if [ ! -x "$ROOTFS/bin/sh" ]; then
  command -v debootstrap >/dev/null || apt-get install -y debootstrap
  debootstrap --variant=minbase bookworm "$ROOTFS" http://deb.debian.org/debian
fi
install -m 0755 "$NODE_BIN" "$ROOTFS/usr/local/bin/node"
mkdir -p "$ROOTFS/usr/local/lib/node_modules"
rm -rf "$ROOTFS/usr/local/lib/node_modules/npm"
cp -a "$NPM_DIR" "$ROOTFS/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
# The host's trust store: npm ci inside the build reaches the registry through the same
# TLS-intercepting proxies (if any) as the host does.
mkdir -p "$ROOTFS/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
chroot "$ROOTFS" /usr/local/bin/node --version
tar -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["node"]' - "$IMAGE"
echo "built $IMAGE"
