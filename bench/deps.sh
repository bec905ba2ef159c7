#!/bin/sh
# The benchmarks' tools and peers are the `bench` set of scripts/deps.sh, the one dependency
# script (service starts refused during the install, services disabled at boot).
exec sh "$(dirname "$0")/../scripts/deps.sh" bench
