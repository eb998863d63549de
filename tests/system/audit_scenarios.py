"""audit_scenarios.py: the system layer's audit-evidence scenario (issue #15): the trail's
seal anchors leave the machine through the real journal forwarding, and an auditor on
another machine detects root's rollback and truncation with them. Loaded by
system_test.py (register(st)).

The collector is the host: the harness runs Debian's real systemd-journal-remote there,
listening on loopback; the container (booted in the host's network namespace) runs the
real systemd-journal-upload, which forwards its journal — keywardd's anchor messages
among it — to the collector. Root in the container can rewrite everything on its own
machine, but not what the collector already received. The auditor's keywardctl (the
build tree's, staged as AUDITOR_CTL) runs on the host, with the verification key exported
at setup and the collector's journal file.
"""

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import keyward_system as ks

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
# keywardd's anchor messages (lib/audit.h AUDIT_ANCHOR_MESSAGE_ID)
ANCHOR_MATCH = ["MESSAGE_ID=5b16eb6313ee4944a6befdc85437dcaf"]
EXIT_INTACT = 0
EXIT_NOT_PROVEN = 4
ROLLBACK_WORDS = re.compile(r"roll(ed)?[ -]?back", re.I)
TRUNCATED_WORDS = re.compile(r"truncat", re.I)


class Collector:
    """systemd-journal-remote on the host, on a free loopback port, writing one journal
    file. Stopped (SIGTERM, then SIGKILL) when the scenario ends."""

    def __init__(self):
        if not os.access(JOURNAL_REMOTE, os.X_OK):
            raise ks.SystemLayerError(
                f"{JOURNAL_REMOTE} is not installed on the host (Debian package "
                f"systemd-journal-remote; scripts/deps installs it)")
        self.dir = tempfile.mkdtemp(prefix="keyward-collector-")
        self.path = os.path.join(self.dir, "remote.journal")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(os.path.join(self.dir, "journal-remote.log"), "wb")
        self.proc = subprocess.Popen(
            [JOURNAL_REMOTE, f"--listen-http=127.0.0.1:{self.port}", f"--output={self.path}",
             "--split-mode=none"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise ks.SystemLayerError(
                    f"systemd-journal-remote exited with {self.proc.returncode}: "
                    f"{self.output()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise ks.SystemLayerError("systemd-journal-remote did not listen within 10 s: "
                                          + self.output())
            time.sleep(0.05)
        ks.log(f"collector: systemd-journal-remote on 127.0.0.1:{self.port} -> {self.path}")

    def output(self):
        with open(os.path.join(self.dir, "journal-remote.log"), "rb") as f:
            return f.read().decode(errors="replace")[-2000:]

    def entries(self, *match):
        """The collector's entries matching journalctl MATCHes, as exported text lines."""
        if not os.path.exists(self.path):
            return []
        r = subprocess.run(["journalctl", f"--file={self.path}", "--no-pager", "-q",
                            "-o", "cat", "--output-fields=MESSAGE"] + list(match),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return r.stdout.splitlines()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def register(st):
    scenario, check = st.scenario, st.check

    def auditor_ctl(c, *args):
        """The auditor's keywardctl, on the host."""
        return subprocess.run([os.path.join(c.kw_dir, ks.AUDITOR_CTL)] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=60)

    def copy_out(c, paths, dest):
        """Copies the container's files PATHS (globs) into DEST on the host (what an
        auditor takes from the machine)."""
        os.makedirs(dest, exist_ok=True)
        r = c.sh("cd / && tar -cf - " + " ".join(p.lstrip("/") for p in paths) +
                 " | base64 -w0", timeout=60)
        subprocess.run(["tar", "-xf", "-", "-C", dest], input=base64.b64decode(r.stdout),
                       check=True)

    def auditor_copy(c, work, name):
        """The container's trail as the auditor takes it off the machine (a copy on the
        host); returns the path of the live file in it."""
        dest = os.path.join(work, name)
        copy_out(c, ["/var/log/keyward"], dest)
        return os.path.join(dest, ks.AUDIT_LOG.lstrip("/"))

    def auditor_verify(c, vkey, col, host, trail):
        return auditor_ctl(c, "audit", "verify", "--verification-key", vkey,
                           "--anchor-journal", col.path, "--anchor-host", host, trail)

    def covered_su(c, p, i):
        p.sendline(f"su -c 'echo elevated-{i}-$(id -un)' root")
        c.answer_password(p, "root", prompt=r"Password: $")
        p.expect(r"Touch your security key for root", 15,
                 what=f"keyward's touch cue for root (su #{i})")
        p.expect(rf"elevated-{i}-root", 20, what=f"su #{i} to root")

    def seal_now(c):
        """keywardd seals on stop: a restart closes the trail's current stretch with a
        sealed checkpoint, whose anchor goes to the journal."""
        c.run(["systemctl", "restart", "keywardd"])
        c.wait_daemon()

    def wait_anchors(c, col, host, n, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            got = col.entries(*ANCHOR_MATCH, f"_HOSTNAME={host}")
            if len(got) >= n:
                return got
            if time.monotonic() > deadline:
                raise st.Failure(
                    f"the collector holds {len(got)} keyward anchor(s) from {host}, expected "
                    f"at least {n} within {timeout} s; systemd-journal-upload in the "
                    f"container:\n" + c.journal("-u", "systemd-journal-upload", "-n", "30")
                    + "\ncollector log:\n"
                    + col.output())
            time.sleep(0.2)


    @scenario("audit-collector", private_network=False, enroll=(("alice", 0), ("root", 0)))
    def audit_collector(c):
        """The seal anchors reach a real systemd-journal-remote on another machine (the
        host) through the container's real systemd-journal-upload. root then rolls the
        trail, key and state back to an older copy, and later truncates the trail to a
        seal: the auditor's keywardctl on the host, with the verification key exported at
        setup and the collector's journal, says INTACT before, and detects the rollback
        and the truncation after (exit status and words)."""
        col = Collector()
        work = tempfile.mkdtemp(prefix="keyward-auditor-")
        try:
            # The package started keywardd with a key nobody can prove: start the trail
            # over with a verification key, as the README says; the key leaves the machine
            # (the compliance team's).
            c.start_trail_over("/root/verification.key")
            vkey = os.path.join(work, "verification.key")
            with open(vkey, "w") as f:
                f.write(c.run(["cat", "/root/verification.key"]).stdout)
            os.chmod(vkey, 0o600)
            c.run(["rm", "-f", "/root/verification.key"])
            # Forward this machine's journal to the collector.
            c.write("/etc/systemd/journal-upload.conf",
                    f"[Upload]\nURL=http://127.0.0.1:{col.port}\n")
            c.run(["systemctl", "restart", "systemd-journal-upload"])
            host = c.hostname
            p = c.shell("alice")
            covered_su(c, p, 0)
            seal_now(c)
            n1 = len(wait_anchors(c, col, host, 1))
            # root keeps a copy of the trail, its key and keyward's state
            c.sh("mkdir -p /root/old/log /root/old/lib && "
                 "cp -a /var/log/keyward /root/old/log/ && cp -a /var/lib/keyward /root/old/lib/")
            covered_su(c, p, 1)
            seal_now(c)
            wait_anchors(c, col, host, n1 + 1)
            # The auditor, before the intruder acts: INTACT with key and anchors.
            good = auditor_copy(c, work, "good")
            r = auditor_verify(c, vkey, col, host, good)
            check(r.returncode == EXIT_INTACT and "INTACT" in r.stdout,
                  f"the auditor's verify of the untouched trail with the collector's "
                  f"anchors did not say INTACT (exit {r.returncode}):\n{r.stdout}{r.stderr}")
            # Rollback: root restores the older trail, key and state, and starts keywardd.
            c.sh("systemctl stop keywardd && rm -rf /var/log/keyward /var/lib/keyward && "
                 "cp -a /root/old/log/keyward /var/log/ && cp -a /root/old/lib/keyward /var/lib/ "
                 "&& systemctl start keywardd")
            c.wait_daemon()
            rolled = auditor_copy(c, work, "rolled-back")
            r = auditor_verify(c, vkey, col, host, rolled)
            check(r.returncode not in (EXIT_INTACT, EXIT_NOT_PROVEN) and
                  ROLLBACK_WORDS.search(r.stdout + r.stderr),
                  f"the auditor's verify did not detect root's rollback (exit "
                  f"{r.returncode}):\n{r.stdout}{r.stderr}")
            # Truncation: root cuts the trail back to its first seal (no rollback of
            # state); the anchors of the later seals are at the collector.
            c.run(["systemctl", "stop", "keywardd"])
            good_lines = open(good).read().splitlines(keepends=True)
            first_seal = next(i for i, line in enumerate(good_lines)
                              if '"event":"seal"' in line)
            c.write(ks.AUDIT_LOG, "".join(good_lines[:first_seal + 1]), mode="0600")
            cut = auditor_copy(c, work, "truncated")
            r = auditor_verify(c, vkey, col, host, cut)
            check(r.returncode not in (EXIT_INTACT, EXIT_NOT_PROVEN) and
                  TRUNCATED_WORDS.search(r.stdout + r.stderr),
                  f"the auditor's verify did not detect the trail truncated to its first "
                  f"seal (exit {r.returncode}):\n{r.stdout}{r.stderr}")
        finally:
            col.close()
            shutil.rmtree(work, ignore_errors=True)
            col.remove()

    @scenario("audit-refusals", enroll=(("alice", 0),))
    def audit_refusals(c):
        """Every refusal reaches the evidence with the real su: carol is covered (group
        sudo) but has no key; root's `su - carol` is refused with the enrol hint and the
        trail holds the refusal (not-enrolled, with the rule's name and the policy digest,
        decided by keywardd for the module). With keywardd stopped (masked), carol's own
        sudo is refused and is in the journal with the module's structured fields
        (KEYWARD_DECIDED_BY=pam_keyward), since no trail can take it."""
        def su_carol(what):
            r = c.run(["su", "-", "carol", "-c", "echo carol-in"], check=False, timeout=30)
            out = r.stdout + r.stderr
            check(r.returncode != 0 and "carol-in" not in out,
                  f"su to carol without an enrolled key succeeded ({what}): {out}")
            return out

        n0 = len(c.audit())
        out = su_carol("keywardd up")
        check("No security key is enrolled for carol" in out,
              f"su did not tell why carol was refused: {out!r}")
        recs = st.expect_audit(c, n0, "the refusal of su to carol", user="carol",
                               result="failure", reason="not-enrolled")
        check(recs[0].get("service") in ("su", "su-l"),
              lambda: "no not-enrolled refusal of su to carol in the trail: "
                      f"{c.audit()[n0:]}")
        check(recs[0].get("rule_name") and recs[0].get("policy"),
              f"the refusal lacks the rule's name or the policy digest: {recs[0]}")
        # keywardd down: the module decides alone; its refusal goes to the journal.
        # (root's su to carol is an account phase run by root: with keywardd down the
        # module lets it through, so carol gets a shell and runs sudo herself.)
        c.run(["systemctl", "mask", "--now", "keywardd"])
        p = c.shell("carol", cid="carol-down")
        p.sendline("sudo -k; sudo id -u; echo sudo-rc=$?")
        c.answer_password(p, "carol")
        p.expect(r"sudo-rc=(\d+)", 15, what="carol's sudo with keywardd down")
        check(not re.search(r"sudo-rc=0", p.transcript()),
              f"carol's sudo succeeded with keywardd down:\n{p.transcript()}")
        deadline = time.monotonic() + 5
        while True:
            # (no cursor: the record is in carol's user journal file, since sudo runs
            # with her real uid, and a cursor of the system file does not seek in it)
            r = c.run(["journalctl", "--no-pager", "-o", "json",
                       "KEYWARD_DECIDED_BY=pam_keyward", "KEYWARD_USER=carol",
                       "KEYWARD_SERVICE=sudo"], check=False)
            ents = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
            if ents or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        check(ents and ents[0].get("KEYWARD_RESULT") == "failure"
              and ents[0].get("KEYWARD_SERVICE") == "sudo",
              lambda: "carol's sudo refused with keywardd down is not in the journal with "
                      f"KEYWARD_DECIDED_BY=pam_keyward: {ents} {r.stderr}\n"
                      + c.run(["journalctl", "-o", "verbose", "-n", "2", "--no-pager",
                               "SYSLOG_IDENTIFIER=pam_keyward"], check=False).stdout)
