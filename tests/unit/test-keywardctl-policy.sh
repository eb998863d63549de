#!/bin/bash
# test-keywardctl-policy.sh: `keywardctl policy check|explain` on the built binary —
# output lines, exit codes, global and local -c, the shipped example policy.
# Usage: test-keywardctl-policy.sh KEYWARDCTL DIST_KEYWARD_CONF
set -u
ctl=$1
dist=$2
[ -x "$ctl" ] || { echo "FAIL: $ctl is not executable"; exit 1; }
[ -f "$dist" ] || { echo "FAIL: $dist missing"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
n=0

# run NAME EXPECTED_RC CMD...: runs, keeps stdout/stderr in $out/$err
run() {
	local name=$1 want=$2
	shift 2
	n=$((n + 1))
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	out=$(cat "$tmp/out")
	err=$(cat "$tmp/err")
	if [ "$rc" != "$want" ]; then
		echo "FAIL [$name]: exit $rc, want $want"
		echo "--- stdout:"; echo "$out"; echo "--- stderr:"; echo "$err"
		fails=$((fails + 1))
	fi
}
# has NAME TEXT HAYSTACK
has() {
	n=$((n + 1))
	if ! grep -qxF -- "$2" <<<"$3"; then
		echo "FAIL [$1]: no line: $2"
		echo "--- got:"; echo "$3"
		fails=$((fails + 1))
	fi
}
lacks() {
	n=$((n + 1))
	if grep -qF -- "$2" <<<"$3"; then
		echo "FAIL [$1]: unexpected: $2"
		fails=$((fails + 1))
	fi
}

# a group that exists on any machine: the current user's primary group
mygroup=$(id -gn)
good=$tmp/good.conf
cat >"$good" <<CONF
settings = { timeout = 2000; failmode = "open"; };
rules = (
  { name = "roots";
    match = { uids = "0"; services = ["sudo", "su"]; };
    require = "key"; user_verification = "required";
    removal = { action = "end-elevation"; }; },
  { name = "ops";
    match = { groups = ["$mygroup"]; not = { users = "breakglass"; }; };
    require = "key"; on_remote = "none"; },
  { name = "nosvc"; match = { uids = "100-999"; }; require = "deny"; reason = "service account"; }
);
default = { require = "none"; };
CONF

bad=$tmp/bad.conf
cat >"$bad" <<'CONF'
settings = {
  timeout = 5;
};
rules = (
  { name = "a"; require = "key"; },
  { name = "b"; match = { users = "x"; }; require = "deny"; },
  { name = "c"; match = { users = "y"; }; require = "sometimes"; }
);
default = { require = "none"; };
CONF

# check: valid with a warning
run check-good 0 "$ctl" policy check -c "$good"
has check-good "$good:1: warning: failmode = \"open\": covered users get in without a key whenever keywardd cannot be reached" "$err"
has check-good "$good:8: warning: rule 'ops': user \"breakglass\" does not exist (getpwnam)" "$err"
# the file is the test user's, not root's: a warning unless we are root
if [ "$(id -u)" != 0 ]; then
	has check-good "$good: warning: is not owned by root; run: chown root:root FILE" "$err"
fi
# the summary counts every warning printed (PAM services missing here add some)
plural() { [ "$1" = 1 ] && echo "1 warning" || echo "$1 warnings"; }
has check-good "$good: valid ($(plural "$(grep -c ': warning: ' <<<"$err")"))" "$out"

# the global -c works too; -q hides warnings and the summary
run check-global 0 "$ctl" -c "$good" policy check
has check-global "$good:1: warning: failmode = \"open\": covered users get in without a key whenever keywardd cannot be reached" "$err"
run check-quiet 0 "$ctl" -q -c "$good" policy check
[ -z "$out$err" ] || { echo "FAIL [check-quiet]: output: $out $err"; fails=$((fails + 1)); }

# check: invalid → 1, each error with file:line, and a summary
run check-bad 1 "$ctl" policy check -c "$bad"
has check-bad "$bad:2: error: 'timeout' is 5, expected 100..600000 (milliseconds)" "$err"
has check-bad "$bad:7: error: 'require' is \"sometimes\", expected one of: none, key, deny" "$err"
has check-bad "$bad:6: error: rule 'b' can never match: the earlier rule 'a' (line 5) matches every request it matches" "$err"
has check-bad "$bad: NOT valid: 3 errors, 0 warnings; keyward will not apply it" "$err"
lacks check-bad "valid (" "$out"

# syntax error
printf 'default = { require = = "none"; };\n' >"$tmp/syntax.conf"
run check-syntax 1 "$ctl" policy check -c "$tmp/syntax.conf"
has check-syntax "$tmp/syntax.conf:1: error: syntax error" "$err"

# unknown group: an error from the NSS check
printf 'rules = ( { name = "g"; match = { groups = "no-such-group-kw"; services = "login"; }; require = "key"; } );\ndefault = { require = "none"; };\n' >"$tmp/group.conf"
run check-group 1 "$ctl" policy check -c "$tmp/group.conf"
has check-group "$tmp/group.conf:1: error: rule 'g': group \"no-such-group-kw\" does not exist (getgrnam)" "$err"

# a trust anchor that does not exist: an error; one that does: fine
printf 'rules = ( { name = "t"; match = { services = "login"; }; require = "key";\n  attestation = "verified"; trust_anchors = ["%s", "%s/missing.pem"]; } );\ndefault = { require = "none"; };\n' "$good" "$tmp" >"$tmp/anchor.conf"
run check-anchor 1 "$ctl" policy check -c "$tmp/anchor.conf"
has check-anchor "$tmp/anchor.conf:2: error: rule 't': trust anchor $tmp/missing.pem is not a readable file" "$err"
lacks check-anchor "trust anchor $good" "$err"

# missing file → 3 (could not check); a symlink is refused
run check-missing 3 "$ctl" policy check -c "$tmp/nope.conf"
has check-missing "$tmp/nope.conf: error: does not exist" "$err"
ln -s "$good" "$tmp/link.conf"
run check-symlink 3 "$ctl" policy check -c "$tmp/link.conf"
has check-symlink "$tmp/link.conf: error: is a symbolic link; replace it with a regular file" "$err"

# usage errors → 2
run usage-noverb 2 "$ctl" policy
run usage-sub 2 "$ctl" policy frobnicate
run usage-arg 2 "$ctl" policy check extra
run usage-explain 2 "$ctl" policy explain -c "$good" --service sudo
# without --service it lists the covered PAM services (coverage-test.sh); --root goes with that
run usage-explain-root 2 "$ctl" policy explain -c "$good" --user root --service sudo --root /
run usage-explain-tty 2 "$ctl" policy explain -c "$good" --user root --tty /dev/tty1

# the shipped example passes
run check-dist 0 "$ctl" policy check -c "$dist"
has check-dist "$dist: valid ($(plural "$(grep -c ': warning: ' <<<"$err")"))" "$out"
lacks check-dist ": error: " "$err"

# explain: root via NSS (uid 0), local sudo
run explain-root 0 "$ctl" policy explain -c "$good" --user root --service sudo --tty /dev/pts/1
has explain-root "Rule: roots at $good:3" "$out"
has explain-root "Login: local" "$out"
has explain-root "Decision: a registered security key is required" "$out"
has explain-root "User verification: required (PIN or biometric on the key)" "$out"
has explain-root "On key removal: the elevated process (sudo, su) is ended at once" "$out"
has explain-root "Remote logins: refused (the rule sets no on_remote)" "$out"

# explain: remote root → refused with the reason
run explain-remote 0 "$ctl" -c "$good" policy explain --user root --service su --rhost "[2001:db8::7]:22"
has explain-remote "Login: remote" "$out"
has explain-remote "Decision: refused" "$out"
has explain-remote "Reason: a security key cannot be touched over a remote login, and the rule sets no on_remote outcome" "$out"

# explain: a hypothetical user with --groups/--uid; negation; on_remote none; --remote
run explain-ops 0 "$ctl" policy explain -c "$good" --user alice --uid 5000 --groups users,$mygroup --service login
has explain-ops "User: alice (uid 5000), groups: users,$mygroup" "$out"
has explain-ops "Rule: ops at $good:7" "$out"
run explain-ops-remote 0 "$ctl" policy explain -c "$good" --user alice --uid 5000 --groups $mygroup --service login --remote
has explain-ops-remote "Decision: not covered for this remote login (on_remote = \"none\"): keyward steps aside and the other PAM modules decide" "$out"
run explain-breakglass 0 "$ctl" policy explain -c "$good" --user breakglass --uid 5001 --groups $mygroup --service login
has explain-breakglass "Rule: default (no rule matched) at $good:12" "$out"
has explain-breakglass "Decision: not covered: keyward steps aside and the other PAM modules decide" "$out"
run explain-svc 0 "$ctl" policy explain -c "$good" --user svc --uid 150 --groups "" --service cron
has explain-svc "Decision: refused" "$out"
has explain-svc "Reason: service account" "$out"

# explain: unknown user without --uid → 3; bad file → 1
run explain-nouser 3 "$ctl" policy explain -c "$good" --user no-such-user-kw --service sudo
run explain-bad 1 "$ctl" policy explain -c "$bad" --user root --service sudo
has explain-bad "$bad: NOT valid; nothing to explain" "$err"

echo "test-keywardctl-policy: $n checks, $fails failed"
[ "$fails" = 0 ]
