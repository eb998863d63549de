#!/usr/bin/python3
"""report_hosts_test.py: `keywardctl report --host NAME=DIR ... --journal DIR` — one
coverage and elevation report over several hosts' sealed trails (written here by the
independent writer of audit_test.py's format, legacy seal keys), each host's verdict shown:
a tampered host is reported "broken at seq N" with its rows marked in every format, a host
without a key is "unverifiable (no key)", one without anchors "missing anchors"; a duplicate
host name is refused; the forwarded journal (made by the real systemd-journal-remote) gives
one host per _HOSTNAME, a sequence gap reported.

The case `real` uses trails written by the real library (audit-testtool) with forward-secure
keys from `keywardctl audit setup-keys`.

Usage: report_hosts_test.py --ctl KEYWARDCTL [--tool AUDIT-TESTTOOL] CASE"""

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit_test as at  # noqa: E402  (format helpers: sha, write_lines, the journal)

check = at.check

T0 = 1764000000000  # 2025-11-24T16:00:00Z, ms


def iso(ms):
    import datetime
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def write_trail(path, key, host, records):
    """A sealed trail of RECORDS ((ms, event, result, fields), in order) for HOST."""
    at.write_records_trail(path, key, [(iso(t), ev, res, f) for t, ev, res, f in records], host=host,
                           every=4)


MIN = 60000
HOSTS = {
    # ws1's clock is right; db1's runs 30 minutes "later"; ws2's events come an hour on
    "ws1": [(T0, "auth", "success", {"user": "alice", "service": "sudo", "rhost": "192.0.2.1"}),
            (T0 + 1000, "session-bind", "success", {"user": "alice", "service": "sudo", "session": "pid:11",
                                                    "cred_label": "yk-alice"}),
            (T0 + 5 * MIN, "session-unbind", "info", {"user": "alice", "session": "pid:11"}),
            (T0 + 120 * MIN, "auth", "success", {"user": "alice", "service": "sudo"})],
    "db1": [(T0 + 30 * MIN, "auth", "success", {"user": "carol", "service": "sudo", "rhost": "192.0.2.3"}),
            (T0 + 30 * MIN + 1000, "session-bind", "success", {"user": "carol", "service": "sudo",
                                                               "session": "pid:33", "cred_label": "yk-carol"}),
            (T0 + 31 * MIN, "auth", "failure", {"user": "carol", "service": "su", "reason": "no-touch"}),
            (T0 + 32 * MIN, "auth", "success", {"user": "carol", "service": "su"}),
            (T0 + 33 * MIN, "auth", "success", {"user": "dave", "service": "sudo"})],
    "ws2": [(T0 + 60 * MIN, "auth", "success", {"user": "bob", "service": "sshd", "rhost": "198.51.100.2"}),
            (T0 + 60 * MIN + 1000, "session-bind", "success", {"user": "bob", "service": "sshd",
                                                               "session": "pid:22", "cred_label": "yk-bob"}),
            (T0 + 61 * MIN, "auth", "failure", {"user": "bob", "service": "sudo", "reason": "wrong-pin"})],
}


class Env:
    def __init__(self, args):
        self.ctl = args.ctl
        self.tool = args.tool
        self.dir = tempfile.mkdtemp(prefix="keyward-report-hosts.")

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def ctl_run(self, args, rc):
        p = subprocess.run([self.ctl] + args, capture_output=True, text=True, timeout=120)
        check(p.returncode == rc, "keywardctl %s exited %d, expected %d\nstdout:\n%s\nstderr:\n%s"
              % (" ".join(args), p.returncode, rc, p.stdout[-3000:], p.stderr))
        return p

    def host_dir(self, name, key=True, anchors=False):
        d = self.path(name)
        os.makedirs(d, exist_ok=True)
        k = os.urandom(32)
        write_trail(os.path.join(d, "audit.log"), k, name, HOSTS[name])
        if key:
            kp = os.path.join(d, "audit-seal.key")
            fd = os.open(kp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, k)
            os.close(fd)
        if anchors:
            p = self.ctl_run(["audit", "anchor", os.path.join(d, "audit.log")], 0)
            with open(os.path.join(d, "anchors"), "w") as f:
                f.write("# %s's anchors, as published\n%s\n" % (name, p.stdout.strip()))
        return d


def tamper(d):
    """Carol's failed su becomes a success on db1: the edited record's seq is returned."""
    log = os.path.join(d, "audit.log")
    lines = at.read_lines(log)
    i = next(i for i, l in enumerate(lines) if b'"reason":"no-touch"' in l)
    lines[i] = lines[i].replace(b'"result":"failure"', b'"result":"success"')
    at.write_lines(log, lines)
    return json.loads(lines[i])["seq"]


def fleet(env):
    args = ["report", "--host", "ws1=" + env.host_dir("ws1", anchors=True),
            "--host", "db1=" + env.host_dir("db1"), "--host", "ws2=" + env.host_dir("ws2")]
    return args, tamper(env.path("db1"))


def case_formats(env):
    args, bad_seq = fleet(env)
    # JSON: the hosts first, each with its verdict; the tampered one broken at its seq
    r = json.loads(env.ctl_run(args + ["--format", "json"], 1).stdout)
    hosts = {h["host"]: h for h in r["hosts"]}
    check([h["host"] for h in r["hosts"]] == ["ws1", "db1", "ws2"], "hosts in the order given: %s" % r["hosts"])
    check(hosts["ws1"]["status"] == "intact" and hosts["ws1"]["verdict"] == "intact", str(hosts["ws1"]))
    check("1 of 1 anchor(s) matched" in hosts["ws1"]["reason"], hosts["ws1"]["reason"])
    check(hosts["db1"]["status"] == "broken" and hosts["db1"]["verdict"] == "broken at seq %d" % bad_seq,
          str(hosts["db1"]))
    check(hosts["db1"]["reason"].startswith("edited at audit.log:"), hosts["db1"]["reason"])
    check(hosts["ws2"]["status"] == "missing-anchors" and hosts["ws2"]["verdict"] == "missing anchors",
          str(hosts["ws2"]))
    check(hosts["ws1"]["records"] == len(HOSTS["ws1"]) + 4, "ws1 records: %s" % hosts["ws1"])
    check(hosts["db1"]["first"] == iso(T0 + 30 * MIN) and hosts["ws2"]["last"] == iso(T0 + 61 * MIN),
          "periods: %s" % r["hosts"])
    # the broken host's rows are reported, marked
    cov = [(c["host"], c["trail"], c["user"], c["service"], c["success"], c["failure"]) for c in r["coverage"]]
    check(cov == [("ws1", "intact", "alice", "sudo", 2, 0),
                  ("db1", "broken", "carol", "sudo", 1, 0),
                  ("db1", "broken", "carol", "su", 2, 0),  # the edited record, counted and marked
                  ("db1", "broken", "dave", "sudo", 1, 0),
                  ("ws2", "missing-anchors", "bob", "sshd", 1, 0),
                  ("ws2", "missing-anchors", "bob", "sudo", 0, 1)], "coverage by time: %s" % cov)
    elev = [(e["time"], e["host"], e["trail"], e["user"], e["key"], e["from"], e["ended"]) for e in r["elevations"]]
    check(elev == [(iso(T0 + 1000), "ws1", "intact", "alice", "yk-alice", "192.0.2.1", "session ended"),
                   (iso(T0 + 30 * MIN + 1000), "db1", "broken", "carol", "yk-carol", "192.0.2.3", "still open"),
                   (iso(T0 + 60 * MIN + 1000), "ws2", "missing-anchors", "bob", "yk-bob", "198.51.100.2",
                    "still open")],
          "elevations by time across hosts: %s" % elev)

    # text: the host table first, the broken host's rows marked with '!'
    out = env.ctl_run(args, 1).stdout
    check(out.index("Hosts and the integrity") < out.index("Coverage:") < out.index("Elevations"), "order")
    check(re.search(r"^db1 .* broken at seq %d$" % bad_seq, out, re.M), "text host line:\n" + out)
    check(re.search(r"^! \S+ +\S+ +db1 +broken +carol +su ", out, re.M), "text broken row mark:\n" + out)
    check(re.search(r"^! \S+ +db1 +broken +carol ", out, re.M), "text broken elevation mark:\n" + out)
    check(re.search(r"^  \S+ +\S+ +ws1 +intact +alice +sudo ", out, re.M), "text intact row:\n" + out)
    check(not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", out), "text holds control characters")

    # CSV: three tables; the broken host's rows carry its status
    o = env.path("fleet.csv")
    env.ctl_run(args + ["--format", "csv", "-o", o], 1)
    with open(o, newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    h = {row[1]: row for row in rows if row[0] == "hosts"}
    check(h["db1"][5] == "broken" and h["db1"][6] == "broken at seq %d" % bad_seq, str(h["db1"]))
    check(h["ws1"][5] == "intact" and h["ws2"][5] == "missing-anchors", str(h))
    check([r[3:5] for r in rows if r[0] == "coverage" and r[5] == "carol"] == [["db1", "broken"]] * 2,
          "csv coverage rows of db1 marked")
    check([(r[2], r[3]) for r in rows if r[0] == "elevations"] ==
          [("ws1", "intact"), ("db1", "broken"), ("ws2", "missing-anchors")], "csv elevations")

    # HTML: the broken host's rows in the red class
    o = env.path("fleet.html")
    env.ctl_run(args + ["--format", "html", "-o", o], 1)
    with open(o) as f:
        html = f.read()
    check(re.search(r'<tr class="broken"><td>db1</td>.*<td>broken at seq %d</td>' % bad_seq, html),
          "html host row")
    check(len(re.findall(r'<tr class="broken">', html)) == 1 + 3 + 1, "html: the host, 3 coverage rows and 1 "
          "elevation of db1 marked: %d" % len(re.findall(r'<tr class="broken">', html)))
    check(len(re.findall(r'<tr class="ok"><td>[^<]*</td><td>[^<]*</td><td>ws1</td>', html)) == 1, "html ws1")
    check("<script" not in html, "no script")


def case_intact(env):
    args = ["report", "--format", "json", "--host", "ws1=" + env.host_dir("ws1", anchors=True),
            "--host", "ws2=" + env.host_dir("ws2", anchors=True)]
    r = json.loads(env.ctl_run(args, 0).stdout)
    check([h["status"] for h in r["hosts"]] == ["intact", "intact"], str(r["hosts"]))
    # a FILE names the trail; its key and anchors are beside it
    args = ["report", "--format", "json", "--host", "w=" + env.path("ws1", "audit.log"), "--since",
            iso(T0 + 60 * MIN)]
    r = json.loads(env.ctl_run(args, 0).stdout)
    check(r["hosts"][0]["status"] == "intact", str(r["hosts"]))
    check([(c["user"], c["success"]) for c in r["coverage"]] == [("alice", 1)], "--since: %s" % r["coverage"])


def case_duplicate(env):
    d = env.host_dir("ws1")
    p = env.ctl_run(["report", "--host", "ws1=" + d, "--host", "ws1=" + d], 2)
    check("host ws1 is given twice" in p.stderr, p.stderr)
    for bad in ["ws1", "=" + d, "ws 1=" + d, "ws1=", "a/b=" + d]:
        env.ctl_run(["report", "--host", bad], 2)
    env.ctl_run(["report", "--host", "ws1=" + d, "--audit", d + "/audit.log"], 2)
    env.ctl_run(["report", "--host", "ws1=" + d, "--key", d + "/audit-seal.key"], 2)


def case_nokey(env):
    args = ["report", "--format", "json", "--host", "ws1=" + env.host_dir("ws1", anchors=True),
            "--host", "ws2=" + env.host_dir("ws2", key=False), "--host", "gone=" + env.path("nowhere")]
    r = json.loads(env.ctl_run(args, 1).stdout)
    hosts = {h["host"]: h for h in r["hosts"]}
    check(hosts["ws2"]["status"] == "unverifiable" and hosts["ws2"]["verdict"] == "unverifiable (no key)",
          str(hosts["ws2"]))
    check("no verification.key or audit-seal.key" in hosts["ws2"]["reason"], hosts["ws2"]["reason"])
    check(hosts["gone"]["status"] == "unreadable" and hosts["gone"]["records"] == 0, str(hosts["gone"]))
    check({c["host"] for c in r["coverage"]} == {"ws1", "ws2"}, "ws2's rows are there, marked")
    check(all(c["trail"] == "unverifiable" for c in r["coverage"] if c["host"] == "ws2"), str(r["coverage"]))
    # without the unreadable host: not proven (exit 4), as audit verify says
    env.ctl_run(args[:-2], 4)
    out = env.ctl_run(args[:-2][:1] + args[:-2][3:], 4).stdout
    check(re.search(r"^\? \S+ +\S+ +ws2 +unverifiable +bob ", out, re.M), "text '?' mark:\n" + out)


def journal_entries(hosts, anchor=None):
    """Export-format entries of HOSTS: j1 and j2's forwarded records (KEYWARD_* fields as
    keywardd sends them), j2 with a seq gap, and j3 that forwarded nothing of keyward's."""
    out = []

    def rec(host, seq, ms, event, result, **kw):
        e = {"_HOSTNAME": host, "SYSLOG_IDENTIFIER": "keywardd", "MESSAGE": "keyward %s %s" % (event, result),
             "KEYWARD_EVENT": event, "KEYWARD_RESULT": result, "KEYWARD_SEQ": str(seq),
             "KEYWARD_HASH": "%064x" % seq}
        e.update({"KEYWARD_" + k.upper(): v for k, v in kw.items()})
        out.append((ms, e))

    rec("j1", 3, T0, "auth", "success", user="alice", service="sudo", rhost="192.0.2.1")
    rec("j1", 4, T0 + 1000, "session-bind", "success", user="alice", service="sudo", session="pid:1",
        credential="yk-a")
    rec("j2", 7, T0 + 500, "auth", "success", user="bob", service="sshd")
    rec("j2", 9, T0 + 2000, "session-bind", "success", user="bob", service="sshd", session="pid:2")
    out.append((T0 + 3000, {"_HOSTNAME": "j3", "MESSAGE": "unrelated"}))
    # ws1 forwards its anchor, and a copy of a record: its trail is given with --host
    if anchor:
        out.append((T0 + 4000, at.anchor_fields(anchor, "ws1")))
    rec("ws1", 3, T0 + 5000, "auth", "success", user="alice", service="sudo")
    out = sorted((x for x in out if x[1]["_HOSTNAME"] in hosts), key=lambda x: x[0])
    text = []
    for i, (ms, fields) in enumerate(out):
        text.append("__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=%s\n"
                    % (ms * 1000, 1000 + i, "0123456789abcdef0123456789abcdef"))
        text.append("".join("%s=%s\n" % kv for kv in fields.items()) + "\n")
    return "".join(text)


def case_journal(env):
    remote = at.JOURNAL_REMOTE
    check(os.access(remote, os.X_OK), "%s missing (scripts/deps installs systemd-journal-remote)" % remote)
    # The collector's directory as `systemd-journal-remote --split-mode=host` leaves it (one
    # remote-HOST.journal per sender). That mode needs a listening collector; fed on stdin,
    # journal-remote writes one file per run: one run per host gives the same layout.
    jdir = env.path("remote")
    os.makedirs(jdir)
    ws1 = env.host_dir("ws1")
    anchor = env.ctl_run(["audit", "anchor", os.path.join(ws1, "audit.log")], 0).stdout.strip()
    for hosts in (["j1"], ["j2", "j3"], ["ws1"]):
        path = os.path.join(jdir, "remote-%s.journal" % hosts[0])
        p = subprocess.run([remote, "--output=" + path, "--split-mode=none", "-"],
                           input=journal_entries(hosts, anchor),
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0 and os.path.exists(path), "systemd-journal-remote: %s" % p.stderr)
    args = ["report", "--format", "json", "--journal", jdir]
    r = json.loads(env.ctl_run(args, 1).stdout)
    hosts = {h["host"]: h for h in r["hosts"]}
    check(sorted(hosts) == ["j1", "j2", "ws1"], "journal hosts: %s" % sorted(hosts))
    # ws1 forwarded one record, but its anchor names seq 8: the rest did not arrive
    check(hosts["ws1"]["status"] == "records-missing" and hosts["ws1"]["records"] == 1 and
          "anchors reach seq 8 but its forwarded records end at seq 3" in hosts["ws1"]["reason"], str(hosts["ws1"]))
    check(hosts["j1"]["status"] == "journal-copy" and hosts["j1"]["verdict"] == "unverifiable (journal copy)",
          str(hosts["j1"]))
    check(hosts["j2"]["status"] == "records-missing" and hosts["j2"]["verdict"] == "records missing after seq 7",
          str(hosts["j2"]))
    elev = [(e["host"], e["user"], e["from"], e["trail"]) for e in r["elevations"]]
    check(elev == [("j1", "alice", "192.0.2.1", "journal-copy"), ("j2", "bob", "", "records-missing")],
          "journal elevations: %s" % elev)
    check([(c["host"], c["user"]) for c in r["coverage"]] == [("j1", "alice"), ("j2", "bob"), ("ws1", "alice")],
          str(r["coverage"]))
    # ws1's trail given too: its verified records replace the journal's copies, and the
    # anchor it forwarded is checked against the trail (no anchors file in its directory)
    r = json.loads(env.ctl_run(args + ["--host", "ws1=" + ws1], 1).stdout)
    hosts = [(h["host"], h["status"], h["records"]) for h in r["hosts"]]
    check(hosts == [("ws1", "intact", len(HOSTS["ws1"]) + 4), ("j1", "journal-copy", 2),
                    ("j2", "records-missing", 2)], "trail and journal: %s" % hosts)
    check("1 of 1 anchor(s) matched" in r["hosts"][0]["reason"], r["hosts"][0]["reason"])
    # the forwarded anchor catches a trail cut back to an earlier seal
    lines = at.read_lines(os.path.join(ws1, "audit.log"))
    at.write_lines(os.path.join(ws1, "audit.log"), lines[:-2])
    r = json.loads(env.ctl_run(args + ["--host", "ws1=" + ws1], 1).stdout)
    check(r["hosts"][0]["status"] == "broken", str(r["hosts"][0]))


def case_real(env):
    """Two hosts' trails written by the library itself, forward-secure seals proved with
    each host's verification key, anchors published; db1 edited afterwards."""
    check(env.tool, "--tool AUDIT-TESTTOOL is required for this case")
    dirs = {}
    for name, user in (("ws1", "alice"), ("db1", "carol")):
        d, state = env.path(name), env.path(name + "-state")
        os.makedirs(d)
        os.makedirs(env.path(name + "-creds"))
        conf = env.path(name + ".conf")
        with open(conf, "w") as f:
            f.write('settings = { audit_log = "%s/audit.log"; state_dir = "%s"; credentials_dir = "%s"; };\n'
                    'rules = ();\ndefault = { require = "none"; };\n' % (d, state, env.path(name + "-creds")))
        env.ctl_run(["-c", conf, "audit", "setup-keys", "--output", os.path.join(d, "verification.key")], 0)
        p = subprocess.run([env.tool, "append", "--log", os.path.join(d, "audit.log"), "--key",
                            os.path.join(state, "audit-seal.key"), "--every", "8", "--count", "20", "--user", user],
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, "audit-testtool: %s" % p.stderr)
        anchor = env.ctl_run(["audit", "anchor", os.path.join(d, "audit.log")], 0).stdout.strip()
        with open(os.path.join(d, "anchors"), "w") as f:
            f.write(anchor + "\n")
        dirs[name] = d
    log = os.path.join(dirs["db1"], "audit.log")
    lines = at.read_lines(log)
    i = next(i for i, l in enumerate(lines) if b'"reason":"no-touch"' in l)
    lines[i] = lines[i].replace(b'"user":"carol"', b'"user":"carl"')
    at.write_lines(log, lines)
    bad_seq = json.loads(lines[i])["seq"]
    args = ["report", "--format", "json", "--host", "ws1=" + dirs["ws1"], "--host", "db1=" + dirs["db1"]]
    r = json.loads(env.ctl_run(args, 1).stdout)
    hosts = {h["host"]: h for h in r["hosts"]}
    check(hosts["ws1"]["status"] == "intact" and "forward-secure" in hosts["ws1"]["reason"], str(hosts["ws1"]))
    check(hosts["db1"]["verdict"] == "broken at seq %d" % bad_seq, str(hosts["db1"]))
    cov = sorted((c["host"], c["trail"], c["user"], c["success"], c["failure"]) for c in r["coverage"])
    # 20 records each: every 4th a failure (no-touch); the edited one is counted for "carl"
    check(cov == [("db1", "broken", "carl", 0, 1), ("db1", "broken", "carol", 15, 4),
                  ("ws1", "intact", "alice", 15, 5)], "coverage: %s" % cov)
    # without the verification key, the intact host is not proven
    os.unlink(os.path.join(dirs["ws1"], "verification.key"))
    r = json.loads(env.ctl_run(args, 1).stdout)
    check(r["hosts"][0]["verdict"] == "unverifiable (no key)", str(r["hosts"][0]))


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctl", required=True)
    ap.add_argument("--tool")
    ap.add_argument("case", choices=sorted(CASES))
    args = ap.parse_args()
    env = Env(args)
    try:
        CASES[args.case](env)
    finally:
        shutil.rmtree(env.dir, ignore_errors=True)
    print("PASS: " + args.case)


if __name__ == "__main__":
    main()
