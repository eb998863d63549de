#!/usr/bin/python3
"""audit_test.py: integration tests of the audit trail through keywardctl — tampering
detected at the right line with the right exit code, rotation, crash-torn lines, and the
compliance report in every format (HTML also rendered in headless chromium).

Usage: audit_test.py --ctl KEYWARDCTL --tool AUDIT-TESTTOOL CASE
The fixture trail for the report is written here, independently of the C writer (same
format: compact JSON lines, prev = SHA-256 of the previous line, seal MAC = HMAC-SHA-256
over the seal line up to ',"mac":'), so the verifier is also checked against a second
implementation of the format."""

import argparse
import csv
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

ZERO = "0" * 64


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Env:
    def __init__(self, args):
        self.ctl = args.ctl
        self.tool = args.tool
        self.dir = tempfile.mkdtemp(prefix="keyward-audit-test.")

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def run(self, argv, env=None, check_rc=None):
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.run(argv, capture_output=True, text=True, env=e, timeout=120)
        if check_rc is not None and p.returncode != check_rc:
            fail("%s exited %d, expected %d\nstdout:\n%s\nstderr:\n%s"
                 % (" ".join(argv), p.returncode, check_rc, p.stdout, p.stderr))
        return p

    def ctl_run(self, args, **kw):
        # -c to a missing file is an error; a policy is given only where a case wants it
        return self.run([self.ctl] + args, **kw)

    def legacy_key(self, key):
        """A legacy static seal key (32 raw bytes): the cases written before forward-secure
        sealing keep writing and verifying legacy trails with --key."""
        if not os.path.exists(key):
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, os.urandom(32))
            os.close(fd)

    def make_trail(self, name="t", count=60, every=8, extra=(), fss=False):
        log, key = self.path(name + ".log"), self.path(name + ".key")
        if not fss:
            self.legacy_key(key)
        self.run([self.tool, "append", "--log", log, "--key", key, "--every", str(every),
                  "--count", str(count)] + list(extra), check_rc=0)
        return log, key


def read_lines(path):
    with open(path, "rb") as f:
        return f.read().split(b"\n")[:-1]


def write_lines(path, lines):
    with open(path, "wb") as f:
        f.write(b"".join(l + b"\n" for l in lines))


def expect_tampered(env, args, kind, line, fname=None):
    p = env.ctl_run(["audit", "verify"] + args)
    check(p.returncode == 1, "verify exit %d, expected 1 (tampered)\n%s%s" % (p.returncode, p.stdout, p.stderr))
    m = re.search(r"^(.*):(\d+): TAMPERED \(([\w-]+)\): (.*)$", p.stdout, re.M)
    check(m is not None, "no TAMPERED line in output:\n" + p.stdout)
    check(m.group(3) == kind, "detected as %s, expected %s: %s" % (m.group(3), kind, m.group(0)))
    check(int(m.group(2)) == line, "detected at line %s, expected %d: %s" % (m.group(2), line, m.group(0)))
    if fname:
        check(m.group(1).endswith(fname), "detected in %s, expected %s" % (m.group(1), fname))
    print("ok: %s detected at line %d: %s" % (kind, line, m.group(4)))


def expect_intact(env, args):
    p = env.ctl_run(["audit", "verify"] + args)
    check(p.returncode == 0 and "INTACT" in p.stdout,
          "verify exit %d, expected 0 (intact)\n%s%s" % (p.returncode, p.stdout, p.stderr))
    return p.stdout


def sha(b):
    return hashlib.sha256(b).hexdigest()


def rechain(lines, start):
    """What an attacker without the seal key can do: recompute seq and prev from START on."""
    prev_seq = json.loads(lines[start - 1])["seq"]
    for i in range(start, len(lines)):
        lines[i] = re.sub(rb'"seq":\d+', b'"seq":%d' % (prev_seq + 1), lines[i], count=1)
        lines[i] = re.sub(rb'"prev":"[0-9a-f]{64}"', ('"prev":"%s"' % sha(lines[i - 1])).encode(), lines[i])
        prev_seq += 1
    return lines


# Layout of make_trail(count=60, every=8): line 1 file header, 2 open seal, 3-10 records,
# 11 seal, 12-19 records, 20 seal, 21-28, 29 seal, ... last line the stop seal.

def case_intact(env):
    log, key = env.make_trail()
    out = expect_intact(env, ["--key", key, "--strict", log])
    # header + open seal + 60 records + 7 interval seals + stop seal
    check("records:        70 (seq 1..70)" in out and
          "seals:          9 (0 forward-secure), 9 proved, 0 NOT checked" in out,
          "unexpected counts:\n" + out)
    # chain-only mode says so, and is not a green INTACT (exit 4)
    p = env.ctl_run(["audit", "verify", "--no-key", log], check_rc=4)
    check("NOT PROVEN" in p.stdout and "\nINTACT" not in "\n" + p.stdout, p.stdout)


def case_edit(env):
    log, key = env.make_trail()
    lines = read_lines(log)
    check(b'"user":"alice"' in lines[14], "fixture: line 15 is not a record")
    lines[14] = lines[14].replace(b'"user":"alice"', b'"user":"mallo"')
    write_lines(log, lines)
    expect_tampered(env, ["--key", key, log], "edited", 15)


def case_delete(env):
    log, key = env.make_trail()
    lines = read_lines(log)
    del lines[14]
    write_lines(log, lines)
    expect_tampered(env, ["--key", key, log], "deleted", 15)


def case_swap(env):
    log, key = env.make_trail()
    lines = read_lines(log)
    lines[14], lines[15] = lines[15], lines[14]
    write_lines(log, lines)
    expect_tampered(env, ["--key", key, log], "reordered", 15)


def case_truncate(env):
    log, key = env.make_trail()
    lines = read_lines(log)
    n = len(lines)
    # cut inside the last line
    with open(log, "r+b") as f:
        f.truncate(os.path.getsize(log) - 20)
    expect_tampered(env, ["--key", key, log], "truncated", n)
    # cut at a line boundary after the last seal: --strict says so ...
    write_lines(log, lines[:n - 3])
    expect_tampered(env, ["--key", key, "--strict", log], "truncated", n - 3)
    # ... and without --strict the unsealed tail is reported, as documented
    p = env.ctl_run(["audit", "verify", "--key", key, log], check_rc=0)
    check("unsealed tail:  2 record(s)" in p.stdout, p.stdout)


def case_recompute(env):
    log, key = env.make_trail()
    lines = read_lines(log)
    check(b'"tty":"pts/0"' in lines[14], "fixture: line 15 is not a record")
    lines[14] = lines[14].replace(b'"tty":"pts/0"', b'"tty":"pts/9"')
    write_lines(log, rechain(lines, 15))
    # The chain is consistent again; the next seal (line 20) cannot be forged.
    expect_tampered(env, ["--key", key, log], "forged-seal", 20)
    # Without the key the rewrite is invisible: that is why verify needs it, and says
    # NOT PROVEN (exit 4) without it.
    env.ctl_run(["audit", "verify", "--no-key", log], check_rc=4)


def case_drop_seals(env):
    log, key = env.make_trail()
    lines = read_lines(log)
    lines[14] = lines[14].replace(b'"user":"alice"', b'"user":"mallo"')
    kept = lines[:15] + [l for l in lines[15:] if b'"event":"seal"' not in l]
    write_lines(log, rechain(kept, 15))
    # 8 records after the seal at line 11 are allowed; the 9th (line 20) is one too many.
    expect_tampered(env, ["--key", key, log], "missing-seal", 20)


def case_forged_seal(env):
    log, key = env.make_trail()
    lines = read_lines(log)
    check(b'"event":"seal"' in lines[19], "fixture: line 20 is not a seal")
    mac = re.search(rb'"mac":"([0-9a-f]{64})"', lines[19]).group(1)
    lines[19] = lines[19].replace(mac, (b"0" if mac[:1] != b"0" else b"1") + mac[1:])
    write_lines(log, lines)
    expect_tampered(env, ["--key", key, log], "forged-seal", 20)


def case_rewrite(env):
    """Rewriting the whole trail from the start with a key of one's own."""
    log, key = env.make_trail()
    fake_log, fake_key = env.make_trail("fake", count=60)
    shutil.copy(fake_log, log)
    expect_tampered(env, ["--key", key, log], "wrong-key", 2)


def case_exit_codes(env):
    log, key = env.make_trail()
    env.ctl_run(["audit", "verify", "--bogus"], check_rc=2)
    env.ctl_run(["audit", "verify", "--key", key, "--no-key", log], check_rc=2)
    env.ctl_run(["audit", "frobnicate"], check_rc=2)
    env.ctl_run(["audit", "verify", "--key", key, env.path("missing.log")], check_rc=3)
    env.ctl_run(["audit", "verify", "--key", env.path("missing.key"), log], check_rc=3)
    os.chmod(key, 0o644)
    p = env.ctl_run(["audit", "verify", "--key", key, log], check_rc=3)
    check("world-readable" in p.stderr or "group-readable" in p.stderr, p.stderr)
    os.chmod(key, 0o600)
    env.ctl_run(["audit", "verify", "--key", key, log], check_rc=0)


def case_rotation(env):
    log, key = env.make_trail(count=200, every=16, extra=["--rotate", "4096"])
    rotated = sorted(f for f in os.listdir(env.dir) if re.match(r"t\.log\.\d{6}$", f))
    check(len(rotated) >= 3, "expected several rotated files, got %s" % rotated)
    files = [env.path(f) for f in rotated] + [log]
    out = expect_intact(env, ["--key", key, "--strict"] + files)
    check("files:          %d (chain starts at the genesis file)" % len(files) in out, out)
    # the default file list (policy's audit_log and its rotated files)
    conf = env.path("keyward.conf")
    with open(conf, "w") as f:
        f.write('settings = { audit_log = "%s"; state_dir = "%s"; };\nrules = ();\n'
                'default = { require = "none"; };\n' % (log, env.dir))
    shutil.copy(key, env.path("audit-seal.key"))
    os.chmod(env.path("audit-seal.key"), 0o600)
    p = env.ctl_run(["-c", conf, "audit", "verify", "--strict"], check_rc=0)
    check("files:          %d" % len(files) in p.stdout, p.stdout)
    # a missing middle file, files out of order, an edit in an older file
    expect_tampered(env, ["--key", key] + files[:1] + files[2:], "file-gap", 1, os.path.basename(files[2]))
    expect_tampered(env, ["--key", key] + [files[1], files[0]] + files[2:], "file-gap", 1, os.path.basename(files[0]))
    lines = read_lines(files[1])
    i = next(i for i, l in enumerate(lines) if b'"event":"auth"' in l)
    lines[i] = lines[i].replace(b'"service":"sudo"', b'"service":"suda"')
    write_lines(files[1], lines)
    expect_tampered(env, ["--key", key] + files, "edited", i + 1, os.path.basename(files[1]))
    # a rotated file whose closing seal was cut
    lines[i] = lines[i].replace(b'"service":"suda"', b'"service":"sudo"')
    write_lines(files[1], lines[:-1])
    expect_tampered(env, ["--key", key] + files, "truncated", len(lines) - 1, os.path.basename(files[1]))


def case_torn(env):
    log, key = env.path("t.log"), env.path("t.key")
    env.legacy_key(key)
    env.run([env.tool, "append", "--log", log, "--key", key, "--count", "10", "--crash"], check_rc=0)
    n = len(read_lines(log))
    with open(log, "ab") as f:
        f.write(b'{"seq":99,"time":"2026-11-27T07:00:00.000Z","host":"x","event":"au')
    expect_tampered(env, ["--key", key, log], "truncated", n + 1)
    p = env.run([env.tool, "append", "--log", log, "--key", key, "--count", "5"], check_rc=0)
    check(p.stdout.strip() == "torn", "the reopen did not report the torn line: %r" % p.stdout)
    out = expect_intact(env, ["--key", key, "--strict", log])
    check("torn lines:     1" in out, out)
    lines = read_lines(log)
    tt = json.loads(lines[n + 1])
    check(tt["event"] == "torn-tail" and tt["prev"] == sha(lines[n - 1]),
          "the torn-tail record must chain from the last good record: %s" % tt)
    check(json.loads(lines[n + 2])["event"] == "seal", "the reopen is sealed")
    # a torn-tail that does not describe the damaged line is rejected
    lines[n] = lines[n].replace(b"au", b"xx")
    write_lines(log, lines)
    expect_tampered(env, ["--key", key, log], "malformed", n + 1)


# ---------------------------------------------------------------- report fixture

FIXTURE = [
    # (time, event, result, fields)
    ("2026-10-01T10:00:00.000Z", "auth", "success", {"user": "carol", "service": "sudo"}),  # before --since
    ("2026-11-20T08:00:00.000Z", "policy-load", "success", {"detail": "sha256:aa11"}),
    ("2026-11-20T08:05:00.000Z", "enroll", "success", {"user": "alice", "cred_label": "yk-a"}),
    ("2026-11-20T08:06:00.000Z", "enroll", "success", {"user": "alice", "cred_label": "yk-b"}),
    ("2026-11-20T09:00:00.000Z", "auth", "success", {"user": "alice", "service": "sudo"}),
    ("2026-11-20T09:10:00.000Z", "auth", "failure", {"user": "alice", "service": "sudo", "reason": "no-touch"}),
    ("2026-11-20T09:11:00.000Z", "auth", "success", {"user": "alice", "service": "sudo"}),
    ("2026-11-20T12:00:00.000Z", "auth", "failure", {"user": "bob", "service": "su", "reason": "wrong-pin"}),
    ("2026-11-20T12:01:00.000Z", "auth", "failure", {"user": "bob", "service": "su", "reason": "wrong-pin"}),
    ("2026-11-20T12:02:00.000Z", "auth", "failure", {"user": "bob", "service": "su", "reason": "wrong-pin"}),
    ("2026-11-20T12:02:01.000Z", "lockout", "info", {"user": "bob", "reason": "max-failures", "detail": "3 in 900 s"}),
    ("2026-11-21T07:30:00.000Z", "auth", "success", {"user": "alice", "service": "sshd", "rhost": "192.0.2.7"}),
    ("2026-11-21T07:31:00.000Z", "auth", "failure", {"user": "alice", "service": "sudo", "reason": "no-touch"}),
    ("2026-11-21T08:00:00.000Z", "auth", "success", {"user": "alice", "service": "sudo"}),
    ("2026-11-21T08:00:01.000Z", "session-bind", "success", {"user": "alice", "session": "pid:4242"}),
    ("2026-11-21T08:20:00.000Z", "key-removed", "info", {"device": "/sys/devices/x/hidraw0"}),
    ("2026-11-21T08:20:00.100Z", "action", "success", {"user": "alice", "action": "lock", "session": "3"}),
    ("2026-11-21T08:20:00.900Z", "lock-verified", "success", {"user": "alice", "action": "lock", "session": "3"}),
    ("2026-11-21T09:00:00.000Z", "key-removed", "info", {"device": "/sys/devices/x/hidraw1"}),
    ("2026-11-21T09:00:00.100Z", "action", "success", {"user": "alice", "action": "lock", "session": "5"}),
    ("2026-11-21T09:00:02.100Z", "lock-escalated", "failure", {"user": "alice", "action": "lock", "session": "5"}),
    ("2026-11-21T10:00:00.000Z", "key-removed", "info", {"device": "/sys/devices/x/hidraw2"}),
    ("2026-11-21T10:00:00.100Z", "action", "success", {"user": "bob", "action": "end-elevation", "session": "pid:77"}),
    ("2026-11-21T10:00:01.000Z", "grace-cancelled", "success", {"user": "bob", "action": "end-elevation"}),
    # honest outcomes: an elevation whose processes survived SIGKILL (outcome record), a
    # terminate that was done, and the legacy records above (lock 5 escalation failed,
    # end-elevation pid:77 never concluded)
    ("2026-11-21T10:59:59.000Z", "auth", "success", {"user": "bob", "service": "sudo", "rhost": "198.51.100.9"}),
    ("2026-11-21T11:00:00.000Z", "session-bind", "success", {"user": "bob", "service": "sudo", "session": "pid:88", "cred_label": "yk-bob", "tty": "pts/3"}),
    ("2026-11-21T11:00:05.100Z", "action", "failure", {"user": "bob", "action": "end-elevation", "session": "pid:88", "reason": "survived"}),
    ("2026-11-21T11:00:05.200Z", "outcome", "failure", {"user": "bob", "action": "end-elevation", "session": "pid:88", "reason": "failed", "detail": "survived", "action_seq": "LAST_ACTION"}),
    ("2026-11-21T12:00:00.000Z", "session-bind", "success", {"user": "alice", "service": "gdm-password", "session": "9", "cred_label": "yk-a", "tty": "seat0"}),
    ("2026-11-21T12:00:00.100Z", "action", "success", {"user": "alice", "action": "terminate", "session": "9", "reason": "terminated"}),
    ("2026-11-21T12:00:00.200Z", "outcome", "success", {"user": "alice", "action": "terminate", "session": "9", "reason": "done", "detail": "terminated", "action_seq": "LAST_ACTION"}),
    ("2026-11-21T12:00:00.300Z", "session-unbind", "success", {"user": "alice", "session": "9", "reason": "session-terminated"}),
    ("2026-11-22T06:00:00.000Z", "clone-alert", "failure", {"user": "alice", "cred_label": "yk-b", "reason": "counter-not-increased", "detail": "counter 17 <= 41"}),
    ("2026-11-22T06:30:00.000Z", "revoke", "success", {"user": "alice", "cred_label": "yk-b"}),
    ("2026-11-22T07:00:00.000Z", "policy-load", "failure", {"reason": "parse-error", "detail": "keyward.conf:12: <script>alert(1)</script>"}),
    ("2026-11-22T07:05:00.000Z", "auth", "success", {"user": "alice", "service": "sudo"}),
    ("2026-11-22T07:06:00.000Z", "auth", "success", {"user": "bob", "service": "su"}),
    # an attacker-chosen user name with a terminal escape: reported, never emitted raw
    ("2026-11-22T07:10:00.000Z", "auth", "failure", {"user": "eve\u001b[2J", "service": "sudo", "reason": "no-touch"}),
]
# What the report must say for --since 2026-11-01 --until 2026-12-01:
EXPECT_AUTH = {("alice", "sudo"): (4, 2, {"no-touch": 2}), ("alice", "sshd"): (1, 0, {}),
               ("bob", "su"): (1, 3, {"wrong-pin": 3}), ("eve?[2J", "sudo"): (0, 1, {"no-touch": 1}),
               ("bob", "sudo"): (1, 0, {})}
OUTCOMES = ["issued", "done", "verified", "escalated", "failed", "gone", "interrupted", "missing",
            "grace_cancelled"]
# lock 5's escalation failed (legacy lock-escalated failure), pid:77 never got an outcome,
# pid:88 survived SIGKILL: none of them is counted as done.
EXPECT_ACTIONS = {"lock": dict(zip(OUTCOMES, [2, 0, 1, 0, 1, 0, 0, 0, 0])),
                  "end-elevation": dict(zip(OUTCOMES, [2, 0, 0, 0, 1, 0, 0, 1, 1])),
                  "terminate": dict(zip(OUTCOMES, [1, 1, 0, 0, 0, 0, 0, 0, 0]))}
# Listed first, in trail order: (user, session, action, outcome)
EXPECT_ATTENTION = [("alice", "5", "lock", "failed"), ("bob", "pid:77", "end-elevation", "missing"),
                    ("bob", "pid:88", "end-elevation", "failed")]
# (user, service, key, from, session, ended)
EXPECT_ELEVATIONS = [("alice", None, None, None, "pid:4242", "still open"),
                     ("bob", "sudo", "yk-bob", "198.51.100.9", "pid:88", "failed"),
                     ("alice", "gdm-password", "yk-a", "seat0", "9", "done")]


# ---------------------------------------------------------------- break-glass fixture
# The records keywardd writes for break-glass (docs/breakglass.md, docs/audit.md): alice
# loses her key, gets in once with a code, fails with it again, gets in once more by
# carol's approval, then enrols a new key; bob's codes expire; a code is refused for sshd.
BG_FIXTURE = [
    ("2026-10-01T10:00:00.000Z", "breakglass-issue", "success",  # before --since
     {"user": "carol", "actor": "root", "actor_uid": 0, "detail": "codes=10 valid-until=2026-10-31T10:00:00Z"}),
    ("2026-11-10T09:00:00.000Z", "breakglass-issue", "success",
     {"user": "alice", "uid": 1000, "actor": "root", "actor_uid": 0,
      "detail": "codes=10 valid-until=2026-12-10T09:00:00Z"}),
    ("2026-11-10T09:01:00.000Z", "breakglass-issue", "success",
     {"user": "bob", "uid": 1001, "actor": "root", "actor_uid": 0,
      "detail": "codes=8 valid-until=2026-11-20T00:00:00Z"}),
    ("2026-11-12T08:00:00.000Z", "revoke", "success", {"user": "alice", "cred_label": "yk-a", "actor": "root"}),
    ("2026-11-12T08:05:00.000Z", "breakglass-fail", "failure",
     {"user": "alice", "service": "sshd", "rhost": "192.0.2.7", "reason": "service-not-allowed"}),
    ("2026-11-12T08:06:00.000Z", "breakglass-fail", "failure",
     {"user": "alice", "service": "login", "tty": "tty1", "reason": "wrong-code"}),
    ("2026-11-12T08:07:00.000Z", "breakglass-use", "success",
     {"user": "alice", "uid": 1000, "service": "login", "tty": "tty1", "rhost": "", "reason": "ok",
      "message": "Logged in with break-glass recovery, without a security key.", "detail": "code=3fa9c1-01"}),
    ("2026-11-12T08:07:01.000Z", "session-bind", "success",
     {"user": "alice", "service": "login", "tty": "tty1", "session": "c7", "reason": "breakglass",
      "action": "none", "detail": "breakglass code=3fa9c1-01"}),
    ("2026-11-12T08:07:30.000Z", "auth", "failure", {"user": "alice", "service": "sudo", "reason": "enroll-required"}),
    ("2026-11-12T08:08:00.000Z", "breakglass-fail", "failure",
     {"user": "alice", "service": "login", "tty": "tty2", "reason": "used-code", "detail": "code=3fa9c1-01"}),
    ("2026-11-12T08:09:00.000Z", "breakglass-fail", "failure",
     {"user": "bob", "service": "login", "tty": "tty3", "reason": "wrong-code"}),
    ("2026-11-12T08:09:30.000Z", "breakglass-fail", "failure",
     {"user": "bob", "service": "login", "tty": "tty3", "reason": "rate-limited"}),
    ("2026-11-13T10:00:00.000Z", "breakglass-approve", "success",
     {"user": "alice", "actor": "carol", "actor_uid": 1002, "cred_label": "yk-carol",
      "detail": "valid-until=2026-11-13T10:15:00Z"}),
    ("2026-11-13T10:02:00.000Z", "breakglass-use", "success",
     {"user": "alice", "service": "login", "tty": "tty1", "reason": "ok", "detail": "approval=carol"}),
    ("2026-11-13T10:02:01.000Z", "session-bind", "success",
     {"user": "alice", "service": "login", "tty": "tty1", "session": "c9", "reason": "breakglass",
      "action": "none", "detail": "breakglass approval=carol"}),
    ("2026-11-13T10:30:00.000Z", "session-unbind", "success",
     {"user": "alice", "service": "login", "session": "c9", "reason": "unbound", "detail": "breakglass"}),
    ("2026-11-14T09:00:00.000Z", "enroll", "success", {"user": "alice", "cred_label": "yk-new", "actor": "root"}),
    # her next login is with the new key: not a break-glass session
    ("2026-11-14T09:05:00.000Z", "session-bind", "success",
     {"user": "alice", "service": "login", "tty": "tty1", "session": "c11", "cred_label": "yk-new"}),
    ("2026-11-20T00:00:00.000Z", "breakglass-expire", "info", {"user": "bob", "detail": "codes=7"}),
    ("2026-11-21T00:00:00.000Z", "breakglass-revoke", "success", {"user": "alice", "actor": "root", "actor_uid": 0}),
    # an attacker-chosen user name with a terminal escape: reported, never emitted raw
    ("2026-11-22T07:10:00.000Z", "breakglass-fail", "failure",
     {"user": "eve\u001b[2J<b>", "service": "login", "tty": "tty4", "reason": "malformed-code"}),
]
# (event, result, actor, user, service, tty, rhost, reason, session, detail, controls) in trail order
BG_EXPECT = [
    ("breakglass-issue", "success", "root", "alice", None, None, None, None, None,
     "codes=10 valid-until=2026-12-10T09:00:00Z", ["AC-2", "AC-2(2)", "IA-5"]),
    ("breakglass-issue", "success", "root", "bob", None, None, None, None, None,
     "codes=8 valid-until=2026-11-20T00:00:00Z", ["AC-2", "AC-2(2)", "IA-5"]),
    ("breakglass-fail", "failure", None, "alice", "sshd", None, "192.0.2.7", "service-not-allowed", None, None,
     ["IA-5", "AU-6"]),
    ("breakglass-fail", "failure", None, "alice", "login", "tty1", None, "wrong-code", None, None, ["IA-5", "AU-6"]),
    ("breakglass-use", "success", None, "alice", "login", "tty1", "", "ok", None, "code=3fa9c1-01",
     ["AC-2", "IA-5", "AU-6"]),
    ("auth", "failure", None, "alice", "sudo", None, None, "enroll-required", None, None, ["AC-2", "IA-5"]),
    ("breakglass-fail", "failure", None, "alice", "login", "tty2", None, "used-code", None, "code=3fa9c1-01",
     ["IA-5", "AU-6"]),
    ("breakglass-fail", "failure", None, "bob", "login", "tty3", None, "wrong-code", None, None, ["IA-5", "AU-6"]),
    ("breakglass-fail", "failure", None, "bob", "login", "tty3", None, "rate-limited", None, None,
     ["IA-5", "AU-6", "AC-7"]),
    ("breakglass-approve", "success", "carol", "alice", None, None, None, None, None,
     "valid-until=2026-11-13T10:15:00Z", ["AC-2", "AC-2(2)"]),
    ("breakglass-use", "success", None, "alice", "login", "tty1", None, "ok", None, "approval=carol",
     ["AC-2", "IA-5", "AU-6"]),
    ("breakglass-expire", "info", None, "bob", None, None, None, None, None, "codes=7", ["AC-2(2)", "IA-5"]),
    ("breakglass-revoke", "success", "root", "alice", None, None, None, None, None, None, ["AC-2", "IA-5"]),
    ("breakglass-fail", "failure", None, "eve?[2J<b>", "login", "tty4", None, "malformed-code", None, None,
     ["IA-5", "AU-6"]),
]
# (user, service, session, via, ended, new_key_enrolled)
BG_EXPECT_SESSIONS = [("alice", "login", "c7", "code=3fa9c1-01", "still open", "2026-11-14T09:00:00.000Z"),
                      ("alice", "login", "c9", "approval=carol", "session ended", "2026-11-14T09:00:00.000Z")]
BG_EXPECT_SUMMARY = {"issued": 2, "codes_issued": 18, "used": 2, "used_by_code": 1, "used_by_approval": 1,
                     "failed": 6, "approved": 1, "expired": 1, "codes_expired": 7, "revoked": 1,
                     "enroll_required": 1, "sessions": 2, "sessions_open": 1}
BG_CSV_HEADER = ["section", "time", "event", "result", "actor", "user", "service", "tty", "rhost", "reason",
                 "session", "detail", "controls"]
BG_CSV_SESSIONS_HEADER = ["section", "time", "user", "service", "session", "via", "ended", "new_key_enrolled"]


def write_fixture_trail(path, key, every=8, fixture=None):
    write_records_trail(path, key, fixture or FIXTURE, every=every)


def write_records_trail(path, key, records, host="fixture", every=8):
    """A sealed trail of RECORDS ((time, event, result, fields), in order) of HOST."""
    lines, unsealed, seq = [], 0, 0
    key_id = hashlib.sha256(b"keyward-audit-seal-key-id-v1" + key).hexdigest()[:16]

    last_action = 0

    def add(obj, seal=False):
        nonlocal seq, unsealed, last_action
        seq += 1
        rec = {"seq": seq}
        rec.update(obj)
        if rec.get("action_seq") == "LAST_ACTION":
            rec["action_seq"] = last_action
        if rec.get("event") == "action":
            last_action = seq
        if seal:
            rec.update({"every": every, "key_id": key_id})
        rec["prev"] = sha(lines[-1]) if lines else ZERO
        text = json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode()
        if seal:
            mac = hmac.new(key, text[:-1], hashlib.sha256).hexdigest()
            text = text[:-1] + (',"mac":"%s"}' % mac).encode()
        lines.append(text)
        unsealed = 0 if seal else unsealed + 1

    t0 = records[0][0]
    add({"time": t0, "host": host, "event": "rotate", "result": "info", "reason": "genesis", "file_seq": 1})
    add({"time": t0, "host": host, "event": "seal", "result": "info", "reason": "open"}, seal=True)
    for t, ev, res, fields in records:
        rec = {"time": t, "host": host, "event": ev, "result": res}
        rec.update(fields)
        add(rec)
        if unsealed >= every:
            add({"time": t, "host": host, "event": "seal", "result": "info", "reason": "interval"}, seal=True)
    add({"time": records[-1][0], "host": host, "event": "seal", "result": "info", "reason": "stop"}, seal=True)
    write_lines(path, lines)


def report_setup(env, fixture=None):
    key = os.urandom(32)
    keyfile, log = env.path("fixture.key"), env.path("fixture.log")
    with open(keyfile, "wb") as f:
        f.write(key)
    os.chmod(keyfile, 0o600)
    write_fixture_trail(log, key, fixture=fixture)
    # accounts: alice and bob in "wheel" (covered for sudo/su), carol and dave not
    passwd, group = env.path("passwd"), env.path("group")
    with open(passwd, "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
                "bob:x:1001:1001::/home/bob:/bin/sh\ncarol:x:1002:1002::/home/carol:/bin/sh\n"
                "dave:x:1003:1003::/home/dave:/bin/sh\n")
    with open(group, "w") as f:
        f.write("root:x:0:\nwheel:x:10:alice,bob\nalice:x:1000:\nbob:x:1001:\ncarol:x:1002:\ndave:x:1003:\n")
    creds = env.path("credentials")
    env.run([env.tool, "creds", creds, "alice", "2"], check_rc=0)
    env.run([env.tool, "creds", creds, "dave", "1"], check_rc=0)
    conf = env.path("keyward.conf")
    with open(conf, "w") as f:
        f.write('settings = { credentials_dir = "%s"; state_dir = "%s"; audit_log = "%s"; };\n'
                'rules = (\n  { name = "admins"; match = { groups = ["wheel"]; services = ["sudo", "su"]; };\n'
                '    require = "key"; }\n);\ndefault = { require = "none"; };\n' % (creds, env.dir, log))
    nss = {"LD_PRELOAD": "libnss_wrapper.so", "NSS_WRAPPER_PASSWD": passwd, "NSS_WRAPPER_GROUP": group,
           "NSS_WRAPPER_DISABLE_DEEPBIND": "1",
           # under KEYWARD_SANITIZE the preload comes before ASan's runtime: allow it
           "ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0"]))}
    return conf, log, keyfile, nss


def run_report(env, fmt, extra=(), fixture=None):
    conf, log, keyfile, nss = report_setup(env, fixture) if not hasattr(env, "rep") else env.rep
    env.rep = (conf, log, keyfile, nss)
    out = env.path("report." + fmt)
    env.ctl_run(["-c", conf, "report", "--since", "2026-11-01", "--until", "2026-12-01", "--format", fmt,
                 "-o", out, "--key", keyfile] + list(extra), env=nss, check_rc=0)
    with open(out, encoding="utf-8") as f:
        return f.read()


def case_report_json(env):
    r = json.loads(run_report(env, "json"))
    auth = {(a["user"], a["service"]): (a["success"], a["failure"], a["failure_reasons"])
            for a in r["authentications"]["by_user_service"]}
    check(auth == EXPECT_AUTH, "authentications: %s" % auth)
    check(r["authentications"]["success"] == 7 and r["authentications"]["failure"] == 6, str(r["authentications"]))
    check(sum(b["success"] for b in r["authentications"]["timeline"]["buckets"]) == 7, "timeline successes")
    check(sum(b["failure"] for b in r["authentications"]["timeline"]["buckets"]) == 6, "timeline failures")
    acts = {a["action"]: {k: a[k] for k in EXPECT_ACTIONS["lock"]} for a in r["removals"]["actions"]}
    check(acts == EXPECT_ACTIONS, "actions: %s" % acts)
    check(r["removals"]["key_removed"] == 3, "removals")
    check(len(r["clone_alerts"]) == 1 and r["clone_alerts"][0]["credential"] == "yk-b", str(r["clone_alerts"]))
    check(len(r["lockouts"]) == 1 and r["lockouts"][0]["user"] == "bob", str(r["lockouts"]))
    check([p["result"] for p in r["policy_changes"]] == ["success", "failure"], str(r["policy_changes"]))
    check(len(r["key_management"]) == 3, str(r["key_management"]))
    cov = [(a["status"], a["user"], a["keys"]) for a in r["coverage"]["accounts"]]
    check(cov == [("gap", "bob", 0), ("enrolled-not-covered", "dave", 1), ("ok", "alice", 2)], "coverage: %s" % cov)
    check(r["coverage"]["gaps"] == 1, "gaps")
    check(r["trail"]["status"] == "intact" and r["trail"]["seals_verified"] is True, str(r["trail"]))
    check(r["trail"]["records"] == len(read_lines(env.rep[1])), "trail records")
    check([s["id"] for s in r["sections"]][:3] == ["breakglass", "attention", "coverage"],
          "break-glass, then failed actions, then coverage gaps come first")
    check(list(r).index("breakglass") < list(r).index("attention") < list(r).index("coverage"),
          "break-glass, then attention, before the summaries")
    bg = r["breakglass"]
    check(bg["events"] == [] and bg["sessions"] == [] and bg["summary"]["used"] == 0
          and bg["note"] == "No break-glass events in this period.", "empty break-glass: %s" % bg)
    att = [(a["user"], a["session"], a["action"], a["outcome"]) for a in r["attention"]]
    check(att == EXPECT_ATTENTION, "attention: %s" % att)
    check(all(a["action_seq"] > 0 for a in r["attention"]), "attention names the action records")
    elev = [(e["user"], e["service"], e["key"], e["from"], e["session"], e["ended"]) for e in r["elevations"]]
    check(elev == EXPECT_ELEVATIONS, "elevations: %s" % elev)
    check(all(s["controls"] for s in r["sections"]), "every section names its controls")


def case_report_csv(env):
    text = run_report(env, "csv")
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    auth = {(r[1], r[2]): (int(r[3]), int(r[4])) for r in rows if r[0] == "authentications"}
    check(auth == {k: v[:2] for k, v in EXPECT_AUTH.items()}, "csv auth: %s" % auth)
    acts = {r[1]: [int(x) for x in r[2:]] for r in rows if r[0] == "removals"}
    check(acts == {a: [n[k] for k in OUTCOMES] for a, n in EXPECT_ACTIONS.items()}, "csv actions: %s" % acts)
    check(rows[0] == BG_CSV_HEADER and rows[1] == BG_CSV_SESSIONS_HEADER,
          "csv starts with the (empty) break-glass tables: %s" % rows[:2])
    rows = rows[2:]
    check(rows[0] == ["section", "time", "user", "session", "action", "outcome", "reason", "action_seq"],
          "csv continues with the attention table: %s" % rows[0])
    att = [(r[2], r[3], r[4], r[5]) for r in rows if r[0] == "attention"]
    check(att == EXPECT_ATTENTION, "csv attention: %s" % att)
    check(rows[1][0] == "attention", "attention rows come first")
    elev = [tuple(r[2:8]) for r in rows if r[0] == "elevations"]
    check(elev == [tuple(x or "" for x in e[:5]) + (e[5],) for e in EXPECT_ELEVATIONS], "csv elevations: %s" % elev)
    # the method column (docs/ssh.md): every elevation here was approved by a key
    check([r[8] for r in rows if r[0] == "elevations"] == ["key"] * len(EXPECT_ELEVATIONS),
          "csv elevation methods")
    cov = [(r[3], r[1], r[4]) for r in rows if r[0] == "coverage"]
    check(cov == [("gap", "bob", "0"), ("enrolled-not-covered", "dave", "1"), ("ok", "alice", "2")], "csv coverage %s" % cov)
    check(sum(1 for r in rows if r[0] == "clone_alerts") == 1, "csv clone alerts")
    check(sum(1 for r in rows if r[0] == "lockouts") == 1, "csv lockouts")
    check(sum(1 for r in rows if r[0] == "policy_changes") == 2, "csv policy changes")
    trail = [r for r in rows if r[0] == "trail"]
    check(len(trail) == 1 and trail[0][1] == "intact" and trail[0][5] == "yes", "csv trail %s" % trail)


def case_report_text(env):
    text = run_report(env, "text")
    check("\x1b" not in text, "raw escape character in the text report")
    for pat in [r"Total: 7 successful, 6 failed\.",
                r"alice\s+sudo\s+4\s+2\s+no-touch=2", r"alice\s+sshd\s+1\s+0\s+-", r"bob\s+su\s+1\s+3\s+wrong-pin=3",
                r"lock\s+2\s+0\s+1\s+0\s+1\s+0\s+0\s+0\s+0\n",
                r"end-elevation\s+2\s+0\s+0\s+0\s+1\s+0\s+0\s+1\s+1\n",
                r"terminate\s+1\s+1\s+0\s+0\s+0\s+0\s+0\s+0\s+0\n",
                r"pid:88\s+end-elevation\s+failed\s+survived",
                r"bob\s+sudo\s+yk-bob\s+198\.51\.100\.9\s+pid:88\s+failed",
                r"alice\s+gdm-password\s+yk-a\s+seat0\s+9\s+done",
                r"Key removals: 3;", r"1 account\(s\) need a key|2 account\(s\) need a key",
                r"gap\s+bob\s+0", r"ok\s+alice\s+2", r"enrolled-not-covered\s+dave\s+1",
                r"Trail:\s+INTACT: \d+ records in 1 file\(s\), \d+ seals verified",
                r"Evidence for: NIST SP 800-53 AC-11", r"Evidence for: NIST SP 800-53 AU-9"]:
        check(re.search(pat, text), "text report lacks /%s/:\n%s" % (pat, text))
    check(text.index("Privileged accounts") < text.index("Authentications per user"), "coverage first")
    att = text.index("Removal actions that failed or have no outcome")
    check(att < text.index("Privileged accounts"), "failed actions come before every summary")
    bg = text.index("Break-glass recovery")
    check(bg < att and "No break-glass events in this period." in text[bg:att],
          "the (empty) break-glass section comes first and says so:\n" + text[:att])
    body = text[att:text.index("Privileged accounts")]
    rows = re.findall(r"^\S+Z\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s", body, re.M)
    check(re.search(r"Count: 3\n", body) and rows == EXPECT_ATTENTION, "attention section: %s\n%s" % (rows, body))
    check("carol" not in text.split("Authentications per user")[1].split("Key removals")[0], "--since filter")
    # the trail named with --audit (options after it still parsed); no --since: carol counts
    conf, log, keyfile, nss = env.rep
    p = env.ctl_run(["-c", conf, "report", "--format", "json", "--audit", log, "--key", keyfile], env=nss,
                    check_rc=0)
    a = json.loads(p.stdout)["authentications"]
    check(a["success"] == 8 and a["failure"] == 6, "--audit report: %s" % a)
    env.ctl_run(["-c", conf, "report", log], env=nss, check_rc=2)
    env.ctl_run(["-c", conf, "report", "--format", "pdf"], env=nss, check_rc=2)


def case_show(env):
    key = os.urandom(32)
    log = env.path("fixture.log")
    write_fixture_trail(log, key)
    p = env.ctl_run(["audit", "show", "--user", "bob", "--event", "auth", log], check_rc=0)
    rows = [l for l in p.stdout.splitlines() if re.match(r"^\d{4}-\d\d-\d\d ", l)]
    check(len(rows) == 5 and all(" bob " in r and " auth " in r for r in rows), p.stdout)
    check("5 record(s) shown." in p.stdout, p.stdout)
    p = env.ctl_run(["audit", "show", "--event", "auth", "--since", "2026-11-21", "--until", "2026-11-22", log],
                    check_rc=0)
    check("4 record(s) shown." in p.stdout, p.stdout)
    p = env.ctl_run(["audit", "show", "--json", "--event", "policy-load", log], check_rc=0)
    objs = [json.loads(l) for l in p.stdout.splitlines()]
    check(len(objs) == 2 and objs[1]["detail"] == "keyward.conf:12: <script>alert(1)</script>", str(objs))
    check(objs[1]["result"] == "failure" and objs[1]["line"] > 0, str(objs))
    p = env.ctl_run(["audit", "show", "--result", "failure", "--event", "auth", log], check_rc=0)
    check("6 record(s) shown." in p.stdout and "\x1b" not in p.stdout, p.stdout)
    p = env.ctl_run(["audit", "show", "--json", "--user", "eve\x1b[2J", log], check_rc=0)
    check(json.loads(p.stdout)["user"] == "eve\x1b[2J" and "\x1b" not in p.stdout, p.stdout)
    env.ctl_run(["audit", "show", "--event", "nope", log], check_rc=2)
    env.ctl_run(["audit", "show", "--since", "yesterday", log], check_rc=2)
    env.ctl_run(["audit", "show", env.path("missing.log")], check_rc=3)


def case_report_tampered(env):
    conf, log, keyfile, nss = report_setup(env)
    lines = read_lines(log)
    i = next(i for i, l in enumerate(lines) if b'"user":"bob"' in l)
    lines[i] = lines[i].replace(b'"user":"bob"', b'"user":"rob"')
    write_lines(log, lines)
    out = env.path("r.html")
    env.ctl_run(["-c", conf, "report", "--format", "html", "-o", out, "--key", keyfile], env=nss, check_rc=1)
    with open(out) as f:
        html = f.read()
    check(re.search(r'<span class="tampered">TAMPERED \(edited\) at [^<]*fixture\.log:%d:' % (i + 1), html),
          "the report names the tampering")
    p = env.ctl_run(["-c", conf, "report", "--format", "json", "--key", keyfile], env=nss, check_rc=1)
    check(json.loads(p.stdout)["trail"]["status"] == "edited", p.stdout[-500:])


def html_counts(html):
    bars_s = len(re.findall(r'class="bar-success"', html))
    bars_f = len(re.findall(r'class="bar-failure"', html))
    return bars_s, bars_f


def case_report_html(env):
    html = run_report(env, "html")
    check(html.startswith("<!DOCTYPE html>"), "doctype")
    check(not re.search(r"<script|src=\"http|href=\"http|<link", html), "self-contained, no script")
    check("&lt;script&gt;alert(1)&lt;/script&gt;" in html, "escaping of trail content")
    check("@media print" in html, "print CSS")
    check(html.count("<svg") == 2, "two inline SVG charts")
    s, f = html_counts(html)
    # fixture: successes and failures on 11-20, 11-21, 11-22 (daily buckets)
    check((s, f) == (3, 3), "bars: %d success, %d failure" % (s, f))
    check("\x1b" not in html, "raw escape character in the HTML report")
    for n in ["IA-2(1)", "AC-11", "AU-9", "AU-10"]:
        check(n in html, "control %s named" % n)
    check(re.search(r"<tr class=\"gap\"><td>gap</td><td>bob</td>", html), "gap row first")
    for (user, service), (ok, bad, _) in EXPECT_AUTH.items():
        row = '<tr><td>%s</td><td>%s</td><td class="num">%d</td><td class="num">%d</td>' % (user, service, ok, bad)
        check(row in html, "HTML lacks the row " + row)
    check("7 successful and 6 failed authentications" in html, "HTML totals")
    for action, n in EXPECT_ACTIONS.items():
        row = "<tr><td>%s</td>" % action + "".join('<td class="num">%d</td>' % n[k] for k in OUTCOMES)
        check(row in html, "HTML lacks the row " + row)
    # failures first: the attention section comes before every summary table
    check(html.index('<section id="breakglass">') < html.index('<section id="attention">')
          < html.index('<section id="coverage">'), "break-glass, then attention first")
    check("<p>No break-glass events in this period.</p>" in html, "empty break-glass section")
    att = html.split('<section id="attention">')[1].split("</section>")[0]
    check("<b>3</b> removal action(s) failed or have no outcome" in att, "attention count: " + att)
    rows = re.findall(r'<tr class="gap"><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>'
                      r'<td>([^<]*)</td>', att)
    check(rows == EXPECT_ATTENTION, "HTML attention rows: %s" % rows)
    elev = html.split('<section id="elevations">')[1].split("</section>")[0]
    rows = re.findall(r'<tr><td class="nw">[^<]*</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>'
                      r'<td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>key</td></tr>', elev)
    check(rows == [tuple(x or "" for x in e) for e in EXPECT_ELEVATIONS], "HTML elevations: %s" % rows)
    check("3 key removal(s)" in html and html.count("clone-alert</td>") == 1, "HTML removals / clone alerts")


# ---------------------------------------------------------------- break-glass section

def bg_report(env, fmt):
    return run_report(env, fmt, fixture=BG_FIXTURE)


def case_report_breakglass_json(env):
    r = json.loads(bg_report(env, "json"))
    check(r["sections"][0]["id"] == "breakglass" and "AC-2" in r["sections"][0]["controls"]
          and "IA-5" in r["sections"][0]["controls"], "break-glass is the first section: %s" % r["sections"][0])
    check(list(r).index("breakglass") < list(r).index("attention"), "break-glass data before attention")
    bg = r["breakglass"]
    got = [(e["event"], e["result"], e["actor"], e["user"], e["service"], e["tty"], e["rhost"], e["reason"],
            e["session"], e["detail"], e["controls"]) for e in bg["events"]]
    check(got == BG_EXPECT, "break-glass events:\n%s\nexpected\n%s" % ("\n".join(map(str, got)),
                                                                     "\n".join(map(str, BG_EXPECT))))
    check(all(re.match(r"^2026-11-\d\dT[\d:.]+Z$", e["time"]) for e in bg["events"]), "event times")
    sess = [(x["user"], x["service"], x["session"], x["via"], x["ended"], x["new_key_enrolled"])
            for x in bg["sessions"]]
    check(sess == BG_EXPECT_SESSIONS, "break-glass sessions: %s" % sess)
    check([x["open"] for x in bg["sessions"]] == [True, False], "open flags: %s" % bg["sessions"])
    check(bg["summary"] == BG_EXPECT_SUMMARY, "summary: %s" % bg["summary"])
    check(bg["note"] is None, "a non-empty section has no 'no events' note")
    check("\x1b" not in json.dumps(r, ensure_ascii=False), "raw escape character in the JSON report")
    # the break-glass login's session is also an elevation/session row of its own section
    check([(e["session"], e["key"]) for e in r["elevations"]]
          == [("c7", "(break-glass, no key)"), ("c9", "(break-glass, no key)"), ("c11", "yk-new")],
          "elevations: break-glass sessions flagged: %s" % r["elevations"])


def case_report_breakglass_csv(env):
    rows = [row for row in csv.reader(io.StringIO(bg_report(env, "csv"))) if row]
    check(rows[0] == BG_CSV_HEADER, "csv starts with the break-glass table: %s" % rows[0])
    ev = [tuple(x or None for x in r[2:12]) + (r[12].split(","),) for r in rows if r[0] == "breakglass"]
    want = [tuple(x if x != "" else None for x in e[:10]) + (e[10],) for e in BG_EXPECT]
    check(ev == want, "csv break-glass rows:\n%s" % "\n".join(map(str, ev)))
    check(rows[1][0] == "breakglass" and rows[len(BG_EXPECT) + 1] == BG_CSV_SESSIONS_HEADER,
          "the sessions table follows the events: %s" % rows[len(BG_EXPECT) + 1])
    sess = [tuple(r[2:]) for r in rows if r[0] == "breakglass_sessions"]
    check(sess == BG_EXPECT_SESSIONS, "csv sessions: %s" % sess)
    first_other = next(i for i, r in enumerate(rows) if r[0] not in ("breakglass", "breakglass_sessions", "section"))
    check(all(r[0] in ("breakglass", "breakglass_sessions", "section") for r in rows[:first_other])
          and rows[first_other - 1][0] == "section", "break-glass tables come before every other")


def case_report_breakglass_text(env):
    text = bg_report(env, "text")
    check("\x1b" not in text, "raw escape character in the text report")
    bg = text.index("Break-glass recovery")
    check(bg < text.index("Removal actions that failed") < text.index("Privileged accounts"),
          "break-glass section first")
    body = text[bg:text.index("Removal actions that failed")]
    for pat in [r"Evidence for: NIST SP 800-53 AC-2 \(account management[^\n]*IA-5 \(authenticator management"
                r"[^\n]*AC-2\(2\)[^\n]*AU-6",
                r"Count: 14\. 2 issue\(s\) \(18 code\(s\)\), 2 use\(s\) \(1 by code, 1 by two-person approval\), "
                r"6 failed attempt\(s\), 1 approval\(s\), 1 expiry\(ies\) \(7 code\(s\)\), 1 revocation\(s\), "
                r"1 elevation\(s\) refused until a new key is enrolled; 2 session\(s\) opened by break-glass, "
                r"1 still open\.",
                r"breakglass-issue\s+success\s+root\s+alice\s+-\s+-\s+-\s+codes=10 valid-until=\S+\s+AC-2,AC-2\(2\),IA-5",
                r"breakglass-fail\s+failure\s+-\s+alice\s+sshd\s+192\.0\.2\.7\s+-\s+service-not-allowed\s+IA-5,AU-6",
                r"breakglass-use\s+success\s+-\s+alice\s+login\s+tty1\s+-\s+code=3fa9c1-01\s+AC-2,IA-5,AU-6",
                r"breakglass-fail\s+failure\s+-\s+alice\s+login\s+tty2\s+-\s+used-code; code=3fa9c1-01",
                r"breakglass-fail\s+failure\s+-\s+bob\s+login\s+tty3\s+-\s+rate-limited\s+IA-5,AU-6,AC-7",
                r"breakglass-approve\s+success\s+carol\s+alice\s+",
                r"auth\s+failure\s+-\s+alice\s+sudo\s+-\s+-\s+enroll-required",
                r"breakglass-expire\s+info\s+-\s+bob\s+.*codes=7",
                r"breakglass-revoke\s+success\s+root\s+alice",
                r"eve\?\[2J<b>\s+login\s+tty4\s+-\s+malformed-code",
                r"Sessions opened by break-glass: 2\n",
                r"alice\s+login\s+c7\s+code=3fa9c1-01\s+still open\s+2026-11-14T09:00:00\.000Z",
                r"alice\s+login\s+c9\s+approval=carol\s+session ended\s+2026-11-14T09:00:00\.000Z"]:
        check(re.search(pat, body), "break-glass section lacks /%s/:\n%s" % (pat, body))
    check("carol  " not in body.split("breakglass-approve")[0], "--since: carol's October issue is left out")
    order = [m.group(1) for m in re.finditer(r"^2026-\S+\s+(\S+)\s", body, re.M)]
    check(order == [e[0] for e in BG_EXPECT], "rows in trail order: %s" % order)


def case_report_breakglass_html(env):
    html = bg_report(env, "html")
    check(html.index('<section id="breakglass">') < html.index('<section id="attention">'), "break-glass first")
    sec = html.split('<section id="breakglass">')[1].split("</section>")[0]
    check(not re.search(r"<script|src=\"http|href=\"http|<link", html), "self-contained, no script")
    check("\x1b" not in html and "eve?[2J&lt;b&gt;" in sec and "<b>eve" not in sec, "trail content escaped")
    for n in ["AC-2 (account management", "IA-5 (authenticator management", "AC-2(2)", "AU-6"]:
        check(n in sec, "control %s named in the section header" % n)
    check("<b>14</b> break-glass record(s)" in sec, "count: " + sec[:600])
    rows = re.findall(r'<tr(?: class="(\w+)")?><td class="nw">[^<]*</td><td class="nw">([^<]*)</td><td>([^<]*)</td>'
                      r'<td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>'
                      r'<td>([^<]*)</td><td>([^<]*)</td></tr>', sec)
    check([r[1] for r in rows] == [e[0] for e in BG_EXPECT], "HTML break-glass rows: %s" % rows)
    check([r[0] for r in rows if r[1] in ("breakglass-use", "breakglass-fail", "breakglass-approve")]
          == ["gap"] * 9, "uses, approvals and refusals stand out")
    check([r[9] for r in rows] == [", ".join(e[10]) for e in BG_EXPECT], "controls per row")
    sess = re.findall(r'<tr class="gap"><td class="nw">[^<]*</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>'
                      r'<td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>', sec)
    check(sess == BG_EXPECT_SESSIONS, "HTML sessions: %s" % sess)
    check("2 session(s) opened by break-glass, 1 still open." in sec, "sessions line")


def case_status_breakglass(env):
    """keywardctl status starts with break-glass state: usable codes and until when (from
    the code store, written by the real library), pending approvals, and the sessions the
    trail shows a break-glass login opened and not closed."""
    conf, log, keyfile, nss = report_setup(env, BG_FIXTURE)
    out = env.run([env.tool, "breakglass", env.dir, "alice", "4", "3600", "1"], check_rc=0).stdout
    check(len(out.splitlines()) == 4, "4 codes printed: %r" % out)
    env.run([env.tool, "breakglass", env.dir, "bob", "2", "3600", "2"], check_rc=0)
    env.run([env.tool, "approval", env.dir, "alice", "carol", "300"], check_rc=0)
    for sub in ("rate", "last-use"):  # keywardd's own directories beside the users' files
        os.makedirs(os.path.join(env.dir, "breakglass", sub), mode=0o700)
    p = env.ctl_run(["-c", conf, "status"], env=nss)
    check("cannot be read" not in p.stdout and "rate" not in p.stdout.split("\n\n")[0],
          "status reads keywardd's own directories as users:\n" + p.stdout)
    head = p.stdout.split("\n\n")[0]
    check(p.stdout.startswith("Break-glass recovery"), "status does not start with break-glass:\n" + p.stdout)
    for pat in [r"codes: alice: 3 unused of 4, valid until 20\d\d-\d\d-\d\dT",
                r"codes: bob: none usable \(2 used or expired\)",
                r"approval pending: alice, approved by carol, usable for one login until 20",
                r"session opened by break-glass: alice, login, session c7, since 2026-11-12T08:07:00\.000Z "
                r"\(code=3fa9c1-01\)"]:
        check(re.search(pat, head), "status lacks /%s/:\n%s" % (pat, p.stdout))
    check("c9" not in head, "the ended break-glass session c9 is listed as open:\n" + head)
    check("not yet enrolled" not in head, "alice enrolled a new key on 11-14:\n" + head)
    for line in out.splitlines():
        check(line.split()[1] not in p.stdout, "status printed a code")
    # no codes, no approvals, an empty trail: it says so
    os.rename(os.path.join(env.dir, "breakglass"), os.path.join(env.dir, "bg-away"))
    with open(log, "w"):
        pass
    p = env.ctl_run(["-c", conf, "status"], env=nss)
    head = p.stdout.split("\n\n")[0]
    for pat in [r"codes: none issued", r"approvals pending: none", r"sessions opened by break-glass still open: none"]:
        check(re.search(pat, head), "empty status lacks /%s/:\n%s" % (pat, p.stdout))


def png_pixels(path):
    """Decodes an 8-bit RGB/RGBA non-interlaced PNG with zlib (no PIL needed)."""
    with open(path, "rb") as f:
        data = f.read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG")
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, typ = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if typ == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            check(depth == 8 and ctype in (2, 6) and interlace == 0, "PNG format %d/%d/%d" % (depth, ctype, interlace))
            bpp = 3 if ctype == 2 else 4
        elif typ == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    i = 0
    for _ in range(h):
        ft, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ft == 1:
                line[x] = (line[x] + a) & 255
            elif ft == 2:
                line[x] = (line[x] + b) & 255
            elif ft == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def colour_columns(w, h, bpp, rows, rgb):
    """Pixel count of RGB and the number of separate column runs (bars side by side)."""
    cols, count = set(), 0
    for y in range(h):
        r = rows[y]
        for x in range(w):
            if r[x * bpp] == rgb[0] and r[x * bpp + 1] == rgb[1] and r[x * bpp + 2] == rgb[2]:
                count += 1
                cols.add(x)
    runs, last = 0, -2
    for x in sorted(cols):
        if x != last + 1:
            runs += 1
        last = x
    return count, runs


def case_report_render(env):
    run_report(env, "html")
    html = env.path("report.html")
    chromium = shutil.which("chromium")
    check(chromium is not None, "chromium is not installed (scripts/deps)")
    shot = env.path("report.png")
    profile = tempfile.mkdtemp(prefix="chromium.", dir=env.dir)
    p = env.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--user-data-dir=" + profile, "--hide-scrollbars", "--screenshot=" + shot,
                 "--window-size=1000,2000", "file://" + html])
    check(os.path.exists(shot), "chromium wrote no screenshot (rc %d): %s" % (p.returncode, p.stderr[-2000:]))
    keep = os.environ.get("KEYWARD_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
    w, h, bpp, rows = png_pixels(shot)
    succ = colour_columns(w, h, bpp, rows, (0x1f, 0x9e, 0x5a))
    fail_ = colour_columns(w, h, bpp, rows, (0xe0, 0x45, 0x2b))
    issued = colour_columns(w, h, bpp, rows, (0x3a, 0x6f, 0xd8))
    done = colour_columns(w, h, bpp, rows, (0x2c, 0x7f, 0x8a))
    print("pixels: success %s failure %s issued %s done %s" % (succ, fail_, issued, done))
    # success colour: 3 timeline bars + legend swatch + lock-verified bar + its legend swatch
    check(succ[0] > 500, "success bars not rendered")
    check(fail_[0] > 200, "failure bars not rendered")
    check(issued[0] > 200 and done[0] > 100, "outcome bars not rendered")
    # the timeline's bars are separate columns: at least 3 runs of the success colour
    check(succ[1] >= 3, "expected >= 3 separate success bars, got %d" % succ[1])


# --- forward-secure sealing, anchors, the one verdict -----------------------------------

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
ANCHOR_MESSAGE_ID = None  # read from lib/audit.h below


def anchor_message_id():
    global ANCHOR_MESSAGE_ID
    if ANCHOR_MESSAGE_ID is None:
        h = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib", "audit.h")
        with open(h, encoding="utf-8") as f:
            ANCHOR_MESSAGE_ID = re.search(r'#define AUDIT_ANCHOR_MESSAGE_ID "([0-9a-f]{32})"', f.read()).group(1)
    return ANCHOR_MESSAGE_ID


def read_key_file(path):
    with open(path, encoding="ascii") as f:
        m = re.fullmatch(r"keyward-seal-key v1 epoch=(\d+) id=([0-9a-f]{16}) exported=(yes|no) key=([0-9a-f]{64})\n",
                         f.read())
    check(m is not None, "%s is not a forward-secure key file" % path)
    return int(m.group(1)), m.group(2), bytes.fromhex(m.group(4))


def evolve(key):
    return hmac.new(key, b"keyward-audit-seal-evolve-v1", hashlib.sha256).digest()


def fss_setup(env, name="fs"):
    """A policy, `audit setup-keys --output VK` before the writer's first start, then a
    trail written by the real library with the forward-secure key."""
    state = env.path(name + "-state")
    log = env.path(name + ".log")
    conf = env.path(name + ".conf")
    with open(conf, "w") as f:
        f.write('settings = { audit_log = "%s"; state_dir = "%s"; credentials_dir = "%s"; };\n'
                'rules = ();\ndefault = { require = "none"; };\n' % (log, state, env.path(name + "-creds")))
    os.makedirs(env.path(name + "-creds"), exist_ok=True)
    vk = env.path(name + ".verification-key")
    p = env.ctl_run(["-c", conf, "audit", "setup-keys", "--output", vk], check_rc=0)
    check("OFF this machine" in p.stdout, "setup-keys does not tell where the key belongs:\n" + p.stdout)
    check(os.stat(vk).st_mode & 0o777 == 0o600, "the verification key file is not 0600")
    return conf, log, os.path.join(state, "audit-seal.key"), vk


def fss_append(env, log, key, count, every=8, extra=()):
    env.run([env.tool, "append", "--log", log, "--key", key, "--every", str(every),
             "--count", str(count)] + list(extra), check_rc=0)


def anchor_of(env, log):
    p = env.ctl_run(["audit", "anchor", log], check_rc=0)
    line = p.stdout.strip()
    check(re.fullmatch(r"keyward-anchor v1 host=\S+ epoch=\d+ seq=\d+ file_seq=\d+ hash=[0-9a-f]{64} key_id=[0-9a-f]{16}", line),
          "audit anchor printed: %r" % line)
    return line


def case_fss_verify(env):
    conf, log, key, vk = fss_setup(env)
    p = env.ctl_run(["-c", conf, "audit", "setup-keys"], check_rc=1)
    check("only once" in p.stderr, p.stderr)
    fss_append(env, log, key, 40)
    epoch, _, _ = read_key_file(key)
    seals = [json.loads(l) for l in read_lines(log) if b'"event":"seal"' in l]
    check([s_["epoch"] for s_ in seals] == list(range(len(seals))), "seal epochs: %s" % seals)
    check(epoch == len(seals), "the key file is at epoch %d after %d seals" % (epoch, len(seals)))
    out = env.ctl_run(["-c", conf, "audit", "verify", "--verification-key", vk, "--strict"], check_rc=0).stdout
    check(out.splitlines()[-1] == "INTACT", out)
    check("seals:          %d (%d forward-secure), %d proved, 0 NOT checked" % ((len(seals),) * 3) in out, out)
    # without the verification key: NOT PROVEN (exit 4), never a green INTACT
    for args in ([], ["--no-key"]):
        p = env.ctl_run(["-c", conf, "audit", "verify"] + args, check_rc=4)
        check(p.stdout.splitlines()[-1].startswith("NOT PROVEN"), p.stdout)
        check("\nINTACT\n" not in "\n" + p.stdout, p.stdout)
    p = env.ctl_run(["-c", conf, "audit", "verify"], check_rc=4)
    check("current forward-secure seal key" in p.stdout, p.stdout)
    # the machine's evolved key named explicitly proves nothing: refused, said why
    p = env.ctl_run(["audit", "verify", "--verification-key", key, log], check_rc=3)
    check("cannot prove earlier seals" in p.stderr, p.stderr)
    # the verification key cannot be exported again now that the first seal was made
    p = env.ctl_run(["-c", conf, "audit", "setup-keys"], check_rc=1)
    check("already exported" in p.stderr or "epoch" in p.stderr, p.stderr)
    # the report's integrity line is verify's verdict: green only with the key
    out = env.path("r.json")
    env.ctl_run(["-c", conf, "report", "--format", "json", "-o", out, "--verification-key", vk], check_rc=0)
    with open(out) as f:
        t = json.load(f)["trail"]
    check(t["status"] == "intact" and t["summary"].startswith("INTACT") and t["seals_verified"], t)
    for fmt in ("json", "text", "csv", "html"):
        out = env.path("r." + fmt)
        env.ctl_run(["-c", conf, "report", "--format", fmt, "-o", out], check_rc=4)
        with open(out, encoding="utf-8") as f:
            text = f.read()
        check("NOT PROVEN" in text and "INTACT:" not in text, "%s report without the key:\n%s" % (fmt, text[-800:]))
        if fmt == "json":
            check(json.loads(text)["trail"]["status"] == "not-proven", text[-400:])
        if fmt == "html":
            check('class="intact"' not in text, "green trail line in the HTML report without the key")


def reseal(lines, start, key, epoch, keep_epochs):
    """The intruder's rewrite: from line START (0-based) on, recompute seq/prev and MAC every
    seal with the key they hold (KEY at EPOCH, evolved forward as they go)."""
    prev_seq = json.loads(lines[start - 1])["seq"]
    for i in range(start, len(lines)):
        lines[i] = re.sub(rb'"seq":\d+', b'"seq":%d' % (prev_seq + 1), lines[i], count=1)
        lines[i] = re.sub(rb'"prev":"[0-9a-f]{64}"', ('"prev":"%s"' % sha(lines[i - 1])).encode(), lines[i])
        prev_seq += 1
        if b'"event":"seal"' in lines[i]:
            if not keep_epochs:
                lines[i] = re.sub(rb'"epoch":\d+', b'"epoch":%d' % epoch, lines[i])
            body = lines[i][:lines[i].index(b',"mac":"')]
            lines[i] = body + (',"mac":"%s"}' % hmac.new(key, body, hashlib.sha256).hexdigest()).encode()
            if not keep_epochs:
                key, epoch = evolve(key), epoch + 1
    return lines


def case_fss_reseal(env):
    conf, log, key, vk = fss_setup(env)
    fss_append(env, log, key, 60)
    original = read_lines(log)
    epoch, _, k_now = read_key_file(key)  # all that root holds now
    for keep in (True, False):
        lines = list(original)
        check(b'"tty":"pts/0"' in lines[14] and b'"event":"seal"' in lines[19], "fixture layout")
        lines[14] = lines[14].replace(b'"tty":"pts/0"', b'"tty":"pts/9"')
        write_lines(log, reseal(lines, 14, k_now, epoch, keep))
        # chain and MACs are consistent with root's key, but not with the verification key
        expect_tampered(env, ["--verification-key", vk, log], "forged-seal", 20)
        if keep:
            # same epochs, root's key: only the verification key can tell; without it
            # verify does not say INTACT
            p = env.ctl_run(["audit", "verify", "--no-key", log], check_rc=4)
            check("NOT PROVEN" in p.stdout, p.stdout)
        else:
            # later epochs: the jump shows even without the key
            expect_tampered(env, ["--no-key", log], "forged-seal", 20)


def cut_after_seq(log, seq):
    lines = read_lines(log)
    i = next(i for i, l in enumerate(lines) if json.loads(l)["seq"] == seq)
    write_lines(log, lines[:i + 1])


def case_anchor_truncate(env):
    conf, log, key, vk = fss_setup(env)
    fss_append(env, log, key, 30)
    a1 = anchor_of(env, log)
    fss_append(env, log, key, 30)
    a2 = anchor_of(env, log)
    afile = env.path("anchors.txt")
    with open(afile, "w") as f:
        f.write("# anchors kept by the compliance team\n%s\n%s\n" % (a1, a2))
    out = expect_intact(env, ["--verification-key", vk, "--anchor", afile, "--strict", log])
    check("anchors:        2 matched" in out, out)
    # cut back to the first anchored seal: a valid trail by itself...
    seq1 = int(re.search(r"seq=(\d+)", a1).group(1))
    cut_after_seq(log, seq1)
    expect_intact(env, ["--verification-key", vk, "--strict", log])
    # ... but not against the later anchor
    n = len(read_lines(log))
    expect_tampered(env, ["--verification-key", vk, "--anchor", a2, log], "truncated", n)
    expect_tampered(env, ["--verification-key", vk, "--anchor", afile, log], "truncated", n)
    env.ctl_run(["audit", "verify", "--anchor", "keyward-anchor v1 nonsense", log], check_rc=2)


def journal_export(entries):
    out = []
    for i, fields in enumerate(entries):
        out.append("__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=%s\n"
                   % (1764979200000000 + i * 1000000, 1000 + i, "0123456789abcdef0123456789abcdef"))
        out.append("".join("%s=%s\n" % kv for kv in fields.items()) + "\n")
    return "".join(out)


def anchor_fields(line, host=None):
    f = dict(kv.split("=", 1) for kv in line.split()[2:])
    return {"_HOSTNAME": host or f["host"], "SYSLOG_IDENTIFIER": "keywardd", "MESSAGE": line,
            "MESSAGE_ID": anchor_message_id(), "KEYWARD_ANCHOR_HOST": host or f["host"],
            "KEYWARD_ANCHOR_EPOCH": f["epoch"], "KEYWARD_ANCHOR_SEQ": f["seq"],
            "KEYWARD_ANCHOR_FILE_SEQ": f["file_seq"], "KEYWARD_ANCHOR_HASH": f["hash"]}


def make_journal(env, name, anchors):
    """The collector's copy: export-format entries fed to a real systemd-journal-remote."""
    check(os.access(JOURNAL_REMOTE, os.X_OK), "%s missing (scripts/deps installs systemd-journal-remote)"
          % JOURNAL_REMOTE)
    path = env.path(name + ".journal")
    p = subprocess.run([JOURNAL_REMOTE, "-o", path, "-"], input=journal_export(anchors),
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0 and os.path.exists(path), "systemd-journal-remote: %s" % p.stderr)
    return path


def case_anchor_rollback(env):
    conf, log, key, vk = fss_setup(env)
    fss_append(env, log, key, 30)
    shutil.copy2(log, env.path("old.log"))
    shutil.copy2(key, env.path("old.key"))
    fss_append(env, log, key, 30)
    a_old = anchor_of(env, env.path("old.log"))
    a = anchor_of(env, log)
    # root restores the older trail and key file, and the daemon carries on from there
    shutil.copy2(env.path("old.log"), log)
    shutil.copy2(env.path("old.key"), key)
    fss_append(env, log, key, 40)
    expect_intact(env, ["--verification-key", vk, "--strict", log])  # alone, it looks fine
    expect_tampered(env, ["--verification-key", vk, "--anchor", a, log], "rollback",
                    int(re.search(r"seq=(\d+)", a).group(1)))
    # the anchors as the collector received them from journald
    other = a.replace("host=", "host=other-")
    other = re.sub(r"hash=[0-9a-f]{64}", "hash=" + "ab" * 32, other)
    j = make_journal(env, "collector", [anchor_fields(a_old), {"MESSAGE": "unrelated", "_HOSTNAME": "x"},
                                        anchor_fields(a), anchor_fields(other, host="other-host")])
    p = env.ctl_run(["audit", "verify", "--verification-key", vk, "--anchor-journal", j, log], check_rc=2)
    check("--anchor-host" in p.stderr, p.stderr)
    host = re.search(r"host=(\S+)", a).group(1)
    expect_tampered(env, ["--verification-key", vk, "--anchor-journal", j, "--anchor-host", host, log],
                    "rollback", int(re.search(r"seq=(\d+)", a).group(1)))
    # a journal directory works the same; an untampered trail matches its anchors
    d = env.path("journal-dir")
    os.makedirs(d)
    shutil.copy2(env.path("old.log"), env.path("good.log"))
    shutil.copy(make_journal(env, "early", [anchor_fields(a_old)]), os.path.join(d, "remote.journal"))
    out = expect_intact(env, ["--verification-key", vk, "--anchor-journal", d, "--anchor-host", host,
                              env.path("good.log")])
    check("anchors:        1 matched" in out or "1 matched" in out, out)


# Runs ARGV in a private mount namespace whose /run/systemd/journal/socket is ours: every
# datagram journald would get (the native protocol: the export format's fields) is written
# to OUT as one export-format entry, for systemd-journal-remote.
JOURNAL_CAPTURE = r"""
import os, socket, subprocess, sys, threading
out, argv = sys.argv[1], sys.argv[2:]
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True)
os.makedirs("/run/systemd/journal")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/run/systemd/journal/socket")
s.settimeout(0.2)
got, done = [], threading.Event()
def drain():  # the sender blocks when a few datagrams wait: read as they come
    while True:
        try:
            got.append(s.recv(1 << 20))
        except socket.timeout:
            if done.is_set():
                return
t = threading.Thread(target=drain)
t.start()
rc = subprocess.run(argv).returncode
done.set()
t.join()
with open(out, "wb") as f:
    for i, d in enumerate(got):
        f.write(b"__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=%s\n_HOSTNAME=%s\n"
                % (1764979200000000 + i, 1000 + i, b"0123456789abcdef0123456789abcdef", os.uname().nodename.encode()))
        f.write(d if d.endswith(b"\n") else d + b"\n")
        f.write(b"\n")
sys.exit(rc)
"""


def case_anchor_journal_writer(env):
    """The writer's own anchors, as journald receives them, stored by a real
    systemd-journal-remote: verify reads them back and catches a cut trail."""
    conf, log, key, vk = fss_setup(env)
    export = env.path("native.export")
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", JOURNAL_CAPTURE,
                        export, env.tool, "append", "--log", log, "--key", key, "--every", "8", "--count", "30",
                        "--journal"], capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "capture: %s%s" % (p.stdout, p.stderr))
    with open(export, "rb") as f:
        data = f.read()
    seals = [json.loads(l) for l in read_lines(log) if b'"event":"seal"' in l]
    check(data.count(b"MESSAGE_ID=" + anchor_message_id().encode()) == len(seals),
          "one anchor message per seal (%d seals)" % len(seals))
    j = env.path("collector.journal")
    r = subprocess.run([JOURNAL_REMOTE, "-o", j, "-"], input=data, capture_output=True, timeout=60)
    check(r.returncode == 0, "systemd-journal-remote: %s" % r.stderr)
    out = expect_intact(env, ["--verification-key", vk, "--anchor-journal", j, "--strict", log])
    check("anchors:        %d matched" % len(seals) in out, out)
    # cut back to the first seal: the collector's anchors show it
    lines = read_lines(log)
    write_lines(log, lines[:2])
    expect_intact(env, ["--verification-key", vk, log])
    expect_tampered(env, ["--verification-key", vk, "--anchor-journal", j, log], "truncated", 2)

CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctl", required=True)
    ap.add_argument("--tool", required=True)
    ap.add_argument("case", choices=sorted(CASES))
    args = ap.parse_args()
    env = Env(args)
    try:
        CASES[args.case](env)
    finally:
        env.cleanup()
    print("PASS: " + args.case)


if __name__ == "__main__":
    main()
