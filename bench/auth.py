#!/usr/bin/python3
'''bench/auth.py: wall time of one complete PAM authentication through pam_keyward.so +
keywardd versus Debian's pam_u2f.so, on the same emulated key(s) with the same
credentials, side by side in one run. Prints a markdown table: median and p95 per module,
the keyward/pam_u2f ratio of the medians.

What is measured, the way a sceptic would:
- COLD: a fresh pam-driver process per authentication, as a real sudo is (exec, dynamic
  loading of the module and its libraries, pam_start/pam_authenticate/pam_end, exit); the
  clock is this script's, from fork to exit. A pam_permit row gives the floor every cold
  row pays (process start, pam_wrapper).
- WARM: one pam-driver process, N authentications in a row (each timed in the driver).
- 1 and 3 plugged keys; the credentials are on the key that comes LAST in the device
  order (the two others are plugged in before it and hold none of the user's).
- 1, 14 and 40 credentials registered for the user: pam_u2f's authfile lists them (the
  real one last, the others key handles that no key opens), and keyward imports that very
  authfile (keywardctl import-pam-u2f), so both search the same list.
- Touch after 0 ms and after 100 ms.
- keywardd is a long-running service: it remembers which plugged key made a user's last
  verified login (the known-key fast path: no silent probe), so its cold rows after the
  daemon's first login are REPEAT logins. The first login after the key was plugged in
  pays the probe: the PLUG columns measure it (the key holding the credential is
  unplugged and plugged in again before each such login; pam_u2f gets the same replug
  before its own, side by side).
- With --main-build DIR, main's keywardd + pam_keyward.so run in the same testbed, in
  their own block, against the same key and credentials ("before" rows).

Each (keys, touch) pair runs in its own keyward-testbed (this script re-executes itself
inside it). `cmake --build BUILD --target bench-auth` runs the whole matrix.
'''

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import time

CREDS = (1, 14, 40)
BLOCK = 5


def percentile(values, p):
    s = sorted(values)
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# --- inside the testbed ------------------------------------------------------------------

def inner(args):
    sys.path.insert(0, os.path.join(args.source_dir, 'tests', 'pam'))
    import pam_e2e_test as e2e  # pylint: disable=import-outside-toplevel

    variants = [('keyward', args.keywardd, args.module)]
    if args.main_build:
        variants.append(('keyward (main)', os.path.join(args.main_build, 'daemon', 'keywardd'),
                         os.path.join(args.main_build, 'pam_module', 'pam_keyward.so')))
    for f in [args.pam_u2f, args.driver] + [v[1] for v in variants] + [v[2] for v in variants]:
        e2e.check(os.path.exists(f), f'missing {f} (pam_u2f: apt-get install libpam-u2f)')
    ns = argparse.Namespace(keywardd=args.keywardd, keywardctl=args.keywardctl,
                            module=args.module, driver=args.driver, testbed=args.testbed,
                            policy_timeout=30000, verbose=False)
    bench = e2e.E2E(ns)
    with open(bench.policy, encoding='utf-8') as f:
        text = f.read().replace('settings = {', 'settings = {\n\tmax_credentials_per_user = 48;', 1)
    with open(bench.policy, 'w', encoding='utf-8') as f:
        f.write(text)
    results = []
    try:
        # The registration goes to the key that comes last in the device order (udev's,
        # by syspath: the testbed's last key): the others are unplugged meanwhile.
        for k in range(args.keys - 1):
            bench.ctl('unplug', str(k))
        p = subprocess.run(['pamu2fcfg', '-u', 'alice', '-o', 'pam://bench', '-i',
                            'pam://bench'], capture_output=True, timeout=60, check=False)
        e2e.check(p.returncode == 0 and p.stdout.startswith(b'alice:'),
                  'pamu2fcfg failed: ' + p.stderr.decode(errors='replace'))
        real = p.stdout.decode().strip().split(':', 1)[1]
        pk_etc = real.split(',', 1)[1]
        for k in range(args.keys - 1):
            bench.ctl('plug', str(k))
        time.sleep(0.3)

        authfile = os.path.join(bench.tmp, 'u2f_keys')
        u2f_service = os.path.join(bench.service_dir, 'bench-u2f')
        with open(u2f_service, 'w', encoding='utf-8') as f:
            f.write(f'auth required {args.pam_u2f} authfile={authfile} origin=pam://bench '
                    'appid=pam://bench cue max_devices=48\n')
        with open(os.path.join(bench.service_dir, 'bench-floor'), 'w', encoding='utf-8') as f:
            f.write('auth required pam_permit.so\n')
        creds_dir = os.path.join(bench.tmp, 'credentials')

        for n_creds in args.creds:
            # n-1 key handles no key opens (62 random bytes, the length of the emulated
            # key's own), then the real one.
            fakes = [base64.b64encode(os.urandom(62)).decode() + ',' + pk_etc
                     for _ in range(n_creds - 1)]
            with open(authfile, 'w', encoding='utf-8') as f:
                f.write('alice:' + ':'.join(fakes + [real]) + '\n')
            os.chmod(authfile, 0o644)
            for name in os.listdir(creds_dir) if os.path.isdir(creds_dir) else ():
                os.unlink(os.path.join(creds_dir, name))

            u2f = {'cold': [], 'warm': [], 'plug': []}
            floor = []
            kws = {label: {'cold': [], 'warm': [], 'plug': []} for label, _, _ in variants}
            # Blocks of BLOCK rounds, the variants' daemons taking turns block by block, so
            # that the machine's drift (other work on it) hits every variant alike.
            done = 0
            while done < args.rounds:
                n = min(BLOCK, args.rounds - done)
                for label, keywardd, module in variants:
                    bench.args.keywardd = keywardd
                    bench.args.module = module
                    bench.write_service('bench-keyward')
                    bench.start_daemon()
                    try:
                        if not os.path.isdir(creds_dir) or not any(os.scandir(creds_dir)):
                            import_authfile(bench, e2e, args, authfile)
                        measure(bench, e2e, n, kws[label], u2f, floor, args.keys - 1)
                    finally:
                        bench.stop_daemon()
                done += n
            for label, _, _ in variants:
                results.append({'keys': args.keys, 'touch': args.touch_delay,
                                'creds': n_creds, 'module': label, **kws[label]})
            results.append({'keys': args.keys, 'touch': args.touch_delay, 'creds': n_creds,
                            'module': 'pam_u2f 1.1.0', **u2f})
            results.append({'keys': args.keys, 'touch': args.touch_delay, 'creds': n_creds,
                            'module': 'pam_permit (floor)', 'cold': floor, 'warm': [],
                            'plug': []})
    finally:
        bench.close()
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(results, f)
    return 0


# pam_wrapper copies the service files to /tmp/pam.X, a name from a short list that all
# of the machine's pam_wrapper processes share: another one (a test running beside the
# bench) can remove it under us. Such a round failed before the module ran: it is run again.
PWRAP_LOST = b'error reading PAM configuration file'
RETRIES = 3


def cold_once(bench, e2e, service):
    argv = [bench.args.driver, '--quiet', service, 'alice', 'auth:PAM_SUCCESS']
    env = bench.driver_env()
    for _ in range(RETRIES):
        t0 = time.monotonic()
        p = subprocess.run(argv, env=env, capture_output=True, timeout=120, check=False)
        took = (time.monotonic() - t0) * 1000
        if p.returncode == 0 or PWRAP_LOST not in p.stderr:
            break
    e2e.check(p.returncode == 0, f'{service} did not authenticate',
              p.stdout.decode(errors='replace') + p.stderr.decode(errors='replace')[-3000:] +
              bench.log())
    return took


def warm_block(bench, e2e, service, n):
    for _ in range(RETRIES):
        rc, out, err, _ = bench.run(service, 'alice', [('auth', 'PAM_SUCCESS')],
                                    extra=['--repeat', str(n), '--quiet', '--timing'])
        if rc == 0 or PWRAP_LOST.decode() not in err:
            break
    e2e.check(rc == 0, f'{service} did not authenticate', out + err[-3000:] + bench.log())
    got = [float(line.split('ms=')[1]) for line in out.splitlines()
           if line.startswith('timing:')]
    e2e.check(len(got) == n, f'{service}: expected {n} timings, got {len(got)}', out)
    return got


def import_authfile(bench, e2e, args, authfile):
    env = dict(os.environ, LD_PRELOAD=e2e.preload('libnss_wrapper.so'), **bench.nss_env)
    p = subprocess.run([args.keywardctl, 'import-pam-u2f', authfile, '--origin', 'pam://bench',
                        '--user', 'alice'], env=env, capture_output=True, timeout=60,
                       check=False)
    e2e.check(p.returncode == 0, 'import failed: ' + p.stdout.decode() + p.stderr.decode() +
              bench.log())


def replug(bench, e2e, key):
    '''Unplugs KEY and plugs it in again (a new hidraw node, the key power-cycled), then
    waits until its node exists and the daemon had time for the add uevent (a login
    before that would fail with "no key", not pass unmeasured).'''
    bench.ctl('unplug', str(key))
    p = subprocess.run([bench.args.testbed, 'ctl', '-', 'plug', str(key)], capture_output=True,
                       text=True, timeout=30, check=False)
    e2e.check(p.returncode == 0, f'testbed ctl plug {key} failed: {p.stderr}')
    node = next((w for w in p.stdout.split() if w.startswith('/dev/hidraw')), None)
    deadline = time.monotonic() + 5
    while node and not os.path.exists(node) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)


def measure(bench, e2e, n, kw, u2f, floor, key):
    '''N cold rounds alternating keyward, pam_u2f, floor (keyward's: repeat logins, the
    daemon knows the key from its warm-up login); a warm block of N each; then N cold
    rounds of each right after the key holding the credential (KEY) was plugged in again.'''
    cold_once(bench, e2e, 'bench-keyward')  # warm-up: the daemon's first login
    cold_once(bench, e2e, 'bench-u2f')
    for _ in range(n):
        kw['cold'].append(cold_once(bench, e2e, 'bench-keyward'))
        u2f['cold'].append(cold_once(bench, e2e, 'bench-u2f'))
        floor.append(cold_once(bench, e2e, 'bench-floor'))
    kw['warm'].extend(warm_block(bench, e2e, 'bench-keyward', n))
    u2f['warm'].extend(warm_block(bench, e2e, 'bench-u2f', n))
    for _ in range(n):
        replug(bench, e2e, key)
        kw['plug'].append(cold_once(bench, e2e, 'bench-keyward'))
        replug(bench, e2e, key)
        u2f['plug'].append(cold_once(bench, e2e, 'bench-u2f'))


# --- outside: one testbed per (keys, touch) ----------------------------------------------

def outer(args):
    import tempfile  # pylint: disable=import-outside-toplevel
    results = []
    matrix = [(k, t) for t in args.touch for k in args.keys_list]
    load = open('/proc/loadavg', encoding='utf-8').read().split()[:3]
    t_start = time.monotonic()
    for keys, touch in matrix:
        with tempfile.NamedTemporaryFile(prefix='bench-auth-', suffix='.json') as out:
            # 100 ms touch: the 1-credential rows only (the touch wait dominates them all)
            creds = args.creds if touch == 0 else [1]
            argv = [args.testbed, '--keys', str(keys), '--touch-delay', str(touch), '--bus',
                    '--bus-policy', os.path.join(args.source_dir, 'dist',
                                                 'org.keyward.Keyward1.conf'), '--',
                    '/usr/bin/python3', os.path.abspath(__file__), '--inner',
                    '--out', out.name, '--keys', str(keys), '--touch-delay', str(touch),
                    '--creds', ','.join(map(str, creds)), '--rounds', str(args.rounds)]
            for opt in ('source_dir', 'keywardd', 'keywardctl', 'module', 'driver', 'testbed',
                        'pam_u2f', 'main_build'):
                v = getattr(args, opt)
                if v:
                    argv += ['--' + opt.replace('_', '-'), v]
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               check=False)
            if p.returncode != 0:
                sys.stderr.write(p.stdout.decode(errors='replace')[-6000:])
                raise RuntimeError(f'the run with {keys} key(s), touch {touch} ms failed')
            with open(out.name, encoding='utf-8') as f:
                results.extend(json.load(f))
    load_end = open('/proc/loadavg', encoding='utf-8').read().split()[:3]
    print_table(results, args, load, load_end, time.monotonic() - t_start)
    return 0


def print_table(results, args, load, load_end, secs):
    print()
    print(f'### Login: one pam_authenticate, {args.rounds} rounds per cell '
          f'(cold: a new process each, repeat login; warm: one process; plug: a new process, '
          f'the first login after the key was plugged in)')
    print(f'load average {" ".join(load)} at start, {" ".join(load_end)} at end; '
          f'{secs:.0f} s; {os.cpu_count()} CPUs')
    print()
    print('| keys | creds | touch ms | module | cold median | cold p95 | cold ratio '
          '| warm median | warm p95 | warm ratio | plug median | plug p95 | plug ratio |')
    print('|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    cells = {}
    for r in results:
        cells.setdefault((r['touch'], r['keys'], r['creds']), []).append(r)
    for (touch, keys, creds), rows in sorted(cells.items()):
        ref = next(r for r in rows if r['module'].startswith('pam_u2f'))
        for r in rows:
            cols = []
            for kind in ('cold', 'warm', 'plug'):
                s = r.get(kind, [])
                if not s:
                    cols += ['', '', '']
                    continue
                med = statistics.median(s)
                ratio = med / statistics.median(ref[kind]) if ref.get(kind) else 0
                cols += [f'{med:.1f}', f'{percentile(s, 0.95):.1f}',
                         '' if r is ref or r['module'].startswith('pam_permit')
                         else f'{ratio:.2f}']
            print(f'| {keys} | {creds} | {touch} | {r["module"]} | ' + ' | '.join(cols) + ' |')
    print()
    print('ratio: keyward median / pam_u2f median of the same cell; ms. Cold rows include '
          'the process start (see the pam_permit floor). cold/warm: keywardd knows the key '
          'from the login before (no silent probe); plug: the first login after the key '
          'was plugged in (keywardd probes; pam_u2f is replugged the same way). The emulated keys\' HID reports are '
          'all served by one umockdev worker thread, so keys probed in parallel are still '
          'answered one after another here; real keys on USB answer independently.')


def main():
    ap = argparse.ArgumentParser()
    for opt in ('--source-dir', '--keywardd', '--keywardctl', '--module', '--driver',
                '--testbed'):
        ap.add_argument(opt, required=True)
    ap.add_argument('--pam-u2f', default='/usr/lib/x86_64-linux-gnu/security/pam_u2f.so')
    ap.add_argument('--main-build', help='a build of main: its keywardd and module as well')
    ap.add_argument('--rounds', type=int, default=20)
    ap.add_argument('--keys-list', default='1,3')
    ap.add_argument('--touch', default='0,100')
    ap.add_argument('--creds', default=','.join(map(str, CREDS)))
    # inside the testbed
    ap.add_argument('--inner', action='store_true')
    ap.add_argument('--out')
    ap.add_argument('--keys', type=int, default=1)
    ap.add_argument('--touch-delay', type=int, default=0)
    args = ap.parse_args()
    args.creds = [int(x) for x in args.creds.split(',')]
    args.keys_list = [int(x) for x in args.keys_list.split(',')]
    args.touch = [int(x) for x in args.touch.split(',')]
    if args.main_build:
        args.main_build = os.path.abspath(args.main_build)
    return inner(args) if args.inner else outer(args)


if __name__ == '__main__':
    try:
        sys.exit(main())
    except Exception as ex:  # pylint: disable=broad-except
        print(f'bench/auth: FAILED: {ex}', file=sys.stderr)
        sys.exit(1)
