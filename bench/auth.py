#!/usr/bin/python3
'''bench/auth.py: time of one complete PAM authentication (touch after a fixed delay)
through pam_keyward.so + keywardd versus Debian's pam_u2f.so, on the same emulated key,
side by side in one run. Prints a table (median, p95, overhead over the touch delay, the
keyward/pam_u2f ratio).

Runs inside keyward-testbed (no PIN on the key, so both modules ask for a touch only):
  keyward-testbed --touch-delay 100 --bus --bus-policy dist/org.keyward.Keyward1.conf -- \
      /usr/bin/python3 bench/auth.py --source-dir . --keywardd ... --keywardctl ... \
      --module ... --driver ... --testbed ... [--rounds 50] [--touch-delay 100]
`cmake --build BUILD --target bench-auth` does exactly this.

Each round is one in-process pam_start/pam_authenticate/pam_end in pam-driver (libpamtest,
under pam_wrapper); the rounds of the two modules alternate in blocks of five so that any
drift of the machine hits both alike.
'''

import argparse
import os
import statistics
import subprocess
import sys

BLOCK = 5


def percentile(values, p):
    s = sorted(values)
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser()
    for opt in ('--source-dir', '--keywardd', '--keywardctl', '--module', '--driver',
                '--testbed'):
        ap.add_argument(opt, required=True)
    ap.add_argument('--pam-u2f', default='/usr/lib/x86_64-linux-gnu/security/pam_u2f.so')
    ap.add_argument('--rounds', type=int, default=50)
    ap.add_argument('--touch-delay', type=int, default=100,
                    help='the testbed\'s --touch-delay, for the overhead column')
    args = ap.parse_args()

    sys.path.insert(0, os.path.join(args.source_dir, 'tests', 'pam'))
    import pam_e2e_test as e2e  # pylint: disable=import-outside-toplevel

    for f in (args.pam_u2f, args.module, args.driver, args.keywardd):
        e2e.check(os.path.exists(f), f'missing {f} (pam_u2f: apt-get install libpam-u2f)')
    e2e_args = argparse.Namespace(keywardd=args.keywardd, keywardctl=args.keywardctl,
                                  module=args.module, driver=args.driver,
                                  testbed=args.testbed, policy_timeout=30000)
    bench = e2e.E2E(e2e_args)
    try:
        bench.start_daemon()
        bench.enroll('alice', pin=None)

        # pam_u2f registered on the same key, its authfile root-owned.
        authfile = os.path.join(bench.tmp, 'u2f_keys')
        p = subprocess.run(['pamu2fcfg', '-u', 'alice', '-o', 'pam://bench', '-i',
                            'pam://bench'], capture_output=True, timeout=60, check=False)
        e2e.check(p.returncode == 0 and p.stdout.startswith(b'alice:'),
                  'pamu2fcfg failed: ' + p.stderr.decode(errors='replace'))
        with open(authfile, 'wb') as f:
            f.write(p.stdout)
        os.chmod(authfile, 0o644)
        with open(os.path.join(bench.service_dir, 'bench-u2f'), 'w', encoding='utf-8') as f:
            f.write(f'auth required {args.pam_u2f} authfile={authfile} origin=pam://bench '
                    'appid=pam://bench cue\n')

        times = {'bench-keyward': [], 'bench-u2f': []}
        done = 0
        while done < args.rounds:
            n = min(BLOCK, args.rounds - done)
            for service, samples in times.items():
                rc, out, err, _ = bench.run(service, 'alice', [('auth', 'PAM_SUCCESS')],
                                            extra=['--repeat', str(n), '--quiet', '--timing'])
                e2e.check(rc == 0, f'{service} did not authenticate', out + err[-3000:] +
                          bench.log())
                got = [float(line.split('ms=')[1]) for line in out.splitlines()
                       if line.startswith('timing:')]
                e2e.check(len(got) == n, f'{service}: expected {n} timings, got {len(got)}',
                          out)
                samples.extend(got)
            done += n
    finally:
        bench.close()

    rows = []
    for service, label in (('bench-keyward', 'pam_keyward + keywardd'),
                           ('bench-u2f', 'pam_u2f (Debian 1.1.0)')):
        s = times[service]
        rows.append((label, statistics.median(s), percentile(s, 0.95), min(s), max(s)))
    print()
    print(f'Authentication: one pam_authenticate, touch after {args.touch_delay} ms, '
          f'{args.rounds} rounds each, interleaved')
    print(f'{"module":<26} {"median ms":>10} {"p95 ms":>10} {"min ms":>8} {"max ms":>8} '
          f'{"median - touch":>15}')
    for label, med, p95, lo, hi in rows:
        print(f'{label:<26} {med:>10.1f} {p95:>10.1f} {lo:>8.1f} {hi:>8.1f} '
              f'{med - args.touch_delay:>15.1f}')
    print(f'{"ratio keyward / pam_u2f":<26} {rows[0][1] / rows[1][1]:>10.2f} '
          f'{rows[0][2] / rows[1][2]:>10.2f}')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except Exception as ex:  # pylint: disable=broad-except
        print(f'bench/auth: FAILED: {ex}', file=sys.stderr)
        sys.exit(1)
