#!/bin/bash
# doctor-test.sh: `keywardctl doctor --root` on fixture trees built here: a sane
# installation, then one defect at a time; each must give the right finding, severity
# and exit status. Users and groups come from nss_wrapper files.
# Usage: doctor-test.sh KEYWARDCTL PAM_MODULE_DIR CASE
set -euo pipefail
ctl=$1 pam_module_dir=$2 case=$3

fail() { echo "doctor-test[$case]: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "must run as root: the fixture files must be root-owned like on a real system"
[ -x "$ctl" ] || fail "no keywardctl at $ctl"
nsswrap=
for f in /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so; do
	[ -e "$f" ] && nsswrap=$f && break
done
[ -n "$nsswrap" ] || fail "libnss_wrapper.so not found (apt-get install libnss-wrapper)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
out=$tmp/out

cat >"$tmp/passwd" <<'P'
root:x:0:0:root:/root:/bin/bash
alice:x:1000:1000:Alice:/home/alice:/bin/bash
bob:x:1001:1001:Bob:/home/bob:/bin/bash
carol:x:1002:1002:Carol:/home/carol:/bin/bash
P
cat >"$tmp/group" <<'G'
root:x:0:
alice:x:1000:
bob:x:1001:
carol:x:1002:
wheel:x:10:alice
G

make_tree() {
	umask 022
	mkdir -p "$root/etc/pam.d" "$root/etc/keyward/credentials" "$root$pam_module_dir" \
		"$root/lib/udev/rules.d" "$root/lib/systemd/system" "$root/usr/share/dbus-1/system.d" \
		"$root/usr/share/dbus-1/system-services" "$root/var/lib/keyward" "$root/var/log/keyward"
	chmod 0700 "$root/var/lib/keyward"
	chmod 0750 "$root/var/log/keyward"
	# What pam-auth-update writes with the keyward profile enabled.
	cat >"$root/etc/pam.d/common-auth" <<'A'
# here are the per-package modules (the "Primary" block)
auth	[success=1 default=ignore]	pam_unix.so nullok
# here's the fallback if no module succeeds
auth	requisite			pam_deny.so
auth	required			pam_permit.so
# and here are more per-package modules (the "Additional" block)
auth	[success=ok new_authtok_reqd=ok ignore=ignore default=die]	pam_keyward.so
auth	optional			pam_cap.so
# end of pam-auth-update config
A
	cat >"$root/etc/pam.d/common-session" <<'S'
session	[default=1]			pam_permit.so
session	requisite			pam_deny.so
session	required			pam_permit.so
session	required	pam_unix.so
session	optional	pam_systemd.so
session	optional	pam_keyward.so
S
	cp "$root/etc/pam.d/common-session" "$root/etc/pam.d/common-session-noninteractive"
	cat >"$root/etc/pam.d/common-account" <<'T'
account	[success=1 new_authtok_reqd=done default=ignore]	pam_unix.so
account	requisite			pam_deny.so
account	required			pam_permit.so
account	required	pam_keyward.so
T
	for s in sudo login sshd lightdm; do
		printf '#%%PAM-1.0\n@include common-auth\n@include common-account\nsession required pam_limits.so\n@include common-session\n' \
			>"$root/etc/pam.d/$s"
	done
	# As on Debian 12: polkit's PAM file is in libpam's vendor directory only.
	mkdir -p "$root/usr/lib/pam.d"
	printf 'auth optional pam_gnome_keyring.so\nauth include common-auth\nsession substack common-session\n' \
		>"$root/usr/lib/pam.d/polkit-1"
	cat >"$root/etc/keyward/keyward.conf" <<'C'
settings = { rp_id = "pam://keyward"; credentials_dir = "/etc/keyward/credentials";
	     state_dir = "/var/lib/keyward"; runtime_dir = "/run/keyward";
	     audit_log = "/var/log/keyward/audit.log"; };
rules = (
	{ name = "wheel-ssh"; match = { groups = ["wheel"]; services = ["sshd"]; };
	  require = "deny"; reason = "use an SSH key"; },
	{ name = "wheel"; match = { groups = ["wheel"];
	  services = ["sudo", "login", "lightdm", "polkit-1"]; }; require = "key"; }
);
default = { require = "none"; };
C
	cat >"$root/etc/keyward/credentials/alice.creds" <<'K'
[credential]
label=yubikey
id=q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=
rp_id=pam://keyward
alg=es256
public_key=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==
attestation=none
resident=no
up=yes
uv=yes
K
	chmod 0600 "$root/etc/keyward/credentials/alice.creds"
	: >"$root$pam_module_dir/pam_keyward.so"
	: >"$root/lib/udev/rules.d/70-keyward.rules"
	: >"$root/lib/udev/rules.d/60-fido-id.rules"
	: >"$root/lib/systemd/system/keywardd.service"
	: >"$root/usr/share/dbus-1/system.d/org.keyward.Keyward1.conf"
	: >"$root/usr/share/dbus-1/system-services/org.keyward.Keyward1.service"
}

# run_doctor EXPECTED_EXIT [ARGS...]: output in $out
run_doctor() {
	local want=$1 rc=0
	shift
	out=$tmp/out
	env LD_PRELOAD="$nsswrap" NSS_WRAPPER_PASSWD="$tmp/passwd" NSS_WRAPPER_GROUP="$tmp/group" \
		"$ctl" doctor --root "$root" -c /etc/keyward/keyward.conf "$@" >"$out" 2>&1 || rc=$?
	cat "$out"
	[ "$rc" -eq "$want" ] || fail "exit status $rc, expected $want"
}
expect() { grep -Eq -- "$1" "$out" || fail "no line matching: $1"; }
expect_not() { ! grep -Eq -- "$1" "$out" || fail "unexpected line matching: $1"; }

# start_mock_daemon: dbus-daemon on a socket in $tmp, dbusmock owning org.keyward.Keyward1.
start_mock_daemon() {
	local py=/usr/bin/python3
	command -v dbus-daemon >/dev/null || fail "dbus-daemon not found (apt-get install dbus)"
	"$py" -c 'import dbusmock' 2>/dev/null || fail "python3-dbusmock not installed"
	cp "$(dirname "$0")/../../lib/permissive-bus.conf" "$tmp/bus.conf"
	bus_address=unix:path=$tmp/bus.sock
	dbus-daemon --config-file="$tmp/bus.conf" --address="$bus_address" --nofork --nopidfile \
		>"$tmp/bus.log" 2>&1 &
	bus_pid=$!
	for _ in $(seq 100); do [ -S "$tmp/bus.sock" ] && break; sleep 0.05; done
	[ -S "$tmp/bus.sock" ] || fail "private dbus-daemon did not start"
	DBUS_SYSTEM_BUS_ADDRESS=$bus_address "$py" -m dbusmock --system org.keyward.Keyward1 \
		/org/keyward/Keyward1 org.keyward.Keyward1.Manager >"$tmp/mock.log" 2>&1 &
	mock_pid=$!
	trap 'kill $mock_pid $bus_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
	DBUS_SYSTEM_BUS_ADDRESS=$bus_address gdbus wait --system --timeout 10 org.keyward.Keyward1 ||
		{ cat "$tmp/mock.log"; fail "dbusmock did not take org.keyward.Keyward1"; }
}
add_method() { # NAME IN_SIG OUT_SIG CODE
	DBUS_SYSTEM_BUS_ADDRESS=$bus_address gdbus call --system --dest org.keyward.Keyward1 \
		--object-path /org/keyward/Keyward1 --method org.freedesktop.DBus.Mock.AddMethod \
		org.keyward.Keyward1.Manager "$1" "$2" "$3" "$4" >/dev/null ||
		fail "cannot add $1 to the mock"
}

make_tree
case $case in
good)
	run_doctor 0 --offline
	for s in sudo login sshd lightdm polkit-1; do
		expect "^ok +pam/$s: /etc/pam.d/common-auth:[0-9]+: key in addition to the password"
	done
	expect '^ok +policy: /etc/keyward/keyward.conf is valid'
	expect_not 'PAM service "polkit-1" has no'
	expect '^ok +enrollment: 1 of 4 users are covered by the policy; all have a key enrolled'
	expect '^ok +pam module: '"$pam_module_dir"'/pam_keyward.so is root-owned, mode 0644'
	expect '^ok +state: /var/lib/keyward is root-owned, mode 0700'
	expect '^ok +daemon: not checked \(--offline\)'
	expect '^0 errors'
	expect_not '^error'
	;;
sufficient)
	sed -i 's/^auth\t\[success=ok[^]]*\]\tpam_keyward.so/auth sufficient pam_keyward.so/' "$root/etc/pam.d/common-auth"
	grep -q '^auth sufficient pam_keyward.so' "$root/etc/pam.d/common-auth" || fail "fixture edit did not apply"
	run_doctor 1 --offline
	expect "^error +pam/sudo: /etc/pam.d/common-auth:[0-9]+: 'sufficient pam_keyward.so' lets a key alone grant sudo"
	expect '^ +-> use the keyward profile'
	;;
optional)
	sed -i 's/^auth\t\[success=ok[^]]*\]\tpam_keyward.so/auth optional pam_keyward.so/' "$root/etc/pam.d/common-auth"
	run_doctor 1 --offline
	expect "^error +pam/login: .*a keyward failure \(default\) is ignored by control 'optional'"
	;;
no-ignore)
	sed -i 's/ignore=ignore //' "$root/etc/pam.d/common-auth"
	run_doctor 1 --offline
	expect "^error +pam/sudo: .*every uncovered user is locked out of sudo"
	expect '^ +-> add ignore=ignore'
	;;
ignored-error)
	sed -i 's/default=die\]/default=die authinfo_unavail=ignore]/' "$root/etc/pam.d/common-auth"
	run_doctor 1 --offline
	expect "^error +pam/sudo: .*a keyward failure \(authinfo_unavail\) is ignored"
	;;
keyonly)
	# The keyward-keyonly profile: keyward in the Primary block, before pam_unix.
	cat >"$root/etc/pam.d/common-auth" <<'A'
auth	[success=2 ignore=ignore default=die]	pam_keyward.so
auth	[success=1 default=ignore]	pam_unix.so nullok
auth	requisite			pam_deny.so
auth	required			pam_permit.so
A
	run_doctor 0 --offline
	expect '^warning +pam/sudo: /etc/pam.d/common-auth:1: key-only mode'
	;;
before-password)
	cat >"$root/etc/pam.d/common-auth" <<'A'
auth	requisite	pam_keyward.so
auth	[success=1 default=ignore]	pam_unix.so nullok
auth	requisite			pam_deny.so
auth	required			pam_permit.so
A
	run_doctor 0 --offline
	expect '^warning +pam/sudo: .*keyward runs before the password'
	;;
not-enabled)
	sed -i '/pam_keyward.so/d' "$root/etc/pam.d/common-auth" "$root/etc/pam.d/common-session"
	run_doctor 0 --offline
	expect '^warning +pam/sudo: pam_keyward.so is not in the auth stack'
	expect '^warning +pam: keyward is not enabled for any service'
	;;
no-session)
	sed -i '/pam_keyward.so/d' "$root/etc/pam.d/common-session"
	run_doctor 0 --offline
	expect '^warning +pam/login: no pam_keyward.so session line'
	;;
session-order)
	sed -i '/pam_keyward.so/d' "$root/etc/pam.d/common-session"
	sed -i 's/^session\trequired\tpam_unix.so$/&\nsession\trequired\tpam_keyward.so/' "$root/etc/pam.d/common-session"
	grep -q 'pam_keyward' "$root/etc/pam.d/common-session" || fail "fixture edit did not apply"
	run_doctor 0 --offline
	expect '^warning +pam/login: /etc/pam.d/common-session:[0-9]+: the pam_keyward.so session line runs before pam_systemd.so'
	;;
pam-loop)
	printf 'auth include sudo\n' >"$root/etc/pam.d/sudo"
	run_doctor 1 --offline
	expect '^error +pam/sudo: cannot read the PAM file of sudo and its includes: includes nest too deep'
	expect '^ok +pam/login: '
	;;
no-key)
	sed -i 's/^wheel:x:10:alice$/wheel:x:10:alice,carol/' "$tmp/group"
	run_doctor 1 --offline
	# The PAM services present that the policy covers, in name order.
	expect "^error +enrollment: carol \(uid 1002\) must use a key for lightdm, login, polkit-1, sudo \(rule 'wheel' at .*keyward.conf:[0-9]+\)"
	expect '^ +-> enroll a key: keywardctl enroll carol'
	expect_not 'enrollment: alice'
	expect_not 'enrollment: bob'
	;;
no-key-tty)
	# A rule that only matches console ttys must still reveal a covered user without a key.
	cat >"$root/etc/keyward/keyward.conf" <<'C'
settings = { credentials_dir = "/etc/keyward/credentials"; state_dir = "/var/lib/keyward";
	     runtime_dir = "/run/keyward"; audit_log = "/var/log/keyward/audit.log"; };
rules = ( { name = "console"; match = { users = ["bob"]; ttys = ["/dev/tty[0-9]*"]; };
	    require = "key"; } );
default = { require = "none"; };
C
	# sddm is present here; lightdm's usual tty is ":0", not a console.
	printf '@include common-auth\n' >"$root/etc/pam.d/sddm"
	run_doctor 1 --offline
	expect "^error +enrollment: bob \(uid 1001\) must use a key for login, sddm \(rule 'console'"
	;;
bad-creds)
	chmod 0666 "$root/etc/keyward/credentials/alice.creds"
	run_doctor 1 --offline
	expect '^error +credentials: /etc/keyward/credentials/alice.creds has mode 0666'
	expect '^error +enrollment: cannot read the credentials of alice'
	;;
modes)
	chmod 0777 "$root/etc/keyward/credentials"
	chmod 0755 "$root/var/lib/keyward"
	chown 1000 "$root/var/log/keyward"
	run_doctor 1 --offline
	expect '^error +credentials: /etc/keyward/credentials has mode 0777'
	expect '^ +-> chmod 0755 /etc/keyward/credentials'
	expect '^warning +state: /var/lib/keyward has mode 0755 \(readable by others\)'
	expect '^error +log: /var/log/keyward is owned by uid 1000, not root'
	;;
failmode-open)
	sed -i 's/^settings = { rp_id = "pam:\/\/keyward";/settings = { rp_id = "pam:\/\/keyward"; failmode = "open";/' \
		"$root/etc/keyward/keyward.conf"
	grep -q 'failmode = "open"' "$root/etc/keyward/keyward.conf" || fail "fixture edit did not apply"
	run_doctor 0 --offline
	expect '^warning +policy: failmode = "open": while keywardd is unreachable, covered users get in without a key'
	;;
policy-private)
	chmod 0600 "$root/etc/keyward/keyward.conf"
	run_doctor 0 --offline
	expect '^warning +policy: /etc/keyward/keyward.conf is not world-readable'
	expect '^ +-> chmod o\+r /etc/keyward/keyward.conf'
	;;
policy-writable)
	chmod 0666 "$root/etc/keyward/keyward.conf"
	run_doctor 1 --offline
	expect '^error +policy: /etc/keyward/keyward.conf is world-writable: keywardd and pam_keyward.so refuse to use it'
	expect '^ +-> chmod o-w /etc/keyward/keyward.conf$'
	;;
no-module)
	rm "$root$pam_module_dir/pam_keyward.so"
	run_doctor 1 --offline
	expect "^error +pam module: $pam_module_dir/pam_keyward.so does not exist"
	expect '^ +-> reinstall keyward NOW'
	;;
bad-policy)
	echo 'rules = ( { name = "x"; require = "maybe"; } );' >>"$root/etc/keyward/keyward.conf"
	run_doctor 1 --offline
	expect '^error +policy: .*keyward.conf:[0-9]+: '
	expect '^error +policy: /etc/keyward/keyward.conf is not valid'
	expect '^warning +enrollment: not checked'
	;;
no-policy)
	rm "$root/etc/keyward/keyward.conf"
	run_doctor 1 --offline
	expect '^error +policy: /etc/keyward/keyward.conf does not exist'
	;;
missing-files)
	rm "$root/lib/udev/rules.d/70-keyward.rules" "$root/usr/share/dbus-1/system.d/org.keyward.Keyward1.conf"
	run_doctor 1 --offline
	expect '^warning +udev: 70-keyward.rules is missing'
	expect '^error +dbus: the bus policy org.keyward.Keyward1.conf is missing'
	;;
no-bus)
	# The live check with no system bus: a finding, not a crash.
	DBUS_SYSTEM_BUS_ADDRESS=unix:path=$tmp/no-such-socket run_doctor 1
	expect '^error +daemon: cannot connect to the system bus|^error +daemon: org.keyward.Keyward1 GetStatus failed'
	expect '^ +-> systemctl start keywardd'
	;;
daemon-ok | daemon-error | daemon-audit-down)
	# A private bus with a python-dbusmock stand-in for keywardd answering GetStatus.
	start_mock_daemon
	if [ "$case" = daemon-ok ]; then
		add_method GetStatus '' 'a{sv}' \
			'ret = {"version": dbus.String("0.1.0"), "bindings": dbus.UInt32(2), "policy_ok": dbus.Boolean(True)}'
		mkdir -p -m 0700 "$root/run/keyward"
		DBUS_SYSTEM_BUS_ADDRESS=$bus_address run_doctor 0
		expect '^ok +daemon: org.keyward.Keyward1 answers GetStatus'
		expect '^ +version: 0.1.0'
		expect '^ +bindings: 2'
		expect '^ +policy_ok: yes'
		expect '^0 errors'
	elif [ "$case" = daemon-audit-down ]; then
		add_method GetStatus '' 'a{sv}' 'ret = {"version": dbus.String("0.1.0"), "audit_ok": dbus.Boolean(False)}'
		mkdir -p -m 0700 "$root/run/keyward"
		DBUS_SYSTEM_BUS_ADDRESS=$bus_address run_doctor 1
		expect '^ +audit_ok: no'
		expect '^error +daemon: the audit trail is not open'
	else
		add_method GetStatus '' 'a{sv}' \
			'raise dbus.exceptions.DBusException("keyward is broken", name="org.keyward.Keyward1.Error.Failed")'
		DBUS_SYSTEM_BUS_ADDRESS=$bus_address run_doctor 1
		expect '^error +daemon: org.keyward.Keyward1 GetStatus failed: keyward is broken'
	fi
	;;
sudo-no-account)
	sed -i '/pam_keyward.so/d' "$root/etc/pam.d/common-account"
	run_doctor 1 --offline
	expect "^error +pam/sudo: no pam_keyward.so account line: an elevation that skips authentication \(sudo's cached timestamp\) is not asked for the key"
	expect_not '^error +pam/login: no pam_keyward.so account line'
	;;
sudoers-good)
	printf 'Defaults\tuse_pty\nroot ALL=(ALL:ALL) ALL\n%%wheel ALL=(ALL:ALL) ALL\n' >"$root/etc/sudoers"
	mkdir -p "$root/etc/sudoers.d"
	printf 'bob ALL=(ALL) NOPASSWD: ALL\n' >"$root/etc/sudoers.d/bob"
	run_doctor 0 --offline
	expect '^ok +sudo: no setting lets the 1 covered user\(s\) elevate without the key'
	;;
sudoers-bypass)
	# Each setting that lets covered alice (group wheel) elevate without the key, or
	# elevations that removal cannot end; bob is not covered and may keep NOPASSWD.
	cat >"$root/etc/sudoers" <<'S'
Defaults	timestamp_type=global
Defaults:%wheel	!authenticate
root ALL=(ALL:ALL) ALL
%wheel ALL=(ALL:ALL) \
	NOPASSWD: ALL
@includedir /etc/sudoers.d
S
	mkdir -p "$root/etc/sudoers.d"
	printf 'Defaults !pam_acct_mgmt, !pam_session # local tweak\nbob ALL=(ALL) NOPASSWD: ALL\n' >"$root/etc/sudoers.d/local"
	printf 'alice ALL=(ALL) NOPASSWD: ALL\n' >"$root/etc/sudoers.d/skipped.bak"
	run_doctor 1 --offline
	expect "^warning +sudo: /etc/sudoers:1: timestamp_type=global"
	expect "^error +sudo: /etc/sudoers:2: '!authenticate' applies to alice, whom the keyward policy covers"
	expect "^error +sudo: /etc/sudoers:4: a NOPASSWD rule matches alice"
	expect "^error +sudo: /etc/sudoers.d/local:1: '!pam_acct_mgmt' skips the PAM account phase"
	expect "^error +sudo: /etc/sudoers.d/local:1: '!pam_session' skips the PAM session phase"
	expect_not 'sudoers.d/local:2'
	expect_not 'skipped.bak'
	;;
usage)
	run_doctor 2 --no-such-option
	run_doctor 2 extra-argument
	run_doctor 2 -c relative.conf # no such file here
	# outside the --root tree
	(cd "$tmp" && run_doctor 2 -c passwd)
	expect 'is not inside --root'
	;;
relative-config)
	# -c relative to the working directory, inside --root: named as on the target.
	(cd "$root/etc/keyward" && run_doctor 0 --offline -c keyward.conf)
	expect '^ok +policy: /etc/keyward/keyward.conf is valid'
	;;
*)
	fail "unknown case"
	;;
esac
echo "doctor-test[$case]: OK"
