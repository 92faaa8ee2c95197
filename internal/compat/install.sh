#!/usr/bin/env bash
# Installs the real clients the compatibility suite drives through pgveil:
# psql and pgbench (PostgreSQL), pgcli, PgJDBC and a JDK, Python's psycopg2,
# psycopg 3, SQLAlchemy, pandas, asyncpg and pyodbc (Debian's, for
# /usr/bin/python3), psqlODBC and unixODBC, and Node.js with the npm
# packages of testdata/node (npm ci).
#
# Idempotent: installs only what is missing; runs `apt-get update` once,
# and only when something has to be installed. Used by `make compat` and
# by .ci/run before `make test`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

export DEBIAN_FRONTEND=noninteractive

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	sudo=(sudo)
fi

# have_pg_bin NAME: a PostgreSQL client program in a versioned bin directory
# or on PATH.
have_pg_bin() {
	local f
	for f in /usr/lib/postgresql/*/bin/"$1"; do
		[ -x "$f" ] && return 0
	done
	command -v "$1" >/dev/null 2>&1
}

# have_py MODULE: Debian's python3 imports MODULE.
have_py() {
	[ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import $1" >/dev/null 2>&1
}

missing=()
have_pg_bin psql || missing+=(postgresql-client)
# pgbench ships with the server package (postgresql-15), not postgresql-contrib.
have_pg_bin pgbench || missing+=(postgresql)
[ -x /usr/bin/python3 ] || missing+=(python3)
have_py psycopg2 || missing+=(python3-psycopg2)
have_py psycopg || missing+=(python3-psycopg)
have_py sqlalchemy || missing+=(python3-sqlalchemy)
have_py pandas || missing+=(python3-pandas)
have_py asyncpg || missing+=(python3-asyncpg)
have_py pyodbc || missing+=(python3-pyodbc)
# psqlODBC's Unicode driver, in the directory of the machine's
# architecture; unixODBC's driver manager and isql.
compgen -G '/usr/lib/*/odbc/psqlodbcw.so' >/dev/null || missing+=(odbc-postgresql)
command -v isql >/dev/null 2>&1 || missing+=(unixodbc)
command -v pgcli >/dev/null 2>&1 || missing+=(pgcli)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
[ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)

if [ "${#missing[@]}" -gt 0 ]; then
	echo "compat/install.sh: installing ${missing[*]}"
	"${sudo[@]}" apt-get update -q
	"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# node-postgres, pg-cursor and postgres.js, pinned by package-lock.json. Reinstalled only
# when the lock file changed since the last install.
cd testdata/node
stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
	npm ci --no-audit --no-fund --loglevel=error
fi
