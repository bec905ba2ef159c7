#!/bin/sh
# make demo: a hub and 3 agents enrolled to it, all on loopback with private state under
# ./demo-state; runs a few commands across the fleet with the outpost CLI, then (on a
# terminal) keeps everything up until Ctrl-C so you can try your own.
set -eu
BUILD=${1:-build}
TOP=$(cd "$(dirname "$0")/.." && pwd)
STATE="$TOP/demo-state"
HUB_PORT=${OUTPOST_DEMO_PORT:-17443}
HUB="$BUILD/src/hub/outpost-hub"
AGENT="$BUILD/src/agent/outpost-agent"
CLI="$BUILD/src/cli/outpost"
PIDS=""

stop() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 130' INT TERM

rm -rf "$STATE"
mkdir -p "$STATE"
cat > "$STATE/hub.conf" <<CONF
{
  // The demo hub: HTTPS on loopback with its own self-signed certificate.
  "listen": "127.0.0.1:$HUB_PORT",
  "state_dir": "$STATE/hub",
  "agents": {"beat_ms": 2000}
}
CONF
"$HUB" --config "$STATE/hub.conf" --foreground 2>"$STATE/hub.log" &
PIDS="$PIDS $!"
for _ in $(seq 1 100); do
	[ -s "$STATE/hub/admin.token" ] && [ -s "$STATE/hub/hub.crt" ] && break
	sleep 0.1
done
export OUTPOST_HUB="https://127.0.0.1:$HUB_PORT"
export OUTPOST_TOKEN="$(cat "$STATE/hub/admin.token")"
export OUTPOST_CA="$STATE/hub/hub.crt"
echo "== outpost-hub on $OUTPOST_HUB"
grep -E "signing key|TLS certificate" "$STATE/hub.log" | sed 's/^.*hub: /   /'

ENROLL=$("$CLI" token create --enroll --ttl 1h --labels role=web --json |
	python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("token") or d["result"]["token"])')
echo "== enrollment token made with: outpost token create --enroll --ttl 1h --labels role=web"

for i in 1 2 3; do
	mkdir -p "$STATE/files$i"
	cat > "$STATE/agent$i.conf" <<CONF
{
  "listen": "127.0.0.1:$((HUB_PORT + 10 + i))",
  "socket": "",
  "state_dir": "$STATE/agent$i",
  "plugin_dir": "",
  "hub": {"url": "$OUTPOST_HUB", "token": "$ENROLL", "ca": "$OUTPOST_CA", "host_id": "web-$i"},
  "plugins": {"file": {"roots": ["$STATE/files$i"]},
              "metrics": {"interval_ms": 2000, "statsd_listen": "127.0.0.1:$((HUB_PORT + 20 + i))"}}
}
CONF
	"$AGENT" --config "$STATE/agent$i.conf" --foreground 2>"$STATE/agent$i.log" &
	PIDS="$PIDS $!"
done
for _ in $(seq 1 100); do
	n=$("$CLI" hosts ls --json 2>/dev/null | python3 -c 'import json,sys; print(sum(1 for h in json.load(sys.stdin) if h["state"]=="up"))' 2>/dev/null || echo 0)
	[ "$n" = 3 ] && break
	sleep 0.1
done

run() {
	printf '\n$ %s\n' "$*"
	"$@" || true
}
run "$CLI" hosts ls
run "$CLI" run -t '*' -- uname -srm
run "$CLI" run -t 'role=web and id!=web-2' -- sh -c 'echo "$(hostname): up $(cut -d. -f1 /proc/uptime) s"'
echo "managed by outpost" > "$STATE/motd"
run "$CLI" cp -t web-1 "$STATE/motd" "$STATE/files1/motd"
run "$CLI" call -t web-3 sys.ping
run "$CLI" run -t 'role=db' -- true
# The agents sample every 2 s here (10 s by default) and ship each sample to the hub.
sleep 5
run "$CLI" metrics latest host_load1
run "$CLI" metrics query host_cpu_percent '*' --match mode=user --from -1m --step 2s --agg avg

CONSOLE_TOKEN=$("$CLI" token create --operator --role admin --ttl 1d --json |
	python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("token") or d["result"]["token"])')

cat <<EOF2

== The web console: open $OUTPOST_HUB/console in a browser (the certificate is the hub's own,
   self-signed: accept it, or trust $OUTPOST_CA) and sign in with this admin token:
   $CONSOLE_TOKEN

== The fleet is up. In another terminal:
   export OUTPOST_HUB=$OUTPOST_HUB
   export OUTPOST_TOKEN=\$(cat $STATE/hub/admin.token)
   export OUTPOST_CA=$OUTPOST_CA
   $CLI run -t '*' -- uptime
   $CLI tasks ls
   $CLI metrics query host_memory_bytes web-1 --match kind=used --from -5m --chart
Logs: $STATE/*.log
EOF2
if [ -t 0 ] && [ -t 1 ]; then
	echo "Press Ctrl-C to stop the hub and the agents."
	while :; do sleep 3600; done
fi
