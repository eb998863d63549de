# lib.sh: helpers for the bench acceptance tests (sourced after `set -euo pipefail`).
# Scripts re-run themselves inside keyward-testbed: `bench_phase` picks the phase.

: "${KEYWARD_TESTBED:?KEYWARD_TESTBED must name the keyward-testbed binary}"

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

assert_contains() { # HAYSTACK NEEDLE WHAT
	[[ $1 == *"$2"* ]] || fail "$3: expected '$2' in:"$'\n'"$1"
}

assert_not_contains() { # HAYSTACK NEEDLE WHAT
	[[ $1 != *"$2"* ]] || fail "$3: did not expect '$2' in:"$'\n'"$1"
}

assert_eq() { # GOT WANT WHAT
	[[ $1 == "$2" ]] || fail "$3: got '$1', want '$2'"
}

require_tools() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null || fail "required tool '$t' is not installed (scripts/deps)"
	done
}

ctl() {
	"$KEYWARD_TESTBED" ctl "$KEYWARD_TESTBED_CTL" "$@"
}

# Node (/dev/hidrawN) of key INDEX as the testbed reports it.
key_node() {
	ctl list | awk -v k="$1" '$1 == k { print $2 }'
}

b64rand() {
	head -c 32 /dev/urandom | base64 -w0
	echo
}

# fido2-cred -M on DEV for rp bench.example; writes DIR/cred.out and DIR/cred.pub
# (credential id + PEM key). Extra args (e.g. -v) go to fido2-cred -M; PIN on stdin.
make_credential() { # DIR DEV [fido2-cred args...]
	local dir=$1 dev=$2
	shift 2
	{
		b64rand
		echo bench.example
		echo bench-user
		b64rand
	} >"$dir/cred.in"
	setsid -w fido2-cred -M "$@" -i "$dir/cred.in" -o "$dir/cred.out" "$dev" es256 ||
		fail "fido2-cred -M on $dev"
	fido2-cred -V -i "$dir/cred.out" -o "$dir/cred.pub" es256 || fail "fido2-cred -V of a fresh credential"
}

# fido2-assert -G with the credential of DIR; writes DIR/assert.out. Returns its status.
get_assertion() { # DIR DEV [fido2-assert args...]
	local dir=$1 dev=$2
	shift 2
	{
		b64rand
		echo bench.example
		head -1 "$dir/cred.pub"
	} >"$dir/assert.in"
	setsid -w fido2-assert -G "$@" -i "$dir/assert.in" -o "$dir/assert.out" "$dev"
}

# Signature counter in an assertion's authenticator data (CBOR byte string, base64).
sign_count() { # ASSERT_OUT
	sed -n 3p "$1" | base64 -d | od -An -tu1 -j 35 -N 4 | awk '{ print (($1 * 256 + $2) * 256 + $3) * 256 + $4 }'
}

# pam_wrapper 1.1.4 races when several wrapped processes start at once: one at a time,
# also across ctest runs of other build directories.
PAM_WRAPPER_LOCK=${PAM_WRAPPER_LOCK:-/tmp/keyward-pam_wrapper.lock}
pam_wrapped() { # SERVICE_DIR CMD...
	local svc=$1
	shift
	flock "$PAM_WRAPPER_LOCK" env LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}libpam_wrapper.so" PAM_WRAPPER=1 \
		PAM_WRAPPER_SERVICE_DIR="$svc" "$@"
}
