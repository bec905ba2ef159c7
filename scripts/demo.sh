#!/bin/sh
# make demo: start an agent with a private state directory on loopback and show a few calls
# to its local API. Everything lives under ./demo-state and is stopped at the end.
set -eu
BUILD=${1:-build}
TOP=$(cd "$(dirname "$0")/.." && pwd)
STATE="$TOP/demo-state"
PORT=${OUTPOST_DEMO_PORT:-17070}
AGENT="$BUILD/src/agent/outpost-agent"

rm -rf "$STATE"
mkdir -p "$STATE/agent" "$STATE/files"
cat > "$STATE/agent.conf" <<CONF
{
  // The demo agent: loopback only, a private state directory, no unix socket.
  "listen": "127.0.0.1:$PORT",
  "socket": "",
  "state_dir": "$STATE/agent",
  "plugin_dir": "$STATE/plugins",
  "plugins": {"file": {"roots": ["$STATE/files"]}}
}
CONF

"$AGENT" --config "$STATE/agent.conf" --foreground 2>"$STATE/agent.log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 50); do
	curl -sf "http://127.0.0.1:$PORT/v1/health" >/dev/null 2>&1 && break
	sleep 0.1
done

call() {
	printf '\n$ curl -d %s http://127.0.0.1:%s/v1/%s\n' "'$2'" "$PORT" "$1"
	curl -s -d "$2" "http://127.0.0.1:$PORT/v1/$1" | python3 -m json.tool 2>/dev/null ||
		curl -s -d "$2" "http://127.0.0.1:$PORT/v1/$1"
}

echo "outpost-agent $("$AGENT" --version | cut -d' ' -f2) is running on 127.0.0.1:$PORT (pid $PID)"
call sys/ping '{}'
call sys/facts '{"args":{"only":["host","os","kernel","cpu","memory"]}}'
call exec/run '{"args":{"argv":["uname","-srm"]},"id":"demo-1"}'
echo "   (the same id again is a replay: the command does not run twice)"
call exec/run '{"args":{"argv":["uname","-srm"]},"id":"demo-1"}'
call file/put "{\"args\":{\"path\":\"$STATE/files/motd\",\"content\":\"managed by outpost\\n\"}}"
call file/get "{\"args\":{\"path\":\"$STATE/files/../agent.conf\"}}"
call nope/x '{}'
printf '\n$ curl http://127.0.0.1:%s/metrics | head -12\n' "$PORT"
curl -s "http://127.0.0.1:$PORT/metrics" | head -12
echo
echo "Agent log: $STATE/agent.log. Every op and its arguments: GET /v1/plugins; docs/plugins/."
