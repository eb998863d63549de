#!/usr/bin/python3
"""breakglass_test.py: break-glass recovery in keywardd on the emulated-key bench (the
daemon_test.py harness: real keywardd, private bus with the shipped bus policy, the
emulated key). One case per run:

    breakglass_test.py --build-dir B --source-dir S CASE

Codes are issued over D-Bus (BreakglassIssue) and typed into Authenticate through the
pin pipe with option breakglass, as pam_keyward.so does. Small Argon2 limits keep the
cases fast; breakglass-defaults uses the policy's defaults. Never skips.
"""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_test as dt  # noqa: E402
from daemon_test import Fail, check, log  # noqa: E402

FAST = 'argon2 = { opslimit = 1; memlimit = 8192; };'


def bg_policy(e, bg="", rule="", settings="", login_rule_extra=""):
    """root and nobody are covered for login and sshd by a rule that opts in."""
    e.write_policy(
        rule_extra=rule,
        settings_extra=f"{settings}\n\tbreakglass = {{ {bg} }};",
        rules_extra=f"""
	{{
		name = "bg-login";
		match = {{ users = ["root", "nobody"]; services = ["login", "sshd"]; remote = false; }};
		require = "key";
		breakglass = true;
		{login_rule_extra}
	}},""")


def issue(e, user="root"):
    codes, until = e.manager().BreakglassIssue(user, timeout=120)
    codes = [str(c) for c in codes]
    log(f"BreakglassIssue({user}) -> {len(codes)} codes, valid until {int(until)}")
    return codes, int(until)


def listing(e, user="root"):
    return [(str(i), int(a), int(b), bool(u)) for i, a, b, u in e.manager().BreakglassList(user)]


def code_auth(e, code, user="root", service="login", rhost=""):
    return e.authenticate(user=user, service=service, pin=code, rhost=rhost,
                          options={"breakglass": True}, timeout=60)


def no_secret_anywhere(e, codes):
    """Neither a code (as printed or typed without dashes) nor a hash in any record or log."""
    trail = open(e.audit).read()
    daemon_log = e.log_text()
    for c in codes:
        for form in (c, c.replace("-", ""), c.lower()):
            check(form not in trail, "a code is in the audit trail")
            check(form not in daemon_log, "a code is in the daemon's log")
    check("$argon2id$" not in trail and "$argon2id$" not in daemon_log, "a hash is in a record or log")


def case_breakglass_code(e):
    bg_policy(e, bg=FAST + ' codes = 4; max_attempts = 50;')
    e.start()
    codes, until = issue(e)
    check(len(codes) == 4 and all(re.fullmatch(r"([2-9A-HJKMNP-Z]{5}-){3}[2-9A-HJKMNP-Z]{5}", c)
                                  for c in codes), f"code format: {codes}")
    check(until > time.time() * 1e6, "valid until is in the future")
    st = os.stat(os.path.join(e.state, "breakglass", "root"))
    check(st.st_mode & 0o777 == 0o600 and st.st_uid == 0, "codes file is root 0600")
    check(os.stat(os.path.join(e.state, "breakglass")).st_mode & 0o777 == 0o700, "dir 0700")
    rec = e.audit_find(event="breakglass-issue", result="success", user="root")
    check(rec and rec[-1]["detail"].startswith("codes=4 valid-until=20") and rec[-1].get("actor_uid") in (0, None),
          f"issue record: {rec}")

    # root has no key: the login is offered break-glass
    a = e.authenticate(service="login")
    check(not a["granted"] and a["reason"] == "breakglass-available", f"offer: {a}")
    check(a["message"].startswith("No security key is available for root. Enter a break-glass recovery code"),
          a["message"])

    # refusals first: nothing is burnt by them
    for typed, reason in (("22222-22222-22222-2222", "malformed-code"), ("22222-22222-22222-2222O", "malformed-code"), ("hello", "malformed-code"),
                          ("A" * 300, "malformed-code"), ("", "malformed-code"),
                          ("22222-22222-22222-22222", "wrong-code")):
        a = code_auth(e, typed)
        check(not a["granted"] and a["reason"] == reason, f"{typed[:30]!r}: {a}")
    a = code_auth(e, codes[0], service="sshd")
    check(not a["granted"] and a["reason"] in ("remote", "service-not-allowed"), f"sshd: {a}")
    a = code_auth(e, codes[0], service="sshd", rhost="192.0.2.7")
    check(not a["granted"], f"sshd over the network: {a}")
    a = code_auth(e, codes[0], user="nobody")
    check(not a["granted"] and a["reason"] == "no-codes", f"bob with alice's code: {a}")
    check(all(not used for _, _, _, used in listing(e)), f"nothing burnt: {listing(e)}")

    # the code works once, typed in lower case without dashes
    a = code_auth(e, codes[1].replace("-", "").lower())
    check(a["granted"] and a["reason"] == "breakglass" and re.fullmatch(r"[0-9a-f]{32}", a["token"]),
          f"code accepted: {a}")
    check("keywardctl enroll" in a["message"], a["message"])
    used = [i for i, _, _, u in listing(e) if u]
    check(len(used) == 1, f"exactly one burnt: {listing(e)}")
    use = e.audit_find(event="breakglass-use", result="success", user="root", service="login")
    check(use and use[-1]["detail"] == "code=" + used[0], f"use record: {use}")
    a2 = code_auth(e, codes[1])
    check(not a2["granted"] and a2["reason"] == "used-code", f"second use: {a2}")
    fails = {r["reason"] for r in e.audit_find(event="breakglass-fail", result="failure")}
    check({"malformed-code", "wrong-code", "no-codes", "used-code"} <= fails, f"fail records: {fails}")

    # the session is bound to no key, marked break-glass, and unbinds
    bid = str(e.manager().BindSession(a["token"], "", os.getpid(), "login", "tty1", "root"))
    check(re.fullmatch(r"[0-9a-f]{32}", bid), f"binding id {bid}")
    sb = e.audit_find(event="session-bind", result="success", reason="breakglass")
    check(sb and sb[-1]["detail"] == "breakglass code=" + used[0] and sb[-1].get("action") == "none", f"{sb}")
    st = e.ctl("status", expect=None)
    lines = st.stdout.splitlines()
    check(lines and lines[0].startswith("BREAK-GLASS sessions open without a key")
          and re.search(r"root  login  pid:\d+  code=" + re.escape(used[0]), st.stdout)
          and "unused recovery codes for: root" in st.stdout, f"status shows it first: {st.stdout}")
    e.manager().UnbindSession(bid)
    check(e.audit_find(event="session-unbind", detail="breakglass"), "unbind recorded")
    st = e.ctl("status", expect=None)
    check("break-glass: no session open without a key" in st.stdout, st.stdout)

    # require_enroll: no elevation until a new key is enrolled
    a = e.authenticate(service="sudo")
    check(not a["granted"] and a["reason"] == "enroll-required" and "keywardctl enroll root" in a["message"],
          f"sudo after break-glass: {a}")
    e.enroll("--label", "newkey")
    a = e.authenticate(service="sudo")
    check(a["granted"] and a["reason"] == "ok", f"sudo after enroll: {a}")
    no_secret_anywhere(e, codes)


def case_breakglass_ctl(e):
    """keywardctl breakglass: issue (only to a terminal unless --force), list, revoke."""
    bg_policy(e, bg=FAST + ' codes = 3;')
    e.start()
    r = e.ctl("breakglass", "issue", "root", expect=2)
    check("only to a terminal" in r.stderr and not e.audit_find(event="breakglass-issue"),
          f"no codes into a pipe: {r.stderr}")
    r = e.ctl("breakglass", "issue", "root", "--force")
    codes = re.findall(r"\b(?:[2-9A-HJKMNP-Z]{5}-){3}[2-9A-HJKMNP-Z]{5}\b", r.stdout)
    check(len(codes) == 3 and "sealed envelope" in r.stdout and "password manager" in r.stdout,
          f"issue output: {r.stdout}")
    r = e.ctl("breakglass", "list", "root")
    check(r.stdout.count("unused") == 3, f"list: {r.stdout}")
    a = code_auth(e, codes[2])
    check(a["granted"], f"a printed code works: {a}")
    r = e.ctl("breakglass", "list")
    check(r.stdout.count("root/") == 3 and r.stdout.count(" used") == 1, f"list all: {r.stdout}")
    e.ctl("breakglass", "revoke", "root")
    r = e.ctl("breakglass", "list", "root")
    check("No break-glass recovery codes for root" in r.stdout, r.stdout)
    e.ctl("breakglass", "frobnicate", expect=2)
    r = e.ctl("breakglass", "issue", "no-such-user", "--force", expect=1)
    check("There is no user no-such-user" in r.stderr, r.stderr)
    r = e.ctl("breakglass", "approve", "root", expect=1)
    check("two_person" in r.stderr, f"approve with two_person off: {r.stderr}")
    no_secret_anywhere(e, codes)


def case_breakglass_expired(e):
    bg_policy(e, bg=FAST + ' codes = 3;')
    e.start()
    codes, _ = issue(e)
    # only root and admin_group may manage codes
    dt.open_bus_for_others()
    for method in ("BreakglassIssue", "BreakglassList", "BreakglassApprove"):
        out = as_user(e, 65534, method, "root")
        check(out.startswith("org.keyward.Keyward1.Error.AccessDenied"), f"{method} as nobody: {out}")
    e.stop()
    # the set was issued long ago: its expiry is in the past
    path = os.path.join(e.state, "breakglass", "root")
    lines = open(path).read().splitlines()
    past = int(time.time()) - 100
    out = [lines[0]] + [re.sub(r"^(\S+) \d+ \d+ ", rf"\1 {past - 1000} {past} ", l) for l in lines[1:]]
    with open(path + ".new", "w") as f:
        f.write("\n".join(out) + "\n")
    os.chmod(path + ".new", 0o600)
    os.rename(path + ".new", path)
    e.start()
    # (written right after the ready line: wait for it)
    deadline = time.monotonic() + 10
    while not e.audit_find(event="breakglass-expire") and time.monotonic() < deadline:
        time.sleep(0.05)
    exp = e.audit_find(event="breakglass-expire", result="info", user="root")
    check(exp and exp[-1]["detail"].startswith("codes=3"), f"expiry noticed at start: {exp}")
    a = code_auth(e, codes[0])
    check(not a["granted"] and a["reason"] == "expired-code", f"expired: {a}")
    check(all(not u for *_, u in listing(e)), "nothing burnt")
    # revoke withdraws the set
    e.manager().BreakglassRevoke("root")
    check(listing(e) == [], "revoked")
    check(e.audit_find(event="breakglass-revoke", result="success", user="root"), "revoke recorded")
    a = code_auth(e, codes[1])
    check(not a["granted"] and a["reason"] == "no-codes", f"after revoke: {a}")
    no_secret_anywhere(e, codes)


def case_breakglass_rate_limit(e):
    bg_policy(e, bg=FAST + ' max_attempts = 3; window = 600;',
              login_rule_extra='lockout = { max_failures = 10; window = 600; unlock_after = 600; };')
    e.start()
    codes, _ = issue(e)
    for i in range(3):
        a = code_auth(e, "22222-22222-22222-2222" + str(2 + i))
        check(not a["granted"] and a["reason"] == "wrong-code", f"attempt {i}: {a}")
    a = code_auth(e, codes[0])
    check(not a["granted"] and a["reason"] == "lockout", f"rate limit: {a}")
    check(e.audit_find(event="breakglass-fail", reason="rate-limited"), "rate-limited recorded")
    check(all(not u for *_, u in listing(e)), "the right code was not burnt when refused")
    # the failures count in the login's lockout too
    lk = open(os.path.join(e.state, "lockout", "root")).read()
    check(len([l for l in lk.splitlines() if l.strip()]) >= 4, f"lockout counted: {lk!r}")
    # bob is not limited by alice's attempts
    a = code_auth(e, codes[0], user="nobody")
    check(a["reason"] == "no-codes", f"bob: {a}")


def as_user(e, uid, *pyargs):
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "/usr/bin/python3",
           os.path.abspath(__file__), "--client", *pyargs]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    log(f"as uid {uid} {pyargs}: {r.returncode} {r.stdout.strip()} {r.stderr.strip()}")
    return r.stdout.strip()


def client_main(argv):
    import dbus
    m = dbus.Interface(dbus.SystemBus().get_object(dt.BUS_NAME, dt.BUS_PATH), dt.IFACE)
    rfd, wfd = os.pipe()
    os.close(wfd)
    try:
        if argv[0] == "BreakglassApprove":
            r = m.BreakglassApprove(argv[1], dbus.types.UnixFd(rfd), dbus.Dictionary({}, signature="sv"),
                                    timeout=60)
        elif argv[0] == "BreakglassIssue":
            r = m.BreakglassIssue(argv[1])
        elif argv[0] == "CodeAuth":
            os.close(rfd)
            rfd, wfd = os.pipe()
            os.write(wfd, argv[2].encode())
            os.close(wfd)
            r = m.Authenticate(argv[1], "login", "", "", dbus.types.UnixFd(rfd),
                               dbus.Dictionary({"breakglass": True}, signature="sv"), timeout=60)
            r = (bool(r[0]), str(r[1]))
        else:
            r = m.BreakglassList(argv[1])
        print("OK:" + repr(r))
    except dbus.DBusException as x:
        print(x.get_dbus_name() + " " + str(x.get_dbus_message()))


def case_breakglass_approve(e):
    # nobody (uid 65534, group nogroup) is the other administrator, with a key of its own
    bg_policy(e, bg=FAST + " two_person = true; approval_validity = 300;",
              settings='admin_group = "nogroup";')
    e.start()
    dt.open_bus_for_others()
    e.ctl("enroll", "nobody", "--label", "carols-key")
    out = as_user(e, 65534, "BreakglassApprove", "nobody")
    check("PolicyRefused" in out, f"self-approval: {out}")
    a = code_auth(e, "")
    check(not a["granted"] and a["reason"] == "no-codes", f"nothing approved yet: {a}")
    out = as_user(e, 65534, "BreakglassApprove", "root")
    check(out.startswith("OK:dbus.UInt64("), f"approval: {out}")
    ap = e.audit_find(event="breakglass-approve", result="success", user="root")
    check(ap and ap[-1].get("actor") == "nobody" and ap[-1]["detail"].startswith("valid-until="),
          f"approve record: {ap}")
    st = os.stat(os.path.join(e.state, "breakglass", "approvals", "root"))
    check(st.st_mode & 0o777 == 0o600, "approval file 0600")
    # root comes in once with the approval (nothing typed), then no more
    a = code_auth(e, "")
    check(a["granted"] and a["reason"] == "breakglass", f"approved login: {a}")
    use = e.audit_find(event="breakglass-use", result="success", user="root")
    check(use and use[-1]["detail"] == "approval=nobody", f"use record: {use}")
    a = code_auth(e, "")
    check(not a["granted"] and a["reason"] == "no-codes", f"approval used once: {a}")
    # an approval is for root only: nobody (bob) is not let in by it
    out = as_user(e, 65534, "BreakglassApprove", "root")
    check(out.startswith("OK:"), out)
    a = code_auth(e, "", user="nobody")
    check(not a["granted"], f"bob with alice's approval: {a}")
    check(os.path.exists(os.path.join(e.state, "breakglass", "approvals", "root")), "root's approval untouched")
    # keywardctl breakglass approve, as the other administrator
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", e.keywardctl,
                        "breakglass", "approve", "root"], capture_output=True, text=True, timeout=60)
    log(f"keywardctl breakglass approve root (as nobody) -> {r.returncode}\n{r.stdout}{r.stderr}")
    check(r.returncode == 0 and "Approved: root may log in once" in r.stdout, f"ctl approve: {r}")
    check(len(e.audit_find(event="breakglass-approve", result="success")) == 3, "three approvals recorded")


def case_breakglass_two_person_off(e):
    bg_policy(e, bg=FAST, settings='admin_group = "nogroup";')
    e.start()
    dt.open_bus_for_others()
    e.ctl("enroll", "nobody", "--label", "carols-key")
    out = as_user(e, 65534, "BreakglassApprove", "root")
    check("PolicyRefused" in out and "two_person" in out, f"two_person off: {out}")
    # a rule that does not opt in: no offer, no codes accepted
    e.write_policy(settings_extra="breakglass = { " + FAST + " };")
    e.manager().Reload()
    a = e.authenticate(service="sudo")
    check(a["reason"] == "not-enrolled", f"no opt-in, no offer: {a}")
    codes, _ = issue(e)
    a = code_auth(e, codes[0], service="sudo")
    check(not a["granted"] and a["reason"] == "service-not-allowed", f"no opt-in: {a}")


def case_breakglass_race(e):
    """Two logins with the same code at the same time: exactly one gets in (the burn is
    checked against the file as it is when the verification ends)."""
    bg_policy(e, bg="codes = 4; max_attempts = 50;")  # the default Argon2id cost: both verifications overlap
    e.start()
    codes, _ = issue(e)
    for attempt in range(2):
        code = codes[attempt]
        procs = [subprocess.Popen(["/usr/bin/python3", os.path.abspath(__file__), "--client", "CodeAuth",
                                   "root", code], stdout=subprocess.PIPE, text=True) for _ in range(3)]
        outs = [p.communicate(timeout=120)[0].strip() for p in procs]
        log(f"three logins with one code: {outs}")
        check(sum("OK:(True, 'breakglass')" == o for o in outs) == 1, f"exactly one granted: {outs}")
        check(sum("OK:(False, 'used-code')" == o for o in outs) == 2, f"the others see it used: {outs}")
    check([u for *_, u in listing(e)].count(True) == 2, f"two codes burnt: {listing(e)}")


def case_breakglass_defaults(e):
    # the policy's own Argon2id limits (64 MiB, 3 passes) and 10 codes
    bg_policy(e)
    e.start()
    t0 = time.monotonic()
    codes, _ = issue(e)
    log(f"issue with the defaults: {time.monotonic() - t0:.2f}s")
    check(len(codes) == 10, f"10 codes: {len(codes)}")
    text = open(os.path.join(e.state, "breakglass", "root")).read()
    check(text.count("$argon2id$v=19$m=65536,t=3,p=1$") == 10, "default limits in the hashes")
    a = code_auth(e, codes[9])
    check(a["granted"], f"accepted: {a}")


CASES = {
    "breakglass-code": [],
    "breakglass-ctl": [],
    "breakglass-expired": [],
    "breakglass-rate-limit": [],
    "breakglass-approve": [],
    "breakglass-two-person-off": [],
    "breakglass-defaults": [],
    "breakglass-race": [],
}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2:])
        return 0
    # Run through daemon_test's driver with these cases (it re-executes this file).
    dt.CASES.clear()
    dt.CASES.update(CASES)
    for name in CASES:
        fn = "case_" + name.replace("-", "_")
        setattr(dt, fn, globals()[fn])
    dt.__file__ = os.path.abspath(__file__)
    return dt.main()


if __name__ == "__main__":
    sys.exit(main())
