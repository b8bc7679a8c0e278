#!/bin/sh
# The part of the official postgres image's entrypoint that docker-compose.yml relies on: on an
# empty data directory, create the cluster with POSTGRES_USER / POSTGRES_PASSWORD and the
# database POSTGRES_DB; then run the server (password authentication for every network peer).
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        echo "CREATE DATABASE \"$db\" OWNER \"$user\"" \
            | postgres --single -D "$PGDATA" postgres >/dev/null
    fi
    echo "postgres-entrypoint: initialised $PGDATA (user $user, database $db)"
fi
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- postgres -c listen_addresses='*' "$@"
fi
exec "$@"
