#!/bin/bash
# fido2-token.sh: fido2-token -L lists every emulated key, -I describes it (AAGUID, versions).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_tools fido2-token

DEFAULT_AAGUID=6b65797761726420766972746b657901
OTHER_AAGUID=0123456789abcdeffedcba9876543210

case ${1:-outer} in
outer)
	"$KEYWARD_TESTBED" --keys 2 -- bash "$0" two-keys
	"$KEYWARD_TESTBED" --keys 1 --aaguid 01234567-89ab-cdef-fedc-ba9876543210 -- bash "$0" aaguid
	"$KEYWARD_TESTBED" --keys 0 -- bash "$0" no-keys
	echo "PASS"
	;;
two-keys)
	list=$(fido2-token -L)
	echo "$list"
	n=$(grep -cE '^/dev/hidraw[0-9]+: vendor=0x1050, product=0x0407 ' <<<"$list" || true)
	assert_eq "$n" 2 "keys listed by fido2-token -L"
	nodes=$(sed -E 's/:.*//' <<<"$list" | sort -u)
	assert_eq "$(wc -l <<<"$nodes")" 2 "distinct hidraw nodes"
	assert_eq "$nodes" "$(printf '%s\n' "$(key_node 0)" "$(key_node 1)" | sort -u)" "nodes named by ctl list"
	for node in $nodes; do
		info=$(fido2-token -I "$node")
		assert_contains "$info" "aaguid: $DEFAULT_AAGUID" "fido2-token -I $node"
		assert_contains "$info" "version strings: " "fido2-token -I $node"
		assert_contains "$(grep '^version strings:' <<<"$info")" FIDO_2_0 "versions of $node"
		assert_contains "$(grep '^algorithms:' <<<"$info")" "es256" "algorithms of $node"
		assert_contains "$(grep '^options:' <<<"$info")" "noclientPin" "options of $node (no PIN set)"
	done
	# distinct USB devices: different serials and ports
	serials=$(ctl list | awk '{ print $8 }' | sort -u | wc -l)
	assert_eq "$serials" 2 "distinct serials"
	ports=$(ctl list | awk '{ split($3, p, "/"); print p[7] }' | sort -u | wc -l)
	assert_eq "$ports" 2 "distinct USB ports"
	;;
aaguid)
	node=$(key_node 0)
	info=$(fido2-token -I "$node")
	assert_contains "$info" "aaguid: $OTHER_AAGUID" "fido2-token -I with --aaguid"
	;;
no-keys)
	list=$(fido2-token -L)
	assert_eq "$list" "" "fido2-token -L without keys"
	ctl plug-new >/dev/null
	list=$(fido2-token -L)
	assert_contains "$list" "vendor=0x1050" "fido2-token -L after plug-new"
	;;
*) fail "unknown phase $1" ;;
esac
