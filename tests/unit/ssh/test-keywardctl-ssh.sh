#!/bin/bash
# test-keywardctl-ssh.sh: `keywardctl ssh sshd-config` and `ssh authorized-keys` without a
# daemon: the drop-in names the accounts the policy's on_remote = "ssh-key" rules cover
# (verify-required where the rule requires UV); authorized-keys fails closed (nothing on
# stdout) on a policy or credential file it cannot use. Runs as root (root-owned files).
# Usage: test-keywardctl-ssh.sh KEYWARDCTL
set -u
ctl=$1
[ -x "$ctl" ] || { echo "FAIL: $ctl is not executable"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "FAIL: run as root (credential files must be root-owned)"; exit 1; }

tmp=$(mktemp -d)
chmod 0755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
fails=0
n=0

run() { # NAME EXPECTED_RC CMD...
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
expect() { # NAME HAYSTACK NEEDLE
	n=$((n + 1))
	[[ $2 == *"$3"* ]] || { echo "FAIL [$1]: expected '$3' in:"; echo "$2"; fails=$((fails + 1)); }
}
expect_not() { # NAME HAYSTACK NEEDLE
	n=$((n + 1))
	[[ $2 != *"$3"* ]] || { echo "FAIL [$1]: did not expect '$3' in:"; echo "$2"; fails=$((fails + 1)); }
}

mkdir -m 0755 "$tmp/creds"
cat >"$tmp/keyward.conf" <<CONF
settings = { credentials_dir = "$tmp/creds"; state_dir = "$tmp/state"; };
rules = (
	{ name = "root-ssh"; match = { users = ["root"]; services = ["sshd"]; };
	  require = "key"; on_remote = "ssh-key"; user_verification = "required"; },
	{ name = "ops-ssh"; match = { users = ["nobody", "daemon"]; services = ["sshd"]; };
	  require = "key"; on_remote = "ssh-key"; },
	{ name = "bin-remote-deny"; match = { users = ["bin"]; services = ["sshd"]; };
	  require = "key"; on_remote = "deny"; }
);
default = { require = "none"; };
CONF

run sshd-config 0 "$ctl" -c "$tmp/keyward.conf" ssh sshd-config
expect "ExposeAuthInfo" "$out" $'\nExposeAuthInfo yes\n'
expect "touch block" "$out" $'Match User daemon,nobody\n\tAuthorizedKeysCommand '
expect "uv block" "$out" $'Match User root\n\tAuthorizedKeysCommand '
expect "command" "$out" "keywardctl ssh authorized-keys %u"
expect "command user" "$out" $'\tAuthorizedKeysCommandUser root\n\tAuthorizedKeysFile none'
expect "verify-required for root" "$out" $'Match User root\n\tAuthorizedKeysCommand '"$(printf '%s' "$out" | sed -n 's/^\tAuthorizedKeysCommand //p' | head -1)"$'\n\tAuthorizedKeysCommandUser root\n\tAuthorizedKeysFile none\n\tPubkeyAuthOptions verify-required'
expect_not "bin is deny, not ssh-key" "$(printf '%s\n' "$out" | grep '^Match User')" "bin"
# The UV block is last: nothing after root's PubkeyAuthOptions; the touch block has none.
n=$((n + 1))
[ "$(printf '%s\n' "$out" | grep -c 'PubkeyAuthOptions verify-required')" = 1 ] ||
	{ echo "FAIL [one verify-required]"; fails=$((fails + 1)); }

cat >"$tmp/none.conf" <<CONF
settings = { credentials_dir = "$tmp/creds"; };
rules = ( { name = "r"; match = { users = ["root"]; }; require = "key"; } );
default = { require = "none"; };
CONF
run no-ssh-rules 0 "$ctl" -c "$tmp/none.conf" ssh sshd-config
expect "no account" "$out" 'No account is covered by an on_remote = "ssh-key" rule'
expect_not "no Match" "$out" "Match"

# authorized-keys: no file → nothing, exit 0; a broken policy or file → nothing, exit != 0
run ak-none 0 "$ctl" -c "$tmp/keyward.conf" ssh authorized-keys root
[ -z "$out" ] || { echo "FAIL [ak-none]: output '$out'"; fails=$((fails + 1)); }
printf '[credential]\nlabel=x\ntype=ssh-sk\n' >"$tmp/creds/root.creds"
chmod 0600 "$tmp/creds/root.creds"
run ak-corrupt 1 "$ctl" -c "$tmp/keyward.conf" ssh authorized-keys root
[ -z "$out" ] || { echo "FAIL [ak-corrupt]: output '$out'"; fails=$((fails + 1)); }
expect "ak-corrupt message" "$err" "no key is allowed"
chmod 0666 "$tmp/creds/root.creds"
run ak-unsafe 1 "$ctl" -c "$tmp/keyward.conf" ssh authorized-keys root
expect "ak-unsafe message" "$err" "world-writable"
run ak-no-policy 3 "$ctl" -c "$tmp/missing.conf" ssh authorized-keys root
[ -z "$out" ] || { echo "FAIL [ak-no-policy]: output '$out'"; fails=$((fails + 1)); }
run ak-bad-user 2 "$ctl" -c "$tmp/keyward.conf" ssh authorized-keys "../etc"

# usage
run usage 2 "$ctl" ssh
run usage-unknown 2 "$ctl" ssh frobnicate
run help 0 "$ctl" ssh --help
run import-usage 2 "$ctl" ssh import root
run import-att-alone 2 "$ctl" ssh import root /dev/null --attestation /dev/null
run import-missing 3 "$ctl" ssh import root "$tmp/nope.pub"
printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtqQ7RrVY3GzQUVbLQj6mMqEDM3SuT7cn7M6oN6hQb0 plain@laptop\n' >"$tmp/plain.pub"
run import-plain 1 "$ctl" ssh import root "$tmp/plain.pub"
expect "plain reported" "$err" "skipped: ssh-ed25519 plain@laptop is an ordinary SSH key"
expect "plain: what to do" "$err" "ssh-keygen -t ecdsa-sk"

echo "test-keywardctl-ssh: $((n - fails)) of $n checks passed"
[ "$fails" = 0 ]
