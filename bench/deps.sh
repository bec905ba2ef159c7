#!/bin/sh
# Installs the peers the benchmarks compare Outpost against (not needed to build or test:
# that is scripts/deps.sh): nginx and node-exporter for bench/agent-core, ClusterShell and
# OpenSSH (client and a private sshd) for bench/fanout, collectd (the daemon and its plugins,
# without the full package's recommends) and curl for bench/agent-footprint, strace for
# bench/cli-latency. Idempotent:
# apt-get runs only when a package is missing. The packages' own services are kept from starting (policy-rc.d): the
# benchmarks start private instances on loopback and stop them again.
set -eu

PKGS="nginx-light prometheus-node-exporter wrk procps clustershell openssh-server openssh-client
	collectd-core curl strace"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || {
		echo "bench/deps.sh: need root or sudo to install:$missing" >&2
		exit 1
	}
	SUDO="sudo"
fi

# A system-wide nginx on :80, node-exporter on :9100, sshd on :22 or collectd is not what a benchmark
# should leave behind: refuse service starts during the install, unless the host already has
# a policy.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
	made_policy=1
fi
cleanup() { [ "$made_policy" = 1 ] && $SUDO rm -f "$policy"; return 0; }
trap cleanup EXIT INT TERM

echo "bench/deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing

# The packages enable their services for the next boot; bench/fanout runs its own sshd on a
# free loopback port, bench/agent-footprint its own collectd with a private config. Undo that
# only for a package this script installed, never for one already there.
for svc in openssh-server:ssh collectd-core:collectd; do
	case " $missing " in
	*" ${svc%%:*} "*)
		$SUDO deb-systemd-helper disable "${svc#*:}.service" >/dev/null 2>&1 || true
		$SUDO update-rc.d "${svc#*:}" disable >/dev/null 2>&1 || true
		;;
	esac
done
