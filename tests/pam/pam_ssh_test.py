#!/usr/bin/python3
'''pam_ssh_test.py: on_remote = "ssh-key" end to end (docs/ssh.md): pam_keyward.so with the
real keywardd, sk keys made by ssh-keygen on the emulated key, a real ssh-agent holding them.

Runs inside keyward-testbed --bus like pam_e2e_test.py (whose harness it uses). An sshd-like
service gets SSH_AUTH_INFO_0 (and SSH_CONNECTION) in its PAM environment and a remote
PAM_RHOST; a sudo-like one finds the agent through SSH_AUTH_SOCK in the process
environment. The elevations run as root (the module reaches the agent as the real uid,
which must be the user's): the driver, the agent and its socket are root's.

usage (ctest does this):
  keyward-testbed --bus --bus-policy dist/org.keyward.Keyward1.conf -- \\
      /usr/bin/python3 pam_ssh_test.py --keywardd ... --keywardctl ... --module ... \\
      --driver ... --testbed ... CASE
'''

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pam_e2e_test as e2e  # noqa: E402  (the harness: keywardd, services, driver)
from pam_e2e_test import Failure, check  # noqa: E402

import dbus  # noqa: E402

REMOTE = '192.0.2.10'
TIMEOUT_MS = 3000
UV_RULE = '''
	{
		name = "ssh-uv";
		match = { users = "carol"; };
		require = "key";
		on_remote = "ssh-key";
		user_verification = "required";
	},'''
POLICY = '''settings = {
	rp_id = "pam://keyward-ssh";
	timeout = %(timeout)d;
	failmode = "closed";
	credentials_dir = "%(dir)s/credentials";
	state_dir = "%(dir)s/state";
	runtime_dir = "%(dir)s/run";
	audit_log = "%(dir)s/log/audit.log";
};
rules = (%(uv_rule)s
	{
		name = "ssh-admins";
		match = { users = ["alice", "root"]; services = ["e2e-sshd", "e2e-sudo"]; };
		require = "key";
		on_remote = "ssh-key";
		remote_lifetime = %(lifetime)d;
	}
);
default = { require = "none"; };
'''
SSH_REQUIRED = 'must log in with a security-key SSH key registered for alice'


def ssh_string(buf, off):
    n = struct.unpack('>I', buf[off:off + 4])[0]
    return buf[off + 4:off + 4 + n], off + 4 + n


def creds_entry(pub, label, uv=False, up=True):
    '''A type=ssh-sk credential for the .pub line PUB (docs/ssh.md).'''
    blob = base64.b64decode(pub.split()[1])
    kind, off = ssh_string(blob, 0)
    if kind == b'sk-ecdsa-sha2-nistp256@openssh.com':
        _, off = ssh_string(blob, off)
        point, off = ssh_string(blob, off)
        public, alg = point[1:], 'es256'
    else:
        public, off = ssh_string(blob, off)
        alg = 'eddsa'
    app, off = ssh_string(blob, off)
    ident = base64.b64encode(hashlib.sha256(blob).digest()).decode()
    return (f'\n[credential]\nlabel={label}\ntype=ssh-sk\nid={ident}\nrp_id={app.decode()}\n'
            f'alg={alg}\npublic_key={base64.b64encode(public).decode()}\n'
            f'attestation=imported\nresident=no\nup={"yes" if up else "no"}\n'
            f'uv={"yes" if uv else "no"}\n')


def fingerprint(pub):
    digest = hashlib.sha256(base64.b64decode(pub.split()[1])).digest()
    return 'SHA256:' + base64.b64encode(digest).decode().rstrip('=')


class Agent:
    '''A real ssh-agent (a copy without setgid, so that its ssh-sk-helper keeps the
    testbed's preload and reaches the emulated key), holding KEYS.'''

    def __init__(self, tmp, keys):
        self.dir = os.path.join(tmp, 'agent')
        os.mkdir(self.dir, 0o700)
        self.sock = os.path.join(self.dir, 'agent.sock')
        binary = os.path.join(self.dir, 'ssh-agent')
        shutil.copy(shutil.which('ssh-agent'), binary)
        os.chmod(binary, 0o755)
        self.proc = subprocess.Popen([binary, '-D', '-a', self.sock],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            check(time.monotonic() < deadline and self.proc.poll() is None,
                  'ssh-agent did not start')
            time.sleep(0.02)
        for key in keys:
            p = subprocess.run(['ssh-add', '-q', key], env=dict(os.environ, SSH_AUTH_SOCK=self.sock),
                               capture_output=True, timeout=30, check=False)
            check(p.returncode == 0, f'ssh-add {key}: {p.stderr.decode()}')

    def sign(self, blob, data):
        '''SSH_AGENTC_SIGN_REQUEST: the signature blob.'''
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.sock)
            s.settimeout(30)
            body = (bytes([13]) + struct.pack('>I', len(blob)) + blob + struct.pack('>I', len(data)) +
                    data + struct.pack('>I', 0))
            s.sendall(struct.pack('>I', len(body)) + body)
            n = struct.unpack('>I', recv_all(s, 4))[0]
            reply = recv_all(s, n)
        check(reply[0] == 14, f'the agent did not sign (answer type {reply[0]})')
        sig, _ = ssh_string(reply, 1)
        return sig

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def recv_all(s, n):
    out = b''
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise Failure('the agent closed the connection')
        out += chunk
    return out


class FakeAgent:
    '''An agent socket that answers garbage, or never answers (MODE).'''

    def __init__(self, tmp, mode, owner=None):
        self.dir = os.path.join(tmp, 'fake-' + mode)
        os.mkdir(self.dir, 0o755)
        self.sock = os.path.join(self.dir, 'agent.sock')
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(self.sock)
        if owner is not None:
            os.chown(self.sock, owner, owner)
        self.server.listen(4)
        self.mode = mode
        self.conns = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.server.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.mode == 'garbage':
                try:
                    c.recv(65536)
                    c.sendall(struct.pack('>I', 0x7fffffff) + b'\x0c' + b'\xff' * 64)
                except OSError:
                    pass


class SSH(e2e.E2E):
    def __init__(self, args, lifetime=900):
        super().__init__(args)
        with open(self.policy, 'w', encoding='utf-8') as f:
            f.write(POLICY % {'dir': self.tmp, 'timeout': TIMEOUT_MS, 'lifetime': lifetime,
                              'uv_rule': UV_RULE})
        for service in ('e2e-sshd', 'e2e-sudo'):
            self.write_service(service)
        self.keys = {}
        self.agent = None

    def keygen(self, name, kind):
        path = os.path.join(self.tmp, name)
        p = subprocess.run(['ssh-keygen', '-q', '-t', kind, '-N', '', '-C', name, '-f', path],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False)
        check(p.returncode == 0, f'ssh-keygen -t {kind}: {p.stderr.decode()}')
        with open(path + '.pub', encoding='ascii') as f:
            self.keys[name] = (path, f.read().strip())
        return self.keys[name][1]

    def register(self, user, entries):
        d = os.path.join(self.tmp, 'credentials')
        os.makedirs(d, mode=0o755, exist_ok=True)
        path = os.path.join(d, user + '.creds')
        with open(path, 'w', encoding='ascii') as f:
            f.write('# test\n' + ''.join(entries))
        os.chmod(path, 0o600)

    def records(self):
        path = os.path.join(self.tmp, 'log', 'audit.log')
        with open(path, encoding='utf-8') as f:
            return [json.loads(line) for line in f if line.strip()]

    def report(self):
        '''keywardctl report --format json on the trail: its elevations table.'''
        out = os.path.join(self.tmp, 'report.json')
        env = dict(os.environ, LD_PRELOAD=e2e.preload('libnss_wrapper.so'), **self.nss_env)
        p = subprocess.run([self.args.keywardctl, '-c', self.policy, 'report', '--format', 'json',
                            '-o', out], env=env, capture_output=True, timeout=60, check=False)
        check(os.path.exists(out), f'keywardctl report wrote nothing: {p.stderr.decode()}')
        with open(out, encoding='utf-8') as f:
            return json.load(f)['elevations']

    def find(self, **kw):
        return [r for r in self.records() if all(r.get(k) == v for k, v in kw.items())]

    def sshd(self, user, info, ops, rhost=REMOTE):
        extra = ['--item', 'rhost=' + rhost, '--item', 'tty=ssh',
                 '--env', f'SSH_CONNECTION={rhost} 40000 192.0.2.1 22']
        if info is not None:
            extra += ['--env', 'SSH_AUTH_INFO_0=' + info]
        return self.run('e2e-sshd', user, ops, extra=extra)

    def sudo(self, ops, sock, hold=0, user='root', extra=()):
        extra = ['--item', 'rhost=' + REMOTE, '--item', 'tty=/dev/pts/3', '--item',
                 'ruser=' + user] + list(extra)
        if hold:
            extra += ['--hold', str(hold)]
        env = self.driver_env()
        env.pop('SSH_AUTH_SOCK', None)
        if sock:
            env['SSH_AUTH_SOCK'] = sock
        argv = [self.args.driver] + extra + ['e2e-sudo', user] + [f'{o}:{c}' for o, c in ops]
        start = time.monotonic()
        p = subprocess.run(argv, env=env, capture_output=True, timeout=120, check=False)
        out = p.stdout.decode(errors='replace')
        sys.stdout.write(f'$ {" ".join(argv)}\n{out}')
        return p.returncode, out, p.stderr.decode(errors='replace'), time.monotonic() - start


def setup(e, agent_keys=('sk',), register_root=True):
    e.keygen('sk', 'ecdsa-sk')
    e.keygen('plain', 'ed25519')
    e.register('alice', [creds_entry(e.keys['sk'][1], 'alice-sk')])
    if register_root:
        e.register('root', [creds_entry(e.keys['sk'][1], 'root-sk')])
    e.start_daemon()
    if agent_keys is not None:
        e.agent = Agent(e.tmp, [e.keys[k][0] for k in agent_keys])


def pub_info(pub):
    kind, b64 = pub.split()[:2]
    return f'publickey {kind} {b64}'


# --- sshd ---------------------------------------------------------------------------------

def case_sshd_sk_accepted(e):
    '''Registered the way an administrator does it: keywardctl ssh import.'''
    e.keygen('sk', 'ecdsa-sk')
    e.start_daemon()
    env = dict(os.environ, LD_PRELOAD=e2e.preload('libnss_wrapper.so'), **e.nss_env)
    p = subprocess.run([e.args.keywardctl, '-c', e.policy, 'ssh', 'import', 'alice',
                        e.keys['sk'][0] + '.pub', '--label', 'alice-sk'], env=env,
                       capture_output=True, timeout=60, check=False)
    check(p.returncode == 0, 'keywardctl ssh import failed',
          p.stdout.decode() + p.stderr.decode() + e.log())
    rc, out, err, _ = e.sshd('alice', pub_info(e.keys['sk'][1]),
                             [('acct', 'PAM_SUCCESS'), ('open', 'PAM_SUCCESS')])
    check(rc == 0, 'registered sk key: unexpected PAM results', out + err[-3000:] + e.log())
    recs = e.find(event='auth', user='alice', result='success')
    check(len(recs) == 1, f'one auth success record expected, got {len(recs)}', e.log())
    r = recs[0]
    check(r.get('detail') == 'method=ssh-login key=' + fingerprint(e.keys['sk'][1]),
          f'detail {r.get("detail")}')
    check(r.get('cred_label') == 'alice-sk' and r.get('rhost') == REMOTE,
          f'record {r}')
    rows = [v for v in e.report() if v.get('method') == 'ssh-login']
    check(len(rows) == 1 and rows[0]['user'] == 'alice' and rows[0]['from'] == REMOTE and
          rows[0]['key'] == 'alice-sk ' + fingerprint(e.keys['sk'][1]),
          f'report rows: {rows}')


def case_sshd_session_phase(e):
    '''A publickey login: SSH_AUTH_INFO_0 is empty in the account phase (sshd sets it
    later): the account phase lets it on and the session phase decides.'''
    setup(e, agent_keys=None)
    rc, out, err, _ = e.sshd('alice', '', [('acct', 'PAM_SUCCESS'), ('open', 'PAM_PERM_DENIED')])
    check(rc == 0, 'empty SSH_AUTH_INFO_0: unexpected PAM results', out + err[-3000:] + e.log())
    check(SSH_REQUIRED in out, 'no message saying what is needed', out)


def case_sshd_ordinary_key(e):
    setup(e, agent_keys=None)
    rc, out, err, _ = e.sshd('alice', pub_info(e.keys['plain'][1]), [('acct', 'PAM_PERM_DENIED')])
    check(rc == 0, 'ordinary key, covered: unexpected PAM results', out + err[-3000:] + e.log())
    check(SSH_REQUIRED in out and 'an ordinary SSH key is refused' in out,
          'no message naming the refused ordinary key', out)
    recs = e.find(event='auth', user='alice', reason='ssh-key-required')
    check(len(recs) == 1 and recs[0]['result'] == 'failure' and
          recs[0].get('detail') == 'method=ssh-login key=' + fingerprint(e.keys['plain'][1]),
          f'record of the refusal: {recs}')
    # bob is not covered: keyward steps aside
    rc, out, err, _ = e.sshd('bob', pub_info(e.keys['plain'][1]),
                             [('acct', 'PAM_IGNORE'), ('open', 'PAM_SUCCESS')])
    check(rc == 0, 'ordinary key, uncovered: unexpected PAM results', out + err[-3000:])
    check('error:' not in out, 'an uncovered user saw a message', out)


def case_sshd_password(e):
    setup(e, agent_keys=None)
    rc, out, err, _ = e.sshd('alice', 'password', [('auth', 'PAM_AUTH_ERR')])
    check(rc == 0, 'password: unexpected PAM results', out + err[-3000:] + e.log())
    check('password and keyboard-interactive logins are refused' in out, 'message', out)
    # no SSH_AUTH_INFO_0 at all in the auth phase (sshd's password attempt)
    rc, out, err, _ = e.sshd('alice', None, [('auth', 'PAM_AUTH_ERR')])
    check(rc == 0, 'password, no info: unexpected PAM results', out + err[-3000:] + e.log())
    check(SSH_REQUIRED in out, 'message', out)


def case_sshd_malformed(e):
    setup(e, agent_keys=None)
    for info in ('publickey sk-ecdsa-sha2-nistp256@openssh.com !!notbase64!!',
                 'publickey\x01 x', 'publickey ' + 'A' * 70000):
        rc, out, err, _ = e.sshd('alice', info, [('acct', 'PAM_PERM_DENIED')])
        check(rc == 0, f'malformed {info[:40]!r}: unexpected PAM results',
              out + err[-3000:] + e.log())
        check(SSH_REQUIRED in out, 'no message for malformed SSH_AUTH_INFO_0', out)
    check(e.daemon.poll() is None, 'keywardd died on malformed SSH_AUTH_INFO_0', e.log())
    check(not e.find(event='auth', result='success'), 'a malformed record was granted')


def case_sshd_daemon_down(e):
    setup(e, agent_keys=None)
    e.stop_daemon()
    rc, out, err, _ = e.sshd('alice', pub_info(e.keys['sk'][1]), [('acct', 'PAM_SERVICE_ERR')])
    check(rc == 0, 'daemon down, covered: unexpected PAM results', out + err[-3000:])
    check('error: ' + e2e.NOT_RUNNING in out, 'no "daemon is not running" message', out)
    rc, out, err, _ = e.sshd('bob', pub_info(e.keys['plain'][1]), [('acct', 'PAM_IGNORE')])
    check(rc == 0, 'daemon down, uncovered: unexpected PAM results', out + err[-3000:])


def case_sshd_second_method(e):
    '''AuthenticationMethods publickey,keyboard-interactive: the auth phase (of the second
    method) sees the key; it steps aside for the password check instead of ending the stack,
    and a non-root caller cannot hand the daemon an SSH_AUTH_INFO_0 of its own.'''
    setup(e, agent_keys=None)
    info = pub_info(e.keys['sk'][1]) + '\nkeyboard-interactive/pam'
    rc, out, err, _ = e.sshd('alice', info, [('auth', 'PAM_IGNORE'), ('acct', 'PAM_SUCCESS'),
                                             ('open', 'PAM_SUCCESS')])
    check(rc == 0, 'second method: unexpected PAM results', out + err[-3000:] + e.log())
    check(len(e.find(event='auth', user='alice', result='success')) == 1,
          'one success record expected', e.log())
    # alice herself (uid 1000) asking with a forged record
    code = ('import dbus,os,sys\n'
            'b=dbus.bus.BusConnection(os.environ["DBUS_SYSTEM_BUS_ADDRESS"])\n'
            'o=dbus.Interface(b.get_object("org.keyward.Keyward1","/org/keyward/Keyward1"),'
            '"org.keyward.Keyward1.Manager")\n'
            'r,w=os.pipe();os.close(w)\n'
            'a=o.Authenticate("alice","e2e-sshd","ssh",sys.argv[1],dbus.types.UnixFd(r),'
            '{"ssh_auth_info":sys.argv[2]})\n'
            'print("ANSWER",bool(a[0]),str(a[1]))\n')
    # the testbed's private bus is root's: let uid 1000 reach its socket
    sock = os.environ['DBUS_SYSTEM_BUS_ADDRESS'].split('path=')[1].split(',')[0]
    os.chmod(os.path.dirname(sock), 0o711)
    os.chmod(os.path.dirname(os.path.dirname(sock)), 0o711)
    os.chmod(sock, 0o666)
    env = dict(os.environ, LD_PRELOAD=e2e.preload('libnss_wrapper.so'), **e.nss_env)
    p = subprocess.run(['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups',
                        sys.executable, '-c', code, REMOTE, pub_info(e.keys['sk'][1])],
                       env=env, capture_output=True, timeout=30, check=False)
    out = p.stdout.decode() + p.stderr.decode()
    check('ANSWER False ssh-key-required' in out, 'a non-root caller vouched for its login', out)


def case_sshd_local_not_enrolled(e):
    '''A login from loopback is local unless logind says otherwise, which sshd's account
    phase is too early to know: a covered account without a security key is refused in
    the session phase instead (where on_remote would apply had logind said remote).'''
    setup(e, agent_keys=None)
    rc, out, err, _ = e.sshd('alice', pub_info(e.keys['sk'][1]),
                             [('acct', 'PAM_SUCCESS'), ('open', 'PAM_PERM_DENIED')],
                             rhost='127.0.0.1')
    check(rc == 0, 'local sshd login without a key: unexpected PAM results',
          out + err[-3000:] + e.log())
    check('No security key is enrolled for alice' in out, 'message', out)
    check(e.find(event='account', user='alice', reason='not-enrolled'), 'no record')


def case_sshd_uv_missing(e):
    '''A rule requiring UV accepts only a key registered with verify-required.'''
    e.keygen('sk', 'ecdsa-sk')
    with open(os.path.join(e.tmp, 'passwd'), 'a', encoding='ascii') as f:
        f.write('carol:x:1002:1002:Carol:/home/carol:/bin/sh\n')
    e.register('carol', [creds_entry(e.keys['sk'][1], 'carol-sk', uv=False)])
    e.start_daemon()
    rc, out, err, _ = e.sshd('carol', pub_info(e.keys['sk'][1]), [('acct', 'PAM_PERM_DENIED')])
    check(rc == 0, 'UV required, key without verify-required: unexpected PAM results',
          out + err[-3000:] + e.log())
    check('is not registered with verify-required' in out, 'message', out)
    check(e.find(event='auth', user='carol', reason='uv-missing'), 'no uv-missing record')
    e.register('carol', [creds_entry(e.keys['sk'][1], 'carol-sk', uv=True)])
    rc, out, err, _ = e.sshd('carol', pub_info(e.keys['sk'][1]), [('acct', 'PAM_SUCCESS')])
    check(rc == 0, 'UV required, verify-required key: unexpected PAM results',
          out + err[-3000:] + e.log())


def case_policy_explain(e):
    '''keywardctl policy explain/check show on_remote ssh-key and remote_lifetime.'''
    env = dict(os.environ, LD_PRELOAD=e2e.preload('libnss_wrapper.so'), **e.nss_env)

    def ctl(*argv, conf=e.policy):
        p = subprocess.run([e.args.keywardctl, '-c', conf] + list(argv), env=env,
                           capture_output=True, timeout=30, check=False)
        return p.returncode, p.stdout.decode() + p.stderr.decode()
    rc, out = ctl('policy', 'explain', '--user', 'alice', '--service', 'e2e-sudo', '--rhost',
                  REMOTE)
    check('Decision: a registered security-key SSH key is required' in out and
          'Elevation lifetime: 900 s' in out, 'explain (remote)', out)
    rc, out = ctl('policy', 'explain', '--user', 'alice', '--service', 'e2e-sudo')
    check('Remote logins: a registered security-key SSH key (on_remote = "ssh-key")' in out,
          'explain (local)', out)
    text = open(e.policy, encoding='ascii').read().replace(
        'remote_lifetime = 900;', 'remote_lifetime = 0;')
    bad = os.path.join(e.tmp, 'bad.conf')
    with open(bad, 'w', encoding='ascii') as f:
        f.write(text)
    os.chmod(bad, 0o644)
    rc, out = ctl('policy', 'check', conf=bad)
    check(rc != 0 and "'remote_lifetime' is 0, expected 1..86400 (seconds)" in out,
          'policy check of remote_lifetime 0', out)


# --- sudo through the agent ----------------------------------------------------------------

def case_agent_ok(e):
    setup(e)
    rc, out, err, _ = e.sudo([('auth', 'PAM_SUCCESS'), ('open', 'PAM_SUCCESS'),
                              ('close', 'PAM_SUCCESS')], e.agent.sock)
    check(rc == 0, 'agent signature: unexpected PAM results', out + err[-3000:] + e.log())
    check('info: Touch your security key (through your SSH agent) for root' in out, 'no cue', out)
    recs = e.find(event='auth', user='root', result='success')
    check(len(recs) == 1, f'one success record expected: {recs}', e.log())
    detail = recs[0].get('detail', '')
    check(detail.startswith('sign-counter=') and
          detail.endswith(' method=ssh-agent key=' + fingerprint(e.keys['sk'][1])),
          f'detail {detail}')
    binds = e.find(event='session-bind', user='root', result='success')
    check(len(binds) == 1, f'the elevation was not bound: {binds}', e.log())
    rows = e.report()
    check(len(rows) == 1 and rows[0]['method'] == 'ssh-agent' and rows[0]['from'] == REMOTE and
          rows[0]['key'] == 'root-sk ' + fingerprint(e.keys['sk'][1]) and
          rows[0]['service'] == 'e2e-sudo', f'report rows: {rows}')


def case_agent_env_reset(e):
    '''sudo resets the environment getenv() sees before PAM runs: the agent is found in the
    one it was started with (/proc/self/environ).'''
    setup(e)
    rc, out, err, _ = e.sudo([('auth', 'PAM_SUCCESS')], e.agent.sock,
                             extra=['--unsetenv', 'SSH_AUTH_SOCK'])
    check(rc == 0, 'environment reset: unexpected PAM results', out + err[-3000:] + e.log())


def case_agent_replay(e):
    '''The module's own calls, by hand: a signature answers its challenge once.'''
    setup(e)
    bus = e.bus
    obj = dbus.Interface(bus.get_object(e2e.BUS_NAME, '/org/keyward/Keyward1'),
                         'org.keyward.Keyward1.Manager')
    blob = base64.b64decode(e.keys['sk'][1].split()[1])
    rfd, wfd = os.pipe()
    os.close(wfd)

    def check_call():
        out = obj.Check('root', 'e2e-sudo', '/dev/pts/3', REMOTE)
        check(str(out[0]) == 'ssh-key' and int(out[6]) == 1, f'Check answered {out}')
        return str(out[7])

    def challenge(decision):
        key, chal, cid = obj.AgentChallenge(
            'root', 'e2e-sudo', '/dev/pts/3', REMOTE,
            {'decision': decision, 'keys': dbus.Array([e.keys['sk'][1].split()[1]], 's')})
        return bytes(chal), str(cid)

    def authenticate(decision, cid, sig):
        return obj.Authenticate('root', 'e2e-sudo', '/dev/pts/3', REMOTE, dbus.types.UnixFd(rfd),
                                {'decision': decision, 'agent_challenge': cid,
                                 'agent_signature': dbus.ByteArray(sig)})

    d1 = check_call()
    chal1, cid1 = challenge(d1)
    sig1 = e.agent.sign(blob, chal1)
    ans = authenticate(d1, cid1, sig1)
    check(bool(ans[0]) and str(ans[1]) == 'ok', f'first use refused: {ans}', e.log())
    # the same challenge and signature again (a new decision: the first is spent)
    d2 = check_call()
    ans = authenticate(d2, cid1, sig1)
    check(not ans[0] and str(ans[1]) == 'challenge-expired', f'replay answered {ans}')
    # the old signature over a new challenge
    chal2, cid2 = challenge(d2)
    ans = authenticate(d2, cid2, sig1)
    check(not ans[0] and str(ans[1]) == 'bad-signature', f'old signature answered {ans}')
    # a challenge is spent by its first use, even a failed one
    sig2 = e.agent.sign(blob, chal2)
    ans = authenticate(d2, cid2, sig2)
    check(not ans[0] and str(ans[1]) == 'challenge-expired', f'spent challenge answered {ans}')
    reasons = [r['reason'] for r in e.find(event='auth', user='root')]
    check(reasons == ['ok', 'challenge-expired', 'bad-signature', 'challenge-expired'],
          f'records: {reasons}')


def case_agent_clone(e):
    '''A sign counter that went backwards: clone alert, refused.'''
    setup(e)
    rc, out, err, _ = e.sudo([('auth', 'PAM_SUCCESS')], e.agent.sock)
    check(rc == 0, 'first elevation: unexpected PAM results', out + err[-3000:] + e.log())
    counters = os.path.join(e.tmp, 'state', 'counters', 'root')
    with open(counters, encoding='ascii') as f:
        text = f.read()
    ident = creds_entry(e.keys['sk'][1], 'x').split('id=')[1].split('\n')[0]
    check(ident in text, f'no counter stored for the SSH key: {text!r}')
    e.stop_daemon()
    with open(counters, 'w', encoding='ascii') as f:
        f.write(''.join(f'{ident} 4000000000\n' if line.startswith(ident) else line
                        for line in text.splitlines(True)))
    e.start_daemon()
    rc, out, err, _ = e.sudo([('auth', 'PAM_AUTH_ERR')], e.agent.sock)
    check(rc == 0, 'clone: unexpected PAM results', out + err[-3000:] + e.log())
    check('cloned' in out, 'no clone message', out)
    check(e.find(event='clone-alert', user='root'), 'no clone-alert record')


def case_agent_none(e):
    setup(e)
    rc, out, err, _ = e.sudo([('auth', 'PAM_AUTH_ERR')], None)
    check(rc == 0, 'no agent: unexpected PAM results', out + err[-3000:] + e.log())
    check('No SSH agent is forwarded: connect with ssh -A (or ForwardAgent yes) and use the '
          'security-key SSH key registered for root' in out, 'no agent message', out)
    recs = e.find(event='auth', user='root', reason='agent-unavailable')
    check(len(recs) == 1 and recs[0].get('detail') == 'method=ssh-agent agent=no-agent',
          f'record: {recs}')


def case_agent_ordinary_key(e):
    setup(e, agent_keys=('plain',))
    rc, out, err, _ = e.sudo([('auth', 'PAM_AUTH_ERR')], e.agent.sock)
    check(rc == 0, 'ordinary key in the agent: unexpected PAM results', out + err[-3000:])
    check('None of the 1 key(s) in your SSH agent is a security-key SSH key registered for root'
          in out, 'message', out)
    check(e.find(event='auth', user='root', reason='ssh-key-required'), 'no record')


def case_agent_garbage(e):
    setup(e, agent_keys=None)
    fake = FakeAgent(e.tmp, 'garbage')
    rc, out, err, took = e.sudo([('auth', 'PAM_AUTH_ERR')], fake.sock)
    check(rc == 0, 'garbage agent: unexpected PAM results', out + err[-3000:] + e.log())
    check('keyward: the SSH agent did not list its keys' in out, 'message', out)
    check(took < 10, f'took {took:.1f} s')
    check(e.find(event='auth', user='root', reason='agent-unavailable'), 'no record')
    check(not e.find(event='auth', result='success'), 'granted')


def case_agent_hang(e):
    setup(e, agent_keys=None)
    fake = FakeAgent(e.tmp, 'hang')
    rc, out, err, took = e.sudo([('auth', 'PAM_AUTH_ERR')], fake.sock)
    check(rc == 0, 'hanging agent: unexpected PAM results', out + err[-3000:] + e.log())
    check('did not list its keys in time' in out, 'message', out)
    check(took < 9, f'the wait was not bounded ({took:.1f} s)')
    check(e.find(event='auth', user='root', reason='timeout'), 'no record')


def case_agent_wrong_uid(e):
    setup(e, agent_keys=None)
    fake = FakeAgent(e.tmp, 'hang', owner=1001)
    rc, out, err, _ = e.sudo([('auth', 'PAM_AUTH_ERR')], fake.sock)
    check(rc == 0, 'socket of another user: unexpected PAM results', out + err[-3000:])
    check('keyward: the SSH agent cannot be used' in out, 'message', out)
    check(not fake.conns, 'the module connected to a socket of another user')


def case_agent_no_touch(e):
    '''The key on the desk is not touched: the agent refuses; nothing is granted.'''
    setup(e)
    e.ctl('touch-mode', '0', 'deny')
    rc, out, err, _ = e.sudo([('auth', 'PAM_AUTH_ERR')], e.agent.sock)
    check(rc == 0, 'no touch: unexpected PAM results', out + err[-3000:] + e.log())
    check('the SSH agent refused to sign' in out, 'message', out)
    check(e.find(event='auth', user='root', reason='no-touch'), 'no no-touch record')
    check(not e.find(event='auth', result='success'), 'granted without a touch')


def case_agent_lifetime_restart(e):
    '''The lifetime survives a restart of keywardd (the binding file's expires=).'''
    setup(e)
    env = e.driver_env()
    env['SSH_AUTH_SOCK'] = e.agent.sock
    argv = [e.args.driver, '--item', 'rhost=' + REMOTE, '--item', 'tty=/dev/pts/3', '--item',
            'ruser=root', '--hold', '30', 'e2e-sudo', 'root', 'auth:PAM_SUCCESS',
            'open:PAM_SUCCESS']
    start = time.monotonic()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    line = b''
    while b'holding' not in line:
        line = p.stdout.readline()
        check(line or p.poll() is None, 'the driver ended before holding', e.log())
    e.stop_daemon()
    files = os.listdir(os.path.join(e.tmp, 'run', 'bindings'))
    check(len(files) == 1, f'binding files: {files}')
    with open(os.path.join(e.tmp, 'run', 'bindings', files[0]), encoding='ascii') as f:
        text = f.read()
    check('expires=' in text and 'hidraw=' not in text, f'binding file: {text}')
    e.start_daemon()
    try:
        rc = p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        raise Failure('the elevation outlived its lifetime across a restart\n' + e.log())
    check(rc < 0, f'the driver was not ended by a signal (rc {rc})')
    check(time.monotonic() - start < 15, 'ended late')
    check(e.find(event='action', reason='lifetime'), 'no lifetime record')


def case_agent_lifetime(e):
    '''The elevation ends after remote_lifetime (the driver holds it open).'''
    e2 = e
    setup(e2)
    rc, out, err, took = e2.sudo([('auth', 'PAM_SUCCESS'), ('open', 'PAM_SUCCESS')],
                                 e2.agent.sock, hold=30)
    check(rc in (-signal.SIGHUP, -signal.SIGTERM, -signal.SIGKILL),
          f'the elevation was not ended (rc {rc})', out + err[-2000:] + e2.log())
    check(took < 3 + 10, f'ended late ({took:.1f} s)')
    acts = e2.find(event='action', reason='lifetime')
    check(len(acts) == 1 and acts[0].get('detail') == 'end-elevation', f'records: {acts}')


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith('case_')}


def main():
    ap = argparse.ArgumentParser()
    for opt in ('--keywardd', '--keywardctl', '--module', '--driver', '--testbed'):
        ap.add_argument(opt, required=True)
    ap.add_argument('--policy-timeout', type=int, default=TIMEOUT_MS)
    ap.add_argument('case', choices=sorted(CASES))
    args = ap.parse_args()
    check(os.geteuid() == 0, 'these tests run as root (root-owned policy and state)')
    for tool in ('ssh-keygen', 'ssh-agent', 'ssh-add'):
        check(shutil.which(tool), f'required tool {tool} is missing (scripts/deps)')
    e = SSH(args, lifetime=3 if args.case.startswith('agent_lifetime') else 900)
    try:
        CASES[args.case](e)
    except Failure as ex:
        print(f'FAIL {args.case}: {ex}', file=sys.stderr)
        return 1
    finally:
        if e.agent:
            e.agent.close()
        e.close()
    print(f'PASS {args.case}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
