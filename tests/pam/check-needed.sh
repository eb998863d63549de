#!/bin/bash
# check-needed.sh MODULE: pam_keyward.so loads into sshd, sudo and gdm, so it must not pull
# in the policy parser's libraries. Fails if its dynamic section needs libconfig or libcrypto
# (or anything beyond libsystemd, libpam and libc).
set -euo pipefail
module=$1
needed=$(readelf -d "$module" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
echo "NEEDED: $(echo $needed)"
[ -n "$needed" ] || { echo "FAIL: no NEEDED entries read from $module"; exit 1; }
status=0
for lib in $needed; do
	case "$lib" in
	libsystemd.so.* | libpam.so.* | libc.so.*) ;;
	libconfig.so.* | libcrypto.so.* | libssl.so.*)
		echo "FAIL: $module needs $lib (the policy parser's dependency)"
		status=1
		;;
	*)
		echo "FAIL: $module needs $lib, not on the allowed list (libsystemd, libpam, libc)"
		status=1
		;;
	esac
done
exit $status
