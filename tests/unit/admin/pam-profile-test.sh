#!/bin/bash
# pam-profile-test.sh: runs Debian's real pam-auth-update on keyward's profiles, inside a
# private mount namespace whose /etc/pam.d, /var/lib/pam, /usr/share/pam-configs and
# debconf database are throw-away copies (the machine's PAM files are never touched).
# Checks the generated common-auth/common-session, then `keywardctl doctor --root` on
# the result, then that --remove takes keyward out again.
# Usage: pam-profile-test.sh PROFILE_DIR KEYWARDCTL DEB_SCRIPT_DIR
set -euo pipefail
profiles=$1 ctl=$2 debdir=$3

fail() { echo "pam-profile-test: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "must run as root (mount namespace)"
command -v pam-auth-update >/dev/null || fail "pam-auth-update not found (apt-get install libpam-runtime)"
command -v unshare >/dev/null || fail "unshare not found (apt-get install util-linux)"

if [ "${KW_IN_NS:-}" != 1 ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	exec env KW_IN_NS=1 KW_TMP="$tmp" unshare -m --propagation private bash "$0" "$@"
fi

tmp=$KW_TMP
for d in /etc/pam.d /var/lib/pam /usr/share/pam-configs /var/cache/debconf; do
	mkdir -p "$tmp$d"
	cp -a "$d/." "$tmp$d/"
	mount --bind "$tmp$d" "$d"
done
# A pristine Debian state: only the stock profiles, none of keyward's enabled.
rm -f /usr/share/pam-configs/keyward*
export DEBIAN_FRONTEND=noninteractive
pam-auth-update --package --force >/dev/null  # our copy only: start from a pristine stack
cp "$profiles"/keyward "$profiles"/keyward-keyonly "$profiles"/keyward-session /usr/share/pam-configs/

# Installing the package registers the profiles and enables none of them.
pam-auth-update --package
! grep -q pam_keyward /etc/pam.d/common-auth || fail "a profile got enabled by --package"
echo "pam-profile-test: --package enables nothing: ok"

# The recommended profile: key AND password.
pam-auth-update --enable keyward
echo "--- common-auth"; cat /etc/pam.d/common-auth
echo "--- common-session"; grep -v '^#' /etc/pam.d/common-session
auth=$(grep -v '^#' /etc/pam.d/common-auth | grep -v '^$')
unix_line=$(grep -n 'pam_unix.so' <<<"$auth" | head -n1 | cut -d: -f1)
kw_line=$(grep -n 'pam_keyward.so' <<<"$auth" | head -n1 | cut -d: -f1)
deny_line=$(grep -n 'pam_deny.so' <<<"$auth" | head -n1 | cut -d: -f1)
[ -n "$kw_line" ] || fail "keyward not in common-auth"
[ "$kw_line" -gt "$deny_line" ] && [ "$kw_line" -gt "$unix_line" ] ||
	fail "keyward must come after pam_unix and pam_deny (the Additional block)"
grep -Eq '^auth\s+\[success=ok new_authtok_reqd=ok ignore=ignore default=die\]\s+pam_keyward.so' \
	/etc/pam.d/common-auth || fail "keyward auth control changed"
sess=$(grep -v '^#' /etc/pam.d/common-session)
sd=$(grep -n 'pam_systemd.so' <<<"$sess" | cut -d: -f1)
ks=$(grep -n 'pam_keyward.so' <<<"$sess" | cut -d: -f1)
[ -n "$ks" ] || fail "no keyward session line"
[ -z "$sd" ] || [ "$ks" -gt "$sd" ] || fail "keyward's session line must come after pam_systemd (XDG_SESSION_ID)"
grep -q 'pam_keyward.so' /etc/pam.d/common-session-noninteractive ||
	fail "no keyward session line for sudo (common-session-noninteractive)"
echo "pam-profile-test: keyward profile: ok"

# doctor agrees with what pam-auth-update wrote.
root=$tmp/root
mkdir -p "$root/etc"
cp -a /etc/pam.d "$root/etc/"
printf '#%%PAM-1.0\n@include common-auth\n@include common-account\n@include common-session-noninteractive\n' >"$root/etc/pam.d/sudo"
"$ctl" doctor --root "$root" --offline >"$tmp/doctor.out" 2>&1 || true
cat "$tmp/doctor.out"
grep -Eq '^ok +pam/sudo: /etc/pam.d/common-auth:[0-9]+: key in addition to the password' "$tmp/doctor.out" ||
	fail "doctor does not accept the keyward profile for sudo"
! grep -Eq '^(error|warning) +pam/sudo' "$tmp/doctor.out" || fail "doctor complains about the keyward profile"

# The key-only variant with session binding.
pam-auth-update --disable keyward
pam-auth-update --enable keyward-keyonly keyward-session
echo "--- common-auth (key only)"; grep -v '^#' /etc/pam.d/common-auth
auth=$(grep -v '^#' /etc/pam.d/common-auth | grep -v '^$')
unix_line=$(grep -n 'pam_unix.so' <<<"$auth" | head -n1 | cut -d: -f1)
kw_line=$(grep -n 'pam_keyward.so' <<<"$auth" | head -n1 | cut -d: -f1)
[ -n "$kw_line" ] && [ "$kw_line" -lt "$unix_line" ] || fail "key-only: keyward must precede pam_unix"
grep -Eq '^auth\s+\[success=2 ignore=ignore default=die\]\s+pam_keyward.so' /etc/pam.d/common-auth ||
	fail "key-only: success must jump over pam_unix and pam_deny to pam_permit"
[ "$(grep -c pam_keyward.so /etc/pam.d/common-session)" -eq 1 ] || fail "key-only: one session line expected"
rm -rf "$root/etc/pam.d"
cp -a /etc/pam.d "$root/etc/"
printf '#%%PAM-1.0\n@include common-auth\n@include common-session-noninteractive\n' >"$root/etc/pam.d/sudo"
"$ctl" doctor --root "$root" --offline >"$tmp/doctor.out" 2>&1 || true
grep -Eq '^warning +pam/sudo: /etc/pam.d/common-auth:[0-9]+: key-only mode' "$tmp/doctor.out" ||
	{ cat "$tmp/doctor.out"; fail "doctor does not flag key-only mode"; }
echo "pam-profile-test: keyward-keyonly + keyward-session: ok"

# Package removal: the real prerm takes every keyward line out before dpkg deletes the
# module (no systemd runs here, so it only does the PAM part).
[ ! -d /run/systemd/system ] || fail "systemd is running: prerm would stop keywardd"
sh "$debdir/prerm" remove
! grep -q pam_keyward /etc/pam.d/common-auth /etc/pam.d/common-session \
	/etc/pam.d/common-session-noninteractive || fail "prerm remove left keyward lines behind"
grep -q pam_unix.so /etc/pam.d/common-auth || fail "prerm remove broke common-auth"
echo "pam-profile-test: prerm remove: ok"

# An upgrade must leave PAM alone.
pam-auth-update --enable keyward
sh "$debdir/prerm" upgrade 0.1.0-1
grep -q pam_keyward /etc/pam.d/common-auth || fail "prerm upgrade took keyward out of PAM"
echo "pam-profile-test: prerm upgrade: ok"

# The keyward profile puts the account line in common-account (cached sudo is checked there).
grep -Eq '^account\s+required\s+pam_keyward.so' /etc/pam.d/common-account ||
	fail "the keyward profile has no account line in common-account"
echo "pam-profile-test: account line: ok"

# Profiles that cannot be combined: enabling key-only next to keyward keeps only one.
pam-auth-update --enable keyward-keyonly
[ "$(grep -c pam_keyward.so /etc/pam.d/common-auth)" -eq 1 ] ||
	fail "keyward and keyward-keyonly both enabled (Conflicts: not honoured)"
pam-auth-update --disable keyward-keyonly --enable keyward
echo "pam-profile-test: Conflicts: ok"

# A line written by hand outside pam-auth-update's files: the removal stops BEFORE
# changing anything and names the file and line.
cp /etc/pam.d/common-auth "$tmp/common-auth.before"
printf 'auth required pam_keyward.so\n' >/etc/pam.d/keyward-handmade
rc=0
sh "$debdir/prerm" remove >"$tmp/prerm.out" 2>&1 || rc=$?
cat "$tmp/prerm.out"
[ "$rc" -ne 0 ] || fail "prerm remove succeeded with a hand-written pam_keyward.so line"
grep -q '/etc/pam.d/keyward-handmade:1:auth required pam_keyward.so' "$tmp/prerm.out" ||
	fail "prerm did not name the hand-written line"
cmp -s /etc/pam.d/common-auth "$tmp/common-auth.before" || fail "prerm changed common-auth before stopping"
rm /etc/pam.d/keyward-handmade
echo "pam-profile-test: prerm stops on a hand-written line: ok"

# A comment added inside the managed block: pam-auth-update refuses to rewrite (and exits
# 0); the prerm notices that pam_keyward.so is still there and stops.
sed -i 's/^\(auth.*pam_keyward.so.*\)$/# local note\n\1/' /etc/pam.d/common-auth
rc=0
sh "$debdir/prerm" remove >"$tmp/prerm.out" 2>&1 || rc=$?
cat "$tmp/prerm.out"
[ "$rc" -ne 0 ] || fail "prerm remove succeeded although common-auth still loads pam_keyward.so"
grep -q 'local modifications' "$tmp/prerm.out" && grep -q '/etc/pam.d/common-auth:' "$tmp/prerm.out" ||
	fail "prerm did not explain the locally modified common-auth"
grep -q pam_keyward.so /etc/pam.d/common-auth || fail "the test's premise failed: pam-auth-update rewrote anyway"
echo "pam-profile-test: prerm stops on a locally modified managed block: ok"
