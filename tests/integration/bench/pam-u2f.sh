#!/bin/bash
# pam-u2f.sh: pamu2fcfg registers the current user with an emulated key; Debian's pam_u2f,
# driven by pamtester under pam_wrapper, authenticates with it — and fails when the key
# refuses or never gets a touch, and when it is unplugged; it works again once re-plugged.
# pam_u2f 1.1.0 has no timeout option: with "never" it waits (keepalives) until the key
# goes away, so that case asserts it is still waiting after 2 s, then unplugs the key.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_tools pamu2fcfg pamtester flock
: "${PAM_U2F_MODULE:=/usr/lib/x86_64-linux-gnu/security/pam_u2f.so}"
: "${PAM_WRAPPER_LIB:=/usr/lib/x86_64-linux-gnu/libpam_wrapper.so}"
[[ -f $PAM_U2F_MODULE ]] || fail "pam_u2f module $PAM_U2F_MODULE not found (libpam-u2f)"
[[ -f $PAM_WRAPPER_LIB ]] || fail "$PAM_WRAPPER_LIB not found (libpam-wrapper)"

ORIGIN=pam://keyward-bench
SERVICE=keyward-bench-u2f

authenticate() { # → pamtester output on stdout, its status as ours
	pam_wrapped "$svc" pamtester -v "$SERVICE" "$user" authenticate </dev/null 2>&1
}

case ${1:-outer} in
outer)
	"$KEYWARD_TESTBED" -- bash "$0" inner
	echo "PASS"
	;;
inner)
	dir=$(mktemp -d)
	trap 'rm -rf "$dir"' EXIT
	user=$(id -un)
	svc=$dir/pam.d
	mkdir "$svc"

	pamu2fcfg -u "$user" -o "$ORIGIN" -i "$ORIGIN" >"$dir/u2f_keys" || fail "pamu2fcfg"
	echo >>"$dir/u2f_keys"
	cat "$dir/u2f_keys"
	grep -qE "^$user:[A-Za-z0-9+/=]+,[A-Za-z0-9+/=]+,es256,\+presence$" "$dir/u2f_keys" ||
		fail "pamu2fcfg output is not a pam_u2f authfile line"
	chmod 600 "$dir/u2f_keys"

	cat >"$svc/$SERVICE" <<-SVC
		auth required $PAM_U2F_MODULE authfile=$dir/u2f_keys cue origin=$ORIGIN appid=$ORIGIN
		account required pam_permit.so
	SVC
	cat >"$svc/other" <<-SVC
		auth required pam_deny.so
		account required pam_deny.so
		password required pam_deny.so
		session required pam_deny.so
	SVC

	# 1. touch given
	out=$(authenticate) || fail "pam_u2f did not authenticate with the registered key:"$'\n'"$out"
	echo "$out"
	assert_contains "$out" "Please touch the device" "pam_u2f cue"
	assert_contains "$out" "successfully authenticated" "pamtester with the key touched"

	# 2. the user refuses (CTAP2_ERR_OPERATION_DENIED)
	ctl touch-mode 0 deny
	if out=$(authenticate); then
		fail "pam_u2f authenticated although the key denied the touch:"$'\n'"$out"
	fi
	echo "$out"
	assert_not_contains "$out" "successfully authenticated" "touch denied"

	# 3. never touched: still waiting after 2 s, fails once the key is pulled
	ctl touch-mode 0 never
	authenticate >"$dir/never.out" &
	pid=$!
	start=$SECONDS
	sleep 2
	kill -0 "$pid" 2>/dev/null || fail "pam_u2f finished without a touch:"$'\n'"$(cat "$dir/never.out")"
	ctl unplug 0
	if wait "$pid"; then
		fail "pam_u2f authenticated without a touch:"$'\n'"$(cat "$dir/never.out")"
	fi
	echo "never touched: ended $((SECONDS - start)) s after the start, when the key was unplugged"
	cat "$dir/never.out"
	assert_not_contains "$(cat "$dir/never.out")" "successfully authenticated" "never touched"

	# 4. unplugged
	if out=$(authenticate); then
		fail "pam_u2f authenticated with the key unplugged:"$'\n'"$out"
	fi
	echo "$out"
	assert_not_contains "$out" "successfully authenticated" "key unplugged"

	# 5. re-plugged (a new hidraw node), touch given again
	ctl plug 0 >/dev/null
	ctl touch-mode 0 auto
	out=$(authenticate) || fail "pam_u2f did not authenticate after the key came back:"$'\n'"$out"
	assert_contains "$out" "successfully authenticated" "re-plugged key"
	;;
*) fail "unknown phase $1" ;;
esac
