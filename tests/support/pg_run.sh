#!/bin/sh
# Runs a command beside a private PostgreSQL: initdb in a temp dir, a server on a unix socket
# in that dir (no TCP), one database "outpost"; the command gets its libpq DSN in
# OUTPOST_TEST_PG_DSN, and the server is stopped and removed afterwards, whatever the command
# did. Nothing needs to run beforehand. When PostgreSQL cannot start, the command runs without
# the variable and OUTPOST_TEST_PG_SKIP says why (tests then skip with that reason).
# As root, initdb refuses to run: the server runs as the unprivileged "postgres" system user
# (Debian's package creates it), which owns the temp dir.
# Usage: pg_run.sh COMMAND [ARG...]
set -u

bindir=""
for d in /usr/lib/postgresql/*/bin; do
	[ -x "$d/initdb" ] && bindir="$d"
done
if [ -z "$bindir" ]; then
	OUTPOST_TEST_PG_SKIP="PostgreSQL server binaries not found (scripts/deps.sh installs postgresql)"
	export OUTPOST_TEST_PG_SKIP
	exec "$@"
fi

dir=$(mktemp -d /tmp/outpost-pg-XXXXXX) || exit 1
as=""
if [ "$(id -u)" -eq 0 ]; then
	chown postgres: "$dir" 2>/dev/null && as="runuser -u postgres --"
fi
chmod 700 "$dir"

stop() {
	$as "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1
	rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

started=0
# fsync off and no sync at initdb: a throwaway cluster; the tests test semantics, not disks.
if $as "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C --no-sync \
	>"$dir/initdb.log" 2>&1 &&
	$as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
		-o "-c listen_addresses='' -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
		start >/dev/null 2>&1 &&
	"$bindir/psql" -h "$dir" -U postgres -d postgres -qAt -c "CREATE DATABASE outpost" \
		>/dev/null 2>&1; then
	started=1
fi
if [ "$started" -eq 1 ]; then
	OUTPOST_TEST_PG_DSN="host=$dir user=postgres dbname=outpost"
	export OUTPOST_TEST_PG_DSN
else
	OUTPOST_TEST_PG_SKIP="PostgreSQL did not start: $(tail -n 3 "$dir"/*.log 2>/dev/null | tr '\n' ' ')"
	export OUTPOST_TEST_PG_SKIP
fi
"$@"
