#!/bin/bash
# cmake-prefix-test.sh: a plain `cmake` configures keyward for /usr (policy in
# /etc/keyward, D-Bus and PAM files where Debian reads them); any other prefix is an error
# unless KEYWARD_STAGING_PREFIX says it is a staging tree on purpose.
# Usage: cmake-prefix-test.sh SOURCE_DIR
set -euo pipefail
src=$1
fail() { echo "cmake-prefix-test: FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
opts=(-DKEYWARD_TESTS=OFF -DKEYWARD_BENCH=OFF)

cmake -S "$src" -B "$tmp/plain" "${opts[@]}" >"$tmp/plain.log" 2>&1 || { cat "$tmp/plain.log"; fail "plain cmake failed"; }
grep -qx 'CMAKE_INSTALL_PREFIX:PATH=/usr' "$tmp/plain/CMakeCache.txt" || fail "plain cmake: prefix is not /usr"
grep -q '"/etc/keyward/keyward.conf"' "$tmp/plain/generated/keyward-config.h" ||
	fail "plain cmake: the policy path is not /etc/keyward/keyward.conf"
grep -qx 'KEYWARD_PAM_CONFIGS_DIR:PATH=/usr/share/pam-configs' "$tmp/plain/CMakeCache.txt" ||
	fail "plain cmake: pam-configs not in /usr/share/pam-configs"
echo "cmake-prefix-test: plain cmake: /usr, /etc/keyward: ok"

rc=0
cmake -S "$src" -B "$tmp/local" -DCMAKE_INSTALL_PREFIX=/usr/local "${opts[@]}" >"$tmp/local.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "cmake accepted /usr/local silently"
grep -q 'KEYWARD_STAGING_PREFIX=ON' "$tmp/local.log" || { cat "$tmp/local.log"; fail "the error does not say what to do"; }
echo "cmake-prefix-test: /usr/local refused with a message: ok"

cmake -S "$src" -B "$tmp/stage" -DCMAKE_INSTALL_PREFIX="$tmp/tree" -DKEYWARD_STAGING_PREFIX=ON \
	"${opts[@]}" >"$tmp/stage.log" 2>&1 || { cat "$tmp/stage.log"; fail "a staging prefix was refused"; }
echo "cmake-prefix-test: staging prefix with KEYWARD_STAGING_PREFIX=ON: ok"
