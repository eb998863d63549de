#!/bin/bash
# check-format.sh SRC_DIR: every C source and header of ours follows .clang-format.
# Fails naming each file that clang-format would change (fix: clang-format -i FILE).
set -euo pipefail
src=${1:?usage: check-format.sh SRC_DIR}
command -v clang-format >/dev/null || { echo "clang-format is not installed (scripts/deps)" >&2; exit 1; }
cd "$src"
mapfile -t files < <(find lib policy daemon pam_module tools tests bench \
	-name '*.[ch]' -not -path '*/corpus/*' | sort)
[ "${#files[@]}" -gt 50 ] || { echo "found only ${#files[@]} C files under $src" >&2; exit 1; }
bad=0
for f in "${files[@]}"; do
	if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
		echo "not formatted: $f (run: clang-format -i $f)"
		bad=$((bad + 1))
	fi
done
echo "${#files[@]} files checked, $bad not formatted"
[ "$bad" -eq 0 ]
