#!/usr/bin/python3
"""daemon_test.py: keywardd on the emulated-key bench, one case per run.

    daemon_test.py --build-dir B --source-dir S CASE

re-executes itself under `keyward-testbed` (emulated keys + a private system bus that
loads dist/org.keyward.Keyward1.conf), starts keywardd from the build dir with a
temporary policy and paths, drives it with keywardctl and D-Bus calls (dbus-python, for
the pin_fd), and asserts on replies, files, the daemon's log and the audit trail.
Needs Debian's /usr/bin/python3 (dbus). Never skips: a missing tool fails.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

AAGUID = "6b657977-6172-6420-7465-737430303031"
OTHER_AAGUID = "6b657977-6172-6420-7465-737430303032"
PIN = "4711"
BUS_NAME = "org.keyward.Keyward1"
BUS_PATH = "/org/keyward/Keyward1"
IFACE = "org.keyward.Keyward1.Manager"

# case -> testbed options
CASES = {
    "check": [],
    "enroll": [],
    "enroll-aaguid-refused": [],
    "enroll-attestation-verified": [],
    "enroll-attestation-other-ca": [],
    "enroll-pin-required": ["--pin", PIN],
    "auth-ok": [],
    "auth-pin-ok": ["--pin", PIN],
    "auth-wrong-pin": ["--pin", PIN],
    "auth-no-touch": [],
    "auth-touch-denied": [],
    "auth-clone": [],
    "auth-counter-zero": [],
    "auth-two-keys": ["--keys", "2"],
    "auth-no-key": [],
    "auth-cancel": [],
    "auth-lockout": ["--pin", PIN],
    "non-root": [],
    "unsafe-creds": [],
    "revoke": [],
    "sighup": [],
    "import-pamu2fcfg": [],
    "introspection": [],
    "auth-no-pin-set": [],
    "admin-group": [],
    "audit-unavailable": [],
    "auth-concurrent": ["--touch-delay", "300"],
    "bus-lost": [],
    "policy-last-good": [],
    "policy-none-good": [],
    "coverage-snapshot": [],
    "decision-once": [],
    "account-event": [],
    "auth-many-creds": [],
    "auth-authenticator-rules": [],
    "import-aaguid-refused": [],
    "import-attestation-refused": [],
    "import-policy-change": [],
    "nss-failure": [],
    "flood-fair": [],
    "audit-forward-secure": [],
    "audit-key-not-exported": [],
    "audit-rotate-reload": [],
    "audit-disk-full-deny": [],
    "audit-disk-full-rotate": [],
    "auth-pin-prompt": ["--pin", PIN],
    "audit-actor": [],
    "audit-spool": [],
    "audit-commit-durable": [],
    "audit-commit-sync-fails": [],
    "audit-commit-crash": [],
    "auth-counter-recover": [],
    "plugged-keys": [],
    "auth-parallel-keys": ["--keys", "3"],
    "auth-known-key": ["--keys", "2"],
    "auth-known-key-pin": ["--pin", PIN],
    # security-key SSH keys (ImportSshKey, keywardctl ssh; docs/ssh.md)
    "ssh-import": [],
    "ssh-import-attestation": [],
    "ssh-import-rules": [],
}

# cases that run in a private mount namespace with the trail on a small tmpfs
PRIVATE_MOUNT_CASES = ("audit-disk-full-deny", "audit-disk-full-rotate")


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def log(msg):
    print(msg, flush=True)


class Env:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build_dir)
        self.src = os.path.abspath(args.source_dir)
        self.keywardd = os.path.join(self.build, "daemon", "keywardd")
        self.keywardctl = os.path.join(self.build, "tools", "keywardctl")
        self.testbed = os.path.join(self.build, "tests", "keyward-testbed")
        self.tmp = tempfile.mkdtemp(prefix="keyward-daemon-test-")
        os.chmod(self.tmp, 0o755)
        self.creds = os.path.join(self.tmp, "creds")
        self.state = os.path.join(self.tmp, "state")
        self.audit = os.path.join(self.tmp, "log", "audit.log")
        self.conf = os.path.join(self.tmp, "keyward.conf")
        os.mkdir(self.creds, 0o755)
        self.daemon = None
        self.mounts = []
        self.daemon_log = os.path.join(self.tmp, "keywardd.log")
        self._bus = None

    # --- policy and daemon ---
    def write_policy(self, rule_extra="", settings_extra="", path=None, rules_extra=""):
        text = f"""
settings = {{
	rp_id = "pam://keyward";
	timeout = 2000;
	credentials_dir = "{self.creds}";
	state_dir = "{self.state}";
	runtime_dir = "{self.tmp}/run";
	audit_log = "{self.audit}";
	{settings_extra}
}};
rules = (
	{{
		name = "root-sudo";
		match = {{ users = ["root", "nobody"]; services = ["sudo"]; }};
		require = "key";
		{rule_extra}
	}},{rules_extra}
	{{
		name = "ssh-deny";
		match = {{ users = ["root"]; services = ["sshd"]; }};
		require = "deny";
		reason = "no passwords over ssh";
	}}
);
default = {{ require = "none"; }};
"""
        path = path or self.conf
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)

    def start(self, env=None):
        ready = "ready on the system bus"
        readies = self.log_text().count(ready) if os.path.exists(self.daemon_log) else 0
        out = open(self.daemon_log, "a")
        self.daemon = subprocess.Popen([self.keywardd, "-v", "-c", self.conf], stdout=out, stderr=out, env=env)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise Fail("keywardd exited at start:\n" + self.log_text())
            # the name is taken before the start records (and the spool intake) are
            # written: ready is said after them
            if self.bus().name_has_owner(BUS_NAME) and self.log_text().count(ready) > readies:
                return
            time.sleep(0.05)
        raise Fail("keywardd did not take its bus name:\n" + self.log_text())

    def stop(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
                raise Fail("keywardd did not stop on SIGTERM")
            check(self.daemon.returncode == 0, f"keywardd exit code {self.daemon.returncode}")

    def log_text(self):
        with open(self.daemon_log) as f:
            return f.read()

    def audit_records(self):
        if not os.path.exists(self.audit):
            return []
        with open(self.audit) as f:
            return [json.loads(l) for l in f if l.strip()]

    def audit_find(self, **kw):
        return [r for r in self.audit_records() if all(r.get(k) == v for k, v in kw.items())]

    # --- clients ---
    def ctl(self, *args, stdin=None, expect=0, env_extra=None):
        r = subprocess.run([self.keywardctl, *args], input=stdin, capture_output=True, text=True, timeout=60)
        log(f"$ keywardctl {' '.join(args)} -> {r.returncode}\n{r.stdout}{r.stderr}")
        if expect is not None:
            check(r.returncode == expect, f"keywardctl {args[0]}: exit {r.returncode}, expected {expect}: {r.stderr}")
        return r

    def bed(self, *args):
        r = subprocess.run([self.testbed, "ctl", "-", *args], capture_output=True, text=True, timeout=20)
        check(r.returncode == 0, f"testbed ctl {args}: {r.stderr}")
        return r.stdout

    def bus(self):
        import dbus
        if self._bus is None:
            self._bus = dbus.SystemBus()
        return self._bus

    def manager(self):
        import dbus
        return dbus.Interface(self.bus().get_object(BUS_NAME, BUS_PATH), IFACE)

    def authenticate(self, user="root", service="sudo", pin=None, tty="", rhost="", timeout=30, options=None):
        import dbus
        rfd, wfd = os.pipe()
        if pin is not None:
            os.write(wfd, pin.encode())
        os.close(wfd)
        try:
            t0 = time.monotonic()
            reply = self.manager().Authenticate(user, service, tty, rhost, dbus.types.UnixFd(rfd),
                                                dbus.Dictionary(options or {}, signature="sv"), timeout=timeout)
            dt = time.monotonic() - t0
        finally:
            os.close(rfd)
        granted, reason, message, token, cred, device = [str(x) if i else bool(x) for i, x in enumerate(reply)]
        log(f"Authenticate({user},{service}) -> granted={granted} reason={reason} message={message!r} "
            f"token={'<%d chars>' % len(token)} cred={cred} device={device} ({dt:.2f}s)")
        return dict(granted=granted, reason=reason, message=message, token=token, cred=cred, device=device, secs=dt)

    def enroll(self, *extra, pin=None, expect=0):
        args = ["enroll", "root", *extra]
        if pin is not None:
            args.append("--pin-stdin")
        return self.ctl(*args, stdin=(pin + "\n") if pin is not None else None, expect=expect)

    def cleanup(self):
        try:
            self.stop()
        finally:
            for d in self.mounts:
                subprocess.run(["umount", d])
            shutil.rmtree(self.tmp, ignore_errors=True)


# --- cases --------------------------------------------------------------------------

def case_check(e):
    e.write_policy()
    e.start()
    m = e.manager()
    r = m.Check("root", "sudo", "", "")
    check(str(r[0]) == "key" and str(r[1]) == "preferred" and bool(r[2]) is True and int(r[3]) == 2000, f"Check: {r}")
    check(str(r[4]).endswith("keyward.conf:12") and int(r[6]) == 0, f"Check rule/count: {r}")
    r = m.Check("root", "sshd", "", "192.0.2.1")
    check(str(r[0]) == "deny" and "no passwords over ssh" in str(r[5]), f"Check deny: {r}")
    check(e.audit_find(event="auth", reason="policy-deny", service="sshd"), "deny not audited")
    r = m.Check("daemon", "login", "", "")
    check(str(r[0]) == "none", f"Check none: {r}")
    # caps: a 33-character user name is InvalidArgs
    try:
        m.Check("a" * 33, "sudo", "", "")
        raise Fail("long user accepted")
    except Exception as x:
        check("InvalidArgs" in str(getattr(x, "get_dbus_name", lambda: "")()), f"long user: {x}")


def case_enroll(e):
    e.write_policy()
    e.start()
    r = e.enroll("--label", "bench1")
    check("attestation: unverified" in r.stdout and AAGUID in r.stdout, "enroll output")
    r = e.ctl("list", "root")
    check("bench1" in r.stdout and AAGUID in r.stdout, "list shows the key")
    path = os.path.join(e.creds, "root.creds")
    st = os.stat(path)
    check(st.st_uid == 0 and (st.st_mode & 0o777) == 0o600, "creds file owner/mode")
    text = open(path).read()
    check("label=bench1" in text and "rp_id=pam://keyward" in text and f"aaguid={AAGUID}" in text, text)
    check(e.audit_find(event="enroll", result="success", user="root"), "enroll audited")
    # the same key again: excludeList makes the key refuse
    r = e.enroll("--label", "bench2", expect=1)
    check("already holds a credential" in r.stderr, "re-enroll of the same key refused")
    check(e.audit_find(event="enroll", result="failure", user="root"), "refusal audited")


def case_enroll_aaguid_refused(e):
    e.write_policy(rule_extra=f'aaguid_deny = ["{AAGUID}"];')
    e.start()
    r = e.enroll(expect=1)
    check("does not allow this model" in r.stderr and AAGUID in r.stderr, "aaguid refusal message")
    check(not os.path.exists(os.path.join(e.creds, "root.creds")), "nothing stored")
    check(e.audit_find(event="enroll", reason="aaguid-refused"), "aaguid refusal audited")
    e.stop()
    e.write_policy(rule_extra=f'aaguid_allow = ["{OTHER_AAGUID}"];')
    e.start()
    e.enroll(expect=1)
    e.stop()
    e.write_policy(rule_extra=f'aaguid_allow = ["{OTHER_AAGUID}", "{AAGUID}"];')
    e.start()
    e.enroll(expect=0)


def verified_attestation(e):
    """Rule settings requiring attestation verified against the testbed's CA."""
    anchor = os.path.join(e.tmp, "anchor.pem")
    shutil.copy(os.environ["KEYWARD_TESTBED_CA"], anchor)
    os.chmod(anchor, 0o644)
    return f'attestation = "verified"; trust_anchors = ["{anchor}"];'


def case_enroll_attestation_verified(e):
    e.write_policy(rule_extra=verified_attestation(e))
    e.start()
    r = e.enroll()
    check("attestation: verified" in r.stdout, "verified attestation")
    check("attestation=verified" in open(os.path.join(e.creds, "root.creds")).read(), "stored as verified")


def make_other_ca(e):
    key = os.path.join(e.tmp, "other.key")
    pem = os.path.join(e.tmp, "other-ca.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", pem, "-days", "30", "-subj", "/CN=Other CA"],
                   check=True, capture_output=True)
    os.chmod(pem, 0o644)
    return pem


def case_enroll_attestation_other_ca(e):
    pem = make_other_ca(e)
    e.write_policy(rule_extra=f'attestation = "verified"; trust_anchors = ["{pem}"];')
    e.start()
    r = e.enroll(expect=1)
    check("does not chain to the policy's trust anchors" in r.stderr, "chain refusal message")
    check(e.audit_find(event="enroll", reason="attestation-refused"), "attestation refusal audited")
    check(not os.path.exists(os.path.join(e.creds, "root.creds")), "nothing stored")


def run_on_pty(argv, prompt, answer, timeout=60):
    """Runs ARGV with a new pty as its controlling terminal; types ANSWER once PROMPT shows."""
    import pty
    import select
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    out, sent = b"", False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if not sent and prompt.encode() in out:
            os.write(fd, answer.encode())
            sent = True
    text = out.decode(errors="replace")
    for _ in range(50):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
        raise Fail(f"{argv} hung (prompt seen: {sent}): {text}")
    os.close(fd)
    check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"{argv} failed: {text}")
    return text


def case_enroll_pin_required(e):
    e.write_policy(rule_extra='user_verification = "required";')
    e.start()
    r = e.ctl("enroll", "root", expect=None)  # no tty here: PinRequired, then no terminal
    check(r.returncode != 0 and "PIN" in r.stderr, "PIN required without a PIN")
    r = e.enroll(pin="0000", expect=1)
    check("Wrong PIN" in r.stderr and "tries left" in r.stderr, "wrong PIN at enroll")
    # the interactive path: PinRequired, then the PIN is asked on the terminal (echo off)
    out = run_on_pty([e.keywardctl, "enroll", "root", "--label", "tty"], "PIN:", PIN + "\n")
    log(f"enroll on a tty:\n{out}")
    check("Security key PIN:" in out and "Enrolled" in out and PIN not in out, "PIN asked on the tty, not echoed")
    check("uv=yes" in open(os.path.join(e.creds, "root.creds")).read(), "enrolled with UV")
    e.ctl("revoke", "root", "tty")
    r = e.enroll(pin=PIN)
    check("uv=yes" in open(os.path.join(e.creds, "root.creds")).read(), "enrolled with UV (--pin-stdin)")


def case_auth_ok(e):
    e.write_policy()
    e.start()
    e.enroll("--label", "k1")
    a = e.authenticate()
    check(a["granted"] and a["reason"] == "ok", f"auth: {a}")
    check(re.fullmatch(r"[0-9a-f]{32}", a["token"]), "token is 32 hex chars")
    check(a["cred"] == "k1", "credential label")
    check(a["device"].startswith("/sys/"), f"device sysfs path: {a['device']}")
    recs = e.audit_find(event="auth", result="success", user="root")
    check(recs and recs[-1].get("device") == a["device"] and recs[-1].get("cred_label") == "k1", f"audit: {recs}")
    check(a["token"] not in e.log_text() and a["token"] not in open(e.audit).read(), "token never logged")
    # the counter moved forward and was stored
    counters = open(os.path.join(e.state, "counters", "root")).read()
    check(re.search(r" [1-9][0-9]*$", counters.strip()), f"counter stored: {counters}")
    a2 = e.authenticate()
    check(a2["granted"] and a2["token"] != a["token"], "second auth")
    # not covered / deny answers come back at once
    a = e.authenticate(service="login")
    check(not a["granted"] and a["reason"] == "not-covered", f"not covered: {a}")
    a = e.authenticate(service="sshd", rhost="192.0.2.7")
    check(not a["granted"] and a["reason"] in ("policy-deny", "remote"), f"deny: {a}")


def case_auth_pin_ok(e):
    e.write_policy(rule_extra='user_verification = "required";')
    e.start()
    e.enroll(pin=PIN)
    a = e.authenticate(pin=PIN)
    check(a["granted"], f"auth with PIN: {a}")
    a = e.authenticate(pin=None)
    check(not a["granted"] and a["reason"] == "pin-required", f"no PIN given: {a}")


def case_auth_wrong_pin(e):
    e.write_policy(rule_extra='user_verification = "required";')
    e.start()
    e.enroll(pin=PIN)
    a = e.authenticate(pin="1111")
    check(not a["granted"] and a["reason"] == "wrong-pin", f"wrong PIN: {a}")
    check(re.search(r"\d+ tries left", a["message"]), f"tries left in message: {a['message']}")
    check(e.audit_find(event="auth", reason="wrong-pin"), "wrong PIN audited")
    check("1111" not in e.log_text() and "1111" not in open(e.audit).read(), "PIN never logged")


def case_auth_no_touch(e):
    e.write_policy()
    e.start()
    e.enroll()
    e.bed("touch-mode", "0", "never")
    a = e.authenticate()
    check(not a["granted"] and a["reason"] in ("no-touch", "timeout"), f"never touched: {a}")
    check(a["secs"] < 2.0 + 3.5, f"bounded by the policy timeout: {a['secs']}")
    check("not touched" in a["message"] or "did not answer" in a["message"], a["message"])
    e.bed("touch-mode", "0", "auto")
    a = e.authenticate()
    check(a["granted"], f"works again after: {a}")


def case_auth_touch_denied(e):
    e.write_policy()
    e.start()
    e.enroll()
    e.bed("touch-mode", "0", "deny")
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "touch-denied", f"denied on the key: {a}")


def case_auth_clone(e):
    e.write_policy()
    e.start()
    e.enroll()
    check(e.authenticate()["granted"], "first auth")
    check(e.authenticate()["granted"], "second auth")
    e.bed("counter-mode", "0", "rewound")
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "clone", f"rewound counter: {a}")
    check(e.audit_find(event="clone-alert", user="root"), "clone-alert audited")
    check("CLONE ALERT" in e.log_text(), "clone logged")


def case_auth_counter_zero(e):
    e.write_policy()
    e.start()
    e.enroll()
    e.bed("counter-mode", "0", "zero")
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "clone", f"always-zero under strict: {a}")
    e.stop()
    e.write_policy(rule_extra='counter = "allow-zero";')
    e.start()
    a = e.authenticate()
    check(a["granted"], f"always-zero with allow-zero: {a}")


def case_auth_two_keys(e):
    e.write_policy()
    e.start()
    e.enroll("--device", "/dev/hidraw1", "--label", "second")
    # the first key would never be touched: asking it would fail the test with no-touch
    e.bed("touch-mode", "0", "never")
    a = e.authenticate()
    check(a["granted"] and a["cred"] == "second", f"two keys: {a}")
    check(a["secs"] < 1.5, f"the first key was not waited on: {a['secs']}")
    r = e.ctl("enroll", "root", expect=None)
    check(r.returncode != 0 and "choose one with --device" in r.stderr, "two keys need --device")


def case_auth_no_key(e):
    e.write_policy()
    e.start()
    e.enroll()
    e.bed("unplug", "0")
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "no-key", f"no key: {a}")
    a = e.authenticate(user="nobody")
    check(not a["granted"] and a["reason"] == "not-enrolled", f"not enrolled: {a}")


def case_auth_cancel(e):
    import dbus
    import dbus.bus
    from dbus.mainloop.glib import DBusGMainLoop
    from gi.repository import GLib
    e.write_policy()
    e.start()
    e.enroll()
    e.bed("touch-mode", "0", "never")
    loop = GLib.MainLoop()
    conn = dbus.bus.BusConnection(os.environ["DBUS_SYSTEM_BUS_ADDRESS"], mainloop=DBusGMainLoop())
    m = dbus.Interface(conn.get_object(BUS_NAME, BUS_PATH), IFACE)
    res = {}
    rfd, wfd = os.pipe()
    os.close(wfd)

    def done(*reply):
        res["reply"] = reply
        res["secs"] = time.monotonic() - t0
        loop.quit()

    def err(x):
        res["error"] = str(x)
        loop.quit()

    t0 = time.monotonic()
    m.Authenticate("root", "sudo", "", "", dbus.types.UnixFd(rfd), dbus.Dictionary({}, signature="sv"),
                   reply_handler=done, error_handler=err, timeout=30)
    os.close(rfd)
    # the same connection cancels its own request
    GLib.timeout_add(500, lambda: m.Cancel(reply_handler=lambda: None, error_handler=err) and False)
    GLib.timeout_add(10000, loop.quit)
    loop.run()
    log(f"cancel: {res}")
    check("reply" in res, f"no reply: {res}")
    check(not res["reply"][0] and str(res["reply"][1]) == "cancelled", f"cancelled: {res}")
    check(res["secs"] < 1.5, f"answered at once: {res['secs']}")
    check(e.audit_find(event="auth", reason="cancelled"), "cancel audited")
    # a client that vanishes mid-request: cancelled too, and the key is free again at once
    code = "import dbus,os\n" \
           "m=dbus.Interface(dbus.SystemBus().get_object('%s','%s'),'%s')\n" \
           "r,w=os.pipe(); os.close(w)\n" \
           "m.Authenticate('root','sudo','','',dbus.types.UnixFd(r),dbus.Dictionary({},signature='sv'),timeout=30)\n" \
           % (BUS_NAME, BUS_PATH, IFACE)
    p = subprocess.Popen(["/usr/bin/python3", "-c", code])
    time.sleep(0.7)
    p.kill()
    p.wait()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and len(e.audit_find(event="auth", reason="cancelled")) < 2:
        time.sleep(0.05)
    check(len(e.audit_find(event="auth", reason="cancelled")) >= 2, "disconnect cancels")
    check("disconnected" in e.log_text(), "disconnect logged")
    e.bed("touch-mode", "0", "auto")
    a = e.authenticate()
    check(a["granted"], f"the key works right after: {a}")


def case_auth_lockout(e):
    e.write_policy(rule_extra='user_verification = "required"; lockout = { max_failures = 2; window = 600; unlock_after = 600; };')
    e.start()
    e.enroll(pin=PIN)
    for _ in range(2):
        check(e.authenticate(pin="1111")["reason"] == "wrong-pin", "wrong PIN")
    a = e.authenticate(pin=PIN)
    check(not a["granted"] and a["reason"] == "lockout", f"locked out: {a}")
    check(e.audit_find(event="lockout", user="root"), "lockout audited")


def open_bus_for_others():
    """keyward-testbed keeps its private bus in a 0700 directory; let uid 65534 reach the
    socket (and nothing else) for the non-root cases."""
    addr = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "")
    m = re.match(r"unix:path=([^,]+)", addr)
    check(m, f"unexpected bus address {addr}")
    sock = m.group(1)
    d = os.path.dirname(sock)
    while d not in ("/", "/tmp", ""):
        os.chmod(d, os.stat(d).st_mode | 0o011)
        d = os.path.dirname(d)
    os.chmod(sock, 0o777)


def as_nobody(e, *pyargs):
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
           os.path.abspath(__file__), "--client", *pyargs]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    log(f"as nobody {pyargs}: {r.returncode} {r.stdout.strip()} {r.stderr.strip()}")
    return r.stdout.strip()


def client_main(argv):
    """Runs one call as whoever we are; prints OK:<reply> or the D-Bus error name."""
    import dbus
    m = dbus.Interface(dbus.SystemBus().get_object(BUS_NAME, BUS_PATH), IFACE)
    rfd, wfd = os.pipe()
    os.close(wfd)
    try:
        if argv[0] == "Authenticate":
            r = m.Authenticate(argv[1], "sudo", "", "", dbus.types.UnixFd(rfd), dbus.Dictionary({}, signature="sv"))
        elif argv[0] == "Enroll":
            r = m.Enroll(argv[1], "x", dbus.types.UnixFd(rfd), dbus.Dictionary({}, signature="sv"))
        elif argv[0] == "Check":
            r = m.Check(argv[1], "sudo", "", "")
        elif argv[0] == "ListCredentials":
            r = m.ListCredentials(argv[1])
        elif argv[0] == "Revoke":
            r = m.Revoke(argv[1], "k1")
        else:
            r = getattr(m, argv[0])()
        print("OK:" + repr(r))
    except dbus.DBusException as x:
        print(x.get_dbus_name())


def case_non_root(e):
    e.write_policy()
    e.start()
    open_bus_for_others()
    e.enroll("--label", "k1")
    check(as_nobody(e, "Authenticate", "root") == "org.keyward.Keyward1.Error.AccessDenied", "nobody authenticates root")
    check(as_nobody(e, "Enroll", "nobody") == "org.keyward.Keyward1.Error.AccessDenied", "nobody enrolls")
    check(as_nobody(e, "Revoke", "root") == "org.keyward.Keyward1.Error.AccessDenied", "nobody revokes")
    check(as_nobody(e, "GetStatus") == "org.keyward.Keyward1.Error.AccessDenied", "nobody GetStatus")
    check(as_nobody(e, "ListCredentials", "root") == "org.keyward.Keyward1.Error.AccessDenied", "nobody lists root")
    check(as_nobody(e, "ListCredentials", "").endswith("AccessDenied"), "nobody lists all")
    check(as_nobody(e, "Check", "root") == "org.keyward.Keyward1.Error.AccessDenied", "nobody checks root")
    check(as_nobody(e, "Check", "nobody").startswith("OK:"), "nobody checks itself")
    check(as_nobody(e, "ListCredentials", "nobody").startswith("OK:"), "nobody lists itself")
    out = as_nobody(e, "Authenticate", "nobody")
    check(out.startswith("OK:") and "not-enrolled" in out, f"nobody authenticates itself: {out}")
    check("root.creds" in os.listdir(e.creds), "root's key still there")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", e.keywardctl, "list"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "No security keys registered for nobody" in r.stdout, f"keywardctl list as nobody: {r}")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", e.keywardctl, "revoke", "root", "k1"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 1 and "only allowed to root" in r.stderr, f"keywardctl revoke as nobody: {r}")


def case_auth_no_pin_set(e):
    e.write_policy(rule_extra='user_verification = "required";')
    e.start()
    e.enroll("--no-uv")  # enrolled without UV; the key has no PIN at all
    a = e.authenticate(pin="1234")
    check(not a["granted"] and a["reason"] == "no-pin-set", f"no PIN on the key: {a}")
    check(a["message"] == "This key has no PIN set but the policy requires one: set a PIN with fido2-token -S.", a["message"])


def case_admin_group(e):
    # nobody's primary group is nogroup: with admin_group = "nogroup" it may manage keys,
    # but never authenticate (or ask about) another user.
    e.write_policy(settings_extra='admin_group = "nogroup";')
    e.start()
    open_bus_for_others()
    e.enroll("--label", "k1")
    check(as_nobody(e, "ListCredentials", "").startswith("OK:"), "admin lists all")
    check(as_nobody(e, "GetStatus").startswith("OK:"), "admin GetStatus")
    check(as_nobody(e, "Authenticate", "root") == "org.keyward.Keyward1.Error.AccessDenied", "admin authenticates root")
    check(as_nobody(e, "Check", "root") == "org.keyward.Keyward1.Error.AccessDenied", "admin checks root")
    check(as_nobody(e, "Revoke", "root").startswith("OK:"), "admin revokes")
    check(e.audit_find(event="revoke", result="success", detail="nobody"), "revoke audited with the admin's name")
    import dbus
    try:
        e.manager().ImportCredential("root", "bad", "AAAA", "AAAA", "es256", "+presence", "pam://keyward")
        raise Fail("bad public key imported")
    except dbus.DBusException as x:
        check(x.get_dbus_name().endswith("InvalidArgs") and "not a valid es256 key" in str(x), str(x))


def export_vk(e):
    """keywardctl audit setup-keys before keywardd first starts (the documented setup):
    the verification key goes to e.vk, with which verify proves every seal."""
    e.vk = os.path.join(e.tmp, "verification.key")
    e.ctl("-c", e.conf, "audit", "setup-keys", "--output", e.vk)
    return e.vk


def start_without_trail(e):
    """keywardd with a trail that cannot be written (its directory is a regular file),
    root enrolled; returns the refused authentication."""
    blocker = os.path.join(e.tmp, "notadir")
    open(blocker, "w").close()
    e.audit = os.path.join(blocker, "audit.log")
    e.write_policy()
    e.start()
    e.enroll()
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "audit-unavailable", f"audit_failure = deny: {a}")
    return a


def case_audit_unavailable(e):
    # the trail's directory is a regular file: nothing can be recorded
    a = start_without_trail(e)
    check("audit" in a["message"], a["message"])
    check("cannot record" in e.log_text(), "the daemon says why")
    e.stop()
    e.write_policy(settings_extra='audit_failure = "alert";')
    e.start()
    a = e.authenticate()
    check(a["granted"], f"audit_failure = alert: {a}")


def case_audit_forward_secure(e):
    # setup-keys before the first start; keywardd seals with evolving keys; after stop the
    # exported verification key proves every seal, the machine's key alone proves none
    e.write_policy()
    vk = os.path.join(e.tmp, "verification.key")
    r = e.ctl("-c", e.conf, "audit", "setup-keys", "--output", vk)
    check("OFF this machine" in r.stdout, r.stdout)
    e.start()
    e.enroll("--label", "k1")
    for _ in range(3):
        check(e.authenticate()["granted"], "auth")
    anchor = e.ctl("-c", e.conf, "audit", "anchor").stdout.strip()
    e.stop()
    check("has not been exported" not in e.log_text(), "no warning with an exported key")
    seals = e.audit_find(event="seal")
    check(len(seals) >= 2 and [s["epoch"] for s in seals] == list(range(len(seals))), f"seal epochs: {seals}")
    r = e.ctl("-c", e.conf, "audit", "verify", "--verification-key", vk, "--strict", "--anchor", anchor)
    check(r.stdout.splitlines()[-1] == "INTACT" and "anchors:        1 matched" in r.stdout, r.stdout)
    r = e.ctl("-c", e.conf, "audit", "verify", expect=4)
    check("NOT PROVEN" in r.stdout, r.stdout)
    # restarted: the chain and the epochs continue, still proved
    e.start()
    check(e.authenticate()["granted"], "auth after restart")
    e.stop()
    e.ctl("-c", e.conf, "audit", "verify", "--verification-key", vk, "--strict", "--anchor", anchor)


def case_audit_key_not_exported(e):
    # no key at first start: keywardd makes a forward-secure key itself, says that its
    # verification key was never exported, and setup-keys cannot export it afterwards
    e.write_policy()
    e.start()
    e.enroll("--label", "k1")
    e.stop()
    check("verification key has not been exported" in e.log_text(), "the daemon warns")
    opens = [s for s in e.audit_find(event="seal") if s.get("reason") == "open"]
    check(opens and "not exported" in opens[0].get("detail", ""), f"the trail records it: {opens}")
    r = e.ctl("-c", e.conf, "audit", "setup-keys", expect=1)
    check("erased" in r.stderr and "epoch" in r.stderr, r.stderr)
    r = e.ctl("-c", e.conf, "audit", "verify", expect=4)
    check("NOT PROVEN" in r.stdout, r.stdout)


def case_auth_concurrent(e):
    # two PAM conversations at once on the one key: both answered, none hangs, no crash
    e.write_policy()
    e.start()
    e.enroll()
    procs = [subprocess.Popen(["/usr/bin/python3", os.path.abspath(__file__), "--client", "Authenticate", "root"],
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=30)[0].strip() for p in procs]
    log(f"concurrent: {outs}")
    check(all(o.startswith("OK:") for o in outs), f"all answered: {outs}")
    check(any("'ok'" in o for o in outs), f"at least one granted: {outs}")
    for o in outs:
        check("'ok'" in o or "busy" in o or "could not be used" in o, f"clear message: {o}")
    check(e.manager().GetStatus()["pending_operations"] == 0, "nothing left pending")
    # no touch needed: answers come back fast and close together, yet the sign counters
    # are checked in the order the key produced them (no false clone alarm)
    e.stop()
    e.write_policy(rule_extra="user_presence = false;")
    e.start()
    e.bed("touch-mode", "0", "auto", "0")
    for _ in range(3):
        procs = [subprocess.Popen(["/usr/bin/python3", os.path.abspath(__file__), "--client", "Authenticate", "root"],
                                  stdout=subprocess.PIPE, text=True) for _ in range(5)]
        outs = [p.communicate(timeout=30)[0].strip() for p in procs]
        check(all("'ok'" in o for o in outs), f"all granted, no clone: {outs}")
    check(not e.audit_find(event="clone-alert"), "no clone alert")


def flood_as_nobody(e, service, seconds, connections=4, inflight=16):
    """keyward-bench-flood as nobody (Check + Authenticate for itself) for SECONDS; returns
    its counts."""
    flood = os.path.join(e.build, "bench", "keyward-bench-flood")
    p = subprocess.Popen([flood, "--uid", "65534", "--gid", "65534", "--user", "nobody",
                          "--service", service, "--connections", str(connections),
                          "--inflight", str(inflight)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    check(p.stdout.readline().strip() == "ready", "the flood did not start")
    return p


def flood_counts(p):
    p.stdin.close()
    out = p.stdout.read()
    p.wait(timeout=30)
    m = re.search(r"sent=(\d+) replies=(\d+) errors=(\d+) busy=(\d+)", out)
    check(m, f"no flood summary: {out!r}")
    return dict(zip(("sent", "replies", "errors", "busy"), map(int, m.groups())))


def case_flood_fair(e):
    # An unprivileged user keeps 64 calls for itself in flight: its excess calls are
    # answered Busy (never queued without bound), root's calls are served meanwhile, and
    # its calls answered without a key cost no audit record each (summaries instead).
    e.write_policy()
    e.start()
    e.enroll()
    open_bus_for_others()
    p = flood_as_nobody(e, "sudo", 3)
    try:
        time.sleep(1)
        r = e.manager().Check("root", "sudo", "", "")
        check(str(r[0]) == "key" and int(r[6]) == 1, f"root's Check during the flood: {r}")
        a = e.authenticate()
        check(a["granted"], f"root's Authenticate during the flood: {a}")
        time.sleep(1)
    finally:
        n = flood_counts(p)
    log(f"flood (covered, not enrolled): {n}")
    check(n["replies"] > 50 and n["busy"] > 0, f"the flood was not refused in part: {n}")
    st = e.manager().GetStatus()
    check(int(st["calls_refused_busy"]) >= n["busy"], f"GetStatus calls_refused_busy: {st}")
    # One by one: at most the burst; the rest counted.
    own = [r for r in e.audit_records() if r.get("uid") == 65534]
    check(0 < len(own) <= 5, f"nobody's not-enrolled answers recorded one by one: {len(own)}")
    p = flood_as_nobody(e, "flood", 2)
    time.sleep(2)
    m = flood_counts(p)
    log(f"flood (not covered): {m}")
    check(not e.audit_find(uid=65534, reason="not-covered"), "a not-covered answer recorded alone")
    e.daemon.send_signal(signal.SIGHUP)  # closes the counting window
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not e.audit_find(uid=65534, reason="not-covered"):
        time.sleep(0.1)
    summary = e.audit_find(uid=65534, reason="not-covered")
    check(len(summary) == 1, f"one not-covered summary record: {summary}")
    count = int(summary[0]["detail"].split("=")[1])
    check(1 <= count <= m["replies"], f"summary count {count} vs {m}")
    s2 = e.audit_find(uid=65534, reason="not-enrolled")
    check(len(s2) >= 6 and any(str(r.get("detail", "")).startswith("count=") for r in s2),
          f"not-enrolled: the burst plus a summary: {s2[-2:]}")
    check(e.daemon.poll() is None, "keywardd died")
    check(int(e.manager().GetStatus()["pending_operations"]) == 0, "operations left pending")


def case_unsafe_creds(e):
    e.write_policy()
    e.start()
    e.enroll()
    path = os.path.join(e.creds, "root.creds")
    os.chmod(path, 0o606)
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "error", f"world-writable: {a}")
    check(f"{path} is world-writable; run: chmod o-w {path}" in a["message"], a["message"])
    r = e.manager().Check("root", "sudo", "", "")
    check(str(r[0]) == "deny" and "world-writable" in str(r[5]), f"Check on unsafe file: {r}")
    os.chmod(path, 0o600)
    real = os.path.join(e.tmp, "real.creds")
    shutil.move(path, real)
    os.symlink(real, path)
    a = e.authenticate()
    check(not a["granted"] and f"{path} is a symbolic link" in a["message"], f"symlink: {a}")
    os.unlink(path)
    shutil.move(real, path)
    with open(path, "a") as f:
        f.write("garbage line\n")
    a = e.authenticate()
    check(not a["granted"] and f"{path}:" in a["message"] and "expected '[credential]'" in a["message"], f"corrupt: {a}")
    check(e.audit_find(event="auth", reason="error"), "refusals audited")


def case_revoke(e):
    e.write_policy()
    e.start()
    e.enroll("--label", "k1")
    # `list` shows the whole credential id (what revoke takes), not a shortened one
    cid = re.search(r"^id=(\S+)$", open(os.path.join(e.creds, "root.creds")).read(), re.M).group(1)
    r = e.ctl("list", "root")
    check(re.search(r"\s" + re.escape(cid) + r"$", r.stdout, re.M), f"list does not show the whole id {cid}")
    e.ctl("revoke", "root", "nope", expect=1)
    e.ctl("revoke", "root", "k1")
    check(not os.path.exists(os.path.join(e.creds, "root.creds")), "file removed with the last key")
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "not-enrolled", f"after revoke: {a}")
    check(e.audit_find(event="revoke", result="success"), "revoke audited")


def case_auth_pin_prompt(e):
    """The first call of a PIN login goes without the PIN; the daemon's pin-required answer
    is the module's cue to ask it: a pin-prompt (info), no failure, no lockout count. A
    pin-required answer to a PIN the user was asked for is a failure."""
    e.write_policy(rule_extra='user_verification = "required"; lockout = { max_failures = 2; };')
    e.start()
    e.enroll(pin=PIN)
    a = e.authenticate(pin=None)
    check(not a["granted"] and a["reason"] == "pin-required", f"no PIN given: {a}")
    a = e.authenticate(pin=PIN, options={"pin-asked": True})
    check(a["granted"], f"then with the PIN: {a}")
    for _ in range(3):
        e.authenticate(pin=None)
    check(not e.audit_find(event="auth", result="failure"), f"a PIN login left a failure: {e.audit_find(event='auth', result='failure')}")
    prompts = e.audit_find(event="pin-prompt")
    check(len(prompts) == 4 and all(p["result"] == "info" and p["reason"] == "pin-required"
                                    and p["user"] == "root" for p in prompts), f"pin-prompt records: {prompts}")
    lockfile = os.path.join(e.state, "lockout", "root")
    check(not os.path.exists(lockfile) or "failure" not in open(lockfile).read(), "pin prompts counted for lockout")
    check(e.authenticate(pin=PIN, options={"pin-asked": True})["granted"], "not locked out")
    # the user was asked and typed nothing: that is a refusal
    a = e.authenticate(pin="", options={"pin-asked": True})
    check(not a["granted"] and a["reason"] == "pin-required", f"empty PIN: {a}")
    check(e.audit_find(event="auth", result="failure", reason="pin-required"), "the refusal after asking is a failure")


def proc_value(name):
    """/proc/self/NAME as an int; None when unset (-1 as unsigned)."""
    try:
        v = int(open(f"/proc/self/{name}").read().strip())
    except (OSError, ValueError):
        return None
    return None if v == 4294967295 else v


def check_actor(rec, what, tty=None):
    check(rec.get("actor_uid") == 0 and rec.get("actor") == "root", f"{what}: actor {rec}")
    luid, ses = proc_value("loginuid"), proc_value("sessionid")
    check(rec.get("actor_loginuid") == luid, f"{what}: actor_loginuid {rec.get('actor_loginuid')} != {luid}")
    check(rec.get("actor_session") == (str(ses) if ses is not None else None), f"{what}: actor_session {rec}")
    if tty:
        check(rec.get("actor_tty") == tty, f"{what}: actor_tty {rec.get('actor_tty')} != {tty}")


def case_audit_actor(e):
    """enrol, revoke, import and reload name who asked: uid, name, login uid, session, tty."""
    e.write_policy()
    e.start()
    e.enroll("--label", "k1")
    check_actor(e.audit_find(event="enroll", result="success")[-1], "enroll")
    e.ctl("revoke", "root", "k1")
    check_actor(e.audit_find(event="revoke", result="success")[-1], "revoke")
    r = e.ctl("audit", "show", "--json", "--event", "revoke", e.audit)
    shown = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    check(shown and shown[-1].get("actor_uid") == 0 and shown[-1].get("actor") == "root",
          f"audit show --json without the actor: {shown}")
    e.ctl("revoke", "root", "nope", expect=1)
    import_authfile(e, pamu2fcfg_authfile(e))
    recs = e.audit_find(event="import", result="success")
    check(recs, "import audited")
    check_actor(recs[-1], "import")
    # a reload asked from a terminal: the terminal is named
    text = run_on_pty(["/bin/sh", "-c", "tty; exec busctl --system call " + BUS_NAME + " " + BUS_PATH + " " + IFACE + " Reload"],
                      "\x00never", "")
    tty = text.splitlines()[0].strip()
    check(tty.startswith("/dev/"), f"tty: {text}")
    recs = e.audit_find(event="policy-load", action="bus")
    check(recs, f"reload audited: {e.audit_find(event='policy-load')}")
    log(f"reload record: {recs[-1]}")
    check_actor(recs[-1], "reload", tty=tty[len("/dev/"):])
    # a reload by signal has no caller: no actor
    e.daemon.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not e.audit_find(event="policy-load", action="sighup"):
        time.sleep(0.05)
    recs = e.audit_find(event="policy-load", action="sighup")
    check(recs and "actor_uid" not in recs[-1], f"sighup reload: {recs}")


def case_audit_spool(e):
    """Refused logins while the trail cannot be written go to the spool (0600, in
    state_dir) and the journal; the trail takes them in once when it is back."""
    good_audit = e.audit
    e.write_policy()
    export_vk(e)
    a = start_without_trail(e)
    a = e.authenticate(service="sshd", rhost="192.0.2.7")
    check(not a["granted"], f"deny: {a}")
    spool = os.path.join(e.state, "audit-spool")
    check(os.path.exists(spool), f"no spool: {os.listdir(e.state)}")
    st = os.stat(spool)
    check(st.st_uid == 0 and (st.st_mode & 0o777) == 0o600, f"spool mode {oct(st.st_mode)}")
    lines = [json.loads(l) for l in open(spool)]
    check([l["reason"] for l in lines] == ["audit-unavailable", "policy-deny"], f"spooled: {lines}")
    e.stop()
    # the trail is back
    e.audit = good_audit
    e.write_policy()
    e.start()
    taken = [r for r in e.audit_records() if "spooled" in r]
    check(len(taken) == 2 and {r["reason"] for r in taken} == {"audit-unavailable", "policy-deny"},
          f"taken in: {taken}")
    check(all(r["spooled"] == l["time"] and r["spool_id"] == l["spool_id"] for r, l in zip(taken, lines)),
          f"original times and ids: {taken} {lines}")
    st_taken = e.audit_find(event="spool-taken")
    check(len(st_taken) == 1 and st_taken[0]["result"] == "info" and st_taken[0]["detail"] == "records=2 bad=0",
          f"spool-taken: {st_taken}")
    check(not os.path.exists(spool) and not os.path.exists(spool + ".taking"), "spool left behind")
    # never twice: a restart takes nothing more
    e.stop()
    e.start()
    e.authenticate(service="login")
    check(len([r for r in e.audit_records() if "spooled" in r]) == 2, "taken in twice")
    check(len(e.audit_find(event="spool-taken")) == 1, "a second spool-taken")
    e.stop()
    r = e.ctl("audit", "verify", "--verification-key", e.vk, e.audit, expect=None)
    check(r.returncode == 0, f"trail with taken-in records verifies: {r.stdout}{r.stderr}")


def case_decision_once(e):
    """Check makes the login's decision and hands out its id; Authenticate with that id
    uses it even after a stricter policy was loaded (the rule now denies); the next login
    gets the new one. A decision is only for its own login and is spent by a success."""
    e.write_policy()
    e.start()
    e.enroll()
    old = e.audit_find(event="policy-load", result="success")[-1]["detail"]
    r = e.manager().Check("root", "sudo", "", "")
    check(len(r) == 8 and str(r[0]) == "key", f"Check: {r}")
    first = str(r[7])
    check(re.fullmatch(r"[0-9a-f]{32}", first), f"decision id: {first!r}")
    # not covered: nothing to carry
    check(str(e.manager().Check("root", "login", "", "")[7]) == "", "a decision id for an uncovered login")
    with open(e.conf) as f:
        strict = f.read().replace('name = "root-sudo";', 'name = "root-sudo-strict";').replace(
            'require = "key";', 'require = "deny"; reason = "sudo is closed for maintenance";', 1)
    check("root-sudo-strict" in strict and "closed for maintenance" in strict, "policy edit")
    with open(e.conf, "w") as f:
        f.write(strict)
    e.manager().Reload()
    new = e.audit_find(event="policy-load", result="success")[-1]["detail"]
    check(new != old, "the stricter policy was not loaded")
    # the decision is this login's only
    a = e.authenticate(service="su", options={"decision": first})
    check(not a["granted"] and a["reason"] == "decision-mismatch", f"another service: {a}")
    a = e.authenticate(options={"decision": "0" * 32})
    check(not a["granted"] and a["reason"] == "decision-expired", f"unknown id: {a}")
    # the login in flight keeps its decision
    a = e.authenticate(options={"decision": first})
    check(a["granted"], f"the login in flight lost its decision: {a}")
    rec = e.audit_find(event="auth", result="success")[-1]
    check(rec.get("rule_name") == "root-sudo" and rec.get("policy") == old and rec.get("rule", "").startswith(e.conf + ":"),
          f"the record does not quote the decision: {rec}")
    # spent by the success
    a = e.authenticate(options={"decision": first})
    check(not a["granted"] and a["reason"] == "decision-expired", f"decision used twice: {a}")
    # the next login gets the new policy
    r = e.manager().Check("root", "sudo", "", "")
    check(str(r[0]) == "deny" and str(r[7]) == "", f"Check after the reload: {r}")
    deny = e.audit_find(event="auth", reason="policy-deny")[-1]
    check(deny.get("rule_name") == "root-sudo-strict" and deny.get("policy") == new, f"deny record: {deny}")
    # a caller that passes no decision gets one made now
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "policy-deny", f"no decision given: {a}")
    # another process cannot use this process's decision
    e.write_policy()
    e.manager().Reload()
    r = e.manager().Check("root", "sudo", "", "")
    other = subprocess.run(["/usr/bin/python3", "-c", OTHER_PROCESS_AUTH, str(r[7])],
                           capture_output=True, text=True, timeout=60)
    check("decision-mismatch" in other.stdout, f"another process used the decision: {other.stdout}{other.stderr}")


def case_account_event(e):
    """The PAM account phase's Authenticate (option cached: sudo skipped authentication)
    is recorded as event `account`, with the decision's rule and policy digest; the
    authentication phase's as `auth`."""
    import dbus
    e.write_policy()
    e.start()
    e.enroll()
    a = e.authenticate(options={"cached": dbus.Boolean(True)})
    check(a["granted"], f"account phase, no earlier key: {a}")
    acct = e.audit_find(event="account", result="success", user="root")
    check(len(acct) == 1 and acct[0].get("service") == "sudo" and acct[0].get("rule_name") == "root-sudo"
          and re.fullmatch(r"[0-9a-f]{64}", acct[0].get("policy", "")), f"account record: {acct}")
    check(not e.audit_find(event="auth", result="success"), "the account phase was recorded as auth")
    a = e.authenticate()
    check(a["granted"] and len(e.audit_find(event="auth", result="success")) == 1, "auth phase record")
    a = e.authenticate(options={"cached": dbus.Boolean(True)})
    acct = e.audit_find(event="account", result="success", user="root")
    check(a["granted"] and len(acct) == 2 and acct[1].get("detail") == "cached-elevation same-key",
          f"silent proof of the last key: {acct}")
    a = e.authenticate(service="login", options={"cached": dbus.Boolean(True)})
    check(not a["granted"] and a["reason"] == "not-covered", f"uncovered: {a}")
    check(e.audit_find(event="account", result="info", reason="not-covered"), "uncovered account phase record")


def case_auth_authenticator_rules(e):
    """AAGUID allow/deny and attestation = "verified" apply at every login, to keys
    enrolled before the policy said so: change the policy after enrolment, the next
    login obeys it."""
    e.write_policy()
    e.start()
    e.enroll()
    check(e.authenticate()["granted"], "login before the policy change")

    def reload(extra):
        e.write_policy(rule_extra=extra)
        e.manager().Reload()

    reload(f'aaguid_deny = ["{AAGUID}"];')
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "aaguid-refused" and "no longer allows this model" in a["message"],
          f"denied model: {a}")
    check(e.audit_find(event="auth", reason="aaguid-refused", rule_name="root-sudo"), "refusal audited")
    reload(f'aaguid_allow = ["{OTHER_AAGUID}"];')
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "aaguid-refused", f"model not in the allow list: {a}")
    reload(f'aaguid_allow = ["{OTHER_AAGUID}", "{AAGUID}"];')
    check(e.authenticate()["granted"], "model in the allow list")
    reload(verified_attestation(e))
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "attestation-refused", f"unverified enrolment: {a}")


OTHER_PROCESS_AUTH = """
import os, sys, dbus
m = dbus.Interface(dbus.SystemBus().get_object("org.keyward.Keyward1", "/org/keyward/Keyward1"),
                   "org.keyward.Keyward1.Manager")
r, w = os.pipe(); os.close(w)
print(m.Authenticate("root", "sudo", "", "", dbus.types.UnixFd(r),
                     dbus.Dictionary({"decision": sys.argv[1]}, signature="sv"), timeout=30)[1])
"""


def case_sighup(e):
    e.write_policy()
    e.start()
    good = open(e.conf).read()
    with open(e.conf, "a") as f:
        f.write("bogus = ;\n")
    e.daemon.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "rejected" not in e.log_text():
        time.sleep(0.05)
    check(re.search(re.escape(e.conf) + r":\d+: error:", e.log_text()), "file:line in the log")
    recs = e.audit_find(event="policy-load", result="failure", reason="rejected")
    check(recs and e.conf in recs[-1].get("message", ""), f"rejection audited: {recs}")
    r = e.manager().Check("root", "sudo", "", "")
    check(str(r[0]) == "key", "old policy still in force")
    with open(e.conf, "w") as f:
        f.write(good.replace('"root-sudo"', '"root-sudo"; user_verification = "required"'))
    e.manager().Reload()
    r = e.manager().Check("root", "sudo", "", "")
    check(str(r[1]) == "required", f"new policy after Reload: {r}")


def case_coverage_snapshot(e):
    # keywardd publishes the coverage snapshot of every policy it loads (at start, at each
    # reload) for pam_keyward's fallback: in the runtime directory and beside the last good
    # copy (POLICY.coverage), root-owned, 0644, in the strict format of lib/coverage.h.
    def snapshots():
        out = []
        for path in (os.path.join(e.tmp, "run", "coverage"), e.conf + ".coverage"):
            check(os.path.exists(path), f"no coverage snapshot at {path}")
            st = os.lstat(path)
            check(st.st_uid == 0 and st.st_mode & 0o7777 == 0o644, f"{path}: owner/mode {st}")
            out.append(open(path).read())
        check(out[0] == out[1], f"the two snapshots differ:\n{out[0]}\n---\n{out[1]}")
        return out[0]

    def digest():
        return hashlib.sha256(open(e.conf, "rb").read()).hexdigest()

    e.write_policy()
    e.start()
    text = snapshots()
    expected = (f"keyward-coverage 1\ndigest {digest()}\nfailmode closed\n"
                "rule root-sudo\nrequire key\nuser root\nuser nobody\nservice sudo\n"
                "rule ssh-deny\nrequire deny\nreason no passwords over ssh\nuser root\nservice sshd\n"
                "default\nrequire none\nend 2\n")
    check(text == expected, f"snapshot at start:\n{text}\nexpected:\n{expected}")

    # a reload rewrites it
    e.write_policy(rule_extra='on_remote = "none";', settings_extra='failmode = "open";')
    e.daemon.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and digest() not in open(e.conf + ".coverage").read():
        time.sleep(0.05)
    text = snapshots()
    check(f"digest {digest()}\nfailmode open\n" in text and
          "rule root-sudo\nrequire key\non-remote none\n" in text, f"snapshot after reload:\n{text}")

    # a rejected reload leaves the snapshot of the policy still in force
    with open(e.conf, "a") as f:
        f.write("bogus = ;\n")
    e.daemon.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "rejected" not in e.log_text():
        time.sleep(0.05)
    check(snapshots() == text, "a rejected policy changed the snapshot")


def case_policy_last_good(e):
    # A policy that loaded once is kept; a restart with a broken file on disk runs that copy
    # (loudly) instead of refusing to start, so uncovered users are never denied by it.
    e.write_policy()
    e.start()
    last_good = e.conf + ".last-good"
    check(os.path.exists(last_good), "no last good copy beside the policy after a good load")
    check(open(last_good).read() == open(e.conf).read(), "the last good copy differs from the file")
    check(os.stat(last_good).st_mode & 0o777 == 0o644, "last good copy mode")
    e.stop()
    with open(e.conf, "a") as f:
        f.write("rules = ( { name = \"x\"; require = \"maybe\"; } );\n")
    e.start()
    check(re.search(r"POLICY REJECTED: " + re.escape(e.conf) + r" cannot be used \(" +
                    re.escape(e.conf) + r":\d+: ", e.log_text()), "no loud rejection with file:line in the log")
    st = {str(k): v for k, v in e.manager().GetStatus().items()}
    log(f"GetStatus: {st}")
    check(bool(st["policy_ok"]) is False and e.conf in str(st["policy_error"]), f"GetStatus: {st}")
    check(str(st["policy_in_force"]) == last_good, f"policy in force: {st}")
    r = e.manager().Check("daemon", "login", "", "")
    check(str(r[0]) == "none", f"an uncovered user is refused with the last good policy: {r}")
    r = e.manager().Check("root", "sudo", "", "")
    check(str(r[0]) == "key", f"the covered user is not covered by the last good policy: {r}")
    check(e.audit_find(event="policy-load", result="failure", reason="rejected", action="start"),
          "the rejection at start is not audited")
    check(e.audit_find(event="policy-load", result="success", reason="last-good", message=last_good),
          "the last good policy in force is not audited")
    # keywardctl status says so, and fails
    r = e.ctl("-c", e.conf, "status", expect=1)
    check("REJECTED" in r.stdout and "keeps enforcing the last policy that loaded" in r.stdout,
          f"keywardctl status: {r.stdout}")
    # the file is fixed: a reload takes it, status is clean again
    e.write_policy()
    e.manager().Reload()
    st = {str(k): v for k, v in e.manager().GetStatus().items()}
    check(bool(st["policy_ok"]) is True and str(st["policy_error"]) == "", f"after the fix: {st}")
    e.ctl("-c", e.conf, "status", expect=0)


def case_policy_none_good(e):
    # Never a good policy (a broken file before the first start): keywardd does not start,
    # and says why and that there is no copy to fall back on.
    e.write_policy()
    with open(e.conf, "a") as f:
        f.write("rules = ( { name = \"x\"; require = \"maybe\"; } );\n")
    out = open(e.daemon_log, "a")
    e.daemon = subprocess.Popen([e.keywardd, "-v", "-c", e.conf], stdout=out, stderr=out)
    rc = e.daemon.wait(10)
    log(e.log_text())
    check(rc == 1, f"keywardd exit code {rc}")
    check("No last good policy" in e.log_text() and "cannot start until" in e.log_text(),
          "no message about the missing last good policy")




def case_bus_lost(e):
    # keywardd on a bus of this test's own; the bus goes away: keywardd says so in its log,
    # records the stop and exits with a failure (so that systemd's Restart=on-failure
    # brings it back), instead of living on deaf.
    e.write_policy()
    conf = os.path.join(e.src, "tests", "lib", "permissive-bus.conf")
    sock = os.path.join(e.tmp, "bus.sock")
    bus = subprocess.Popen(["dbus-daemon", f"--config-file={conf}", f"--address=unix:path={sock}",
                            "--nofork", "--nopidfile"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < wait:
            time.sleep(0.02)
        check(os.path.exists(sock), "the private dbus-daemon did not start")
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={sock}")
        out = open(e.daemon_log, "a")
        e.daemon = subprocess.Popen([e.keywardd, "-v", "-c", e.conf], stdout=out, stderr=out, env=env)
        wait = time.monotonic() + 10
        while "ready on the system bus" not in e.log_text() and time.monotonic() < wait:
            check(e.daemon.poll() is None, "keywardd exited at start:\n" + e.log_text())
            time.sleep(0.05)
        check("ready on the system bus" in e.log_text(), "keywardd did not get ready:\n" + e.log_text())
    finally:
        bus.kill()
        bus.wait()
    try:
        rc = e.daemon.wait(10)
    except subprocess.TimeoutExpired:
        raise Fail("keywardd still runs 10 s after its bus went away:\n" + e.log_text())
    log(e.log_text())
    check(rc == 1, f"keywardd exit code {rc} after losing the bus (expected 1: a failure)")
    check("Lost the connection to the system bus" in e.log_text(), "no log line about the lost bus")
    check(e.audit_find(event="daemon-stop", reason="bus-lost", result="failure"),
          f"no daemon-stop record with reason bus-lost: {e.audit_records()[-2:]}")


def pamu2fcfg_authfile(e, user="root", *extra):
    """A pam_u2f authfile holding one credential of USER, made by pamu2fcfg on the plugged
    key for the relying party pam://oldhost."""
    authfile = os.path.join(e.tmp, "u2f_keys")
    r = subprocess.run(["pamu2fcfg", "-u", user, *extra, "-o", "pam://oldhost", "-i", "pam://oldhost"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and r.stdout.startswith(user + ":"), f"pamu2fcfg: {r.returncode} {r.stdout} {r.stderr}")
    with open(authfile, "w") as f:
        f.write(r.stdout.strip() + "\n")
    log("authfile: " + open(authfile).read())
    return authfile


def import_authfile(e, authfile, expect=0):
    return e.ctl("import-pam-u2f", "--origin", "pam://oldhost", authfile, expect=expect)


def case_import_pamu2fcfg(e):
    e.write_policy()
    e.start()
    authfile = pamu2fcfg_authfile(e)
    import_authfile(e, authfile)
    text = open(os.path.join(e.creds, "root.creds")).read()
    check("rp_id=pam://oldhost" in text and "attestation=imported" in text, text)
    a = e.authenticate()
    check(a["granted"] and a["cred"] == "root-u2f-1", f"imported key authenticates: {a}")
    import_authfile(e, authfile, expect=1)  # already there
    # a resident credential ("*" key handle): found by discovery, matched by its public key
    authfile = pamu2fcfg_authfile(e, "nobody", "-r")
    check(open(authfile).read().startswith("nobody:*,"), "pamu2fcfg -r made no resident credential")
    import_authfile(e, authfile)
    check("id=*" in open(os.path.join(e.creds, "nobody.creds")).read(), "stored as discoverable")
    a = e.authenticate(user="nobody")
    check(a["granted"] and a["cred"] == "nobody-u2f-1", f"imported resident key authenticates: {a}")
    a = e.authenticate()
    check(a["granted"] and a["cred"] == "root-u2f-1", f"root's key still works: {a}")


# A second rule for root, for a service other than the first rule's.
ROOT_LOGIN_RULE = """
	{
		name = "root-login";
		match = { users = ["root"]; services = ["login"]; };
		require = "key";
		%s
	},"""


def import_refused(e, authfile, reason, rule_name, words):
    """The import of AUTHFILE is refused by rule RULE_NAME: keywardctl says why and what to
    do instead, nothing is stored, the refusal is recorded."""
    records = len(e.audit_find(event="import", reason=reason))
    r = import_authfile(e, authfile, expect=1)
    check(f"rule {rule_name}" in r.stderr and words in r.stderr and "keywardctl enroll root" in r.stderr,
          f"refusal message: {r.stderr}")
    check("0 credential(s) imported, 1 failed." in r.stdout, f"summary: {r.stdout}")
    check(not os.path.exists(os.path.join(e.creds, "root.creds")), "a refused credential was stored")
    recs = e.audit_find(event="import", reason=reason)
    check(len(recs) == records + 1 and recs[-1].get("result") == "failure"
          and recs[-1].get("rule_name") == rule_name and recs[-1].get("user") == "root"
          and recs[-1].get("cred_label") == "root-u2f-1", f"refusal record: {recs}")


def case_import_aaguid_refused(e):
    """ImportCredential obeys the rules Enroll obeys: an imported credential's model is
    unknown, so a rule with an aaguid_allow list refuses it, even a list naming the key's
    real model, and so does such a rule for another service of the same user."""
    import dbus
    e.write_policy(rule_extra=f'aaguid_allow = ["{AAGUID}"];')
    e.start()
    authfile = pamu2fcfg_authfile(e)
    import_refused(e, authfile, "aaguid-refused", "root-sudo", "aaguid_allow")
    # the error name, for other clients than keywardctl
    kh, pk, cose, flags = open(authfile).read().strip().split(":", 1)[1].split(",")
    try:
        e.manager().ImportCredential("root", "direct", kh, pk, cose, flags, "pam://oldhost")
        raise Fail("ImportCredential accepted a credential the policy refuses")
    except dbus.exceptions.DBusException as x:
        check(x.get_dbus_name() == "org.keyward.Keyward1.Error.PolicyRefused", f"error name: {x}")
    # root's sudo rule accepts any model; the rule for login does not
    e.write_policy(rules_extra=ROOT_LOGIN_RULE % f'aaguid_allow = ["{AAGUID}"];')
    e.manager().Reload()
    import_refused(e, authfile, "aaguid-refused", "root-login", "aaguid_allow")


def case_import_attestation_refused(e):
    """A rule that requires verified attestation refuses an imported credential (it has no
    attestation); enrolling the same key, as the message says, works."""
    e.write_policy(rule_extra=verified_attestation(e))
    e.start()
    import_refused(e, pamu2fcfg_authfile(e), "attestation-refused", "root-sudo", "verified attestation")
    r = e.enroll()
    check("attestation: verified" in r.stdout, f"enroll instead: {r.stdout}")


def case_import_policy_change(e):
    """A credential imported under a permissive rule (a deny list cannot name an unknown
    model) logs in; change the policy after the import, the next login obeys it."""
    e.write_policy(rule_extra=f'aaguid_deny = ["{OTHER_AAGUID}"];')
    e.start()
    import_authfile(e, pamu2fcfg_authfile(e))
    text = open(os.path.join(e.creds, "root.creds")).read()
    check("attestation=imported" in text and "aaguid=" not in text, text)
    check(e.audit_find(event="import", result="success", user="root"), "import not recorded")
    a = e.authenticate()
    check(a["granted"] and a["cred"] == "root-u2f-1", f"imported credential under a permissive rule: {a}")

    def reload(extra):
        e.write_policy(rule_extra=extra)
        e.manager().Reload()

    reload(f'aaguid_allow = ["{AAGUID}"];')
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "aaguid-refused", f"allow list after the import: {a}")
    check(e.audit_find(event="auth", reason="aaguid-refused", rule_name="root-sudo", cred_label="root-u2f-1"),
          "login refusal not recorded")
    reload(verified_attestation(e))
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "attestation-refused", f"verified attestation after the import: {a}")
    reload("")
    a = e.authenticate()
    check(a["granted"] and a["cred"] == "root-u2f-1", f"permissive again: {a}")


# Entries larger than the NSS buffer limit of lib/accounts.c (1 MiB): looking them up
# fails with ERANGE, as a broken NSS source would fail.
NSS_HUGE = 1100 * 1024
NSS_PASSWD = """root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
alice:x:1001:1001::/home/alice:/bin/sh
bob:x:1002:1002:%s:/home/bob:/bin/sh
carol:x:1003:1003::/home/carol:/bin/sh
dave:x:1004:1004::/home/dave:/bin/sh
""" % ("b" * NSS_HUGE)
NSS_GROUP = """root:x:0:
nogroup:x:65534:
wheel:x:10:carol
alice:x:1001:
bob:x:1002:
carol:x:1003:
dave:x:1004:
huge:x:3000:alice,%s
""" % ",".join(f"u{i:06d}" for i in range(NSS_HUGE // 8))
WHEEL_RULE = """
	{
		name = "wheel-sudo";
		match = { groups = ["wheel"]; services = ["sudo"]; };
		require = "key";
	},"""


def case_nss_failure(e):
    """keywardd's account lookups fail closed (lib/accounts.c through manager_evaluate):
    under nss_wrapper, alice's groups cannot be listed and bob's passwd entry cannot be
    read, and a rule covers the group wheel. Neither is answered "not covered": Check fails
    with an error naming the user (the PAM module then decides from the coverage snapshot,
    where the same lookup counts as covered), Authenticate refuses with reason `error` and
    records it, an import is refused. Users whose lookups work are decided as before."""
    import dbus
    files = {}
    for name, text in (("passwd", NSS_PASSWD), ("group", NSS_GROUP)):
        files[name] = os.path.join(e.tmp, name)
        with open(files[name], "w") as f:
            f.write(text)
    preload = [p for p in os.environ.get("LD_PRELOAD", "").replace(":", " ").split() if p]
    env = dict(os.environ, LD_PRELOAD=" ".join(preload + ["libnss_wrapper.so"]),
               NSS_WRAPPER_PASSWD=files["passwd"], NSS_WRAPPER_GROUP=files["group"])
    e.write_policy(rules_extra=WHEEL_RULE)
    e.start(env=env)
    m = e.manager()
    r = m.Check("carol", "sudo", "", "")
    wheel_line = open(e.conf).read().split('name = "wheel-sudo"')[0].count("\n")  # the rule's '{'
    check(str(r[0]) == "key" and str(r[4]).endswith(f"keyward.conf:{wheel_line}"), f"carol, in wheel: {r}")
    r = m.Check("dave", "sudo", "", "")
    check(str(r[0]) == "none", f"dave, in no covered group: {r}")
    for user, logged in (("alice", "Cannot resolve the groups of alice"),
                         ("bob", "Cannot look up the account bob")):
        try:
            r = m.Check(user, "sudo", "", "")
            raise Fail(f"Check({user}) answered {r} although the lookup fails")
        except dbus.exceptions.DBusException as x:
            log(f"Check({user}) -> {x.get_dbus_name()}: {x.get_dbus_message()}")
            check(x.get_dbus_name() == "org.keyward.Keyward1.Error.Failed"
                  and f"Cannot evaluate the policy for {user}" in x.get_dbus_message(), f"Check({user}): {x}")
        a = e.authenticate(user=user)
        check(not a["granted"] and a["reason"] == "error" and a["message"] == "The keyward policy could not be evaluated.",
              f"Authenticate({user}): {a}")
        check(e.audit_find(event="auth", result="failure", reason="error", user=user, service="sudo"),
              f"Authenticate({user}) refusal not recorded")
        check(logged in e.log_text(), f"no log line '{logged}'")
    # an import for alice cannot know which rules would use the credential: refused
    r = import_authfile(e, pamu2fcfg_authfile(e, "alice"), expect=3)
    check("Cannot evaluate the policy for alice" in r.stderr, f"import for alice: {r.stderr}")
    check(not os.path.exists(os.path.join(e.creds, "alice.creds")), "alice's import was stored")
    check(e.audit_find(event="import", reason="error", user="alice"), "refused import not recorded")


def case_auth_many_creds(e):
    """A user with 40 credentials (more than one getAssertion or makeCredential list a key
    takes: the virtkey, like a YubiKey 5, takes 8 ids in 1,200 bytes) logs in with the
    credential stored last, cannot enrol the same key twice, and enrols a 41st key."""
    import base64
    e.write_policy(settings_extra="max_credentials_per_user = 48;")
    e.start()
    e.enroll("--label", "real")
    path = os.path.join(e.creds, "root.creds")
    real = open(path).read()
    block = real[real.index("[credential]"):]
    pk = re.search(r"^public_key=(\S+)$", block, re.M).group(1)
    uid = re.search(r"^user_id=(\S+)$", block, re.M).group(1)
    # 39 credentials of keys that are not plugged in (ids as long as the virtkey's), the
    # plugged key's own last: the worst case for a search batch by batch
    decoys = []
    for i in range(39):
        cid = base64.b64encode(os.urandom(62)).decode()
        decoys.append(f"[credential]\nlabel=gone-{i:02d}\nid={cid}\nrp_id=pam://keyward\nalg=es256\n"
                      f"public_key={pk}\nuser_id={uid}\nattestation=none\nresident=no\nup=yes\nuv=no\n\n")
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write("# 39 credentials of absent keys, then the plugged one\n" + "".join(decoys) + block)
    os.chmod(tmp, 0o600)
    os.rename(tmp, path)
    r = e.ctl("list", "root")
    check(r.stdout.count("gone-") == 39 and "real" in r.stdout, "40 credentials listed")
    a = e.authenticate()
    check(a["granted"] and a["cred"] == "real", f"login with 40 credentials: {a}")
    # the key holds the 40th credential: enrolling it again is refused as such
    r = e.enroll("--label", "again", expect=1)
    check("already holds a credential" in r.stderr, f"re-enroll with 40 credentials: {r.stderr}")
    # a 41st key enrols (its exclude list is the 40), then logs in alone
    node = e.bed("plug-new").split()[1]
    e.enroll("--device", node, "--label", "forty-one")
    r = e.ctl("list", "root")
    check("forty-one" in r.stdout and open(path).read().count("[credential]") == 41, "41 credentials")
    e.bed("unplug", "0")
    a = e.authenticate()
    check(a["granted"] and a["cred"] == "forty-one", f"login with the 41st: {a}")
    # a key that holds none of the 41 is "not registered", after every batch was asked
    node = e.bed("plug-new").split()[1]
    e.bed("unplug", "1")
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "no-key" and "None of the plugged-in" in a["message"],
          f"unregistered key with 41 credentials: {a}")


def wait_log(e, text, what):
    """Waits until the daemon's log holds TEXT (a uevent reaches the daemon on its own time);
    a sync point, not a timed assertion: it fails only if the line never comes."""
    deadline = time.monotonic() + 10
    while text not in e.log_text():
        check(time.monotonic() < deadline, f"{what}: no '{text}' in the log:\n" + e.log_text()[-3000:])
        time.sleep(0.05)


def case_plugged_keys(e):
    """The plugged-key set: filled at start, updated by remove and add uevents; logins and
    enrolment use it (no key: "No security key is plugged in"; two keys: enrolment asks
    which)."""
    e.write_policy()
    e.start()
    wait_log(e, "FIDO key plugged in: /dev/hidraw0", "start fill")
    e.enroll()
    check(e.authenticate()["granted"], "login with the key found at start")
    e.bed("unplug", "0")
    wait_log(e, "FIDO key removed: /dev/hidraw0", "remove uevent")
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "no-key" and "No security key is plugged in" in a["message"],
          f"after the remove uevent: {a}")
    node = next((w for w in e.bed("plug", "0").split() if w.startswith("/dev/hidraw")), None)
    check(node, "plug names the new device node")
    wait_log(e, f"FIDO key plugged in: {node}", "add uevent")
    a = e.authenticate()
    check(a["granted"], f"after the add uevent: {a}")
    new = e.bed("plug-new").split()[1]
    wait_log(e, f"FIDO key plugged in: {new}", "add uevent of a second key")
    r = e.enroll(expect=None)
    check(r.returncode != 0 and "2 security keys are plugged in" in r.stderr and new in r.stderr
          and node in r.stderr, f"enrolment sees both keys of the set: {r.stderr}")
    a = e.authenticate()
    check(a["granted"], f"login with a second, unregistered key plugged in: {a}")


def case_auth_parallel_keys(e):
    """Three plugged keys probed in parallel: the credential on the 3rd key, then on the 2nd,
    is found while the others are never asked for a touch; a cancel reaches the key of the
    search; a cached elevation's silent proof is the probe's signature, counter checked."""
    e.write_policy()
    e.start()
    for n in range(3):
        wait_log(e, f"FIDO key plugged in: /dev/hidraw{n}", "start fill")
    e.enroll("--device", "/dev/hidraw2", "--label", "third")
    e.bed("touch-mode", "0", "never")
    e.bed("touch-mode", "1", "never")
    a = e.authenticate()
    check(a["granted"] and a["cred"] == "third", f"credential on the 3rd key: {a}")
    log_now = e.log_text()
    for n in range(3):
        check(f"probe /dev/hidraw{n} for rp" in log_now, f"key {n} was probed")
    # the 2nd key holds one too; the 3rd never answers a touch: only the 2nd may be asked
    e.bed("touch-mode", "1", "auto")
    e.enroll("--device", "/dev/hidraw1", "--label", "second")
    e.bed("touch-mode", "2", "never")
    e.bed("unplug", "2")
    wait_log(e, "FIDO key removed: /dev/hidraw2", "remove uevent")
    a = e.authenticate()
    check(a["granted"] and a["cred"] == "second", f"credential on the 2nd key: {a}")
    # a cancel (the caller vanishes) reaches the key of the search that waits for a touch
    e.bed("touch-mode", "0", "never")
    e.bed("touch-mode", "1", "never")
    code = "import dbus,os\n" \
           "m=dbus.Interface(dbus.SystemBus().get_object('%s','%s'),'%s')\n" \
           "r,w=os.pipe(); os.close(w)\n" \
           "m.Authenticate('root','sudo','','',dbus.types.UnixFd(r),dbus.Dictionary({},signature='sv'),timeout=30)\n" \
           % (BUS_NAME, BUS_PATH, IFACE)
    n_cancelled = len(e.audit_find(event="auth", reason="cancelled"))
    p = subprocess.Popen(["/usr/bin/python3", "-c", code])
    time.sleep(1.0)  # the search is waiting for the touch by now (as case_auth_cancel)
    p.kill()
    p.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(e.audit_find(event="auth", reason="cancelled")) <= n_cancelled:
        time.sleep(0.05)
    check(len(e.audit_find(event="auth", reason="cancelled")) > n_cancelled, "disconnect cancels")
    e.bed("touch-mode", "1", "auto")
    a = e.authenticate()
    check(a["granted"] and a["cred"] == "second", f"the keys work right after the cancel: {a}")
    # the silent proof of a cached elevation is the probe's own signature (one request to
    # the key, none to the others), checked like any: counter included
    import dbus
    n_assert = e.log_text().count("assertion on ")
    a = e.authenticate(options={"cached": dbus.Boolean(True)})
    acct = e.audit_find(event="account", result="success", user="root")
    check(a["granted"] and a["cred"] == "second" and acct and acct[-1].get("detail") == "cached-elevation same-key",
          f"silent proof: {a} {acct}")
    check(e.log_text().count("assertion on ") == n_assert, "the silent proof asked the key twice")
    e.bed("counter-mode", "1", "rewound")
    a = e.authenticate(options={"cached": dbus.Boolean(True)})
    check(not a["granted"] and a["reason"] == "clone", f"silent proof with a rewound counter: {a}")


KNOWN = "asking the known key directly: "


class LogMark:
    """The daemon's log from now on (what one login wrote)."""
    def __init__(self, e):
        self.e = e
        self.at = len(e.log_text())

    def text(self):
        return self.e.log_text()[self.at:]


def login_known(e, what, node=None, **kw):
    """A login; returns (answer, whether it asked the known key NODE directly (any key if
    NODE is None), whether it probed)."""
    m = LogMark(e)
    a = e.authenticate(**kw)
    t = m.text()
    asked = (KNOWN + node) in t if node else KNOWN in t
    probed = re.search(r"probe /dev/hidraw\d+ for rp", t) is not None
    log(f"{what}: asked the known key directly={asked} probed={probed}")
    return a, asked, probed


def case_auth_known_key(e):
    """The known-key fast path: the key of the user's last verified assertion is asked
    directly (no probe) while it stays plugged; the first login after start or after a
    replug pays the probe; a key that lost the credential sends the login on to the probe
    of every key (still granted by another key); a revoked credential is not asked for."""
    e.write_policy()
    e.start()
    for n in range(2):
        wait_log(e, f"FIDO key plugged in: /dev/hidraw{n}", "start fill")
    e.enroll("--device", "/dev/hidraw0", "--label", "first")
    e.enroll("--device", "/dev/hidraw1", "--label", "second")
    e.bed("unplug", "1")
    wait_log(e, "FIDO key removed: /dev/hidraw1", "remove uevent")
    a, asked, probed = login_known(e, "first login since start")
    check(a["granted"] and a["cred"] == "first" and not asked and probed, f"first login probes: {a}")
    a2, asked, probed = login_known(e, "second login", "/dev/hidraw0")
    check(a2["granted"] and a2["cred"] == "first" and asked and not probed, f"second login asks directly: {a2}")
    check(a2["device"] == a["device"], "the binding is to the same key")
    recs = e.audit_find(event="auth", result="success", user="root")
    check(len(recs) >= 2 and recs[-1].get("device") == a["device"], f"audit of the fast path: {recs[-1:]}")
    # unplug + plug: the memory goes with the entry
    e.bed("unplug", "0")
    wait_log(e, "FIDO key removed: /dev/hidraw0", "remove uevent")
    n0 = next((w for w in e.bed("plug", "0").split() if w.startswith("/dev/hidraw")), None)
    check(n0 and n0 != "/dev/hidraw0", f"replugged under a new node: {n0}")
    wait_log(e, f"FIDO key plugged in: {n0}", "add uevent")
    a, asked, probed = login_known(e, "first login after the replug")
    check(a["granted"] and not asked and probed, f"after a replug the key is not trusted: {a}")
    a, asked, probed = login_known(e, "then", n0)
    check(a["granted"] and asked and not probed, f"then known again: {a}")
    # the known key lost the credential (reset, no unplug): the direct request fails, the
    # same login probes every key and the other key's credential logs in
    n1 = next((w for w in e.bed("plug", "1").split() if w.startswith("/dev/hidraw")), None)
    wait_log(e, f"FIDO key plugged in: {n1}", "add uevent of key 1")
    r = subprocess.run(["fido2-token", "-R", n0], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"fido2-token -R {n0}: {r.stderr}")
    m = LogMark(e)
    a, asked, probed = login_known(e, "the known key was reset", n0)
    check(a["granted"] and a["cred"] == "second" and asked and probed
          and f"the known key {n0} did not answer" in m.text(), f"fallback to the probe: {a}")
    a, asked, probed = login_known(e, "then", n1)
    check(a["granted"] and a["cred"] == "second" and asked and not probed, f"the other key is known now: {a}")
    # revoked between logins: never asked for directly; refused as without the fast path
    e.ctl("revoke", "root", "second")
    a, asked, probed = login_known(e, "after the revoke", n1)
    check(not asked and not a["granted"] and a["reason"] == "no-key", f"revoked credential: {a}")


def case_auth_known_key_pin(e):
    """The PIN path: the pin-required answer and the second call with the PIN both take
    the fast path; a wrong PIN on the known key is a final answer (no second try on the
    probe's path: one retry used, not two)."""
    e.write_policy(rule_extra='user_verification = "required";')
    e.start()
    e.enroll(pin=PIN)
    a, asked, probed = login_known(e, "first login", pin=PIN)
    check(a["granted"] and not asked and probed, f"first PIN login probes: {a}")
    a, asked, probed = login_known(e, "no PIN given", "/dev/hidraw0")
    check(not a["granted"] and a["reason"] == "pin-required" and asked and not probed, f"pin-required: {a}")
    a, asked, probed = login_known(e, "with the PIN", "/dev/hidraw0", pin=PIN, options={"pin-asked": True})
    check(a["granted"] and asked and not probed, f"with the PIN: {a}")
    a, asked, probed = login_known(e, "wrong PIN", "/dev/hidraw0", pin="0000", options={"pin-asked": True})
    check(not a["granted"] and a["reason"] == "wrong-pin" and asked and not probed, f"wrong PIN: {a}")
    check("7 tries left" in a["message"], f"one retry used: {a['message']}")


def interface_signature(xml_text):
    import xml.etree.ElementTree as ET
    root = ET.fromstring(xml_text)
    out = []
    for iface in root.iter("interface"):
        if iface.get("name") != IFACE:
            continue
        for m in iface.iter("method"):
            out.append((m.get("name"), [(a.get("name"), a.get("type"), a.get("direction", "in")) for a in m.iter("arg")]))
    return sorted(out)


def case_introspection(e):
    import dbus
    e.write_policy()
    e.start()
    live = dbus.Interface(e.bus().get_object(BUS_NAME, BUS_PATH), "org.freedesktop.DBus.Introspectable").Introspect()
    shipped = open(os.path.join(e.src, "dist", "org.keyward.Keyward1.xml")).read()
    a, b = interface_signature(str(live)), interface_signature(shipped)
    check(a and a == b, f"dist/org.keyward.Keyward1.xml differs from the daemon:\n{a}\n{b}")


# --- audit trail: rotation, retention, free space, disk full ------------------------------

def trail_files(e):
    d = os.path.dirname(e.audit)
    base = os.path.basename(e.audit)
    rotated = sorted(f for f in os.listdir(d) if re.fullmatch(re.escape(base) + r"\.\d{6,}", f))
    return [os.path.join(d, f) for f in rotated] + ([e.audit] if os.path.exists(e.audit) else [])


def trail_records(e):
    out = []
    for path in trail_files(e):
        with open(path) as f:
            out += [json.loads(l) for l in f if l.strip()]
    return out



# --- group commit (lib/audit.c): nothing answered before its record is durable ---------

def start_with_sync_shim(e):
    """keywardd whose fdatasync() (the trail's commit) waits while e.hold exists and fails
    while e.fail exists (tests/integration/daemon/sync-shim.c)."""
    shim = os.path.join(e.build, "tests", "integration", "keyward-test-syncshim.so")
    check(os.path.exists(shim), f"sync shim built: {shim}")
    e.hold = os.path.join(e.tmp, "sync-hold")
    e.fail = os.path.join(e.tmp, "sync-fail")
    preload = ":".join(x for x in (os.environ.get("LD_PRELOAD"), shim) if x)  # umockdev stays
    env = dict(os.environ, LD_PRELOAD=preload, KEYWARD_TEST_SYNC_HOLD=e.hold, KEYWARD_TEST_SYNC_FAIL=e.fail,
               KEYWARD_TEST_SYNC_MATCH=os.path.basename(e.audit))
    e.write_policy(rule_extra="user_presence = false;")
    export_vk(e)
    e.start(env=env)
    e.enroll()
    e.bed("touch-mode", "0", "auto", "0")


def async_authenticate(e, n=1):
    """Starts N Authenticate calls without waiting; returns (loop, results) where results
    fills with one reply (or error) per call as they come."""
    import dbus
    import dbus.bus
    from dbus.mainloop.glib import DBusGMainLoop
    from gi.repository import GLib
    conn = dbus.bus.BusConnection(os.environ["DBUS_SYSTEM_BUS_ADDRESS"], mainloop=DBusGMainLoop())
    m = dbus.Interface(conn.get_object(BUS_NAME, BUS_PATH), IFACE)
    results = []
    for _ in range(n):
        rfd, wfd = os.pipe()
        os.close(wfd)
        m.Authenticate("root", "sudo", "", "", dbus.types.UnixFd(rfd), dbus.Dictionary({}, signature="sv"),
                       reply_handler=lambda *r: results.append(("reply", r)),
                       error_handler=lambda x: results.append(("error", str(x))), timeout=60)
        os.close(rfd)
    conn.keyward_manager = m
    return GLib.MainContext.default(), results, conn


def pump_until(ctx, cond, secs=30):
    deadline = time.monotonic() + secs
    while not cond() and time.monotonic() < deadline:
        ctx.iteration(False)
        time.sleep(0.01)
    return cond()


def case_audit_commit_durable(e):
    start_with_sync_shim(e)
    before = len(e.audit_find(event="auth", result="success"))
    open(e.hold, "w").close()
    ctx, results, conn = async_authenticate(e)
    # The record is written (the key answered, the line is in the file) while its sync
    # waits: the login must not be answered yet.
    check(pump_until(ctx, lambda: len(e.audit_find(event="auth", result="success")) > before),
          "the login's record is written while the sync waits")
    # A call behind it on the same connection is answered (the loop does not wait for the
    # disk), and the daemon's messages to us keep their order: had the login been
    # answered, its reply would be here first.
    status = []
    conn.keyward_manager.GetStatus(reply_handler=lambda s: status.append(s),
                                   error_handler=lambda x: status.append(x))
    check(pump_until(ctx, lambda: status), "GetStatus answered while the sync waits")
    check(not results, f"no answer before the record is durable: {results}")
    os.unlink(e.hold)
    check(pump_until(ctx, lambda: results), "answered once the sync returned")
    kind, r = results[0]
    check(kind == "reply" and bool(r[0]) and str(r[1]) == "ok", f"granted after the commit: {results}")
    # several at once (within the key's timeout): all answered, the chain verifies
    ctx, results, conn = async_authenticate(e, 8)
    check(pump_until(ctx, lambda: len(results) == 8, 60), f"8 concurrent logins answered: {len(results)}")
    check(all(k == "reply" and bool(r[0]) for k, r in results), f"all granted: {results}")
    e.stop()
    verify_trail(e, strict=True)


def case_audit_commit_sync_fails(e):
    start_with_sync_shim(e)
    open(e.fail, "w").close()
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "audit-unavailable" and "audit trail" in a["message"]
          and a["token"] == "",
          f"a failed sync refuses the login it covers, with a clear message: {a}")
    check("could not be made durable" in e.log_text(), "the failed sync is logged")
    os.unlink(e.fail)
    a = e.authenticate()
    check(a["granted"], f"the trail is reopened with the next record: {a}")
    # the refusal reached the trail through the spool once it was back
    check(e.audit_find(event="auth", result="failure", reason="audit-unavailable"),
          "the refusal is in the trail (spooled while it failed)")
    e.stop()
    verify_trail(e)


def case_audit_commit_crash(e):
    e.write_policy(rule_extra="user_presence = false;")
    export_vk(e)
    e.start()
    e.enroll()
    e.bed("touch-mode", "0", "auto", "0")
    ctx, results, conn = async_authenticate(e, 40)
    check(pump_until(ctx, lambda: len(results) >= 10, 60), f"logins answered: {len(results)}")
    e.daemon.kill()  # kill -9 mid-flood
    e.daemon.wait()
    pump_until(ctx, lambda: len(results) == 40, 10)
    granted = sum(1 for k, r in results if k == "reply" and bool(r[0]))
    log(f"granted before the kill: {granted} of {len(results)} answers")
    check(granted >= 10, f"some logins granted before the kill: {results}")
    e.start()  # recovery at open: a torn tail is chained over
    e.stop()
    recorded = len(trail_find(e, event="auth", result="success"))
    check(recorded >= granted, f"every granted login is in the trail: {recorded} records, {granted} granted")
    verify_trail(e)


def case_auth_counter_recover(e):
    e.write_policy(rule_extra="user_presence = false;")
    e.start()
    e.enroll()
    e.bed("touch-mode", "0", "auto", "0")
    check(e.authenticate()["granted"], "first login")
    counters = os.path.join(e.state, "counters", "root")
    with open(counters) as f:
        first = f.read()
    check(e.authenticate()["granted"] and e.authenticate()["granted"], "two more logins")
    recs = e.audit_find(event="auth", result="success")
    check(recs and recs[-1].get("detail", "").startswith("sign-counter="),
          f"the login's record carries its sign counter: {recs[-1:]}")
    # A crash that lost the last counter writes (they have no sync of their own): kill -9,
    # and the counter file as it was after the first login.
    e.daemon.kill()
    e.daemon.wait()
    with open(counters, "w") as f:
        f.write(first)
    e.start()
    check("behind the audit trail" in e.log_text(), "the counter is recovered from the trail")
    # The key replays a counter below the last one the trail holds (above the stale file's).
    e.bed("counter-mode", "0", "rewound")
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "clone", f"a replayed lower counter is refused: {a}")

def trail_find(e, **kw):
    return [r for r in trail_records(e) if all(r.get(k) == v for k, v in kw.items())]


def verify_trail(e, strict=False):
    args = ["audit", "verify", "--verification-key", e.vk]
    if strict:
        args.append("--strict")
    r = e.ctl(*args, *trail_files(e), expect=None)
    check(r.returncode == 0 and "INTACT" in r.stdout.upper(), f"audit verify failed: {r.stdout}{r.stderr}")
    return r.stdout


def reload_n(e, n):
    for _ in range(n):
        e.manager().Reload()


def mount_small_tmpfs(e, size):
    """The trail's directory on a tmpfs of SIZE bytes, visible only in this mount namespace
    (run_case re-executes the case under `unshare -m`)."""
    d = os.path.dirname(e.audit)
    os.makedirs(d, exist_ok=True)
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0750", "keyward-audit-test", d], check=True)
    e.mounts.append(d)


def fill_disk(path, leave=0):
    """Writes PATH until the file system has LEAVE bytes free (0: until ENOSPC)."""
    st = os.statvfs(os.path.dirname(path))
    want = st.f_bavail * st.f_frsize - leave
    if not os.path.exists(path):
        open(path, "ab").close()  # before the file system is too full for a new inode
    chunk = b"x" * 4096
    with open(path, "ab", buffering=0) as f:
        written = 0
        while leave == 0 or written + len(chunk) <= want:
            try:
                written += f.write(chunk) - len(chunk)
            except OSError as x:
                check(x.errno == 28 and leave == 0, f"filling the disk: {x}")
                break
            written += len(chunk)
    if leave == 0:
        # the last partial page: single bytes until nothing fits
        with open(path, "ab", buffering=0) as f:
            try:
                while True:
                    f.write(b"x")
            except OSError as x:
                check(x.errno == 28, f"filling the disk: {x}")


def case_audit_rotate_reload(e):
    """A reload brings new rotation limits to the open trail: the chain goes on (no new
    genesis), files rotate at the new size, keep_files removes the oldest with a retention
    record, and verify passes on what is left. policy explain --audit shows the settings."""
    e.write_policy()
    export_vk(e)
    e.start()
    reload_n(e, 3)
    check(len(trail_files(e)) == 1, "rotated with the default 64M limit")
    e.write_policy(settings_extra='audit = { rotate_size = "4K"; keep_files = 2; seal_every = 4; };')
    r = e.ctl("policy", "explain", "-c", e.conf, "--audit")
    check("passes 4096 bytes" in r.stdout and "the newest 2" in r.stdout and "every 4 records" in r.stdout,
          f"explain --audit: {r.stdout}")
    reload_n(e, 40)
    files = trail_files(e)
    check(len(files) == 3, f"keep_files = 2: {files}")
    check(not os.path.exists(e.audit + ".000001"), "the oldest file was kept")
    ret = trail_find(e, event="retention", reason="retention")
    check(ret, "no retention record")
    for r in ret:
        names = r.get("detail", "").split(",")
        check(names and all(re.fullmatch(r"audit\.log\.\d{6}", n) for n in names), f"retention record: {r}")
        check(not any(os.path.exists(os.path.join(os.path.dirname(e.audit), n)) for n in names),
              f"a file named removed is still there: {r}")
    check(len(trail_find(e, event="rotate", reason="genesis")) == 0, "the genesis file should be gone")
    seals = [r for r in trail_records(e) if r.get("event") == "seal"]
    check(seals and all(r.get("every") == 4 for r in seals[-3:]), f"seal_every from the policy: {seals[-3:]}")
    out = verify_trail(e)
    check(re.search(r"file", out), out)
    # a malformed audit setting is rejected with file:line; the trail keeps its limits
    e.write_policy(settings_extra='audit = { rotate_size = "4 K"; };')
    r = e.ctl("policy", "check", "-c", e.conf, expect=1)
    check(re.search(re.escape(e.conf) + r":\d+: error: 'rotate_size'", r.stderr), r.stderr)
    e.daemon.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not trail_find(e, event="policy-load", reason="rejected"):
        time.sleep(0.05)
    check(trail_find(e, event="policy-load", reason="rejected"), "the bad policy was not rejected")


def case_audit_disk_full_deny(e):
    """disk_full_action = deny on a full tmpfs: the space_left alert comes first, then
    covered logins are refused with a message that says the disk is full; nothing
    written before is lost (verify passes) and logins work again once there is room."""
    mount_small_tmpfs(e, 256 * 1024)
    e.write_policy(settings_extra='audit = { space_left = "50%"; space_left_action = "alert"; '
                                  'admin_space_left = "10%"; disk_full_action = "deny"; };')
    export_vk(e)
    e.start()
    e.enroll()
    check(e.authenticate()["granted"], "login before the disk fills")
    check(not trail_find(e, event="space"), "a space alert with a nearly empty disk")
    filler = os.path.join(os.path.dirname(e.audit), "filler")
    fill_disk(filler, leave=80 * 1024)  # below space_left (50%), above admin_space_left
    check(e.authenticate()["granted"], "login below space_left")
    alerts = trail_find(e, event="space", reason="space_left")
    check(len(alerts) == 1 and alerts[0].get("action") == "alert", f"one space_left alert: {alerts}")
    check(e.authenticate()["granted"], "second login below space_left")
    check(len(trail_find(e, event="space", reason="space_left")) == 1, "alert repeated per record")
    fill_disk(filler + "1", leave=16 * 1024)  # below admin_space_left (10%)
    check(e.authenticate()["granted"], "login below admin_space_left")
    check(len(trail_find(e, event="space", reason="admin_space_left")) == 1, "one admin_space_left alert")
    before = trail_records(e)
    fill_disk(filler + "1")
    refused = None
    for _ in range(30):  # a few records may still fit in the trail's last page
        a = e.authenticate()
        if not a["granted"]:
            refused = a
            break
    check(refused and refused["reason"] == "audit-unavailable" and "full" in refused["message"],
          f"disk full, deny: {refused}")
    check("the file system is full (disk_full_action = deny)" in e.log_text(), "the daemon says why")
    after = trail_records(e)
    check(after[:len(before)] == before, "records written before the disk filled were changed or lost")
    verify_trail(e)
    # room again: logins are recorded and granted
    os.unlink(filler + "1")
    os.unlink(filler)
    a = e.authenticate()
    check(a["granted"], f"login after space was freed: {a}")
    check(trail_find(e, event="space", reason="recovered"), "no recovered record")
    verify_trail(e)


def case_audit_disk_full_rotate(e):
    """disk_full_action = rotate on a full tmpfs: the oldest sealed rotated files are
    removed (keep_min_files stays), a retention record names them, the login is granted
    and recorded, and the files left verify."""
    mount_small_tmpfs(e, 256 * 1024)
    e.write_policy(settings_extra='audit = { rotate_size = "4K"; keep_files = 0; keep_min_files = 2; '
                                  'space_left = "30%"; space_left_action = "alert"; admin_space_left = "5%"; '
                                  'disk_full_action = "rotate"; };')
    export_vk(e)
    e.start()
    e.enroll()
    reload_n(e, 60)
    rotated = trail_files(e)[:-1]
    check(len(rotated) >= 4, f"rotated files: {rotated}")
    filler = os.path.join(os.path.dirname(e.audit), "filler")
    fill_disk(filler, leave=50 * 1024)  # below space_left (30%)
    check(e.authenticate()["granted"], "login below space_left")
    check(len(trail_find(e, event="space", reason="space_left")) == 1, "one space_left alert")
    check(not trail_find(e, event="retention"), "files removed with space_left_action = alert")
    fill_disk(filler)
    granted = None
    for _ in range(30):
        a = e.authenticate()
        check(a["granted"], f"disk full with disk_full_action = rotate refused a login: {a}")
        ret = trail_find(e, event="retention", reason="disk_full")
        if ret:
            granted = a
            break
    check(granted, "no retention record for disk_full")
    check(not os.path.exists(rotated[0]), "the oldest rotated file is still there")
    left = trail_files(e)[:-1]
    check(len(left) >= 2, f"keep_min_files = 2: {left}")
    check(os.path.basename(rotated[0]) in ret[0].get("detail", ""), f"retention record names the file: {ret}")
    check(trail_find(e, event="auth", result="success"), "the login was not recorded")
    check(trail_find(e, event="space", reason="space_left"), "no space_left alert before the disk was full")
    alerts = [i for i, r in enumerate(trail_records(e)) if r.get("event") == "space"]
    rets = [i for i, r in enumerate(trail_records(e)) if r.get("event") == "retention"]
    check(alerts and rets and alerts[0] < rets[0], "the alert came after the removal")
    verify_trail(e)
    os.unlink(filler)  # room for the daemon-stop record



# --- security-key SSH keys (ImportSshKey, keywardctl ssh) ---------------------------

def ssh_keygen(e, name, kind="ecdsa-sk", comment=None, attest=False):
    """A key made by the real ssh-keygen (sk keys on the emulated key); its .pub path."""
    path = os.path.join(e.tmp, name)
    args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment or name, "-f", path]
    if attest:
        with open(path + ".chal", "wb") as f:
            f.write(os.urandom(32))
        args += ["-O", f"write-attestation={path}.att", "-O", f"challenge={path}.chal"]
    r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"ssh-keygen -t {kind}: {r.stderr}")
    return path + ".pub"


def ssh_fp(pub):
    r = subprocess.run(["ssh-keygen", "-lf", pub], capture_output=True, text=True, timeout=10)
    check(r.returncode == 0, f"ssh-keygen -lf: {r.stderr}")
    return r.stdout.split()[1]


def case_ssh_import(e):
    """keywardctl ssh import: every sk key of an authorized_keys file (options kept:
    verify-required → uv, no-touch-required → up=no), ordinary keys reported and
    skipped; stored as type=ssh-sk, listed with ssh-keygen's fingerprint, audited; never
    offered to a local key login; authorized-keys prints them for sshd."""
    import dbus
    e.write_policy(settings_extra="max_credentials_per_user = 3;")
    e.start()
    ec = ssh_keygen(e, "ec", comment="alice@laptop")
    ed = ssh_keygen(e, "ed", kind="ed25519-sk", comment="bob@desk")
    plain = ssh_keygen(e, "plain", kind="ed25519", comment="plain@laptop")
    ak = os.path.join(e.tmp, "authorized_keys")
    with open(ak, "w") as f:
        f.write("# keys\n")
        f.write('verify-required,from="10.0.0.0/8"\t' + open(ec).read().replace(" ", "\t", 1))  # tabs
        f.write(open(plain).read())
        f.write("no-touch-required " + open(ed).read().strip() + "\r\n")  # a CRLF line
    r = e.ctl("ssh", "import", "root", ak)
    check("skipped: ssh-ed25519 plain@laptop is an ordinary SSH key" in r.stderr, f"plain key reported: {r.stderr}")
    check(f"Imported alice@laptop for root: {ssh_fp(ec)}" in r.stdout, f"ecdsa-sk imported: {r.stdout}")
    check(f"Imported bob@desk for root: {ssh_fp(ed)}" in r.stdout, f"ed25519-sk imported: {r.stdout}")
    check("2 security-key SSH key(s) imported, 0 failed, 1 ordinary key(s) skipped" in r.stdout, r.stdout)
    text = open(os.path.join(e.creds, "root.creds")).read()
    check(text.count("type=ssh-sk") == 2 and "rp_id=ssh:" in text and "attestation=imported" in text, text)
    blocks = text.split("[credential]")
    alice = [b for b in blocks if "label=alice@laptop" in b][0]
    bob = [b for b in blocks if "label=bob@desk" in b][0]
    check("uv=yes" in alice and "up=yes" in alice and "alg=es256" in alice, alice)
    check("uv=no" in bob and "up=no" in bob and "alg=eddsa" in bob, bob)
    recs = e.audit_find(event="import", result="success", user="root", cred_label="alice@laptop")
    check(recs and recs[-1].get("detail") == ssh_fp(ec), f"import record names the fingerprint: {recs}")
    r = e.ctl("ssh", "list", "root")
    check(ssh_fp(ec) in r.stdout and ssh_fp(ed) in r.stdout and "ecdsa-sk" in r.stdout
          and "ed25519-sk" in r.stdout, r.stdout)
    r = e.ctl("list", "root")
    check(re.search(r"alice@laptop\s+ssh-sk\s+es256", r.stdout), f"list shows the type: {r.stdout}")
    # the same key again, a plain-only file, a garbage line, a full file
    r = e.ctl("ssh", "import", "root", ec, "--label", "again", expect=1)
    check("already registered" in r.stderr, r.stderr)
    check(e.ctl("ssh", "import", "root", plain, expect=1).stderr.count("no security-key SSH key") == 1, "plain only")
    bad = os.path.join(e.tmp, "bad.pub")
    with open(bad, "w") as f:
        f.write("sk-ecdsa-sha2-nistp256@openssh.com AAAAnotbase64!! x\n")
    check("not a valid SSH key line" in e.ctl("ssh", "import", "root", bad, expect=1).stderr, "garbage line")
    third = ssh_keygen(e, "third", comment="same")
    fourth = ssh_keygen(e, "fourth", comment="same")
    both = os.path.join(e.tmp, "both")
    with open(both, "w") as f:
        f.write(open(third).read() + open(fourth).read())
    r = e.ctl("ssh", "import", "root", both, expect=1)  # one fits under the maximum
    check("Imported same for root" in r.stdout and "labelled" not in r.stderr
          and "most credentials the policy allows (3)" in r.stderr, f"same comments: {r}")
    e.ctl("revoke", "root", "same")
    e.ctl("ssh", "import", "root", third, "--label", "third")
    r = e.ctl("ssh", "import", "root", fourth, "--label", "fourth", expect=1)
    check("most credentials the policy allows (3)" in r.stderr, r.stderr)
    # directly: an ordinary key is InvalidArgs with a sentence
    try:
        e.manager().ImportSshKey("root", "p", open(plain).read().strip(), dbus.ByteArray(b""), dbus.ByteArray(b""))
        raise Fail("ImportSshKey took an ordinary key")
    except dbus.exceptions.DBusException as x:
        check(x.get_dbus_name() == "org.keyward.Keyward1.Error.InvalidArgs" and "ordinary SSH key" in str(x), str(x))
    # sshd's AuthorizedKeysCommand: the keys, verify-required where uv, never no-touch-required
    r = e.ctl("-c", e.conf, "ssh", "authorized-keys", "root")
    lines = r.stdout.strip().split("\n")
    check(len(lines) == 3, r.stdout)
    check(lines[0] == "verify-required " + " ".join(open(ec).read().split()[:2]) + " keyward:alice@laptop", lines[0])
    check(lines[1] == " ".join(open(ed).read().split()[:2]) + " keyward:bob@desk", lines[1])
    check("no-touch-required" not in r.stdout, r.stdout)
    r = e.ctl("-c", e.conf, "ssh", "authorized-keys", "nobody")
    check(r.stdout == "", "nothing for a user without SSH keys")
    # a local key login never uses SSH keys
    a = e.authenticate()
    check(not a["granted"] and a["reason"] == "not-enrolled", f"local login with SSH keys only: {a}")
    c = e.manager().Check("root", "sudo", "", "")
    check(int(c[6]) == 0, f"Check counts no SSH key: {c}")
    # a corrupt file: authorized-keys fails closed
    with open(os.path.join(e.creds, "root.creds"), "a") as f:
        f.write("[credential]\nlabel=x\ntype=ssh-sk\n")
    r = e.ctl("-c", e.conf, "ssh", "authorized-keys", "root", expect=1)
    check(r.stdout == "" and "no key is allowed" in r.stderr, f"corrupt file: {r}")


def case_ssh_import_attestation(e):
    """With the attestation ssh-keygen wrote, an imported SSH key passes a rule that
    requires verified attestation (chain to the testbed's CA); without it, or with a
    tampered file or another challenge, it is refused and nothing is stored."""
    e.write_policy(rule_extra=verified_attestation(e))
    e.start()
    pub = ssh_keygen(e, "ec", comment="alice@laptop", attest=True)
    base = pub[:-4]
    r = e.ctl("ssh", "import", "root", pub, expect=1)
    check("requires verified attestation" in r.stderr and "--attestation" in r.stderr, r.stderr)
    check(e.audit_find(event="import", reason="attestation-refused", rule_name="root-sudo"), "refusal recorded")
    tampered = os.path.join(e.tmp, "tampered.att")
    data = bytearray(open(base + ".att", "rb").read())
    data[-20] ^= 1
    open(tampered, "wb").write(bytes(data))
    r = e.ctl("ssh", "import", "root", pub, "--attestation", tampered, "--challenge", base + ".chal", expect=1)
    check("attestation is refused" in r.stderr, r.stderr)
    other = os.path.join(e.tmp, "other.chal")
    open(other, "wb").write(os.urandom(32))
    r = e.ctl("ssh", "import", "root", pub, "--attestation", base + ".att", "--challenge", other, expect=1)
    check("attestation is refused" in r.stderr, r.stderr)
    check(not os.path.exists(os.path.join(e.creds, "root.creds")), "a refused key was stored")
    r = e.ctl("ssh", "import", "root", pub, "--attestation", base + ".att", "--challenge", base + ".chal")
    check("(attestation verified)" in r.stdout, r.stdout)
    text = open(os.path.join(e.creds, "root.creds")).read()
    check("attestation=verified" in text and f"aaguid={AAGUID}" in text and "type=ssh-sk" in text, text)
    recs = e.audit_find(event="import", result="success", user="root")
    check(recs and recs[-1].get("aaguid") == AAGUID, f"import record: {recs}")


def case_ssh_import_rules(e):
    """The AAGUID lists of the rules that would use the key apply to an attested SSH key;
    an unattested one passes only rules without an allow list. Only root and the admin
    group may import."""
    e.write_policy(rule_extra=f'aaguid_deny = ["{AAGUID}"];')
    e.start()
    pub = ssh_keygen(e, "ec", attest=True)
    base = pub[:-4]
    r = e.ctl("ssh", "import", "root", pub, "--attestation", base + ".att", "--challenge", base + ".chal", expect=1)
    check("does not allow this model" in r.stderr, r.stderr)
    check(e.audit_find(event="import", reason="aaguid-refused"), "aaguid refusal recorded")
    e.write_policy(rule_extra=f'aaguid_allow = ["{OTHER_AAGUID}"];')
    e.manager().Reload()
    r = e.ctl("ssh", "import", "root", pub, expect=1)
    check("aaguid_allow" in r.stderr, r.stderr)
    e.write_policy(rule_extra=f'aaguid_allow = ["{AAGUID}"];')
    e.manager().Reload()
    e.ctl("ssh", "import", "root", pub, "--attestation", base + ".att", "--challenge", base + ".chal")
    open_bus_for_others()
    second = ssh_keygen(e, "second")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", e.keywardctl, "ssh",
                        "import", "nobody", second], capture_output=True, text=True, timeout=30)
    check(r.returncode == 1 and "only allowed to root and members of the keyward admin group" in r.stderr,
          f"nobody imports: {r}")
    check(not os.path.exists(os.path.join(e.creds, "nobody.creds")), "nobody's import stored")


def run_case(args):
    if args.case in PRIVATE_MOUNT_CASES and not os.environ.get("KEYWARD_TEST_PRIVATE_MOUNTS"):
        # Our own mount namespace: the small tmpfs is seen by this case and its keywardd only.
        env = dict(os.environ, KEYWARD_TEST_PRIVATE_MOUNTS="1")
        return subprocess.run(["unshare", "-m", "--propagation", "private", "--", sys.executable,
                               os.path.abspath(__file__), "--build-dir", args.build_dir,
                               "--source-dir", args.source_dir, args.case], env=env).returncode
    e = Env(args)
    ok = False
    try:
        globals()["case_" + args.case.replace("-", "_")](e)
        e.stop()
        if args.case not in ("audit-unavailable", "policy-none-good"):
            # (in a rotated file when the stop record made the trail rotate)
            check(e.audit_find(event="daemon-stop") or trail_find(e, event="daemon-stop"),
                  "daemon-stop audited")
        ok = True
    except Fail as x:
        log(f"FAIL: {x}")
    finally:
        if not ok:
            log("--- keywardd log ---\n" + (e.log_text() if os.path.exists(e.daemon_log) else "(none)"))
        e.cleanup()
    log(f"{args.case}: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2:])
        return 0
    p = argparse.ArgumentParser()
    p.add_argument("--build-dir", required=True)
    p.add_argument("--source-dir", required=True)
    p.add_argument("case", choices=sorted(CASES))
    args = p.parse_args()
    if "KEYWARD_TESTBED_CTL" not in os.environ:
        testbed = os.path.join(os.path.abspath(args.build_dir), "tests", "keyward-testbed")
        conf = os.path.join(os.path.abspath(args.source_dir), "dist", "org.keyward.Keyward1.conf")
        for tool in ("setpriv", "openssl", "pamu2fcfg", "ssh-keygen"):
            if not shutil.which(tool):
                print(f"missing tool: {tool}", file=sys.stderr)
                return 1
        cmd = [testbed, "--aaguid", AAGUID, *CASES[args.case], "--bus", "--bus-policy", conf, "--",
               "/usr/bin/python3", os.path.abspath(__file__), "--build-dir", args.build_dir,
               "--source-dir", args.source_dir, args.case]
        return subprocess.run(cmd).returncode
    return run_case(args)


if __name__ == "__main__":
    sys.exit(main())
