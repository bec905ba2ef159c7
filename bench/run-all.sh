#!/bin/sh
# Runs every benchmark in bench/ against a build (`make bench` calls this with its build dir).
# Markdown goes to stdout, progress to stderr, JSON to bench/results/ (kept out of git: the
# figures that matter are written up in docs/BENCHMARKS.md).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$(dirname "$here")/build}

/usr/bin/python3 "$here/agent-core" --build "$build"
echo
/usr/bin/python3 "$here/fanout" --build "$build"
echo
/usr/bin/python3 "$here/agent-footprint" --build "$build"
echo
/usr/bin/python3 "$here/cli-latency" --build "$build"
echo
/usr/bin/python3 "$here/hub-auth" --build "$build"
echo
/usr/bin/python3 "$here/hub-idle" --build "$build"
echo
/usr/bin/python3 "$here/scale" --build "$build"
echo
/usr/bin/python3 "$here/zk-fanout" --build "$build"
echo
/usr/bin/python3 "$here/query-hold" --build "$build" --hosts 300
echo
/usr/bin/python3 "$here/console-hosts" --build "$build"
