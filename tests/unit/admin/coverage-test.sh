#!/bin/bash
# coverage-test.sh: one answer to "which services does the policy cover for this user".
# A fixture root whose PAM stacks include sddm, lightdm and sudo-i (pam_keyward.so through
# common-auth) and a policy covering group wheel for them: `keywardctl doctor --root`,
# `keywardctl report --root` and the enrollment's rule collection (`keywardctl policy
# explain` without --service, the function keywardd's Enroll uses) must name the same
# services for carol (wheel, no key). Users and groups come from nss_wrapper files.
# Usage: coverage-test.sh KEYWARDCTL
set -euo pipefail
ctl=$1

fail() { echo "coverage-test: FAIL: $*" >&2; exit 1; }
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
umask 022

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
wheel:x:10:alice,carol
G
wrap() { env LD_PRELOAD="$nsswrap" NSS_WRAPPER_PASSWD="$tmp/passwd" NSS_WRAPPER_GROUP="$tmp/group" "$@"; }

mkdir -p "$root/etc/pam.d" "$root/usr/lib/pam.d" "$root/etc/keyward/credentials" \
	"$root/var/lib/keyward" "$root/var/log/keyward"
chmod 0700 "$root/var/lib/keyward"
cat >"$root/etc/pam.d/common-auth" <<'A'
auth	[success=1 default=ignore]	pam_unix.so nullok
auth	requisite			pam_deny.so
auth	required			pam_permit.so
auth	[success=ok new_authtok_reqd=ok ignore=ignore default=die]	pam_keyward.so
A
printf 'account\trequired\tpam_unix.so\naccount\trequired\tpam_keyward.so\n' >"$root/etc/pam.d/common-account"
printf 'session\trequired\tpam_unix.so\nsession\toptional\tpam_systemd.so\nsession\toptional\tpam_keyward.so\n' \
	>"$root/etc/pam.d/common-session"
# The display managers and `sudo -i` that the old fixed lists missed, and the usual ones.
for s in sudo sudo-i login sshd sddm lightdm chfn; do
	printf '#%%PAM-1.0\n@include common-auth\n@include common-account\n@include common-session\n' \
		>"$root/etc/pam.d/$s"
done
# A vendor file (libpam's /usr/lib/pam.d), and one that /etc overrides.
printf 'auth include common-auth\naccount include common-account\nsession substack common-session\n' \
	>"$root/usr/lib/pam.d/polkit-1"
printf 'auth required pam_deny.so\n' >"$root/usr/lib/pam.d/sddm"
cat >"$root/etc/keyward/keyward.conf" <<'C'
settings = { credentials_dir = "/etc/keyward/credentials"; state_dir = "/var/lib/keyward";
	     runtime_dir = "/run/keyward"; audit_log = "/var/log/keyward/audit.log"; };
rules = (
	{ name = "wheel-ssh"; match = { groups = ["wheel"]; services = ["sshd"]; };
	  require = "deny"; reason = "use an SSH key"; },
	{ name = "admins"; match = { groups = ["wheel"];
	  services = ["sudo", "sudo-i", "login", "sddm", "lightdm", "polkit-1", "doas"]; };
	  require = "key"; }
);
default = { require = "none"; };
C
: >"$root/var/log/keyward/audit.log"
want="lightdm, login, polkit-1, sddm, sudo, sudo-i"

# 1. doctor: the enrollment finding names every covered service present.
rc=0
wrap "$ctl" doctor --root "$root" -c /etc/keyward/keyward.conf --offline >"$tmp/doctor" 2>&1 || rc=$?
cat "$tmp/doctor"
[ "$rc" -eq 1 ] || fail "doctor: exit status $rc, expected 1 (carol has no key)"
doctor=$(sed -En "s/^error +enrollment: carol \(uid 1002\) must use a key for (.*) \(rule 'admins' at .*/\1/p" "$tmp/doctor")
echo "doctor:  $doctor"
[ "$doctor" = "$want" ] || fail "doctor covers carol for '$doctor', expected '$want'"
# Rule names a service with no PAM file; a stack with pam_keyward.so no rule names.
grep -Eq "^warning +pam/doas: rule 'admins' names the PAM service doas, which has no /etc/pam.d/doas or /usr/lib/pam.d/doas" "$tmp/doctor" ||
	fail "doctor: no finding for doas (named by a rule, not installed)"
grep -Eq "^ok +pam/chfn: pam_keyward.so runs but no rule names chfn" "$tmp/doctor" ||
	fail "doctor: no finding for chfn (pam_keyward.so, no rule names it)"
grep -Eq "^ok +pam/sddm: /etc/pam.d/common-auth:[0-9]+: key in addition to the password" "$tmp/doctor" ||
	fail "doctor: sddm's stack not read from /etc/pam.d (it wins over /usr/lib/pam.d)"
grep -Eq "^ok +pam/polkit-1: /etc/pam.d/common-auth:[0-9]+: key in addition" "$tmp/doctor" ||
	fail "doctor: polkit-1 (vendor directory) not checked"
! grep -Eq "pam/common-auth|pam/other" "$tmp/doctor" || fail "doctor checked an include-only file"

# 2. report: the coverage section, for the same root.
rc=0
wrap "$ctl" -c /etc/keyward/keyward.conf report --root "$root" --format json \
	--audit "$root/var/log/keyward/audit.log" >"$tmp/report.json" 2>"$tmp/report.err" || rc=$?
cat "$tmp/report.err"
[ "$rc" -le 1 ] || fail "report: exit status $rc"
report=$(/usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("".join(a["required_for"] for a in r["coverage"]["accounts"] if a["user"] == "carol"))
' "$tmp/report.json")
echo "report:  $report"
[ "$report" = "$want" ] || fail "report covers carol for '$report', expected '$want'"
/usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
acc = {a["user"]: a for a in r["coverage"]["accounts"]}
assert acc["carol"]["status"] == "gap", acc["carol"]
assert acc["alice"]["status"] == "gap", acc["alice"]
assert "bob" not in acc, acc
' "$tmp/report.json" || fail "report: wrong coverage rows"

# 3. enrollment: the services whose rules keywardd's Enroll collects (policy explain without
# --service runs the same function): the covered ones present, plus doas (named by a
# rule, not installed yet: its rule must accept the key all the same).
rc=0
wrap "$ctl" policy explain -c "$root/etc/keyward/keyward.conf" --root "$root" --user carol \
	>"$tmp/explain" 2>&1 || rc=$?
cat "$tmp/explain"
[ "$rc" -eq 0 ] || fail "policy explain: exit status $rc"
enroll=$(sed -En 's/^Key required for \(PAM services present\): (.*)$/\1/p' "$tmp/explain")
echo "enroll:  $enroll"
[ "$enroll" = "$want" ] || fail "enrollment covers carol for '$enroll', expected '$want'"
grep -Eq "^Not installed, named by a rule \(enrollment applies its AAGUID and attestation limits\): doas \(rule 'admins'" "$tmp/explain" ||
	fail "policy explain: doas is not among the enrollment's services"
echo "coverage-test: OK"
