#!/usr/bin/python3
'''demo_test.py: runs scripts/demo (issue #7) against this build and checks what it shows.

    demo_test.py --source-dir S --build-dir B

scripts/demo runs with KEYWARD_BUILD_DIR=B and KEYWARD_DEMO_NO_BUILD=1 (no apt, no
rebuild) in a fresh prefix; the test asserts on its narrated output (enrollment, the
login with a touch, the lock on removal and its verification, the refused login, an
intact trail, the report), on the files it leaves and on nothing being left running.
'''
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--source-dir', required=True)
    ap.add_argument('--build-dir', required=True)
    args = ap.parse_args()
    src = os.path.abspath(args.source_dir)
    build = os.path.abspath(args.build_dir)
    prefix = tempfile.mkdtemp(prefix='keyward-demo-test.', dir=build)
    env = dict(os.environ, KEYWARD_BUILD_DIR=build, KEYWARD_DEMO_NO_BUILD='1')
    env.pop('KEYWARD_DEMO_DIR', None)
    p = subprocess.run([os.path.join(src, 'scripts', 'demo'), '--dir', prefix], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
                       check=False)
    out = p.stdout + p.stderr
    sys.stdout.write(out)
    try:
        check(p.returncode == 0, f'scripts/demo exited with {p.returncode}')
        check('\x1b' not in out, 'colour escapes although stdout is not a terminal')
        check('Step 0. Build' in out and 'skipped: KEYWARD_DEMO_NO_BUILD=1' in out,
              'step 0 was not skipped')
        expected = [
            # (what, text in the output), in the order the demo shows them
            ('policy derived from dist/keyward.conf', '+\ttimeout = 5000;'),
            ('policy explain for alice/sudo', 'Rule: admins-elevation'),
            ('daemon started', 'is on the bus as org.keyward.Keyward1'),
            ('enrollment', 'Enrolled a security key for alice.'),
            ('enrollment checked', 'OK: alice is enrolled'),
            ('touch cue', 'info: Touch your security key for alice'),
            ('login succeeded', 'result: auth PAM_SUCCESS'),
            ('session opened', 'result: open PAM_SUCCESS'),
            ('login narrated', 'OK: LOGIN SUCCEEDED for alice'),
            ('key removed', 'keyward-testbed ctl - unplug 0'),
            ('logind asked to lock', '.Session.Lock'),
            ('screen locker saw Lock', 'screen locker: received Lock on /org/freedesktop/login1/session/c1'),
            ('Lock received', 'OK: logind received Lock for session c1.'),
            ('LockedHint read back', '(<true>,)'),
            ('lock verified', 'OK: LOCK VERIFIED'),
            ('refused without the key', 'error: No security key is plugged in'),
            ('refused login result', 'result: auth PAM_AUTH_ERR'),
            ('refusal narrated', 'OK: LOGIN REFUSED for alice without her key.'),
            ('audit records shown', 'lock-verified'),
            ('audit verify', 'INTACT'),
            ('report written', 'OK: report written:'),
            ('final summary', 'The demo completed.'),
        ]
        pos = 0
        for what, text in expected:
            i = out.find(text, pos)
            check(i >= 0, f'output lacks {what} ({text!r}) after offset {pos}')
            pos = i + len(text)
        check(f'HTML report:   {prefix}/keyward-report.html' in out, 'report path not printed')
        check(f'audit trail:   {prefix}/var/log/keyward/audit.log' in out, 'audit path not printed')

        # the files it says it left
        audit = os.path.join(prefix, 'var', 'log', 'keyward', 'audit.log')
        with open(audit, encoding='utf-8') as f:
            recs = [json.loads(line) for line in f if line.strip()]
        events = [(r.get('event'), r.get('result'), r.get('reason')) for r in recs]
        for ev in [('enroll', 'success', 'ok'), ('auth', 'success', 'ok'),
                   ('session-bind', 'success', 'ok'), ('key-removed', 'success', 'removed'),
                   ('action', 'success', 'lock-requested'), ('lock-verified', 'success', 'locked'),
                   ('auth', 'failure', 'no-key'), ('daemon-stop', 'success', 'stopped')]:
            check(ev in events, f'audit trail lacks {ev}: {events}')
        check(events.index(('lock-verified', 'success', 'locked')) >
              events.index(('key-removed', 'success', 'removed')), 'lock verified before removal')
        check(not any(e[0] in ('lock-failed', 'lock-escalated') for e in events),
              f'the lock was not clean: {events}')
        ctl = [os.path.join(build, 'tools', 'keywardctl'), '-c', os.path.join(prefix, 'etc', 'keyward', 'keyward.conf')]
        v = subprocess.run(ctl + ['audit', 'verify', '--verification-key',
                                  os.path.join(prefix, 'audit-verification.key'), audit],
                           capture_output=True, text=True, timeout=60, check=False)
        check(v.returncode == 0 and v.stdout.splitlines()[-1] == 'INTACT', f'audit verify: {v.stdout}{v.stderr}')
        # without the verification key the same trail is NOT PROVEN, never a green INTACT
        v = subprocess.run(ctl + ['audit', 'verify', audit], capture_output=True, text=True, timeout=60, check=False)
        check(v.returncode == 4 and 'NOT PROVEN' in v.stdout, f'audit verify without the key: {v.stdout}{v.stderr}')
        report = os.path.join(prefix, 'keyward-report.html')
        check(os.path.isfile(report), 'no HTML report')
        with open(report, encoding='utf-8') as f:
            html = f.read()
        check(html.startswith('<!DOCTYPE html>'), 'the report is not HTML')
        for section in ('Privileged accounts and enrolled keys', 'Authentications per user and service',
                        'Key removals and their outcomes', 'Audit trail integrity'):
            check(f'<h2>{section}</h2>' in html, f'report lacks the section "{section}"')
        check('1 key removal(s)' in html, 'report does not count the removal')
        check('lock verified: 1' in html, 'report does not show the verified lock')
        check(re.search(r'class="intact">INTACT', html), 'report does not say the trail is intact')

        # nothing left running: no process refers to the prefix (keywardd -c PREFIX/...)
        left = []
        for pid in filter(str.isdigit, os.listdir('/proc')):
            try:
                with open(f'/proc/{pid}/cmdline', 'rb') as f:
                    cmd = f.read().replace(b'\0', b' ').decode(errors='replace')
            except OSError:
                continue
            if prefix in cmd:
                left.append(f'{pid}: {cmd}')
        check(not left, 'left running: ' + '; '.join(left))
    except Fail as e:
        print(f'FAIL demo: {e}\n(the demo\'s files are kept in {prefix})', file=sys.stderr)
        return 1
    shutil.rmtree(prefix, ignore_errors=True)
    print('PASS demo')
    return 0


if __name__ == '__main__':
    sys.exit(main())
