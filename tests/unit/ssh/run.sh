#!/bin/bash
# run.sh: the SSH unit tests on real OpenSSH output. Inside keyward-testbed (the emulated
# key under umockdev), ssh-keygen makes ecdsa-sk and ed25519-sk keys with attestation, an
# ordinary ed25519 key, and ssh-keygen -lf their fingerprints; a real ssh-agent holds them.
# Then test-ssh-sk / test-ssh-agent (ARGS: which, the binary) check lib/ssh-*.c against it.
set -euo pipefail
: "${KEYWARD_TESTBED:?KEYWARD_TESTBED must name the keyward-testbed binary}"
AAGUID=5353482d-636f-7265-0000-000000000017

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

case ${1:-} in
outer)
	shift
	exec "$KEYWARD_TESTBED" --aaguid "$AAGUID" -- bash "$0" inner "$@"
	;;
inner)
	shift
	for t in ssh-keygen ssh-agent ssh-add; do
		command -v "$t" >/dev/null || fail "required tool '$t' is not installed (scripts/deps)"
	done
	dir=$(mktemp -d)
	agent_pid=
	trap '[[ -n $agent_pid ]] && kill "$agent_pid"; rm -rf "$dir"' EXIT
	head -c 32 /dev/urandom >"$dir/chal"
	echo "${AAGUID//-/}" >"$dir/aaguid"
	# The touch comes from the emulated key (AUTO); ssh-keygen asks for none.
	ssh-keygen -q -t ecdsa-sk -N '' -C alice@laptop -f "$dir/ecdsa" \
		-O write-attestation="$dir/ecdsa.att" -O challenge="$dir/chal" </dev/null ||
		fail "ssh-keygen -t ecdsa-sk"
	ssh-keygen -q -t ed25519-sk -N '' -C bob@desk -f "$dir/ed" \
		-O write-attestation="$dir/ed.att" -O challenge="$dir/chal" </dev/null ||
		fail "ssh-keygen -t ed25519-sk"
	ssh-keygen -q -t ecdsa-sk -N '' -C carol@other -f "$dir/ecdsa2" </dev/null ||
		fail "ssh-keygen -t ecdsa-sk (second)"
	ssh-keygen -q -t ed25519 -N '' -C plain@laptop -f "$dir/plain" </dev/null
	for k in ecdsa ed ecdsa2 plain; do
		ssh-keygen -lf "$dir/$k.pub" >"$dir/$k.fp"
	done
	# ssh-agent is setgid _ssh on Debian, so the loader drops umockdev's LD_PRELOAD and
	# its ssh-sk-helper would not see the emulated key: run a plain copy of it.
	cp "$(command -v ssh-agent)" "$dir/ssh-agent"
	chmod 0755 "$dir/ssh-agent"
	eval "$("$dir/ssh-agent" -s -a "$dir/agent.sock")" >/dev/null
	agent_pid=$SSH_AGENT_PID
	ssh-add -q "$dir/ecdsa" "$dir/ecdsa2" "$dir/ed" "$dir/plain" 2>/dev/null || fail "ssh-add"
	[[ $(ssh-add -l | wc -l) == 4 ]] || fail "the agent does not hold the four keys"
	"$@" "$dir"
	;;
*)
	echo "usage: run.sh outer TEST-BINARY" >&2
	exit 2
	;;
esac
