#!/usr/bin/python3
"""bench/removal: how fast a pulled key locks its session, next to the udev RUN+= recipe.

    removal.py --build-dir B --source-dir S [--sizes 1,10000,100000]
               [--positions oldest,newest,random] [--cold N] [--warm N] [--warmups N]
               [--idle-seconds S] [--no-drop-caches] [--seed N] [--markdown FILE]

Re-executes itself under `keyward-testbed --keys 3 --bus` (umockdev keys, private system bus
with the logind stand-in). Key 0 carries the measured binding (session s1), key 1 the N-1
other bindings (session bulk), key 2 nothing (its removals warm a process up).

The clocks (all CLOCK_MONOTONIC, one clock for every process):
  t_emit  the emitter's: keyward-testbed stamps it just before umockdev_testbed_uevent()
          sends the hidraw "remove" (printed by `ctl unplug` as remove_uevent_ns=)
  t_recv  the receipt by an independent listener (keyward-bench-removal-probe's own udev
          monitor, beside keywardd)
  t_lock  the Lock call seen on the bus (the probe is a D-Bus monitor, BecomeMonitor)
emission->Lock is what a user gets; receipt->Lock is keyward's own part; emission->receipt
is umockdev's delivery (a glob of listener sockets, a sysfs read and a sendmsg per
listener: 0.4-3.5 ms medians here, with the load; a kernel's netlink multicast takes
microseconds) - the floor of this bench, not of keywardd.

The two paths, sample by sample in turn so that machine load hits both alike:
  keyward    keywardd with N bindings loaded from binding files; the measured one (s1 on
             key 0, policy removal = lock) is placed at the OLDEST, the NEWEST or a RANDOM
             position of keywardd's binding list (keywardd links the files in readdir order,
             each at the head: the newest is the last file readdir returns, scanned first;
             its `created` is set to match). Every sample starts keywardd anew (a binding
             acts once). cold: the page cache is dropped (echo 3 > drop_caches) before the
             start and the measured removal is the process's first; warm: --warmups
             removals of key 2 (no binding) go first.
  udev-rule  the real recipe: udevd runs RUN+="/bin/sh -c 'loginctl lock-sessions'", a shell
             exec'd per uevent, which runs loginctl against the logind stand-in
             (LockSessions). The probe plays udevd (it spawns the shell on its receipt; real
             udevd also matches rules and forks a worker first, so this is a lower bound).
             cold: the page cache is dropped before the removal; warm: right after another.
             Nothing is bound to key 0 then; keywardd still receives and scans.

Self-checks (the bench fails loudly): the probe's uevent socket must be its own (it sits on
a high fd: umockdev names listener sockets after their fd number and a later bind of the
same number deafens the earlier listener); every removal's uevent must reach the probe;
every keyward sample must see exactly one Session.Lock, on s1; every recipe sample one
LockSessions and a shell that exited 0.
"""
import argparse
import math
import os
import queue
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BUS_NAME = "org.keyward.Keyward1"
BUS_PATH = "/org/keyward/Keyward1"
IFACE = "org.keyward.Keyward1.Manager"
SESSION_PATH = "/org/freedesktop/login1/session/"
FLOOR_NOTE = ("the delivery column (emission->receipt) is umockdev's: it globs the listener sockets, "
              "reads the device from the mocked sysfs and sends to each listener (a millisecond or "
              "more, with the machine's load); a "
              "kernel's netlink multicast delivers a uevent in microseconds. So on real hardware "
              "emission->Lock is receipt->Lock plus microseconds (plus udevd's own processing for "
              "the recipe, which real udevd does before it forks its worker and this bench does not).")


def die(msg):
    print(f"bench/removal: FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def pct(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, math.ceil(p / 100.0 * len(v)) - 1))
    return v[k]


def binding_text(session, syspath, created):
    return (f"version=1\nuser=root\nuid=0\nsession={session}\npid=0\npid_start=0\npgid=0\n"
            f"service=login\ntty=\ncred_id=AAAA\ncred_label=bench\nsysfs={syspath}\n"
            f"created={created}\nrule=bench\nremoval=lock\ngrace_ms=0\nlock_verify_ms=200\n"
            f"on_lock_failure=alert\nstate=bound\n").encode()


def write_file(path, data, create):
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | (os.O_CREAT | os.O_EXCL if create else 0), 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


class Probe:
    """keyward-bench-removal-probe; its lines land in a queue (a reader thread)."""

    def __init__(self, binary):
        self.p = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.q = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()
        line = self.get(10)
        if not line or not line.startswith("ready "):
            die(f"the probe did not start (said {line!r})")
        self.ready = line

    def _reader(self):
        for line in self.p.stdout:
            self.q.put(line.strip())
        self.q.put(None)

    def get(self, timeout):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return ""

    def events(self, kinds, timeout=5):
        """One line of each of KINDS, in any order, as dicts (None: not within TIMEOUT)."""
        got = {k: None for k in kinds}
        deadline = time.monotonic() + timeout
        while any(v is None for v in got.values()):
            line = self.get(max(0.0, deadline - time.monotonic()))
            if line is None:
                die("the probe exited")
            if not line:
                break
            f = line.split()
            if f[0] not in got or got[f[0]] is not None:
                die(f"the probe said {line!r}, expected one line of each of {kinds}")
            got[f[0]] = dict(kv.split("=", 1) for kv in f[1:])
        return got

    def quiet(self, what, timeout=0.05):
        """Nothing more may have happened (no second Lock, no stray uevent)."""
        line = self.get(timeout)
        if line:
            die(f"unexpected after {what}: {line!r}")

    def spawn(self, on):
        self.p.stdin.write(f"spawn {1 if on else 0}\n")
        self.p.stdin.flush()
        if self.get(5) != "ok":
            die("the probe did not answer")

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


class Bench:
    def __init__(self, args):
        import dbus
        self.dbus = dbus
        self.args = args
        self.build = os.path.abspath(args.build_dir)
        self.keywardd = os.path.abspath(args.keywardd) if args.keywardd else \
            os.path.join(self.build, "daemon", "keywardd")
        self.testbed = os.path.join(self.build, "tests", "keyward-testbed")
        self.probe_bin = os.path.join(self.build, "bench", "keyward-bench-removal-probe")
        self.tmp = tempfile.mkdtemp(prefix="keyward-bench-removal-")
        os.chmod(self.tmp, 0o755)
        self.run = os.path.join(self.tmp, "run")
        self.bdir = os.path.join(self.run, "bindings")
        self.conf = os.path.join(self.tmp, "keyward.conf")
        os.mkdir(os.path.join(self.tmp, "creds"), 0o755)
        self.daemon = None
        self.bus = dbus.SystemBus()
        self.rng = random.Random(args.seed)
        self.drop_caches = not args.no_drop_caches and os.access("/proc/sys/vm/drop_caches", os.W_OK)

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
	max_bindings = 1048576;
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

    def plugged(self, index):
        k = self.key(index)
        if k["state"] != "plugged":
            self.bed("plug", str(index))
            k = self.key(index)
        return k

    def unplug(self, index, probe, also=()):
        """Unplugs key INDEX; returns (t_emit, t_recv, {kind: line} for ALSO) in ns. The
        probe must hear it. The lines of ALSO ("call", "child") may come in any order with
        the receipt (the probe stamps each when it reads it)."""
        syspath = self.key(index)["syspath"]
        out = self.bed("unplug", str(index))
        stamp = [ln for ln in out.splitlines() if ln.startswith("remove_uevent_ns=")]
        if not stamp:
            die(f"ctl unplug printed no emission stamp: {out!r}")
        t_emit = int(stamp[0].split("=", 1)[1])
        got = probe.events(["recv", *also], timeout=10 if also else 5)
        ev = got.pop("recv")
        if ev is None:
            die(f"the probe missed the remove uevent of key {index} ({syspath}): its umockdev "
                "listener socket was taken over (fd collision) or the uevent was lost")
        if ev["syspath"] != syspath:
            die(f"the probe heard the removal of {ev['syspath']}, expected {syspath}")
        return t_emit, int(ev["t_ns"]), got

    def start(self):
        log = open(os.path.join(self.tmp, "keywardd.log"), "a")
        t0 = time.monotonic()
        self.daemon = subprocess.Popen([self.keywardd, "-c", self.conf], stdout=log, stderr=log)
        deadline = t0 + 300
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                die("keywardd exited at start; see " + log.name)
            if self.bus.name_has_owner(BUS_NAME):
                return t0
            time.sleep(0.01)
        die("keywardd did not start")

    def wait_loaded(self, n, t0):
        deadline = time.monotonic() + 300
        while int(self.manager().GetStatus()["bindings"]) < n:
            if time.monotonic() > deadline:
                die(f"keywardd did not load {n} bindings")
            time.sleep(0.01)
        return time.monotonic() - t0

    def stop(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            self.daemon.wait(60)
        while self.bus.name_has_owner(BUS_NAME):
            time.sleep(0.01)

    def manager(self):
        return self.dbus.Interface(self.bus.get_object(BUS_NAME, BUS_PATH), IFACE)

    def do_drop_caches(self):
        if self.drop_caches:
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")

    def write_bindings(self, n, bulk_syspath):
        """N-1 bulk binding files (created 10^6 + i) and one slot, made the measured one later."""
        shutil.rmtree(self.bdir, ignore_errors=True)
        os.makedirs(self.bdir, mode=0o700)
        for i in range(n):
            write_file(os.path.join(self.bdir, secrets.token_hex(16)),
                       binding_text("bulk", bulk_syspath, 1000000 + i), True)
        self.bulk_syspath = bulk_syspath
        self.measured = None

    def place(self, position, syspath):
        """Makes the file at POSITION (of keywardd's list: the reverse of readdir) the
        measured binding and the previous measured one a bulk binding again. Returns its
        position in keywardd's load order (0 = the newest, the last file readdir returns)."""
        names = [d for d in os.listdir(self.bdir) if len(d) == 32]  # readdir order
        n = len(names)
        scan = n - 1 - {"oldest": 0, "newest": n - 1, "random": self.rng.randrange(n)}[position]
        if self.measured and os.path.exists(os.path.join(self.bdir, self.measured)):
            write_file(os.path.join(self.bdir, self.measured),
                       binding_text("bulk", self.bulk_syspath, 1000000), False)
        self.measured = names[n - 1 - scan]
        created = {"oldest": 1, "newest": 10 ** 12}.get(position, 1000000 + n - 1 - scan)
        write_file(os.path.join(self.bdir, self.measured), binding_text("s1", syspath, created), False)
        return scan

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


def keyward_sample(b, probe, n, position, cold, warmups):
    key0 = b.plugged(0)
    b.plugged(2)
    b.stop()
    scan = b.place(position, key0["syspath"])
    if cold:
        b.do_drop_caches()
    t0 = b.start()
    start_s = b.wait_loaded(n, t0)
    if not cold:
        for _ in range(warmups):
            b.unplug(2, probe)
            b.plugged(2)
    probe.quiet("the start")
    t_emit, t_recv, got = b.unplug(0, probe, ("call",))
    call = got["call"]
    if call is None:
        die(f"keywardd put no Lock call on the bus ({position} binding of {n})")
    if call["member"] != "Lock" or call["path"] != SESSION_PATH + "s1":
        die(f"expected Session.Lock on s1, saw {call}")
    probe.quiet("the Lock")
    t_lock = int(call["t_ns"])
    return (t_lock - t_emit) / 1e6, (t_lock - t_recv) / 1e6, (t_recv - t_emit) / 1e6, scan, start_s


def recipe_sample(b, probe, cold):
    b.plugged(0)
    probe.spawn(True)
    if cold:
        b.do_drop_caches()
    t_emit, t_recv, got = b.unplug(0, probe, ("call", "child"))
    call, child = got["call"], got["child"]
    if call is None or call["member"] != "LockSessions":
        die(f"the recipe put no LockSessions call on the bus (saw {call}, shell {child})")
    if child is None or child["status"] != "0":
        die(f"the recipe's shell (loginctl lock-sessions) failed: {child}")
    probe.spawn(False)
    probe.quiet("the recipe")
    t_lock = int(call["t_ns"])
    return (t_lock - t_emit) / 1e6, (t_lock - t_recv) / 1e6, (t_recv - t_emit) / 1e6


def stats(v):
    return f"{statistics.median(v):.2f} | {pct(v, 95):.2f} | {max(v):.2f}"


def inner(args):
    b = Bench(args)
    sizes = [int(x) for x in args.sizes.split(",")]
    positions = args.positions.split(",")
    rows, peer, per_n = [], [], []
    load0 = open("/proc/loadavg").read().split()[:3]
    try:
        b.write_policy()
        probe = Probe(b.probe_bin)
        print(f"probe: {probe.ready}", flush=True)
        if args.sabotage:
            # a second listener on the probe's fd number: umockdev hands it the probe's
            # socket name, so the probe goes deaf - the self-check must catch that
            saboteur = Probe(b.probe_bin)
            print(f"saboteur: {saboteur.ready}", flush=True)
        mock = b.dbus.Interface(b.bus.get_object("org.freedesktop.login1", "/org/freedesktop/login1"),
                                "org.freedesktop.DBus.Mock")
        mock.AddSession("s1", "seat0", b.dbus.UInt32(0), "root", True)
        mock.AddSession("bulk", "seat0", b.dbus.UInt32(0), "root", False)
        mock.SetScreenLocker(True)  # a Lock sets LockedHint: lock_verify finds it locked
        bulk_syspath = b.key(1)["syspath"]
        for n in sizes:
            tg = time.monotonic()
            b.stop()
            b.write_bindings(n, bulk_syspath)
            gen_s = time.monotonic() - tg
            cells = {}
            pcells = {"cold": [], "warm": []}
            starts = {"cold": [], "warm": []}
            for mode, count in (("cold", args.cold), ("warm", args.warm)):
                for i in range(count):
                    for pos in positions:
                        s = keyward_sample(b, probe, n, pos, mode == "cold", args.warmups)
                        cells.setdefault((pos, mode), []).append(s)
                        starts[mode].append(s[4])
                        # the peer in turn, same daemon running (it scans, nothing matches)
                        pcells[mode].append(recipe_sample(b, probe, mode == "cold"))
                    print(f"  {n} binding(s), {mode} round {i + 1}/{count}: keyward "
                          + ", ".join(f"{pos} {cells[(pos, mode)][-1][0]:.2f}" for pos in positions)
                          + f" ms; recipe {pcells[mode][-1][0]:.2f} ms (emission->Lock)", flush=True)
            for (pos, mode), ss in cells.items():
                rows.append((n, pos, mode, ss))
            for mode, ss in pcells.items():
                if ss:
                    peer.append((n, mode, ss, [s[0] for (p, m), v in cells.items() if m == mode for s in v]))
            b.plugged(0)
            time.sleep(0.5)
            rss = b.rss_kib()
            c0 = b.daemon_tasks_ctxt()
            time.sleep(args.idle_seconds)
            c1 = b.daemon_tasks_ctxt()
            per_n.append((n, rss, (c1 - c0) * 60.0 / args.idle_seconds, starts, gen_s))
            print(f"  {n} binding(s) done", flush=True)
        probe.close()
    except BaseException:
        # what keywardd said last is the first thing to read when a run fails
        log = os.path.join(b.tmp, "keywardd.log")
        if os.path.exists(log):
            with open(log, errors="replace") as f:
                tail = f.readlines()[-25:]
            print("bench/removal: the end of keywardd's log:\n" + "".join(tail), file=sys.stderr)
        if b.daemon and b.daemon.poll() is not None:
            print(f"bench/removal: keywardd exited with status {b.daemon.returncode}", file=sys.stderr)
        raise
    finally:
        b.stop()
        shutil.rmtree(b.tmp, ignore_errors=True)
    load1 = open("/proc/loadavg").read().split()[:3]

    out = []
    out.append(f"bench/removal: t0 = emission (the testbed's CLOCK_MONOTONIC before the uevent) or "
               f"receipt (an independent listener), t1 = the Lock call on the bus; ms; "
               f"page cache dropped for cold rows: {'yes' if b.drop_caches else 'NO'}; "
               f"load average {' '.join(load0)} at start, {' '.join(load1)} at end.")
    out.append("")
    out.append("keywardd, the measured binding among N (position in keywardd's load order, 0 = the newest, linked last):")
    out.append("")
    out.append("| bindings | binding | process | emission→Lock p50 | p95 | max | receipt→Lock (keyward) "
               "p50 | p95 | max | delivery (umockdev) p50 | position | samples |")
    out.append("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, pos, mode, ss in rows:
        idx = sorted({s[3] for s in ss})
        idx_s = str(idx[0]) if len(idx) == 1 else f"{idx[0]}..{idx[-1]}"
        out.append(f"| {n} | {pos} | {mode} | {stats([s[0] for s in ss])} | {stats([s[1] for s in ss])} | "
                   f"{statistics.median([s[2] for s in ss]):.2f} | {idx_s} | {len(ss)} |")
    out.append("")
    out.append("The udev RUN+= recipe (/bin/sh -c 'loginctl lock-sessions' per uevent) in the same run, "
               "and keyward's emission→Lock over all positions of the same process kind:")
    out.append("")
    out.append("| bindings | process | recipe emission→Lock p50 | p95 | max | recipe receipt→Lock p50 "
               "| delivery p50 | keyward emission→Lock p50 | recipe/keyward (p50) | samples |")
    out.append("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, mode, ss, kw in peer:
        km = statistics.median(kw)
        out.append(f"| {n} | {mode} | {stats([s[0] for s in ss])} | {statistics.median([s[1] for s in ss]):.2f} | "
                   f"{statistics.median([s[2] for s in ss]):.2f} | {km:.2f} | "
                   f"{statistics.median([s[0] for s in ss]) / km:.1f}× | {len(ss)} |")
    out.append("")
    out.append(f"keywardd per N (RSS after the rounds, idle wake-ups over {args.idle_seconds:g} s, start = "
               "spawn to all bindings loaded):")
    out.append("")
    out.append("| bindings | RSS KiB | idle wake-ups/min | start cold p50 s | start warm p50 s | "
               "binding files written s |")
    out.append("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, rss, wake, starts, gen_s in per_n:
        sc = f"{statistics.median(starts['cold']):.2f}" if starts["cold"] else "-"
        sw = f"{statistics.median(starts['warm']):.2f}" if starts["warm"] else "-"
        out.append(f"| {n} | {rss} | {wake:.1f} | {sc} | {sw} | {gen_s:.2f} |")
    out.append("")
    out.append("Floor: " + FLOOR_NOTE)
    text = "\n".join(out)
    print("\n" + text, flush=True)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build-dir", required=True)
    p.add_argument("--source-dir", required=True)
    p.add_argument("--sizes", default="1,10000,100000")
    p.add_argument("--positions", default="oldest,newest,random")
    p.add_argument("--cold", type=int, default=5, help="cold samples per size and position")
    p.add_argument("--warm", type=int, default=10, help="warm samples per size and position")
    p.add_argument("--warmups", type=int, default=3, help="removals of key 2 before a warm sample")
    p.add_argument("--idle-seconds", type=float, default=20)
    p.add_argument("--no-drop-caches", action="store_true")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--markdown")
    p.add_argument("--keywardd", help="another keywardd binary (default: BUILD's)")
    p.add_argument("--sabotage", action="store_true",
                   help="test of the self-check: deafen the probe; the bench must fail")
    args = p.parse_args()
    if "KEYWARD_TESTBED_CTL" in os.environ:
        return inner(args)
    testbed = os.path.join(os.path.abspath(args.build_dir), "tests", "keyward-testbed")
    conf = os.path.join(os.path.abspath(args.source_dir), "dist", "org.keyward.Keyward1.conf")
    for tool in (testbed, "loginctl", "/bin/sh"):
        if not shutil.which(tool):
            die(f"missing tool: {tool}")
    return subprocess.run([testbed, "--keys", "3", "--bus", "--bus-policy", conf, "--", "/usr/bin/python3",
                           os.path.abspath(__file__)] + sys.argv[1:]).returncode


if __name__ == "__main__":
    sys.exit(main())
