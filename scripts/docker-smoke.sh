#!/usr/bin/env bash
# Builds the Docker image and runs it against the host's PostgreSQL (host network): waits until
# it is ready and healthy, creates a product, a token and a key through it, reads the key back,
# then stops it. Not part of CI (no Docker engine there).
#   NODE_IMAGE   base image with Node 20 (default node:20-bookworm-slim; on a machine without
#                registry access build one with scripts/make-local-node-base.sh)
#   PG_URL       PostgreSQL server to use (default postgres://postgres@127.0.0.1:5432/postgres);
#                a database of its own is created and dropped.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_IMAGE="${NODE_IMAGE:-node:20-bookworm-slim}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PORT="${SMOKE_PORT:-3999}"
IMAGE=keymint-server:smoke
ADMIN_TOKEN="smoke-admin-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
DB="keymint_smoke_$(date +%s)"
DB_URL="${PG_URL%/*}/${DB}"
CONTAINER=""

cleanup() {
  [ -n "$CONTAINER" ] && docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
  psql "$PG_URL" -qc "drop database if exists ${DB} with (force)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== docker build (base ${NODE_IMAGE})"
docker build --build-arg "NODE_IMAGE=${NODE_IMAGE}" -t "$IMAGE" .
docker image ls "$IMAGE" --format '   image {{.Repository}}:{{.Tag}} {{.Size}}'

psql "$PG_URL" -qc "create database ${DB}"
echo "== docker run (host network, port ${PORT})"
CONTAINER=$(docker run -d --network host -e "DATABASE_URL=${DB_URL}" -e "ADMIN_TOKEN=${ADMIN_TOKEN}" \
  -e "PORT=${PORT}" "$IMAGE")
BASE="http://127.0.0.1:${PORT}"
for _ in $(seq 1 60); do
  curl -fs "$BASE/readyz" >/dev/null 2>&1 && break
  sleep 1
done
echo "   readyz: $(curl -s "$BASE/readyz")"
echo "   user:   $(docker exec "$CONTAINER" id -u)"

json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);console.log(process.argv[1].split(".").reduce((o,k)=>o[k],v))})' "$1"; }
auth=(-H "Authorization: Bearer ${ADMIN_TOKEN}" -H 'Content-Type: application/json')
PRODUCT_ID=$(curl -s -X POST "$BASE/admin/products" "${auth[@]}" -d '{"name":"Smoke product"}' | json id)
TOKEN=$(curl -s -X POST "$BASE/admin/tokens" "${auth[@]}" -d '{"name":"smoke"}' | json token)
echo "   product ${PRODUCT_ID}"
CREATED=$(curl -s -X POST "$BASE/create-key" -H "Authorization: Bearer ${TOKEN}" -H 'Content-Type: application/json' \
  -d "{\"productId\":\"${PRODUCT_ID}\",\"usesPerKey\":\"3\",\"newCustomer\":{\"name\":\"Smoke Test\",\"email\":\"smoke@example.com\"}}")
echo "   POST /create-key -> ${CREATED}"
KEY=$(echo "$CREATED" | json key)
echo "   GET /key -> $(curl -s "$BASE/key?productId=${PRODUCT_ID}&licenseKey=${KEY}" -H "Authorization: Bearer ${TOKEN}")"

for _ in $(seq 1 30); do
  HEALTH=$(docker inspect -f '{{.State.Health.Status}}' "$CONTAINER")
  [ "$HEALTH" != "starting" ] && break
  sleep 1
done
echo "   HEALTHCHECK: ${HEALTH}"
echo "== docker stop"
docker stop -t 15 "$CONTAINER" >/dev/null
echo "   exit code $(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER"); last log line:"
docker logs "$CONTAINER" 2>&1 | tail -n 1
[ "$HEALTH" = "healthy" ] && [ -n "$KEY" ] && echo "SMOKE OK"
