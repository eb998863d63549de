#!/bin/bash
# fido2-cred.sh: fido2-cred -M makes an ES256 credential with packed attestation,
# fido2-cred -V verifies it, and the attestation certificate chains to the bench CA.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_tools fido2-cred openssl

case ${1:-outer} in
outer)
	"$KEYWARD_TESTBED" -- bash "$0" inner
	echo "PASS"
	;;
inner)
	dir=$(mktemp -d)
	trap 'rm -rf "$dir"' EXIT
	node=$(key_node 0)
	make_credential "$dir" "$node"
	cat "$dir/cred.out"
	assert_eq "$(sed -n 2p "$dir/cred.out")" bench.example "rp id in fido2-cred -M output"
	assert_eq "$(sed -n 3p "$dir/cred.out")" packed "attestation format"
	assert_eq "$(head -1 "$dir/cred.pub")" "$(sed -n 5p "$dir/cred.out")" "credential id from -V"
	assert_contains "$(cat "$dir/cred.pub")" "-----BEGIN PUBLIC KEY-----" "public key from -V"
	openssl pkey -pubin -in <(sed 1d "$dir/cred.pub") -noout -text | grep -q "ASN1 OID: prime256v1" ||
		fail "credential key is not P-256 (ES256)"

	# -V really checks: a flipped signature byte must fail
	sig=$(sed -n 6p "$dir/cred.out" | base64 -d | od -An -tx1 -v | tr -d ' \n')
	bad=$(printf '%s' "${sig:0:20}" ; printf '%02x' $(( (0x${sig:20:2} + 1) % 256 )); printf '%s' "${sig:22}")
	sed "6s|.*|$(echo "$bad" | xxd -r -p | base64 -w0)|" "$dir/cred.out" >"$dir/cred.bad"
	if fido2-cred -V -i "$dir/cred.bad" -o /dev/null es256 2>/dev/null; then
		fail "fido2-cred -V accepted a tampered attestation signature"
	fi

	# attestation certificate (x5c) → bench CA
	sed -n 7p "$dir/cred.out" | base64 -d >"$dir/att.der"
	openssl x509 -inform DER -in "$dir/att.der" -out "$dir/att.pem"
	out=$(openssl verify -CAfile "$KEYWARD_TESTBED_CA" "$dir/att.pem")
	assert_eq "$out" "$dir/att.pem: OK" "openssl verify against KEYWARD_TESTBED_CA"
	text=$(openssl x509 -in "$dir/att.pem" -noout -text)
	assert_contains "$text" "1.3.6.1.4.1.45724.1.1.4" "id-fido-gen-ce-aaguid extension"
	assert_contains "$text" "OU = Authenticator Attestation" "attestation certificate subject OU"
	# ... and not against some other CA
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=other CA" -days 2 \
		-keyout "$dir/other.key" -out "$dir/other.pem" 2>/dev/null
	if openssl verify -CAfile "$dir/other.pem" "$dir/att.pem" >/dev/null 2>&1; then
		fail "the attestation certificate verified against an unrelated CA"
	fi
	;;
*) fail "unknown phase $1" ;;
esac
