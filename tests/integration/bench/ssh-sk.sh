#!/bin/bash
# ssh-sk.sh: OpenSSH's ssh-keygen and fido2-token against the emulated key — resident and
# verify-required sk keys (credProtect), ssh-keygen -K (credential management), listing and
# deleting resident credentials, credProtect enforced as seen by fido2-assert, and
# signatures made with the keys verified by ssh-keygen -Y verify.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_tools ssh-keygen fido2-token fido2-assert setsid

PIN=4321

case ${1:-outer} in
outer)
	"$KEYWARD_TESTBED" --keys 1 -- bash "$0" inner
	echo "PASS"
	;;
inner)
	dir=$(mktemp -d)
	trap 'rm -rf "$dir"' EXIT
	cd "$dir"
	dev=$(key_node 0)
	[[ -n $dev ]] || fail "no emulated key"

	info=$(fido2-token -I "$dev")
	assert_contains "$(grep '^extension strings:' <<<"$info")" credProtect "extensions of the key"
	assert_contains "$(grep '^options:' <<<"$info")" "credMgmt" "options of the key"
	assert_contains "$(grep '^options:' <<<"$info")" "credentialMgmtPreview" "options of the key"

	printf '%s\n%s\n' "$PIN" "$PIN" | setsid -w fido2-token -S "$dev" || fail "fido2-token -S"

	# ssh-keygen asks for the PIN through askpass (stdin is not a tty)
	printf '#!/bin/sh\necho %s\n' "$PIN" >askpass
	printf '#!/bin/sh\necho 9999\n' >askpass-wrong
	chmod 0700 askpass askpass-wrong
	export SSH_ASKPASS_REQUIRE=force SSH_ASKPASS="$dir/askpass"
	keygen() { ssh-keygen "$@" </dev/null >>keygen.log 2>&1 || fail "ssh-keygen $*: $(cat keygen.log)"; }

	keygen -t ecdsa-sk -O resident -O application=ssh:kw -N '' -C ecdsa -f id_ecdsa_sk
	keygen -t ed25519-sk -O resident -O application=ssh:kw -O user=ed -N '' -C ed -f id_ed25519_sk
	keygen -t ed25519-sk -O resident -O verify-required -O application=ssh:kwuv -N '' -C uv -f id_uv_sk
	# a second resident key for the same application and user is refused
	if ssh-keygen -t ecdsa-sk -O resident -O application=ssh:kw -N '' -f id_dup </dev/null >dup.log 2>&1; then
		fail "ssh-keygen made a second resident key for ssh:kw with the same user"
	fi

	# ssh-keygen -K: the resident keys come back with the same public keys
	mkdir dl
	(cd dl && ssh-keygen -K -N '' </dev/null >../dl.log 2>&1) || fail "ssh-keygen -K: $(cat dl.log)"
	assert_eq "$(ls dl/*.pub | wc -l)" 3 "keys downloaded by ssh-keygen -K"
	want=$(cat id_ecdsa_sk.pub id_ed25519_sk.pub id_uv_sk.pub | cut -d' ' -f1,2 | sort)
	got=$(cat dl/*.pub | cut -d' ' -f1,2 | sort)
	assert_eq "$got" "$want" "public keys from ssh-keygen -K"

	# fido2-token lists RPs and credentials with their credProtect level
	rps=$(echo "$PIN" | setsid -w fido2-token -L -r "$dev") || fail "fido2-token -L -r"
	assert_eq "$(wc -l <<<"$rps")" 2 "RPs listed: $rps"
	assert_contains "$rps" " ssh:kw"$'\n' "fido2-token -L -r"
	assert_contains "$rps" " ssh:kwuv" "fido2-token -L -r"
	creds=$(echo "$PIN" | setsid -w fido2-token -L -k ssh:kw "$dev") || fail "fido2-token -L -k ssh:kw"
	assert_eq "$(wc -l <<<"$creds")" 2 "credentials of ssh:kw: $creds"
	assert_contains "$creds" " es256 uvopt+id" "fido2-token -L -k ssh:kw"
	assert_contains "$creds" " eddsa uvopt+id" "fido2-token -L -k ssh:kw"
	uvcreds=$(echo "$PIN" | setsid -w fido2-token -L -k ssh:kwuv "$dev") || fail "fido2-token -L -k ssh:kwuv"
	assert_contains "$uvcreds" " eddsa uvreq" "fido2-token -L -k ssh:kwuv"
	meta=$(echo "$PIN" | setsid -w fido2-token -I -c "$dev") || fail "fido2-token -I -c"
	assert_contains "$meta" "existing rk(s): 3" "fido2-token -I -c"
	assert_contains "$meta" "remaining rk(s): 22" "fido2-token -I -c"

	# credProtect as fido2-assert sees it
	assert_in() { # RP [CREDID]
		b64rand
		echo "$1"
		[[ -z ${2:-} ]] || echo "$2"
	}
	assert_in ssh:kw >rk.in
	if setsid -w fido2-assert -G -r -i rk.in "$dev" </dev/null >/dev/null 2>&1; then
		fail "uvopt+id credentials found by discovery without user verification"
	fi
	echo "$PIN" | setsid -w fido2-assert -G -r -v -i rk.in -o rk.out "$dev" ||
		fail "discovery with the PIN"
	assert_eq "$(grep -c . rk.out)" 10 "two assertions (5 lines each) for ssh:kw"
	ecdsa_id=$(awk '$5 == "es256" { print $2 }' <<<"$creds")
	assert_in ssh:kw "$ecdsa_id" >one.in
	setsid -w fido2-assert -G -i one.in "$dev" </dev/null >/dev/null ||
		fail "uvopt+id credential named in the allow list, without user verification"
	uv_id=$(awk '{ print $2 }' <<<"$uvcreds")
	assert_in ssh:kwuv "$uv_id" >uv.in
	if setsid -w fido2-assert -G -i uv.in "$dev" </dev/null >/dev/null 2>&1; then
		fail "uvreq credential used without user verification"
	fi
	echo "$PIN" | setsid -w fido2-assert -G -v -i uv.in "$dev" >/dev/null ||
		fail "uvreq credential with the PIN"

	# signatures with the generated and the downloaded keys
	echo "signed by an emulated key" >data
	for k in id_ecdsa_sk id_ed25519_sk id_uv_sk dl/id_ecdsa_sk_rk_kw; do
		rm -f data.sig
		ssh-keygen -Y sign -f "$k" -n file data </dev/null >sign.log 2>&1 || fail "ssh-keygen -Y sign -f $k: $(cat sign.log)"
		echo "signer@test $(cut -d' ' -f1,2 "$k.pub")" >allowed
		ssh-keygen -Y verify -f allowed -I signer@test -n file -s data.sig <data >verify.log 2>&1 ||
			fail "ssh-keygen -Y verify of $k: $(cat verify.log)"
		assert_contains "$(cat verify.log)" 'Good "file" signature for signer@test' "verify $k"
	done
	# the verify-required key does not sign with a wrong PIN
	rm -f data.sig
	if SSH_ASKPASS="$dir/askpass-wrong" ssh-keygen -Y sign -f id_uv_sk -n file data </dev/null >sign.log 2>&1; then
		fail "verify-required key signed with a wrong PIN"
	fi

	# delete a credential: it is gone from the list, from -K and from the key
	echo "$PIN" | setsid -w fido2-token -D -i "$ecdsa_id" "$dev" || fail "fido2-token -D -i"
	creds=$(echo "$PIN" | setsid -w fido2-token -L -k ssh:kw "$dev") || fail "fido2-token -L -k after delete"
	assert_eq "$(wc -l <<<"$creds")" 1 "credentials of ssh:kw after delete: $creds"
	assert_not_contains "$creds" "$ecdsa_id" "deleted credential listed"
	mkdir dl2
	(cd dl2 && ssh-keygen -K -N '' </dev/null >../dl2.log 2>&1) || fail "ssh-keygen -K after delete"
	assert_eq "$(ls dl2/*.pub | wc -l)" 2 "keys downloaded after delete"
	rm -f data.sig
	if ssh-keygen -Y sign -f id_ecdsa_sk -n file data </dev/null >sign.log 2>&1; then
		fail "a deleted resident key still signs"
	fi
	;;
*) fail "unknown phase $1" ;;
esac
