#!/usr/bin/python3
'''pam_mock_test.py: tests of pam_keyward.so against a scripted keywardd mock.

Each test case runs on its own private dbus-daemon (system bus), with the mock template
tests/pam/mock_keywardd.py in python-dbusmock, users and groups from nss_wrapper and the
PAM stack from pam_wrapper; pam-driver (libpamtest) runs the PAM operations in-process.

The stack makes the module's own return code visible:
    auth    [success=done ignore=ignore default=die]  pam_keyward.so ...
    auth    required  pam_debug.so auth=cred_unavail
so PAM_CRED_UNAVAIL (never returned by pam_keyward) means "pam_keyward returned
PAM_IGNORE"; any failure is pam_keyward's own code (default=die).

usage: pam_mock_test.py --build-dir DIR --source-dir DIR CASE
'''

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import dbus

BUS_NAME = 'org.keyward.Keyward1'
MAIN_OBJ = '/org/keyward/Keyward1'
MOCK_IFACE = 'org.freedesktop.DBus.Mock'
TOKEN = '00112233445566778899aabbccddeeff'
PIN = '246810'
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
	timeout = 30000;
	failmode = "%(failmode)s";
};
rules = (
	{
		name = "wheel-key";
		match = { groups = ["wheel"]; };
		require = "key";
		user_verification = "required";
	}
);
default = { require = "none"; };
'''


class Failure(Exception):
    pass


def check(cond, what, output=''):
    if not cond:
        raise Failure(what + ('\n--- output ---\n' + output if output else ''))


class Bench:
    '''One private bus, optionally the mock, the PAM/NSS wrapper files.'''

    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix='keyward-pam-')
        os.chmod(self.tmp, 0o755)
        self.bus_proc = None
        self.mock_proc = None
        self.logind_proc = None
        self.address = None
        self.bus = None
        self.policy_path = os.path.join(self.tmp, 'keyward.conf')
        # keywardd's coverage snapshot: the runtime copy (option runtime_dir=), then the one
        # beside the policy (POLICY.coverage, as POLICY.last-good).
        self.run_dir = os.path.join(self.tmp, 'run')
        self.snapshot_run = os.path.join(self.run_dir, 'coverage')
        self.snapshot_state = self.policy_path + '.coverage'
        self.write_policy()
        with open(os.path.join(self.tmp, 'passwd'), 'w', encoding='utf-8') as f:
            f.write(PASSWD)
        with open(os.path.join(self.tmp, 'group'), 'w', encoding='utf-8') as f:
            f.write(GROUP)
        self.service_dir = os.path.join(self.tmp, 'pam.d')
        os.mkdir(self.service_dir)
        with open(os.path.join(self.service_dir, 'other'), 'w', encoding='utf-8') as f:
            f.write('auth required pam_deny.so\naccount required pam_deny.so\n'
                    'session required pam_deny.so\n')

    def write_policy(self, text=None, failmode='closed'):
        if os.path.lexists(self.policy_path):
            os.unlink(self.policy_path)
        with open(self.policy_path, 'w', encoding='utf-8') as f:
            f.write(text if text is not None else POLICY % {'failmode': failmode})
        os.chmod(self.policy_path, 0o644)

    def write_service(self, options='', name='keyward-test', set_items=False, session_env=None):
        module = os.path.abspath(self.args.module)
        opts = f'config={self.policy_path} runtime_dir={self.run_dir} {options}'.strip()
        lines = []
        if set_items:
            lines.append(f'auth optional {self.args.wrapper_modules}/pam_set_items.so')
        lines += [
            f'auth [success=done ignore=ignore default=die] {module} {opts}',
            'auth required pam_debug.so auth=cred_unavail',
            f'account [success=done ignore=ignore default=die] {module} {opts}',
            'account required pam_debug.so acct=cred_unavail',
            f'session required {module} {opts}',
        ]
        if session_env:
            envfile = os.path.join(self.tmp, 'pam_env')
            with open(envfile, 'w', encoding='utf-8') as f:
                f.write(session_env)
            lines.insert(-1, 'session required pam_env.so conffile=/dev/null '
                         f'envfile={envfile} readenv=1 user_readenv=0')
        with open(os.path.join(self.service_dir, name), 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n')

    def start_bus(self):
        # A case may ask twice (daemon_down() per login): stop the bus it started before,
        # else that dbus-daemon is never stopped and outlives the test.
        if self.bus_proc and self.bus_proc.poll() is None:
            self.bus_proc.terminate()
            self.bus_proc.wait(timeout=5)
        sock = os.path.join(self.tmp, 'system_bus_socket')
        conf = os.path.join(self.tmp, 'bus.conf')
        include = ''
        shipped = os.path.join(self.args.source_dir, 'dist', 'org.keyward.Keyward1.conf')
        if os.path.exists(shipped):
            include = f'<include>{shipped}</include>'
        with open(conf, 'w', encoding='utf-8') as f:
            f.write(f'''<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
  {include}
</busconfig>
''')
        self.bus_proc = subprocess.Popen(
            ['dbus-daemon', f'--config-file={conf}', f'--address=unix:path={sock}', '--nofork',
             '--nopidfile', '--print-address=1'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.bus_proc.stdout.readline().decode().strip()
        check(line.startswith('unix:'), 'dbus-daemon did not start: ' + line)
        self.address = line
        os.environ['DBUS_SYSTEM_BUS_ADDRESS'] = self.address
        self.bus = dbus.bus.BusConnection(self.address)

    def start_mock(self):
        log = os.path.join(self.tmp, 'mock.log')
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.address)
        self.mock_proc = subprocess.Popen(
            [self.args.python, '-m', 'dbusmock', '--system', '-t', self.args.template,
             '-l', log], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while not self.bus.name_has_owner(BUS_NAME):
            if self.mock_proc.poll() is not None:
                raise Failure('the mock exited: ' + self.mock_proc.stderr.read().decode())
            check(time.monotonic() < deadline, 'the mock did not take its bus name in time')
            time.sleep(0.02)
        self.mock = dbus.Interface(self.bus.get_object(BUS_NAME, MAIN_OBJ), MOCK_IFACE)

    def start_logind(self):
        '''The bench's logind mock (tests/virtkey/logind_extra.py): GetSessionByPID.'''
        template = os.path.join(self.args.source_dir, 'tests', 'virtkey', 'logind_extra.py')
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.address)
        self.logind_proc = subprocess.Popen(
            [self.args.python, '-m', 'dbusmock', '--system', '-t', template, '-l',
             os.path.join(self.tmp, 'logind.log')], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while not self.bus.name_has_owner('org.freedesktop.login1'):
            if self.logind_proc.poll() is not None:
                raise Failure('the logind mock exited: ' + self.logind_proc.stderr.read().decode())
            check(time.monotonic() < deadline, 'the logind mock did not start in time')
            time.sleep(0.02)
        return dbus.Interface(self.bus.get_object('org.freedesktop.login1',
                                                  '/org/freedesktop/login1'), MOCK_IFACE)

    def calls(self, name=None):
        return [(str(n), [str(a) for a in args]) for n, args in self.mock.GetCalls2()
                if name is None or str(n) == name]

    def pins(self):
        return [bytes(p) for p in self.mock.GetPins()]

    def run(self, user, ops, pins=(), service='keyward-test', extra_env=None, timeout=60,
            repeat=None, valgrind=None, as_uid=None, silent=False):
        '''Runs pam-driver; returns (rc, stdout, stderr, seconds).'''
        expect = []
        for op, code in ops:
            # The pam_debug marker after pam_keyward: see the module docstring.
            if code == 'PAM_IGNORE' and op in ('auth', 'acct'):
                code = 'PAM_CRED_UNAVAIL'
            expect.append(f'{op}:{code}')
        argv = [self.args.driver]
        if repeat:
            argv += ['--repeat', str(repeat), '--quiet']
        if silent:
            argv.append('--silent')
        for p in pins:
            argv += ['--pin', p]
        argv += [service, user] + expect
        if valgrind:
            argv = valgrind + argv
        if as_uid is not None:
            argv = ['setpriv', f'--reuid={as_uid}', f'--regid={as_uid}', '--clear-groups'] + argv
        env = dict(os.environ)
        env.update({
            'LD_PRELOAD': 'libpam_wrapper.so libnss_wrapper.so',
            'PAM_WRAPPER': '1',
            'PAM_WRAPPER_SERVICE_DIR': self.service_dir,
            'PAM_WRAPPER_DEBUGLEVEL': '2',
            'NSS_WRAPPER_PASSWD': os.path.join(self.tmp, 'passwd'),
            'NSS_WRAPPER_GROUP': os.path.join(self.tmp, 'group'),
        })
        if self.args.sanitized:
            # ASan's runtime is not first in the preload list; deep binding breaks it.
            env['ASAN_OPTIONS'] = 'verify_asan_link_order=0:detect_leaks=1:abort_on_error=0'
            env['PAM_WRAPPER_DISABLE_DEEPBIND'] = '1'
            # pam_wrapper 1.1.4 actually reads this name (a copy-paste slip upstream).
            env['UID_WRAPPER_DISABLE_DEEPBIND'] = '1'
        if self.address:
            env['DBUS_SYSTEM_BUS_ADDRESS'] = self.address
        if extra_env:
            env.update(extra_env)
        start = time.monotonic()
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, check=False)
        took = time.monotonic() - start
        # pam_debug (the PAM_IGNORE marker) announces itself: not part of what we test.
        out = ''.join(line for line in proc.stdout.decode(errors='replace').splitlines(True)
                      if not line.startswith(('info: auth=', 'info: acct=')))
        err = proc.stderr.decode(errors='replace')
        sys.stdout.write(f'$ {" ".join(argv)}\n{out}')
        sys.stderr.write(err[-4000:])
        return proc.returncode, out, err, took

    def close(self):
        for p in (self.mock_proc, self.logind_proc, self.bus_proc):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def covered(b, user='alice', uv='required', n=1, timeout_ms=30000):
    b.mock.SetCheck(user, 'key', uv, True, dbus.UInt32(timeout_ms), 'keyward.conf:6', '',
                    dbus.UInt32(n))


def expect_ok(rc, out, what):
    check(rc == 0, what + ': unexpected PAM results', out)


# --- the cases ------------------------------------------------------------------------

def case_uncovered(b):
    b.start_bus()
    b.start_mock()
    b.write_service()
    rc, out, _, _ = b.run('bob', [('auth', 'PAM_IGNORE'), ('acct', 'PAM_IGNORE'),
                                  ('open', 'PAM_SUCCESS'), ('close', 'PAM_SUCCESS')])
    expect_ok(rc, out, 'uncovered user')
    check('prompt-off' not in out and 'info:' not in out and 'error:' not in out,
          'an uncovered user saw a prompt or message', out)
    check(not b.calls('Authenticate'), 'Authenticate was called for an uncovered user')
    check(not b.calls('BindSession'), 'BindSession was called without a token')
    checks = b.calls('Check')
    check(len(checks) == 2 and checks[0][1][:2] == ['bob', 'keyward-test'],
          f'Check was not asked as expected: {checks}')


def case_granted_pin(b):
    b.start_bus()
    b.start_mock()
    b.write_service()
    covered(b)
    b.mock.SetAuth('alice', 'pin', True, 'ok', 'Wrong PIN for your security key; 7 tries left.',
                   TOKEN, PIN)
    b.mock.SetBind('ok', 'binding-42')
    rc, out, err, _ = b.run('alice', [('auth', 'PAM_SUCCESS'), ('acct', 'PAM_SUCCESS'),
                                      ('open', 'PAM_SUCCESS'), ('close', 'PAM_SUCCESS')],
                            pins=[PIN])
    expect_ok(rc, out, 'granted with PIN')
    check('prompt-off: Security key PIN for alice: ' in out, 'no PIN prompt', out)
    check('info: Touch your security key for alice' in out, 'no touch cue', out)
    check(out.index('prompt-off:') < out.index('info: Touch'), 'cue shown before the PIN prompt',
          out)
    check(b.pins() == [PIN.encode()], f'the daemon did not get the PIN via the fd: {b.pins()}')
    auth = b.calls('Authenticate')
    check(len(auth) == 1 and PIN not in ' '.join(auth[0][1]),
          f'the PIN travelled in the message body: {auth}')
    bind = b.calls('BindSession')
    check(len(bind) == 1, f'BindSession not called once: {bind}')
    token, _sid, pid, service, _tty, user = bind[0][1]
    check(token == TOKEN and user == 'alice' and service == 'keyward-test' and int(pid) > 0,
          f'BindSession arguments: {bind}')
    check(b.calls('UnbindSession') == [('UnbindSession', ['binding-42'])],
          f'UnbindSession arguments: {b.calls("UnbindSession")}')
    check(PIN not in err and TOKEN not in err, 'the PIN or the token reached the log', err)


def case_pin_retry(b):
    # uv=preferred: no PIN asked first; the daemon answers pin-required (the credential was
    # enrolled with UV), the module asks once and tries again.
    b.start_bus()
    b.start_mock()
    b.write_service()
    covered(b, uv='preferred')
    b.mock.SetAuth('alice', 'pin', True, 'ok', 'Wrong PIN.', TOKEN, PIN)
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_SUCCESS')], pins=[PIN])
    expect_ok(rc, out, 'PIN asked after pin-required')
    check(b.pins() == [b'', PIN.encode()], f'PIN attempts: {b.pins()}')
    check(out.count('prompt-off: Security key PIN for alice: ') == 1, 'PIN not asked once', out)
    check('error:' not in out, 'the pin-required answer was shown as an error', out)
    # the daemon tells the prompt (first call) from a refusal after asking (second)
    auth = b.calls('Authenticate')
    check(len(auth) == 2 and 'pin-asked' not in auth[0][1][5] and
          re.search(r"'pin-asked'\)?: (dbus\.Boolean\()?True", auth[1][1][5]),
          f'pin-asked options: {auth}')


def bound_session_id(b):
    bind = b.calls('BindSession')
    check(len(bind) == 1, f'BindSession not called once: {bind}')
    return bind[0][1][1]


def case_session_logind(b):
    # No XDG_SESSION_ID in the PAM environment: logind's GetSessionByPID names the session.
    b.start_bus()
    b.start_mock()
    logind = b.start_logind()
    logind.AddSession('c7', 'seat0', dbus.UInt32(1000), 'alice', True)
    logind.SetSessionByPID(dbus.UInt32(0), 'c7')
    b.write_service()
    covered(b, uv='discouraged')
    b.mock.SetAuth('alice', 'reply', True, 'ok', '', TOKEN, '')
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_SUCCESS'), ('open', 'PAM_SUCCESS'),
                                    ('close', 'PAM_SUCCESS')])
    expect_ok(rc, out, 'session from logind')
    sid = bound_session_id(b)
    check(sid == 'c7', f'BindSession got session id {sid!r}, not logind\'s c7')


def case_session_env(b):
    # pam_systemd's XDG_SESSION_ID in the PAM environment wins over logind.
    b.start_bus()
    b.start_mock()
    logind = b.start_logind()
    logind.AddSession('c7', 'seat0', dbus.UInt32(1000), 'alice', True)
    logind.SetSessionByPID(dbus.UInt32(0), 'c7')
    b.write_service(session_env='XDG_SESSION_ID=42\n')
    covered(b, uv='discouraged')
    b.mock.SetAuth('alice', 'reply', True, 'ok', '', TOKEN, '')
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_SUCCESS'), ('open', 'PAM_SUCCESS')])
    expect_ok(rc, out, 'session from the PAM environment')
    sid = bound_session_id(b)
    check(sid == '42', f'BindSession got session id {sid!r}, not XDG_SESSION_ID 42')


def case_wrong_pin(b):
    b.start_bus()
    b.start_mock()
    b.write_service()
    covered(b)
    msg = 'Wrong PIN for your security key; 5 tries left.'
    b.mock.SetAuth('alice', 'pin', True, 'ok', msg, TOKEN, PIN)
    rc, out, err, _ = b.run('alice', [('auth', 'PAM_AUTH_ERR'), ('open', 'PAM_SUCCESS')],
                            pins=['1111'])
    expect_ok(rc, out, 'wrong PIN')
    check('error: ' + msg in out, "the daemon's message was not shown", out)
    check(b.pins() == [b'1111'], f'PIN bytes: {b.pins()}')
    check(not b.calls('BindSession'), 'a failed authentication left a token behind')
    check('1111' not in err, 'the PIN reached the log', err)


def case_touch_only(b):
    b.start_bus()
    b.start_mock()
    b.write_service('[cue=Tap the key, %u (100%%)]')
    covered(b, uv='discouraged')
    b.mock.SetAuth('alice', 'reply', True, 'ok', '', TOKEN, '')
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_SUCCESS')])
    expect_ok(rc, out, 'touch only')
    check('prompt-off' not in out, 'a PIN was asked although uv is discouraged', out)
    check('info: Tap the key, alice (100%)\n' in out, 'the cue= option was not used', out)
    check(b.pins() == [b''], f'the pin fd was not empty: {b.pins()}')


def case_check_queue_full(b):
    # dbus-daemon refuses a call when the daemon's queue is full (a local user can fill it
    # with calls of its own): the module sends it again until its deadline.
    b.start_bus()
    b.start_mock()
    b.write_service()
    covered(b, uv='discouraged')
    b.mock.SetAuth('alice', 'reply', True, 'ok', '', TOKEN, '')
    b.mock.SetCheckMode('full-3')
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_SUCCESS')])
    expect_ok(rc, out, 'Check refused three times with LimitsExceeded, then answered')
    checks = [c for c in b.calls() if c[0] == 'Check']
    check(len(checks) == 4, f'expected 4 Check calls (3 refused, 1 answered): {checks}')


def case_nocue(b):
    b.start_bus()
    b.start_mock()
    b.write_service('nocue')
    covered(b, uv='discouraged')
    b.mock.SetAuth('alice', 'reply', True, 'ok', '', TOKEN, '')
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_SUCCESS')])
    expect_ok(rc, out, 'nocue')
    check('info:' not in out, 'nocue still showed a cue', out)


def case_silent(b):
    # PAM_SILENT (sudo passes it by default): the touch cue still shows, since it asks the
    # person to act; a refusal still says why.
    b.start_bus()
    b.start_mock()
    b.write_service()
    covered(b, uv='discouraged')
    b.mock.SetAuth('alice', 'reply', False, 'no-touch', 'Your security key was not touched.',
                   '', '')
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_AUTH_ERR')], silent=True)
    expect_ok(rc, out, 'PAM_SILENT')
    check(out.count('info: Touch your security key for alice') == 1,
          'the touch cue was not shown (once) under PAM_SILENT', out)
    check('error: Your security key was not touched.' in out, 'the refusal was not shown', out)


def case_deny(b):
    b.start_bus()
    b.start_mock()
    b.write_service()
    msg = 'administrators log in over SSH with an SSH key, not a password'
    b.mock.SetCheck('alice', 'deny', 'discouraged', False, dbus.UInt32(0),
                    'keyward.conf:50', msg, dbus.UInt32(1))
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_PERM_DENIED'), ('acct', 'PAM_PERM_DENIED')])
    expect_ok(rc, out, 'deny')
    check(out.count('error: ' + msg) == 2, 'the deny message was not shown twice', out)
    check(not b.calls('Authenticate'), 'Authenticate called for a denied login')


def case_rhost(b):
    b.start_bus()
    b.start_mock()
    b.write_service(set_items=True)
    rc, out, _, _ = b.run('bob', [('auth', 'PAM_IGNORE')],
                          extra_env={'PAM_RHOST': '::ffff:192.0.2.7', 'PAM_TTY': 'ssh'})
    expect_ok(rc, out, 'rhost')
    checks = b.calls('Check')
    check(checks and checks[0][1] == ['bob', 'keyward-test', 'ssh', '::ffff:192.0.2.7'],
          f'rhost/tty not passed to the daemon: {checks}')


def case_nonroot_caller(b):
    # A screen locker runs the stack as the user: the shipped bus policy must let it ask.
    b.start_bus()
    b.start_mock()
    b.write_service()
    covered(b, uv='discouraged')
    b.mock.SetAuth('alice', 'reply', True, 'ok', '', TOKEN, '')
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_SUCCESS')], as_uid=1000)
    expect_ok(rc, out, 'non-root caller')
    auth = b.calls('Authenticate')
    check(len(auth) == 1 and auth[0][1][-1] == 'uid=1000',
          f'Authenticate was not called once by uid 1000: {auth}')


def case_not_enrolled(b):
    b.start_bus()
    b.start_mock()
    b.write_service()
    covered(b, n=0)
    rc, out, _, _ = b.run('alice', [('acct', 'PAM_PERM_DENIED'), ('auth', 'PAM_PERM_DENIED')])
    expect_ok(rc, out, 'not enrolled')
    msg = ('error: No security key is enrolled for alice. An administrator can enroll one '
           'with: keywardctl enroll alice')
    check(out.count(msg) == 2, 'the not-enrolled message was not shown', out)
    # The refusal is the daemon's to record: Authenticate with the login's decision (it
    # answers not-enrolled), no PIN asked, no touch cue.
    auth = b.calls('Authenticate')
    check(len(auth) == 2, f'the refusals did not reach the daemon: {auth}')
    check('cached' in auth[0][1][5] and 'cached' not in auth[1][1][5],
          f'account phase first, then authentication: {auth}')
    check(all('dec-alice' in a[1][5] for a in auth),
          f"the login's decision was not passed back: {auth}")
    check(b.pins() == [b'', b''] and 'prompt-off' not in out and 'Touch your' not in out,
          'a PIN or a touch was asked of a user without a key', out)


def case_lockout(b):
    b.start_bus()
    b.start_mock()
    b.write_service()
    covered(b, uv='discouraged')
    msg = 'Too many failed attempts; try again in 15 minutes.'
    b.mock.SetAuth('alice', 'reply', False, 'lockout', msg, '', '')
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_MAXTRIES')])
    expect_ok(rc, out, 'lockout')
    check('error: ' + msg in out, 'the lockout message was not shown', out)


def case_pin_cancelled(b):
    b.start_bus()
    b.start_mock()
    b.write_service()
    covered(b)
    b.mock.SetAuth('alice', 'pin', True, 'ok', '', TOKEN, PIN)
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_CONV_ERR')])
    expect_ok(rc, out, 'PIN prompt cancelled')
    check(not b.calls('Authenticate'), 'Authenticate called without a PIN')


def case_bind_fails(b):
    b.start_bus()
    b.start_mock()
    b.write_service()
    covered(b, uv='discouraged')
    b.mock.SetAuth('alice', 'reply', True, 'ok', '', TOKEN, '')
    b.mock.SetBind('fail', '')
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_SUCCESS'), ('open', 'PAM_PERM_DENIED')])
    expect_ok(rc, out, 'bind failure')
    check('error: keyward: this session could not be bound to your security key (binding refused by the mock), so it is not started' in out,
          'no bind failure message', out)


def case_cached_elevation(b):
    # sudo within timestamp_timeout: no pam_authenticate, but pam_acct_mgmt from a process
    # whose real uid is the user's. The account phase asks the daemon (cached = true) and
    # the token it gets binds the elevation like an authenticated one.
    b.start_bus()
    b.start_mock()
    b.write_service()
    covered(b, uv='discouraged')
    b.mock.SetAuth('alice', 'reply', True, 'ok', '', TOKEN, '')
    b.mock.SetBind('ok', 'binding-7')
    rc, out, _, _ = b.run('alice', [('acct', 'PAM_SUCCESS'), ('open', 'PAM_SUCCESS')],
                          as_uid=1000)
    expect_ok(rc, out, 'cached elevation')
    auth = b.calls('Authenticate')
    # the mock records the options as text: "{'cached': dbus.Boolean(True, ...)}"
    check(len(auth) == 1 and re.search(r"'cached'\)?: (dbus\.Boolean\()?True", auth[0][1][5]) and
          auth[0][1][-1] == 'uid=1000',
          f'Authenticate was not called once with cached = true: {auth}')
    bind = b.calls('BindSession')
    check(len(bind) == 1 and bind[0][1][0] == TOKEN and bind[0][1][5] == 'alice',
          f'the cached elevation was not bound: {bind}')
    # Proved at once (silently): nobody was told to touch a key.
    check('Touch your security key' not in out, 'a touch cue for a silent proof', out)
    # A touch being awaited (the daemon answers late): the cue comes, once.
    b.mock.SetAuth('alice', 'slow', True, 'ok', '', TOKEN, '')
    rc, out, _, _ = b.run('alice', [('acct', 'PAM_SUCCESS')], as_uid=1000)
    expect_ok(rc, out, 'cached elevation, touch')
    check(out.count('info: Touch your security key for alice') == 1,
          'no (or more than one) touch cue while a touch was awaited', out)


def case_cached_elevation_refused(b):
    b.start_bus()
    b.start_mock()
    b.write_service()
    covered(b, uv='discouraged')
    msg = 'The security key of your last authentication is no longer plugged in.'
    b.mock.SetAuth('alice', 'reply', False, 'no-key', msg, '', '')
    rc, out, _, _ = b.run('alice', [('acct', 'PAM_PERM_DENIED')], as_uid=1000)
    expect_ok(rc, out, 'cached elevation refused')
    check('error: ' + msg in out, 'the reason was not shown', out)
    check('Touch your security key' not in out, 'told to touch a key that is not there', out)
    check(not b.calls('BindSession'), 'BindSession after a refused elevation')


def case_account_as_root(b):
    # Programs running as root (cron, login after its own auth, su by root) elevate nobody:
    # the account phase does not ask for the key.
    b.start_bus()
    b.start_mock()
    b.write_service()
    covered(b, uv='discouraged')
    rc, out, _, _ = b.run('alice', [('acct', 'PAM_SUCCESS'), ('open', 'PAM_SUCCESS')])
    expect_ok(rc, out, 'account as root')
    check(not b.calls('Authenticate'), 'Authenticate called for a root program')
    check(not b.calls('BindSession'), 'BindSession without a token')


def publish(b, policy=None, paths=None):
    '''What keywardd does at start and at each reload: the coverage snapshot of the policy
    it loaded, in its runtime directory and beside the policy.'''
    os.makedirs(b.run_dir, mode=0o755, exist_ok=True)
    paths = paths or [b.snapshot_run, b.snapshot_state]
    subprocess.run([b.args.coverage_write, policy or b.policy_path] + paths, check=True)


def write_snapshot(b, text, paths=None):
    '''A snapshot with the given content (bytes), root-owned 0644, at both places.'''
    os.makedirs(b.run_dir, mode=0o755, exist_ok=True)
    for path in paths or [b.snapshot_run, b.snapshot_state]:
        if os.path.lexists(path):
            os.unlink(path)
        with open(path, 'wb') as f:
            f.write(text)
        os.chmod(path, 0o644)


def daemon_down(b, user, ops, with_bus=True, published=False):
    # The daemon ran once with the current policy (and wrote its snapshot), then stopped;
    # cases about a broken or missing snapshot prepare it themselves (published=True).
    if not published:
        publish(b)
    if with_bus:
        b.start_bus()
    else:
        os.environ['DBUS_SYSTEM_BUS_ADDRESS'] = 'unix:path=' + os.path.join(b.tmp, 'no-bus')
        b.address = os.environ['DBUS_SYSTEM_BUS_ADDRESS']
    b.write_service()
    return b.run(user, ops)


def case_down_covered(b):
    rc, out, err, _ = daemon_down(b, 'alice', [('auth', 'PAM_SERVICE_ERR'),
                                               ('acct', 'PAM_SUCCESS')])
    expect_ok(rc, out, 'daemon down, covered')
    check(out.count('error: ' + NOT_RUNNING) == 1, 'no "daemon is not running" message', out)
    # The account phase of a program running as root (su by root, cron) elevates nobody
    # (above); one with the user's real uid (sudo's cached timestamp) is refused.
    rc, out, _, _ = b.run('alice', [('acct', 'PAM_SERVICE_ERR')], as_uid=1000)
    expect_ok(rc, out, 'daemon down, covered, cached elevation')
    check('error: ' + NOT_RUNNING in out, 'no "daemon is not running" message', out)


def case_nobus_covered(b):
    rc, out, _, _ = daemon_down(b, 'alice', [('auth', 'PAM_SERVICE_ERR')], with_bus=False)
    expect_ok(rc, out, 'no system bus, covered')
    check('error: ' + NOT_RUNNING in out, 'no "daemon is not running" message', out)


def case_down_uncovered(b):
    rc, out, _, _ = daemon_down(b, 'bob', [('auth', 'PAM_IGNORE'), ('acct', 'PAM_IGNORE')])
    expect_ok(rc, out, 'daemon down, uncovered')
    check('error:' not in out, 'an uncovered user saw an error', out)


def case_down_failmode_open(b):
    b.write_policy(failmode='open')
    rc, out, _, _ = daemon_down(b, 'alice', [('auth', 'PAM_IGNORE')])
    expect_ok(rc, out, 'failmode=open')
    check('info: keyward: WARNING: the keyward daemon is not running' in out,
          'failmode=open gave no warning', out)


def journal_entries(path):
    '''The entries journal-capture wrote: a list of {FIELD: value}.'''
    if not os.path.exists(path):
        return []
    entries = []
    for block in open(path, encoding='utf-8').read().split('\n\n'):
        fields = dict(l.split('=', 1) for l in block.splitlines() if '=' in l)
        if fields:
            entries.append(fields)
    return entries


def case_down_journal(b):
    # keywardd down: the module's own refusals (and failmode=open) reach the journal as
    # records with KEYWARD_* fields and KEYWARD_DECIDED_BY=pam_keyward.
    journal = os.path.join(b.tmp, 'journal')
    env = {'LD_PRELOAD': f'libpam_wrapper.so libnss_wrapper.so {b.args.journal_capture}',
           'PAM_WRAPPER_DISABLE_DEEPBIND': '1', 'UID_WRAPPER_DISABLE_DEEPBIND': '1',
           'KEYWARD_TEST_JOURNAL': journal}
    publish(b)
    b.start_bus()
    b.write_service()
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_SERVICE_ERR')], extra_env=env)
    expect_ok(rc, out, 'daemon down, covered')
    rc, out, _, _ = b.run('bob', [('auth', 'PAM_IGNORE')], extra_env=env)
    expect_ok(rc, out, 'daemon down, uncovered')
    entries = journal_entries(journal)
    check(len(entries) == 1, f'one record (the refusal; not the uncovered login): {entries}')
    e = entries[0]
    want = {'KEYWARD_EVENT': 'auth', 'KEYWARD_RESULT': 'failure',
            'KEYWARD_REASON': 'daemon-unavailable', 'KEYWARD_USER': 'alice',
            'KEYWARD_SERVICE': 'keyward-test', 'KEYWARD_DECIDED_BY': 'pam_keyward',
            'KEYWARD_DAEMON': 'down', 'SYSLOG_FACILITY': '10', 'PRIORITY': '4'}
    check(all(e.get(k) == v for k, v in want.items()), f'record fields: {e}')
    check(len(e.get('KEYWARD_POLICY', '')) == 64 and e.get('KEYWARD_RULE_NAME'),
          f'rule and policy digest: {e}')
    check(e.get('MESSAGE', '').startswith('keyward auth failure user=alice'), f'MESSAGE: {e}')
    # failmode=open lets the login through: recorded as a success for that reason
    os.unlink(journal)
    b.write_policy(failmode='open')
    publish(b)
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_IGNORE')], extra_env=env)
    expect_ok(rc, out, 'failmode=open')
    entries = journal_entries(journal)
    check(len(entries) == 1 and entries[0].get('KEYWARD_RESULT') == 'success' and
          entries[0].get('KEYWARD_REASON') == 'failmode-open' and
          entries[0].get('KEYWARD_DECIDED_BY') == 'pam_keyward', f'failmode=open: {entries}')


def enrolled_marker(b, user):
    # With no usable policy at all, the module counts an account as covered when it has a
    # credential file in the credentials directory beside the policy (tmp/credentials).
    d = os.path.join(b.tmp, 'credentials')
    os.makedirs(d, mode=0o755, exist_ok=True)
    open(os.path.join(d, f'{user}.creds'), 'w').close()


def broken_policy_case(b, what, message):
    # No usable coverage snapshot: bob has no key, so keyward's fault (daemon down, snapshot
    # unusable) must not lock him out; alice has a key enrolled: she is refused, with a
    # message that names the cause.
    enrolled_marker(b, 'alice')
    rc, out, _, _ = daemon_down(b, 'bob', [('auth', 'PAM_IGNORE'), ('acct', 'PAM_IGNORE')],
                                published=True)
    expect_ok(rc, out, f'{what}, uncovered')
    check('access is denied' not in out, f'{what}: an uncovered user was told "denied"', out)
    rc, out, _, _ = daemon_down(b, 'alice', [('auth', 'PAM_SERVICE_ERR'), ('acct', 'PAM_IGNORE')],
                                published=True)
    expect_ok(rc, out, f'{what}, enrolled')
    check(message in out, f'{what}: no message naming the cause', out)
    rc, out, _, _ = b.run('alice', [('acct', 'PAM_SERVICE_ERR')], as_uid=1000)
    expect_ok(rc, out, f'{what}, enrolled, cached elevation')


def case_down_corrupt_policy(b):
    # The snapshot keywardd wrote is corrupt (the module never parses keyward.conf).
    write_snapshot(b, b'keyward-coverage 1\ndigest 00\nrules = (\n')
    broken_policy_case(b, 'corrupt snapshot',
                       f'its coverage snapshot {b.snapshot_run} is malformed; access is denied.')


def case_down_unsafe_policy(b):
    publish(b)
    os.chmod(b.snapshot_run, 0o666)
    os.chmod(b.snapshot_state, 0o666)
    broken_policy_case(b, 'world-writable snapshot',
                       f'is world-writable; run: chmod o-w {b.snapshot_run}')


def case_down_symlink_policy(b):
    publish(b)
    for path in (b.snapshot_run, b.snapshot_state):
        os.rename(path, path + '.real')
        os.symlink(path + '.real', path)
    broken_policy_case(b, 'symlinked snapshot', 'is a symbolic link')


def case_down_missing_policy(b):
    # keywardd never ran (or its snapshot is gone): no snapshot anywhere.
    broken_policy_case(b, 'missing snapshot', 'does not exist; access is denied')


def case_down_last_good(b):
    # After a reboot with keywardd down the runtime copy is gone; the copy beside the last
    # good policy (POLICY.coverage) decides, as the daemon would.
    publish(b, paths=[b.snapshot_state])
    rc, out, _, _ = daemon_down(b, 'bob', [('auth', 'PAM_IGNORE')], published=True)
    expect_ok(rc, out, 'state copy, uncovered')
    rc, out, _, _ = daemon_down(b, 'alice', [('auth', 'PAM_SERVICE_ERR')], published=True)
    expect_ok(rc, out, 'state copy, covered')
    check(NOT_RUNNING in out, 'the covered user was not told the daemon is down', out)


def case_down_broken_policy_file(b):
    # keyward.conf is broken on disk but keywardd's snapshot is of the policy it loaded:
    # the module decides from the snapshot and never reads keyward.conf.
    publish(b)
    b.write_policy('settings = { timeout = ; };\nrules = (\n')
    rc, out, _, _ = daemon_down(b, 'bob', [('auth', 'PAM_IGNORE')], published=True)
    expect_ok(rc, out, 'broken policy file, uncovered')
    rc, out, _, _ = daemon_down(b, 'alice', [('auth', 'PAM_SERVICE_ERR')], published=True)
    expect_ok(rc, out, 'broken policy file, covered')
    check(NOT_RUNNING in out, 'the covered user was not told the daemon is down', out)


def case_down_snapshot_malformed(b):
    # Whatever is wrong with the snapshot, it is "no usable policy": only accounts with a
    # credential file are refused.
    publish(b)
    with open(b.snapshot_run, 'rb') as f:
        good = f.read()
    check(good.startswith(b'keyward-coverage 1\n') and good.endswith(b'\nend 1\n'),
          'unexpected snapshot', good.decode())
    variants = [
        ('truncated mid-line', good[:len(good) // 2]),
        ('truncated before the end line', good[:good.rindex(b'end 1\n')]),
        ('unknown key', good.replace(b'group wheel\n', b'group wheel\nshell /bin/sh\n')),
        ('newer format', good.replace(b'keyward-coverage 1', b'keyward-coverage 2')),
        ('rule count', good.replace(b'end 1\n', b'end 2\n')),
        ('oversized', good[:-len(b'end 1\n')] + b'reason x\n' * (512 * 1024) + b'end 1\n'),
        ('empty', b''),
    ]
    for what, text in variants:
        write_snapshot(b, text)
        message = 'is too large' if what == 'oversized' else 'is malformed'
        broken_policy_case(b, f'snapshot {what}', f'{b.snapshot_run} {message}; access is denied')


def case_down_runtime_first(b):
    # The runtime copy is read first: it covers bob (written by the daemon's latest load),
    # the older copy beside the policy does not.
    publish(b, paths=[b.snapshot_state])
    bob_policy = os.path.join(b.tmp, 'bob.conf')
    with open(bob_policy, 'w', encoding='utf-8') as f:
        f.write(POLICY.replace('groups = ["wheel"]', 'users = ["bob"]') % {'failmode': 'closed'})
    publish(b, policy=bob_policy, paths=[b.snapshot_run])
    rc, out, _, _ = daemon_down(b, 'bob', [('auth', 'PAM_SERVICE_ERR')], published=True)
    expect_ok(rc, out, 'runtime copy first, bob covered')
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_IGNORE')])
    expect_ok(rc, out, 'runtime copy first, alice uncovered')
    os.unlink(b.snapshot_run)
    rc, out, _, _ = b.run('bob', [('auth', 'PAM_IGNORE')])
    expect_ok(rc, out, 'no runtime copy, the state copy decides')


def huge_group(members):
    # A group whose entry is larger than the NSS buffer limit (1 MiB) of lib/accounts.c:
    # looking up the groups of its members fails (ERANGE).
    filler = ','.join(f'u{i:06d}' for i in range(160000))
    return f'huge:x:3000:{",".join(members)},{filler}\n'


def case_down_group_lookup_fails(b):
    # alice's groups cannot be looked up and a group rule may cover her: she counts as
    # covered (fail closed), even under failmode=open; bob's groups resolve: not covered.
    b.write_policy(failmode='open')
    with open(os.path.join(b.tmp, 'group'), 'a', encoding='utf-8') as f:
        f.write(huge_group(['alice']))
    rc, out, _, _ = daemon_down(b, 'alice', [('auth', 'PAM_SERVICE_ERR')])
    expect_ok(rc, out, 'group lookup fails, group rule')
    check('error: keyward: cannot look up your account; access is denied.' in out,
          'no "cannot look up your account" message', out)
    rc, out, _, _ = b.run('bob', [('auth', 'PAM_IGNORE')])
    expect_ok(rc, out, 'group lookup fails for another user')


def case_down_lookup_fails_uncovered(b):
    # bob's groups cannot be looked up, but no rule that could cover him needs them: he is
    # not covered, and keyward does not lock him out.
    b.write_policy(POLICY.replace('groups = ["wheel"]', 'users = ["alice"]') % {'failmode': 'closed'})
    with open(os.path.join(b.tmp, 'group'), 'a', encoding='utf-8') as f:
        f.write(huge_group(['bob', 'alice']))
    rc, out, _, _ = daemon_down(b, 'bob', [('auth', 'PAM_IGNORE'), ('acct', 'PAM_IGNORE')])
    expect_ok(rc, out, 'lookup fails, uncovered')
    check('error:' not in out, 'an uncovered user saw an error', out)
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_SERVICE_ERR')])
    expect_ok(rc, out, 'lookup fails, covered by user name')
    check('error: ' + NOT_RUNNING in out, 'no "daemon is not running" message', out)


def case_auth_hangs(b):
    b.start_bus()
    b.start_mock()
    b.write_service('timeout=1500')
    covered(b, uv='discouraged')
    b.mock.SetAuth('alice', 'hang', False, '', '', '', '')
    rc, out, _, took = b.run('alice', [('auth', 'PAM_SERVICE_ERR')])
    expect_ok(rc, out, 'daemon hangs')
    check('error: keyward: the keyward daemon did not answer in time; access denied.' in out,
          'no timeout message', out)
    check(took >= 1.4, f'gave up before the client timeout ({took:.2f} s)')
    deadline = time.monotonic() + 5
    while not b.calls('Cancel') and time.monotonic() < deadline:
        time.sleep(0.05)
    check(b.calls('Cancel'), 'the module did not cancel the pending Authenticate')


def check_hangs(b, failmode):
    b.write_policy(failmode=failmode)
    publish(b)
    b.start_bus()
    b.start_mock()
    b.write_service('timeout=1000')
    b.mock.SetCheckMode('hang')
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_SERVICE_ERR')])
    expect_ok(rc, out, f'Check hangs (failmode={failmode}), covered')
    check('keyward: the keyward daemon is not responding' in out, 'no not-responding message',
          out)
    check('failmode=open' not in out, 'failmode=open applied to a daemon that is busy', out)
    rc, out, _, _ = b.run('bob', [('auth', 'PAM_IGNORE')])
    expect_ok(rc, out, f'Check hangs (failmode={failmode}), uncovered')


def case_check_hangs(b):
    check_hangs(b, 'closed')


def case_check_hangs_failmode_open(b):
    # A daemon that is there but does not answer in time (busy, flooded) is not an absent
    # one: failmode=open does not let the covered user through.
    check_hangs(b, 'open')


def case_check_error(b):
    # The daemon answers Check with an error: its coverage snapshot decides, and
    # failmode=open does not apply (the daemon is there, it refused).
    b.write_policy(failmode='open')
    publish(b)
    b.start_bus()
    b.start_mock()
    b.write_service()
    b.mock.SetCheckMode('error')
    rc, out, _, _ = b.run('alice', [('auth', 'PAM_SERVICE_ERR'), ('acct', 'PAM_SUCCESS')])
    expect_ok(rc, out, 'Check error, covered')
    check(out.count('error: keyward: the keyward daemon refused the request (the mock refuses '
                    'Check); access for covered accounts is denied.') == 1,
          'no "refused the request" message', out)
    rc, out, _, _ = b.run('bob', [('auth', 'PAM_IGNORE'), ('acct', 'PAM_IGNORE')])
    expect_ok(rc, out, 'Check error, uncovered')


def vanish(b, mode):
    b.start_bus()
    b.start_mock()
    b.write_service('timeout=20000')
    covered(b, uv='discouraged')
    b.mock.SetAuth('alice', mode, False, '', '', '', '')
    rc, out, _, took = b.run('alice', [('auth', 'PAM_SERVICE_ERR')])
    expect_ok(rc, out, f'daemon vanishes ({mode})')
    check('error: keyward: the keyward daemon stopped during the authentication' in out,
          'no "daemon stopped" message', out)
    check(took < 10, f'the module waited for its timeout instead of noticing ({took:.1f} s)')


def case_release_name(b):
    vanish(b, 'release')


def case_exit_mid_call(b):
    vanish(b, 'exit')


def case_valgrind(b):
    b.start_bus()
    b.start_mock()
    logind = b.start_logind()  # the session phase also walks the GetSessionByPID path
    logind.AddSession('c7', 'seat0', dbus.UInt32(1000), 'alice', True)
    logind.SetSessionByPID(dbus.UInt32(0), 'c7')
    b.write_service()
    covered(b)
    b.mock.SetAuth('alice', 'pin', True, 'ok', '', TOKEN, PIN)
    vg = ['valgrind', '--quiet', '--error-exitcode=99', '--leak-check=full',
          '--errors-for-leak-kinds=definite', '--show-leak-kinds=definite',
          '--trace-children=no', '--num-callers=30']
    rc, out, err, _ = b.run('alice', [('auth', 'PAM_SUCCESS'), ('open', 'PAM_SUCCESS'),
                                      ('close', 'PAM_SUCCESS')],
                            pins=[PIN], repeat=200, valgrind=vg, timeout=600,
                            extra_env={'PAM_WRAPPER_DISABLE_DEEPBIND': '1',
                                       'UID_WRAPPER_DISABLE_DEEPBIND': '1',
                                       'PAM_WRAPPER_DEBUGLEVEL': '0'})
    check(rc == 0, f'valgrind or the driver failed (exit {rc})', out + err[-6000:])
    check(len(b.pins()) == 200, f'expected 200 authentications, the daemon saw {len(b.pins())}')
    binds = b.calls('BindSession')
    check(len(binds) == 200 and all(args[1] == 'c7' for _, args in binds),
          'expected 200 bindings of logind session c7')


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith('case_')}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--module', required=True)
    ap.add_argument('--driver', required=True)
    ap.add_argument('--template', required=True)
    ap.add_argument('--coverage-write', required=True)
    ap.add_argument('--journal-capture', required=True,
                    help='LD_PRELOAD library that writes sd_journal_sendv() entries to a file')
    ap.add_argument('--source-dir', required=True)
    ap.add_argument('--wrapper-modules', default='/usr/lib/x86_64-linux-gnu/pam_wrapper')
    ap.add_argument('--python', default='/usr/bin/python3')
    ap.add_argument('--sanitized', action='store_true',
                    help='the module and driver are built with ASan/UBSan')
    ap.add_argument('case', choices=sorted(CASES))
    args = ap.parse_args()

    for tool in ('dbus-daemon', 'valgrind'):
        check(shutil.which(tool), f'{tool} is not installed (run scripts/deps)')
    for f in (args.module, args.driver, args.template):
        check(os.path.exists(f), f'missing {f}')
    check(os.geteuid() == 0, "these tests run as root: pam_keyward refuses a policy file not owned by root")
    b = Bench(args)
    try:
        CASES[args.case](b)
    except Failure as e:
        print(f'FAIL {args.case}: {e}', file=sys.stderr)
        return 1
    finally:
        b.close()
    print(f'PASS {args.case}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
