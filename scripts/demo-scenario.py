#!/usr/bin/python3
'''demo-scenario.py: the narrated part of scripts/demo, run inside keyward-testbed.

scripts/demo builds keyward and starts this under
    keyward-testbed --bus --bus-policy dist/org.keyward.Keyward1.conf -- \
        /usr/bin/python3 scripts/demo-scenario.py --build-dir B --source-dir S --prefix P
so that an emulated FIDO2 key (umockdev), a private system bus and a logind stand-in
(python-dbusmock) exist. In the temporary prefix P it writes the shipped policy with only
its paths and timeout changed, starts keywardd, enrolls alice, logs her in with a touch,
pulls the key (her session is locked and the lock verified), shows a login that fails
without the key, then prints the audit records, verifies the trail and writes the HTML
report. Every step is checked: anything unexpected stops the demo with exit status 1.
'''

import argparse
import ctypes
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time

BUS_NAME = 'org.keyward.Keyward1'
LOGIND = 'org.freedesktop.login1'
LOGIND_PATH = '/org/freedesktop/login1'
SESSION_ID = 'c1'
USER, UID = 'alice', 1000
SERVICE = 'gdm-password'     # a graphical login: its session has a screen locker
PIN = '123456'               # the emulated key's PIN (keyward-testbed --pin, set by scripts/demo)
DEMO_TIMEOUT_MS = 5000       # the policy's touch/PIN timeout here (shipped: 30000)
PASSWD = '''root:x:0:0:root:/root:/bin/sh
alice:x:1000:1000:Alice Admin:/home/alice:/bin/sh
bob:x:1001:1001:Bob User:/home/bob:/bin/sh
'''
GROUP = '''root:x:0:
sudo:x:27:alice
alice:x:1000:
bob:x:1001:
'''

PR_SET_PDEATHSIG = 1


class DemoFailure(Exception):
    pass


class Out:
    '''Narration: numbered steps, one-line explanations, commands and indented output.'''

    def __init__(self, colour, prefix, build):
        self.colour = colour
        self.prefix = prefix
        self.build = build
        self.step_no = 0

    def _c(self, code, text):
        return f'\033[{code}m{text}\033[0m' if self.colour else text

    def short(self, text):
        '''Paths shown relative to $PREFIX / $BUILD, so command lines stay readable.'''
        return text.replace(self.prefix, '$PREFIX').replace(self.build, '$BUILD')

    def step(self, title, why):
        self.step_no += 1
        print()
        print(self._c('1;34', f'Step {self.step_no}. {title}'))
        for line in textwrap.wrap(why, 94):
            print(self._c('2', f'  {line}'))
        sys.stdout.flush()

    def cmd(self, argv, tail=''):
        line = ' '.join(shlex.quote(a) for a in argv) + tail
        print(self._c('36', '  $ ' + self.short(line)))
        sys.stdout.flush()

    def show(self, text):
        for line in text.rstrip('\n').splitlines():
            print('      ' + self.short(line))
        sys.stdout.flush()

    def say(self, text):
        print('\n'.join(textwrap.wrap(text, 96, initial_indent='  ', subsequent_indent='    ',
                                       break_on_hyphens=False, break_long_words=False)))
        sys.stdout.flush()

    def ok(self, text):
        print(self._c('32', '  OK: ') + text)
        sys.stdout.flush()

    def fail(self, text):
        print(self._c('1;31', 'DEMO FAILED: ') + text, flush=True)


def die_with_parent():
    '''preexec_fn: the child gets SIGTERM when this script dies, whatever the reason.'''
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def preload(*libs):
    '''LD_PRELOAD: the testbed's umockdev preload first, then LIBS.'''
    base = [p for p in os.environ.get('LD_PRELOAD', '').replace(':', ' ').split() if p]
    return ' '.join(base + [lib for lib in libs if lib not in base])


class Demo:
    def __init__(self, args):
        for var in ('UMOCKDEV_DIR', 'DBUS_SYSTEM_BUS_ADDRESS', 'KEYWARD_TESTBED_CTL'):
            if var not in os.environ:
                raise DemoFailure(f'{var} is not set: run me through scripts/demo '
                                  '(inside keyward-testbed --bus)')
        self.args = args
        self.build = os.path.abspath(args.build_dir)
        self.src = os.path.abspath(args.source_dir)
        self.prefix = os.path.abspath(args.prefix)
        self.out = Out(args.colour, self.prefix, self.build)
        self.keywardd = os.path.join(self.build, 'daemon', 'keywardd')
        self.keywardctl = os.path.join(self.build, 'tools', 'keywardctl')
        self.module = os.path.join(self.build, 'pam_module', 'pam_keyward.so')
        self.driver = os.path.join(self.build, 'tests', 'integration', 'pam-driver')
        self.testbed = os.path.join(self.build, 'tests', 'keyward-testbed')
        for f in (self.keywardd, self.keywardctl, self.module, self.driver, self.testbed):
            if not os.access(f, os.X_OK if not f.endswith('.so') else os.R_OK):
                raise DemoFailure(f'{f} is missing: build it first (scripts/demo builds it)')
        self.etc = os.path.join(self.prefix, 'etc', 'keyward')
        self.conf = os.path.join(self.etc, 'keyward.conf')
        self.audit = os.path.join(self.prefix, 'var', 'log', 'keyward', 'audit.log')
        self.report = os.path.join(self.prefix, 'keyward-report.html')
        self.daemon_log = os.path.join(self.prefix, 'keywardd.log')
        self.pam_dir = os.path.join(self.prefix, 'pam.d')
        self.logind_log = os.environ.get('KEYWARD_TESTBED_LOGIND_LOG', '')
        self.daemon = None
        self.locker = None
        self.locker_log = None
        self.asan = self.sanitized()
        self.session_path = None
        self.nss = {'NSS_WRAPPER_PASSWD': os.path.join(self.prefix, 'passwd'),
                    'NSS_WRAPPER_GROUP': os.path.join(self.prefix, 'group')}

    # --- helpers ------------------------------------------------------------------------
    def sanitized(self):
        '''True for a KEYWARD_SANITIZE build (ASan: no RTLD_DEEPBIND in the wrappers).'''
        try:
            with open(os.path.join(self.build, 'CMakeCache.txt'), encoding='utf-8') as f:
                return re.search(r'^KEYWARD_SANITIZE:BOOL=(ON|TRUE|1|YES)$', f.read(), re.M | re.I) is not None
        except OSError:
            return False

    def env(self, *libs, **extra):
        e = dict(os.environ)
        e.update(self.nss)
        if self.asan:
            # ASan's runtime is not first in the preload list, and deep binding breaks it
            # (pam_wrapper 1.1.4 reads the UID_WRAPPER_ name for its own switch).
            e['ASAN_OPTIONS'] = ':'.join(filter(None, [e.get('ASAN_OPTIONS', ''),
                                                       'verify_asan_link_order=0']))
            for var in ('NSS_WRAPPER_DISABLE_DEEPBIND', 'PAM_WRAPPER_DISABLE_DEEPBIND',
                        'UID_WRAPPER_DISABLE_DEEPBIND'):
                e[var] = '1'
        e['LD_PRELOAD'] = preload(*libs)
        e.update(extra)
        return e

    def run(self, argv, shown=None, stdin=None, env=None, timeout=60, expect=0, quiet=False):
        '''Runs ARGV, shows it (or SHOWN) and its indented output; checks the exit status.'''
        self.out.cmd(shown or argv)
        p = subprocess.run(argv, input=stdin, env=env or self.env('libnss_wrapper.so'),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout, check=False, preexec_fn=die_with_parent)
        text = p.stdout
        if not quiet:
            self.out.show(text)
        if expect is not None and p.returncode != expect:
            raise DemoFailure(f'{os.path.basename(argv[0])} exited with {p.returncode} '
                              f'(expected {expect})' + self.daemon_tail())
        return p.returncode, text

    def ctl(self, *args, **kw):
        argv = [self.keywardctl, '-c', self.conf] + list(args)
        return self.run(argv, shown=['keywardctl', '-c', self.conf] + list(args), **kw)

    def bed(self, *args):
        return self.run([self.testbed, 'ctl', '-'] + list(args),
                        shown=['keyward-testbed', 'ctl', '-'] + list(args), env=dict(os.environ))

    def gdbus(self, *args, show=True):
        argv = ['gdbus', 'call', '--system'] + list(args)
        if show:
            return self.run(argv, env=dict(os.environ), timeout=20)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        if p.returncode != 0:
            raise DemoFailure(f'gdbus call {" ".join(args)} failed: {p.stderr.strip()}')
        return p.returncode, p.stdout

    def pam(self, ops):
        '''pam-driver (libpamtest under pam_wrapper + nss_wrapper) on the "login" service.'''
        pin = ['--pin', PIN]
        argv = [self.driver] + pin + [SERVICE, USER] + ops
        env = self.env('libpam_wrapper.so', 'libnss_wrapper.so', PAM_WRAPPER='1',
                       PAM_WRAPPER_SERVICE_DIR=self.pam_dir)
        return self.run(argv, shown=['pam-driver'] + pin + [SERVICE, USER] + ops, env=env,
                        timeout=120, expect=None)

    def daemon_tail(self, n=25):
        try:
            with open(self.daemon_log, encoding='utf-8', errors='replace') as f:
                lines = f.read().splitlines()[-n:]
        except OSError:
            return ''
        return '\n--- last lines of keywardd.log ---\n' + '\n'.join(lines)

    def daemon_lines(self, pattern, since=0):
        with open(self.daemon_log, encoding='utf-8', errors='replace') as f:
            lines = f.read().splitlines()[since:]
        return [l for l in lines if re.search(pattern, l)]

    def daemon_line_count(self):
        with open(self.daemon_log, encoding='utf-8', errors='replace') as f:
            return len(f.read().splitlines())

    def records(self):
        try:
            with open(self.audit, encoding='utf-8') as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def wait_record(self, event, timeout_s, **fields):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for r in self.records():
                if r.get('event') == event and all(r.get(k) == v for k, v in fields.items()):
                    return r
            if self.daemon.poll() is not None:
                raise DemoFailure('keywardd exited' + self.daemon_tail())
            time.sleep(0.05)
        return None

    # --- steps --------------------------------------------------------------------------
    def write(self, path, text, mode=0o644):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        os.chmod(path, mode)

    def step_prefix(self):
        o = self.out
        o.step('The bench and the temporary prefix',
               'An emulated FIDO2 key, a private system bus and a logind stand-in are up; '
               'nothing outside $PREFIX is touched.')
        o.say(f'$PREFIX = {self.prefix}')
        o.say(f'$BUILD  = {self.build}')
        o.say('Users (nss_wrapper, /etc/passwd is not touched): alice (uid 1000) is in group '
              '"sudo", so the policy counts her as privileged.')
        for d in ('etc/keyward/credentials', 'var/lib/keyward', 'run/keyward', 'var/log/keyward'):
            os.makedirs(os.path.join(self.prefix, d), mode=0o755, exist_ok=True)
        self.write(self.nss['NSS_WRAPPER_PASSWD'], PASSWD)
        self.write(self.nss['NSS_WRAPPER_GROUP'], GROUP)
        self.run([self.testbed, 'ctl', '-', 'list'], shown=['keyward-testbed', 'ctl', '-', 'list'],
                 env=dict(os.environ))

    def step_policy(self):
        o = self.out
        o.step('The policy: the shipped dist/keyward.conf',
               'Same rules; only the paths point into $PREFIX and the touch timeout is '
               f'{DEMO_TIMEOUT_MS // 1000} s instead of 30 s.')
        with open(os.path.join(self.src, 'dist', 'keyward.conf'), encoding='utf-8') as f:
            text = f.read()
        subst = [
            (r'(\btimeout\s*=\s*)30000;', rf'\g<1>{DEMO_TIMEOUT_MS};'),
            (r'(\bcredentials_dir\s*=\s*)"/etc/keyward/credentials";',
             rf'\1"{self.etc}/credentials";'),
            (r'(\bstate_dir\s*=\s*)"/var/lib/keyward";', rf'\1"{self.prefix}/var/lib/keyward";'),
            (r'(\bruntime_dir\s*=\s*)"/run/keyward";', rf'\1"{self.prefix}/run/keyward";'),
            (r'(\baudit_log\s*=\s*)"/var/log/keyward/audit.log";', rf'\1"{self.audit}";'),
        ]
        for pattern, repl in subst:
            text, n = re.subn(pattern, repl, text)
            if n != 1:
                raise DemoFailure(f'dist/keyward.conf changed: "{pattern}" matched {n} times '
                                  '(the demo rewrites exactly one line per setting)')
        self.write(self.conf, text)
        src_conf = os.path.join(self.src, 'dist', 'keyward.conf')
        p = subprocess.run(['diff', '-u', '--label', 'dist/keyward.conf', '--label',
                            '$PREFIX/etc/keyward/keyward.conf', src_conf, self.conf],
                           capture_output=True, text=True, check=False)
        o.cmd(['diff', '-u', 'dist/keyward.conf', self.conf])
        o.show(p.stdout)
        self.ctl('policy', 'check')
        o.say('Which rule decides when alice uses sudo, and what does it ask for?')
        self.ctl('policy', 'explain', '--user', USER, '--service', 'sudo')
        o.say(f'And her graphical login ({SERVICE}), the one this demo uses:')
        self.ctl('policy', 'explain', '--user', USER, '--service', SERVICE)

    def step_daemon(self):
        o = self.out
        o.step('Start keywardd',
               'The daemon owns the key I/O, the credentials and the audit trail; it takes '
               'org.keyward.Keyward1 on the (private) system bus.')
        self.vk = os.path.join(self.prefix, 'audit-verification.key')
        o.say('First the forward-secure seal key, with its verification key (kept off the '
              'machine in real life: it proves every seal of the trail).')
        self.ctl('audit', 'setup-keys', '--output', self.vk)
        argv = [self.keywardd, '-c', self.conf, '-v']
        o.cmd(['keywardd', '-c', self.conf, '-v'], f' 2> {self.daemon_log} &')
        log = open(self.daemon_log, 'wb')  # pylint: disable=consider-using-with
        self.daemon = subprocess.Popen(argv, env=self.env('libnss_wrapper.so'),
                                       stdout=subprocess.DEVNULL, stderr=log,
                                       preexec_fn=die_with_parent)
        log.close()
        deadline = time.monotonic() + 15
        while True:
            p = subprocess.run(['gdbus', 'call', '--system', '--dest', 'org.freedesktop.DBus',
                                '--object-path', '/org/freedesktop/DBus', '--method',
                                'org.freedesktop.DBus.NameHasOwner', BUS_NAME],
                               capture_output=True, text=True, timeout=10, check=False)
            if 'true' in p.stdout:
                break
            if self.daemon.poll() is not None:
                raise DemoFailure('keywardd exited at start' + self.daemon_tail())
            if time.monotonic() > deadline:
                raise DemoFailure('keywardd did not take its bus name in 15 s' + self.daemon_tail())
            time.sleep(0.05)
        o.ok(f'keywardd (pid {self.daemon.pid}) is on the bus as {BUS_NAME}.')
        o.show('\n'.join(self.daemon_lines(r'.')[:6]))

    def step_enroll(self):
        o = self.out
        o.step('Enroll alice\'s security key',
               'keywardctl asks keywardd to create a FIDO2 credential on the plugged-in key '
               '(the emulated key is touched by itself); only the public key is stored.')
        o.say(f'The key has a PIN ({PIN}): the policy asks for it for sudo, so enrolling needs it.')
        self.ctl('enroll', USER, '--label', 'demo-key', '--pin-stdin', stdin=PIN + '\n')
        self.ctl('list', USER)
        creds = os.listdir(os.path.join(self.etc, 'credentials'))
        if not creds:
            raise DemoFailure('enroll reported success but the credential store is empty')
        if not self.wait_record('enroll', 5, user=USER, result='success'):
            raise DemoFailure('no "enroll" success record in the audit trail' + self.daemon_tail())
        o.ok(f'alice is enrolled (credential store: $PREFIX/etc/keyward/credentials/{creds[0]}).')

    def write_pam(self):
        os.makedirs(self.pam_dir, exist_ok=True)
        envfile = os.path.join(self.prefix, 'etc', 'session.env')
        empty = os.path.join(self.prefix, 'etc', 'pam_env.conf')
        # pam_systemd would tell the login its logind session id; pam_env stands in for it.
        self.write(envfile, f'XDG_SESSION_ID={SESSION_ID}\n')
        self.write(empty, '')
        mod = f'{self.module} config={self.conf}'
        self.write(os.path.join(self.pam_dir, SERVICE),
                   f'auth     required {mod}\n'
                   f'account  required {mod}\n'
                   f'session  required pam_env.so conffile={empty} envfile={envfile} readenv=1\n'
                   f'session  required {mod}\n')
        self.write(os.path.join(self.pam_dir, 'other'),
                   'auth required pam_deny.so\naccount required pam_deny.so\n'
                   'session required pam_deny.so\npassword required pam_deny.so\n')

    def step_login(self):
        o = self.out
        o.step('alice logs in at the graphical login screen: PIN and a touch',
               f'The "{SERVICE}" PAM service runs pam_keyward.so (pam_wrapper, nothing in '
               '/etc/pam.d changes); logind (the stand-in) gives her session the id c1.')
        self.write_pam()
        with open(os.path.join(self.pam_dir, SERVICE), encoding='utf-8') as f:
            o.cmd(['cat'], f' $PREFIX/pam.d/{SERVICE}')
            o.show(f.read())
        o.say('pam_env stands in for pam_systemd: it puts XDG_SESSION_ID=c1 into the PAM '
              'environment, so pam_keyward binds that session.')
        o.say('logind creates session c1 for this login (the stand-in is told to, as a '
              'graphical X11 session):')
        _, text = self.gdbus('--dest', LOGIND, '--object-path', LOGIND_PATH, '--method',
                             'org.freedesktop.DBus.Mock.AddSession', SESSION_ID, 'seat0',
                             str(UID), USER, 'true')
        m = re.search(r"'(/org/freedesktop/login1/session/[^']+)'", text)
        if not m:
            raise DemoFailure(f'the logind stand-in made no session object: {text}')
        self.session_path = m.group(1)
        # pam-driver, our child, is the session's process as far as logind knows: keywardd
        # checks that the caller of BindSession is in the session it names.
        self.gdbus('--dest', LOGIND, '--object-path', LOGIND_PATH, '--method',
                   'org.freedesktop.DBus.Mock.SetSessionByPID', str(os.getpid()), SESSION_ID)
        self.gdbus('--dest', LOGIND, '--object-path', self.session_path, '--method',
                   'org.freedesktop.DBus.Mock.UpdateProperties', 'org.freedesktop.login1.Session',
                   f'{{"Type": <"x11">, "Service": <"{SERVICE}">}}')
        o.say('The login itself: pam-driver (libpamtest) runs auth, account and open_session '
              f'and types the PIN {PIN} when asked. keywardd sees that alice\'s key has a PIN and '
              'asks for it (user_verification = "preferred"); then the key is touched.')
        rc, text = self.pam(['auth:PAM_SUCCESS', 'acct:PAM_SUCCESS', 'open:PAM_SUCCESS'])
        if rc != 0 or 'result: auth PAM_SUCCESS' not in text:
            raise DemoFailure('the login with a touch did not succeed' + self.daemon_tail())
        if 'Touch your security key for alice' not in text:
            raise DemoFailure('pam_keyward did not ask for a touch')
        rec = self.wait_record('session-bind', 5, user=USER, result='success')
        if not rec:
            raise DemoFailure('no "session-bind" success record: the session is not bound '
                              'to the key' + self.daemon_tail())
        o.ok('LOGIN SUCCEEDED for alice with a touch (and her PIN); session c1 is bound to '
             f'the key ({rec.get("device", "?")}).')
        o.show('\n'.join(self.daemon_lines(r'Bound ')))
        self.start_locker()

    def start_locker(self):
        '''alice's desktop: a screen locker that locks on logind's Lock and then sets
        LockedHint (what GNOME's or KDE's locker do), watching session c1.'''
        self.locker_log = os.path.join(self.prefix, 'screen-locker.log')
        with open(self.locker_log, 'wb') as f:
            self.locker = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                                            '--screen-locker', self.session_path],
                                           stdout=f, stderr=subprocess.STDOUT,
                                           preexec_fn=die_with_parent)
        deadline = time.monotonic() + 10
        while True:
            with open(self.locker_log, encoding='utf-8', errors='replace') as f:
                if 'ready' in f.read():
                    break
            if self.locker.poll() is not None or time.monotonic() > deadline:
                with open(self.locker_log, encoding='utf-8', errors='replace') as f:
                    raise DemoFailure('the screen locker stand-in did not start: ' + f.read())
            time.sleep(0.05)
        self.out.say(f'alice\'s screen locker (stand-in, pid {self.locker.pid}) watches '
                     f'{self.session_path}.')

    def step_removal(self):
        o = self.out
        o.step('alice pulls her key out',
               'keywardd sees the hidraw device go (udev), waits the rule\'s grace period '
               '(3 s), asks logind to lock session c1 and checks that it really is locked.')
        session_path = self.session_path
        mark = self.daemon_line_count()
        logind_mark = self.logind_log_size()
        t0 = time.monotonic()
        self.bed('unplug', '0')
        rec, bad = self.wait_lock(20)
        took = time.monotonic() - t0
        o.say('keywardd\'s log:')
        o.show('\n'.join(self.daemon_lines(r'gone|Bound key|[Ll]ock|SECURITY|grace', mark)))
        calls = self.logind_calls(logind_mark)
        o.say('What the logind stand-in was asked (its call log):')
        o.show('\n'.join(calls) if calls else '(nothing)')
        time.sleep(0.2)
        with open(self.locker_log, encoding='utf-8', errors='replace') as f:
            signals = [l for l in f.read().splitlines() if 'ready' not in l]
        o.say('alice\'s screen locker (stand-in, watching her session object):')
        o.show('\n'.join(signals) if signals else '(nothing)')
        lock_called = any(re.search(r'\bLock(Session)?\b', c) for c in calls)
        lock_signal = any('received Lock' in l for l in signals)
        if not lock_called or not lock_signal:
            raise DemoFailure('logind never received the Lock for session c1 after the key '
                              'was pulled' + self.daemon_tail())
        o.ok('logind received Lock for session c1.')
        if not rec:
            what = '; '.join(f'{r.get("event")} ({r.get("reason")}: {r.get("message", "")})'
                             for r in bad) or 'no record at all within 20 s'
            raise DemoFailure('the lock of session c1 was NOT verified after the key was pulled: '
                              + what + self.daemon_tail())
        self.gdbus('--dest', LOGIND, '--object-path', session_path, '--method',
                   'org.freedesktop.DBus.Properties.Get', 'org.freedesktop.login1.Session',
                   'LockedHint')
        o.ok(f'LOCK VERIFIED: keywardd confirmed LockedHint=true for session c1 '
             f'({took:.1f} s after the key was pulled, including the 3 s grace).')

    def wait_lock(self, timeout_s):
        '''(lock-verified record, None) or (None, [lock-failed/-escalated records]).'''
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            recs = [r for r in self.records() if r.get('user') == USER]
            for r in recs:
                if r.get('event') == 'lock-verified' and r.get('result') == 'success':
                    return r, None
            bad = [r for r in recs if r.get('event') in ('lock-failed', 'lock-escalated')]
            if bad:
                time.sleep(0.3)  # let the escalation finish and be recorded
                return None, [r for r in self.records()
                              if r.get('event') in ('lock-failed', 'lock-escalated')]
            if self.daemon.poll() is not None:
                raise DemoFailure('keywardd exited' + self.daemon_tail())
            time.sleep(0.05)
        return None, []

    def logind_log_size(self):
        try:
            return os.path.getsize(self.logind_log)
        except OSError:
            return 0

    def logind_calls(self, since):
        if not self.logind_log:
            raise DemoFailure('KEYWARD_TESTBED_LOGIND_LOG is not set by keyward-testbed')
        with open(self.logind_log, encoding='utf-8', errors='replace') as f:
            f.seek(since)
            lines = f.read().splitlines()
        # the demo's own bookkeeping calls are not what keywardd did
        # (the seat's and user's own bookkeeping after a TerminateSession is left out)
        return [l if len(l) <= 160 else l[:157] + '...' for l in lines
                if not re.search(r'/seat/|/user/|\bGet\b.*LockedHint', l)]

    def step_no_key(self):
        o = self.out
        o.step('Someone tries to log in as alice without the key',
               'The key is gone: keywardd refuses the login and says why.')
        rc, text = self.pam(['auth:PAM_AUTH_ERR'])
        if rc != 0 or 'result: auth PAM_AUTH_ERR' not in text:
            raise DemoFailure('the login without the key was not refused' + self.daemon_tail())
        if not self.wait_record('auth', 5, user=USER, result='failure'):
            raise DemoFailure('no "auth" failure record for the refused login')
        o.ok('LOGIN REFUSED for alice without her key.')

    def step_stop(self):
        o = self.out
        o.step('Stop keywardd', 'It writes its last audit record and exits.')
        o.cmd(['kill', '-TERM', str(self.daemon.pid)])
        self.stop_daemon()
        o.ok(f'keywardd exited with status {self.daemon.returncode}.')
        if self.daemon.returncode != 0:
            raise DemoFailure('keywardd did not exit cleanly' + self.daemon_tail())

    def step_audit(self):
        o = self.out
        o.step('The audit trail',
               'Every decision above is one hash-chained JSON record in '
               '$PREFIX/var/log/keyward/audit.log.')
        self.ctl('audit', 'show', self.audit)
        o.say('The story above, record by record: enroll; auth pin-required (keywardd asked for '
              'the PIN), then auth ok; session-bind of c1; key-removed; action lock-requested; '
              'lock-verified; auth no-key (the refused login). Seals checkpoint the chain.')
        o.step('Verify the trail', 'Recomputes the hash chain and proves every seal with the '
               'verification key: any edited, removed or reordered record would be reported.')
        _, text = self.ctl('audit', 'verify', '--verification-key', self.vk, self.audit)
        if 'INTACT' not in text:
            raise DemoFailure('keywardctl audit verify did not report the trail INTACT')
        o.ok('the audit trail is intact.')
        o.step('The compliance report',
               'Coverage, authentications, removals and their outcomes, and the trail\'s '
               'integrity, as one HTML page.')
        self.ctl('report', '--format', 'html', '-o', self.report, '--verification-key', self.vk)
        if not os.path.isfile(self.report) or os.path.getsize(self.report) == 0:
            raise DemoFailure('keywardctl report wrote no file')
        o.ok(f'report written: {self.report}')

    def stop_daemon(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()

    def cleanup(self):
        if self.locker and self.locker.poll() is None:
            self.locker.terminate()
            try:
                self.locker.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.locker.kill()
                self.locker.wait()
        self.stop_daemon()

    def main(self):
        self.step_prefix()
        self.step_policy()
        self.step_daemon()
        self.step_enroll()
        self.step_login()
        self.step_removal()
        self.step_no_key()
        self.step_stop()
        self.step_audit()


def screen_locker(session_path):
    '''--screen-locker PATH: on Lock, "lock the screen" and tell logind (SetLockedHint).'''
    # pylint: disable=import-outside-toplevel
    import dbus
    import dbus.mainloop.glib
    from gi.repository import GLib
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.SystemBus()
    session = dbus.Interface(bus.get_object(LOGIND, session_path), 'org.freedesktop.login1.Session')

    def on_lock():
        print(f'screen locker: received Lock on {session_path}: screen locked, '
              'calling SetLockedHint(true)', flush=True)
        session.SetLockedHint(True)

    bus.add_signal_receiver(on_lock, signal_name='Lock', dbus_interface='org.freedesktop.login1.Session',
                            bus_name=LOGIND, path=session_path)
    bus.add_signal_receiver(lambda: print('screen locker: received Unlock', flush=True),
                            signal_name='Unlock', dbus_interface='org.freedesktop.login1.Session',
                            bus_name=LOGIND, path=session_path)
    bus.get_name_owner(LOGIND)  # a round trip: the match rules are in place
    print('screen locker: ready', flush=True)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    loop.run()
    return 0


def on_signal(signum, _frame):
    # the first signal stops the demo; the bench may forward another one: cleanup goes on
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt(f'signal {signum}')


def main():
    if len(sys.argv) == 3 and sys.argv[1] == '--screen-locker':
        return screen_locker(sys.argv[2])
    ap = argparse.ArgumentParser(description='the narrated part of scripts/demo')
    ap.add_argument('--build-dir', required=True)
    ap.add_argument('--source-dir', required=True)
    ap.add_argument('--prefix', required=True)
    ap.add_argument('--colour', action='store_true')
    args = ap.parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    demo = None
    try:
        demo = Demo(args)
        demo.main()
    except DemoFailure as e:
        (demo.out if demo else Out(args.colour, args.prefix, args.build_dir)).fail(str(e))
        return 1
    except (subprocess.TimeoutExpired, OSError) as e:
        (demo.out if demo else Out(args.colour, args.prefix, args.build_dir)).fail(str(e))
        return 1
    except KeyboardInterrupt:
        print('\ndemo-scenario: stopping keywardd and the screen locker', flush=True)
        return 130
    finally:
        if demo:
            demo.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
