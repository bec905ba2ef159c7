#!/bin/sh
# A private PostgreSQL for tests: initdb in a temp dir, a server on a unix socket in that dir
# (listen_addresses '': no TCP at all), one database "outpost". Nothing needs to run
# beforehand, and nothing is left behind.
#   pg_run.sh COMMAND [ARG...]  runs COMMAND with the libpq DSN in OUTPOST_TEST_PG_DSN, then
#                               stops and removes the server, whatever COMMAND did. When
#                               PostgreSQL cannot start, COMMAND runs without the variable and
#                               OUTPOST_TEST_PG_SKIP says why (the tests skip with that reason).
#   pg_run.sh start DIR         (DIR: a new empty dir, short: the socket lives in it) starts a
#                               server there and prints its DSN; exit 1 and the reason on
#                               stderr when it cannot.
#   pg_run.sh restart DIR       restarts it (clients lose their sessions: a failover).
#   pg_run.sh pause DIR         stops the server, keeping its data (a database that is down);
#   pg_run.sh resume DIR        starts it again.
#   pg_run.sh stop DIR          stops it and removes DIR.
# As root, initdb refuses to run: the server runs as the unprivileged "postgres" system user
# (Debian's postgresql package creates it), which then owns DIR.
set -u

bindir=""
for d in /usr/lib/postgresql/*/bin; do
	[ -x "$d/initdb" ] && bindir="$d"
done
as=""

pg_stop() {
	[ -n "$bindir" ] && [ -d "$1/data" ] &&
		$as "$bindir/pg_ctl" -D "$1/data" -m immediate -w stop >/dev/null 2>&1
	rm -rf "$1"
}

# Starts a server in $1; prints the reason on stderr and returns 1 when it cannot.
pg_start() {
	if [ -z "$bindir" ]; then
		echo "PostgreSQL server binaries not found (scripts/deps.sh installs postgresql)" >&2
		return 1
	fi
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$1" 2>/dev/null || {
			echo "no 'postgres' system user to run the server as" >&2
			return 1
		}
	fi
	chmod 700 "$1"
	# fsync off and no sync at initdb: a throwaway cluster; the tests test semantics.
	if ! $as "$bindir/initdb" -D "$1/data" -A trust -U postgres -E UTF8 --locale=C \
		--no-sync >"$1/initdb.log" 2>&1; then
		echo "initdb failed: $(tail -n 3 "$1/initdb.log" | tr '\n' ' ')" >&2
		return 1
	fi
	# In the cluster's own config, so that every start (restart, resume) uses it.
	printf "%s\n" "listen_addresses = ''" "unix_socket_directories = '$1'" "fsync = off" \
		"synchronous_commit = off" "full_page_writes = off" >>"$1/data/postgresql.conf"
	if ! $as "$bindir/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 30 start >/dev/null 2>&1; then
		echo "the server did not start: $(tail -n 3 "$1/server.log" | tr '\n' ' ')" >&2
		return 1
	fi
	"$bindir/psql" -h "$1" -U postgres -d postgres -qAt -c "CREATE DATABASE outpost" >/dev/null ||
		return 1
	echo "host=$1 user=postgres dbname=outpost"
}

[ "$(id -u)" -eq 0 ] && as="runuser -u postgres --"

case "${1:-}" in
start)
	pg_start "$2" || exit 1
	exit 0
	;;
restart)
	$as "$bindir/pg_ctl" -D "$2/data" -l "$2/server.log" -m fast -w -t 30 restart >/dev/null
	exit $?
	;;
pause)
	$as "$bindir/pg_ctl" -D "$2/data" -m fast -w -t 30 stop >/dev/null
	exit $?
	;;
resume)
	$as "$bindir/pg_ctl" -D "$2/data" -l "$2/server.log" -w -t 30 start >/dev/null
	exit $?
	;;
stop)
	pg_stop "$2"
	exit 0
	;;
esac

dir=$(mktemp -d /tmp/outpost-pg-XXXXXX) || exit 1
trap 'pg_stop "$dir"' EXIT
trap 'exit 130' INT TERM
if dsn=$(pg_start "$dir" 2>"$dir.why"); then
	OUTPOST_TEST_PG_DSN="$dsn"
	export OUTPOST_TEST_PG_DSN
else
	OUTPOST_TEST_PG_SKIP="PostgreSQL did not start: $(cat "$dir.why")"
	export OUTPOST_TEST_PG_SKIP
fi
rm -f "$dir.why"
"$@"
rc=$?
exit $rc
