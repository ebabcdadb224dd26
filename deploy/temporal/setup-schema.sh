#!/bin/sh
# Creates the Temporal server's two PostgreSQL databases and brings their schemas up to the
# version this admin-tools image ships. Runs before the server on every `docker compose up`,
# so each step must be a no-op on a database that is already set up.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS (the PostgreSQL host) must be set}"
: "${POSTGRES_USER:?POSTGRES_USER must be set}"
: "${SQL_PASSWORD:?SQL_PASSWORD must be set}"
port="${DB_PORT:-5432}"
schemas=/etc/temporal/schema/postgresql/v12

# temporal-sql-tool reads the password from SQL_PASSWORD.
sql() { temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$port" -u "$POSTGRES_USER" --db "$database" "$@"; }

for database in temporal temporal_visibility; do
  case "$database" in
    temporal) versioned="$schemas/temporal/versioned" ;;
    *) versioned="$schemas/visibility/versioned" ;;
  esac
  # `create` fails when the database exists (a restart); an unreachable server fails the
  # setup-schema step right after, so nothing real is hidden by going on here.
  sql create || echo "setup-schema: database $database exists"
  # setup-schema -v 0.0 leaves a newer schema as it is; update-schema applies only what is missing.
  sql setup-schema -v 0.0
  sql update-schema -d "$versioned"
done
echo "setup-schema: done"
