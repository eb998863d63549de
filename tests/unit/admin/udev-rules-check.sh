#!/bin/bash
# udev-rules-check.sh: a syntax check of udev/70-keyward.rules (systemd 252 has no
# `udevadm verify`): every line is KEY op "value" pairs, keys are ones udev knows, GOTOs
# have their LABEL; plus the rule's contract: hidraw only, keyed on ID_FIDO_TOKEN from
# 60-fido-id.rules, tags "keyward", and never RUN+= (keywardd acts, udev only labels).
# Usage: udev-rules-check.sh RULES_FILE
set -euo pipefail
rules=$1
fail() { echo "udev-rules-check: FAIL: $*" >&2; exit 1; }
[ -r "$rules" ] || fail "cannot read $rules"
case $(basename "$rules") in
6[1-9]-* | [7-9][0-9]-*) ;; # after 60-fido-id.rules, which sets ID_FIDO_TOKEN
*) fail "$(basename "$rules") must sort after 60-fido-id.rules" ;;
esac

pair='(SUBSYSTEM|ACTION|KERNEL|ENV\{[A-Z_]+\}|TAG|GOTO|LABEL|ATTRS?\{[a-z_]+\})[[:space:]]*(==|!=|\+=|=|-=|:=)[[:space:]]*"[^"]*"'
gotos=() labels=()
n=0
while IFS= read -r line || [ -n "$line" ]; do
	n=$((n + 1))
	case $line in '' | '#'*) continue ;; esac
	rest=$line
	while [ -n "$rest" ]; do
		[[ $rest =~ ^[[:space:]]*($pair)[[:space:]]*(,|$)(.*)$ ]] ||
			fail "line $n: cannot parse: $rest"
		item=${BASH_REMATCH[1]}
		rest=${BASH_REMATCH[${#BASH_REMATCH[@]} - 1]}
		case $item in
		GOTO=*) gotos+=("${item#GOTO=}") ;;
		LABEL=*) labels+=("${item#LABEL=}") ;;
		esac
	done
done <"$rules"
for g in "${gotos[@]}"; do
	printf '%s\n' "${labels[@]}" | grep -qxF "$g" || fail "GOTO $g has no LABEL"
done
! grep -Eq '^[^#]*RUN' "$rules" || fail "the rule must not RUN anything"
grep -Eq '^SUBSYSTEM!="hidraw", GOTO=' "$rules" || fail "not limited to hidraw"
grep -Eq '^ENV\{ID_FIDO_TOKEN\}!="1", GOTO=' "$rules" || fail "not keyed on ID_FIDO_TOKEN"
grep -Eq '^TAG\+="keyward"$' "$rules" || fail "does not tag keyward"
echo "udev-rules-check: $rules: OK ($n lines)"
