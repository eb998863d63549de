#!/bin/bash
# check-exports.sh MODULE: the dynamic symbol table of pam_keyward.so defines exactly the
# five pam_sm_* functions, every symbol resolves, and there is no mutable static data.
set -euo pipefail
module=$1
command -v nm >/dev/null || { echo "FAIL: nm (binutils) is not installed" >&2; exit 1; }
defined=$(nm -D --defined-only "$module" | awk '$2 ~ /^[TtDdBbRrWwVviu]$/ {print $3}' | sort)
expected=$(printf '%s\n' pam_sm_acct_mgmt pam_sm_authenticate pam_sm_close_session \
	pam_sm_open_session pam_sm_setcred | sort)
if [ "$defined" != "$expected" ]; then
	echo "FAIL: defined dynamic symbols differ from the pam_sm_* set:" >&2
	diff <(echo "$expected") <(echo "$defined") >&2 || true
	exit 1
fi
# Every undefined symbol must come from a library the module names (NEEDED), which
# LD_BIND_NOW resolution through ldd -r proves.
if ldd -r "$module" 2>&1 | grep -E 'undefined symbol|not found'; then
	echo "FAIL: unresolved symbols or missing libraries" >&2
	exit 1
fi
# No mutable statics (STYLE: the module runs in gdm, sshd, polkit agents): no data object
# of ours in .data or .bss; const tables with pointers live in .data.rel.ro.
command -v objdump >/dev/null || { echo "FAIL: objdump (binutils) is not installed" >&2; exit 1; }
mutable=$(objdump -t "$module" | awk '$3 == "O" && ($4 == ".data" || $4 == ".bss") {print $6}' |
	grep -vxE 'completed\.[0-9]+|__dso_handle|__TMC_END__|__odr_asan\..*' || true)
if [ -n "$mutable" ]; then
	echo "FAIL: mutable static data in the module:" >&2
	echo "$mutable" >&2
	exit 1
fi
echo "PASS: $module exports only pam_sm_*, resolves every symbol, has no mutable statics"
