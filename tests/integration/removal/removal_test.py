#!/usr/bin/python3
"""removal_test.py: key removal ends the access it granted (issue #5), one case per run.

    removal_test.py --build-dir B --source-dir S CASE

re-executes itself under `keyward-testbed --bus` (emulated keys, a private system bus
loading dist/org.keyward.Keyward1.conf, the logind stand-in tests/virtkey/logind_extra.py),
starts keywardd from the build dir with a temporary policy, authenticates and binds
sessions over D-Bus as root (Authenticate + BindSession), pulls keys with
`keyward-testbed ctl`, and asserts on what the logind stand-in received (dbusmock's
GetMethodCalls) and on the audit records on disk. Never skips: a missing tool fails.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUS_NAME = "org.keyward.Keyward1"
BUS_PATH = "/org/keyward/Keyward1"
IFACE = "org.keyward.Keyward1.Manager"
LOGIND = "org.freedesktop.login1"
LOGIND_PATH = "/org/freedesktop/login1"
MOCK_IFACE = "org.freedesktop.DBus.Mock"

# case -> number of emulated keys
CASES = {
    "lock-verified": 2,
    "lock-escalated": 1,
    "lock-not-kept": 1,
    "decision-in-flight": 1,
    "lock-alert": 1,
    "tty-cannot-lock": 1,
    "terminate": 1,
    "unrelated-keys": 3,
    "two-sessions": 1,
    "grace-same-key": 1,
    "grace-other-key": 2,
    "elevation": 1,
    "elevation-sigkill": 1,
    "token-replay": 1,
    "restart-sigkill": 1,
    "missing-at-start": 1,
    "grace-across-restart": 1,
    "prune": 1,
    "unbind": 1,
    "bind-limits": 1,
    "bad-binding-files": 1,
    "corrupt-binding-acts": 1,
    "bind-session-check": 1,
    "bind-logind-silent": 1,
    "pam-session": 1,
    "outcome-gone": 1,
    "outcome-survived": 1,
    "outcome-interrupted": 1,
}


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def log(msg):
    print(msg, flush=True)


def wait_for(pred, what, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise Fail(f"timed out after {timeout}s waiting for {what}")


class Env:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build_dir)
        self.src = os.path.abspath(args.source_dir)
        self.keywardd = os.path.join(self.build, "daemon", "keywardd")
        self.keywardctl = os.path.join(self.build, "tools", "keywardctl")
        self.testbed = os.path.join(self.build, "tests", "keyward-testbed")
        self.tmp = tempfile.mkdtemp(prefix="keyward-removal-test-")
        os.chmod(self.tmp, 0o755)
        self.creds = os.path.join(self.tmp, "creds")
        self.state = os.path.join(self.tmp, "state")
        self.run = os.path.join(self.tmp, "run")
        self.audit = os.path.join(self.tmp, "log", "audit.log")
        self.conf = os.path.join(self.tmp, "keyward.conf")
        os.mkdir(self.creds, 0o755)
        self.daemon = None
        self.wrapper = []  # runs keywardd (e.g. setpriv dropping a capability)
        self.daemon_log = os.path.join(self.tmp, "keywardd.log")
        self._bus = None
        self.children = []

    def write_policy(self, removal='action = "lock"; grace = 0; lock_verify = 1500; on_lock_failure = "terminate";',
                     settings_extra="", name="bench"):
        text = f"""
settings = {{
	rp_id = "pam://keyward";
	timeout = 3000;
	credentials_dir = "{self.creds}";
	state_dir = "{self.state}";
	runtime_dir = "{self.run}";
	audit_log = "{self.audit}";
	{settings_extra}
}};
rules = (
	{{
		name = "{name}";
		match = {{ users = ["root", "nobody"]; }};
		require = "key";
		user_verification = "discouraged";
		removal = {{ {removal} }};
	}}
);
default = {{ require = "none"; }};
"""
        with open(self.conf, "w") as f:
            f.write(text)
        os.chmod(self.conf, 0o644)

    def start(self):
        # the forward-secure seal key is set up before the first start, and its
        # verification key kept (off the machine, in real life) to verify the trail at the end
        self.vk = os.path.join(self.tmp, "verification.key")
        if not os.path.exists(os.path.join(self.state, "audit-seal.key")):
            r = subprocess.run([self.keywardctl, "-c", self.conf, "audit", "setup-keys", "--output", self.vk],
                               capture_output=True, text=True)
            check(r.returncode == 0, f"audit setup-keys: {r.stdout}{r.stderr}")
        out = open(self.daemon_log, "a")
        # KEYWARD_REMOVAL_DAEMON_WRAPPER, e.g. "valgrind --error-exitcode=99 --leak-check=full":
        # a manual check run; the daemon's reports land in its log
        wrapper = self.wrapper + os.environ.get("KEYWARD_REMOVAL_DAEMON_WRAPPER", "").split()
        self.daemon = subprocess.Popen(wrapper + [self.keywardd, "-v", "-c", self.conf], stdout=out, stderr=out)
        deadline = time.monotonic() + (60 if wrapper else 10)
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise Fail("keywardd exited at start:\n" + self.log_text())
            if self.name_owned():
                return
            time.sleep(0.05)
        raise Fail("keywardd did not take its bus name:\n" + self.log_text())

    def kill9(self):
        self.daemon.send_signal(signal.SIGKILL)
        self.daemon.wait()
        check(self.daemon.returncode == -signal.SIGKILL, "keywardd was not killed by SIGKILL")
        wait_for(lambda: not self.name_owned(), "the bus name to be released")

    def name_owned(self):
        return bool(self.bus().name_has_owner(BUS_NAME))

    def stop(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
                raise Fail("keywardd did not stop on SIGTERM")
            check(self.daemon.returncode == 0, f"keywardd exit code {self.daemon.returncode}: {self.log_text()[-3000:]}")

    def log_text(self):
        with open(self.daemon_log) as f:
            return f.read()

    def audit_records(self):
        if not os.path.exists(self.audit):
            return []
        with open(self.audit) as f:
            return [json.loads(l) for l in f if l.strip()]

    def outcome(self, session, expect, timeout=10.0):
        """Waits for the outcome record of the removal action about SESSION and checks it:
        exactly one, naming the action's first record by action_seq, saying EXPECT."""
        rec = self.wait_audit(f"outcome of {session}", timeout, event="outcome", session=session)
        time.sleep(0.2)  # a second (wrong) outcome would follow at once
        recs = self.audit_find(event="outcome", session=session)
        acts = self.audit_find(event="action", session=session)
        check(len(recs) == 1, f"not exactly one outcome for {session}: {recs}")
        check(acts and recs[0].get("action_seq") == acts[0]["seq"],
              f"the outcome does not name the action's record: {recs} / {acts}")
        check(recs[0]["reason"] == expect, f"outcome of {session}: {recs[0]} (expected {expect})")
        check(recs[0]["result"] == ("failure" if expect in ("failed", "interrupted") else "success"),
              f"outcome result: {recs[0]}")
        return recs[0]

    def audit_find(self, **kw):
        return [r for r in self.audit_records() if all(r.get(k) == v for k, v in kw.items())]

    def wait_audit(self, what, timeout=10.0, **kw):
        return wait_for(lambda: self.audit_find(**kw), f"audit record {what} {kw}", timeout)

    # --- keys ---
    def bed(self, *args):
        r = subprocess.run([self.testbed, "ctl", "-", *args], capture_output=True, text=True, timeout=20)
        check(r.returncode == 0, f"testbed ctl {args}: {r.stderr}")
        return r.stdout

    def keys(self):
        out = {}
        for line in self.bed("list").splitlines():
            f = line.split()
            out[int(f[0])] = {"node": f[1], "syspath": f[2], "state": f[3]}
        return out

    def enroll(self, user, key):
        node = self.keys()[key]["node"]
        r = subprocess.run([self.keywardctl, "enroll", user, "--device", node, "--label", f"{user}-key{key}"],
                           capture_output=True, text=True, timeout=60)
        log(f"$ keywardctl enroll {user} --device {node} -> {r.returncode}\n{r.stdout}{r.stderr}")
        check(r.returncode == 0, f"enroll {user} on key {key}: {r.stderr}")

    # --- bus ---
    def bus(self):
        import dbus
        if self._bus is None:
            self._bus = dbus.SystemBus()
        return self._bus

    def manager(self):
        import dbus
        return dbus.Interface(self.bus().get_object(BUS_NAME, BUS_PATH), IFACE)

    def logind_mock(self, path=LOGIND_PATH):
        import dbus
        return dbus.Interface(self.bus().get_object(LOGIND, path), MOCK_IFACE)

    def add_session(self, sid, uid=0, user="root", session_type=None):
        import dbus
        path = str(self.logind_mock().AddSession(sid, "seat0", dbus.UInt32(uid), user, True))
        if session_type:
            self.logind_mock(path).UpdateProperties("org.freedesktop.login1.Session",
                                                    {"Type": dbus.String(session_type)})
        return path

    def in_session(self, sid):
        """logind (the stand-in) places this process, and so its children, in session sid
        (None: in no session), as pam_systemd does for the PAM application of a login."""
        import dbus
        self.logind_mock().SetSessionByPID(dbus.UInt32(os.getpid()), sid or "")

    def calls(self, path, method):
        """Calls logind received: the manager's from dbusmock's GetMethodCalls; a session's
        Lock from the stand-in's log (the Session.Lock call emits "Lock" on that object),
        which outlives a terminated session's object."""
        if path == LOGIND_PATH:
            return [c for c in self.logind_mock(path).GetMethodCalls(method)]
        check(method == "Lock", f"calls({method}) on a session")
        with open(os.environ["KEYWARD_TESTBED_LOGIND_LOG"]) as f:
            return [l for l in f if l.split()[1:4] == ["emit", path, "org.freedesktop.login1.Session.Lock"]]

    def set_locked_hint(self, path, value=True):
        import dbus
        obj = dbus.Interface(self.bus().get_object(LOGIND, path), "org.freedesktop.login1.Session")
        obj.SetLockedHint(value)

    def authenticate(self, user="root", service="login"):
        import dbus
        rfd, wfd = os.pipe()
        os.close(wfd)
        try:
            reply = self.manager().Authenticate(user, service, "", "", dbus.types.UnixFd(rfd),
                                                dbus.Dictionary({}, signature="sv"), timeout=30)
        finally:
            os.close(rfd)
        granted, reason, token, device = bool(reply[0]), str(reply[1]), str(reply[3]), str(reply[5])
        log(f"Authenticate({user},{service}) -> {granted} {reason} device={device}")
        check(granted, f"authentication of {user} failed: {reason} {reply[2]}")
        return token, device

    def bind(self, session="", pid=0, user="root", service="login"):
        import dbus
        token, device = self.authenticate(user, service)
        if session:
            self.in_session(session)  # BindSession checks that the caller is in it
        bid = str(self.manager().BindSession(token, session, dbus.UInt32(pid), service, "", user))
        log(f"BindSession({session or 'pid:%d' % pid}) -> {bid} on {device}")
        return bid, device

    def status(self):
        return {str(k): v for k, v in self.manager().GetStatus().items()}

    def binding_files(self):
        d = os.path.join(self.run, "bindings")
        return sorted(f for f in os.listdir(d) if len(f) == 32) if os.path.isdir(d) else []

    def cleanup(self):
        try:
            self.stop()
        finally:
            for p in self.children:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            shutil.rmtree(self.tmp, ignore_errors=True)


def nothing_for(e, seconds, paths):
    """Waits SECONDS and asserts that no Lock/Terminate reached PATHS or the manager."""
    time.sleep(seconds)
    for p in paths:
        check(not e.calls(p, "Lock"), f"unexpected Lock on {p}")
    check(not e.calls(LOGIND_PATH, "TerminateSession"), "unexpected TerminateSession")


# --- cases ------------------------------------------------------------------------------

def case_lock_verified(e):
    e.write_policy()
    e.start()
    e.enroll("root", 0)
    p1 = e.add_session("s1")
    p2 = e.add_session("s2")
    e.bind("s1")
    t0 = time.monotonic()
    e.bed("unplug", "0")
    wait_for(lambda: e.calls(p1, "Lock"), "Lock on s1")
    log(f"Lock arrived {1000 * (time.monotonic() - t0):.1f} ms after the unplug request")
    e.wait_audit("action", event="action", action="lock", result="success", session="s1", reason="lock-requested")
    e.set_locked_hint(p1)
    e.wait_audit("lock-verified", event="lock-verified", result="success", session="s1")
    rem = e.audit_find(event="key-removed")
    check(len(rem) == 1 and rem[0]["result"] == "success" and rem[0]["reason"] == "removed", f"key-removed: {rem}")
    check(not e.calls(p2, "Lock"), "s2 was locked too")
    check(not e.calls(LOGIND_PATH, "TerminateSession"), "a verified lock was escalated")
    check(not e.audit_find(event="lock-escalated"), "escalation recorded")
    e.outcome("s1", "verified")
    # key 1 was never bound: pulling it does nothing
    e.bed("unplug", "1")
    nothing_for(e, 0.5, [p2])
    check(len(e.calls(p1, "Lock")) == 1, "s1 locked twice")


def lock_on_unplug(e, removal):
    """Policy with these removal settings, root's session s1 bound to key 0, key 0
    pulled: returns s1's object path once logind was asked to lock it."""
    e.write_policy(removal)
    e.start()
    e.enroll("root", 0)
    p1 = e.add_session("s1")
    e.bind("s1")
    e.bed("unplug", "0")
    wait_for(lambda: e.calls(p1, "Lock"), "Lock on s1")
    return p1


def case_lock_escalated(e):
    lock_on_unplug(e, 'action = "lock"; lock_verify = 400; on_lock_failure = "terminate";')
    rec = e.wait_audit("lock-escalated", event="lock-escalated", session="s1")
    check(rec[0]["result"] == "success" and rec[0]["reason"] == "terminated", f"escalation: {rec}")
    term = e.calls(LOGIND_PATH, "TerminateSession")
    check(len(term) == 1 and str(term[0][1][0]) == "s1", f"TerminateSession calls: {term}")
    check(not e.audit_find(event="lock-verified"), "lock recorded as verified")
    e.wait_audit("unbind", event="session-unbind", session="s1", reason="session-terminated")
    check(e.binding_files() == [], "binding file left after termination")
    e.outcome("s1", "escalated")


def case_lock_not_kept(e):
    # A locker that sets LockedHint and drops it again (crashed, could not grab the screen)
    # has not locked anything: the lock counts only if the hint is still true when
    # lock_verify ends.
    p1 = lock_on_unplug(e, 'action = "lock"; lock_verify = 1500; on_lock_failure = "terminate";')
    e.set_locked_hint(p1, True)
    time.sleep(0.3)
    e.set_locked_hint(p1, False)
    rec = e.wait_audit("lock-escalated", event="lock-escalated", session="s1")
    check(rec[0]["result"] == "success" and rec[0]["reason"] == "terminated", f"escalation: {rec}")
    check(not e.audit_find(event="lock-verified"), "a lock that was dropped recorded as verified")
    check("did not hold" in rec[0].get("message", ""), f"the record does not say the lock did not hold: {rec}")
    check("did not stay true" in e.log_text(), "the daemon log does not say LockedHint was dropped")


def case_decision_in_flight(e):
    # One decision per login: a stricter policy loaded between Authenticate and
    # BindSession does not change the login in flight (its binding keeps the rule, the
    # removal action and the policy digest it was authenticated under); the next login
    # gets the new policy.
    import dbus
    e.write_policy('action = "lock"; lock_verify = 1500; on_lock_failure = "terminate";')
    e.start()
    e.enroll("root", 0)
    p1 = e.add_session("s1")
    p2 = e.add_session("s2")
    old = e.wait_audit("policy-load", event="policy-load", result="success")[-1]["detail"]
    token, _ = e.authenticate("root", "login")
    e.write_policy('action = "terminate";', name="bench-strict")
    e.manager().Reload()
    new = e.audit_find(event="policy-load", result="success")[-1]["detail"]
    check(new != old, f"the stricter policy was not loaded: {old} / {new}")
    e.in_session("s1")
    e.manager().BindSession(token, "s1", dbus.UInt32(0), "login", "", "root")
    b1 = e.wait_audit("bind s1", event="session-bind", result="success", session="s1")[0]
    check(b1.get("action") == "lock" and b1.get("rule_name") == "bench" and b1.get("policy") == old,
          f"the login in flight did not keep its decision: {b1}")
    e.bind("s2")
    b2 = e.wait_audit("bind s2", event="session-bind", result="success", session="s2")[0]
    check(b2.get("action") == "terminate" and b2.get("rule_name") == "bench-strict" and b2.get("policy") == new,
          f"the next login did not get the new policy: {b2}")
    auth = e.audit_find(event="auth", result="success")
    check([a.get("rule_name") for a in auth] == ["bench", "bench-strict"]
          and [a.get("policy") for a in auth] == [old, new], f"auth records: {auth}")
    e.bed("unplug", "0")
    wait_for(lambda: e.calls(p1, "Lock"), "Lock on s1 (its decision: lock)")
    wait_for(lambda: [c for c in e.calls(LOGIND_PATH, "TerminateSession") if str(c[1][0]) == "s2"],
             "TerminateSession of s2 (its decision: terminate)")
    check(not e.calls(p2, "Lock"), "s2 was locked: it got the old decision")
    lock = e.wait_audit("lock s1", event="action", session="s1", reason="lock-requested")[0]
    check(lock.get("rule_name") == "bench" and lock.get("policy") == old, f"removal record: {lock}")


def case_lock_alert(e):
    lock_on_unplug(e, 'action = "lock"; lock_verify = 300; on_lock_failure = "alert";')
    rec = e.wait_audit("lock-failed", event="lock-failed", session="s1")
    check(rec[0]["result"] == "failure" and rec[0]["reason"] == "not-locked" and rec[0]["detail"] == "alert",
          f"lock-failed: {rec}")
    nothing_for(e, 0.3, [])
    check("is NOT locked" in e.log_text(), "no alert in the daemon log")
    check(e.outcome("s1", "failed")["detail"] == "not-locked", "the failed outcome names its cause")


def case_tty_cannot_lock(e):
    e.write_policy('action = "lock"; lock_verify = 20000; on_lock_failure = "terminate";')
    e.start()
    e.enroll("root", 0)
    p1 = e.add_session("c1", session_type="tty")
    e.bind("c1")
    wait_for(lambda: "session_type=tty" in "".join(open(os.path.join(e.run, "bindings", f)).read()
                                                    for f in e.binding_files()), "the session type to be recorded")
    t0 = time.monotonic()
    e.bed("unplug", "0")
    rec = e.wait_audit("lock-escalated", event="lock-escalated", session="c1", timeout=15)
    check(time.monotonic() - t0 < 15, "a text console waited for lock_verify")
    check(not e.calls(p1, "Lock"), "Lock sent to a text console")
    check(e.audit_find(event="action", reason="cannot-lock", session="c1"), "cannot-lock not recorded")
    check(rec[0]["result"] == "success", f"{rec}")


def case_terminate(e):
    e.write_policy('action = "terminate";')
    e.start()
    e.enroll("root", 0)
    p1 = e.add_session("s1")
    e.bind("s1")
    e.bed("unplug", "0")
    rec = e.wait_audit("action", event="action", session="s1", action="terminate")
    check(rec[0]["result"] == "success", f"{rec}")
    check(not e.calls(p1, "Lock"), "Lock sent for a terminate action")
    term = e.calls(LOGIND_PATH, "TerminateSession")
    check(len(term) == 1 and str(term[0][1][0]) == "s1", f"{term}")
    e.outcome("s1", "done")


def case_unrelated_keys(e):
    e.write_policy()
    e.start()
    e.enroll("root", 0)
    e.enroll("nobody", 1)
    p1 = e.add_session("s1")
    p2 = e.add_session("s2", uid=65534, user="nobody")
    e.bind("s1")
    e.bind("s2", user="nobody")
    e.bed("unplug", "2")  # nobody's key at all
    nothing_for(e, 1.0, [p1, p2])
    check(not e.audit_find(event="key-removed"), "an unbound key was recorded as a removal")
    e.bed("unplug", "1")  # another user's key
    wait_for(lambda: e.calls(p2, "Lock"), "Lock on nobody's session")
    time.sleep(0.5)
    check(not e.calls(p1, "Lock"), "root's session was locked by nobody's key")
    check(e.audit_find(event="action", session="s2", user="nobody"), "nobody's action not recorded")
    check(not e.audit_find(event="action", session="s1"), "root's session acted")


def case_two_sessions(e):
    e.write_policy()
    e.start()
    e.enroll("root", 0)
    p1 = e.add_session("s1")
    p2 = e.add_session("s2")
    p3 = e.add_session("s3")
    e.bind("s1")
    e.bind("s2")
    e.bed("unplug", "0")
    wait_for(lambda: e.calls(p1, "Lock") and e.calls(p2, "Lock"), "Lock on s1 and s2")
    rec = e.wait_audit("key-removed", event="key-removed")
    check(rec[0]["detail"].startswith("2 binding(s)"), f"{rec}")
    check(not e.calls(p3, "Lock"), "an unbound session was locked")


def case_grace_same_key(e):
    e.write_policy('action = "lock"; grace = 6000; lock_verify = 1000; on_lock_failure = "terminate";')
    e.start()
    e.enroll("root", 0)
    p1 = e.add_session("s1")
    e.bind("s1")
    old = e.keys()[0]["syspath"]
    e.bed("unplug", "0")
    e.wait_audit("key-removed", event="key-removed")
    e.bed("plug", "0")
    new = e.keys()[0]["syspath"]
    check(new != old, "the re-plugged key kept its sysfs path; the test would prove nothing")
    rec = e.wait_audit("grace-cancelled", event="grace-cancelled", session="s1")
    check(rec[0]["result"] == "success" and rec[0]["device"] == new, f"{rec}")
    nothing_for(e, 6.5, [p1])
    check(not e.audit_find(event="action"), "an action ran although the key came back")
    # the binding follows the key to its new device: pulling it again acts
    e.bed("unplug", "0")
    e.wait_audit("second key-removed", event="key-removed", device=new)
    wait_for(lambda: e.calls(p1, "Lock"), "Lock on s1 after the grace period", timeout=12)


def case_grace_other_key(e):
    e.write_policy('action = "lock"; grace = 4000; lock_verify = 500; on_lock_failure = "alert";')
    e.start()
    e.enroll("root", 0)
    e.bed("unplug", "1")  # a key that holds nothing of root's, plugged in later
    p1 = e.add_session("s1")
    e.bind("s1")
    t0 = time.monotonic()
    e.bed("unplug", "0")
    e.wait_audit("key-removed", event="key-removed")
    e.bed("plug", "1")
    rec = e.wait_audit("key-added", event="key-added", session="s1")
    check(rec[0]["result"] == "failure" and rec[0]["reason"] == "not-the-bound-key", f"{rec}")
    wait_for(lambda: e.calls(p1, "Lock"), "Lock on s1 once the grace period ends", timeout=12)
    dt = time.monotonic() - t0
    check(dt >= 3.9, f"the action ran before the grace period ended ({dt:.2f}s)")
    check(not e.audit_find(event="grace-cancelled"), "a different key cancelled the grace period")


def spawn_elevation(e):
    # a sudo-style elevated command: its own process group
    p = subprocess.Popen(["sleep", "300"], start_new_session=True)
    e.children.append(p)
    return p


def case_elevation(e):
    e.write_policy('action = "end-elevation";')
    e.start()
    e.enroll("root", 0)
    p1 = e.add_session("s1")
    proc = spawn_elevation(e)
    # pam_keyward also names the desktop session sudo runs in: still only sudo ends
    proc2 = spawn_elevation(e)
    bystander = spawn_elevation(e)
    e.bind("", pid=proc.pid, service="sudo")
    e.bind("s1", pid=proc2.pid, service="sudo")
    e.bed("unplug", "0")
    wait_for(lambda: proc.poll() is not None, "the elevated process to end", timeout=5)
    check(proc.returncode in (-signal.SIGTERM, -signal.SIGHUP), f"elevated process ended with {proc.returncode}")
    wait_for(lambda: proc2.poll() is not None, "the elevated process in s1 to end", timeout=5)
    e.wait_audit("action", event="action", session="s1", action="end-elevation", result="success")
    rec = e.wait_audit("action", event="action", session=f"pid:{proc.pid}", action="end-elevation")
    check(rec[0]["result"] == "success" and rec[0]["reason"] == "ended", f"{rec}")
    check(bystander.poll() is None, "an unrelated process was ended")
    check(e.daemon.poll() is None, "keywardd ended itself")
    check(not e.calls(p1, "Lock"), "the desktop session was locked for an elevation")


def case_elevation_sigkill(e):
    e.write_policy('action = "end-elevation";')
    e.start()
    e.enroll("root", 0)
    # an elevated shell that ignores SIGTERM and SIGHUP
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM HUP; while :; do sleep 0.2; done"], start_new_session=True)
    e.children.append(proc)
    time.sleep(0.2)
    e.bind("", pid=proc.pid, service="sudo")
    t0 = time.monotonic()
    e.bed("unplug", "0")
    wait_for(lambda: proc.poll() is not None, "the elevated shell to be killed", timeout=6)
    dt = time.monotonic() - t0
    check(proc.returncode == -signal.SIGKILL, f"ended with {proc.returncode}")
    check(dt >= 1.3, f"SIGKILL came before the SIGTERM grace ({dt:.2f}s)")
    rec = e.wait_audit("action", event="action", session=f"pid:{proc.pid}", action="end-elevation")
    check(rec[0]["result"] == "success" and rec[0]["reason"] == "killed", f"{rec}")
    e.outcome(f"pid:{proc.pid}", "done")


def case_outcome_gone(e):
    # the elevated command ended before the key was pulled: the target is already gone
    e.write_policy('action = "end-elevation";')
    e.start()
    e.enroll("root", 0)
    proc = spawn_elevation(e)
    e.bind("", pid=proc.pid, service="sudo")
    proc.kill()
    proc.wait()
    e.bed("unplug", "0")
    rec = e.wait_audit("action", event="action", session=f"pid:{proc.pid}", action="end-elevation")
    check(rec[0]["reason"] == "already-ended", f"{rec}")
    e.outcome(f"pid:{proc.pid}", "gone")


def case_outcome_survived(e):
    # processes keywardd cannot end: it runs without CAP_KILL, the elevated command as
    # another user. SIGTERM, then SIGKILL, and it still runs: the action failed.
    e.wrapper = ["setpriv", "--bounding-set=-kill", "--inh-caps=-kill"]
    e.write_policy('action = "end-elevation";')
    e.start()
    e.enroll("root", 0)
    proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "300"],
                            start_new_session=True)
    e.children.append(proc)
    time.sleep(0.2)
    e.bind("", pid=proc.pid, service="sudo")
    e.bed("unplug", "0")
    rec = e.outcome(f"pid:{proc.pid}", "failed", timeout=15)
    check(rec["detail"] == "survived" and rec["message"].startswith("end-elevation: 1 process"), f"{rec}")
    check(proc.poll() is None, "the process ended although keywardd could not signal it")
    check("survive" in e.log_text(), "the daemon log does not say the processes survived")
    # the report lists it before its summaries, as failed
    r = subprocess.run([e.keywardctl, "report", "--format", "json", "--audit", e.audit], capture_output=True, text=True)
    att = json.loads(r.stdout)["attention"]
    check([(a["session"], a["outcome"]) for a in att] == [(f"pid:{proc.pid}", "failed")], f"report: {att}")


def case_outcome_interrupted(e):
    # keywardd dies while verifying a lock: the next start concludes that action as
    # interrupted (the binding file kept its action_seq), then acts again
    p1 = lock_on_unplug(e, 'action = "lock"; lock_verify = 3000; on_lock_failure = "terminate";')
    act = e.wait_audit("action", event="action", session="s1", reason="lock-requested")[0]
    wait_for(lambda: any("action_seq=%d" % act["seq"] in open(os.path.join(e.run, "bindings", f)).read()
                         for f in e.binding_files()), "the pending action in the binding file")
    e.kill9()
    check(not e.audit_find(event="outcome"), "an outcome before the restart")
    e.start()
    rec = e.wait_audit("interrupted", event="outcome", session="s1", reason="interrupted")
    check(len(rec) == 1 and rec[0]["action_seq"] == act["seq"] and rec[0]["result"] == "failure", f"{rec}")
    # the key is still gone: the lock runs again, with an outcome of its own
    wait_for(lambda: len(e.calls(p1, "Lock")) == 2, "Lock on s1 again after the restart")
    e.set_locked_hint(p1)
    e.wait_audit("verified", timeout=15, event="outcome", session="s1", reason="verified")
    outs = e.audit_find(event="outcome", session="s1")
    acts = [a["seq"] for a in e.audit_find(event="action", session="s1", reason="lock-requested")]
    check([o["reason"] for o in outs] == ["interrupted", "verified"] and len(acts) == 2
          and [o["action_seq"] for o in outs] == acts, f"outcomes {outs} / actions {acts}")
    # the file is rewritten (state=done, no action pending) right after the outcome record
    wait_for(lambda: not any("action_seq=" in open(os.path.join(e.run, "bindings", f)).read()
                             for f in e.binding_files()), "the binding file to drop the pending action")


def case_restart_sigkill(e):
    e.write_policy()
    e.start()
    e.enroll("root", 0)
    p1 = e.add_session("s1")
    bid, _ = e.bind("s1")
    check(e.binding_files() == [bid], f"binding file: {e.binding_files()}")
    e.kill9()
    e.start()
    check(int(e.status()["bindings"]) == 1, "the binding was not reloaded")
    e.bed("unplug", "0")
    wait_for(lambda: e.calls(p1, "Lock"), "Lock on s1 after the restart")
    e.set_locked_hint(p1)
    e.wait_audit("lock-verified", event="lock-verified", session="s1")


def case_missing_at_start(e):
    e.write_policy()
    e.start()
    e.enroll("root", 0)
    p1 = e.add_session("s1")
    e.bind("s1")
    e.kill9()
    e.bed("unplug", "0")
    time.sleep(0.3)
    check(not e.calls(p1, "Lock"), "Lock without a daemon?")
    e.start()
    wait_for(lambda: e.calls(p1, "Lock"), "Lock on s1 for a key gone while the daemon was down")
    rec = e.wait_audit("key-removed", event="key-removed", reason="missing-at-start")
    check(rec[0]["result"] == "success", f"{rec}")


def case_grace_across_restart(e):
    # the key is pulled and put back while keywardd is down: at start the binding's device
    # is missing, the grace period starts, and the present key proves to be the same one
    e.write_policy('action = "lock"; grace = 5000; lock_verify = 500; on_lock_failure = "terminate";')
    e.start()
    e.enroll("root", 0)
    p1 = e.add_session("s1")
    e.bind("s1")
    e.kill9()
    e.bed("unplug", "0")
    e.bed("plug", "0")
    new = e.keys()[0]["syspath"]
    e.start()
    e.wait_audit("key-removed at start", event="key-removed", reason="missing-at-start")
    rec = e.wait_audit("grace-cancelled", event="grace-cancelled", session="s1")
    check(rec[0]["device"] == new, f"{rec}")
    nothing_for(e, 5.5, [p1])


def case_prune(e):
    import dbus
    e.write_policy()
    e.start()
    e.enroll("root", 0)
    e.add_session("s1")
    p2 = e.add_session("s2")
    proc = spawn_elevation(e)
    e.bind("s1")
    e.bind("s2")
    e.bind("", pid=proc.pid, service="sudo")
    check(len(e.binding_files()) == 3, "three binding files")
    e.kill9()
    # while the daemon is down: s1 ends, the elevated process ends
    dbus.Interface(e.bus().get_object(LOGIND, LOGIND_PATH), "org.freedesktop.login1.Manager").TerminateSession("s1")
    proc.kill()
    proc.wait()
    # and an elevation whose pid now names another process (this one: alive, but with
    # another start time than the one recorded)
    d = os.path.join(e.run, "bindings")
    src = next(f for f in e.binding_files() if f"pid={proc.pid}\n" in open(os.path.join(d, f)).read())
    text = open(os.path.join(d, src)).read().replace(f"pid={proc.pid}\n", f"pid={os.getpid()}\n")
    text = "".join(l if not l.startswith("pid_start=") else "pid_start=1\n" for l in text.splitlines(True))
    reused = "9" * 32
    with open(os.open(os.path.join(d, reused), os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(text)
    # and 40 sessions logind has never heard of (more than keywardd asks about at once)
    s2file = next(f for f in e.binding_files() if "session=s2\n" in open(os.path.join(d, f)).read())
    s2text = open(os.path.join(d, s2file)).read()
    for i in range(40):
        with open(os.open(os.path.join(d, "%032x" % (i + 1)), os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("".join(f"session=gone{i}\n" if l == "session=s2\n" else l
                            for l in s2text.splitlines(True) if not l.startswith("session_path=")))
    e.start()
    wait_for(lambda: len(e.audit_find(event="session-unbind", reason="session-ended")) == 41,
             "the 40 unknown sessions and s1 to be pruned")
    e.wait_audit("reused pid pruned", event="session-unbind", session=f"pid:{os.getpid()}", reason="process-ended")
    e.wait_audit("s1 pruned", event="session-unbind", session="s1", reason="session-ended")
    e.wait_audit("elevation pruned", event="session-unbind", session=f"pid:{proc.pid}", reason="process-ended")
    wait_for(lambda: int(e.status()["bindings"]) == 1, "one binding left")
    check(len(e.binding_files()) == 1, f"binding files: {e.binding_files()}")
    # the one left still enforces
    e.bed("unplug", "0")
    wait_for(lambda: e.calls(p2, "Lock"), "Lock on s2")


def case_unbind(e):
    e.write_policy()
    e.start()
    e.enroll("root", 0)
    p1 = e.add_session("s1")
    bid, _ = e.bind("s1")
    e.manager().UnbindSession(bid)
    check(e.binding_files() == [], "binding file left after UnbindSession")
    e.wait_audit("unbind", event="session-unbind", reason="unbound", session="s1")
    e.bed("unplug", "0")
    nothing_for(e, 0.7, [p1])


NOBODY_BIND = """
import dbus, sys
m = dbus.Interface(dbus.SystemBus().get_object("org.keyward.Keyward1", "/org/keyward/Keyward1"),
                   "org.keyward.Keyward1.Manager")
try:
    m.BindSession(sys.argv[1], "s9", dbus.UInt32(0), "login", "", "root")
    print("bound")
except dbus.DBusException as x:
    print(x.get_dbus_name())
"""


CHILD_CALL = """
import dbus, os, sys
m = dbus.Interface(dbus.SystemBus().get_object("org.keyward.Keyward1", "/org/keyward/Keyward1"),
                   "org.keyward.Keyward1.Manager")
try:
    if sys.argv[1] == "authenticate":
        r, w = os.pipe()
        os.close(w)
        reply = m.Authenticate("root", "login", "", "", dbus.types.UnixFd(r),
                               dbus.Dictionary({}, signature="sv"), timeout=30)
        print(str(reply[3]))
    else:
        m.BindSession(sys.argv[2], "s1", dbus.UInt32(0), "login", "", "root")
        print("bound")
except dbus.DBusException as x:
    print(x.get_dbus_name(), x.get_dbus_message())
"""


def child_call(*args):
    r = subprocess.run(["/usr/bin/python3", "-c", CHILD_CALL, *args], capture_output=True,
                       text=True, timeout=30)
    log(f"child {args[0]}: {r.stdout.strip()} {r.stderr.strip()}")
    return r.stdout.strip()


def case_token_replay(e):
    # A token binds only what it was issued for: the user and service that authenticated,
    # presented by the process that authenticated or a child of it (a PAM application
    # that opens the session in a child). Another process replaying it (here: the parent
    # of the one that authenticated), or a token for another service, is refused and
    # audited; a refused token is spent.
    e.write_policy()
    e.start()
    e.enroll("root", 0)
    e.add_session("s1")
    import dbus
    token = child_call("authenticate")
    check(len(token) == 32, f"the child's Authenticate gave no token: {token}")
    try:
        e.manager().BindSession(token, "s1", dbus.UInt32(0), "login", "", "root")
        raise Fail("a process that did not authenticate bound the token")
    except dbus.DBusException as x:
        check(x.get_dbus_name().endswith("AccessDenied") and
              "issued to another process" in x.get_dbus_message(), str(x))
    try:
        e.manager().BindSession(token, "s1", dbus.UInt32(0), "login", "", "root")
        raise Fail("a refused token could be used again")
    except dbus.DBusException as x:
        check(x.get_dbus_name().endswith("NotFound"), str(x))
    token, _ = e.authenticate("root", "login")
    try:
        e.manager().BindSession(token, "s1", dbus.UInt32(0), "sudo", "", "root")
        raise Fail("a token was bound for another service")
    except dbus.DBusException as x:
        check(x.get_dbus_name().endswith("AccessDenied"), str(x))
    check(e.binding_files() == [], "a binding file was written for a refused token")
    recs = [r for r in e.audit_records() if r.get("event") == "session-bind"
            and r.get("result") == "failure"]
    check({r.get("reason") for r in recs} == {"token-process", "token-mismatch"},
          f"refusals not audited: {recs}")
    token, _ = e.authenticate("root", "login")
    e.in_session("s1")  # and so is the child that binds it
    check(child_call("bind", token) == "bound", "a child of the authenticating process was refused")
    check(len(e.binding_files()) == 1, "no binding file for the child's binding")


def open_bus_for_others():
    """keyward-testbed keeps its private bus in a 0700 directory; let uid 65534 reach the
    socket (search permission only on the directories)."""
    import re
    m = re.match(r"unix:path=([^,]+)", os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", ""))
    check(m, "unexpected bus address")
    d = os.path.dirname(m.group(1))
    while d not in ("/", "/tmp", ""):
        os.chmod(d, os.stat(d).st_mode | 0o011)
        d = os.path.dirname(d)
    os.chmod(m.group(1), 0o777)


def case_bind_limits(e):
    import dbus
    e.write_policy(settings_extra="max_bindings = 2;")
    e.start()
    e.enroll("root", 0)
    for sid in ("s1", "s2", "s3"):
        e.add_session(sid)
    open_bus_for_others()
    # only root may bind: the token of a real authentication, offered by uid 65534
    token, _ = e.authenticate()
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
                        "-c", NOBODY_BIND, token], capture_output=True, text=True, timeout=30)
    log(f"BindSession as nobody: {r.stdout.strip()} {r.stderr.strip()}")
    check(r.stdout.strip() == "org.keyward.Keyward1.Error.AccessDenied", "a non-root caller could bind")
    check(e.binding_files() == [], "a binding file was written for a refused caller")
    e.bind("s1")
    b2, _ = e.bind("s2")
    try:
        e.bind("s3")
        raise Fail("max_bindings was not enforced")
    except dbus.DBusException as x:
        check(x.get_dbus_name().endswith("Busy"), str(x))
    check(len(e.binding_files()) == 2, "binding files")
    # an elevation must name a running process
    e.manager().UnbindSession(b2)
    token, _ = e.authenticate("root", "sudo")
    try:
        e.manager().BindSession(token, "", dbus.UInt32(4194304), "sudo", "", "root")
        raise Fail("an elevation of a process that does not exist was bound")
    except dbus.DBusException as x:
        check(x.get_dbus_name().endswith("InvalidArgs"), str(x))
    check(len(e.binding_files()) == 1, "binding files after the refused elevation")


def edited(text, **keys):
    """A binding file's TEXT with the value of each key in KEYS replaced (None: the line
    dropped)."""
    out = []
    for line in text.splitlines(True):
        k = line.split("=", 1)[0]
        if k in keys:
            if keys[k] is not None:
                out.append(f"{k}={keys[k]}\n")
        else:
            out.append(line)
    return "".join(out)


def write_binding_file(e, name, content, mode=0o600, owner=None):
    path = os.path.join(e.run, "bindings", name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(content)
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, owner, owner)


def alerts(e, name):
    """The alert records about binding file NAME (session-bind, failure)."""
    return [r for r in e.audit_find(event="session-bind", result="failure")
            if r.get("reason", "").startswith("binding-") and name in r.get("detail", "")]


def case_bad_binding_files(e):
    # Binding files keywardd did not write as they are. A root-owned file in the root-only
    # directory that does not parse is corrupt: what it names (here each its own session)
    # gets the rule's removal action at once (lock) with an alert; one that names nothing
    # (an oversized file) and one anybody could have written (mode 0666) are not acted on:
    # alert only. All stay for inspection; the good binding still waits for its key.
    e.write_policy()
    e.start()
    e.enroll("root", 0)
    p1 = e.add_session("s1")
    good, _ = e.bind("s1")
    e.kill9()
    text = open(os.path.join(e.run, "bindings", good)).read()
    acting = {
        "a" * 32: ("sa", edited(text, session="sa", session_path=None).replace("version=1", "version=2")),
        "b" * 32: ("sb", edited(text, session="sb", session_path=None) + "evil=1\n"),
        "c" * 32: ("sc", edited(text, session="sc", session_path=None).replace("user=root", "user=root\nuser=nobody")),
        "e" * 32: ("se", edited(text, session="se", session_path=None, state=None)),
    }
    paths = {sid: e.add_session(sid) for sid, _ in acting.values()}
    paths["sf"] = e.add_session("sf")
    for name, (_, content) in acting.items():
        write_binding_file(e, name, content)
    write_binding_file(e, "d" * 32, "x" * 9000)
    write_binding_file(e, "f" * 32, edited(text, session="sf"), mode=0o666)
    e.start()
    for name, (sid, _) in acting.items():
        wait_for(lambda: e.calls(paths[sid], "Lock"), f"Lock on {sid} (named by the corrupt file {name})")
        rec = alerts(e, name)
        check(len(rec) == 1 and rec[0]["reason"] == "binding-corrupt" and rec[0]["session"] == sid
              and rec[0]["action"] == "lock" and "the rule's removal action" in rec[0]["detail"], f"alert for {name}: {rec}")
    rec = alerts(e, "d" * 32)
    check(len(rec) == 1 and rec[0]["reason"] == "binding-corrupt" and "session" not in rec[0], f"alert for d: {rec}")
    rec = alerts(e, "f" * 32)
    check(len(rec) == 1 and rec[0]["reason"] == "binding-untrusted" and "session" not in rec[0], f"alert for f: {rec}")
    logtext = e.log_text()
    for name in list(acting) + ["d" * 32, "f" * 32]:
        check(f"{name} cannot be used" in logtext, f"no error logged for {name}")
    check("kept for inspection" in logtext, "the log does not say the files are kept")
    check(len(e.binding_files()) == 7, "a refused binding file was removed")
    check(not e.calls(paths["sf"], "Lock"), "a world-writable file was acted on")
    check(not e.calls(p1, "Lock"), "the good binding acted although its key is plugged in")
    e.bed("unplug", "0")
    wait_for(lambda: e.calls(p1, "Lock"), "Lock on s1 from the good binding")
    time.sleep(0.3)
    check(len(e.calls(p1, "Lock")) == 1, "s1 locked twice")
    check(not e.calls(paths["sf"], "Lock"), "a world-writable file was acted on")


def case_corrupt_binding_acts(e):
    # What a corrupt file acts on, and with which action: the rule's when it can be read,
    # else the strictest (terminate the session, end the elevation); a session id, or a pid
    # whose start time matches, identifies something; a file naming nothing, or one that
    # someone else than root could have written (wrong owner), is an alert only.
    e.write_policy()
    e.start()
    e.enroll("root", 0)
    e.add_session("s1")
    good, _ = e.bind("s1")
    e.kill9()
    text = open(os.path.join(e.run, "bindings", good)).read()
    os.unlink(os.path.join(e.run, "bindings", good))
    for sid in ("st", "sboth", "so"):
        e.add_session(sid)
    elevated = spawn_elevation(e)
    elevated2 = spawn_elevation(e)
    start = int(open(f"/proc/{elevated.pid}/stat").read().rsplit(")", 1)[1].split()[19])
    start2 = int(open(f"/proc/{elevated2.pid}/stat").read().rsplit(")", 1)[1].split()[19])
    truncated = edited(text, session="st", session_path=None)
    truncated = truncated[:truncated.index("created=") + 6]  # cut short before removal=
    files = {
        # truncated: no removal= left, and the last line is unterminated (dropped)
        "1" * 32: truncated,
        # an elevation (no session) that lost its removal= line and gained garbage
        "2" * 32: edited(text, session=None, session_path=None, removal=None, pid=elevated.pid,
                         pid_start=start) + "\x00\x01garbage\n",
        # a session and an elevation, removal unreadable: both get the strictest action
        "3" * 32: edited(text, session="sboth", session_path=None, removal="explode",
                         pid=elevated2.pid, pid_start=start2),
        # a pid whose start time does not match: nothing is signalled
        "4" * 32: edited(text, session=None, session_path=None, removal=None, pid=os.getpid(),
                         pid_start=1),
        # nothing to identify
        "5" * 32: "hello\nsession\npid=12\n",
    }
    for name, content in files.items():
        write_binding_file(e, name, content)
    # owned by somebody else: not root's word, not acted on
    write_binding_file(e, "6" * 32, edited(text, session="so", session_path=None, version="2"), owner=65534)
    e.start()
    wait_for(lambda: [c for c in e.calls(LOGIND_PATH, "TerminateSession") if str(c[1][0]) == "st"],
             "TerminateSession of st (truncated file: the strictest action)")
    wait_for(lambda: [c for c in e.calls(LOGIND_PATH, "TerminateSession") if str(c[1][0]) == "sboth"],
             "TerminateSession of sboth")
    wait_for(lambda: elevated.poll() is not None, "the elevation of the garbled file to end", timeout=5)
    wait_for(lambda: elevated2.poll() is not None, "the elevation named with sboth to end", timeout=5)
    term = [str(c[1][0]) for c in e.calls(LOGIND_PATH, "TerminateSession")]
    check(sorted(term) == ["sboth", "st"], f"TerminateSession calls: {term}")
    e.wait_audit("st terminated", event="action", session="st", action="terminate", result="success")
    e.wait_audit("elevation ended", event="action", session=f"pid:{elevated.pid}", action="end-elevation",
                 result="success", reason="ended")
    e.wait_audit("elevation 2 ended", event="action", session=f"pid:{elevated2.pid}", action="end-elevation",
                 result="success", reason="ended")
    e.wait_audit("reused pid left alone", event="action", session=f"pid:{os.getpid()}", reason="already-ended")
    for name, sid, action in (("1" * 32, "st", "terminate"), ("2" * 32, f"pid:{elevated.pid}", "end-elevation")):
        rec = alerts(e, name)
        check(len(rec) == 1 and rec[0]["session"] == sid and rec[0]["action"] == action
              and "strictest" in rec[0]["detail"], f"alert for {name}: {rec}")
    rec = alerts(e, "3" * 32)
    check(sorted(r["session"] for r in rec) == sorted(["sboth", f"pid:{elevated2.pid}"]), f"alerts for 3: {rec}")
    rec = alerts(e, "5" * 32)
    check(len(rec) == 1 and rec[0]["reason"] == "binding-corrupt" and "session" not in rec[0], f"alert for 5: {rec}")
    rec = alerts(e, "6" * 32)
    check(len(rec) == 1 and rec[0]["reason"] == "binding-untrusted", f"alert for 6: {rec}")
    check(not [c for c in e.calls(LOGIND_PATH, "TerminateSession") if str(c[1][0]) == "so"],
          "a file owned by another user was acted on")
    check(e.daemon.poll() is None, "keywardd ended itself")
    check(sorted(e.binding_files()) == sorted(list(files) + ["6" * 32]), f"files: {e.binding_files()}")
    # the files stay for an administrator; a restart acts again (fail loud until removed)
    e.stop()
    n = len(alerts(e, "1" * 32))
    e.start()
    wait_for(lambda: len(alerts(e, "1" * 32)) == n + 1, "the alert again after a restart")


def bind_expect_refused(e, session, name, words):
    """BindSession(session) with a fresh token is refused with NAME, its message holding
    WORDS; returns the refusal's audit record."""
    import dbus
    token, _ = e.authenticate()
    n = len(e.audit_find(event="session-bind", result="failure"))
    files = e.binding_files()
    try:
        e.manager().BindSession(token, session, dbus.UInt32(0), "login", "", "root", timeout=30)
        raise Fail(f"BindSession({session}) was not refused")
    except dbus.DBusException as x:
        log(f"BindSession({session}) refused: {x.get_dbus_name()}: {x.get_dbus_message()}")
        check(x.get_dbus_name() == name and words in x.get_dbus_message(), str(x))
    check(e.binding_files() == files, "a refused BindSession left a binding file")
    rec = e.audit_find(event="session-bind", result="failure")[n:]
    check(len(rec) == 1, f"refusal records: {rec}")
    return rec[0]


def case_bind_session_check(e):
    # BindSession binds a session only for a caller logind places in it (GetSessionByPID of
    # the calling process): the right session binds; another live session, or none, is
    # refused with session-mismatch; an elevation without a session is not asked about.
    e.write_policy()
    e.start()
    e.enroll("root", 0)
    e.add_session("s1")
    e.add_session("s2")
    e.bind("s1")
    asked = [c for c in e.calls(LOGIND_PATH, "GetSessionByPID") if int(c[1][0]) == os.getpid()]
    check(asked, "keywardd did not ask logind which session the caller is in")
    rec = e.audit_find(event="session-bind", result="success", session="s1")
    check(len(rec) == 1 and len(e.binding_files()) == 1, f"the right session was not bound: {rec}")
    # in s1, naming s2 (another live session)
    e.in_session("s1")
    rec = bind_expect_refused(e, "s2", "org.keyward.Keyward1.Error.AccessDenied", "not in logind session s2")
    check(rec["reason"] == "session-mismatch" and "logind places it in s1" in rec["message"], f"{rec}")
    # in no session at all
    e.in_session(None)
    rec = bind_expect_refused(e, "s1", "org.keyward.Keyward1.Error.AccessDenied", "not in logind session s1")
    check(rec["reason"] == "session-mismatch" and "no session" in rec["message"], f"{rec}")
    check("session-mismatch" in e.log_text(), "the refusal is not in the daemon log")
    # an elevation outside any session binds (no session id, nothing to check)
    proc = spawn_elevation(e)
    n = len(e.calls(LOGIND_PATH, "GetSessionByPID"))
    e.bind("", pid=proc.pid, service="sudo")
    check(len(e.calls(LOGIND_PATH, "GetSessionByPID")) == n, "logind asked about an elevation without a session")
    check(len(e.binding_files()) == 2, f"binding files: {e.binding_files()}")


def case_bind_logind_silent(e):
    # logind does not answer GetSessionByPID: the binding is refused when the bounded wait
    # ends (fail closed), and keywardd keeps serving other calls meanwhile.
    e.write_policy()
    e.start()
    e.enroll("root", 0)
    e.add_session("s1")
    e.in_session("s1")
    e.logind_mock().HangGetSessionByPID(True)
    token, _ = e.authenticate()
    n = len(e.audit_find(event="session-bind", result="failure"))
    t0 = time.monotonic()
    # a child of this process binds (the token's process tree; it is in s1 too)
    child = subprocess.Popen(["/usr/bin/python3", "-c", CHILD_CALL, "bind", token],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    e.children.append(child)
    wait_for(lambda: e.calls(LOGIND_PATH, "GetSessionByPID"), "keywardd to ask logind")
    t1 = time.monotonic()
    status = e.status()
    check(time.monotonic() - t1 < 1.0 and child.poll() is None,
          "GetStatus waited for the BindSession that waits for logind")
    log(f"GetStatus answered while BindSession waits for logind: bindings={status['bindings']}")
    out, err = child.communicate(timeout=20)
    dt = time.monotonic() - t0
    log(f"child bind after {dt:.2f}s: {out.strip()} {err.strip()}")
    check(out.startswith("org.keyward.Keyward1.Error.Failed") and "cannot be verified" in out, out)
    check(1.5 <= dt < 6, f"refused after {dt:.2f}s")
    rec = e.audit_find(event="session-bind", result="failure")[n:]
    check(len(rec) == 1 and rec[0]["reason"] == "session-unverified", f"{rec}")
    check(e.binding_files() == [], "a binding file was written")
    check("session-unverified" in e.log_text(), "the refusal is not in the daemon log")
    # keywardd stopping while logind has not answered: the call is answered, not dropped
    token, _ = e.authenticate()
    asked = len(e.calls(LOGIND_PATH, "GetSessionByPID"))
    child = subprocess.Popen(["/usr/bin/python3", "-c", CHILD_CALL, "bind", token],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    e.children.append(child)
    wait_for(lambda: len(e.calls(LOGIND_PATH, "GetSessionByPID")) > asked, "keywardd to ask logind again")
    e.stop()
    out, err = child.communicate(timeout=20)
    log(f"child bind while keywardd stops: {out.strip()} {err.strip()}")
    check(out.startswith("org.keyward.Keyward1.Error.Failed") and "stopped" in out, out)
    check(e.binding_files() == [], "a binding file was written")
    # logind answers again: the next login binds
    e.logind_mock().HangGetSessionByPID(False)
    e.start()
    e.bind("s1")
    check(len(e.binding_files()) == 1, "no binding once logind answers")


def pam_driver(e, service, user, ops):
    """pam-driver (libpamtest) under pam_wrapper with pam_keyward.so: OPS like
    ["auth:PAM_SUCCESS", "open:PAM_SUCCESS"]. Returns its output."""
    check(e.args.module and e.args.driver, "--module and --driver are needed for the PAM case")
    pre = [p for p in os.environ.get("LD_PRELOAD", "").replace(":", " ").split() if p]
    # (no RTLD_DEEPBIND: a KEYWARD_SANITIZE build's runtime refuses it; harmless otherwise)
    env = dict(os.environ, LD_PRELOAD=" ".join(pre + ["libpam_wrapper.so"]), PAM_WRAPPER="1",
               PAM_WRAPPER_SERVICE_DIR=e.pam_dir, PAM_WRAPPER_DISABLE_DEEPBIND="1",
               # pam_wrapper 1.1.4 reads this name (an upstream slip), see tests/pam
               UID_WRAPPER_DISABLE_DEEPBIND="1",
               # and under KEYWARD_SANITIZE ASan's runtime is not first in the preload list
               ASAN_OPTIONS=":".join(x for x in (os.environ.get("ASAN_OPTIONS", ""),
                                                 "verify_asan_link_order=0") if x))
    r = subprocess.run([e.args.driver, service, user, *ops], env=env, capture_output=True, text=True,
                       timeout=60)
    log(f"$ pam-driver {service} {user} {' '.join(ops)} -> {r.returncode}\n{r.stdout}{r.stderr}")
    check(r.returncode == 0, f"pam-driver {ops} failed")
    return r.stdout


def case_pam_session(e):
    # the whole chain: pam_keyward.so auth + open_session (BindSession with the session
    # logind names for the PAM process) → key pulled → that session is locked
    e.write_policy()
    e.start()
    e.enroll("root", 0)
    p1 = e.add_session("s1")
    p2 = e.add_session("s2")
    # the PAM process (pam-driver, a child of this one) is in s1, as pam_systemd would have
    # placed it: GetSessionByPID names s1 to the module and to keywardd's check
    e.in_session("s1")
    e.pam_dir = os.path.join(e.tmp, "pam.d")
    os.mkdir(e.pam_dir)
    module = os.path.abspath(e.args.module)
    with open(os.path.join(e.pam_dir, "other"), "w") as f:
        f.write("auth required pam_deny.so\naccount required pam_deny.so\nsession required pam_deny.so\n")
    with open(os.path.join(e.pam_dir, "removal-login"), "w") as f:
        f.write(f"auth required {module} config={e.conf}\n"
                f"session required {module} config={e.conf}\n")
    # open and close: the binding is made and removed again
    pam_driver(e, "removal-login", "root", ["auth:PAM_SUCCESS", "open:PAM_SUCCESS", "close:PAM_SUCCESS"])
    e.wait_audit("unbind", event="session-unbind", reason="unbound", session="s1", service="removal-login")
    check(e.binding_files() == [], "close_session left a binding")
    # open only: the session stays bound after the PAM process is gone
    pam_driver(e, "removal-login", "root", ["auth:PAM_SUCCESS", "open:PAM_SUCCESS"])
    rec = e.audit_find(event="session-bind", result="success", service="removal-login")
    check(len(rec) == 2 and rec[1]["session"] == "s1", f"session-bind: {rec}")
    check(len(e.binding_files()) == 1, "no binding after open_session")
    e.bed("unplug", "0")
    wait_for(lambda: e.calls(p1, "Lock"), "Lock on the PAM session s1")
    e.set_locked_hint(p1)
    e.wait_audit("lock-verified", event="lock-verified", session="s1", service="removal-login")
    check(not e.calls(p2, "Lock"), "another session was locked")


def run_case(args):
    e = Env(args)
    ok = False
    try:
        globals()["case_" + args.case.replace("-", "_")](e)
        e.stop()
        check(e.audit_find(event="daemon-stop"), "daemon-stop audited")
        # under KEYWARD_SANITIZE the daemon's reports land in its log
        for bad in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            check(bad not in e.log_text(), f"keywardd log: {bad}")
        # the trail the removal path wrote verifies
        r = subprocess.run([e.keywardctl, "audit", "verify", "--verification-key", e.vk, "--strict", e.audit],
                           capture_output=True, text=True)
        log(f"$ keywardctl audit verify -> {r.returncode}\n{r.stdout}{r.stderr}")
        check(r.returncode == 0, "the audit trail does not verify")
        ok = True
    except Fail as x:
        log(f"FAIL: {x}")
    finally:
        if not ok:
            log("--- keywardd log ---\n" + (e.log_text() if os.path.exists(e.daemon_log) else "(none)"))
            for r in e.audit_records():
                log(json.dumps(r))
        e.cleanup()
    log(f"{args.case}: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build-dir", required=True)
    p.add_argument("--source-dir", required=True)
    p.add_argument("--module", help="pam_keyward.so (the pam-session case)")
    p.add_argument("--driver", help="pam-driver (the pam-session case)")
    p.add_argument("case", choices=sorted(CASES))
    args = p.parse_args()
    if "KEYWARD_TESTBED_CTL" not in os.environ:
        testbed = os.path.join(os.path.abspath(args.build_dir), "tests", "keyward-testbed")
        conf = os.path.join(os.path.abspath(args.source_dir), "dist", "org.keyward.Keyward1.conf")
        for tool in ("busctl", "sleep", "setpriv", testbed):
            if not shutil.which(tool):
                print(f"missing tool: {tool}", file=sys.stderr)
                return 1
        cmd = [testbed, "--keys", str(CASES[args.case]), "--bus", "--bus-policy", conf, "--",
               "/usr/bin/python3", os.path.abspath(__file__), "--build-dir", args.build_dir,
               "--source-dir", args.source_dir]
        if args.module:
            cmd += ["--module", os.path.abspath(args.module), "--driver", os.path.abspath(args.driver)]
        cmd.append(args.case)
        return subprocess.run(cmd).returncode
    return run_case(args)


if __name__ == "__main__":
    sys.exit(main())
