#!/usr/bin/python3
'''bench/flood.py: a covered login while an unprivileged user floods keywardd.

alice (covered, key enrolled) logs in through pam_keyward.so + keywardd, one cold
pam-driver process per login (the touch comes after a fixed delay), first on a quiet
daemon, then while an unprivileged local user floods the daemon with Check and
Authenticate calls for itself over many bus connections (keyward-bench-flood, a C client
that keeps K calls in flight per connection):
  - "uncovered flood": nobody, whom no rule covers;
  - "covered flood": mallory, covered by the same rule as alice, with a key enrolled that
    is not plugged in (every Authenticate probes the plugged keys, fails, and counts
    towards her lockout).
The clock of each login starts before pam_authenticate and stops when it returns (the
PAM module's Check, Authenticate and the touch). A login that fails counts as failed, with
the time it took. Prints one table: p50/p99/max per scenario, failures, the flood's rate.

Runs inside keyward-testbed --keys 1 --touch-delay 100 --bus --bus-policy
dist/org.keyward.Keyward1.conf; `cmake --build BUILD --target bench-flood` does that.
'''

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, '..', 'tests', 'pam'),
                os.path.join(HERE, '..', 'tests', 'integration', 'daemon')]
# pylint: disable=wrong-import-position
import pam_e2e_test as e2e  # noqa: E402
from auth import percentile  # noqa: E402
from daemon_test import open_bus_for_others  # noqa: E402

# The flooding uids must exist for the bus too (dbus-daemon asks the real NSS): nobody and
# uid 9 (news on Debian), which keywardd's NSS (nss_wrapper) calls mallory.
MALLORY_UID = 9
EXTRA_PASSWD = ('nobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n'
                f'mallory:x:{MALLORY_UID}:{MALLORY_UID}:Mallory:/home/mallory:/bin/sh\n')
EXTRA_GROUP = f'nogroup:x:65534:\nmallory:x:{MALLORY_UID}:\n'


def logins(bench, rounds):
    '''ROUNDS cold logins of alice; returns (times in ms, failures).'''
    times, failed = [], 0
    for _ in range(rounds):
        rc, out, err, took = bench.run('bench-keyward', 'alice', [('auth', 'PAM_SUCCESS')],
                                       extra=['--quiet', '--timing'])
        got = [float(line.split('ms=')[1]) for line in out.splitlines()
               if line.startswith('timing:')]
        times.append(got[0] if got else took * 1000)
        if rc != 0:
            failed += 1
            why = [x for x in err.splitlines() if 'keyward' in x and ('error' in x.lower() or 'refused' in x)]
            sys.stderr.write(f'login failed: {out.strip()} {" | ".join(why)[-1500:]}\n')
    return times, failed


def with_flood(bench, args, uid, gid, user, rounds):
    '''ROUNDS logins while USER floods; returns (times, failures, flood summary line).'''
    p = subprocess.Popen([args.flood, '--uid', str(uid), '--gid', str(gid), '--user', user,
                          '--service', 'bench-keyward', '--connections', str(args.connections),
                          '--inflight', str(args.inflight)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        e2e.check(line.strip() == 'ready', f'the flood did not start: {line!r}')
        time.sleep(args.warmup)
        times, failed = logins(bench, rounds)
    finally:
        p.stdin.close()
        out = p.stdout.read()
        p.wait(timeout=60)
    summary = next((x for x in out.splitlines() if x.startswith('flood:')), '')
    e2e.check(summary, f'no summary from the flood (exit {p.returncode}): {out!r}')
    return times, failed, summary


def main():
    ap = argparse.ArgumentParser()
    for opt in ('--keywardd', '--keywardctl', '--module', '--driver', '--testbed', '--flood'):
        ap.add_argument(opt, required=True)
    ap.add_argument('--rounds', type=int, default=40)
    ap.add_argument('--connections', type=int, default=200)
    ap.add_argument('--inflight', type=int, default=4)
    ap.add_argument('--warmup', type=float, default=2.0)
    ap.add_argument('--touch-delay', type=int, default=100)
    args = ap.parse_args()

    for f in (args.module, args.driver, args.keywardd, args.flood):
        e2e.check(os.path.exists(f), f'missing {f}')
    bench = e2e.E2E(argparse.Namespace(keywardd=args.keywardd, keywardctl=args.keywardctl,
                                       module=args.module, driver=args.driver,
                                       testbed=args.testbed, policy_timeout=30000,
                                       verbose=False))
    rows = []
    try:
        with open(bench.nss_env['NSS_WRAPPER_PASSWD'], 'a', encoding='utf-8') as f:
            f.write(EXTRA_PASSWD)
        with open(bench.nss_env['NSS_WRAPPER_GROUP'], 'a', encoding='utf-8') as f:
            f.write(EXTRA_GROUP)
        with open(bench.nss_env['NSS_WRAPPER_GROUP'], encoding='utf-8') as f:
            groups = f.read().replace('wheel:x:10:alice', 'wheel:x:10:alice,mallory')
        with open(bench.nss_env['NSS_WRAPPER_GROUP'], 'w', encoding='utf-8') as f:
            f.write(groups)
        bench.start_daemon()
        # mallory's key is enrolled and then taken away; alice's is the one plugged in.
        bench.enroll('mallory', pin=None)
        bench.ctl('unplug', '0')
        bench.ctl('plug-new')
        bench.enroll('alice', pin=None)
        open_bus_for_others()

        logins(bench, 3)  # warm the page cache; not counted
        times, failed = logins(bench, args.rounds)
        rows.append(('no flood', times, failed, ''))
        for label, uid, user in (('uncovered flood (nobody)', 65534, 'nobody'),
                                 ('covered flood (mallory)', MALLORY_UID, 'mallory')):
            times, failed, summary = with_flood(bench, args, uid, uid, user, args.rounds)
            rows.append((label, times, failed, summary))
        alive = bench.daemon.poll() is None
    finally:
        bench.close()

    print()
    print(f'Covered login (alice, touch after {args.touch_delay} ms, one cold pam-driver per '
          f'login, {args.rounds} logins per row) while an unprivileged user floods keywardd '
          f'over {args.connections} connections x {args.inflight} calls in flight')
    print(f'{"scenario":<26} {"p50 ms":>8} {"p99 ms":>8} {"max ms":>8} {"failed":>7} '
          f'{"p99 / quiet":>11}  flood')
    quiet_p99 = percentile(rows[0][1], 0.99)
    for label, times, failed, summary in rows:
        rate = ''
        m = re.search(r'replies=(\d+).*busy=(\d+) seconds=([\d.]+)', summary)
        if m:
            rate = (f'{int(m.group(1)) / float(m.group(3)):.0f} replies/s '
                    f'({int(m.group(2)) / float(m.group(3)):.0f}/s busy)')
        print(f'{label:<26} {statistics.median(times):>8.1f} {percentile(times, 0.99):>8.1f} '
              f'{max(times):>8.1f} {failed:>7} {percentile(times, 0.99) / quiet_p99:>11.2f}  '
              f'{rate}')
    e2e.check(alive, 'keywardd died during the flood')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except Exception as ex:  # pylint: disable=broad-except
        print(f'bench/flood: FAILED: {ex}', file=sys.stderr)
        sys.exit(1)
