#!/bin/bash
# man-options.sh: the man pages document exactly the options the code knows.
#  - every long option in a `struct option` table of tools/*.c appears in keywardctl.8
#    as `Fl -NAME`, and every `Fl -NAME` there exists in some table;
#  - every verb of keywardctl's verbs[] table appears as `Cm VERB`;
#  - every option keywardd's getopt table knows appears in keywardd.8 (and back);
#  - every option pam_keyward.c's options_parse() accepts appears in pam_keyward.8 as
#    `Cm NAME` (and every `Cm NAME=`/`Cm NAME` under OPTIONS exists in the code).
# Usage: man-options.sh SOURCE_DIR
set -euo pipefail
src=$1
fail=0
complain() { echo "man-options: $*" >&2; fail=1; }

long_options() { # FILES... -> one long option name per line
	grep -ho '{ *"[a-z0-9-]*", *\(no\|required\|optional\)_argument' "$@" |
		sed 's/{ *"\([a-z0-9-]*\)".*/\1/' | sort -u
}
page_long_options() { # PAGE -> names used with Fl -NAME
	grep -o 'Fl -[a-z0-9][a-z0-9-]*' "$1" | sed 's/^Fl -//' | sort -u
}

short_options() { # FILES... -> one short option letter per line, from getopt_long strings
	grep -ho 'getopt_long([^"]*"[^"]*"' "$@" | sed 's/.*"\([^"]*\)"/\1/' | tr -d '+:-' |
		fold -w1 | sort -u
}

# keywardctl
ctl_page=$src/docs/keywardctl.8
[ -r "$ctl_page" ] || complain "missing $ctl_page"
code=$(long_options "$src"/tools/*.c)
[ -n "$code" ] || complain "found no struct option tables in tools/*.c"
for o in $code; do
	grep -q "Fl -$o\b" "$ctl_page" || complain "keywardctl.8 does not document --$o"
done
for o in $(page_long_options "$ctl_page"); do
	grep -qx "$o" <<<"$code" || complain "keywardctl.8 documents --$o, which no verb accepts"
done
for o in $(short_options "$src"/tools/*.c); do
	grep -Eq "Fl $o( |$)" "$ctl_page" || complain "keywardctl.8 does not document -$o"
done
verbs=$(sed -n '/static const Verb verbs\[\]/,/^};/s/.*{ *"\([a-z0-9-]*\)", *verb_.*/\1/p' "$src/tools/keywardctl.c")
[ -n "$verbs" ] || complain "found no verbs in tools/keywardctl.c"
for v in $verbs; do
	grep -Eq "^\.(It|Nm).* Cm $v( |$)|^\.Cm $v( |$)|^\.Ss $v( |$)" "$ctl_page" ||
		complain "keywardctl.8 does not document the verb $v"
done

# keywardd
d_page=$src/docs/keywardd.8
d_code=$(long_options "$src"/daemon/main.c)
[ -n "$d_code" ] || complain "found no struct option table in daemon/main.c"
for o in $d_code; do
	grep -q "Fl -$o\b" "$d_page" || complain "keywardd.8 does not document --$o"
done
for o in $(short_options "$src"/daemon/main.c); do
	grep -Eq "Fl $o( |$)" "$d_page" || complain "keywardd.8 does not document -$o"
done
for o in $(page_long_options "$d_page"); do
	grep -qx "$o" <<<"$d_code" || complain "keywardd.8 documents --$o, which keywardd does not accept"
done

# pam_keyward
p_page=$src/docs/pam_keyward.8
p_src=$src/pam_module/pam_keyward.c
body=$(sed -n '/^static int options_parse(/,/^}/p' "$p_src")
[ -n "$body" ] || complain "cannot find options_parse() in $p_src"
p_code=$( { grep -o 'streq(a, "[a-z_]*")' <<<"$body" | sed 's/.*"\(.*\)".*/\1/'
	grep -o 'strneq(a, "[a-z_]*=' <<<"$body" | sed 's/.*"\(.*\)=/\1/'; } | sort -u)
[ -n "$p_code" ] || complain "options_parse() accepts no option?"
for o in $p_code; do
	grep -Eq "^\.It Cm $o( |$|=)" "$p_page" || complain "pam_keyward.8 does not document the option $o"
done
p_doc=$(sed -n '/^\.Sh OPTIONS/,/^\.Sh /p' "$p_page" | sed -n 's/^\.It Cm \([a-z_]*\).*/\1/p' | sort -u)
for o in $p_doc; do
	grep -qx "$o" <<<"$p_code" || complain "pam_keyward.8 documents the option $o, which the module does not parse"
done

[ "$fail" -eq 0 ] || { echo "man-options: FAIL" >&2; exit 1; }
echo "man-options: keywardctl ($(wc -w <<<"$code") options, $(wc -w <<<"$verbs") verbs), keywardd ($(wc -w <<<"$d_code")), pam_keyward ($(wc -w <<<"$p_code")): all documented"
