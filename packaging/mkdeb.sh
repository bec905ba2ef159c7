#!/bin/sh
# Builds the Debian packages outpost-agent, outpost-hub and outpost (`make deb`).
# Usage: packaging/mkdeb.sh [BUILDDIR [OUTDIR]]     (default build-deb, BUILDDIR/debs)
#
# From a meson install with --prefix=/usr staged in a directory, split by the lists below and
# packed with dpkg-deb, rather than debhelper from a debian/ directory: meson's install rules
# stay the one description of what goes where (units, configs, man pages, completion), and
# an incremental build makes the three packages in seconds, so the package test can run in
# `make test`. What debhelper would add is done here: stripped binaries, compressed man pages
# and changelog, copyright, md5sums, conffiles, shared-library dependencies
# (dpkg-shlibdeps), systemd maintainer scripts (packaging/deb/*.in).
set -eu
umask 022

src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-deb}
out=${2:-$build/debs}
maint="The Outpost developers <outpost@outpost-fleet.org>"

# What each package holds, as paths under the staged root; every staged file must be in one.
files_agent="usr/sbin/outpost-agent lib/systemd/system/outpost-agent.service
	etc/outpost/agent.conf usr/share/man/man8/outpost-agent.8 usr/lib/outpost"
files_hub="usr/sbin/outpost-hub lib/systemd/system/outpost-hub.service
	etc/outpost/hub.conf usr/share/man/man8/outpost-hub.8"
files_cli="usr/bin/outpost usr/share/man/man1/outpost.1
	usr/share/bash-completion/completions/outpost usr/share/doc/outpost"

# Debian's hardening flags (PIE, RELRO + BINDNOW, fortify, stack protector), as
# dpkg-buildflags gives them to every package; the directory is set up again when they change.
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
cflags="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
ldflags=$(dpkg-buildflags --get LDFLAGS)
setup="--prefix=/usr --sysconfdir=/etc --localstatedir=/var --buildtype=release $cflags $ldflags"
if [ ! -f "$build/build.ninja" ] || [ "$(cat "$build/.mkdeb-setup" 2>/dev/null)" != "$setup" ]; then
	meson setup --wipe "$build" "$src" --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
		--buildtype=release -Dc_args="$cflags" -Dc_link_args="$ldflags" >/dev/null 2>&1 ||
		meson setup "$build" "$src" --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
			--buildtype=release -Dc_args="$cflags" -Dc_link_args="$ldflags" >/dev/null
	echo "$setup" >"$build/.mkdeb-setup"
fi
ninja -C "$build" src/agent/outpost-agent src/hub/outpost-hub src/cli/outpost \
	packaging/outpost.1 packaging/outpost-agent.8 packaging/outpost-hub.8 \
	packaging/completion/outpost >/dev/null

version=$(meson introspect --projectinfo "$build" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
arch=$(dpkg --print-architecture)
when=$(git -C "$src" log -1 --format=%aD 2>/dev/null || date -R)
commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)

work=$(mktemp -d "${TMPDIR:-/tmp}/outpost-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
DESTDIR="$work/stage" meson install -C "$build" --no-rebuild --quiet >/dev/null
mkdir -p "$out"

# pkg name, its file list, its unit's config file, its state directory
pack() {
	pkg=$1 list=$2 conf=$3 state=$4
	root="$work/$pkg"
	mkdir -p "$root/DEBIAN"
	for f in $list; do
		mkdir -p "$root/$(dirname "$f")"
		mv "$work/stage/$f" "$root/$f"
	done
	for b in "$root"/usr/bin/* "$root"/usr/sbin/*; do
		[ -f "$b" ] && strip --strip-unneeded --remove-section=.comment \
			--remove-section=.note "$b"
	done
	find "$root/usr/share/man" -type f -exec gzip -9n {} + 2>/dev/null || true
	doc="$root/usr/share/doc/$pkg"
	mkdir -p "$doc"
	cp "$src/packaging/deb/copyright" "$doc/copyright"
	if [ -f "$src/packaging/deb/$pkg.lintian-overrides" ]; then
		mkdir -p "$root/usr/share/lintian/overrides"
		install -m 644 "$src/packaging/deb/$pkg.lintian-overrides" \
			"$root/usr/share/lintian/overrides/$pkg"
	fi
	printf '%s (%s) unstable; urgency=medium\n\n  * Built by make deb from commit %s.\n\n -- %s  %s\n' \
		outpost "$version" "$commit" "$maint" "$when" | gzip -9n >"$doc/changelog.gz"

	# Shared-library dependencies, as dpkg-shlibdeps finds them for the ELF files.
	elves=$(find "$root/usr" -type f -perm -u+x)
	shlibs=""
	if [ -n "$elves" ]; then
		mkdir -p "$work/shlibs/debian"
		printf 'Source: outpost\n\nPackage: %s\nArchitecture: any\n' "$pkg" \
			>"$work/shlibs/debian/control"
		# shellcheck disable=SC2086
		shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O $elves 2>/dev/null |
			sed -n 's/^shlibs:Depends=//p')
	fi
	{
		sed -e "s/\${shlibs:Depends}/$shlibs/" -e '/^Description:/,$d' \
			"$src/packaging/deb/$pkg.control"
		printf 'Version: %s\nArchitecture: %s\nMaintainer: %s\nInstalled-Size: %s\n' \
			"$version" "$arch" "$maint" "$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
		sed -n '/^Description:/,$p' "$src/packaging/deb/$pkg.control"
	} >"$root/DEBIAN/control"

	if [ -n "$conf" ]; then
		echo "/etc/outpost/$conf" >"$root/DEBIAN/conffiles"
		unit="$pkg.service"
		for s in postinst prerm postrm; do
			frag="$src/packaging/deb/$pkg.$s-fragment"
			sed -e "s|@PACKAGE@|$pkg|g" -e "s|@UNIT@|$unit|g" -e "s|@CONF@|$conf|g" \
				-e "s|@STATE@|$state|g" "$src/packaging/deb/$s.in" |
				if [ -f "$frag" ]; then
					sed -e "/^#FRAGMENT#$/r $frag" -e '/^#FRAGMENT#$/d'
				else
					sed -e '/^#FRAGMENT#$/d'
				fi >"$root/DEBIAN/$s"
			chmod 0755 "$root/DEBIAN/$s"
		done
	fi
	(cd "$root" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' |
		LC_ALL=C sort -z | xargs -0r md5sum) >"$root/DEBIAN/md5sums"
	dpkg-deb --root-owner-group -Zxz --build "$root" "$out/${pkg}_${version}_$arch.deb" \
		>/dev/null
	echo "$out/${pkg}_${version}_$arch.deb"
}

pack outpost-agent "$files_agent" agent.conf /var/lib/outpost-agent
pack outpost-hub "$files_hub" hub.conf /var/lib/outpost-hub
pack outpost "$files_cli" "" ""

left=$(cd "$work/stage" && find . ! -type d | sed 's|^\./||')
if [ -n "$left" ]; then
	echo "mkdeb.sh: installed by meson but in no package (add to the lists above):" >&2
	echo "$left" >&2
	exit 1
fi
