#!/usr/bin/python3
"""keyward_system: boot a Debian 12 container (systemd-nspawn) with keyward installed.

The system test layer (docs/testbed.md, "The system layer"): a minimal Debian 12 root
built once with mmdebstrap and cached outside the checkout, booted with the real
systemd, logind, dbus, sudo, su and login; the project's .deb installed with apt;
keywardd started through its real shipped unit, under keyward-testbed's emulated keys.

Stdlib only; run with Debian's /usr/bin/python3, as root.

    keyward_system.py root        build (or find) the cached root, print its path
    keyward_system.py prepare --source SRC --deb-build DIR --testbed FILE --out DIR
                                  the root, a fresh .deb of SRC, and OUT/ for /mnt/kw
                                  (ctest's system.prepare)
    keyward_system.py shell --kw DIR [--keys N]
                                  boot a container, set keyward up, open a root shell
"""

import argparse
import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1

# --- the root file system --------------------------------------------------------------

SUITE = "bookworm"
# Everything the container needs, installed once: it has no network, so the .deb's
# Depends, keyward-testbed's libraries and the tools the tests drive are all here.
ROOT_PACKAGES = sorted("""
    systemd systemd-sysv dbus libpam-systemd libpam-modules libpam-runtime
    sudo login passwd util-linux procps python3
    umockdev libumockdev0 libglib2.0-0
    libfido2-1 libconfig9 libcbor0.8 libssl3 libudev1 libsystemd0 libaudit1
    libldap-2.5-0
    udev init-system-helpers
    policykit-1
    xvfb xss-lock i3lock x11-utils
    systemd-journal-remote
    openssh-server openssh-client libsodium23
    slapd ldap-utils
""".split())
# Bump when the recipe below changes in a way the package list does not show.
ROOT_RECIPE = "1"
DEFAULT_CACHE = "/var/cache/keyward-system"
HOST_SOURCES = "/etc/apt/sources.list.d/debian.sources"


class SystemLayerError(Exception):
    """The layer cannot run here; the text says why and what to do."""


HOW_TO_RUN = (
    "The system layer needs root, systemd-nspawn (systemd-container), mmdebstrap and "
    "cgroups; install them with scripts/deps and run as root: "
    "ctest --test-dir build -L system --output-on-failure. "
    "To leave the layer out explicitly: KEYWARD_SKIP_SYSTEM=1 scripts/test.")


def log(msg):
    print(f"[system] {msg}", file=sys.stderr, flush=True)


def check_host():
    """Fail loudly (SystemLayerError) when this host cannot run the layer."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not running as root")
    for prog in ("systemd-nspawn", "mmdebstrap", "nsenter"):
        if not shutil.which(prog):
            problems.append(f"{prog} is not installed")
    if not cgroup_roots():
        problems.append("no usable cgroup hierarchy under /sys/fs/cgroup")
    if problems:
        raise SystemLayerError("; ".join(problems) + ". " + HOW_TO_RUN)


def sources_file():
    if os.path.exists(HOST_SOURCES):
        return HOST_SOURCES
    if os.path.exists("/etc/apt/sources.list"):
        return "/etc/apt/sources.list"
    raise SystemLayerError("no apt sources on the host (/etc/apt/sources.list*): "
                           "mmdebstrap takes the container's packages from them")


def root_key():
    h = hashlib.sha256()
    h.update(f"{SUITE}\n{ROOT_RECIPE}\n".encode())
    h.update(" ".join(ROOT_PACKAGES).encode())
    with open(sources_file(), "rb") as f:
        h.update(f.read())
    return h.hexdigest()[:16]


def cache_dir():
    return os.environ.get("KEYWARD_SYSTEM_CACHE", DEFAULT_CACHE)


def ensure_root():
    """The cached root for ROOT_PACKAGES; built (atomically) when missing."""
    cache = cache_dir()
    os.makedirs(cache, mode=0o755, exist_ok=True)
    final = os.path.join(cache, f"root-{root_key()}")
    if os.path.isfile(os.path.join(final, ".keyward-root-complete")):
        return final
    with open(os.path.join(cache, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time
        if os.path.isfile(os.path.join(final, ".keyward-root-complete")):
            return final
        # Leftovers of interrupted builds (never renamed, so never used).
        for entry in os.listdir(cache):
            if entry.startswith("tmp-root-"):
                log(f"removing the unfinished root {entry}")
                shutil.rmtree(os.path.join(cache, entry), ignore_errors=True)
        if os.path.exists(final):  # no completion mark: not ours to trust
            shutil.rmtree(final)
        tmp = os.path.join(cache, f"tmp-root-{root_key()}.{os.getpid()}")
        argv = ["mmdebstrap", "--variant=minbase", "--mode=root",
                "--include=" + ",".join(ROOT_PACKAGES),
                # nspawn's -M names the host; apt in the container adds no Recommends.
                "--customize-hook=rm -f \"$1/etc/hostname\"",
                "--customize-hook=echo 'APT::Install-Recommends \"false\";' > "
                "\"$1/etc/apt/apt.conf.d/90keyward-system\"",
                SUITE, tmp, sources_file()]
        log(f"building the container root (once; cached in {final}): "
            f"{' '.join(shlex.quote(a) for a in argv)}")
        t0 = time.monotonic()
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
            if r.returncode != 0:
                raise SystemLayerError(
                    f"mmdebstrap failed (exit {r.returncode}); its output:\n{r.stdout[-4000:]}")
            with open(os.path.join(tmp, ".keyward-root-complete"), "w") as f:
                f.write(" ".join(ROOT_PACKAGES) + "\n")
            os.rename(tmp, final)
        finally:
            if os.path.exists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
        log(f"root built in {time.monotonic() - t0:.0f} s")
        return final


# --- cgroups ---------------------------------------------------------------------------

def cgroup_roots():
    """The hierarchies nspawn must start from a fresh sub-group of: on a pure cgroup v2
    host /sys/fs/cgroup; on v1 (hybrid) the name=systemd one and the unified one."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return ["/sys/fs/cgroup"]
    roots = []
    for d in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"):
        if os.path.exists(os.path.join(d, "cgroup.procs")):
            roots.append(d)
    return roots


def reap_stale_containers():
    """Containers of harnesses that died without tearing down (SIGKILL): their cgroups
    are named keyward-system-kw-<scenario>-<harness pid>. Kill and remove them."""
    for base in cgroup_roots():
        for entry in os.listdir(base):
            if not entry.startswith("keyward-system-kw-"):
                continue
            pid = entry.rsplit("-", 1)[-1]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                log(f"removing the container left behind by harness pid {pid}: "
                    f"{os.path.join(base, entry)}")
                _kill_cgroup(os.path.join(base, entry))
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(tempfile.gettempdir(),
                                           f"{entry}.console.log"))


def _kill_cgroup(path):
    """SIGKILL everything left in the cgroup tree at PATH, then remove it, deepest first."""
    if not os.path.isdir(path):
        return
    for _ in range(50):
        pids = []
        for d, _dirs, files in os.walk(path):
            if "cgroup.procs" in files:
                try:
                    with open(os.path.join(d, "cgroup.procs")) as f:
                        pids += [int(x) for x in f.read().split()]
                except OSError:
                    pass
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for d, _dirs, _files in sorted(os.walk(path), key=lambda e: -e[0].count("/")):
        with contextlib.suppress(OSError):
            os.rmdir(d)


# --- the container ---------------------------------------------------------------------

IN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KW_MOUNT = "/mnt/kw"  # read-only: the .deb, keyward-testbed, ptydrive.py


class Failure(AssertionError):
    """A scenario's expectation was not met; the text says what a person would see."""


class Container:
    """A booted Debian container: `with Container(root, kw_dir, name) as c: c.run([...])`.

    Boots with systemd-nspawn from a fresh sub-group of each cgroup hierarchy, waits for
    `systemctl is-system-running` to say running/degraded, and always tears down: SIGTERM
    to nspawn (the container halts), SIGKILL after 10 s, then the cgroups are removed.
    """

    def __init__(self, root, kw_dir, name, private_network=True):
        self.root = root
        # False: the host's network namespace (a scenario that talks to a collector
        # the harness runs on the host, e.g. systemd-journal-remote on loopback).
        self.private_network = private_network
        self.kw_dir = os.path.abspath(kw_dir)
        self.name = name
        self.console_log = os.path.join(tempfile.gettempdir(),
                                        f"keyward-system-{name}.console.log")
        self.cgroups = []
        self.proc = None
        self.init_pid = None
        self.agent = None

    # life cycle
    def __enter__(self):
        try:
            self.boot()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc):
        self.teardown()
        return False

    def boot(self):
        check_host()
        reap_stale_containers()
        t0 = time.monotonic()
        for base in cgroup_roots():
            path = os.path.join(base, f"keyward-system-{self.name}")
            _kill_cgroup(path)  # left over from a killed run of the same name
            os.mkdir(path)
            self.cgroups.append(path)
        procs_files = [os.path.join(p, "cgroup.procs") for p in self.cgroups]

        def enter_cgroups():
            for f in procs_files:
                with open(f, "w") as fh:
                    fh.write(str(os.getpid()))
            # Should the harness die (a ctest timeout kills it), the container halts.
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

        argv = ["systemd-nspawn", "--register=no", "--keep-unit"]
        if self.private_network:
            argv.append("--private-network")
        argv += ["--console=pipe", "--volatile=overlay", "-M", self.name, "-D", self.root,
                f"--bind-ro={self.kw_dir}:{KW_MOUNT}", "-b"]
        self.console = open(self.console_log, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.console,
                                     stderr=subprocess.STDOUT, preexec_fn=enter_cgroups,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while self.init_pid is None:
            if self.proc.poll() is not None:
                raise SystemLayerError(
                    f"systemd-nspawn exited with {self.proc.returncode} while booting; "
                    f"console:\n{self._console_tail()}")
            if time.monotonic() > deadline:
                raise SystemLayerError(f"no systemd in the container after 30 s; "
                                       f"console:\n{self._console_tail()}")
            self.init_pid = self._find_init()
            if self.init_pid is None:
                time.sleep(0.05)
        state = ""
        while time.monotonic() < deadline:
            r = self.run(["systemctl", "is-system-running"], check=False, timeout=10)
            state = r.stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.1)
        else:
            raise SystemLayerError(f"the container did not finish booting in 30 s "
                                   f"(is-system-running: {state!r}); console:\n"
                                   f"{self._console_tail()}")
        if state == "degraded":
            failed = self.run(["systemctl", "--failed", "--no-legend", "--plain"],
                              check=False).stdout
            log(f"booted degraded; failed units:\n{failed}")
        log(f"container {self.name} booted in {time.monotonic() - t0:.1f} s "
            f"(init pid {self.init_pid} on the host)")

    def _find_init(self):
        for e in os.listdir("/proc"):
            if not e.isdigit():
                continue
            try:
                with open(f"/proc/{e}/stat") as f:
                    s = f.read()
            except OSError:
                continue
            comm = s[s.index("(") + 1:s.rindex(")")]
            ppid = int(s[s.rindex(")") + 2:].split()[1])
            if ppid == self.proc.pid and comm == "systemd":
                return int(e)
        return None

    def _console_tail(self, n=4000):
        try:
            with open(self.console_log, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return "(no console log)"

    def teardown(self):
        if self.agent:
            self.agent.close()
            self.agent = None
        if self.proc and self.proc.poll() is None:
            # SIGTERM: nspawn asks the container to halt; a second SIGTERM terminates it
            # at once (left-over test sessions can hold a halt up for 90 s); then SIGKILL.
            for sig, wait in ((signal.SIGTERM, 3), (signal.SIGTERM, 5), (signal.SIGKILL, 10)):
                with contextlib.suppress(OSError):
                    if sig == signal.SIGKILL:
                        log(f"container {self.name} still up: SIGKILL")
                        os.killpg(self.proc.pid, sig)
                    else:
                        self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for path in reversed(self.cgroups):
            _kill_cgroup(path)
        self.cgroups = []
        if getattr(self, "console", None):
            self.console.close()
            self.console = None
            with contextlib.suppress(OSError):
                os.unlink(self.console_log)

    # running things inside
    def enter_argv(self, argv, env=None):
        e = {"PATH": IN_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb",
             "DEBIAN_FRONTEND": "noninteractive"}
        e.update(env or {})
        return (["nsenter", "-t", str(self.init_pid), "-a", "/usr/bin/env", "-i"]
                + [f"{k}={v}" for k, v in e.items()] + list(argv))

    def run(self, argv, check=True, timeout=60, input=None, env=None):
        """Run argv in the container (as root); returns CompletedProcess (text).
        check: raise Failure with the output when the exit status is not 0."""
        try:
            r = subprocess.run(self.enter_argv(argv, env), input=input, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise Failure(f"in the container, {shlex.join(argv)} did not finish within "
                          f"{timeout} s; output so far:\n{e.stdout or ''}{e.stderr or ''}")
        if check and r.returncode != 0:
            raise Failure(f"in the container, {shlex.join(argv)} failed (exit "
                          f"{r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    def sh(self, script, **kw):
        return self.run(["/bin/sh", "-ec", script], **kw)

    def cursor(self):
        """A journal position; journal(after=...) shows what came after it."""
        r = self.run(["journalctl", "-n", "0", "--show-cursor", "--no-pager", "-q"],
                     check=False)
        for line in r.stdout.splitlines():
            if line.startswith("-- cursor: "):
                return line[len("-- cursor: "):]
        return None

    def journal(self, *args, after=None):
        argv = ["journalctl", "--no-pager", "-q", "-o", "short-precise"]
        if after:
            argv.append(f"--after-cursor={after}")
        return self.run(argv + list(args), check=False).stdout

    def pty_agent(self):
        if not self.agent:
            self.agent = PtyAgent(self)
        return self.agent


# --- the pty agent (tests/system/ptydrive.py in the container) -------------------------

class PtyAgent:
    def __init__(self, container):
        self.c = container
        self.proc = subprocess.Popen(
            container.enter_argv(["/usr/bin/python3", f"{KW_MOUNT}/ptydrive.py"]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = self.proc.stdout.readline()
        if not hello:
            raise SystemLayerError("the pty driver did not start in the container")

    def call(self, op, **kw):
        kw["op"] = op
        self.proc.stdin.write(json.dumps(kw) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise Failure(f"the pty driver died during {op}")
        return json.loads(line)

    def spawn(self, cid, argv, env=None):
        rep = self.call("spawn", id=cid, argv=argv, env=env or {})
        if not rep["ok"]:
            raise Failure(f"cannot start {argv}: {rep['error']}")
        return Pty(self, cid, argv, rep["pid"])

    def procs(self):
        return self.call("procs")["procs"]

    def alive(self, procs):
        return self.call("alive", procs=[[p["pid"], p["start"]] for p in procs])["procs"]

    def wait_gone(self, procs, timeout):
        """(True, seconds) once every process in procs is gone, else (False, survivors)."""
        rep = self.call("wait_gone", procs=[[p["pid"], p["start"]] for p in procs],
                        timeout=timeout)
        if rep["ok"]:
            return True, rep["gone_after"]
        return False, rep.get("survivors", [])

    def close(self):
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Pty:
    """One program on its own pty in the container."""

    def __init__(self, agent, cid, argv, pid):
        self.agent = agent
        self.id = cid
        self.argv = argv
        self.pid = pid

    def expect(self, pattern, timeout=10, what=None):
        rep = self.agent.call("expect", id=self.id, pattern=pattern, timeout=timeout)
        if not rep["ok"]:
            raise Failure(f"{what or 'expected output'}: {rep['error']}\n"
                          f"--- transcript of {self.id} ({shlex.join(self.argv)}) ---\n"
                          f"{rep.get('transcript', '')}\n--- end of transcript ---")
        return rep

    def send(self, text):
        rep = self.agent.call("send", id=self.id, text=text)
        if not rep["ok"]:
            raise Failure(f"cannot write to {self.id}: {rep['error']}")

    def sendline(self, text):
        self.send(text + "\n")

    def transcript(self):
        return self.agent.call("output", id=self.id).get("transcript", "")

    def status(self):
        return self.agent.call("status", id=self.id)

    def tree(self):
        return self.agent.call("tree", id=self.id)["procs"]

    def close(self):
        return self.agent.call("close", id=self.id)


# --- keyward in the container ----------------------------------------------------------

PASSWORDS = {"alice": "alice-pw-1", "carol": "carol-pw-2", "bob": "bob-pw-3",
             "root": "root-pw-0"}
TESTBED = f"{KW_MOUNT}/keyward-testbed"
TESTBED_STATE = "/var/lib/keyward-testbed"
TESTBED_RUN = "/run/keyward-testbed"
TESTBED_CTL = f"{TESTBED_RUN}/ctl"
AUDIT_LOG = "/var/log/keyward/audit.log"
AUDITOR_CTL = "auditor-keywardctl"  # in the staged dir; run on the host, not in containers
TIMEOUT_MS = 5000
LOCK_VERIFY_MS = 1500

POLICY = """\
# The system layer's policy (tests/system/keyward_system.py): the shipped example's
# shape, with a short timeout and no PIN (the emulated key touches itself).
settings = {{
	rp_id = "pam://keyward";
	timeout = {timeout};
	failmode = "closed";
	audit_failure = "deny";
}};
rules = (
	{{
		name = "admins-elevation";
		match = {{ groups = ["sudo", "root"]; services = ["sudo", "sudo-i", "su", "su-l"]; }};
		require = "key";
		user_verification = "discouraged";
		removal = {{ action = "end-elevation"; grace = 0; }};
	}},
	{{
		name = "admins-console";
		match = {{ groups = ["sudo", "root"]; services = ["login"]; }};
		require = "key";
		user_verification = "discouraged";
		removal = {{ {login_removal} }};
	}}
);
default = {{ require = "none"; }};
"""
LOGIN_REMOVAL = {
    "lock": f'action = "lock"; grace = 0; lock_verify = {LOCK_VERIFY_MS}; '
            f'on_lock_failure = "terminate";',
    "terminate": 'action = "terminate"; grace = 0;',
}

DROPIN = """\
# keyward system layer: keywardd under the emulated keys of keyward-testbed. Everything
# else (hardening, Restart=, BusName=) is the shipped unit's.
[Service]
ExecStart=
ExecStart={testbed} --keys {keys} --touch {touch} --state {state} --ctl {ctl} -- /usr/sbin/keywardd
# READY=1 comes from keywardd, a child of the testbed (the unit's main process).
NotifyAccess=all
# Its log lines carry keywardd's name, not the wrapper's.
SyslogIdentifier=keywardd
# The emulated hidraw nodes are ptys, not hidraw character devices.
DevicePolicy=auto
ReadWritePaths={state} {run}
"""


# The package version before this one (keyward 0.1.0, the last landing of the first
# wave): what the upgrade scenario installs first. Built from the git history.
PREVIOUS_COMMIT = "fe1b508b58f8652a096bf01ce37157ef4c5d1285"
PREVIOUS_STAGED = "previous-keyward.deb"  # in the staged dir; not a keyward_*.deb name


def previous_deb(source, kw_dir):
    """Builds (once, cached beside the root) the .deb of PREVIOUS_COMMIT from the git
    history of SOURCE, copies it into KW_DIR and returns its path in the container."""
    out = os.path.join(cache_dir(), f"previous-{PREVIOUS_COMMIT[:12]}")
    debs = [f for f in os.listdir(out) if f.endswith(".deb")] if os.path.isdir(out) else []
    if not debs:
        r = subprocess.run(["git", "-C", source, "cat-file", "-e", PREVIOUS_COMMIT + "^{commit}"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise SystemLayerError(
                f"the upgrade scenario builds the previous package version from commit "
                f"{PREVIOUS_COMMIT} (keyward 0.1.0), which is not in the git history of "
                f"{source}: {r.stdout.strip()}. Run it from a full clone (not --depth).")
        tmp = tempfile.mkdtemp(prefix="previous-", dir=cache_dir())
        try:
            src = os.path.join(tmp, "src")
            os.mkdir(src)
            archive = subprocess.run(["git", "-C", source, "archive", PREVIOUS_COMMIT],
                                     stdout=subprocess.PIPE, check=True).stdout
            subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
            deb = build_deb(src, os.path.join(tmp, "build"))
            os.makedirs(out + ".tmp", exist_ok=True)
            shutil.copy2(deb, out + ".tmp")
            os.rename(out + ".tmp", out)  # atomically: a half build is never cached
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        debs = [f for f in os.listdir(out) if f.endswith(".deb")]
    shutil.copy2(os.path.join(out, debs[0]), os.path.join(kw_dir, PREVIOUS_STAGED))
    return f"{KW_MOUNT}/{PREVIOUS_STAGED}"


class System(Container):
    """A container with keyward installed the way an admin does it (README)."""

    def staged_deb(self):
        debs = [f for f in os.listdir(self.kw_dir) if f.startswith("keyward_")
                and f.endswith(".deb")]
        if len(debs) != 1:
            raise SystemLayerError(f"expected one keyward_*.deb in {self.kw_dir}, "
                                   f"found {debs}")
        return f"{KW_MOUNT}/{debs[0]}"

    def install(self, deb, timeout=120, check=True):
        # The container has no network: every dependency is in the root already.
        return self.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                         "-o", "Dpkg::Use-Pty=0", deb], timeout=timeout, check=check,
                        )

    def setup(self, keys=1, touch="auto", login_removal="lock", enroll=(("alice", 0),),
              deb=None):
        """deb: None installs this tree's .deb; "previous" the version before it."""
        t0 = time.monotonic()
        self.sh('echo "127.0.1.1 $(hostname)" >> /etc/hosts')
        self.hostname = self.run(["hostname"]).stdout.strip()
        if deb == "previous":
            source = os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__))))
            deb = previous_deb(source, self.kw_dir)
        self.install(deb or self.staged_deb())
        # alice and carol administer (group sudo, covered); bob may sudo by a sudoers.d
        # line but is not in a covered group.
        self.sh("""
            useradd -m -s /bin/bash -G sudo alice
            useradd -m -s /bin/bash -G sudo carol
            useradd -m -s /bin/bash bob
            echo 'bob ALL=(ALL:ALL) ALL' > /etc/sudoers.d/bob
            chmod 0440 /etc/sudoers.d/bob
        """)
        self.run(["chpasswd"], input="".join(f"{u}:{p}\n" for u, p in PASSWORDS.items()))
        self.write_policy(login_removal)
        self.run(["mkdir", "-p", "/etc/systemd/system/keywardd.service.d", TESTBED_STATE,
                  TESTBED_RUN])
        self.write("/etc/systemd/system/keywardd.service.d/testbed.conf", DROPIN.format(
            testbed=TESTBED, keys=keys, touch=touch, state=TESTBED_STATE, ctl=TESTBED_CTL,
            run=TESTBED_RUN))
        self.run(["systemctl", "daemon-reload"])
        self.run(["systemctl", "restart", "keywardd"])
        self.wait_daemon()
        for user, key in enroll:
            self.enroll(user, key)
        # Enable it the way the README tells admins, after enrolling.
        self.run(["pam-auth-update", "--enable", "keyward"])
        self.cursor_after_setup = self.cursor()
        log(f"keyward set up in {time.monotonic() - t0:.1f} s")

    def start_trail_over(self, vk="/root/verification.key"):
        """The README's steps after installing: the package started keywardd with a
        seal key nobody can prove, so stop it, archive the trail and key, export a
        verification key with setup-keys (to VK, in the container) and start again."""
        self.sh("systemctl stop keywardd && mkdir -p -m 0700 /var/backups/keyward-pre-setup && "
                "mv /var/log/keyward/audit.log* /var/lib/keyward/audit-seal.key "
                "/var/backups/keyward-pre-setup/")
        self.run(["keywardctl", "audit", "setup-keys", "--output", vk])
        self.run(["systemctl", "start", "keywardd"])
        self.wait_daemon()
        return vk

    def write_policy(self, login_removal="lock"):
        self.write("/etc/keyward/keyward.conf", POLICY.format(
            timeout=TIMEOUT_MS, login_removal=LOGIN_REMOVAL[login_removal]))
        self.run(["keywardctl", "policy", "check"])

    def write(self, path, text, mode="0644"):
        self.run(["sh", "-ec", f'cat > "$1"; chmod {mode} "$1"', "-", path], input=text)

    def wait_daemon(self, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run(["systemctl", "is-active", "-q", "keywardd"], check=False).returncode == 0 \
                    and self.run([TESTBED, "ctl", TESTBED_CTL, "list"], check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise Failure("keywardd (under keyward-testbed) did not become active within "
                      f"{timeout} s:\n"
                      + self.run(["systemctl", "status", "--no-pager", "keywardd"],
                                 check=False).stdout
                      + self.journal("-u", "keywardd", "-n", "40"))

    def enroll(self, user, key):
        node = self.key_node(key)
        self.run(["keywardctl", "enroll", user, "--label", f"{user}-key{key}",
                  "--device", node], input="")

    def ctl(self, *args, check=True):
        return self.run([TESTBED, "ctl", TESTBED_CTL] + list(args), check=check)

    def keys(self):
        """The testbed's `list`: one dict per key."""
        out = []
        for line in self.ctl("list").stdout.splitlines():
            f = line.split()
            out.append({"index": int(f[0]), "node": f[1], "syspath": f[2], "state": f[3],
                        "touch": f[4]})
        return out

    def key_node(self, key):
        return self.keys()[key]["node"]

    def unplug_argv(self, key):
        return [TESTBED, "ctl", TESTBED_CTL, "unplug", str(key)]

    def audit(self):
        """The audit trail's records (dicts), oldest first."""
        r = self.run(["cat", AUDIT_LOG], check=False)
        recs = []
        for line in r.stdout.splitlines():
            with contextlib.suppress(ValueError):
                recs.append(json.loads(line))
        return recs

    def session(self, sid):
        """logind's view of session sid: {'State': ..., 'LockedHint': ...}, or None."""
        r = self.run(["loginctl", "show-session", sid, "-p", "State", "-p", "LockedHint",
                      "-p", "Name", "-p", "TTY"], check=False)
        if r.returncode != 0:
            return None
        return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)

    def diagnostics(self):
        """What to print when a scenario fails."""
        parts = [
            "--- journalctl -u keywardd (since setup) ---",
            self.journal("-u", "keywardd", after=getattr(self, "cursor_after_setup", None)),
            "--- PAM lines in the journal (since setup) ---",
            self.journal("-t", "sudo", "-t", "su", "-t", "login",
                         after=getattr(self, "cursor_after_setup", None)),
            "--- loginctl list-sessions ---",
            self.run(["loginctl", "list-sessions", "--no-legend"], check=False).stdout,
            "--- keyward-testbed ctl list ---",
            self.ctl("list", check=False).stdout,
            "--- audit trail (last 15 records) ---",
            "\n".join(self.run(["tail", "-n", "15", AUDIT_LOG], check=False).stdout
                      .splitlines()),
        ]
        return "\n".join(parts)

    # people at terminals
    def shell(self, user, cid=None):
        """user's interactive login shell (root runs `su - user`: a logind session)."""
        p = self.pty_agent().spawn(cid or f"{user}-shell", ["su", "-", user])
        p.user = user
        p.expect(self.prompt(user), 15, what=f"{user}'s shell prompt after su - {user}")
        return p

    def prompt(self, user):
        return rf"{user}@[^:\s]+:[^\n$#]*[$#] $"

    def login(self, user, cid=None, password=None, expect_shell=True, argv=("login",),
              env=None):
        """user logs in with login(1) on a fresh pty; returns (pty, logind session id)."""
        p = self.pty_agent().spawn(cid or f"{user}-login", list(argv), env=env)
        p.user = user
        p.expect(r"login: $", 15, what="login's user name prompt")
        p.sendline(user)
        p.expect(r"Password: $", 10, what="login's password prompt")
        p.sendline(password or PASSWORDS[user])
        if not expect_shell:
            return p, None
        p.expect(self.prompt(user), 20, what=f"{user}'s shell after login")
        p.sendline("echo SID=$XDG_SESSION_ID")
        sid = p.expect(r"SID=(\w+)\r?\n", 5, what="the logind session id")["groups"][0]
        p.expect(self.prompt(user), 5)
        return p, sid

    def answer_password(self, pty, user, prompt=r"\[sudo\] password for \w+: $|Password: $",
                        timeout=10):
        pty.expect(prompt, timeout, what=f"a password prompt for {user}")
        pty.sendline(PASSWORDS[user])

    def elevation(self, pty, elevator, command_comm="sleep", timeout=15):
        """The elevated process tree under pty: the first `elevator` process (sudo, su)
        below the caller's shell and all its descendants, once command_comm runs in it."""
        deadline = time.monotonic() + timeout
        while True:
            procs = pty.tree()
            top = [p for p in procs[1:] if p["comm"] == elevator]
            if top:
                sub = subtree(procs, top[0]["pid"])
                if any(p["comm"] == command_comm for p in sub):
                    return sub
            if time.monotonic() > deadline:
                raise Failure(f"no {elevator} running {command_comm} appeared under "
                              f"{pty.id} within {timeout} s\n"
                              f"--- process tree ---\n{format_procs(procs)}\n"
                              f"--- transcript ---\n{pty.transcript()}")
            time.sleep(0.1)

    def pull(self, key, procs, within=2.0, what="the elevated process tree", slower=None):
        """Unplug key; every process in procs must be gone within `within` s of it.
        slower: {comm: (seconds, why)} for processes allowed longer (e.g. su's own
        2-second wait before it SIGKILLs its shell)."""
        slower = slower or {}
        limit = {p["pid"]: slower.get(p["comm"], (within, ""))[0] for p in procs}
        rep = self.pty_agent().call("trigger", argv=self.unplug_argv(key),
                                    procs=[[p["pid"], p["start"]] for p in procs],
                                    timeout=max(limit.values()) + 3)
        if not rep["ok"]:
            raise Failure(f"unplugging key {key} failed: {rep['error']}")
        ended = ", ".join(f"{n} {pid} at {t:.2f}" for pid, n, t in rep.get("ended", []))
        if "gone_after" not in rep:
            raise Failure(f"{what} was not ended within {max(limit.values()) + 3:.1f} s of "
                          f"pulling key {key}; still running:\n"
                          f"{format_procs(rep['survivors'])}\nended (s after the unplug): "
                          f"{ended or 'none'}")
        late = [(pid, n, t) for pid, n, t in rep["ended"] if t > limit.get(pid, within)]
        if late:
            raise Failure(f"{what}: not ended in time after pulling key {key}: "
                          + ", ".join(f"{n} {pid} after {t:.2f} s (allowed "
                                      f"{limit.get(pid, within)} s)" for pid, n, t in late)
                          + f"; every process (s after the unplug): {ended}")
        log(f"{what} gone {rep['gone_after']:.3f} s after the unplug (the unplug itself "
            f"took {rep['trigger_took']:.3f} s): {ended}")
        return rep["gone_after"]

    def wait_journal(self, pattern, after, unit="keywardd", timeout=5, what=None):
        """The first journal line after cursor `after` matching pattern (waits timeout s);
        else Failure, starting with `what` (what a missing line means)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.journal(*(["-u", unit] if unit else []), after=after)
            for line in text.splitlines():
                if rx.search(line):
                    return line
            if time.monotonic() > deadline:
                raise Failure(f"{what + ': ' if what else ''}"
                              f"no journal line matching {pattern!r} "
                              f"({'unit ' + unit if unit else 'whole journal'}) within "
                              f"{timeout} s; the journal has:\n{text}")
            time.sleep(0.1)


def subtree(procs, root_pid):
    by_parent = {}
    for p in procs:
        by_parent.setdefault(p["ppid"], []).append(p)
    out = [p for p in procs if p["pid"] == root_pid]
    i = 0
    while i < len(out):
        out.extend(by_parent.get(out[i]["pid"], []))
        i += 1
    return out


def format_procs(procs):
    return "\n".join(f"  pid {p['pid']} ppid {p['ppid']} pgid {p['pgid']} sid {p['sid']} "
                     f"uid {p['uid']} {p['state']} {' '.join(p['cmdline']) or p['comm']}"
                     for p in procs) or "  (none)"


# --- preparing: the .deb and what the container mounts ---------------------------------

def build_deb(source, build):
    """Build keyward's .deb from SOURCE in BUILD the way docs/packaging.md does; return it."""
    env = dict(os.environ, DEB_BUILD_MAINT_OPTIONS="hardening=+all")
    t0 = time.monotonic()

    def flags(name):
        return subprocess.run(["dpkg-buildflags", "--get", name], env=env, check=True,
                              stdout=subprocess.PIPE, text=True).stdout.strip()

    env["CFLAGS"] = f"{flags('CPPFLAGS')} {flags('CFLAGS')}"
    env["LDFLAGS"] = flags("LDFLAGS")
    steps = []
    if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
        steps.append(["cmake", "-S", source, "-B", build, "-DCMAKE_INSTALL_PREFIX=/usr",
                      "-DKEYWARD_TESTS=OFF", "-DKEYWARD_BENCH=OFF"])
    steps.append(["cmake", "--build", build, f"-j{os.environ.get('KEYWARD_SYSTEM_JOBS', '2')}"])
    for f in os.listdir(build) if os.path.isdir(build) else []:
        if f.endswith(".deb"):
            os.unlink(os.path.join(build, f))
    steps.append(["cpack", "-G", "DEB"])
    for argv in steps:
        r = subprocess.run(argv, cwd=build if argv[0] == "cpack" else None, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise SystemLayerError(f"building the .deb: {shlex.join(argv)} failed "
                                   f"(exit {r.returncode}):\n{r.stdout[-6000:]}")
    debs = [f for f in os.listdir(build) if f.startswith("keyward_") and f.endswith(".deb")]
    if len(debs) != 1:
        raise SystemLayerError(f"cpack made {debs} in {build}, expected one keyward_*.deb")
    log(f"built {debs[0]} in {time.monotonic() - t0:.0f} s ({build})")
    return os.path.join(build, debs[0])


def check_testbed_libraries(testbed, root):
    """Every shared library keyward-testbed needs must be in the container's root (it is
    Debian 12 like the host: same paths). A sanitizer build, for one, is not."""
    r = subprocess.run(["ldd", testbed], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if r.returncode != 0:
        raise SystemLayerError(f"ldd {testbed} failed:\n{r.stdout}")
    missing = []
    for line in r.stdout.splitlines():
        parts = line.split("=>")
        path = (parts[1] if len(parts) > 1 else parts[0]).split("(")[0].strip()
        if path.startswith("/") and not os.path.exists(root + os.path.realpath(path)) \
                and not os.path.exists(root + path):
            missing.append(path)
    if missing:
        raise SystemLayerError(
            f"{testbed} needs libraries the container root does not have: {missing}. "
            f"Add their packages to ROOT_PACKAGES in {__file__} (a sanitizer build of "
            f"the testbed is not supported in the container).")


def prepare(source, deb_build, testbed, out, flood, ctl):
    """Everything the scenarios need: the cached root, a fresh .deb of SOURCE, and OUT/
    with the .deb, keyward-testbed, keyward-bench-flood and ptydrive.py (mounted at
    /mnt/kw), and the build tree's keywardctl as AUDITOR_CTL: the auditor's copy, run on
    the host (another machine, as far as the container's root is concerned)."""
    check_host()
    root = ensure_root()
    deb = build_deb(source, deb_build)
    check_testbed_libraries(testbed, root)
    check_testbed_libraries(flood, root)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.unlink(os.path.join(out, f))
    here = os.path.dirname(os.path.abspath(__file__))
    for src in (deb, testbed, flood, os.path.join(here, "ptydrive.py")):
        shutil.copy2(src, out)
    shutil.copy2(ctl, os.path.join(out, AUDITOR_CTL))
    log(f"staged {sorted(os.listdir(out))} in {out}; root {root}")
    return root


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("root", help="build (once) or find the cached root; print its path")
    p = sub.add_parser("prepare", help="root + .deb + staging directory (ctest's "
                                       "system.prepare)")
    p.add_argument("--source", required=True)
    p.add_argument("--deb-build", required=True)
    p.add_argument("--testbed", required=True)
    p.add_argument("--flood", required=True, help="keyward-bench-flood (bench/flood.c)")
    p.add_argument("--ctl", required=True, help="keywardctl of the build tree (the "
                                                "auditor's, run on the host)")
    p.add_argument("--out", required=True)
    p = sub.add_parser("shell", help="boot a container with keyward set up and open a "
                                     "root shell in it; exiting the shell tears it down")
    p.add_argument("--kw", required=True, help="the staging directory of `prepare`")
    p.add_argument("--keys", type=int, default=1)
    p.add_argument("--login-removal", choices=sorted(LOGIN_REMOVAL), default="lock")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "root":
            check_host()
            print(ensure_root())
        elif a.cmd == "prepare":
            prepare(a.source, a.deb_build, a.testbed, a.out, a.flood, a.ctl)
        elif a.cmd == "shell":
            enroll = [("alice", 0), ("root", 0)] + ([("carol", 1)] if a.keys > 1 else [])
            with System(ensure_root(), a.kw, f"kw-shell-{os.getpid()}") as c:
                c.setup(keys=a.keys, login_removal=a.login_removal, enroll=enroll)
                print(f"container {c.name} (init pid {c.init_pid}); users and passwords: "
                      f"{PASSWORDS}; unplug with: {shlex.join(c.unplug_argv(0))}",
                      file=sys.stderr)
                subprocess.run(c.enter_argv(["/bin/bash", "-l"],
                                            env={"TERM": os.environ.get("TERM", "dumb")}))
    except (SystemLayerError, Failure) as e:
        print(f"keyward_system: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
