"""desktop_scenarios.py: the system layer's desktop and pkexec scenarios (issue #11).

A graphical logind session (Type=x11, registered through pam_systemd by `login -p` with
XDG_SESSION_TYPE=x11) with an X server (Xvfb) and real screen lockers from Debian 12
(xss-lock, i3lock) started from the user's own shell in that session, and keyward's
`lock` removal action against them; and pkexec through polkit 122 with a textual
authentication agent. Loaded by system_test.py (register(st)).

What each locker does with logind's LockedHint (the only thing keywardd can verify a
lock by) was established on the booted container and is what the scenarios assert:
- xss-lock 0.3.0+git20230128 (Debian 12) calls Session.SetLockedHint(true) itself right
  after it spawned its locker on logind's Lock signal, and (false) when the locker exits;
- keyward-locked-hint sets it while the locker it runs is running;
- a Lock listener that only starts i3lock (here a dbus-monitor pipeline, the kind of
  hook people write in ~/.xsession; an xss-lock without SetLockedHint, such as 0.3.0 as
  released, behaves the same) reports nothing.
"""

import json
import re
import time

import keyward_system as ks
from keyward_system import PASSWORDS, Failure

DISPLAY = ":7"
LOCKER_LOG = "/tmp/keyward-desktop-locker.log"
XVFB_LOG = "/tmp/keyward-desktop-xvfb.log"
LOGIND = ("org.freedesktop.login1", "/org/freedesktop/login1",
          "org.freedesktop.login1.Manager")
MARGIN = 1.5  # s beyond lock_verify before a kept session counts as kept

# Who called Session.SetLockedHint (root may become a bus monitor).
HINT_MONITOR = ["dbus-monitor", "--system",
                "type='method_call',interface='org.freedesktop.login1.Session',"
                "member='SetLockedHint'"]
HINT_CALL = re.compile(r"method call time=\S+ sender=(:\d+\.\d+) -> "
                       r"destination=\S+ serial=\d+ path=(\S+); "
                       r"interface=org\.freedesktop\.login1\.Session; "
                       r"member=SetLockedHint\r?\n\s*boolean (true|false)")

# The processes of one logind session (its scope), read inside the container.
SESSION_PROCS = r"""
import json, os, sys
scope = "/session-%s.scope" % sys.argv[1]
out = []
for e in os.listdir("/proc"):
    if not e.isdigit():
        continue
    try:
        with open("/proc/%s/cgroup" % e) as f:
            if not any(l.rstrip("\n").endswith(scope) for l in f):
                continue
        with open("/proc/%s/stat" % e) as f:
            s = f.read()
        with open("/proc/%s/cmdline" % e, "rb") as f:
            cmd = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        rest = s[s.rindex(")") + 2:].split()
        out.append({"pid": int(e), "ppid": int(rest[1]), "state": rest[0],
                    "start": int(rest[19]), "uid": os.stat("/proc/" + e).st_uid,
                    "comm": s[s.index("(") + 1:s.rindex(")")], "cmdline": cmd})
    except (OSError, ValueError):
        pass
print(json.dumps(sorted(out, key=lambda p: p["pid"])))
"""


def register(st):
    scenario, check = st.scenario, st.check

    # --- helpers ------------------------------------------------------------------------

    def busctl_json(c, *args):
        r = c.run(["busctl", "--system", "--json=short"] + list(args))
        return json.loads(r.stdout)["data"]

    def session_path(c, sid):
        return busctl_json(c, "call", *LOGIND, "GetSession", "s", sid)[0]

    def session_procs(c, sid):
        return json.loads(c.run(["/usr/bin/python3", "-c", SESSION_PROCS, sid]).stdout)

    def procs_named(c, sid, comm):
        return [p for p in session_procs(c, sid) if p["comm"] == comm
                and p["state"] not in ("Z", "X")]

    def show(c, sid):
        """State, LockedHint (and Type) of session sid, or None once logind forgot it."""
        r = c.run(["loginctl", "show-session", sid, "-p", "State", "-p", "LockedHint",
                   "-p", "Type"], check=False)
        if r.returncode != 0:
            return None
        return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)

    def wait_lock_listener(c, sid, path, timeout=10):
        """Until some bus client of alice's session has a match rule for logind's signals
        on this session object (xss-lock subscribes asynchronously, ~0.3-0.5 s after its
        start): a Lock sent earlier would reach nobody. Read from dbus-daemon's
        Debug.Stats interface (root only)."""
        deadline = time.monotonic() + timeout
        while True:
            rules = busctl_json(c, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                "org.freedesktop.DBus.Debug.Stats", "GetAllMatchRules")[0]
            for name, rs in rules.items():
                for rule in rs:
                    if f"path='{path}'" in rule \
                            and "interface='org.freedesktop.login1.Session'" in rule:
                        return name
            if time.monotonic() > deadline:
                raise Failure(f"nothing in alice's session {sid} subscribed to logind's "
                              f"Lock signal for {path} within {timeout} s (the locker did "
                              f"not start?); its log:\n{locker_log(c)}\nmatch rules: "
                              f"{json.dumps(rules)[:3000]}")
            time.sleep(0.05)

    def locker_log(c):
        return c.run(["sh", "-c", f"cat {LOCKER_LOG} {XVFB_LOG} 2>&1"], check=False).stdout

    def x_session(c, locker):
        """alice logs in with `login -p` and XDG_SESSION_TYPE=x11 (pam_systemd registers a
        Type=x11 logind session, bound to her key), starts Xvfb on DISPLAY and runs
        `locker` (a command, or a function of the session's object path giving one) in
        the background from her shell, as an ~/.xsession would. Returns (pty, session id,
        session object path) once the locker listens for logind's Lock."""
        p, sid = c.login("alice", argv=["login", "-p"], env={"XDG_SESSION_TYPE": "x11"})
        s = show(c, sid)
        check(s and s.get("Type") == "x11",
              f"logind made alice's session {sid} {s}, not Type=x11: the scenario needs a "
              f"graphical session")
        st.expect_bound(c, f"alice's graphical session {sid}", user="alice", session=sid)
        p.sendline(f"Xvfb {DISPLAY} -nolisten tcp -screen 0 640x480x24 >{XVFB_LOG} 2>&1 & "
                   f"export DISPLAY={DISPLAY}; for i in $(seq 100); do "
                   f"xdpyinfo >/dev/null 2>&1 && break; sleep 0.05; done; "
                   f"xdpyinfo | grep -m1 -i -e '^name of display' -e 'unable'")
        p.expect(r"name of display:\s+" + re.escape(DISPLAY), 10,
                 what=f"Xvfb answering on {DISPLAY} in alice's session")
        p.expect(c.prompt("alice"), 5)
        path = session_path(c, sid)
        if callable(locker):
            locker = locker(path)
        p.sendline(f"{locker} 2>{LOCKER_LOG} &")
        p.expect(c.prompt("alice"), 5)
        listener = wait_lock_listener(c, sid, path)
        ks.log(f"session {sid} ({path}): X on {DISPLAY}, `{locker}` listening as "
               f"{listener}")
        return p, sid, path

    def hint_monitor(c):
        """A root dbus-monitor of every SetLockedHint call (to tell who reported)."""
        m = c.pty_agent().spawn("hint-monitor", HINT_MONITOR)
        m.expect(r"member=NameLost", 10, what="dbus-monitor becoming a bus monitor")
        return m

    def hint_callers(c, m, path, value="true", timeout=3):
        """{bus name: comm} of the clients that called SetLockedHint(value) on path."""
        deadline = time.monotonic() + timeout
        while True:
            found = {}
            for sender, p, v in HINT_CALL.findall(m.transcript()):
                if p == path and v == value and sender not in found:
                    r = c.run(["busctl", "--system", "status", sender], check=False)
                    comm = re.search(r"^Comm=(.*)$", r.stdout, re.M)
                    found[sender] = comm.group(1) if comm else "(gone)"
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def pull_and_watch(c, sid, until):
        """Unplug key 0 and sample the session every 50 ms until until(state) is true or
        lock_verify + MARGIN s passed. Returns (samples [(t, State, LockedHint)], n0)."""
        n0 = len(c.audit())
        t0 = time.monotonic()
        c.run(c.unplug_argv(0))
        samples = []
        while time.monotonic() - t0 < ks.LOCK_VERIFY_MS / 1000 + MARGIN:
            s = show(c, sid)
            samples.append((round(time.monotonic() - t0, 2),
                            s and s.get("State"), s and s.get("LockedHint")))
            if until(s):
                break
            time.sleep(0.05)
        return samples, n0

    def timeline(samples):
        """The samples where something changed."""
        out, last = [], None
        for t, state, hint in samples:
            if (state, hint) != last:
                out.append(f"{t:.2f}s {state or 'gone'}/LockedHint={hint}")
                last = (state, hint)
        return ", ".join(out)

    def wait_hint(c, sid, value, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            s = show(c, sid)
            if s and s.get("LockedHint") == value:
                return
            if time.monotonic() > deadline:
                raise Failure(f"{what}: LockedHint of session {sid} is not {value!r} "
                              f"{timeout} s later: {s}")
            time.sleep(0.05)

    def i3lock_of(c, sid, parent_comm, what):
        """The i3lock started for the lock (its parent is parent_comm), in session sid."""
        procs = session_procs(c, sid)
        by_pid = {p["pid"]: p for p in procs}
        ours = [p for p in procs if p["comm"] == "i3lock" and p["state"] != "Z"
                and by_pid.get(p["ppid"], {}).get("comm") == parent_comm]
        check(ours, lambda: f"{what}: no i3lock started by {parent_comm} runs in alice's "
                            f"session {sid}; its processes:\n" + ks.format_procs(
                                [dict(p, pgid="-", sid="-") for p in procs])
                            + f"\nlocker log:\n{locker_log(c)}")
        return ours[0]

    def kept(c, sid, n0, names):
        """The session is still there and active, with nothing of it ended: no
        escalation, no termination, and the X server and locker still run."""
        s = show(c, sid)
        check(s and s.get("State") in ("active", "online"),
              f"alice's session {sid} is {s} after lock_verify + {MARGIN} s; it should "
              f"have been kept (locked)")
        bad = [r for r in c.audit()[n0:] if r.get("event") in ("lock-escalated",
                                                                "lock-failed")
               or r.get("reason") in ("terminated", "session-ended")]
        check(not bad, f"the audit trail says the lock of session {sid} failed or the "
                       f"session was ended: {bad}")
        for comm in names:
            check(procs_named(c, sid, comm),
                  f"{comm} no longer runs in alice's session {sid}: "
                  f"{[p['comm'] for p in session_procs(c, sid)]}")

    def pull_expect_verified(c, sid, path, mon, locker_parent, reporter):
        """Pull key 0 and expect a verified lock of session sid: LockedHint turns yes, an
        i3lock started by locker_parent runs, the audit trail says lock-verified/locked,
        SetLockedHint(true) came from a client whose comm satisfies reporter(comm), and
        the session is kept. Returns (samples, n0, i3lock process, callers)."""
        samples, n0 = pull_and_watch(c, sid, lambda s: s is None
                                     or s.get("State") == "closing")
        st.expect_audit(c, n0, "the lock request", event="action", user="alice",
                        session=sid, reason="lock-requested")
        check("yes" in [h for _, _, h in samples],
              f"LockedHint of session {sid} never turned yes after the pull: "
              f"{timeline(samples)}")
        i3 = i3lock_of(c, sid, locker_parent, "after logind's Lock")
        st.expect_audit(c, n0, "the verified lock", event="lock-verified", user="alice",
                        session=sid, reason="locked")
        callers = hint_callers(c, mon, path)
        check(callers and all(reporter(v) for v in callers.values()),
              lambda: f"SetLockedHint(true) on {path} came from {callers or 'nobody'}, "
                      f"not from the expected reporter; dbus-monitor:\n"
                      f"{mon.transcript()[-3000:]}")
        kept(c, sid, n0, ("Xvfb", locker_parent, "i3lock"))
        return samples, n0, i3, callers

    def unlock(c, sid, i3, what):
        """i3lock ends (as it does when the person types the right password): SIGTERM."""
        c.run(["kill", str(i3["pid"])])
        wait_hint(c, sid, "no", 3, f"{what}: after i3lock ended")
        s = show(c, sid)
        check(s and s.get("State") in ("active", "online"),
              f"session {sid} after i3lock ended: {s}")

    def with_logs(fn):
        """On failure, add what the lockers and polkit said to the harness's diagnostics."""
        def run(c):
            try:
                fn(c)
            except Failure as e:
                extra = ("\n--- locker and Xvfb output ---\n" + locker_log(c)
                         + "--- polkit, pkexec, xss-lock in the journal (since setup) ---\n"
                         + c.journal("-t", "polkitd", "-t", "pkexec", "-t",
                                     "polkit-agent-helper-1", "-t", "xss-lock",
                                     after=getattr(c, "cursor_after_setup", None)))
                raise Failure(f"{e}{extra}") from None
        run.__doc__ = fn.__doc__
        run.__name__ = fn.__name__
        return run

    # --- screen lockers ----------------------------------------------------------------

    def desktop_xss_lock_i3lock(c):
        """alice's graphical session (Type=x11) runs Xvfb and `xss-lock -- i3lock -n`, as
        an ~/.xsession of a lightweight desktop does. She pulls her key: keywardd asks
        logind to lock, logind's Lock reaches xss-lock, i3lock starts, and Debian 12's
        xss-lock (0.3.0+git20230128) itself sets LockedHint=yes as soon as it spawned the
        locker: the lock is verified (audit lock-verified/locked) and the session is kept,
        with its X server and i3lock. When i3lock ends (an unlock), xss-lock sets
        LockedHint back to no."""
        p, sid, path = x_session(c, "xss-lock -- i3lock -n")
        samples, n0, i3, callers = pull_expect_verified(
            c, sid, path, hint_monitor(c), "xss-lock", lambda comm: comm == "xss-lock")
        unlock(c, sid, i3, "xss-lock")
        ks.log(f"session {sid}: {timeline(samples)}; SetLockedHint(true) by "
               f"{sorted(set(callers.values()))}; i3lock pid {i3['pid']}; kept; "
               f"LockedHint no after i3lock ended")

    def desktop_locked_hint(c):
        """alice's graphical session runs Xvfb and `xss-lock -- keyward-locked-hint i3lock
        -n` (the recipe of keyward-locked-hint(1), shipped in the .deb). She pulls her
        key: i3lock runs under keyward-locked-hint, which reports the lock to logind
        (SetLockedHint(true) comes from keyward-locked-hint), LockedHint turns yes, the
        lock is verified (lock-verified/locked) and the session is NOT terminated (still
        active after lock_verify + 1.5 s). i3lock ends (an unlock): LockedHint is no again
        and keyward-locked-hint has exited."""
        check(c.run(["dpkg", "-S", "/usr/bin/keyward-locked-hint"], check=False)
              .stdout.startswith("keyward:"),
              "/usr/bin/keyward-locked-hint is not shipped by the keyward package")
        p, sid, path = x_session(c, "xss-lock -- keyward-locked-hint i3lock -n")
        mon = hint_monitor(c)
        samples, n0, i3, callers = pull_expect_verified(
            c, sid, path, mon, "keyward-locked-",
            lambda comm: comm in ("keyward-locked-", "xss-lock"))
        check("keyward-locked-" in callers.values(),
              f"SetLockedHint(true) on {path} did not come from keyward-locked-hint: "
              f"callers {callers}")
        check(procs_named(c, sid, "xss-lock"), "xss-lock no longer runs")
        unlock(c, sid, i3, "keyward-locked-hint")
        deadline = time.monotonic() + 3
        while procs_named(c, sid, "keyward-locked-") and time.monotonic() < deadline:
            time.sleep(0.05)
        check(not procs_named(c, sid, "keyward-locked-"),
              "keyward-locked-hint still runs after its i3lock ended")
        off = hint_callers(c, mon, path, value="false")
        ks.log(f"session {sid}: {timeline(samples)}; SetLockedHint(true) by "
               f"{sorted(set(callers.values()))}, (false) by {sorted(set(off.values()))}; "
               f"kept; LockedHint no after i3lock ended")

    def hook_for(path, locker="i3lock -n"):
        """A Lock listener that starts the locker and tells logind nothing: dbus-monitor
        on this session's Lock signal piped into a shell loop (an ~/.xsession hook)."""
        match = (f"type='signal',sender='org.freedesktop.login1',"
                 f"interface='org.freedesktop.login1.Session',member='Lock',path='{path}'")
        return (f"( dbus-monitor --system \"{match}\" | while read -r l; do "
                f"case $l in *member=Lock*) {locker} & ;; esac; done )")

    def desktop_unreported_lock(c):
        """alice's graphical session runs Xvfb and a Lock listener that starts `i3lock -n`
        but never reports the lock (dbus-monitor on her session's Lock signal piped into a
        shell loop; an xss-lock without SetLockedHint behaves the same). She pulls her key:
        logind's Lock reaches the hook, i3lock runs, LockedHint stays no, so keywardd
        cannot tell this lock from no lock at all: after lock_verify (1.5 s) it
        terminates the session (on_lock_failure = terminate: audit lock-escalated/
        terminated), with its X server and i3lock."""
        p, sid, path = x_session(c, hook_for)
        mon = hint_monitor(c)
        started = {}

        def until(s):
            if not started:
                procs = [q for q in session_procs(c, sid) if q["comm"] == "i3lock"]
                if procs:
                    started["i3lock"] = procs[0]
            return s is None or s.get("State") == "closing"

        samples, n0 = pull_and_watch(c, sid, until)
        took = samples[-1][0]
        check(started, lambda: f"no i3lock ran in session {sid} after logind's Lock "
                               f"(samples: {timeline(samples)}); locker log:\n"
                               f"{locker_log(c)}")
        hints = [h for _, _, h in samples if h]
        check(hints and set(hints) == {"no"},
              f"LockedHint of session {sid} after the pull: {timeline(samples)} (expected "
              f"only no: nothing reports this lock)")
        check(not hint_callers(c, mon, path, timeout=0),
              f"somebody called SetLockedHint on {path}: {mon.transcript()[-2000:]}")
        check(samples[-1][1] in (None, "closing"),
              f"session {sid} not ended {took:.2f} s after the pull (lock_verify "
              f"{ks.LOCK_VERIFY_MS} ms): {timeline(samples)}")
        check(took >= ks.LOCK_VERIFY_MS / 1000 * 0.9,
              f"session {sid} ended {took:.2f} s after the pull, before lock_verify "
              f"({ks.LOCK_VERIFY_MS} ms) had passed")
        st.expect_audit(c, n0, "the lock request", event="action", user="alice",
                        session=sid, reason="lock-requested")
        st.expect_audit(c, n0, "the termination of the unconfirmed lock",
                        event="lock-escalated", user="alice", session=sid,
                        reason="terminated", result="success")
        st.wait_ended(c, [started["i3lock"]], 3, f"i3lock of the terminated session {sid}")
        deadline = time.monotonic() + 3
        while session_procs(c, sid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = session_procs(c, sid)
        check(not left, f"processes of the terminated session {sid} still run: "
                        f"{[(q['pid'], q['comm']) for q in left]}")
        ks.log(f"session {sid}: i3lock pid {started['i3lock']['pid']} ran, "
               f"{timeline(samples)}; terminated {took:.2f} s after the pull")

    def desktop_locker_fails(c):
        """alice's graphical session runs `xss-lock -- sh -c 'sleep 0.3; exit 1'`: a
        locker that starts and dies (could not grab the screen, crashed). Debian 12's
        xss-lock sets LockedHint=yes as it spawns the locker and back to no when it exits.
        She pulls her key: LockedHint turns yes, then no, and nothing is locked. keywardd
        counts a lock only if LockedHint is still yes when lock_verify ends, so it
        terminates the session (audit lock-escalated/terminated, "did not hold") instead
        of recording a lock that is not there."""
        p, sid, path = x_session(c, "xss-lock -- sh -c 'sleep 0.3; exit 1'")
        samples, n0 = pull_and_watch(c, sid, lambda s: s is None
                                     or s.get("State") == "closing")
        took = samples[-1][0]
        hints = [h for _, _, h in samples if h]
        check("yes" in hints and hints[-1] == "no",
              f"LockedHint of session {sid} after the pull: {timeline(samples)} (expected "
              f"xss-lock to set yes, then no when its locker died)")
        check(samples[-1][1] in (None, "closing"),
              f"session {sid} not ended {took:.2f} s after the pull although its locker "
              f"died: {timeline(samples)}")
        check(not [r for r in c.audit()[n0:] if r.get("event") == "lock-verified"],
              f"a lock whose locker died was recorded as verified: {c.audit()[n0:]}")
        rec = st.expect_audit(c, n0, "the termination of the lock that did not hold",
                              event="lock-escalated", user="alice", session=sid,
                              reason="terminated", result="success")
        check("did not hold" in rec[0].get("message", ""),
              f"the escalation record does not say the lock did not hold: {rec}")
        ks.log(f"session {sid}: {timeline(samples)}; terminated {took:.2f} s after the "
               f"pull")

    def desktop_hook_locked_hint(c):
        """The same hook as desktop-unreported-lock, but it starts `keyward-locked-hint
        i3lock -n`: the wrapper alone reports the lock (no xss-lock involved). Pulling the
        key: i3lock runs under keyward-locked-hint, the only SetLockedHint(true) comes
        from it, the lock is verified (lock-verified/locked) and the session is kept
        after lock_verify + 1.5 s; i3lock ends (an unlock): LockedHint is no again."""
        p, sid, path = x_session(c, lambda path: hook_for(path, "keyward-locked-hint "
                                                                  "i3lock -n"))
        samples, n0, i3, callers = pull_expect_verified(
            c, sid, path, hint_monitor(c), "keyward-locked-",
            lambda comm: comm == "keyward-locked-")
        unlock(c, sid, i3, "keyward-locked-hint under the hook")
        ks.log(f"session {sid}: {timeline(samples)}; SetLockedHint(true) by "
               f"{sorted(set(callers.values()))}; kept; LockedHint no after i3lock ended")

    def desktop_unreported_lock_alert(c):
        """As desktop-unreported-lock, but the login rule says on_lock_failure = "alert":
        pulling the key starts i3lock through the hook, LockedHint stays no, and after
        lock_verify keywardd only raises the alarm (journal "SECURITY: session N of alice
        is NOT locked", audit lock-failed/not-locked, detail alert); the session, its X
        server and the (working, unreported) i3lock are kept."""
        conf = ks.POLICY.format(
            timeout=ks.TIMEOUT_MS,
            login_removal=f'action = "lock"; grace = 0; lock_verify = {ks.LOCK_VERIFY_MS}; '
                          f'on_lock_failure = "alert";')
        cur = c.cursor()
        c.write("/etc/keyward/keyward.conf", conf)
        c.run(["keywardctl", "policy", "check"])
        c.run(["systemctl", "reload", "keywardd"])
        c.wait_journal(r"Policy /etc/keyward/keyward.conf loaded", cur,
                       what="keywardd reloading the policy with on_lock_failure = alert")
        p, sid, path = x_session(c, hook_for)
        cur = c.cursor()
        samples, n0 = pull_and_watch(c, sid, lambda s: s is None
                                     or s.get("State") == "closing")
        check(set(h for _, _, h in samples if h) == {"no"},
              f"LockedHint of session {sid}: {timeline(samples)}")
        rec = st.expect_audit(c, n0, "the unconfirmed lock (alert)", event="lock-failed",
                              user="alice", session=sid, reason="not-locked",
                              detail="alert")
        c.wait_journal(rf"SECURITY: session {sid} of alice is NOT locked", cur,
                       what="keywardd's alert in the journal")
        time.sleep(0.5)
        kept_alert = show(c, sid)
        check(kept_alert and kept_alert.get("State") in ("active", "online"),
              f"session {sid} was ended although on_lock_failure = alert: {kept_alert}")
        ended = [r for r in c.audit()[n0:] if r.get("event") == "lock-escalated"
                 or r.get("reason") == "terminated"]
        check(not ended, f"the audit trail says session {sid} was terminated: {ended}")
        for comm in ("Xvfb", "i3lock"):
            check(procs_named(c, sid, comm), f"{comm} no longer runs in session {sid}")
        ks.log(f"session {sid}: {timeline(samples)}; {rec[0]['event']}/"
               f"{rec[0]['reason']} ({rec[0].get('detail')}); kept with i3lock running")

    # --- pkexec ------------------------------------------------------------------------

    def cover_polkit(c):
        """The harness's policy with polkit-1 among the services of the admins rule."""
        conf = ks.POLICY.format(timeout=ks.TIMEOUT_MS,
                                login_removal=ks.LOGIN_REMOVAL["lock"])
        new = re.sub(r'(services = \[[^\]]*"su-l")\]', r'\1, "polkit-1"]', conf, count=1)
        check(new != conf, "cannot find the admins rule's services in the harness's "
                           f"POLICY to add polkit-1:\n{conf}")
        cur = c.cursor()
        c.write("/etc/keyward/keyward.conf", new)
        c.run(["keywardctl", "policy", "check"])
        c.run(["systemctl", "reload", "keywardd"])
        c.wait_journal(r"Policy /etc/keyward/keyward.conf loaded", cur,
                       what="keywardd reloading the policy that covers polkit-1")

    def wait_echo_off(c, agent_pty, timeout=5):
        """polkit's textual agent prints "Password: " and only then turns echo off with
        TCSAFLUSH, which discards what was typed in between: wait for it."""
        pid = [q for q in agent_pty.tree() if q["comm"] == "pkttyagent"][0]["pid"]
        tty = c.run(["readlink", f"/proc/{pid}/fd/0"]).stdout.strip()
        deadline = time.monotonic() + timeout
        while True:
            flags = c.run(["stty", "-a", "-F", tty]).stdout.split()
            if "-echo" in flags:
                return
            if time.monotonic() > deadline:
                raise Failure(f"pkttyagent never turned echo off on {tty}")
            time.sleep(0.02)

    def agent_authenticates(c, agent):
        """The person at the agent's terminal picks alice and types her password."""
        m = agent.expect(r"==== AUTHENTICATING FOR org\.freedesktop\.policykit\.exec ====",
                         20, what="pkttyagent's authentication request for pkexec")
        m = agent.expect(r"Choose identity to authenticate as \(1-\d+\): $|Password: $", 10,
                         what="pkttyagent asking who authenticates, or for the password")
        if m["match"].startswith("Choose"):
            listed = re.findall(r"^\s*(\d+)\.\s+(\S+)", agent.transcript(), re.M)
            num = [n for n, u in listed if u == "alice"]
            check(num, f"pkttyagent does not offer alice: {listed}")
            agent.sendline(num[-1])
            agent.expect(r"Password: $", 10, what="pkttyagent's password prompt")
        wait_echo_off(c, agent)
        agent.sendline(PASSWORDS["alice"])

    def pkexec(c):
        """The policy covers polkit-1 (pkexec's PAM service, /usr/lib/pam.d/polkit-1, which
        includes common-auth where keyward sits). alice runs pkexec on her terminal; the
        prompts come from a polkit textual agent (pkttyagent) on her second terminal,
        registered for her shell: pkexec's own internal agent fails on Debian 12 (polkit
        122: "No session for cookie", with or without keyward). The agent shows the
        password prompt, then "Touch your security key for alice"; the command runs as
        root. Pulling the key does not end it: the key was checked in polkit's helper,
        whose PAM handle opens no session, and the session pkexec opens itself has no key
        authentication on it, so nothing is bound. With the key out, the next pkexec is
        refused: the agent says "No security key is plugged in", pkexec "Not
        authorized"."""
        cover_polkit(c)
        q = c.shell("alice", cid="alice-pkexec")
        bash = [x for x in q.tree() if x["comm"] == "bash"][0]
        agent = c.shell("alice", cid="alice-agent")
        cur = c.cursor()
        agent.sendline(f"pkttyagent --process {bash['pid']},{bash['start']}")
        c.wait_journal(rf"Registered Authentication Agent for unix-process:{bash['pid']}:",
                       cur, unit=None, timeout=10, what="pkttyagent registering with polkitd")
        # 1. key plugged: the key is required, the command runs as root
        cur = c.cursor()
        n0 = len(c.audit())
        q.sendline("pkexec /bin/sh -c 'echo pkexec-uid=$(id -u); exec sleep 300'")
        agent_authenticates(c, agent)
        agent.expect(r"Touch your security key for alice", 10,
                     what="keyward's touch cue, shown by the polkit agent")
        agent.expect(r"==== AUTHENTICATION COMPLETE ====", 15,
                     what="polkit accepting alice's password and key")
        q.expect(r"pkexec-uid=0", 10, what="pkexec running the command as root")
        c.wait_journal(r"pam_keyward\(polkit-1:auth\): alice authenticated for polkit-1 "
                       r"with security key", cur, unit=None, timeout=5,
                       what="pam_keyward in polkit's helper using the key")
        st.expect_audit(c, n0, "the key authentication of alice for polkit-1",
                        event="auth", user="alice", service="polkit-1", result="success")
        sleep = [x for x in q.tree() if x["comm"] == "sleep" and x["uid"] == 0]
        check(sleep, f"no root sleep under pkexec:\n{ks.format_procs(q.tree())}")
        # 2. pulling the key does not end the command (nothing is bound)
        n1 = len(c.audit())
        c.run(c.unplug_argv(0))
        time.sleep(2.0)
        check(c.pty_agent().alive(sleep),
              "pkexec's command ended when the key was pulled; pam_keyward(8) says it is "
              "not bound (update it if pkexec is bound now)")
        binds = [r for r in c.audit() if r.get("service") == "polkit-1"
                 and r.get("event") in ("session-bind", "action")]
        check(not binds, f"audit records bind or act on pkexec: {binds}")
        q.send("\x03")
        q.expect(c.prompt("alice"), 5, what="alice's prompt after Ctrl-C ended sleep")
        # 3. key out: refused, with a message about the security key
        cur = c.cursor()
        q.sendline("pkexec id -u; echo pkexec-rc=$?")
        agent_authenticates(c, agent)
        agent.expect(r"Touch your security key for alice", 10, what="keyward's touch cue")
        m = agent.expect(r"Error: ([^\r\n]*security key[^\r\n]*)\r?\n", 15,
                         what="the agent telling alice why (the security key)")
        agent.expect(r"==== AUTHENTICATION FAILED ====", 10, what="polkit refusing")
        r = q.expect(r"pkexec-rc=(\d+)\r?\n", 10, what="pkexec's exit status")
        out = q.transcript().split("pkexec id -u; echo pkexec-rc")[-1]
        check(r["groups"][0] != "0" and re.search(r"Not authorized", out),
              f"pkexec ran with the key unplugged (exit {r['groups'][0]}):\n{out}")
        check(not re.search(r"^0\s*$", out, re.M), f"id -u printed 0:\n{out}")
        st.expect_audit(c, n1, "the refused key authentication", event="auth",
                        user="alice", service="polkit-1", result="failure")
        said = re.search(r"Error executing[^\r\n]*", out)
        ks.log(f"pkexec with the key out: the agent said {m['groups'][0]!r}; pkexec said "
               f"{said.group(0) if said else out!r}, exit {r['groups'][0]}")

    desktop = dict(login_removal="lock", enroll=(("alice", 0),))
    scenario("desktop-xss-lock-i3lock", **desktop)(with_logs(desktop_xss_lock_i3lock))
    scenario("desktop-locked-hint", **desktop)(with_logs(desktop_locked_hint))
    scenario("desktop-unreported-lock", **desktop)(with_logs(desktop_unreported_lock))
    scenario("desktop-locker-fails", **desktop)(with_logs(desktop_locker_fails))
    scenario("desktop-hook-locked-hint", **desktop)(with_logs(desktop_hook_locked_hint))
    scenario("desktop-unreported-lock-alert", **desktop)(
        with_logs(desktop_unreported_lock_alert))
    scenario("pkexec", enroll=(("alice", 0),))(with_logs(pkexec))
