#!/usr/bin/env bash
# Entrypoint of the local PostgreSQL image: the part of the official image's
# docker-entrypoint.sh that a compose file relies on.
#   POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER
#   (default postgres), POSTGRES_DB (default POSTGRES_USER), POSTGRES_INITDB_ARGS,
#   POSTGRES_HOST_AUTH_METHOD (default scram-sha-256, the server's password_encryption).
# On the first start (no PG_VERSION in PGDATA) it runs initdb, sets listen_addresses = '*',
# allows password logins from any host, creates POSTGRES_DB and runs
# /docker-entrypoint-initdb.d/*.sql and *.sh; later starts keep the data as it is. The server
# runs as postgres, as PID 1 (signals reach it directly).
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi

if [ "$1" != 'postgres' ]; then
  exec "$@"
fi

if [ "$(id -u)" = '0' ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  chmod 3777 /var/run/postgresql
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

log() { echo "entrypoint: $*"; }

if [ -s "$PGDATA/PG_VERSION" ]; then
  log "database directory $PGDATA holds a PostgreSQL $(cat "$PGDATA/PG_VERSION") database; skipping initialization"
else
  POSTGRES_USER="${POSTGRES_USER:-postgres}"
  POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
  POSTGRES_HOST_AUTH_METHOD="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != 'trust' ]; then
    echo 'error: the database is uninitialized and POSTGRES_PASSWORD is not set' >&2
    echo '       (set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust to allow any login)' >&2
    exit 1
  fi
  log "initializing $PGDATA (user ${POSTGRES_USER}, database ${POSTGRES_DB})"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
      ${POSTGRES_INITDB_ARGS:-} >/dev/null
  else
    initdb --username="$POSTGRES_USER" ${POSTGRES_INITDB_ARGS:-} >/dev/null
  fi
  # initdb trusts local socket and loopback logins (as in the official image); every other
  # host logs in with its password.
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

  # A temporary server on a private socket only: neither the network nor a healthcheck's
  # pg_isready sees a half-made database.
  PGHOST="$(mktemp -d)"
  export PGHOST
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=${PGHOST}" start >/dev/null
  psql_cmd=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --no-password)
  if [ "$POSTGRES_DB" != 'postgres' ]; then
    "${psql_cmd[@]}" --dbname postgres --set db="$POSTGRES_DB" -q <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        log "running $f"
        # shellcheck disable=SC1090 # the scripts of the mounted directory
        . "$f"
        ;;
      *.sql) log "running $f"; "${psql_cmd[@]}" --dbname "$POSTGRES_DB" -q -f "$f" ;;
      *) if [ -e "$f" ]; then log "ignoring $f"; fi ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  rmdir "$PGHOST"
  unset PGHOST
  log 'initialization complete; starting the server'
fi

exec "$@"
