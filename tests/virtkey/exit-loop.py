#!/usr/bin/python3
'''exit-loop.py: keyward-testbed exits cleanly, run after run (issue 14).

Starts keyward-testbed RUNS times in a row around testbed-exit-client, which drives the
emulated key through the real libfido2 (make a credential, get an assertion, verify it).
Runs alternate between
  assert  the client ends after its requests (touch after the default 5 ms: the replies
          come from the testbed's main loop);
  orphan  --touch-delay 0 (all crypto in umockdev's worker thread) and the client leaves a
          child hammering the key: the testbed ends it at exit, so it tears down while HID
          requests are in flight.
A run is abnormal when the testbed exits non-zero or by a signal, hangs, or prints anything
(it prints nothing unless something fails: a double free, an ASan/LSan report, a GLib
critical all count). Prints "runs=N abnormal=M", the first failures in full, and exits 1
when any run was abnormal.

The race itself shows only now and then (glibc's double-free check: rarely; LSan: often).
With --probe testbed-exit-probe.so (LD_PRELOAD) every run also checks the invariant: no
thread whose main loop was asked to quit (umockdev's worker) may still run when the
testbed runs its exit handlers, i.e. the worker was joined (see testbed-exit-probe.c).

  exit-loop.py --testbed BUILD/tests/keyward-testbed \\
      --client BUILD/tests/virtkey/testbed-exit-client \\
      [--probe BUILD/tests/virtkey/testbed-exit-probe.so] [--runs 50] [--mode both]

ctest runs 50 with --probe (virtkey.testbed.exit-loop); the full proof is --runs 1000
(tests/virtkey/README.md).
'''

import argparse
import os
import signal
import subprocess
import sys
import time

SHOW_FAILURES = 3


def run_once(args, mode):
    cmd = [args.testbed]
    if mode == 'orphan':
        cmd += ['--touch-delay', '0']
    cmd += ['--', args.client, mode]
    env = dict(os.environ)
    if args.probe:
        env['LD_PRELOAD'] = ':'.join(filter(None, [args.probe, env.get('LD_PRELOAD')]))
        # in a sanitizer build the probe comes before the ASan runtime
        env['ASAN_OPTIONS'] = ':'.join(filter(None, [env.get('ASAN_OPTIONS'),
                                                     'verify_asan_link_order=0']))
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=args.timeout, check=False, env=env)
    except subprocess.TimeoutExpired as ex:
        return f'hung (> {args.timeout} s)', (ex.stdout or b'') + (ex.stderr or b'')
    out = p.stdout + p.stderr
    if p.returncode < 0:
        return f'killed by {signal.Signals(-p.returncode).name}', out
    if p.returncode != 0:
        return f'exit status {p.returncode}', out
    if out.strip():
        return 'printed output', out
    return None, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    ap.add_argument('--testbed', required=True)
    ap.add_argument('--client', required=True)
    ap.add_argument('--probe', help='testbed-exit-probe.so: check the join on every run')
    ap.add_argument('--runs', type=int, default=50)
    ap.add_argument('--mode', choices=('both', 'assert', 'orphan'), default='both')
    ap.add_argument('--timeout', type=float, default=30, help='seconds per run')
    args = ap.parse_args()
    for f in (args.testbed, args.client):
        if not os.access(f, os.X_OK):
            print(f'exit-loop: {f} is not an executable', file=sys.stderr)
            return 2
    if args.probe:
        args.probe = os.path.abspath(args.probe)
        if not os.path.isfile(args.probe):
            print(f'exit-loop: no probe {args.probe}', file=sys.stderr)
            return 2

    modes = ('assert', 'orphan') if args.mode == 'both' else (args.mode,)
    failures = []
    counts = {}
    start = time.monotonic()
    for i in range(args.runs):
        mode = modes[i % len(modes)]
        what, out = run_once(args, mode)
        if what:
            failures.append((i + 1, mode, what, out))
            counts[what] = counts.get(what, 0) + 1
    elapsed = time.monotonic() - start

    for run, mode, what, out in failures[:SHOW_FAILURES]:
        text = out.decode(errors='replace')
        if len(text) > 6000:
            text = text[:3000] + '\n[...]\n' + text[-3000:]
        print(f'--- run {run} ({mode}): {what}\n{text}', file=sys.stderr)
    kinds = ', '.join(f'{n} {w}' for w, n in sorted(counts.items()))
    per_mode = ' '.join(f'{m}={sum(1 for f in failures if f[1] == m)}/'
                        f'{len(range(i, args.runs, len(modes)))}'
                        for i, m in enumerate(modes))
    print(f'exit-loop: runs={args.runs} abnormal={len(failures)}'
          f'{" (" + kinds + ")" if kinds else ""} by mode: {per_mode} '
          f'probe={"yes" if args.probe else "no"} time={elapsed:.1f}s')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
