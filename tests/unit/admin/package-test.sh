#!/bin/bash
# package-test.sh: builds the Debian package (CPack DEB) from a fresh build tree
# configured for /usr with Debian's hardening flags, then checks its file list, modes,
# control fields and maintainer scripts, and runs lintian (with the package's own
# overrides, each explained in docs/packaging.md): any lintian error or warning fails.
# Usage: package-test.sh SOURCE_DIR PAM_MODULE_DIR
set -euo pipefail
src=$1 pam_dir=$2

fail() { echo "package-test: FAIL: $*" >&2; exit 1; }
for t in cmake cpack dpkg-deb dpkg-buildflags dpkg-shlibdeps lintian gzip; do
	command -v "$t" >/dev/null || fail "$t not found (scripts/deps installs it)"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
build=$tmp/build

export DEB_BUILD_MAINT_OPTIONS=hardening=+all
cflags="$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CFLAGS)"
ldflags=$(dpkg-buildflags --get LDFLAGS)
# Warnings are the main build's business (-Werror under CI); here we package.
env -u CI CFLAGS="$cflags" LDFLAGS="$ldflags" cmake -S "$src" -B "$build" \
	-DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DKEYWARD_TESTS=OFF -DKEYWARD_BENCH=OFF >"$tmp/configure.log" 2>&1 ||
	{ cat "$tmp/configure.log"; fail "configure failed"; }
env -u CI cmake --build "$build" -j2 >"$tmp/build.log" 2>&1 ||
	{ tail -50 "$tmp/build.log"; fail "build failed"; }
(cd "$build" && cpack -G DEB >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; fail "cpack failed"; }
deb=$(ls "$build"/keyward_*.deb 2>/dev/null | head -n1)
[ -n "$deb" ] || { cat "$tmp/cpack.log"; fail "no .deb produced"; }
echo "package-test: built $(basename "$deb")"

# --- file list and modes -------------------------------------------------------------
dpkg-deb -c "$deb" >"$tmp/contents"
cat "$tmp/contents"
# "-rw-r--r-- root/root 1234 2026-11-27 07:00 ./usr/bin/keywardctl" -> "mode owner path"
awk '{ p = $6; sub(/^\./, "", p); sub(/\/$/, "", p); print $1, $2, p }' "$tmp/contents" >"$tmp/list"

has() { # MODE PATH
	grep -qxF -- "$1 root/root $2" "$tmp/list" || fail "expected '$2' with mode $1, owned by root (got: $(grep -F " $2" "$tmp/list" || echo nothing))"
}
has -rw-r--r-- "$pam_dir/pam_keyward.so"
has -rwxr-xr-x /usr/bin/keywardctl
has -rwxr-xr-x /usr/sbin/keywardd
has -rwxr-xr-x /usr/bin/keyward-locked-hint
has -rw-r--r-- /lib/systemd/system/keywardd.service
has -rw-r--r-- /usr/lib/tmpfiles.d/keyward.conf
has -rw-r--r-- /lib/udev/rules.d/70-keyward.rules
has -rw-r--r-- /usr/share/pam-configs/keyward
has -rw-r--r-- /usr/share/pam-configs/keyward-keyonly
has -rw-r--r-- /usr/share/pam-configs/keyward-session
has -rw-r--r-- /etc/keyward/keyward.conf
has drwxr-xr-x /etc/keyward/credentials
has -rw-r--r-- /usr/share/doc/keyward/examples/keyward.conf
has -rw-r--r-- /usr/share/doc/keyward/copyright
has -rw-r--r-- /usr/share/doc/keyward/changelog.Debian.gz
for m in man8/keywardd.8.gz man8/pam_keyward.8.gz man8/keywardctl.8.gz man5/keyward.conf.5.gz man1/keyward-locked-hint.1.gz; do
	has -rw-r--r-- "/usr/share/man/$m"
done
! grep -Eq ' /usr/share/man/man[0-9]/[^ ]*\.[0-9]$' "$tmp/list" || fail "uncompressed man page in the package"
grep -Eq ' /usr/share/dbus-1/system.d/org.keyward.Keyward1.conf$' "$tmp/list" || fail "D-Bus policy missing"
grep -Eq ' /usr/share/dbus-1/system-services/org.keyward.Keyward1.service$' "$tmp/list" ||
	fail "D-Bus activation file missing"
# Nothing world-writable, no setuid/setgid, everything root-owned.
if awk '{ print $1 }' "$tmp/list" | grep -E '^.{8}w|^l' | grep -vq '^l'; then
	fail "world-writable entry in the package"
fi
! awk '{ print $1 }' "$tmp/list" | grep -Eq '^...[sS]|^......[sS]' || fail "setuid/setgid file in the package"
! awk '{ print $2 }' "$tmp/list" | grep -vqx 'root/root' || fail "file not owned by root/root"
echo "package-test: file list and modes: ok"

# The unit starts the binary the package ships.
dpkg-deb -x "$deb" "$tmp/root"
grep -qx 'ExecStart=/usr/sbin/keywardd' "$tmp/root/lib/systemd/system/keywardd.service" ||
	fail "ExecStart does not name /usr/sbin/keywardd"
grep -qx 'SystemdService=keywardd.service' \
	"$tmp/root/usr/share/dbus-1/system-services/org.keyward.Keyward1.service" ||
	fail "the D-Bus activation file does not name SystemdService=keywardd.service"
# The tmpfiles entry creates what the design says, with these modes.
systemd-tmpfiles --root="$tmp/tmproot" --create "$tmp/root/usr/lib/tmpfiles.d/keyward.conf" ||
	fail "systemd-tmpfiles rejects keyward.conf"
for e in "700 run/keyward" "700 var/lib/keyward" "750 var/log/keyward" "755 etc/keyward" \
	"755 etc/keyward/credentials"; do
	set -- $e
	[ "$(stat -c %a "$tmp/tmproot/$2")" = "$1" ] || fail "tmpfiles: /$2 is not mode $1"
done
echo "package-test: unit, activation file, tmpfiles: ok"

# --- control and maintainer scripts ----------------------------------------------------
dpkg-deb -e "$deb" "$tmp/control"
cat "$tmp/control/control"
grep -q '^Depends:.*libpam-runtime' "$tmp/control/control" || fail "no dependency on libpam-runtime"
grep -q '^Depends:.*libpam0g' "$tmp/control/control" || fail "shlibdeps did not run (no libpam0g)"
grep -qx '/etc/keyward/keyward.conf' "$tmp/control/conffiles" || fail "keyward.conf is not a conffile"
for s in postinst prerm postrm; do
	[ -x "$tmp/control/$s" ] || fail "$s missing or not executable"
	sh -n "$tmp/control/$s" || fail "$s: syntax error"
done
grep -q 'pam-auth-update --package$' "$tmp/control/postinst" || fail "postinst does not register the profiles"
! grep -v '^[[:space:]]*#' "$tmp/control/postinst" | grep -q -- '--enable' || fail "postinst must never enable keyward in PAM"
grep -q 'systemd-tmpfiles .*--create keyward.conf' "$tmp/control/postinst" || fail "postinst does not create the directories"
grep -q 'daemon-reload' "$tmp/control/postinst" || fail "postinst does not reload systemd"
# prerm removes the profiles on remove, before dpkg deletes the module.
awk '/"\$1" = "remove"/,/^fi/' "$tmp/control/prerm" |
	grep -q 'pam-auth-update --package --remove keyward keyward-keyonly keyward-session' ||
	fail "prerm does not take keyward out of PAM on remove"
grep -q 'rm -rf /var/lib/keyward /run/keyward' "$tmp/control/postrm" || fail "postrm does not clean up on purge"
echo "package-test: control and maintainer scripts: ok"

# --- lintian ---------------------------------------------------------------------------
rc=0
lintian --fail-on error,warning --display-info --tag-display-limit 0 "$deb" >"$tmp/lintian.out" 2>&1 || rc=$?
cat "$tmp/lintian.out"
[ "$rc" -eq 0 ] || fail "lintian reports errors or warnings (see above; explain or fix them in docs/packaging.md)"
echo "package-test: lintian: no errors, no warnings"
echo "package-test: OK"
