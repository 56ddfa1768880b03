#!/usr/bin/env bash
# `docker compose up`, end to end, on a machine that cannot pull images: builds local base
# images from Debian packages (debootstrap + `docker import`) for Node.js
# (scripts/make-local-node-base.sh) and for PostgreSQL (scripts/compose-smoke/, a stand-in for
# the official postgres image; PostgreSQL 17 by default, as no reachable Debian suite carries 16
# — see the header of scripts/compose-smoke/make-local-postgres-base.sh), then runs the real
# docker-compose.yml with the image overrides of scripts/compose-smoke/docker-compose.local.yml:
# waits for both healthchecks, creates a product, a token and a key through the API, stops the
# stack, `down` (volumes kept), `up` again, and reads the key back from the named volume.
# Ends with COMPOSE SMOKE OK; any failure exits non-zero. The stack runs under a project name of
# its own and is removed with its volumes on exit. Not part of CI (no Docker engine there).
#   NODE_IMAGE      Node base (default keymint-node-base:20, made if missing)
#   SMOKE_PG_IMAGE  PostgreSQL image (default keymint-postgres:local, made or refreshed)
#   PORT            host port of the server (default 3998)
set -euo pipefail
cd "$(dirname "$0")/.."
export NODE_IMAGE="${NODE_IMAGE:-keymint-node-base:20}"
export SMOKE_PG_IMAGE="${SMOKE_PG_IMAGE:-keymint-postgres:local}"
export SMOKE_KEYMINT_IMAGE="${SMOKE_KEYMINT_IMAGE:-keymint-server:compose-smoke}"
export PORT="${PORT:-3998}"
# Read by the compose file (${ADMIN_TOKEN:-}); the environment wins over a .env file.
ADMIN_TOKEN="compose-smoke-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export ADMIN_TOKEN
PROJECT="keymint-smoke-$(date +%s)-$$"
OVERRIDE=scripts/compose-smoke/docker-compose.local.yml
BASE="http://127.0.0.1:${PORT}"
WORK="$(mktemp -d)"
ANON_VOLUMES=()

step() { echo "== $*"; }
say() { echo "   $*"; }
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null; then
  COMPOSE=(docker-compose)
else
  fail 'neither docker compose (v2) nor docker-compose (v1) is installed'
fi
dc() { "${COMPOSE[@]}" --project-name "$PROJECT" -f docker-compose.yml -f "$OVERRIDE" "$@"; }

cleanup() {
  local rc=$?
  trap - EXIT
  if [ "$rc" -ne 0 ]; then
    echo "-- last log lines (exit ${rc})"
    dc logs --no-color --tail=30 2>&1 || true
  fi
  echo "== cleanup: ${COMPOSE[*]} down -v (project ${PROJECT})"
  dc down -v --remove-orphans >/dev/null 2>&1 || true
  # The image's VOLUME /data: an anonymous volume per container, which `down -v` only removes
  # for the containers it removes itself.
  for v in "${ANON_VOLUMES[@]}"; do docker volume rm "$v" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "FAIL: line ${LINENO}: ${BASH_COMMAND}" >&2' ERR

container() { dc ps -a -q "$1"; }

wait_healthy() {
  local service=$1 id status
  id=$(container "$service")
  [ -n "$id" ] || fail "no container for ${service}"
  for _ in $(seq 1 180); do
    status=$(docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")
    case "$status" in
      running/healthy) say "${service}: healthy"; return 0 ;;
      exited/* | dead/* | restarting/*) fail "${service} stopped: ${status}" ;;
    esac
    sleep 1
  done
  fail "${service} not healthy after 180 s (${status})"
}

remember_anonymous_volumes() {
  local id
  id=$(container keymint)
  [ -n "$id" ] || return 0
  while read -r name; do
    if [ -n "$name" ]; then ANON_VOLUMES+=("$name"); fi
  done < <(docker inspect -f '{{range .Mounts}}{{if eq .Type "volume"}}{{if eq .Destination "/data"}}{{.Name}}{{"\n"}}{{end}}{{end}}{{end}}' "$id")
}

# api METHOD PATH TOKEN [BODY]: the answer's body; fails on anything but a 200 or 201.
api() {
  local method=$1 path=$2 token=$3 body=${4:-} code
  local args=(-sS -o "$WORK/body" -w '%{http_code}' -X "$method" -H "Authorization: Bearer ${token}")
  if [ -n "$body" ]; then args+=(-H 'Content-Type: application/json' -d "$body"); fi
  code=$(curl "${args[@]}" "${BASE}${path}") || fail "${method} ${path}: no answer"
  [ "$code" = 200 ] || [ "$code" = 201 ] || fail "${method} ${path} -> ${code} $(cat "$WORK/body")"
  cat "$WORK/body"
}
# json PATH: one field of the JSON document on stdin (a.b.c); fails when it is missing.
json() {
  # shellcheck disable=SC2016 # JavaScript, not shell
  node -e '
    let s = "";
    process.stdin.on("data", (d) => (s += d)).on("end", () => {
      let v;
      try { v = process.argv[1].split(".").reduce((o, k) => o?.[k], JSON.parse(s)); } catch {}
      if (v === undefined) { console.error(`no ${process.argv[1]} in: ${s}`); process.exit(1); }
      console.log(typeof v === "object" ? JSON.stringify(v) : v);
    })' "$1"
}

step "base images (Debian packages, docker import)"
if docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
  say "node:     ${NODE_IMAGE} (present; scripts/make-local-node-base.sh rebuilds it)"
else
  scripts/make-local-node-base.sh "$NODE_IMAGE" >"$WORK/node-base.log" 2>&1 \
    || { tail -n 30 "$WORK/node-base.log"; fail "making ${NODE_IMAGE}"; }
  say "node:     ${NODE_IMAGE} (made)"
fi
say "          $(docker run --rm "$NODE_IMAGE" node --version)"
scripts/compose-smoke/make-local-postgres-base.sh "$SMOKE_PG_IMAGE" >"$WORK/pg-base.log" 2>&1 \
  || { tail -n 30 "$WORK/pg-base.log"; fail "making ${SMOKE_PG_IMAGE}"; }
say "postgres: $(tail -n 1 "$WORK/pg-base.log")"

step "compose: $("${COMPOSE[@]}" version 2>/dev/null | head -n 1)"
say "files: docker-compose.yml + ${OVERRIDE}; project ${PROJECT}"
dc config -q || fail 'compose config'

step "build keymint (NODE_IMAGE=${NODE_IMAGE})"
dc build keymint >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log"; fail 'build'; }
say "$(docker image ls "$SMOKE_KEYMINT_IMAGE" --format 'image {{.Repository}}:{{.Tag}} {{.Size}}')"

step "up #1"
dc up -d 2>&1 | sed 's/^/   /'
wait_healthy postgres
wait_healthy keymint
remember_anonymous_volumes
PG_ID=$(container postgres)
say "postgres: $(dc exec -T postgres psql -U keymint -d keymint -Atc 'show server_version') as $(dc exec -T postgres stat -c %U /proc/1)" \
  "(PID 1), data $(dc exec -T postgres printenv PGDATA)"
say "keymint:  uid $(dc exec -T keymint id -u), readyz $(curl -sS "$BASE/readyz")"
NETWORK=$(docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}' "$PG_ID")
if docker run --rm --network "$NETWORK" -e PGPASSWORD=wrong-password "$SMOKE_PG_IMAGE" \
  psql -h postgres -U keymint -d keymint -Atc 'select 1' >"$WORK/psql.log" 2>&1; then
  fail 'postgres accepted a wrong password from the network'
fi
grep -q 'password authentication failed' "$WORK/psql.log" || fail "wrong password: $(cat "$WORK/psql.log")"
say "network login with a wrong password: refused ($(grep -o 'password authentication failed.*' "$WORK/psql.log" | head -n 1))"

step "admin API: product, token, key"
PRODUCT_ID=$(api POST /admin/products "$ADMIN_TOKEN" '{"name":"Compose smoke"}' | json id)
TOKEN=$(api POST /admin/tokens "$ADMIN_TOKEN" '{"name":"compose-smoke"}' | json token)
CREATED=$(api POST /create-key "$TOKEN" \
  "{\"productId\":\"${PRODUCT_ID}\",\"usesPerKey\":\"3\",\"newCustomer\":{\"name\":\"Compose Smoke\",\"email\":\"smoke@example.com\"}}")
KEY=$(echo "$CREATED" | json key)
say "product ${PRODUCT_ID}"
say "POST /create-key -> ${CREATED}"
BEFORE=$(api GET "/key?productId=${PRODUCT_ID}&licenseKey=${KEY}" "$TOKEN")
LICENSE_ID=$(echo "$BEFORE" | json data.license.id)
say "GET /key -> license ${LICENSE_ID}, customer $(echo "$BEFORE" | json data.customer.email)"

step "${COMPOSE[*]} stop"
dc stop 2>&1 | sed 's/^/   /'
KEYMINT_ID=$(container keymint)
for pair in "postgres:${PG_ID}" "keymint:${KEYMINT_ID}"; do
  code=$(docker inspect -f '{{.State.ExitCode}}' "${pair#*:}")
  say "${pair%%:*} exit code ${code}"
  [ "$code" = 0 ] || fail "${pair%%:*} exited with ${code}"
done
LOGS=$(docker logs "$PG_ID" 2>&1)
grep -q 'database system is shut down' <<<"$LOGS" || fail 'postgres did not shut down cleanly'
say "postgres: $(grep -E 'shutdown request|database system is shut down' <<<"$LOGS" | sed -E 's/^.*(LOG): +//' | paste -sd ';' | sed 's/;/; /g')"

step "${COMPOSE[*]} down (volumes kept)"
dc down 2>&1 | sed 's/^/   /'
[ -z "$(dc ps -a -q)" ] || fail 'containers left after down'
VOLUME=$(docker volume ls -q --filter "name=${PROJECT}" | grep 'pgdata$') || fail 'the pgdata volume is gone'
say "volume ${VOLUME} kept"

step "up #2"
dc up -d 2>&1 | sed 's/^/   /'
wait_healthy postgres
wait_healthy keymint
remember_anonymous_volumes
PG_ID=$(container postgres)
LOGS=$(docker logs "$PG_ID" 2>&1)
grep -q 'skipping initialization' <<<"$LOGS" || fail 'postgres initialized the volume again'
if grep -q 'not properly shut down' <<<"$LOGS"; then fail 'postgres recovered from a crash'; fi
say "postgres: $(grep -m1 'skipping initialization' <<<"$LOGS" | sed 's/^entrypoint: //')"
say "postgres: $(grep -m1 'database system was shut down at' <<<"$LOGS" | sed -E 's/^.*(LOG): +//')"

step "read the key back"
AFTER=$(api GET "/key?productId=${PRODUCT_ID}&licenseKey=${KEY}" "$TOKEN")
say "GET /key -> ${AFTER}"
[ "$(echo "$AFTER" | json data.license.id)" = "$LICENSE_ID" ] || fail 'another license after the restart'
[ "$(echo "$AFTER" | json data.license.key)" = "$KEY" ] || fail 'another key after the restart'
[ "$(echo "$AFTER" | json data.customer.email)" = smoke@example.com ] || fail 'the customer is gone'

step "SIGTERM to postgres (clean smart shutdown)"
dc stop keymint 2>&1 | sed 's/^/   /'
docker update --restart=no "$PG_ID" >/dev/null
docker kill -s TERM "$PG_ID" >/dev/null
code=$(timeout 60 docker wait "$PG_ID") || fail 'postgres did not exit within 60 s of SIGTERM'
[ "$code" = 0 ] || fail "postgres exited with ${code} on SIGTERM"
LOGS=$(docker logs "$PG_ID" 2>&1)
grep -q 'database system is shut down' <<<"$(tail -n 5 <<<"$LOGS")" || fail 'no clean shutdown on SIGTERM'
say "postgres exit code ${code}: $(grep 'smart shutdown request' <<<"$LOGS" | tail -n 1 | sed -E 's/^.*(LOG): +//'), database system is shut down"

echo "COMPOSE SMOKE OK"
