"""ssh_scenarios.py: the system layer's SSH scenarios (issue 17). Loaded by system_test.py
(register(st)).

The real OpenSSH of Debian 12 in the booted container: sshd is the shipped ssh.service with
a drop-in the test writes (port 2222 on 10.77.0.1, UsePAM, ExposeAuthInfo), the client is
the real `ssh` with keys made by the real `ssh-keygen`, and the agent the real `ssh-agent`.

Two machines in one container:
- the server: sshd on 10.77.0.1 (and 127.0.0.1), keyward installed and enforcing,
  keywardd through its shipped unit without the testbed (no key of the server plays a part
  over SSH; alice has no local key enrolled, so a login keyward wrongly took for a local
  one fails);
- alice's desk: her security key is a second keyward-testbed run as alice
  (`--state ~alice/.desk`), her ssh-agent runs inside it (a transient unit, `alice-desk`),
  her ssh connects from 10.77.0.2 (BindAddress). Both addresses sit on the container's
  loopback device (added from the host with `ip`, in the container's network namespace):
  keyward counts 127.0.0.0/8 as local, and an SSH login from the admin's desk is not.

ssh-agent is setgid (_ssh): the loader drops LD_PRELOAD for it and its children, so the
agent is given SSH_SK_HELPER, a wrapper that puts libumockdev-preload back in front of
/usr/lib/openssh/ssh-sk-helper (UMOCKDEV_DIR survives). docs/testbed.md, "SSH in the
system layer", has the details and the measured sshd and sudo facts these rely on.
"""

import base64
import hashlib
import json
import re
import shlex
import subprocess
import time

import keyward_system as ks

SERVER = "10.77.0.1"
DESK = "10.77.0.2"
PORT = 2222
DESK_DIR = "/home/alice/.desk"
DESK_CTL = f"{DESK_DIR}/ctl"
DESK_AGENT = f"{DESK_DIR}/agent.sock"
DESK_PIN = "4711"
LIB = "/usr/local/lib/keyward-test"
SK_HELPER = f"{LIB}/sk-helper"
ASKPASS_PIN = f"{LIB}/askpass-pin"
FAKE_AGENT = f"{LIB}/fake-agent"
PAM_DRIVE = f"{LIB}/pam-drive"
SSHD_DROPIN = "/etc/ssh/sshd_config.d/00-keyward-test.conf"

SSHD_CONF = f"""\
# keyward system layer (tests/system/ssh_scenarios.py): sshd for the SSH scenarios.
Port {PORT}
ListenAddress {SERVER}
ListenAddress 127.0.0.1
UsePAM yes
ExposeAuthInfo yes
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication yes
AllowAgentForwarding yes
LogLevel VERBOSE
"""

SSH_CLIENT_CONF = f"""\
# keyward system layer: `ssh server` is the server seen from alice's desk.
Host server
	HostName {SERVER}
	Port {PORT}
	BindAddress {DESK}
	StrictHostKeyChecking no
	UserKnownHostsFile /dev/null
	# INFO: ssh shows the server's PAM messages (banners) only from INFO up
	LogLevel INFO
	IdentitiesOnly yes
	ConnectTimeout 10
"""

SSH_POLICY = """\
# The system layer's SSH policy (tests/system/ssh_scenarios.py): admins (group sudo) need
# their registered security-key SSH key for a remote login and for sudo inside it.
settings = {{
	rp_id = "pam://keyward";
	timeout = {timeout};
	failmode = "closed";
	audit_failure = "deny";
}};
rules = (
	{{
		name = "admins-remote";
		match = {{ groups = ["sudo"]; services = ["sshd", "sudo", "sudo-i"]; }};
		require = "key";
		on_remote = "ssh-key";
		remote_lifetime = {lifetime};
		user_verification = "{uv}";
		removal = {{ action = "end-elevation"; grace = 0; }};
{extra}	}}
);
default = {{ require = "none"; }};
"""

# The desk's ssh-sk-helper: ssh-agent is setgid, so the preload is put back here.
SK_HELPER_SH = """\
#!/bin/sh
# keyward system layer: ssh-sk-helper on alice's emulated desk key (UMOCKDEV_DIR comes
# from the keyward-testbed the agent runs in; LD_PRELOAD was dropped by the setgid agent).
exec env LD_PRELOAD=libumockdev-preload.so.0 /usr/lib/openssh/ssh-sk-helper "$@"
"""
ASKPASS_PIN_SH = f"""\
#!/bin/sh
# keyward system layer: the desk key's PIN, for ssh-keygen and ssh-agent (SSH_ASKPASS).
echo {DESK_PIN}
"""

# A stand-in agent run by alice inside her SSH session (stdlib only). Modes:
#   proxy UPSTREAM RECORD  forward everything to UPSTREAM; append every SIGN_RESPONSE
#                          (type 14) body, base64, one per line, to RECORD
#   replay UPSTREAM RECORD identities from UPSTREAM; every SIGN_REQUEST is answered with
#                          the first recorded SIGN_RESPONSE (a captured, old signature)
#   garbage                every request is answered with bytes that are no agent message
#   hang                   requests are read and never answered
FAKE_AGENT_PY = r'''#!/usr/bin/python3
import base64, os, socket, struct, sys, threading, time

mode, path = sys.argv[1], sys.argv[2]
upstream = sys.argv[3] if len(sys.argv) > 3 else None
record = sys.argv[4] if len(sys.argv) > 4 else None


def read_msg(s):
    hdr = b""
    while len(hdr) < 4:
        d = s.recv(4 - len(hdr))
        if not d:
            return None
        hdr += d
    n = struct.unpack(">I", hdr)[0]
    body = b""
    while len(body) < n:
        d = s.recv(n - len(body))
        if not d:
            return None
        body += d
    return body


def send_msg(s, body):
    s.sendall(struct.pack(">I", len(body)) + body)


def ask_upstream(body):
    u = socket.socket(socket.AF_UNIX)
    u.connect(upstream)
    send_msg(u, body)
    rep = read_msg(u)
    u.close()
    return rep


def serve(c):
    try:
        while True:
            body = read_msg(c)
            if body is None:
                return
            kind = body[0] if body else 0
            if mode == "hang":
                time.sleep(3600)
            elif mode == "garbage":
                c.sendall(b"\x00\x00\x00\x07\x7fgarbage!!" + os.urandom(64))
            elif mode == "proxy":
                rep = ask_upstream(body)
                if rep and rep[0] == 14 and record:
                    with open(record, "a") as f:
                        f.write(base64.b64encode(rep).decode() + "\n")
                send_msg(c, rep if rep is not None else b"\x05")
            elif mode == "replay":
                if kind == 13:
                    with open(record) as f:
                        send_msg(c, base64.b64decode(f.readline()))
                else:
                    rep = ask_upstream(body)
                    send_msg(c, rep if rep is not None else b"\x05")
    except OSError:
        pass
    finally:
        c.close()


if os.path.exists(path):
    os.unlink(path)
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
os.chmod(path, 0o600)
srv.listen(8)
print("listening", flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'''

AGENT_ENV = f"SSH_AUTH_SOCK={DESK_AGENT}"  # alice's desk agent (bob cannot reach it)

# A PAM application for SSH_AUTH_INFO_0 that sshd never writes (stdlib ctypes on libpam,
# run as root in the container; the root has no pamtester): pam_start(SERVICE, USER),
# PAM_RHOST and PAM_TTY set, pam_putenv(SSH_AUTH_INFO_0=<the value, base64 in argv>), then
# the phases named, in order; prints "PHASE RESULT" per phase and the messages the
# modules sent; exit 0 when every phase returned PAM_SUCCESS, 1 otherwise.
PAM_DRIVE_PY = r'''#!/usr/bin/python3
import base64, ctypes, sys

service, user, rhost, tty, info_b64 = sys.argv[1:6]
phases = sys.argv[6:]
pam = ctypes.CDLL("libpam.so.0")


class Message(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class Response(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_char_p), ("resp_retcode", ctypes.c_int)]


CONV = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.POINTER(Message)),
                        ctypes.POINTER(ctypes.POINTER(Response)), ctypes.c_void_p)


class Conv(ctypes.Structure):
    _fields_ = [("conv", CONV), ("appdata_ptr", ctypes.c_void_p)]


libc = ctypes.CDLL(None)
libc.calloc.restype = ctypes.c_void_p


def conv(n, msgs, resp, _):
    arr = libc.calloc(n, ctypes.sizeof(Response))
    for i in range(n):
        m = msgs[i].contents
        print(f"message {m.msg_style}: {(m.msg or b'').decode(errors='replace')}", flush=True)
    resp[0] = ctypes.cast(arr, ctypes.POINTER(Response))
    return 0


c_conv = CONV(conv)
handle = ctypes.c_void_p()
pam.pam_strerror.restype = ctypes.c_char_p
r = pam.pam_start(service.encode(), user.encode(), ctypes.byref(Conv(c_conv, None)),
                  ctypes.byref(handle))
if r:
    sys.exit(f"pam_start: {r}")
PAM_TTY, PAM_RHOST = 3, 4
pam.pam_set_item(handle, PAM_RHOST, rhost.encode())
pam.pam_set_item(handle, PAM_TTY, tty.encode())
if info_b64 != "-":
    r = pam.pam_putenv(handle, b"SSH_AUTH_INFO_0=" + base64.b64decode(info_b64))
    print(f"pam_putenv {r}", flush=True)
ok = True
calls = {"acct_mgmt": pam.pam_acct_mgmt, "open_session": pam.pam_open_session,
         "close_session": pam.pam_close_session, "authenticate": pam.pam_authenticate}
for ph in phases:
    r = calls[ph](handle, 0)
    print(f"{ph} {r} {pam.pam_strerror(handle, r).decode()}", flush=True)
    if r:
        ok = False
        break
pam.pam_end(handle, 0)
sys.exit(0 if ok else 1)
'''

REFUSAL_WORDS = re.compile(r"security[- ]key SSH key|ecdsa-sk|ed25519-sk|sk-ecdsa|"
                           r"sk-ssh-ed25519|forwarded agent|ssh -A|keyward", re.I)


def register(st):
    check = st.check

    def scenario(name, **setup):
        """st.scenario, and a failure also shows sshd's and the desk agent's journal."""
        def reg(fn):
            def run(c):
                try:
                    fn(c)
                except ks.Failure as e:
                    after = getattr(c, "cursor_after_setup", None)
                    raise ks.Failure(f"{e}\n\n--- journal of ssh.service and alice-desk "
                                     f"(since the SSH bench was ready) ---\n"
                                     + c.journal("-u", "ssh", "-u", "alice-desk",
                                                 after=after)) from None
            run.__doc__ = fn.__doc__
            return st.scenario(name, **setup)(run)
        return reg
    tb = ks.TESTBED

    # --- the bench ------------------------------------------------------------------------

    def ssh_policy(c, uv="discouraged", lifetime=900, extra=""):
        c.write("/etc/keyward/keyward.conf", SSH_POLICY.format(
            timeout=ks.TIMEOUT_MS, lifetime=lifetime, uv=uv, extra=extra))
        r = c.run(["keywardctl", "policy", "check"], check=False)
        check(r.returncode == 0,
              f"the SSH policy (on_remote = \"ssh-key\", remote_lifetime = {lifetime}) does "
              f"not load: keywardctl policy check says (exit {r.returncode}):\n"
              f"{r.stdout}{r.stderr}")
        n0 = len(c.audit())
        c.run(["systemctl", "reload", "keywardd"])
        wait_active(c)
        # the reload is asynchronous: the daemon's record says when it is in force
        st.expect_audit(c, n0, "the SSH policy's reload", event="policy-load",
                        result="success")

    def wait_active(c, timeout=15):
        deadline = time.monotonic() + timeout
        while c.run(["systemctl", "is-active", "-q", "keywardd"], check=False).returncode:
            check(time.monotonic() < deadline,
                  lambda: f"keywardd is not active {timeout} s after its (re)start:\n"
                          + c.journal("-u", "keywardd", "-n", "30"))
            time.sleep(0.1)

    def shipped_daemon(c):
        """keywardd through its shipped unit as it is, without the testbed's drop-in: no
        key of this machine plays a part over SSH, and under the testbed's umockdev
        preload sd-login cannot tell keywardd a caller's logind session (umockdev
        reports every /sys path, /sys/fs/cgroup too, as sysfs, so sd-login's cgroup
        mode detection fails), which is how keywardd knows that sudo inside SSH is
        remote."""
        c.run(["rm", "-f", "/etc/systemd/system/keywardd.service.d/testbed.conf"])
        c.run(["systemctl", "daemon-reload"])
        c.run(["systemctl", "restart", "keywardd"])
        wait_active(c)

    def as_user(c, user, script, check_rc=True, timeout=60, env=None):
        """script in user's login shell (runuser -l: PAM service runuser-l, which the
        SSH policy does not cover)."""
        return c.run(["runuser", "-l", user, "-c", script], check=check_rc,
                     timeout=timeout, env=env)

    def network(c):
        """10.77.0.1 (server) and 10.77.0.2 (alice's desk) on the container's loopback
        device: the host's ip(8) in the container's network namespace (the root has no
        iproute2)."""
        for addr in (SERVER, DESK):
            r = subprocess.run(["nsenter", "-t", str(c.init_pid), "-n", "ip", "addr", "add",
                                f"{addr}/32", "dev", "lo"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            if r.returncode != 0:
                raise ks.SystemLayerError(f"cannot add {addr} to the container's lo with "
                                          f"the host's ip(8): {r.stdout}")

    def start_sshd(c):
        c.write(SSHD_DROPIN, SSHD_CONF)
        c.write("/etc/ssh/ssh_config.d/00-keyward-test.conf", SSH_CLIENT_CONF)
        c.run(["sshd", "-t"])
        c.run(["systemctl", "restart", "ssh"])
        deadline = time.monotonic() + 10
        while c.run(["bash", "-c", f"exec 3<>/dev/tcp/{SERVER}/{PORT}"],
                    check=False).returncode != 0:
            check(time.monotonic() < deadline,
                  lambda: "sshd does not listen on "
                          f"{SERVER}:{PORT} 10 s after `systemctl restart ssh`:\n"
                          + c.journal("-u", "ssh", "-n", "30"))
            time.sleep(0.1)

    def desk_keygen(c, name, *opts, pin=False):
        """ssh-keygen as alice on her desk key; returns the .pub line."""
        env = f"SSH_ASKPASS={ASKPASS_PIN} SSH_ASKPASS_REQUIRE=force " if pin else ""
        r = as_user(c, "alice", f"{env}{tb} --state {DESK_DIR} "
                    + (f"--pin {DESK_PIN} " if pin else "")
                    + f"-- ssh-keygen -q -t {name.split('_')[1]}-sk -N '' "
                    f"-C alice-desk-{name} -f ~/.ssh/{name} "
                    + " ".join(shlex.quote(o) for o in opts) + " </dev/null",
                    check_rc=False)
        check(r.returncode == 0,
              f"ssh-keygen -t {name.split('_')[1]}-sk {' '.join(opts)} on alice's emulated "
              f"desk key failed (exit {r.returncode}):\n{r.stdout}{r.stderr}")
        return c.run(["cat", f"/home/alice/.ssh/{name}.pub"]).stdout.strip()

    def start_desk_agent(c, pin=False):
        """alice's ssh-agent inside her desk's keyward-testbed (transient unit)."""
        props = ["-p", "User=alice", "-p", "Group=alice", "-p", "WorkingDirectory=/home/alice",
                 "-E", "HOME=/home/alice", "-E", f"SSH_SK_HELPER={SK_HELPER}"]
        if pin:
            props += ["-E", f"SSH_ASKPASS={ASKPASS_PIN}", "-E", "SSH_ASKPASS_REQUIRE=force"]
        c.run(["systemd-run", "--unit=alice-desk", "--collect"] + props
              + [tb, "--state", DESK_DIR, "--ctl", DESK_CTL, "--",
                 "/usr/bin/ssh-agent", "-D", "-a", DESK_AGENT])
        deadline = time.monotonic() + 10
        while as_user(c, "alice", f"SSH_AUTH_SOCK={DESK_AGENT} ssh-add -l",
                      check_rc=False).returncode not in (0, 1):
            check(time.monotonic() < deadline,
                  lambda: "alice's desk agent did not answer within 10 s:\n"
                          + c.journal("-u", "alice-desk", "-n", "30"))
            time.sleep(0.1)

    def desk(c, *args):
        """keyward-testbed ctl on alice's desk key (touch-mode 0 deny|auto|never, ...)."""
        return c.run([tb, "ctl", DESK_CTL] + list(args))

    def fingerprint(pub_line):
        blob = base64.b64decode(pub_line.split()[1])
        return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")

    def import_key(c, user, pub, label, *extra):
        """keywardctl ssh import (the admin registers the user's sk key)."""
        r = c.run(["keywardctl", "ssh", "import", user, pub, "--label", label] + list(extra),
                  check=False)
        check(r.returncode == 0,
              f"`keywardctl ssh import {user} {pub} --label {label} {' '.join(extra)}` failed "
              f"(exit {r.returncode}): registering a security-key SSH key is not there "
              f"(issue 17):\n{r.stdout}{r.stderr}")
        return r

    def bench(c, uv="discouraged", lifetime=900, alice_sk=True, pin=False, sk_opts=(),
              extra=""):
        """Everything the SSH scenarios share. Returns a dict with the keys' .pub lines
        and fingerprints."""
        t0 = time.monotonic()
        shipped_daemon(c)
        ssh_policy(c, uv=uv, lifetime=lifetime, extra=extra)
        network(c)
        c.run(["mkdir", "-p", LIB])
        c.write(SK_HELPER, SK_HELPER_SH, mode="0755")
        c.write(ASKPASS_PIN, ASKPASS_PIN_SH, mode="0755")
        c.write(FAKE_AGENT, FAKE_AGENT_PY, mode="0755")
        c.write(PAM_DRIVE, PAM_DRIVE_PY, mode="0755")
        start_sshd(c)
        keys = {}
        for u in ("alice", "bob"):
            as_user(c, u, "mkdir -p -m 700 ~/.ssh && ssh-keygen -q -t ed25519 -N '' "
                          f"-C {u}-ordinary -f ~/.ssh/id_ed25519")
            keys[f"{u}_ed25519"] = c.run(["cat", f"/home/{u}/.ssh/id_ed25519.pub"]).stdout.strip()
        as_user(c, "alice", f"mkdir -p -m 700 {DESK_DIR}")
        auth = {"alice": [keys["alice_ed25519"]], "bob": [keys["bob_ed25519"]]}
        if alice_sk:
            keys["alice_sk"] = desk_keygen(c, "id_ecdsa_sk", *sk_opts, pin=pin)
            opts = "verify-required " if "verify-required" in sk_opts else ""
            auth["alice"].append(opts + keys["alice_sk"])
        # One password try: a refusal is one refusal, not three rounds of the agent.
        # Nothing else: Debian's default sudoers (env_reset, no env_keep for SSH_AUTH_SOCK)
        # is what pam_keyward must work with; it finds the agent in the environment sudo
        # was started with (/proc/self/environ; docs/ssh.md).
        c.write("/etc/sudoers.d/keyward-test", "Defaults passwd_tries=1\n", mode="0440")
        for u, lines in auth.items():
            c.write(f"/home/{u}/.ssh/authorized_keys", "\n".join(lines) + "\n", mode="0600")
            c.run(["chown", f"{u}:{u}", f"/home/{u}/.ssh/authorized_keys"])
        start_desk_agent(c, pin=pin)
        if alice_sk:
            as_user(c, "alice", f"SSH_AUTH_SOCK={DESK_AGENT} ssh-add -q ~/.ssh/id_ecdsa_sk")
        for k in list(keys):
            keys[k + "_fp"] = fingerprint(keys[k])
        c.cursor_after_setup = c.cursor()
        ks.log(f"SSH bench ready in {time.monotonic() - t0:.1f} s: {keys}")
        return keys

    # --- people at the desk ---------------------------------------------------------------

    def desk_shell(c, agent=True):
        """alice's shell at her desk (su - alice), her agent in SSH_AUTH_SOCK."""
        p = c.shell("alice", cid=f"alice-desk-{time.monotonic_ns()}")
        if agent:
            p.sendline(f"export SSH_AUTH_SOCK={DESK_AGENT}")
            p.expect(c.prompt("alice"), 5)
        return p

    def ssh_in(c, p, user, argv, what, timeout=20):
        """From shell p, `ssh ARGV server`; returns once the remote shell answers."""
        p.sendline(f"ssh {argv} {user}@server")
        p.expect(c.prompt(user), timeout, what=f"{what}: {user}'s shell on the server")
        p.sendline('echo "REMOTE=$SSH_CONNECTION"')
        m = p.expect(r"REMOTE=(\S+) \d+ (\S+) (\d+)\r?\n", 5,
                     what=f"{what}: the remote shell's SSH_CONNECTION")
        check(m["groups"][0] == DESK and m["groups"][1] == SERVER,
              f"{what}: the shell is not the SSH session from {DESK} to {SERVER}: {m['groups']}")
        p.expect(c.prompt(user), 5)

    def ssh_refused(c, user, argv, what, env=AGENT_ENV, timeout=30):
        """`ssh ARGV user@server touch /tmp/ran-...` must not run: the exit status, the
        marker file, and what the person saw."""
        marker = f"/tmp/ran-{time.monotonic_ns()}"
        r = as_user(c, user, f"{env} ssh {argv} {user}@server touch {marker} </dev/null",
                    check_rc=False, timeout=timeout)
        ran = c.run(["test", "-e", marker], check=False).returncode == 0
        check(not ran and r.returncode != 0,
              f"{what}: the login was NOT refused: ssh exited {r.returncode} and the remote "
              f"command {'ran' if ran else 'did not run'}; ssh said:\n{r.stdout}{r.stderr}")
        return r.stdout + r.stderr

    def ssh_runs(c, user, argv, what, env=AGENT_ENV, cmd="echo LOGIN-OK", timeout=30):
        r = as_user(c, user, f"{env} ssh {argv} {user}@server {shlex.quote(cmd)} </dev/null",
                    check_rc=False, timeout=timeout)
        check(r.returncode == 0 and "LOGIN-OK" in r.stdout,
              f"{what}: the login failed (ssh exit {r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    SK = "-A -i ~/.ssh/id_ecdsa_sk.pub"  # through the desk agent
    ORDINARY = "-i ~/.ssh/id_ed25519 -o IdentityAgent=none"
    PASSWORD = ("-o PreferredAuthentications=password -o PubkeyAuthentication=no "
                "-o NumberOfPasswordPrompts=1 "
                "-o IdentityAgent=none")
    KBDINT = ("-o PreferredAuthentications=keyboard-interactive -o PubkeyAuthentication=no "
              "-o NumberOfPasswordPrompts=1 "
              "-o IdentityAgent=none")

    def askpass_env(c, user):
        path = f"{LIB}/askpass-{user}"
        c.write(path, f"#!/bin/sh\necho {ks.PASSWORDS[user]}\n", mode="0755")
        return f"SSH_ASKPASS={path} SSH_ASKPASS_REQUIRE=force"

    def remote_sudo(c, p, user, cmd="true", timeout=20):
        """In the remote shell p: `sudo -k CMD; echo sudo-rc=$?`, answering its password
        prompts (one try: the bench sets passwd_tries=1); returns (rc, what sudo showed)."""
        start = len(p.transcript())
        p.sendline(f"sudo -k {cmd}; echo sudo-rc=$?")
        for _ in range(4):
            m = p.expect(r"\[sudo\] password for \w+: $|sudo-rc=(\d+)\r?\n", timeout,
                         what=f"sudo's password prompt or its exit status ({user})")
            if m["groups"][0] is not None:
                break
            p.sendline(ks.PASSWORDS[user])
        text = p.transcript()[start:]
        p.expect(c.prompt(user), 5)
        return int(m["groups"][0]), text

    def audit_after(c, n0, **match):
        return st.audit_since(c, n0, **match)

    def records_text(recs):
        return "\n".join(json.dumps(r) for r in recs) or "(none)"

    def sudo_refused(c, p, why, words=None, timeout=20):
        """alice's `sudo -k true` in the remote shell p must be refused (why: the
        situation), say what failed (words, a regex) and leave a refusal in the trail.
        Returns (seconds it took, what sudo showed)."""
        n0 = len(c.audit())
        t0 = time.monotonic()
        rc, text = remote_sudo(c, p, "alice", timeout=timeout)
        took = time.monotonic() - t0
        check(rc != 0, f"alice's sudo ran {why}:\n{text}")
        check(not words or re.search(words, text, re.I),
              f"the refusal {why} does not say what failed (/{words}/):\n{text}")
        recs = audit_after(c, n0, user="alice")
        check([r for r in recs if r.get("result") not in ("success", None)],
              f"no audit record of the sudo refused {why}:\n{records_text(recs)}")
        return took, text

    # --- the facts the flow relies on -------------------------------------------------------

    @scenario("ssh-facts", enroll=())
    def ssh_facts(c):
        """What keyward's SSH flow relies on, with the real sshd and sudo (a pam_exec
        probe ahead of keyward in each phase): for a publickey login SSH_AUTH_INFO_0 is
        empty in the account phase and `publickey sk-ecdsa-sha2-nistp256@openssh.com
        <blob>` in open_session; a failing open_session keeps the remote command from
        running (exit 254); sudo inside `ssh -A` is started with SSH_AUTH_SOCK (its exec-time
        environment, /proc/PID/environ), a socket owned by the user in a 0700 directory.
        (What sudo's PAM modules getenv() is sudo's reset copy: SSH_AUTH_SOCK only with
        `env_keep`, which the bench does not set: pam_keyward reads the exec-time
        environment; measured with a probe module, docs/testbed.md.)"""
        keys = bench(c)
        probe = f"{LIB}/probe"
        c.write(probe, "#!/bin/sh\n{ echo \"=== $PAM_SERVICE $PAM_TYPE $PAM_USER "
                       "rhost=$PAM_RHOST\"; printf 'AUTHINFO=[%s]\\n' \"$SSH_AUTH_INFO_0\"; "
                       "tr '\\0' '\\n' < /proc/$PPID/environ | grep '^SSH_AUTH_SOCK=' "
                       "| sed 's/^/PARENT-/'; } >> /run/probe.log\n"
                       "[ -e /run/probe-deny-$PAM_TYPE ] && exit 1\nexit 0\n", mode="0755")
        for svc in ("sshd", "sudo"):
            c.sh(f"f=/etc/pam.d/{svc}; {{ echo 'account required pam_exec.so seteuid {probe}';"
                 f" echo 'session required pam_exec.so seteuid {probe}';"
                 f" echo 'auth optional pam_exec.so seteuid {probe}'; cat $f; }} > $f.new"
                 f" && mv $f.new $f")
        # alice is covered: take her out of the policy's reach for this probe
        c.write("/etc/keyward/keyward.conf", 'default = { require = "none"; };\n')
        c.run(["systemctl", "reload", "keywardd"])
        wait_active(c)
        ssh_runs(c, "alice", SK, "alice's sk login (probe)")
        log = c.run(["cat", "/run/probe.log"]).stdout
        acct = re.search(r"=== sshd account alice rhost=(\S*)\nAUTHINFO=\[(.*?)\]", log, re.S)
        sess = re.search(r"=== sshd open_session alice rhost=\S*\nAUTHINFO=\[(.*?)\]", log, re.S)
        check(acct and sess, f"the probe did not see sshd's account and session phases:\n{log}")
        check(acct.group(1) == DESK, f"sshd's PAM_RHOST is {acct.group(1)!r}, not {DESK}")
        check(acct.group(2) == "",
              f"SSH_AUTH_INFO_0 in sshd's account phase is {acct.group(2)!r}; it used to be "
              f"empty (sshd sets it after pam_acct_mgmt): the flow's choice of phase must "
              f"be looked at again")
        # one line per method, each ending in a newline (the last one too)
        want = f"publickey {keys['alice_sk'].split()[0]} {keys['alice_sk'].split()[1]}\n"
        check(sess.group(1) == want,
              f"SSH_AUTH_INFO_0 in open_session is {sess.group(1)!r}, expected {want!r}")
        c.run(["touch", "/run/probe-deny-open_session"])
        out = ssh_refused(c, "alice", SK, "a login whose open_session fails")
        c.run(["rm", "/run/probe-deny-open_session"])
        ks.log(f"open_session failure: ssh said {out.strip()!r}")
        c.run(["truncate", "-s0", "/run/probe.log"])
        p = desk_shell(c)
        ssh_in(c, p, "alice", SK, "alice's ssh -A")
        p.sendline("stat -c 'MODE %A %U' \"$SSH_AUTH_SOCK\" \"$(dirname \"$SSH_AUTH_SOCK\")\"")
        modes = p.expect(r"MODE (\S+) (\S+)\r?\nMODE (\S+) (\S+)\r?\n", 5,
                         what="the forwarded agent socket's modes")["groups"]
        check(modes[0].startswith("s"), f"$SSH_AUTH_SOCK is no socket: {modes}")
        check(modes[1] == "alice" and modes[3] == "alice" and modes[2].startswith("drwx------"),
              f"the forwarded agent socket or its directory is not alice's own 0700: {modes}")
        rc, text = remote_sudo(c, p, "alice")
        log = c.run(["cat", "/run/probe.log"]).stdout
        check(rc == 0, f"alice's sudo (uncovered for the probe) failed:\n{text}")
        check(re.search(r"=== sudo auth alice rhost=\nAUTHINFO=\[\]\nPARENT-SSH_AUTH_SOCK="
                        r"/tmp/ssh-\w+/agent\.\d+", log),
              f"sudo was not started with SSH_AUTH_SOCK (its /proc/PID/environ) inside "
              f"ssh -A:\n{log}")

    # --- logins ---------------------------------------------------------------------------

    @scenario("ssh-uncovered", enroll=())
    def ssh_uncovered(c):
        """bob is not covered: his ordinary ed25519 key and his password log him in over
        SSH, and sudo inside asks only for his password; keyward says nothing to him."""
        bench(c, alice_sk=False)
        r = ssh_runs(c, "bob", ORDINARY, "bob's ordinary ed25519 key")
        check(not st.KEY_WORDS.search(r.stdout + r.stderr),
              f"bob's ssh login mentions a key or keyward:\n{r.stdout}{r.stderr}")
        ssh_runs(c, "bob", PASSWORD, "bob's password login", env=askpass_env(c, "bob"))
        p = c.shell("bob")
        ssh_in(c, p, "bob", ORDINARY, "bob's ssh session")
        rc, text = remote_sudo(c, p, "bob")
        check(rc == 0, f"bob's sudo inside SSH failed:\n{text}")
        check(not st.KEY_WORDS.search(text), f"bob's sudo mentions a key or keyward:\n{text}")

    @scenario("ssh-sk-login", enroll=())
    def ssh_sk_login(c):
        """alice (covered: on_remote = "ssh-key") logs in with her registered ecdsa-sk key
        through her agent: logind has a remote session, the audit trail an auth record with
        the key, the client address and the sshd session."""
        keys = bench(c)
        import_key(c, "alice", "/home/alice/.ssh/id_ecdsa_sk.pub", "alice-desk")
        n0 = len(c.audit())
        r = ssh_runs(c, "alice", SK, "alice's login with her registered sk key",
                     cmd="echo LOGIN-OK; loginctl show-session $XDG_SESSION_ID -p Remote "
                         "-p RemoteHost -p Id")
        check("Remote=yes" in r.stdout and f"RemoteHost={DESK}" in r.stdout,
              f"logind does not have a remote session from {DESK}:\n{r.stdout}")
        sid = re.search(r"Id=(\w+)", r.stdout).group(1)
        recs = st.expect_audit(c, n0, "alice's sshd login", user="alice", service="sshd",
                               event="auth")
        ok = [x for x in recs if x.get("result") == "success"]
        check(ok, f"no successful sshd auth record for alice:\n{records_text(recs)}")
        text = json.dumps(ok[-1])
        check(keys["alice_sk_fp"] in text or "alice-desk" in text,
              f"the sshd auth record names neither the key's fingerprint "
              f"({keys['alice_sk_fp']}) nor its label:\n{text}")
        check(ok[-1].get("rhost") == DESK,
              f"the sshd auth record's rhost is {ok[-1].get('rhost')!r}, not {DESK}:\n{text}")
        named = [x for x in audit_after(c, n0, user="alice", service="sshd")
                 if x.get("session") == sid]
        check(named, f"no audit record of alice's sshd login names its logind session {sid} "
                     f"(the sshd session); her sshd records:\n"
                     + records_text(audit_after(c, n0, user="alice", service="sshd")))

    @scenario("ssh-ordinary-refused", enroll=())
    def ssh_ordinary_refused(c):
        """alice (covered) with an ordinary ed25519 key in her authorized_keys, or her
        password (password and keyboard-interactive): sshd accepts them, keyward refuses
        the login and says what is needed (sshd shows PAM messages for the key and
        keyboard-interactive; its password method drops those of a failed attempt); the
        remote command never runs. Her registered sk key still works."""
        bench(c)
        import_key(c, "alice", "/home/alice/.ssh/id_ecdsa_sk.pub", "alice-desk")
        n0 = len(c.audit())
        out = ssh_refused(c, "alice", ORDINARY, "alice with an ordinary ed25519 key")
        check(REFUSAL_WORDS.search(out),
              f"alice's refused ordinary-key login does not say what is needed (a "
              f"security-key SSH key); ssh showed:\n{out}")
        # sshd's "password" method drops PAM messages of a failed attempt (they would only
        # be shown after a login); keyboard-interactive shows them
        ssh_refused(c, "alice", PASSWORD, "alice with her password", env=askpass_env(c, "alice"))
        out = ssh_refused(c, "alice", KBDINT, "alice with her password (keyboard-interactive)",
                          env=askpass_env(c, "alice"))
        check(REFUSAL_WORDS.search(out),
              f"alice's refused keyboard-interactive login does not say what is needed; ssh "
              f"showed:\n{out}")
        recs = audit_after(c, n0, user="alice")
        check([r for r in recs if r.get("result") not in ("success", None)],
              f"no audit record of the refused logins:\n{records_text(recs)}")
        ssh_runs(c, "alice", SK, "alice's registered sk key after the refusals")

    @scenario("ssh-sk-unregistered", enroll=())
    def ssh_sk_unregistered(c):
        """alice's sk key is in her authorized_keys but was never registered with keyward:
        refused (sshd accepting a key is not enough)."""
        bench(c)
        out = ssh_refused(c, "alice", SK, "alice with an sk key keyward does not know")
        check(REFUSAL_WORDS.search(out), f"the refusal does not say what is needed:\n{out}")
        # a control: the same login once the key is registered
        import_key(c, "alice", "/home/alice/.ssh/id_ecdsa_sk.pub", "alice-desk")
        ssh_runs(c, "alice", SK, "the same key once registered")

    @scenario("ssh-uv-required", enroll=())
    def ssh_uv_required(c):
        """The rule says user_verification = "required": alice's key made with
        `-O verify-required` (a PIN on the desk key, typed through the agent's askpass) and
        imported with verify-required logs in; a key without it is refused."""
        keys = bench(c, uv="required", pin=True, sk_opts=("-O", "verify-required"))
        # registered from her authorized_keys line, which carries verify-required
        c.write("/root/alice-uv.keys", f"verify-required {keys['alice_sk']}\n")
        import_key(c, "alice", "/root/alice-uv.keys", "alice-uv")
        ssh_runs(c, "alice", SK, "alice's verify-required sk key")
        # a second sk key without verify-required, registered too
        plain = desk_keygen(c, "id_ed25519_sk", pin=True)
        c.sh(f"echo '{plain}' >> /home/alice/.ssh/authorized_keys")
        c.run(["systemctl", "stop", "alice-desk"])
        start_desk_agent(c, pin=True)
        as_user(c, "alice", f"SSH_AUTH_SOCK={DESK_AGENT} ssh-add -q ~/.ssh/id_ecdsa_sk "
                            "~/.ssh/id_ed25519_sk")
        import_key(c, "alice", "/home/alice/.ssh/id_ed25519_sk.pub", "alice-no-uv")
        out = ssh_refused(c, "alice", "-A -i ~/.ssh/id_ed25519_sk.pub",
                          "alice's sk key registered without verify-required")
        check(re.search(r"verif|PIN", out, re.I),
              f"the refusal does not say that user verification is required:\n{out}")
        ks.log(f"keys: {keys['alice_sk_fp']} (uv) accepted, {fingerprint(plain)} refused")

    @scenario("ssh-attested", enroll=())
    def ssh_attested(c):
        """The rule says attestation = "verified" with the desk key's CA as trust anchor:
        importing alice's key without its attestation is refused (saying so); with the
        attestation ssh-keygen wrote (`-O write-attestation`, `-O challenge`) it is
        imported as verified and logs in; a wrong challenge or a changed attestation file
        is refused."""
        c.run(["mkdir", "-p", "/etc/keyward/ca"])
        chal = "/home/alice/chal"
        as_user(c, "alice", f"head -c 32 /dev/urandom > {chal}")
        keys = bench(c, sk_opts=("-O", "write-attestation=/home/alice/att", "-O",
                                 f"challenge={chal}"))
        # the desk key's attestation CA exists once the desk testbed has run
        c.run(["cp", f"{DESK_DIR}/ca.pem", "/etc/keyward/ca/desk-ca.pem"])
        ssh_policy(c, extra='\t\tattestation = "verified";\n'
                            '\t\ttrust_anchors = "/etc/keyward/ca/desk-ca.pem";\n')
        pub = "/home/alice/.ssh/id_ecdsa_sk.pub"
        r = c.run(["keywardctl", "ssh", "import", "alice", pub, "--label", "alice-desk"],
                  check=False)
        check(r.returncode != 0 and re.search(r"attest", r.stdout + r.stderr, re.I),
              f"importing without the attestation under attestation = \"verified\" was not "
              f"refused with a word about the attestation (exit {r.returncode}):\n"
              f"{r.stdout}{r.stderr}")
        c.sh("head -c 32 /dev/urandom > /root/other-chal")
        r = c.run(["keywardctl", "ssh", "import", "alice", pub, "--label", "alice-desk",
                   "--attestation", "/home/alice/att", "--challenge", "/root/other-chal"],
                  check=False)
        check(r.returncode != 0, f"an attestation checked against another challenge was "
                                 f"accepted:\n{r.stdout}{r.stderr}")
        c.sh("cp /home/alice/att /root/att-changed && "
             "printf '\\001' | dd of=/root/att-changed bs=1 seek=600 conv=notrunc 2>/dev/null")
        r = c.run(["keywardctl", "ssh", "import", "alice", pub, "--label", "alice-desk",
                   "--attestation", "/root/att-changed", "--challenge", chal], check=False)
        check(r.returncode != 0, f"a changed attestation file was accepted:\n"
                                 f"{r.stdout}{r.stderr}")
        r = import_key(c, "alice", pub, "alice-desk", "--attestation", "/home/alice/att",
                       "--challenge", chal)
        check(re.search(r"verified", r.stdout + r.stderr),
              f"the import does not say the attestation was verified:\n{r.stdout}{r.stderr}")
        ssh_runs(c, "alice", SK, "alice's attested sk key")
        ks.log(f"attested import: {(r.stdout + r.stderr).strip()} ({keys['alice_sk_fp']})")

    @scenario("ssh-localhost", enroll=())
    def ssh_localhost(c):
        """The issue's own words: `ssh -A alice@localhost` (127.0.0.1: the minimal root
        resolves no names) with her registered sk key logs in, and `sudo true` there needs
        a touch of that key through the agent and is refused without it. (sshd gives
        PAM_RHOST=127.0.0.1, which keyward's address rule calls local; logind calls the
        session remote.)"""
        keys = bench(c)
        import_key(c, "alice", "/home/alice/.ssh/id_ecdsa_sk.pub", "alice-desk")
        p = desk_shell(c)
        p.sendline(f"ssh {SK} -p {PORT} -o StrictHostKeyChecking=no "
                   "-o UserKnownHostsFile=/dev/null alice@127.0.0.1")
        p.expect(c.prompt("alice"), 20, what="alice's shell on localhost over ssh -A")
        p.sendline('echo "REMOTE=$SSH_CONNECTION"')
        p.expect(r"REMOTE=127\.0\.0\.1 \d+ 127\.0\.0\.1 \d+\r?\n", 5,
                 what="the ssh session from localhost (SSH_CONNECTION)")
        p.expect(c.prompt("alice"), 5)
        n0 = len(c.audit())
        rc, text = remote_sudo(c, p, "alice")
        check(rc == 0, f"alice's sudo inside ssh -A alice@localhost failed:\n{text}")
        expect_agent_auth(c, n0, keys, "sudo inside ssh to localhost")
        desk(c, "touch-mode", "0", "deny")
        rc, text = remote_sudo(c, p, "alice")
        check(rc != 0, f"sudo inside ssh to localhost ran without the touch:\n{text}")

    # --- sudo inside SSH ------------------------------------------------------------------

    def sudo_session(c):
        keys = bench(c)
        import_key(c, "alice", "/home/alice/.ssh/id_ecdsa_sk.pub", "alice-desk")
        p = desk_shell(c)
        ssh_in(c, p, "alice", SK, "alice's ssh -A")
        return keys, p

    def expect_agent_auth(c, n0, keys, what):
        recs = st.expect_audit(c, n0, what, user="alice", event="auth", service="sudo")
        ok = [r for r in recs if r.get("result") == "success"]
        check(ok, f"{what}: no successful auth record of sudo:\n{records_text(recs)}")
        text = json.dumps(ok[-1])
        check("ssh-agent" in text and (keys["alice_sk_fp"] in text or "alice-desk" in text),
              f"{what}: the sudo auth record does not say it was approved through the agent "
              f"with alice's key ({keys['alice_sk_fp']}):\n{text}")
        return ok[-1]

    @scenario("ssh-sudo-agent", enroll=())
    def ssh_sudo_agent(c):
        """Inside `ssh -A`, alice's sudo needs a touch of her desk key through the
        forwarded agent: with the touch it runs (auth record: method ssh-agent, the key; the
        elevation bound; `keywardctl report` lists it with key, client address and
        session); the desk key refusing the touch refuses sudo."""
        keys, p = sudo_session(c)
        n0 = len(c.audit())
        rc, text = remote_sudo(c, p, "alice")
        check(rc == 0, f"alice's sudo with a touch through the agent failed:\n{text}")
        expect_agent_auth(c, n0, keys, "sudo approved through the agent")
        # the desk key refuses the touch
        desk(c, "touch-mode", "0", "deny")
        sudo_refused(c, p, "although her desk key refused the touch",
                     r"agent|touch|security key")
        # the report (after the refusal: it lists the approved elevation)
        rep = c.run(["keywardctl", "report", "--format", "json"], check=False)
        check(rep.returncode in (0, 4) and rep.stdout.strip(),
              f"keywardctl report failed (exit {rep.returncode}):\n{rep.stderr}")
        report = json.loads(rep.stdout)
        elev = [e for e in report.get("elevations", []) if e.get("user") in ("alice", "root")
                and e.get("service") == "sudo"]
        check(elev, f"the report's elevation table has no sudo of alice:\n"
                    f"{json.dumps(report.get('elevations'), indent=1)}")
        e = elev[-1]
        check(DESK in (e.get("from") or "") and e.get("session")
              and (keys["alice_sk_fp"] in (e.get("key") or "") or "alice-desk" in (e.get("key") or "")),
              f"the report's elevation does not show the key ({keys['alice_sk_fp']} / "
              f"alice-desk), the client address {DESK} and the session: {json.dumps(e)}")
        logins = [a for a in report.get("authentications", {}).get("by_user_service", [])
                  if a.get("user") == "alice" and a.get("service") == "sshd"
                  and a.get("success", 0) >= 1]
        check(logins, "the report's authentications have no successful sshd login of alice:\n"
                      f"{json.dumps(report.get('authentications'), indent=1)}")

    @scenario("ssh-sudo-no-agent", enroll=())
    def ssh_sudo_no_agent(c):
        """alice logs in with her sk key but without forwarding her agent (`ssh` without
        -A): sudo is refused with a message saying a forwarded agent is needed."""
        bench(c)
        import_key(c, "alice", "/home/alice/.ssh/id_ecdsa_sk.pub", "alice-desk")
        p = desk_shell(c)
        ssh_in(c, p, "alice", "-a -i ~/.ssh/id_ecdsa_sk.pub", "alice's ssh without -A")
        p.sendline('echo "SOCK=[$SSH_AUTH_SOCK]"')
        p.expect(r"SOCK=\[\]", 5, what="no agent in the session without -A")
        took, _ = sudo_refused(c, p, "without a forwarded agent", r"agent|ssh -A")
        check(took < 10, f"the refusal without an agent took {took:.1f} s (over 10 s)")

    @scenario("ssh-sudo-ordinary-agent", enroll=())
    def ssh_sudo_ordinary_agent(c):
        """Inside alice's SSH session, an agent that holds only her ordinary ed25519 key
        (a real ssh-agent started there): sudo is refused, saying a registered
        security-key SSH key is needed."""
        bench(c)
        import_key(c, "alice", "/home/alice/.ssh/id_ecdsa_sk.pub", "alice-desk")
        p = desk_shell(c)
        ssh_in(c, p, "alice", SK, "alice's ssh -A")
        p.sendline("eval $(ssh-agent -s) >/dev/null && ssh-add -q ~/.ssh/id_ed25519 && "
                   "ssh-add -l | sed 's/^/AGENT-HOLDS /'")
        p.expect(r"AGENT-HOLDS 256 SHA256:\S+ alice-ordinary \(ED25519\)", 10,
                 what="an agent in the session with only alice's ordinary key")
        p.expect(c.prompt("alice"), 5)
        sudo_refused(c, p, "with only an ordinary key in the agent",
                     r"security[- ]key SSH key|sk-|registered")
        p.sendline("ssh-agent -k >/dev/null")
        p.expect(c.prompt("alice"), 5)

    @scenario("ssh-sudo-replay", enroll=())
    def ssh_sudo_replay(c):
        """A stand-in agent in alice's session first passes a real signature through (sudo
        runs) and records it; then it answers the next challenge with that old signature:
        refused (a fresh server challenge each time; the challenge is spent)."""
        keys, p = sudo_session(c)
        rec = "/home/alice/sig.rec"
        p.sendline(f"{FAKE_AGENT} proxy ~/proxy.sock $SSH_AUTH_SOCK {rec} >/dev/null 2>&1 & "
                   f"sleep 0.5; {FAKE_AGENT} replay ~/replay.sock $SSH_AUTH_SOCK {rec} "
                   ">/dev/null 2>&1 & sleep 0.5")
        p.expect(c.prompt("alice"), 5)
        p.sendline("REAL=$SSH_AUTH_SOCK; export SSH_AUTH_SOCK=~/proxy.sock")
        p.expect(c.prompt("alice"), 5)
        n0 = len(c.audit())
        rc, text = remote_sudo(c, p, "alice")
        check(rc == 0, f"sudo through the recording proxy failed:\n{text}")
        expect_agent_auth(c, n0, keys, "sudo through the recording proxy")
        check(c.run(["test", "-s", rec], check=False).returncode == 0,
              "the proxy recorded no signature (SIGN_RESPONSE): the agent was never asked")
        p.sendline("export SSH_AUTH_SOCK=~/replay.sock")
        p.expect(c.prompt("alice"), 5)
        sudo_refused(c, p, "with a replayed signature")

    def bad_agent(c, mode, bound):
        keys, p = sudo_session(c)
        p.sendline(f"{FAKE_AGENT} {mode} ~/bad.sock >/dev/null 2>&1 & sleep 0.5; "
                   "export SSH_AUTH_SOCK=~/bad.sock")
        p.expect(c.prompt("alice"), 5)
        took, _ = sudo_refused(c, p, f"with an agent that {mode}s", r"agent",
                               timeout=bound + 20)
        check(took <= bound,
              f"sudo with an agent that {mode}s took {took:.1f} s (bound {bound} s)")
        ks.log(f"agent {mode}: refused after {took:.1f} s")

    @scenario("ssh-agent-garbage", enroll=())
    def ssh_agent_garbage(c):
        """A stand-in agent answering bytes that are no agent message: sudo is refused at
        once with an error about the agent."""
        bad_agent(c, "garbage", bound=10)

    @scenario("ssh-agent-hang", enroll=())
    def ssh_agent_hang(c):
        """A stand-in agent that reads and never answers: sudo gives up within the
        policy's timeout (5 s) plus a margin and is refused with an error about the
        agent."""
        bad_agent(c, "hang", bound=ks.TIMEOUT_MS / 1000 + 8)

    def remote_elevation(c, comm, timeout=15):
        """The sudo process tree running comm anywhere in the container (inside the SSH
        session it is under sshd, not under the desk's pty)."""
        deadline = time.monotonic() + timeout
        while True:
            procs = c.pty_agent().procs()
            top = [x for x in procs if x["comm"] == "sudo"
                   and any(y["comm"] == comm for y in ks.subtree(procs, x["pid"]))]
            if top:
                return ks.subtree(procs, top[0]["pid"])
            check(time.monotonic() < deadline,
                  lambda: f"no sudo running {comm} within {timeout} s:\n"
                          + ks.format_procs(procs))
            time.sleep(0.1)

    @scenario("ssh-lifetime", enroll=())
    def ssh_lifetime(c):
        """remote_lifetime = 6: an elevation approved through the agent (`sudo sleep 300`)
        is ended by keywardd when its lifetime is up (no removal event exists for a key on
        another machine), and the audit trail says so."""
        keys = bench(c, lifetime=6)
        import_key(c, "alice", "/home/alice/.ssh/id_ecdsa_sk.pub", "alice-desk")
        p = desk_shell(c)
        ssh_in(c, p, "alice", SK, "alice's ssh -A")
        n0 = len(c.audit())
        p.sendline(st.NOJOBS.format(cmd="sudo -k sleep 300"))
        p.expect(r"\[sudo\] password for alice: $", 15, what="sudo's password prompt")
        p.sendline(ks.PASSWORDS["alice"])
        t0 = time.monotonic()
        tree = remote_elevation(c, "sleep")
        expect_agent_auth(c, n0, keys, "sudo sleep 300 through the agent")
        st.wait_ended(c, tree, 6 + 5, "the elevation (sudo sleep 300) at remote_lifetime")
        took = time.monotonic() - t0
        check(took >= 6 * 0.8, f"the elevation ended after {took:.1f} s, before its "
                               f"remote_lifetime of 6 s")
        recs = st.expect_audit(c, n0, "the end of the elevation at its lifetime",
                               event="action", result="success")
        ks.log("end records: " + records_text(recs))
        st.caller_survives(c, p, "alice")
        ks.log(f"elevation ended {took:.1f} s after it started (remote_lifetime 6 s)")

    # --- SSH_AUTH_INFO_0 that sshd never writes ---------------------------------------------

    @scenario("ssh-authinfo-malformed", enroll=())
    def ssh_authinfo_malformed(c):
        """A PAM application (ctypes on libpam) drives the sshd PAM stack for alice from
        10.77.0.2 with SSH_AUTH_INFO_0 put in the PAM environment, then the account and
        session phases, as sshd does: her registered key's exact line opens the
        session (the control); malformed lines (no blob, bad base64, a type that does not
        match the blob, control characters, an overlong line, only an ordinary key) are
        refused, and keywardd stays up."""
        keys = bench(c)
        import_key(c, "alice", "/home/alice/.ssh/id_ecdsa_sk.pub", "alice-desk")
        sk_type, sk_blob = keys["alice_sk"].split()[:2]
        cases = {
            "control: the registered key": (f"publickey {sk_type} {sk_blob}\n", True),
            "no blob": (f"publickey {sk_type}", False),
            "bad base64": (f"publickey {sk_type} {sk_blob[:-6]}!!*&", False),
            "type does not match the blob": (f"publickey ssh-ed25519 {sk_blob}", False),
            "truncated blob": (f"publickey {sk_type} {sk_blob[:40]}", False),
            "control characters": (f"publickey {sk_type}\x1b[2J {sk_blob}", False),
            "overlong": (f"publickey {sk_type} {sk_blob}" + "A" * 7000, False),
            "ordinary key only": ("publickey " + " ".join(keys["alice_ed25519"].split()[:2]),
                                  False),
            "password": ("password", False),
            "empty": ("", False),
            "not set": (None, False),
            "two lines, the second garbage": (f"publickey {sk_type} {sk_blob}\n\x01\x02", False),
        }
        failures = []
        for name, (line, ok) in cases.items():
            n0 = len(c.audit())
            value = "-" if line is None else base64.b64encode(line.encode()).decode()
            r = c.run([PAM_DRIVE, "sshd", "alice", DESK, "ssh", value, "acct_mgmt",
                       "open_session", "close_session"], check=False, timeout=30)
            got = r.returncode == 0
            ks.log(f"SSH_AUTH_INFO_0 {name}: {r.stdout.strip()!r}")
            if got != ok:
                failures.append(f"{name}: expected {'success' if ok else 'refusal'}; the PAM "
                                f"driver says (exit {r.returncode}):\n{r.stdout}{r.stderr}")
            elif not ok and not [x for x in audit_after(c, n0, user="alice")
                                 if x.get("result") not in ("success", None)]:
                failures.append(f"{name}: refused, but keyward recorded no refusal (was it "
                                f"keyward?):\n{r.stdout}{r.stderr}")
            if c.run(["systemctl", "is-active", "-q", "keywardd"], check=False).returncode:
                failures.append(f"{name}: keywardd is no longer active")
                break
        check(not failures, "SSH_AUTH_INFO_0 cases:\n" + "\n".join(failures))
