"""breakglass_scenarios.py: the system layer's break-glass scenarios (issue #19): an admin
who lost her key gets back in once, loudly, without weakening anyone else. Loaded by
system_test.py (register(st)).

alice's only key is revoked with `keywardctl revoke`. With recovery codes
(`keywardctl breakglass issue`), a console login(1) on a pty with one of her codes works
once and the same code fails the second time; her code does not work for bob (another
covered admin with codes of his own), nor for su (not a break-glass service), nor over
ssh; after the login her elevations wait for a new key (require_enroll). With the
two-person rule, carol's emulated key approves (`keywardctl breakglass approve alice`,
run by carol) one login of alice's, and only one. `keywardctl report` shows all of it in
its first section, and `keywardctl status` lists break-glass state first.

Everything here goes through the real programs (login, su, sshd, keywardctl) against the
installed package; nothing is skipped: without the feature every scenario fails, saying
which step.
"""

import json
import re
import time

import keyward_system as ks

# lib/breakglass.h: 4 groups of 5 from the alphabet without 0, O, 1, I, L
CODE_RE = re.compile(r"\b([2-9A-HJKMNP-Z]{5}(?:-[2-9A-HJKMNP-Z]{5}){3})\b")
CODE_ID_RE = re.compile(r"\b([0-9a-f]{6}-\d{2})\b")
CODE_PROMPT = r"Break-glass recovery code: $"
REFUSED = r"Login incorrect|login: $"

POLICY = """\
# tests/system/breakglass_scenarios.py: the system layer's policy plus break-glass.
settings = {{
	rp_id = "pam://keyward";
	timeout = {timeout};
	failmode = "closed";
	audit_failure = "deny";
	admin_group = "sudo";
	breakglass = {{
		services = ["login"];
		codes = 4;
		validity = 3600;
		argon2 = {{ opslimit = 2; memlimit = 67108864; }};
		max_attempts = 20;
		window = 900;
		two_person = {two_person};
		approval_validity = 300;
		require_enroll = true;
	}};
}};
rules = (
	{{
		name = "admins-elevation";
		match = {{ groups = ["sudo", "root"]; services = ["sudo", "sudo-i", "su", "su-l"]; }};
		require = "key";
		user_verification = "discouraged";
		removal = {{ action = "end-elevation"; grace = 0; }};
		breakglass = true;
	}},
	{{
		name = "admins-console";
		match = {{ groups = ["sudo", "root"]; services = ["login"]; }};
		require = "key";
		user_verification = "discouraged";
		removal = {{ action = "terminate"; grace = 0; }};
		breakglass = true;
	}},
	{{
		name = "admins-ssh";
		match = {{ groups = ["sudo"]; services = ["sshd"]; }};
		require = "key";
		user_verification = "discouraged";
		breakglass = true;
	}}
);
default = {{ require = "none"; }};
"""

SSHD_DROPIN = """\
# keyward system layer: PAM's conversation over ssh (keyboard-interactive), so that a
# prompt after the password reaches the client.
KbdInteractiveAuthentication yes
PasswordAuthentication no
PubkeyAuthentication no
UsePAM yes
"""


def register(st):
    scenario, check = st.scenario, st.check
    Failure = ks.Failure

    def write_policy(c, two_person=False):
        c.write("/etc/keyward/keyward.conf", POLICY.format(
            timeout=ks.TIMEOUT_MS, two_person="true" if two_person else "false"))
        r = c.run(["keywardctl", "policy", "check"], check=False)
        check(r.returncode == 0, f"keywardctl policy check refused the break-glass policy "
                                 f"(exit {r.returncode}):\n{r.stdout}{r.stderr}")
        c.run(["systemctl", "reload", "keywardd"])
        c.wait_daemon()

    def revoke_only_key(c, user, label):
        """`keywardctl revoke USER LABEL`: the user's only key; `list` then shows none."""
        r = c.run(["keywardctl", "revoke", user, label], check=False)
        check(r.returncode == 0, f"keywardctl revoke {user} {label} failed "
                                 f"(exit {r.returncode}):\n{r.stdout}{r.stderr}")
        r = c.run(["keywardctl", "list", user], check=False)
        check(label not in r.stdout, f"{user}'s key {label} still listed after revoke:\n"
                                     f"{r.stdout}{r.stderr}")

    def issue(c, user):
        """`keywardctl breakglass issue USER --force` (not a terminal here): the codes
        printed once (list of (id or None, code))."""
        r = c.run(["keywardctl", "breakglass", "issue", user, "--force"], check=False)
        check(r.returncode == 0, f"keywardctl breakglass issue {user} failed "
                                 f"(exit {r.returncode}):\n{r.stdout}{r.stderr}")
        codes = []
        for line in r.stdout.splitlines():
            m, i = CODE_RE.search(line), CODE_ID_RE.search(line)
            if m:
                codes.append((i.group(1) if i else None, m.group(1)))
        check(len(codes) == 4, f"`breakglass issue {user}` printed {len(codes)} codes, the "
                               f"policy says 4:\n{r.stdout}")
        check(len({c_ for _, c_ in codes}) == 4, f"duplicate codes printed: {codes}")
        # only hashes are kept: no code in clear anywhere under keyward's state or logs
        for _, code in codes:
            g = c.run(["grep", "-rlF", code, "/var/lib/keyward", "/etc/keyward",
                       "/var/log/keyward", "/run/keyward"], check=False)
            check(g.stdout.strip() == "", f"a code of {user}'s is stored in clear: "
                                          f"{g.stdout.strip()}")
        j = c.journal("-n", "200")
        check(not any(code in j for _, code in codes), "a code reached the journal")
        return codes

    def login_code(c, user, code, cid, ok, what):
        """login(1) on a fresh pty: user, password, then the break-glass prompt and CODE.
        OK: her shell comes (returns (pty, logind session)); else login refuses."""
        p = c.pty_agent().spawn(cid, ["login"])
        p.user = user
        p.expect(r"login: $", 15, what="login's user name prompt")
        p.sendline(user)
        p.expect(r"Password: $", 10, what="login's password prompt")
        p.sendline(ks.PASSWORDS[user])
        p.expect(CODE_PROMPT, 20,
                 what=f"keyward's break-glass prompt for {user} (no usable key) at login")
        p.sendline(code)
        if not ok:
            p.expect(REFUSED, 20, what=f"{what}: login refusing {user}")
            return p, None
        p.expect(c.prompt(user), 20, what=f"{what}: {user}'s shell after the code")
        p.sendline("echo SID=$XDG_SESSION_ID")
        sid = p.expect(r"SID=(\w+)\r?\n", 5, what="the logind session id")["groups"][0]
        p.expect(c.prompt(user), 5)
        return p, sid

    def records(c, event, **match):
        return [r for r in c.audit() if r.get("event") == event
                and all(r.get(k) == v for k, v in match.items())]

    def expect_record(c, what, event, **match):
        deadline = time.monotonic() + 5
        while True:
            got = records(c, event, **match)
            if got:
                return got[-1]
            if time.monotonic() > deadline:
                bg = [r for r in c.audit() if str(r.get("event", "")).startswith("breakglass")
                      or r.get("user") == match.get("user")]
                raise Failure(f"{what}: no '{event}' record with {match} in the trail; "
                              f"break-glass and related records:\n"
                              + "\n".join(map(str, bg[-20:])))
            time.sleep(0.1)

    def code_states(c, user):
        """`keywardctl breakglass list USER`: {code id: state}."""
        r = c.run(["keywardctl", "breakglass", "list", user], check=False)
        check(r.returncode == 0, f"keywardctl breakglass list {user} (exit {r.returncode}):"
                                 f"\n{r.stdout}{r.stderr}")
        return {m.group(1): m.group(2) for m in
                re.finditer(r"^([0-9a-f]{6}-\d{2})\s.*\s(unused|used|expired)\s*$", r.stdout, re.M)}

    def code_unused(c, user, n, what):
        """USER has N unused codes: nothing more was burnt."""
        st_ = code_states(c, user)
        got = sum(1 for v in st_.values() if v == "unused")
        check(got == n, f"{what}: {user} has {got} unused code(s), expected {n}: {st_}")
        return st_

    def report(c, fmt="text"):
        r = c.run(["keywardctl", "report", "--format", fmt], check=False)
        check(r.returncode in (0, 4), f"keywardctl report --format {fmt} exit {r.returncode}:"
                                      f"\n{r.stderr}{r.stdout[-2000:]}")
        return r.stdout

    def report_first(c, want):
        """The report's first section is break-glass, in text and JSON, and holds WANT:
        [(event, user, service or None, reason or None)]."""
        text = report(c, "text")
        first = text.split("Removal actions that failed")[0]
        check("Break-glass" in first and "AC-2" in first and "IA-5" in first,
              f"the text report does not start with the break-glass section:\n{text[:3000]}")
        for ev, user, service, reason in want:
            pat = rf"{ev}\s+\S+\s+\S+\s+{user}\s+{service or '-'}\s"
            check(re.search(pat, first) and (not reason or reason in first),
                  f"the report's break-glass section lacks {ev} of {user} "
                  f"({service}, {reason}):\n{first}")
        j = json.loads(report(c, "json"))
        check(j["sections"][0]["id"] == "breakglass", f"JSON sections: {j['sections'][:2]}")
        evs = [(e["event"], e["user"], e["service"], e["reason"]) for e in j["breakglass"]["events"]]
        for w in want:
            check(any(e[0] == w[0] and e[1] == w[1] and (w[2] is None or e[2] == w[2])
                      and (w[3] is None or e[3] == w[3]) for e in evs),
                  f"JSON breakglass.events lacks {w}: {evs}")
        return text, j

    def status_first(c, user):
        """`keywardctl status` starts with break-glass state naming USER."""
        r = c.run(["keywardctl", "status"], check=False)
        out = r.stdout
        head = out.split("\n\n")[0]
        check(re.search(r"(?i)break-glass", head) and user in head,
              f"keywardctl status does not start with break-glass state for {user}:\n"
              f"{out}{r.stderr}")
        return out

    def ssh_refused(c, user, code):
        """ssh USER@127.0.0.1 (keyboard-interactive through PAM): password, then CODE if
        keyward asks; the login must not succeed."""
        c.write("/etc/ssh/sshd_config.d/keyward-test.conf", SSHD_DROPIN)
        c.run(["systemctl", "restart", "ssh"])
        p = c.pty_agent().spawn(f"{user}-ssh", [
            "ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "PreferredAuthentications=keyboard-interactive", "-o",
            "NumberOfPasswordPrompts=1", f"{user}@127.0.0.1", "echo in-as-$(id -un)"])
        p.expect(r"[Pp]assword: ?$", 20, what=f"sshd's password prompt for {user}")
        p.sendline(ks.PASSWORDS[user])
        m = p.expect(rf"{CODE_PROMPT}|Permission denied|Connection closed|in-as-{user}", 20,
                     what=f"ssh for {user} after the password")
        t = p.transcript()
        if m["match"].startswith("Break-glass"):
            p.sendline(code)
            p.expect(rf"Permission denied|Connection closed|in-as-{user}", 20,
                     what=f"ssh for {user} after the code")
            t = p.transcript()
        check(f"in-as-{user}" not in t, f"a break-glass code let {user} in over ssh:\n{t}")
        return t

    def sudo_refused(c, p, user):
        """USER's `sudo true` in shell P fails (sudo may ask the password up to 3 times)."""
        p.sendline("sudo -k; sudo true; echo sudo-rc=$?")
        for _ in range(4):
            m = p.expect(r"\[sudo\] password for \w+: $|sudo-rc=(\d+)", 30,
                         what=f"{user}'s sudo after the break-glass login")
            if m["groups"][0] is not None:
                break
            p.sendline(ks.PASSWORDS[user])
        t = p.transcript()
        check(re.search(r"sudo-rc=([1-9]\d*)", t),
              f"{user}'s sudo succeeded before a new key was enrolled:\n{t}")

    # -------------------------------------------------------------------------------------

    @scenario("breakglass-code", keys=2, enroll=(("alice", 0), ("carol", 1)))
    def breakglass_code(c):
        """alice's only key is revoked; codes are issued to her and to bob (made a covered
        admin). alice's code fails for bob, for su and over ssh (nothing burnt); it lets
        alice in once at the console (session bound and marked, sudo refused until a new
        key: enroll-required); the same code then fails (used-code). The report's first
        section and `keywardctl status` show it."""
        c.run(["usermod", "-aG", "sudo", "bob"])  # bob: another covered admin, no key
        write_policy(c)
        revoke_only_key(c, "alice", "alice-key0")
        codes = issue(c, "alice")
        bob_codes = issue(c, "bob")
        check(not set(x for _, x in codes) & set(x for _, x in bob_codes),
              "alice and bob got the same code")
        code = codes[0][1]
        code_unused(c, "alice", 4, "after the issue")

        # alice's code is not bob's
        login_code(c, "bob", code, "bob-login", False, "alice's code typed for bob")
        expect_record(c, "alice's code for bob", "breakglass-fail", user="bob",
                      reason="wrong-code")
        code_unused(c, "alice", 4, "after her code was tried for bob")

        # su is not a break-glass service: refused, the code not burnt (from carol's shell:
        # she has a key; root's `su - bob` would need bob's, which he has not)
        q = c.shell("carol", cid="carol-su")
        q.sendline("su -c 'echo in-as-$(id -un)' alice; echo su-rc=$?")
        c.answer_password(q, "alice", prompt=r"Password: $")
        m = q.expect(rf"{CODE_PROMPT}|su-rc=\d+", 20, what="su for alice after her password")
        if m["match"].startswith("Break-glass"):
            q.sendline(code)
            q.expect(r"su-rc=(\d+)", 20, what="su for alice ending")
        t = q.transcript()
        check("in-as-alice" not in t and not re.search(r"su-rc=0\b", t),
              f"su with alice's break-glass code succeeded (su is not in services):\n{t}")
        su_recs = [r for r in c.audit() if r.get("user") == "alice" and r.get("service") == "su"
                   and r.get("result") == "failure"]
        check(su_recs, "no failure record for alice's su in the trail")
        code_unused(c, "alice", 4, "after su refused")

        # ssh: not a break-glass service either
        ssh_refused(c, "alice", code)
        code_unused(c, "alice", 4, "after ssh refused")

        # the console: once
        p, sid = login_code(c, "alice", code, "alice-login", True, "alice's first code")
        use = expect_record(c, "alice's break-glass login", "breakglass-use", user="alice",
                            service="login", result="success")
        m = re.fullmatch(r"code=([0-9a-f]{6}-\d{2})", str(use.get("detail", "")))
        check(m, f"the breakglass-use record does not name the code's id: {use}")
        states = code_unused(c, "alice", 3, "after her break-glass login")
        check(states.get(m.group(1)) == "used",
              f"the code {m.group(1)} the trail names is not the one burnt: {states}")
        check(code not in json.dumps(c.audit()), "the code itself is in the audit trail")
        st.expect_bound(c, f"alice's break-glass session {sid}", user="alice", session=sid)
        t = p.transcript()
        check(re.search(r"(?i)enrol", t),
              f"alice was not told to enrol a new key after the break-glass login:\n{t}")
        # require_enroll: no elevation before a new key
        sudo_refused(c, p, "alice")
        expect_record(c, "alice's sudo refused until a new key", "auth", user="alice",
                      service="sudo", reason="enroll-required")

        # the same code again: refused, and the next code still works only as itself
        login_code(c, "alice", code, "alice-login-2", False, "alice's used code again")
        expect_record(c, "the used code", "breakglass-fail", user="alice",
                      reason="used-code")
        code_unused(c, "alice", 3, "after the used code was refused")

        text, j = report_first(c, [
            ("breakglass-issue", "alice", None, None),
            ("breakglass-issue", "bob", None, None),
            ("breakglass-fail", "bob", "login", "wrong-code"),
            ("breakglass-use", "alice", "login", None),
            ("breakglass-fail", "alice", "login", "used-code"),
        ])
        sess = [s for s in j["breakglass"]["sessions"] if s["user"] == "alice"]
        check(sess and sess[0]["session"] == sid and sess[0]["open"],
              f"the report does not list alice's session {sid} as opened by break-glass and "
              f"still open: {j['breakglass']['sessions']}")
        st_out = status_first(c, "alice")
        check(re.search(rf"alice\s+login\s+{sid}\s", st_out) or f"session {sid}," in st_out,
              f"keywardctl status does not list alice's open break-glass session {sid}:\n{st_out}")
        ks.log("report's break-glass section:\n" + text.split("Removal actions that failed")[0])
        ks.log("keywardctl status:\n" + st_out.split("\n\n")[0])

    @scenario("breakglass-two-person", keys=2, enroll=(("alice", 0), ("carol", 1)))
    def breakglass_two_person(c):
        """two_person = true; alice's only key is revoked. carol runs `keywardctl
        breakglass approve alice` and her emulated key (key 1) is touched: alice's next
        console login goes through without a code, once; the one after is refused. The
        report's first section shows the approval (actor carol) and the use."""
        write_policy(c, two_person=True)
        revoke_only_key(c, "alice", "alice-key0")
        # nobody may approve for themselves, and an uncovered user cannot approve
        r = c.run(["runuser", "-u", "bob", "--", "keywardctl", "breakglass", "approve",
                   "alice"], check=False)
        check(r.returncode != 0, f"bob (no key, not an admin) approved alice's login:\n"
                                 f"{r.stdout}{r.stderr}")
        r = c.run(["runuser", "-u", "carol", "--", "keywardctl", "breakglass", "approve",
                   "alice"], check=False, timeout=60)
        check(r.returncode == 0, f"carol's `keywardctl breakglass approve alice` failed "
                                 f"(exit {r.returncode}):\n{r.stdout}{r.stderr}")
        rec = expect_record(c, "carol's approval", "breakglass-approve", user="alice",
                            result="success")
        check(rec.get("actor") == "carol", f"the approval does not name carol: {rec}")

        p = c.pty_agent().spawn("alice-login", ["login"])
        p.expect(r"login: $", 15, what="login's user name prompt")
        p.sendline("alice")
        p.expect(r"Password: $", 10, what="login's password prompt")
        p.sendline(ks.PASSWORDS["alice"])
        # keyward offers break-glass (no key) and asks for a code; with an approval
        # pending, whatever is typed (here: nothing, Enter) uses the approval
        p.expect(CODE_PROMPT, 20, what="keyward's break-glass prompt for alice (no key)")
        p.sendline("")
        m = p.expect(rf"{c.prompt('alice')}|{REFUSED}", 20,
                     what="alice's login after carol's approval")
        t = p.transcript()
        check(m["match"].startswith("alice@"),
              f"carol's approval did not let alice in without a code:\n{t}")
        use = expect_record(c, "alice's approved login", "breakglass-use", user="alice",
                            result="success")
        check("carol" in str(use.get("detail", "")),
              f"the breakglass-use record does not name the approver: {use}")

        expect_record(c, "alice's break-glass session", "session-bind", user="alice",
                      reason="breakglass")
        # once: the next login gets no way in (no codes were issued)
        q = c.pty_agent().spawn("alice-login-2", ["login"])
        q.expect(r"login: $", 15)
        q.sendline("alice")
        q.expect(r"Password: $", 10)
        q.sendline(ks.PASSWORDS["alice"])
        m = q.expect(rf"{CODE_PROMPT}|{REFUSED}|{c.prompt('alice')}", 20,
                     what="alice's second login after the approval was used")
        if m["match"].startswith("Break-glass"):
            q.sendline("ABCDE-FGHJK-MNPQR-STUVW")
            m = q.expect(rf"{REFUSED}|{c.prompt('alice')}", 20,
                         what="login refusing alice's second login")
        check(not m["match"].startswith("alice@"),
              f"carol's one approval let alice in twice:\n{q.transcript()}")
        expect_record(c, "alice's second login after the approval was used", "breakglass-fail",
                      user="alice", reason="no-codes")
        report_first(c, [("breakglass-approve", "alice", None, None),
                         ("breakglass-use", "alice", "login", None)])
