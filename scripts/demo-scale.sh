#!/bin/sh
# make demo-scale: scale mode (docs/scale.md) on loopback with private state under
# ./demo-scale-state: a private ZooKeeper and PostgreSQL, two hubs sharing one signing key and
# one certificate, and 3 agents with hub.mode "zookeeper"; runs the commands of `make demo`
# through either hub with the outpost CLI, then stops everything.
# Needs the zookeeper and postgresql packages (sh scripts/deps.sh test).
set -eu
BUILD=${1:-build}
TOP=$(cd "$(dirname "$0")/.." && pwd)
STATE=${OUTPOST_DEMO_STATE:-"$TOP/demo-scale-state"}
PORT=${OUTPOST_DEMO_PORT:-17543}
ZK_PORT=$((PORT + 2))
HUB="$BUILD/src/hub/outpost-hub"
AGENT="$BUILD/src/agent/outpost-agent"
CLI="$BUILD/src/cli/outpost"
ZK_JAR=/usr/share/java/zookeeper.jar
PIDS=""
PG=""

stop() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	[ -z "$PG" ] || sh "$TOP/tests/support/pg_run.sh" stop "$PG"
}
trap stop EXIT
trap 'exit 130' INT TERM

[ -r "$ZK_JAR" ] && command -v java >/dev/null || {
	echo "demo-scale: no ZooKeeper ($ZK_JAR, java): sh scripts/deps.sh test" >&2
	exit 1
}
rm -rf "$STATE"
mkdir -p "$STATE/zk/data"

# ZooKeeper: one standalone server, its own config (Debian's zkServer.sh reads /etc/zookeeper).
cat > "$STATE/zk/zoo.cfg" <<CONF
tickTime=1000
dataDir=$STATE/zk/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok
CONF
java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dzookeeper.log.dir="$STATE/zk" \
	-cp "$ZK_JAR" org.apache.zookeeper.server.quorum.QuorumPeerMain "$STATE/zk/zoo.cfg" \
	>"$STATE/zookeeper.log" 2>&1 &
PIDS="$PIDS $!"
ruok() {
	python3 -c 'import socket,sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
    s.sendall(b"ruok"); sys.exit(0 if s.recv(4) == b"imok" else 1)
except OSError:
    sys.exit(1)' "$ZK_PORT"
}
for _ in $(seq 1 300); do ruok && break; sleep 0.1; done
ruok || { echo "demo-scale: ZooKeeper did not start: $STATE/zookeeper.log" >&2; exit 1; }
echo "== ZooKeeper on 127.0.0.1:$ZK_PORT"

# PostgreSQL: a private server on a unix socket, as the tests use (no TCP at all).
PG=$(mktemp -d /tmp/outpost-demo-pg.XXXXXX)
DSN=$(sh "$TOP/tests/support/pg_run.sh" start "$PG") || {
	echo "demo-scale: PostgreSQL did not start (sh scripts/deps.sh test)" >&2
	exit 1
}
echo "== PostgreSQL: $DSN"

head -c 32 /dev/urandom | base64 > "$STATE/zk.secret"
chmod 600 "$STATE/zk.secret"
hub() { # hub NAME PORT: its config, then starts it
	cat > "$STATE/$1.conf" <<CONF
{
  // Scale mode: the shared store and ZooKeeper (docs/config.md#zookeeper).
  "listen": "127.0.0.1:$2",
  "state_dir": "$STATE/$1",
  "store": {"backend": "postgresql", "dsn": "$DSN"},
  "zk": {"connect": "127.0.0.1:$ZK_PORT", "secret_file": "$STATE/zk.secret",
         "session_timeout_ms": 6000, "hub_id": "$1"}
}
CONF
	"$HUB" --config "$STATE/$1.conf" --foreground 2>"$STATE/$1.log" &
	PIDS="$PIDS $!"
	for _ in $(seq 1 300); do
		[ -s "$STATE/$1/admin.token" ] && [ -s "$STATE/$1/hub.crt" ] &&
			grep -q "signing key" "$STATE/$1.log" && break
		sleep 0.1
	done
}
hub hub-a "$PORT"
# One fleet, one signing key and one certificate: the second hub gets copies before its
# first start (docs/config.md#zookeeper).
mkdir -m 700 "$STATE/hub-b"
for f in hub.key hub.crt hub-tls.key; do
	cp "$STATE/hub-a/$f" "$STATE/hub-b/$f"
	chmod 600 "$STATE/hub-b/$f"
done
hub hub-b $((PORT + 1))
HUB_A="https://127.0.0.1:$PORT"
HUB_B="https://127.0.0.1:$((PORT + 1))"
export OUTPOST_HUB="$HUB_A"
export OUTPOST_TOKEN="$(cat "$STATE/hub-a/admin.token")"
export OUTPOST_CA="$STATE/hub-a/hub.crt"
TOKEN_B="$(cat "$STATE/hub-b/admin.token")"
echo "== outpost-hub hub-a on $HUB_A and hub-b on $HUB_B, one signing key:"
grep -h "signing key" "$STATE/hub-a.log" "$STATE/hub-b.log" | sed 's/^.*hub: /   /'

ENROLL=$("$CLI" token create --enroll --ttl 1h --labels role=web --json |
	python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("token") or d["result"]["token"])')
echo "== enrollment token made with: outpost token create --enroll --ttl 1h --labels role=web"

for i in 1 2 3; do
	mkdir -p "$STATE/files$i"
	cat > "$STATE/agent$i.conf" <<CONF
{
  "listen": "127.0.0.1:$((PORT + 10 + i))",
  "socket": "",
  "state_dir": "$STATE/agent$i",
  "plugin_dir": "",
  "hub": {"mode": "zookeeper", "url": "$HUB_A", "token": "$ENROLL", "ca": "$OUTPOST_CA",
          "host_id": "web-$i"},
  "plugins": {"file": {"roots": ["$STATE/files$i"]},
              "metrics": {"interval_ms": 2000, "statsd_listen": "127.0.0.1:$((PORT + 20 + i))"}}
}
CONF
	"$AGENT" --config "$STATE/agent$i.conf" --foreground 2>"$STATE/agent$i.log" &
	PIDS="$PIDS $!"
done
# Up, and each on ZooKeeper (its alive node: the leading hub sees it).
for _ in $(seq 1 150); do
	n=$("$CLI" hosts ls --json 2>/dev/null | python3 -c 'import json,sys; print(sum(1 for h in json.load(sys.stdin) if h["state"]=="up"))' 2>/dev/null || echo 0)
	z=$(grep -l "ZooKeeper session" "$STATE"/agent?.log 2>/dev/null | wc -l)
	[ "$n" = 3 ] && [ "$z" = 3 ] && break
	sleep 0.1
done

run() {
	printf '\n$ %s\n' "$*"
	"$@" || true
}
run "$CLI" hosts ls
run "$CLI" run -t '*' -- uname -srm
echo
echo "== the same fleet through hub-b (OUTPOST_HUB=$HUB_B):"
run env OUTPOST_HUB="$HUB_B" OUTPOST_TOKEN="$TOKEN_B" "$CLI" run -t 'role=web and id!=web-2' -- sh -c 'echo "$(hostname): up $(cut -d. -f1 /proc/uptime) s"'
echo "managed by outpost" > "$STATE/motd"
run "$CLI" cp -t web-1 "$STATE/motd" "$STATE/files1/motd"
run env OUTPOST_HUB="$HUB_B" OUTPOST_TOKEN="$TOKEN_B" "$CLI" call -t web-3 sys.ping
run "$CLI" run -t 'role=db' -- true
run env OUTPOST_HUB="$HUB_B" OUTPOST_TOKEN="$TOKEN_B" "$CLI" tasks ls
# The agents sample every 2 s here (10 s by default) and ship each sample to a live hub.
sleep 5
run "$CLI" metrics latest host_load1
printf '\n== who leads: '
python3 -c 'import json,ssl,sys,urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
for u in sys.argv[2:]:
    z = json.load(urllib.request.urlopen(u + "/api/v1/health", context=ctx))["result"]["zk"]
    print("%s%s" % (z["hub_id"], " (leader)" if z["leader"] else ""), end="  ")
print()' "$OUTPOST_CA" "$HUB_A" "$HUB_B" || true
echo "== stopping the agents, the hubs, PostgreSQL and ZooKeeper. Logs: $STATE/*.log"
