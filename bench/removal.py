#!/usr/bin/python3
"""bench/removal: how fast a pulled key locks its session, next to the udev-rule recipe.

    removal.py --build-dir B --source-dir S [--iterations N] [--idle-seconds S]
               [--sizes 1,100,10000] [--markdown FILE]

Re-executes itself under `keyward-testbed --keys 2 --bus` (umockdev keys, private system
bus with the logind stand-in). Measures, with keyward-bench-removal-probe as the stopwatch
(its own udev monitor gives t0 = the "remove" uevent, a D-Bus monitor gives t1 = the Lock
call crossing the bus to logind):

  keyward   keywardd with B bindings (1 live + B-1 on the other key), lock on removal
  udev-rule the common recipe: a process spawned per uevent runs
            `busctl call org.freedesktop.login1 ... LockSessions` (udev RUN+= style)

and, per binding count, keywardd's RSS and its wake-ups per minute when idle (voluntary +
involuntary context switches of all its threads over --idle-seconds).
"""
import argparse
import math
import os
import secrets
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BUS_NAME = "org.keyward.Keyward1"
BUS_PATH = "/org/keyward/Keyward1"
IFACE = "org.keyward.Keyward1.Manager"


def die(msg):
    print(f"bench/removal: {msg}", file=sys.stderr)
    sys.exit(1)


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build_dir)
        self.keywardd = os.path.join(self.build, "daemon", "keywardd")
        self.keywardctl = os.path.join(self.build, "tools", "keywardctl")
        self.testbed = os.path.join(self.build, "tests", "keyward-testbed")
        self.probe_bin = os.path.join(self.build, "bench", "keyward-bench-removal-probe")
        self.tmp = tempfile.mkdtemp(prefix="keyward-bench-removal-")
        os.chmod(self.tmp, 0o755)
        self.run = os.path.join(self.tmp, "run")
        self.conf = os.path.join(self.tmp, "keyward.conf")
        os.mkdir(os.path.join(self.tmp, "creds"), 0o755)
        self.daemon = None
        import dbus
        self.dbus = dbus
        self.bus = dbus.SystemBus()

    def write_policy(self):
        with open(self.conf, "w") as f:
            f.write(f"""
settings = {{
	rp_id = "pam://keyward";
	timeout = 3000;
	credentials_dir = "{self.tmp}/creds";
	state_dir = "{self.tmp}/state";
	runtime_dir = "{self.run}";
	audit_log = "{self.tmp}/log/audit.log";
	max_bindings = 20000;
}};
rules = ( {{
	name = "bench";
	match = {{ users = ["root"]; }};
	require = "key";
	user_verification = "discouraged";
	removal = {{ action = "lock"; grace = 0; lock_verify = 200; on_lock_failure = "alert"; }};
}} );
default = {{ require = "none"; }};
""")
        os.chmod(self.conf, 0o644)

    def bed(self, *args):
        r = subprocess.run([self.testbed, "ctl", "-", *args], capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            die(f"testbed ctl {args}: {r.stderr}")
        return r.stdout

    def key(self, index):
        for line in self.bed("list").splitlines():
            f = line.split()
            if int(f[0]) == index:
                return {"node": f[1], "syspath": f[2], "state": f[3]}
        die(f"no key {index}")

    def start(self):
        log = open(os.path.join(self.tmp, "keywardd.log"), "a")
        self.daemon = subprocess.Popen([self.keywardd, "-c", self.conf], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                die("keywardd exited at start; see " + log.name)
            if self.bus.name_has_owner(BUS_NAME):
                return
            time.sleep(0.02)
        die("keywardd did not start")

    def stop(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            self.daemon.wait(20)
        while self.bus.name_has_owner(BUS_NAME):
            time.sleep(0.02)

    def manager(self):
        return self.dbus.Interface(self.bus.get_object(BUS_NAME, BUS_PATH), IFACE)

    def bind(self, session):
        dbus = self.dbus
        rfd, wfd = os.pipe()
        os.close(wfd)
        try:
            r = self.manager().Authenticate("root", "login", "", "", dbus.types.UnixFd(rfd),
                                            dbus.Dictionary({}, signature="sv"), timeout=30)
        finally:
            os.close(rfd)
        if not bool(r[0]):
            die(f"authentication failed: {r[1]} {r[2]}")
        return str(self.manager().BindSession(str(r[3]), session, dbus.UInt32(0), "login", "", "root"))

    def write_bulk_bindings(self, n, syspath):
        """N binding files for session 'bulk' on the other key (read by keywardd at start)."""
        d = os.path.join(self.run, "bindings")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d, mode=0o700)
        for _ in range(n):
            bid = secrets.token_hex(16)
            path = os.path.join(d, bid)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(f"version=1\nuser=root\nuid=0\nsession=bulk\npid=0\npid_start=0\npgid=0\n"
                        f"service=login\ntty=\ncred_id=AAAA\ncred_label=bulk\nsysfs={syspath}\n"
                        f"created=0\nrule=bench\nremoval=lock\ngrace_ms=0\nlock_verify_ms=200\n"
                        f"on_lock_failure=alert\nstate=bound\n")

    def daemon_tasks_ctxt(self):
        total = 0
        tdir = f"/proc/{self.daemon.pid}/task"
        for t in os.listdir(tdir):
            try:
                with open(f"{tdir}/{t}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                            total += int(line.split()[1])
            except FileNotFoundError:
                pass
        return total

    def rss_kib(self):
        with open(f"/proc/{self.daemon.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return -1


class Probe:
    def __init__(self, binary, spawn):
        self.p = subprocess.Popen([binary] + (["--spawn-lock-sessions"] if spawn else []),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.readline(10) != "ready":
            die("the probe did not start")

    def readline(self, timeout):
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            return None
        return self.p.stdout.readline().strip()

    def latency(self, timeout=5):
        line = self.readline(timeout)
        if not line or not line.startswith("latency_us="):
            die(f"no Lock call seen after the removal (probe said {line!r})")
        f = dict(kv.split("=", 1) for kv in line.split())
        return int(f["latency_us"]) / 1000.0, f["member"]

    def spawn(self, on):
        self.p.stdin.write(f"spawn {1 if on else 0}\n")
        self.p.stdin.flush()
        if self.readline(5) != "ok":
            die("the probe did not answer")

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


def pct(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, math.ceil(p / 100.0 * len(v)) - 1))
    return v[k]


def inner(args):
    b = Bench(args)
    sizes = [int(x) for x in args.sizes.split(",")]
    results = []
    try:
        b.write_policy()
        b.start()
        r = subprocess.run([b.keywardctl, "enroll", "root", "--device", b.key(0)["node"], "--label", "bench"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            die(f"enroll: {r.stderr}")
        mock = b.dbus.Interface(b.bus.get_object("org.freedesktop.login1", "/org/freedesktop/login1"),
                                "org.freedesktop.DBus.Mock")
        mock.AddSession("s1", "seat0", b.dbus.UInt32(0), "root", True)
        mock.AddSession("bulk", "seat0", b.dbus.UInt32(0), "root", False)
        other = b.key(1)["syspath"]
        probe = Probe(b.probe_bin, spawn=False)
        for n in sizes:
            b.stop()
            b.write_bulk_bindings(n - 1, other)
            t0 = time.monotonic()
            b.start()
            while int(b.manager().GetStatus()["bindings"]) < n - 1:
                time.sleep(0.05)
            load_s = time.monotonic() - t0
            lat, rec = [], []
            # blocks of 5 alternate between the two paths, so machine load hits both alike
            for i in range(args.iterations):
                if b.key(0)["state"] != "plugged":
                    b.bed("plug", "0")
                if (i // 5) % 2 == 0:
                    bid = b.bind("s1")
                    b.bed("unplug", "0")
                    ms, member = probe.latency()
                    if member != "Lock":
                        die(f"expected Session.Lock, saw {member}")
                    lat.append(ms)
                    b.manager().UnbindSession(bid)
                else:
                    # nothing is bound to the key: keywardd stays out of it
                    probe.spawn(True)
                    b.bed("unplug", "0")
                    ms, member = probe.latency()
                    probe.spawn(False)
                    if member != "LockSessions":
                        die(f"expected LockSessions, saw {member}")
                    rec.append(ms)
            b.bed("plug", "0")
            time.sleep(1.0)
            rss = b.rss_kib()
            c0 = b.daemon_tasks_ctxt()
            time.sleep(args.idle_seconds)
            c1 = b.daemon_tasks_ctxt()
            results.append((n, lat, rec, rss, (c1 - c0) * 60.0 / args.idle_seconds, load_s))
            print(f"  {n} binding(s): keyward median {statistics.median(lat):.2f} ms, "
                  f"udev-rule median {statistics.median(rec):.2f} ms", flush=True)
        probe.close()
    finally:
        b.stop()
        shutil.rmtree(b.tmp, ignore_errors=True)

    lines = ["| bindings | keyward median ms | keyward p99 ms | keyward max ms | udev-rule median ms "
             "| udev-rule p99 ms | udev-rule max ms | samples (each) | keywardd RSS KiB "
             "| keywardd idle wake-ups/min | keywardd start s |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n, lat, rec, rss, wake, load_s in results:
        lines.append(f"| {n} | {statistics.median(lat):.2f} | {pct(lat, 99):.2f} | {max(lat):.2f} | "
                     f"{statistics.median(rec):.2f} | {pct(rec, 99):.2f} | {max(rec):.2f} | {len(lat)} | "
                     f"{rss} | {wake:.1f} | {load_s:.2f} |")
    table = "\n".join(lines)
    print("\nuevent (remove) -> Lock call at the logind stand-in, idle wake-ups over "
          f"{args.idle_seconds:g} s:\n")
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    bad = [(r[0], r[4]) for r in results if r[4] > 0]
    if bad:
        print(f"\nNOTE: keywardd woke up while idle: {bad}")
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build-dir", required=True)
    p.add_argument("--source-dir", required=True)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--idle-seconds", type=float, default=20)
    p.add_argument("--sizes", default="1,100,10000")
    p.add_argument("--markdown")
    args = p.parse_args()
    if "KEYWARD_TESTBED_CTL" in os.environ:
        return inner(args)
    testbed = os.path.join(os.path.abspath(args.build_dir), "tests", "keyward-testbed")
    conf = os.path.join(os.path.abspath(args.source_dir), "dist", "org.keyward.Keyward1.conf")
    for tool in (testbed, "busctl"):
        if not shutil.which(tool):
            die(f"missing tool: {tool}")
    return subprocess.run([testbed, "--keys", "2", "--bus", "--bus-policy", conf, "--", "/usr/bin/python3",
                           os.path.abspath(__file__)] + sys.argv[1:]).returncode


if __name__ == "__main__":
    sys.exit(main())
