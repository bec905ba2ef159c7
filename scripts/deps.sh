#!/bin/sh
# The one place that installs what Outpost needs, from Debian's packages, in three sets:
#   build  compile the binaries and the Debian packages   (make build, make asan, make deb)
#   test   run every unit, integration and package test   (make test: build + test)
#   bench  the benchmarks' tools and the peers they compare against (make bench)
# and, with the build set, the npm packages of package-lock.json (npm ci into node_modules/:
# uPlot, compiled into the hub for its web console; playwright-core, which drives Debian's
# chromium in the console's browser tests).
# Usage: scripts/deps.sh [build|test|bench]...   (no argument: build)
# Idempotent: apt-get runs only when a package is missing. Runs as root or via sudo.
# Nothing it installs starts a service: starts are refused during the install (policy-rc.d),
# and the services of packages it installed are disabled for the next boot.
#
# One package per line, in the set that first needs it, so parallel additions merge.
set -eu

BUILD="
build-essential
pkg-config
meson
ninja-build
clang-format
libmicrohttpd-dev
libgnutls28-dev
libjansson-dev
libsqlite3-dev
libsodium-dev
libcurl4-gnutls-dev
libyajl-dev
zlib1g-dev
libpq-dev
libre2-dev
libzookeeper-mt-dev
libprotobuf-c-dev
protobuf-c-compiler
libsnappy-dev
libvirt-dev
python3
dpkg-dev
nodejs
"

TEST="
libcmocka-dev
python3-pytest
python3-pytest-xdist
python3-requests
python3-nacl
sqlite3
curl
procps
lintian
groff-base
systemd
postgresql
zookeeper
python3-kazoo
python3-aiosmtpd
prometheus
clang
libclang-rt-14-dev
llvm
nftables
auditd
chromium
"

BENCH="
wrk
hyperfine
procps
curl
nginx-light
prometheus-node-exporter
clustershell
openssh-server
openssh-client
collectd-core
strace
chromium
python3-nacl
"

sets=${*:-build}
want=""
for s in $sets; do
	case "$s" in
	build) want="$want $BUILD" ;;
	test) want="$want $TEST" ;;
	bench) want="$want $BENCH" ;;
	*)
		echo "deps.sh: unknown set '$s' (use build, test or bench)" >&2
		exit 2
		;;
	esac
done

missing=""
for p in $want; do
	case " $missing " in *" $p "*) continue ;; esac
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
# npm ci when node_modules/ is not what package-lock.json says (a copy of the lock file is
# kept there as the mark of the last install): the build compiles uPlot into the hub.
npm_ci() {
	case " $sets " in *" build "*) ;; *) return 0 ;; esac
	root=$(cd "$(dirname "$0")/.." && pwd)
	cmp -s "$root/package-lock.json" "$root/node_modules/.outpost-lock" && return 0
	(cd "$root" && npm ci --no-audit --no-fund) &&
		cp "$root/package-lock.json" "$root/node_modules/.outpost-lock"
}
# Debian's nodejs comes without npm (a separate package); a node from elsewhere may bring its
# own, which Debian's npm would fight with.
command -v npm >/dev/null 2>&1 || missing_npm=1

if [ -z "$missing" ] && [ -z "${missing_npm:-}" ]; then
	npm_ci
	exit 0
fi
[ -n "${missing_npm:-}" ] && missing="$missing npm"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || {
		echo "deps.sh: need root or sudo to install:$missing" >&2
		exit 1
	}
	SUDO="sudo"
fi

# A build or test machine must not end up with prometheus on :9090, nginx on :80 or sshd on
# :22: invoke-rc.d (which every maintainer script uses to start its service, on systemd and
# sysvinit hosts alike) asks policy-rc.d first, and 101 means "refused". A host that has its
# own policy keeps it.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# scripts/deps.sh: no service starts while it installs\nexit 101\n' |
		$SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
	made_policy=1
fi
cleanup() {
	[ "$made_policy" = 1 ] && $SUDO rm -f "$policy"
	return 0
}
trap cleanup EXIT INT TERM

echo "deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing

# The packages also enabled their services for the next boot. Undo that for the packages this
# script installed (never for one that was already there): the tests and benchmarks start
# private instances on loopback ports and stop them again.
for p in $missing; do
	for name in $(dpkg-query -L "$p" 2>/dev/null |
		grep -E '^(/usr)?/lib/systemd/system/[^/]+\.service$|^/etc/init\.d/[^/]+$' |
		sed 's|.*/||; s|\.service$||' | sort -u); do
		case "$name" in *@) continue ;; esac
		$SUDO deb-systemd-helper disable "$name.service" >/dev/null 2>&1 || true
		if [ -e "/etc/init.d/$name" ]; then $SUDO update-rc.d "$name" disable >/dev/null 2>&1 || true; fi
		echo "deps.sh: $p's service $name is installed but not started, and disabled at boot"
	done
done

# postgresql makes a cluster "main" as it installs; should that start it past policy-rc.d,
# stop it: the tests start their own servers (tests/support/pg_run.sh). Only when this run
# installed it: a cluster that was there before is left alone.
case " $missing " in *" postgresql "*)
	for c in $(pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {print $1 "/" $2}'); do
		$SUDO pg_ctlcluster "${c%/*}" "${c#*/}" stop || true
	done
	;;
esac

npm_ci
