#!/bin/bash
# testbed.sh: keyward-testbed itself — environment it exports, exit status, ctl errors,
# clean-up after a normal end, a failing command, SIGTERM, and of orphaned processes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_tools fido2-token gdbus

case ${1:-outer} in
outer)
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT

	# exported environment; an existing LD_PRELOAD is kept (ASan: a preload before its runtime)
	LD_PRELOAD=libnss_wrapper.so NSS_WRAPPER_DISABLE_DEEPBIND=1 \
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
		"$KEYWARD_TESTBED" --bus -- bash "$0" env "$work/env"
	. "$work/env"
	for d in "$t_state" "$t_umockdev" "$(dirname "$t_ctl")"; do
		[[ ! -e $d ]] || fail "$d still exists after the testbed ended"
	done

	# the command's exit status, also for a signal
	set +e
	"$KEYWARD_TESTBED" -- sh -c 'exit 7'
	st=$?
	"$KEYWARD_TESTBED" -- sh -c 'kill -USR1 $$'
	st2=$?
	"$KEYWARD_TESTBED" -- /nonexistent/command 2>/dev/null
	st3=$?
	set -e
	assert_eq "$st" 7 "exit status of the command"
	assert_eq "$st2" $((128 + 10)) "status of a command killed by SIGUSR1"
	assert_eq "$st3" 127 "status when the command cannot run"

	# SIGTERM: forwarded to the command; bus, mock, temp dirs and orphans cleaned up
	"$KEYWARD_TESTBED" --bus --ctl "$work/ctl.sock" -- bash "$0" wait "$work" &
	tb=$!
	for _ in $(seq 100); do [[ -s $work/ready ]] && break; sleep 0.1; done
	[[ -s $work/ready ]] || fail "testbed with --bus did not start"
	. "$work/ready"
	kill -0 "$orphan" || fail "orphan not running"
	kill -TERM "$tb"
	set +e
	wait "$tb"
	st=$?
	set -e
	assert_eq "$st" 143 "status after SIGTERM"
	[[ -s $work/got-term ]] || fail "the command did not receive the SIGTERM"
	for _ in $(seq 50); do kill -0 "$orphan" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$orphan" 2>/dev/null || fail "orphaned process $orphan survived the testbed"
	[[ ! -e $t_state && ! -e $t_umockdev && ! -e $work/ctl.sock ]] || fail "temp dirs left after SIGTERM"
	if pgrep -f "$t_state" >/dev/null || pgrep -f "$(dirname "$t_logind_log")" >/dev/null; then
		fail "bus processes left after SIGTERM: $(pgrep -af "$(dirname "$t_logind_log")")"
	fi

	# SIGKILL: no clean-up is possible, the next testbed removes what is left and can
	# take over the control socket
	rm -f "$work/ready"
	"$KEYWARD_TESTBED" --bus --ctl "$work/ctl.sock" -- bash "$0" wait "$work" &
	tb=$!
	for _ in $(seq 100); do [[ -s $work/ready ]] && break; sleep 0.1; done
	[[ -s $work/ready ]] || fail "testbed did not start"
	. "$work/ready"
	kill -KILL "$tb"
	wait "$tb" || true
	kill "$orphan" 2>/dev/null || true # the testbed cannot end it after SIGKILL
	[[ -e $t_state && -S $work/ctl.sock ]] || fail "expected leftovers after SIGKILL"
	"$KEYWARD_TESTBED" --ctl "$work/ctl.sock" -- true || fail "stale control socket not taken over"
	[[ ! -e $t_state && ! -e $t_umockdev ]] || fail "leftovers of a killed testbed not swept"
	echo "PASS"
	;;
env)
	assert_contains "$LD_PRELOAD" "libnss_wrapper.so" "LD_PRELOAD keeps the caller's value"
	assert_contains "$LD_PRELOAD" "libumockdev-preload.so.0" "LD_PRELOAD"
	for v in UMOCKDEV_DIR KEYWARD_TESTBED_CTL KEYWARD_TESTBED_STATE KEYWARD_TESTBED_CA DBUS_SYSTEM_BUS_ADDRESS \
		KEYWARD_TESTBED_LOGIND_LOG; do
		[[ -n ${!v:-} ]] || fail "$v not exported"
	done
	[[ -d $UMOCKDEV_DIR && -S $KEYWARD_TESTBED_CTL && -d $KEYWARD_TESTBED_STATE && -f $KEYWARD_TESTBED_CA ]] ||
		fail "exported paths do not exist"
	gdbus call --system -d org.freedesktop.login1 -o /org/freedesktop/login1 \
		-m org.freedesktop.login1.Manager.ListSessions >/dev/null || fail "logind mock on DBUS_SYSTEM_BUS_ADDRESS"
	[[ -s $KEYWARD_TESTBED_LOGIND_LOG ]] || fail "logind mock log is empty"
	assert_contains "$(cat "$KEYWARD_TESTBED_LOGIND_LOG")" "ListSessions" "logind mock log"
	# ctl errors are clear and fail
	if out=$(ctl unplug 5 2>&1); then fail "ctl unplug 5 succeeded"; fi
	assert_contains "$out" "no key '5'" "ctl error text"
	if out=$(ctl frobnicate 2>&1); then fail "unknown ctl request succeeded"; fi
	assert_contains "$out" "unknown request" "ctl error text"
	if out=$(ctl touch-mode 0 sometimes 2>&1); then fail "ctl touch-mode with a bad mode succeeded"; fi
	ctl touch-mode 0 never 100
	assert_contains "$(ctl list)" "plugged never 100" "touch mode in ctl list"
	ctl counter-mode 0 rewound
	assert_contains "$(ctl list)" "rewound" "counter mode in ctl list"
	{
		echo "t_state=$KEYWARD_TESTBED_STATE"
		echo "t_umockdev=$UMOCKDEV_DIR"
		echo "t_ctl=$KEYWARD_TESTBED_CTL"
	} >"$2"
	;;
wait)
	trap 'echo yes > "$2/got-term"; exit 143' TERM
	sleep 1000 </dev/null >/dev/null 2>&1 &
	orphan=$!
	disown
	{
		echo "orphan=$orphan"
		echo "t_state=$KEYWARD_TESTBED_STATE"
		echo "t_umockdev=$UMOCKDEV_DIR"
		echo "t_logind_log=$KEYWARD_TESTBED_LOGIND_LOG"
	} >"$2/ready.tmp"
	mv "$2/ready.tmp" "$2/ready"
	while :; do sleep 0.1; done
	;;
*) fail "unknown phase $1" ;;
esac
