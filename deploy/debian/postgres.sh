#!/bin/sh
# PostgreSQL for compose.debian.yaml, from Debian's postgresql package (the stack image
# scripts/image --stack makes): what the postgres:16 image's entrypoint does, in short.
# On first start: a cluster owned by postgres, password auth over TCP (POSTGRES_PASSWORD),
# the monolith's database `shop` and the init SQL (the services' databases). Then the
# server runs in the foreground as PID 1's exec, so SIGTERM reaches it; arguments after
# the script (-c wal_level=logical ...) go to postgres.
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
data=/var/lib/postgresql/data
export PGHOST=/run/postgresql PGPORT=5432  # not the port pg_wrapper guesses
as_postgres() { setpriv --reuid postgres --regid postgres --init-groups -- "$@"; }
install -d -o postgres -g postgres -m 2775 /run/postgresql
if [ ! -s "$data/PG_VERSION" ]; then
    install -d -o postgres -g postgres -m 700 "$data"
    printf '%s\n' "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" >/run/postgresql/pw
    chown postgres /run/postgresql/pw
    as_postgres "$bin/initdb" -D "$data" -U postgres --pwfile=/run/postgresql/pw \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f /run/postgresql/pw
    echo "host all all all scram-sha-256" >>"$data/pg_hba.conf"
    as_postgres "$bin/pg_ctl" -D "$data" -o "-c listen_addresses=''" -w start >/dev/null
    as_postgres psql -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE ${POSTGRES_DB:-shop}"
    for sql in /docker-entrypoint-initdb.d/*.sql; do
        [ -e "$sql" ] && as_postgres psql -q -v ON_ERROR_STOP=1 -f "$sql"
    done
    as_postgres "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
fi
exec setpriv --reuid postgres --regid postgres --init-groups -- \
    "$bin/postgres" -D "$data" -p 5432 -c listen_addresses='*' "$@"
