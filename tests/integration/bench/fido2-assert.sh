#!/bin/bash
# fido2-assert.sh: fido2-assert -G assertions verified by fido2-assert -V with the
# credential's public key; the counter increases; with a PIN, UV works with the right
# PIN, fails with a wrong one and the retry count drops; --state carries credentials
# from one testbed run to the next.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_tools fido2-cred fido2-assert fido2-token setsid

PIN=246813

flags_of() { # ASSERT_OUT → authenticator data flags byte
	sed -n 3p "$1" | base64 -d | od -An -tu1 -j 34 -N 1 | tr -d ' '
}

pin_retries() {
	fido2-token -I "$1" | sed -n 's/^pin retries: //p'
}

case ${1:-outer} in
outer)
	"$KEYWARD_TESTBED" -- bash "$0" touch
	"$KEYWARD_TESTBED" --pin "$PIN" -- bash "$0" pin
	state=$(mktemp -d)
	trap 'rm -rf "$state"' EXIT
	"$KEYWARD_TESTBED" --state "$state/tb" -- bash "$0" enroll "$state"
	"$KEYWARD_TESTBED" --state "$state/tb" -- bash "$0" login "$state"
	echo "PASS"
	;;
touch)
	dir=$(mktemp -d)
	trap 'rm -rf "$dir"' EXIT
	node=$(key_node 0)
	make_credential "$dir" "$node"
	get_assertion "$dir" "$node" -p || fail "fido2-assert -G"
	cat "$dir/assert.out"
	fido2-assert -V -p -i "$dir/assert.out" "$dir/cred.pub" es256 || fail "fido2-assert -V of a fresh assertion"
	c1=$(sign_count "$dir/assert.out")
	# the signature covers the client data hash: another hash must not verify
	sed "1s|.*|$(b64rand)|" "$dir/assert.out" >"$dir/assert.bad"
	if fido2-assert -V -p -i "$dir/assert.bad" "$dir/cred.pub" es256 2>/dev/null; then
		fail "fido2-assert -V accepted an assertion over another client data hash"
	fi
	get_assertion "$dir" "$node" -p || fail "second fido2-assert -G"
	fido2-assert -V -p -i "$dir/assert.out" "$dir/cred.pub" es256 || fail "fido2-assert -V of the second assertion"
	c2=$(sign_count "$dir/assert.out")
	echo "sign counts: $c1 $c2"
	((c2 > c1)) || fail "signature counter did not increase ($c1 then $c2)"
	# no UV without a PIN: -V -v must refuse this assertion
	if fido2-assert -V -v -i "$dir/assert.out" "$dir/cred.pub" es256 2>/dev/null; then
		fail "fido2-assert -V -v accepted an assertion without UV"
	fi
	;;
pin)
	dir=$(mktemp -d)
	trap 'rm -rf "$dir"' EXIT
	node=$(key_node 0)
	assert_contains "$(fido2-token -I "$node")" "clientPin" "options with a PIN set"
	assert_eq "$(pin_retries "$node")" 8 "PIN retries at start"
	echo "$PIN" | make_credential "$dir" "$node" -v
	echo "$PIN" | get_assertion "$dir" "$node" -v || fail "fido2-assert -G -v with the right PIN"
	fido2-assert -V -v -i "$dir/assert.out" "$dir/cred.pub" es256 || fail "fido2-assert -V -v (UV) with the right PIN"
	(($(flags_of "$dir/assert.out") & 0x04)) || fail "UV flag not set"
	c1=$(sign_count "$dir/assert.out")

	if out=$(echo 999999 | get_assertion "$dir" "$node" -v 2>&1); then
		fail "fido2-assert -G -v succeeded with a wrong PIN"
	fi
	echo "$out"
	assert_contains "$out" "FIDO_ERR_PIN_INVALID" "error for a wrong PIN"
	assert_eq "$(pin_retries "$node")" 7 "PIN retries after one wrong PIN"

	echo "$PIN" | get_assertion "$dir" "$node" -v || fail "fido2-assert -G -v with the right PIN after a wrong one"
	fido2-assert -V -v -i "$dir/assert.out" "$dir/cred.pub" es256 || fail "fido2-assert -V -v after a wrong PIN"
	c2=$(sign_count "$dir/assert.out")
	echo "sign counts: $c1 $c2"
	((c2 > c1)) || fail "signature counter did not increase ($c1 then $c2)"
	assert_eq "$(pin_retries "$node")" 8 "PIN retries reset by the right PIN"
	;;
enroll)
	make_credential "$2" "$(key_node 0)"
	;;
login)
	get_assertion "$2" "$(key_node 0)" -p || fail "fido2-assert -G with a credential made in an earlier run (--state)"
	fido2-assert -V -p -i "$2/assert.out" "$2/cred.pub" es256 || fail "fido2-assert -V across runs"
	;;
*) fail "unknown phase $1" ;;
esac
