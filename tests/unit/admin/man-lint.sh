#!/bin/bash
# man-lint.sh: every man page in docs/ (docs/*.[0-9]) must pass `mandoc -T lint -W warning`
# with no message at all (mandoc exits 2 on warnings, 3+ on errors).
# Usage: man-lint.sh DOCS_DIR
set -euo pipefail
docs=$1
fail() { echo "man-lint: FAIL: $*" >&2; exit 1; }
command -v mandoc >/dev/null || fail "mandoc not found (apt-get install mandoc)"
shopt -s nullglob
pages=("$docs"/*.[0-9])
[ "${#pages[@]}" -ge 4 ] || fail "expected at least 4 man pages in $docs, found ${#pages[@]}"
bad=0
for p in "${pages[@]}"; do
	rc=0
	out=$(mandoc -T lint -W warning "$p" 2>&1) || rc=$?
	if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
		echo "$out"
		echo "man-lint: $p: mandoc exit $rc" >&2
		bad=1
	else
		echo "man-lint: $p: clean"
	fi
done
[ "$bad" -eq 0 ] || fail "some pages have warnings or errors"
