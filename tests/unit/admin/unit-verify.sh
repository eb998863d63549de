#!/bin/bash
# unit-verify.sh: checks dist's keywardd.service with systemd-analyze (verify + offline
# security score) in a throw-away root, and that the hardening the design relies on is
# really in the unit. Any systemd-analyze warning fails: it exits 0 on unknown keys.
# Usage: unit-verify.sh UNIT_FILE DOCS_DIR MAX_EXPOSURE_X10
set -euo pipefail
unit=$1 docs=$2 threshold=${3:-25}

fail() { echo "unit-verify: FAIL: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze not found (install systemd)"
[ -r "$unit" ] || fail "no unit file $unit"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
mkdir -p "$root/lib/systemd" "$root/bin" "$root/usr/sbin"
# The stock units (sysinit.target, dbus.socket, ...) our unit refers to.
cp -a /lib/systemd/system "$root/lib/systemd/"
cp "$unit" "$root/lib/systemd/system/keywardd.service"

# Every ExecStart=/ExecReload= program must exist in the root: stand-ins (the package
# test checks the real binary lands at that path).
while read -r exe; do
	mkdir -p "$root$(dirname "$exe")"
	cp /bin/true "$root$exe"
done < <(sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\([^ ]*\).*/\1/p' "$unit")

# Documentation=man:... must resolve against our own pages.
mkdir -p "$tmp/man/man5" "$tmp/man/man8"
for p in "$docs"/*.[0-9]; do
	[ -e "$p" ] || continue
	sec=${p##*.}
	mkdir -p "$tmp/man/man$sec"
	cp "$p" "$tmp/man/man$sec/"
done

out=$tmp/verify.out
MANPATH=$tmp/man systemd-analyze verify --man=yes --root="$root" keywardd.service >"$out" 2>&1 ||
	{ cat "$out"; fail "systemd-analyze verify exited non-zero"; }
if [ -s "$out" ]; then
	cat "$out"
	fail "systemd-analyze verify printed warnings (see above)"
fi
echo "unit-verify: systemd-analyze verify: clean"

sec=$tmp/security.out
if ! systemd-analyze security --offline=yes --threshold="$threshold" --root="$root" \
	keywardd.service >"$sec" 2>&1; then
	cat "$sec"
	fail "exposure above $threshold/100"
fi
grep -q 'Overall exposure level' "$sec" || { cat "$sec"; fail "no security score printed"; }
grep 'Overall exposure level' "$sec"

# The settings the design depends on, by value (a typo'd key is caught above, a
# removed or weakened one here).
need() {
	grep -qxF "$1" "$unit" || fail "keywardd.service lacks '$1'"
}
need "Type=notify"
need "BusName=org.keyward.Keyward1"
need "ProtectSystem=strict"
need "ProtectHome=yes"
need "PrivateTmp=yes"
need "NoNewPrivileges=yes"
need "DevicePolicy=closed"
need "DeviceAllow=char-hidraw rw"
need "RestrictAddressFamilies=AF_UNIX AF_NETLINK"
need "SystemCallFilter=@system-service"
need "SystemCallArchitectures=native"
need "LockPersonality=yes"
need "MemoryDenyWriteExecute=yes"
need "RestrictRealtime=yes"
need "RestrictNamespaces=yes"
need "ProtectKernelTunables=yes"
need "ProtectKernelModules=yes"
need "ProtectKernelLogs=yes"
need "ProtectClock=yes"
need "ProtectHostname=yes"
need "UMask=0077"
need "StateDirectory=keyward"
need "RuntimeDirectory=keyward"
need "LogsDirectory=keyward"
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit")
[ -n "$caps" ] || fail "no CapabilityBoundingSet="
for c in $caps; do
	case $c in
	CAP_KILL | CAP_AUDIT_WRITE) ;;
	*) fail "capability $c is not justified in keywardd(8)" ;;
	esac
done
case " $caps " in *" CAP_KILL "*) ;; *) fail "CAP_KILL missing (end-elevation)" ;; esac
rw=$(sed -n 's/^ReadWritePaths=//p' "$unit")
for p in $rw; do
	case ${p#-} in
	/var/lib/keyward | /run/keyward | /var/log/keyward | /etc/keyward/credentials) ;;
	*) fail "ReadWritePaths= names $p, outside keyward's own directories" ;;
	esac
done
echo "unit-verify: OK"
