#!/usr/bin/python3
"""bench/audit: `keywardctl audit verify` and `keywardctl report` over a 1M-record trail,
next to the hash floor and to main's keywardctl, in one run.

    audit.py --build-dir B --source-dir S [--old-ctl PATH] [--records N] [--pairs P]
             [--runs R] [--old-report-runs R] [--no-cold] [--markdown FILE]

Writes two forward-secure trails in /tmp (seals every 64, the verification key exported,
records as the daemon writes them, ~550 bytes): one of logins of one user x service pair
(the verify input), one with P user x service pairs and elevations, lock actions and their
outcomes mixed in (the report input). Then, for each command, R runs warm (page cache
filled by an untimed run first) and R runs cold (`echo 3 > /proc/sys/vm/drop_caches`
before each; needs root), median wall time and median user+system CPU:

  sha256sum / openssl dgst -sha256   the floor: one SHA-256 over the file
  keywardctl audit verify            main's (built from `git archive main`) and this tree's
  keywardctl report --format json    main's and this tree's, same trail, same key

The outputs of old and new must be identical (verify's text, the report in all four
formats); the bench fails otherwise. The trails are deleted at the end.
"""
import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def die(msg):
    print(f"bench/audit: {msg}", file=sys.stderr)
    sys.exit(1)


def build_main_ctl(source_dir):
    """main's keywardctl, built from `git archive main` in /tmp/main-src."""
    src = "/tmp/main-src"
    ctl = os.path.join(src, "build", "tools", "keywardctl")
    if os.path.exists(ctl):
        return ctl
    shutil.rmtree(src, ignore_errors=True)
    os.makedirs(src)
    archive = subprocess.run(["git", "-C", source_dir, "archive", "main"], check=True,
                             stdout=subprocess.PIPE).stdout
    subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
    subprocess.run(["cmake", "-S", src, "-B", os.path.join(src, "build")], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", os.path.join(src, "build"), "-j2", "--target", "keywardctl"],
                   check=True, stdout=subprocess.DEVNULL)
    return ctl


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def run_once(argv, cold, ok_codes=(0,)):
    """Wall seconds and CPU seconds (user + system) of one run of ARGV."""
    if cold:
        drop_caches()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode not in ok_codes:
        die("%s exited %d: %s" % (" ".join(argv), p.returncode, p.stderr.decode(errors="replace")))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stdout


def measure(argv, runs, cold):
    if not cold:
        run_once(argv, False)  # fill the page cache
    samples = [run_once(argv, cold)[:2] for _ in range(runs)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--old-ctl", help="main's keywardctl (default: build it in /tmp/main-src)")
    ap.add_argument("--records", type=int, default=1000000)
    ap.add_argument("--pairs", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--old-report-runs", type=int, default=1,
                    help="runs of main's report (it takes about a minute with 10k pairs)")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-cache rows")
    ap.add_argument("--markdown", help="also write the table to FILE")
    args = ap.parse_args()

    build = os.path.abspath(args.build_dir)
    gen = os.path.join(build, "bench", "keyward-bench-audit")
    new_ctl = os.path.join(build, "tools", "keywardctl")
    old_ctl = args.old_ctl or build_main_ctl(os.path.abspath(args.source_dir))
    cold = not args.no_cold
    if cold and os.geteuid() != 0:
        die("cold rows drop the page cache: run as root, or pass --no-cold")

    tmp = tempfile.mkdtemp(prefix="keyward-bench-audit-", dir="/tmp")
    try:
        vlog, vkey = os.path.join(tmp, "verify.log"), os.path.join(tmp, "verify.key")
        rlog, rkey = os.path.join(tmp, "report.log"), os.path.join(tmp, "report.key")
        subprocess.run([gen, "--generate", vlog, vkey, str(args.records), "1"], check=True)
        subprocess.run([gen, "--generate", rlog, rkey, str(args.records), str(args.pairs)], check=True)
        os.mkdir(os.path.join(tmp, "creds"))
        conf = os.path.join(tmp, "keyward.conf")
        with open(conf, "w") as f:
            f.write('settings = { credentials_dir = "%s"; state_dir = "%s"; audit_log = "%s"; };\n'
                    'rules = (\n  { name = "admins"; match = { groups = ["wheel"]; services = ["sudo"]; };\n'
                    '    require = "key"; }\n);\ndefault = { require = "none"; };\n'
                    % (os.path.join(tmp, "creds"), tmp, rlog))

        def verify(ctl):
            return [ctl, "-c", conf, "audit", "verify", "--verification-key", vkey, vlog]

        def report(ctl, fmt="json", out=None):
            return [ctl, "-c", conf, "report", "--audit", rlog, "--verification-key", rkey,
                    "--format", fmt, "-o", out or os.path.join(tmp, "report.out")]

        # Same answers first: verify's text, the report in every format.
        if run_once(verify(old_ctl), False)[2] != run_once(verify(new_ctl), False)[2]:
            die("verify: main and this tree print different results")
        for fmt in ("text", "json", "csv", "html"):
            outs = []
            for ctl in (old_ctl, new_ctl):
                out = os.path.join(tmp, "report.%s.%s" % (fmt, "old" if ctl == old_ctl else "new"))
                run_once(report(ctl, fmt, out), False)
                with open(out, "rb") as f:
                    # the one difference allowed: when it was generated
                    outs.append(re.sub(rb'([Gg]enerated\W{1,3})\d{4}-\d\d-\d\dT[\d:.]+Z', rb'\1-',
                                       f.read(), count=1))
            if outs[0] != outs[1]:
                die("report --format %s: main and this tree write different reports" % fmt)

        load0 = open("/proc/loadavg").read().split()[:3]
        size = os.path.getsize(vlog)
        rows = []

        def row(what, argv, runs):
            warm = measure(argv, runs, False)
            c = measure(argv, runs, True) if cold else None
            rows.append((what, c, warm, runs))
            return warm

        floor = row("sha256sum (floor)", ["sha256sum", vlog], args.runs)
        row("openssl dgst -sha256 (floor, SHA-NI where the CPU has it)",
            ["openssl", "dgst", "-sha256", vlog], args.runs)
        old_v = row("audit verify, main", verify(old_ctl), args.runs)
        new_v = row("audit verify, this tree", verify(new_ctl), args.runs)
        old_r = row("report (json), %d pairs, main" % args.pairs, report(old_ctl), args.old_report_runs)
        new_r = row("report (json), %d pairs, this tree" % args.pairs, report(new_ctl), args.runs)
        load1 = open("/proc/loadavg").read().split()[:3]

        lines = ["Audit trail: %d records, %.0f MB (verify input), seals every 64, forward-secure, "
                 "proved with the verification key; report input: %d user x service pairs"
                 % (args.records, size / 1e6, args.pairs),
                 "", "load average before %s, after %s; %d CPUs" % (" ".join(load0), " ".join(load1),
                                                                   os.cpu_count()), "",
                 "| command | cold: wall s | cold: CPU s | warm: wall s | warm: CPU s | runs (median) |",
                 "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for what, c, w, runs in rows:
            lines.append("| %s | %s | %s | %.2f | %.2f | %d |" % (
                what, "%.2f" % c[0] if c else "-", "%.2f" % c[1] if c else "-", w[0], w[1], runs))
        lines += ["", "warm verify: %.1fx faster than main, %.2fx the sha256sum floor; "
                  "warm report: %.1fx faster than main" % (old_v[0] / new_v[0], new_v[0] / floor[0],
                                                          old_r[0] / new_r[0]),
                  "outputs identical (verify text; report text, json, csv, html): yes"]
        text = "\n".join(lines)
        print(text)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(text + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
