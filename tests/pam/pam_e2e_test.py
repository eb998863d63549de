#!/usr/bin/python3
'''pam_e2e_test.py: pam_keyward.so end to end with the real keywardd on the emulated key.

Runs inside keyward-testbed (umockdev key, private system bus loading the shipped
dist/org.keyward.Keyward1.conf): starts keywardd from the build tree with a temporary
policy and state, enrolls alice with keywardctl, then drives the PAM stack with pam-driver
under pam_wrapper + nss_wrapper (same stack and PAM_IGNORE marker as pam_mock_test.py).

usage (ctest does this):
  keyward-testbed --pin 123456 --bus --bus-policy dist/org.keyward.Keyward1.conf -- \
      /usr/bin/python3 pam_e2e_test.py --keywardd ... --keywardctl ... --module ... \
      --driver ... CASE
'''

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import dbus

BUS_NAME = 'org.keyward.Keyward1'
PIN = '123456'
POLICY_TIMEOUT_MS = 2000
NOT_RUNNING = ('keyward: the keyward daemon is not running; access for covered accounts is '
               'denied. Start it with: systemctl start keywardd')

PASSWD = '''root:x:0:0:root:/root:/bin/sh
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001:Bob:/home/bob:/bin/sh
'''
GROUP = '''root:x:0:
alice:x:1000:
bob:x:1001:
wheel:x:10:alice
'''
POLICY = '''settings = {
	rp_id = "pam://keyward-e2e";
	timeout = %(timeout)d;
	failmode = "closed";
	credentials_dir = "%(dir)s/credentials";
	state_dir = "%(dir)s/state";
	runtime_dir = "%(dir)s/run";
	audit_log = "%(dir)s/log/audit.log";
	breakglass = { services = ["e2e-login"]; argon2 = { opslimit = 1; memlimit = 8192; };
		codes = 3; max_attempts = 50; two_person = true; };
};
rules = (
	{
		name = "wheel-pin";
		match = { groups = ["wheel"]; services = ["e2e-pin"]; };
		require = "key";
		user_verification = "required";
	},
	{
		name = "wheel-touch";
		match = { groups = ["wheel"]; services = ["e2e-touch", "bench-keyward"]; };
		require = "key";
		user_verification = "discouraged";
	},
	{
		name = "console-breakglass";
		match = { users = ["alice", "bob", "root"]; services = ["e2e-login", "e2e-sshd"]; };
		require = "key";
		user_verification = "discouraged";
		breakglass = true;
	}
);
default = { require = "none"; };
'''


class Failure(Exception):
    pass


def check(cond, what, output=''):
    if not cond:
        raise Failure(what + ('\n--- output ---\n' + output if output else ''))


def preload(*libs):
    '''LD_PRELOAD with the testbed's umockdev preload kept first.'''
    base = [p for p in os.environ.get('LD_PRELOAD', '').replace(':', ' ').split() if p]
    return ' '.join(base + [lib for lib in libs if lib not in base])


class E2E:
    def __init__(self, args):
        self.args = args
        check('UMOCKDEV_DIR' in os.environ and 'DBUS_SYSTEM_BUS_ADDRESS' in os.environ,
              'run me inside keyward-testbed --bus (no UMOCKDEV_DIR/DBUS_SYSTEM_BUS_ADDRESS)')
        self.tmp = tempfile.mkdtemp(prefix='keyward-e2e-')
        os.chmod(self.tmp, 0o700)
        self.daemon = None
        self.daemon_log = os.path.join(self.tmp, 'keywardd.log')
        self.policy = os.path.join(self.tmp, 'keyward.conf')
        with open(self.policy, 'w', encoding='utf-8') as f:
            f.write(POLICY % {'dir': self.tmp, 'timeout': args.policy_timeout})
        os.chmod(self.policy, 0o644)
        for name, text in (('passwd', PASSWD), ('group', GROUP)):
            with open(os.path.join(self.tmp, name), 'w', encoding='utf-8') as f:
                f.write(text)
        self.service_dir = os.path.join(self.tmp, 'pam.d')
        os.mkdir(self.service_dir)
        with open(os.path.join(self.service_dir, 'other'), 'w', encoding='utf-8') as f:
            f.write('auth required pam_deny.so\naccount required pam_deny.so\n'
                    'session required pam_deny.so\n')
        for service in ('e2e-pin', 'e2e-touch', 'bench-keyward', 'e2e-login', 'e2e-sshd'):
            self.write_service(service)
        self.bus = dbus.bus.BusConnection(os.environ['DBUS_SYSTEM_BUS_ADDRESS'])
        self.nss_env = {
            'NSS_WRAPPER_PASSWD': os.path.join(self.tmp, 'passwd'),
            'NSS_WRAPPER_GROUP': os.path.join(self.tmp, 'group'),
        }

    def write_service(self, service, options=''):
        module = os.path.abspath(self.args.module)
        opts = f'config={self.policy} {options}'.strip()
        with open(os.path.join(self.service_dir, service), 'w', encoding='utf-8') as f:
            f.write(f'auth [success=done ignore=ignore default=die] {module} {opts}\n'
                    'auth required pam_debug.so auth=cred_unavail\n'
                    f'account [success=done ignore=ignore default=die] {module} {opts}\n'
                    'account required pam_debug.so acct=cred_unavail\n'
                    f'session required {module} {opts}\n')

    def start_daemon(self):
        env = dict(os.environ, LD_PRELOAD=preload('libnss_wrapper.so'), **self.nss_env)
        # -v (debug log) unless the caller says verbose=False (bench/flood: as in production)
        verbose = ['-v'] if getattr(self.args, 'verbose', True) else []
        self.daemon = subprocess.Popen([self.args.keywardd, '-c', self.policy] + verbose, env=env,
                                       stdout=subprocess.DEVNULL,
                                       stderr=open(self.daemon_log, 'wb'))
        deadline = time.monotonic() + 15
        while not self.bus.name_has_owner(BUS_NAME):
            if self.daemon.poll() is not None:
                raise Failure('keywardd exited: ' + self.log())
            check(time.monotonic() < deadline, 'keywardd did not take its bus name in time',
                  self.log())
            time.sleep(0.02)

    def stop_daemon(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        deadline = time.monotonic() + 5
        while self.bus.name_has_owner(BUS_NAME) and time.monotonic() < deadline:
            time.sleep(0.02)

    def log(self):
        try:
            with open(self.daemon_log, encoding='utf-8', errors='replace') as f:
                return f.read()[-6000:]
        except OSError:
            return ''

    def enroll(self, user='alice', pin=PIN):
        '''keywardctl enroll USER; pin=None for a key without a PIN.'''
        env = dict(os.environ, LD_PRELOAD=preload('libnss_wrapper.so'), **self.nss_env)
        argv = [self.args.keywardctl, 'enroll', user] + (['--pin-stdin'] if pin else [])
        p = subprocess.run(argv, input=(pin + '\n').encode() if pin else b'', env=env,
                           capture_output=True, timeout=60, check=False)
        out = p.stdout.decode(errors='replace') + p.stderr.decode(errors='replace')
        check(p.returncode == 0, f'keywardctl enroll {user} failed ({p.returncode})',
              out + self.log())

    def ctl(self, *args):
        p = subprocess.run([self.args.testbed, 'ctl', '-'] + list(args), capture_output=True,
                           timeout=30, check=False)
        check(p.returncode == 0, f'testbed ctl {args} failed: {p.stderr.decode()}')

    def driver_env(self):
        env = dict(os.environ)
        env.update(self.nss_env)
        env.update({
            'LD_PRELOAD': preload('libpam_wrapper.so', 'libnss_wrapper.so'),
            'PAM_WRAPPER': '1',
            'PAM_WRAPPER_SERVICE_DIR': self.service_dir,
            'PAM_WRAPPER_DEBUGLEVEL': '2',
        })
        return env

    def run(self, service, user, ops, pins=(), extra=(), valgrind=False):
        expect = []
        for op, code in ops:
            if code == 'PAM_IGNORE' and op in ('auth', 'acct'):
                code = 'PAM_CRED_UNAVAIL'
            expect.append(f'{op}:{code}')
        argv = [self.args.driver] + list(extra)
        for p in pins:
            argv += ['--pin', p]
        argv += [service, user] + expect
        env = self.driver_env()
        if valgrind:
            # the module's definite leaks and invalid accesses fail the run (exit 99)
            argv = ['valgrind', '--quiet', '--error-exitcode=99', '--leak-check=full',
                    '--errors-for-leak-kinds=definite', '--show-leak-kinds=definite',
                    '--trace-children=no', '--num-callers=30'] + argv
            env.update({'PAM_WRAPPER_DISABLE_DEEPBIND': '1', 'UID_WRAPPER_DISABLE_DEEPBIND': '1'})
        start = time.monotonic()
        p = subprocess.run(argv, env=env, capture_output=True, timeout=300, check=False)
        took = time.monotonic() - start
        out = ''.join(line for line in p.stdout.decode(errors='replace').splitlines(True)
                      if not line.startswith(('info: auth=', 'info: acct=')))
        err = p.stderr.decode(errors='replace')
        sys.stdout.write(f'$ {" ".join(argv)}\n{out}')
        return p.returncode, out, err, took

    def close(self):
        self.stop_daemon()
        shutil.rmtree(self.tmp, ignore_errors=True)


def ready(e, pin=None):
    '''keywardd up and alice enrolled; pin: the key's PIN (testbed --pin), if it has one.'''
    e.start_daemon()
    e.enroll('alice', pin=pin)


def case_touch(e):
    ready(e)
    rc, out, err, _ = e.run('e2e-touch', 'alice', [('auth', 'PAM_SUCCESS'),
                                                   ('acct', 'PAM_SUCCESS'),
                                                   ('open', 'PAM_SUCCESS'),
                                                   ('close', 'PAM_SUCCESS')])
    check(rc == 0, 'touch: unexpected PAM results', out + err[-3000:] + e.log())
    check('info: Touch your security key for alice' in out, 'no touch cue', out)
    check('prompt-off' not in out, 'a PIN was asked for a touch-only rule', out)


def case_never_touch(e):
    ready(e)
    e.ctl('touch-mode', '0', 'never')
    rc, out, err, took = e.run('e2e-touch', 'alice', [('auth', 'PAM_AUTH_ERR')])
    check(rc == 0, 'never touched: unexpected PAM results', out + err[-3000:] + e.log())
    check('error:' in out, 'no reason shown for the missing touch', out)
    check(took >= POLICY_TIMEOUT_MS / 1000 * 0.9,
          f'denied before the policy timeout ({took:.2f} s)', out)


def case_pin_right(e):
    ready(e, PIN)
    rc, out, err, _ = e.run('e2e-pin', 'alice', [('auth', 'PAM_SUCCESS'), ('open', 'PAM_SUCCESS'),
                                                 ('close', 'PAM_SUCCESS')], pins=[PIN])
    check(rc == 0, 'right PIN: unexpected PAM results', out + err[-3000:] + e.log())
    check('prompt-off: Security key PIN for alice: ' in out, 'no PIN prompt', out)
    check(PIN not in err and PIN not in e.log(), 'the PIN reached a log')


def case_pin_wrong(e):
    ready(e, PIN)
    rc, out, err, _ = e.run('e2e-pin', 'alice', [('auth', 'PAM_AUTH_ERR')], pins=['999999'])
    check(rc == 0, 'wrong PIN: unexpected PAM results', out + err[-3000:] + e.log())
    check('error:' in out and 'PIN' in out, "no PIN error from the daemon shown", out)


def case_pin_retry(e):
    # A credential made with the key's PIN needs it even where the rule does not require
    # it: the daemon answers pin-required and the module asks once.
    ready(e, PIN)
    rc, out, err, _ = e.run('e2e-touch', 'alice', [('auth', 'PAM_SUCCESS')], pins=[PIN])
    check(rc == 0, 'PIN retry: unexpected PAM results', out + err[-3000:] + e.log())
    check(out.count('prompt-off: Security key PIN for alice: ') == 1, 'PIN not asked once', out)


def case_uncovered(e):
    ready(e)
    rc, out, err, _ = e.run('e2e-touch', 'bob', [('auth', 'PAM_IGNORE'), ('acct', 'PAM_IGNORE'),
                                                 ('open', 'PAM_SUCCESS')])
    check(rc == 0, 'uncovered: unexpected PAM results', out + err[-3000:] + e.log())
    check('info:' not in out and 'error:' not in out, 'an uncovered user saw a message', out)


def case_daemon_down(e):
    ready(e)
    e.stop_daemon()
    rc, out, err, _ = e.run('e2e-touch', 'alice', [('auth', 'PAM_SERVICE_ERR')])
    check(rc == 0, 'daemon down, covered: unexpected PAM results', out + err[-3000:])
    check('error: ' + NOT_RUNNING in out, 'no "daemon is not running" message', out)
    rc, out, err, _ = e.run('e2e-touch', 'bob', [('auth', 'PAM_IGNORE')])
    check(rc == 0, 'daemon down, uncovered: unexpected PAM results', out + err[-3000:])


def manager(e):
    return dbus.Interface(e.bus.get_object(BUS_NAME, '/org/keyward/Keyward1'),
                          'org.keyward.Keyward1.Manager')


def case_breakglass_code(e):
    '''alice has no key: the console login asks for a recovery code; a code works once;
    bob cannot use it; the other service is not offered it; sudo waits for a new key.'''
    e.start_daemon()
    codes = [str(c) for c in manager(e).BreakglassIssue('alice', timeout=60)[0]]
    rc, out, err, _ = e.run('e2e-sshd', 'alice', [('auth', 'PAM_PERM_DENIED')], pins=[codes[1]])
    check(rc == 0 and 'prompt-off' not in out, 'a service not listed offered break-glass',
          out + err[-3000:] + e.log())
    login = [('auth', 'PAM_SUCCESS'), ('open', 'PAM_SUCCESS'), ('close', 'PAM_SUCCESS')]
    rc, out, err, _ = e.run('e2e-login', 'alice', login, pins=[codes[0].lower()])
    check(rc == 0, 'break-glass login: unexpected PAM results', out + err[-3000:] + e.log())
    check('info: No security key is available for alice. Enter a break-glass recovery code' in out,
          'no offer shown', out)
    check('prompt-off: Break-glass recovery code: ' in out, 'no code prompt', out)
    check('keywardctl enroll' in out, 'not told to enroll a new key', out)
    check('info: Touch your security key' not in out, 'a touch cue for a login without a key', out)
    rc, out, err, _ = e.run('e2e-login', 'alice', [('auth', 'PAM_AUTH_ERR')], pins=[codes[0]])
    check(rc == 0 and 'used already' in out, 'the same code twice', out + err[-3000:] + e.log())
    rc, out, err, _ = e.run('e2e-login', 'alice', [('auth', 'PAM_AUTH_ERR')], pins=['not-a-code'])
    check(rc == 0 and 'not a recovery code' in out, 'malformed code', out + err[-3000:])
    rc, out, err, _ = e.run('e2e-login', 'alice', [('auth', 'PAM_AUTH_ERR')], pins=['A' * 600])
    check(rc == 0 and 'not a recovery code' in out, 'overlong code', out + err[-3000:])
    rc, out, err, _ = e.run('e2e-login', 'bob', [('auth', 'PAM_AUTH_ERR')], pins=[codes[1]])
    check(rc == 0, "bob with alice's code", out + err[-3000:] + e.log())
    used = [bool(u) for _, _, _, u in manager(e).BreakglassList('alice')]
    check(used.count(True) == 1, f'only the used code is burnt: {used}')
    for c in codes:
        check(c not in err and c not in e.log() and c.lower() not in e.log(), 'a code reached a log')
    # no elevation until a new key is enrolled
    rc, out, err, _ = e.run('e2e-touch', 'alice', [('auth', 'PAM_PERM_DENIED')])
    check(rc == 0 and 'keywardctl enroll alice' in out, 'elevation after break-glass',
          out + err[-3000:] + e.log())
    e.enroll('alice', pin=None)
    rc, out, err, _ = e.run('e2e-touch', 'alice', [('auth', 'PAM_SUCCESS')])
    check(rc == 0, 'elevation after enroll', out + err[-3000:] + e.log())


def case_breakglass_approve(e):
    '''root (another administrator, with a key) approves one login of alice with a touch.'''
    e.start_daemon()
    e.enroll('root', pin=None)
    until = manager(e).BreakglassApprove('alice', dbus.types.UnixFd(os.open('/dev/null', os.O_RDONLY)),
                                         dbus.Dictionary({}, signature='sv'), timeout=60)
    check(int(until) > time.time() * 1e6, 'approval valid until the future')
    login = [('auth', 'PAM_SUCCESS'), ('open', 'PAM_SUCCESS'), ('close', 'PAM_SUCCESS')]
    rc, out, err, _ = e.run('e2e-login', 'alice', login, pins=[''], valgrind=True)
    check(rc == 0, 'approved login (under valgrind)', out + err[-3000:] + e.log())
    rc, out, err, _ = e.run('e2e-login', 'alice', [('auth', 'PAM_AUTH_ERR')], pins=[''],
                            valgrind=True)
    check(rc == 0, 'an approval works once', out + err[-3000:] + e.log())


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith('case_')}


def main():
    ap = argparse.ArgumentParser()
    for opt in ('--keywardd', '--keywardctl', '--module', '--driver', '--testbed'):
        ap.add_argument(opt, required=True)
    ap.add_argument('--policy-timeout', type=int, default=POLICY_TIMEOUT_MS)
    ap.add_argument('case', choices=sorted(CASES))
    args = ap.parse_args()
    check(os.geteuid() == 0, 'these tests run as root (root-owned policy and state)')
    e = E2E(args)
    try:
        CASES[args.case](e)
    except Failure as ex:
        print(f'FAIL {args.case}: {ex}', file=sys.stderr)
        return 1
    finally:
        e.close()
    print(f'PASS {args.case}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
