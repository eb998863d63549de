"""package_scenarios.py: the system layer's package and fault scenarios (issue #12).

Install, upgrade, remove, purge and misconfiguration on the booted container, each
followed by a real login: removing keyward never strands a PAM stack, purge never makes
the trail unverifiable, an upgrade keeps sessions enforced, a broken policy or a stopped
daemon never denies an account the policy does not cover, and keyward's faults are not
reported as wrong passwords. Loaded by system_test.py (register(st)).
"""

import re
import time

import keyward_system as ks
from keyward_system import Failure

PAM_LINE = re.compile(r"^[^#\n]*pam_keyward\.so", re.M)


def register(st):
    scenario, check = st.scenario, st.check

    # --- what a person does after each step -------------------------------------------

    def bob_logs_in(c, after):
        """bob (not covered) logs in on a console with his password: a real login."""
        p, sid = c.login("bob", cid=f"bob-login-{after}")
        p.sendline("echo bob-in-$((6*7))")
        p.expect(r"bob-in-42", 5, what=f"bob's shell after {after}")
        check(not st.KEY_WORDS.search(p.transcript()),
              lambda: f"bob was shown keyward messages after {after}:\n{p.transcript()}")
        p.close()

    def alice_sudo(c, after, expect_key=True):
        """alice runs `sudo -k; sudo id -u`: with keyward she needs the key (touched by the
        emulated key), without it only her password."""
        cur = c.cursor()
        p = c.shell("alice", cid=f"alice-sudo-{after}")
        p.sendline("sudo -k; sudo id -u; echo sudo-rc=$?")
        c.answer_password(p, "alice")
        p.expect(r"sudo-rc=0", 15, what=f"alice's sudo after {after}")
        if expect_key:
            st.key_used(c, "alice", "sudo", cur)
        p.close()

    def apt_remove(c, purge=False):
        r = c.run(["apt-get", "purge" if purge else "remove", "-y", "-q", "-o",
                   "Dpkg::Use-Pty=0", "keyward"], check=False, timeout=120)
        return r.returncode, r.stdout + r.stderr

    def installed(c):
        r = c.run(["dpkg-query", "-W", "-f=${Status}", "keyward"], check=False)
        return r.stdout.strip() == "install ok installed"

    def pam_lines(c):
        r = c.run(["grep", "-rn", "pam_keyward.so", "/etc/pam.d"], check=False)
        return [l for l in r.stdout.splitlines() if PAM_LINE.search(l.split(":", 2)[-1])]

    def refused_removal(c, out, names, what):
        check(installed(c), f"{what}: keyward was removed anyway:\n{out}")
        check("NOT removing keyward" in out, f"{what}: apt said nothing about why:\n{out}")
        for n in names:
            check(n in out, f"{what}: the message does not name {n!r}:\n{out}")
        r = c.run(["sh", "-c", "ls /lib/*/security/pam_keyward.so /usr/lib/*/security/"
                   "pam_keyward.so 2>/dev/null"], check=False)
        check(r.stdout.strip(), f"{what}: pam_keyward.so is gone although the removal stopped")

    # --- removal ------------------------------------------------------------------------

    @scenario("remove-enabled")
    def remove_enabled(c):
        """`apt remove keyward` with the keyward profile enabled and no local edits: every
        keyward line leaves /etc/pam.d before the module goes; bob and alice log in and
        sudo with their passwords afterwards."""
        rc, out = apt_remove(c)
        check(rc == 0, f"apt-get remove failed (exit {rc}):\n{out}")
        check(not installed(c), "keyward is still installed")
        left = pam_lines(c)
        check(not left, f"PAM files still load pam_keyward.so after the removal: {left}")
        bob_logs_in(c, "the removal")
        alice_sudo(c, "the removal", expect_key=False)

    @scenario("remove-edited-block")
    def remove_edited_block(c):
        """An admin added a comment inside pam-auth-update's managed block of common-auth:
        pam-auth-update then refuses to rewrite (and exits 0). `apt remove keyward` stops,
        naming the lines still loading pam_keyward.so; keyward stays installed and
        enforcing, and logins keep working."""
        c.sh(r"sed -i 's/^\(auth.*pam_keyward\.so.*\)$/# local note by the admin\n\1/' "
             r"/etc/pam.d/common-auth")
        check("# local note by the admin" in c.run(["cat", "/etc/pam.d/common-auth"]).stdout,
              "the fixture edit did not apply")
        rc, out = apt_remove(c)
        check(rc != 0, f"apt-get remove succeeded with a locally edited managed block:\n{out}")
        refused_removal(c, out, ["local modifications", "/etc/pam.d/common-auth:"],
                        "locally edited block")
        bob_logs_in(c, "the stopped removal")
        alice_sudo(c, "the stopped removal", expect_key=True)

    @scenario("remove-handwritten")
    def remove_handwritten(c):
        """A pam_keyward.so line written by hand into /etc/pam.d/sudo: `apt remove`
        stops before changing anything and names the file and line; sudo keeps working
        for bob (uncovered) and, with the key, for alice."""
        c.sh("echo 'auth required pam_keyward.so' >> /etc/pam.d/sudo")
        n = len(c.run(["cat", "/etc/pam.d/sudo"]).stdout.splitlines())
        before = c.run(["cat", "/etc/pam.d/common-auth"]).stdout
        rc, out = apt_remove(c)
        check(rc != 0, f"apt-get remove succeeded with a hand-written line:\n{out}")
        refused_removal(c, out, [f"/etc/pam.d/sudo:{n}:auth required pam_keyward.so"],
                        "hand-written line")
        check(c.run(["cat", "/etc/pam.d/common-auth"]).stdout == before,
              "the stopped removal changed common-auth")
        p = c.shell("bob", cid="bob-sudo")
        p.sendline("sudo -k; sudo id -u; echo sudo-rc=$?")
        c.answer_password(p, "bob")
        p.expect(r"sudo-rc=0", 15, what="bob's sudo after the stopped removal")
        alice_sudo(c, "the stopped removal", expect_key=True)

    @scenario("remove-disabled")
    def remove_disabled(c):
        """The admin disabled the profile first (pam-auth-update --disable keyward), then
        `apt remove keyward`: it succeeds, nothing loads the module, logins work."""
        c.run(["pam-auth-update", "--disable", "keyward"])
        check(not pam_lines(c), f"--disable left lines: {pam_lines(c)}")
        rc, out = apt_remove(c)
        check(rc == 0, f"apt-get remove failed (exit {rc}):\n{out}")
        check(not pam_lines(c), f"lines loading pam_keyward.so: {pam_lines(c)}")
        bob_logs_in(c, "the removal")
        alice_sudo(c, "the removal", expect_key=False)

    # --- purge ----------------------------------------------------------------------------

    @scenario("purge-reinstall")
    def purge_reinstall(c):
        """`apt purge keyward` keeps the audit trail together with its seal key (and the
        credentials) in /var/backups/keyward-purged-*, and says so; the archived trail
        verifies with the verification key exported at setup (the README's steps); a
        reinstall starts a new trail (a chain, NOT PROVEN: its key was never exported),
        the key enrolls again ("already exists" would be wrong) and alice's sudo needs it."""
        vk = c.start_trail_over()
        alice_sudo(c, "setup")
        rc, out = apt_remove(c, purge=True)
        check(rc == 0, f"apt-get purge failed (exit {rc}):\n{out}")
        m = re.search(r"are kept in (/var/backups/keyward-purged-\S+)", out)
        check(m, f"purge did not say where the trail went:\n{out}")
        arch = m.group(1)
        listing = c.run(["ls", "-la", arch, f"{arch}/credentials"]).stdout
        for f in ("audit.log", "audit-seal.key", "alice.creds"):
            check(f in listing, f"{f} is not in the purge archive:\n{listing}")
        mode = c.run(["stat", "-c", "%a %U", arch]).stdout.split()
        check(mode == ["700", "root"], f"the archive is {mode}, not 700 root")
        check(not c.run(["ls", "/var/log/keyward/"], check=False).stdout.strip(),
              "purge left trail files in /var/log/keyward")
        bob_logs_in(c, "the purge")
        c.install(c.staged_deb())
        c.wait_daemon()
        check("--verification-key" in out,
              f"purge did not say how to verify a forward-secure trail:\n{out}")
        r = c.run(["sh", "-c", f"keywardctl audit verify --strict --verification-key {vk} "
                   f"{arch}/audit.log*"], check=False)
        check(r.returncode == 0 and "INTACT" in r.stdout,
              f"the archived trail does not verify with the verification key "
              f"(exit {r.returncode}):\n{r.stdout}{r.stderr}")
        c.write_policy()
        c.run(["systemctl", "reload", "keywardd"])
        c.enroll("alice", 0)
        c.run(["pam-auth-update", "--enable", "keyward"])
        alice_sudo(c, "the reinstall")
        r = c.run(["keywardctl", "audit", "verify"], check=False)
        check(r.returncode == 4 and "NOT PROVEN" in r.stdout,
              f"the new trail (key never exported) is not an intact chain that verify "
              f"calls NOT PROVEN (exit {r.returncode}):\n{r.stdout}{r.stderr}")
        first = c.audit()[0]
        check(first.get("event") == "rotate" and first.get("reason") == "genesis",
              f"the reinstalled trail does not start with a genesis record: {first}")

    # --- faults of keyward ----------------------------------------------------------------

    @scenario("broken-policy-restart")
    def broken_policy_restart(c):
        """keyward.conf is broken and keywardd restarted: it runs the last good policy and
        says loudly that the file is rejected (journal with file:line, keywardctl status,
        the audit trail); bob logs in without delay, alice's sudo still needs the key."""
        cur = c.cursor()
        c.sh("echo 'rules = ( { name = \"x\"; require = \"maybe\"; } );' >> "
             "/etc/keyward/keyward.conf")
        c.run(["systemctl", "restart", "keywardd"])
        c.wait_daemon()
        c.wait_journal(r"POLICY REJECTED: /etc/keyward/keyward\.conf cannot be used "
                       r"\(/etc/keyward/keyward\.conf:\d+: ", cur)
        r = c.run(["keywardctl", "status"], check=False)
        check(r.returncode == 1 and "REJECTED" in r.stdout and "keyward.conf:" in r.stdout,
              f"keywardctl status does not report the rejected file:\n{r.stdout}{r.stderr}")
        recs = [x for x in c.audit() if x.get("event") == "policy-load"]
        check(any(x.get("reason") == "rejected" and x.get("result") == "failure" for x in recs)
              and any(x.get("reason") == "last-good" for x in recs),
              f"the audit trail does not record the rejection and the last good policy: {recs}")
        t0 = time.monotonic()
        bob_logs_in(c, "the broken policy")
        dt = time.monotonic() - t0
        check(dt < 6, f"bob's login took {dt:.1f} s with a broken policy (keyward made him wait)")
        alice_sudo(c, "the broken policy", expect_key=True)

    @scenario("daemon-down")
    def daemon_down(c):
        """keywardd is stopped (and masked, so D-Bus cannot start it): alice's sudo is
        refused with a message naming the cause, reported by sudo as a PAM error
        ("PAM authentication error: Error in service module"),
        not "Sorry, try again" and not as a wrong password in its log; bob's sudo works."""
        c.run(["systemctl", "mask", "--now", "keywardd"])
        cur = c.cursor()
        p = c.shell("alice", cid="alice-down")
        p.sendline("sudo -k; sudo id -u; echo sudo-rc=$?")
        c.answer_password(p, "alice")
        p.expect(r"sudo-rc=(\d+)", 15, what="alice's refused sudo")
        t = p.transcript()
        check("keyward: the keyward daemon is not running" in t,
              f"alice was not told that keywardd is not running:\n{t}")
        check("Sorry, try again" not in t, f"sudo treated keyward's fault as a wrong password:\n{t}")
        check("PAM authentication error: Error in service module" in t,
              f"sudo did not report keyward's fault as a PAM (system) error:\n{t}")
        check(not re.search(r"sudo-rc=0", t), f"alice's sudo succeeded without keywardd:\n{t}")
        log = c.journal("-t", "sudo", after=cur)
        check("incorrect password attempt" not in log,
              f"sudo logged a wrong password for keyward's fault:\n{log}")
        q = c.shell("bob", cid="bob-down")
        q.sendline("sudo -k; sudo id -u; echo sudo-rc=$?")
        c.answer_password(q, "bob")
        q.expect(r"sudo-rc=0", 15, what="bob's sudo while keywardd is down")
        bob_logs_in(c, "keywardd stopped")

    @scenario("sudo-bind-refused")
    def sudo_bind_refused(c):
        """keywardd cannot bind alice's sudo (max_bindings = 1, and her console login
        holds the one binding): sudo must not run the command unbound. It stops at the
        session phase (pam_open_session: Permission denied), alice is told why, and the
        refused binding is in the audit trail."""
        text = ks.POLICY.format(timeout=ks.TIMEOUT_MS, login_removal=ks.LOGIN_REMOVAL["lock"])
        text = text.replace('audit_failure = "deny";', 'audit_failure = "deny";\n\tmax_bindings = 1;')
        check("max_bindings = 1;" in text, "the policy edit did not apply")
        c.write("/etc/keyward/keyward.conf", text)
        c.run(["systemctl", "reload", "keywardd"])
        p, sid = c.login("alice")
        n0 = len(c.audit())
        p.sendline("sudo -k; sudo sh -c 'echo RAN-AS-$(id -u)'; echo sudo-rc=$?")
        c.answer_password(p, "alice")
        p.expect(r"sudo-rc=(\d+)", 15, what="the end of alice's refused sudo")
        t = p.transcript()
        check("RAN-AS-0" not in t, f"the elevated command ran although it could not be bound:\n{t}")
        check("could not be bound to your security key" in t and "max_bindings" in t,
              f"alice was not told why:\n{t}")
        check("pam_open_session: Permission denied" in t, f"sudo did not stop at the session:\n{t}")
        st.expect_audit(c, n0, "the refused binding", event="session-bind", result="failure",
                        reason="too-many-bindings", user="alice", service="sudo")

    # --- upgrade --------------------------------------------------------------------------

    @scenario("upgrade", deb="previous", login_removal="terminate")
    def upgrade(c):
        """keyward 0.1.0 (built from the git history) is installed and alice logs in on a
        console (a bound session); `apt install` of this tree's .deb upgrades it: the new
        daemon runs at once, keeps the binding and the trail, and pulling the key right
        after the upgrade ends alice's session."""
        p, sid = c.login("alice")
        n = int(c.sh("ls /run/keyward/bindings | wc -l").stdout.strip())
        check(n == 1, f"alice's login under 0.1.0 left {n} bindings, not 1")
        pid_before = c.run(["systemctl", "show", "-p", "MainPID", "--value",
                            "keywardd"]).stdout.strip()
        cur = c.cursor()
        c.install(c.staged_deb())
        c.wait_daemon()
        pid_after = c.run(["systemctl", "show", "-p", "MainPID", "--value",
                           "keywardd"]).stdout.strip()
        check(pid_after != pid_before, "keywardd was not restarted by the upgrade")
        r = c.run(["keywardctl", "status"])
        check(re.search(r"version: 0\.2\.", r.stdout), f"not the new daemon:\n{r.stdout}")
        c.wait_journal(r"Loaded 1 session binding\(s\)", cur)
        t0 = time.monotonic()
        c.run(c.unplug_argv(0))
        deadline = time.monotonic() + 5
        while c.session(sid) and c.session(sid).get("State") not in (None, "closing"):
            if time.monotonic() > deadline:
                raise Failure(f"alice's session {sid} still {c.session(sid)} 5 s after "
                              f"the pull that followed the upgrade")
            time.sleep(0.1)
        ks.log(f"session {sid} ended {time.monotonic() - t0:.2f} s after the pull")
        r = c.run(["keywardctl", "audit", "verify"], check=False)
        check(r.returncode == 0, f"the trail across the upgrade does not verify:\n"
                                 f"{r.stdout}{r.stderr}")
        check(any(x.get("event") == "action" and x.get("session") == sid for x in c.audit()),
              "no audit record of the action on alice's session after the upgrade")
