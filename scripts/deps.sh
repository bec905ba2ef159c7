#!/bin/sh
# The one place that installs what Outpost needs to build, test and benchmark.
# Idempotent: installs only the Debian packages that are missing. Runs as root or via sudo.
set -eu

PKGS="
build-essential pkg-config meson ninja-build clang-format
libmicrohttpd-dev libgnutls28-dev libjansson-dev libsqlite3-dev libsodium-dev libcurl4-gnutls-dev
libcmocka-dev libyajl-dev
python3 python3-pytest python3-requests python3-nacl
sqlite3 curl wrk hyperfine procps
prometheus
"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || { echo "deps.sh: need root or sudo to install:$missing" >&2; exit 1; }
	SUDO="sudo"
fi
echo "deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
