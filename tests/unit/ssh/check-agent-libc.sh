#!/bin/bash
# check-agent-libc.sh: lib/ssh-agent.c may go into pam_keyward.so, which loads only libc,
# libsystemd and libpam (tests/pam/check-needed.sh): the library must not call OpenSSL,
# libfido2 or lib/ssh-sk.c. Usage: check-agent-libc.sh LIBKEYWARD_SSH_AGENT.a
set -euo pipefail
lib=$1
command -v nm >/dev/null || { echo "FAIL: nm is not installed (binutils)"; exit 1; }
undef=$(nm -u "$lib" | awk 'NF == 2 && $1 == "U" { print $2 }' | sort -u)
[ -n "$undef" ] || { echo "FAIL: no undefined symbols in $lib (not the library?)"; exit 1; }
bad=$(printf '%s\n' "$undef" | grep -E '^(EVP_|BN_|EC_|ECDSA_|OPENSSL_|CRYPTO_|d2i_|i2d_|fido_|cbor_|ssh_sk_)' || true)
if [ -n "$bad" ]; then
	echo "FAIL: $lib calls outside libc/lib/util:"
	echo "$bad"
	exit 1
fi
echo "PASS: $(printf '%s\n' "$undef" | wc -l) undefined symbols, none from OpenSSL, libfido2 or ssh-sk"
