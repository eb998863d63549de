#!/usr/bin/python3
"""ptydrive: drive programs on fresh ptys INSIDE the system-test container.

Runs as an agent: one JSON request per line on stdin, one JSON reply per line on stdout
(the harness, keyward_system.py, talks to it through nsenter). Stdlib only.

Requests ({"op": ..., ...}; every reply has "ok": true/false and "error" on failure):
  spawn    id, argv, env (dict, optional), cwd (optional)
           -> pid. The program runs on a new pty as its controlling terminal, in a new
              session (setsid), started by root: run `su - alice`, `login`, ... to be
              somebody else.
  expect   id, pattern (Python regex), timeout (s)
           -> matched text and groups; searches the output after the previous match.
              On timeout: ok false, "error" says so, "transcript" has everything.
  send     id, text       write text to the pty (add "\\n" yourself)
  output   id             -> everything the program wrote so far (the transcript)
  status   id             -> running true/false, exit code or signal once it ended
  tree     id             -> the program's process tree: [{pid, ppid, pgid, sid, uid,
                              comm, start, state, cmdline}], the program first
  procs                   -> the same for every process in the container
  alive    procs ([[pid, start], ...])
                          -> the entries still alive (same pid AND start time, not zombie)
  wait_gone procs, timeout
                          -> {"gone_after": seconds} or ok false with the survivors
  trigger  argv, procs, timeout
                          run argv, then wait for procs to be gone -> rc, output,
                          gone_after (s since argv started) or survivors
  close    id             SIGHUP/SIGKILL the program's session, close the pty
  quit

Everything the programs write is drained continuously, so a program never blocks on a
full pty while the harness does something else.
"""

import errno
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Child:
    def __init__(self, cid, pid, fd):
        self.id = cid
        self.pid = pid
        self.fd = fd
        self.buf = bytearray()
        self.pos = 0  # expect() searches from here
        self.status = None  # os.waitpid status once reaped
        self.eof = False


children = {}


def text_of(b):
    return bytes(b).decode("utf-8", "replace")


def drain(timeout):
    """Read whatever the ptys have (waiting at most timeout s); reap ended children."""
    fds = {c.fd: c for c in children.values() if not c.eof}
    if fds:
        try:
            ready, _, _ = select.select(list(fds), [], [], timeout)
        except InterruptedError:
            ready = []
        for fd in ready:
            c = fds[fd]
            try:
                data = os.read(fd, 65536)
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                data = b""
            if data:
                c.buf += data
            else:
                c.eof = True  # EIO: every holder of the pty's slave side is gone
    elif timeout:
        time.sleep(timeout)
    reap()


def reap():
    for c in children.values():
        if c.status is None:
            try:
                pid, st = os.waitpid(c.pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if pid == c.pid:
                c.status = st


def stat_of(pid):
    """(ppid, pgid, sid, state, start) from /proc/PID/stat, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    comm = s[s.index("(") + 1:s.rindex(")")]
    return {"comm": comm, "state": rest[0], "ppid": int(rest[1]), "pgid": int(rest[2]),
            "sid": int(rest[3]), "start": int(rest[19])}


def proc_info(pid):
    st = stat_of(pid)
    if st is None:
        return None
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None
    st.update(pid=pid, uid=uid, cmdline=cmdline)
    return st


def all_procs():
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            p = proc_info(int(e))
            if p:
                out.append(p)
    return out


def tree_of(root):
    procs = all_procs()
    by_parent = {}
    for p in procs:
        by_parent.setdefault(p["ppid"], []).append(p)
    first = [p for p in procs if p["pid"] == root]
    out, todo = [], list(first)
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(by_parent.get(p["pid"], []))
    return out


def alive(entries):
    out = []
    for pid, start in entries:
        st = stat_of(pid)
        if st and st["start"] == start and st["state"] not in ("Z", "X"):
            out.append([pid, start])
    return out


def op_spawn(req):
    cid = req["id"]
    if cid in children and children[cid].status is None:
        raise ValueError(f"{cid} is still running")
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "TERM": "dumb", "LANG": "C.UTF-8", "HOME": "/root"}
    env.update(req.get("env") or {})
    argv = req["argv"]
    pid, fd = pty.fork()
    if pid == 0:  # child: already setsid() with the pty as controlling terminal
        try:
            os.chdir(req.get("cwd") or "/")
            for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP,
                      signal.SIGPIPE, signal.SIGCHLD):
                signal.signal(s, signal.SIG_DFL)
            os.execvpe(argv[0], argv, env)
        except BaseException as e:  # noqa: BLE001 - report anything, then leave
            os.write(2, f"ptydrive: cannot run {argv}: {e}\n".encode())
        os._exit(127)
    children[cid] = Child(cid, pid, fd)
    return {"pid": pid}


def op_expect(req):
    c = children[req["id"]]
    rx = re.compile(req["pattern"].encode(), re.M)
    deadline = time.monotonic() + float(req.get("timeout", 10))
    while True:
        m = rx.search(c.buf, c.pos)
        if m:
            c.pos = m.end()
            return {"match": text_of(m.group(0)),
                    "groups": [text_of(g) if g is not None else None for g in m.groups()],
                    "elapsed": round(float(req.get("timeout", 10)) - (deadline - time.monotonic()), 3)}
        left = deadline - time.monotonic()
        if left <= 0:
            return {"ok": False,
                    "error": f"{req['id']}: no output matching {req['pattern']!r} within "
                             f"{req.get('timeout', 10)} s",
                    "transcript": text_of(c.buf), "unmatched": text_of(c.buf[c.pos:])}
        if c.eof and c.status is not None:
            drain(0)
            if not rx.search(c.buf, c.pos):
                return {"ok": False,
                        "error": f"{req['id']}: the program ended ({describe(c.status)}) "
                                 f"without printing {req['pattern']!r}",
                        "transcript": text_of(c.buf), "unmatched": text_of(c.buf[c.pos:])}
        drain(min(left, 0.05))


def describe(st):
    if st is None:
        return "running"
    if os.WIFEXITED(st):
        return f"exit {os.WEXITSTATUS(st)}"
    if os.WIFSIGNALED(st):
        return f"killed by signal {os.WTERMSIG(st)}"
    return f"status {st}"


def op_send(req):
    c = children[req["id"]]
    data = req["text"].encode()
    while data:
        n = os.write(c.fd, data)
        data = data[n:]
    return {}


def op_status(req):
    c = children[req["id"]]
    drain(0)
    st = c.status
    out = {"running": st is None, "describe": describe(st)}
    if st is not None:
        out["exit"] = os.WEXITSTATUS(st) if os.WIFEXITED(st) else None
        out["signal"] = os.WTERMSIG(st) if os.WIFSIGNALED(st) else None
    return out


def op_wait_gone(req):
    entries = req["procs"]
    deadline = time.monotonic() + float(req.get("timeout", 5))
    t0 = time.monotonic()
    while True:
        left = alive(entries)
        if not left:
            return {"gone_after": round(time.monotonic() - t0, 3)}
        if time.monotonic() >= deadline:
            return {"ok": False, "survivors": [proc_info(p) for p, _ in left],
                    "error": f"{len(left)} process(es) still alive after "
                             f"{req.get('timeout', 5)} s"}
        drain(0.02)


def op_trigger(req):
    """Run argv (e.g. the testbed's `ctl unplug 0`), then wait for procs to be gone; the
    time is measured from just before argv started, so it includes the trigger itself."""
    names = {pid: (stat_of(pid) or {}).get("comm", "?") for pid, _ in req["procs"]}
    t0 = time.monotonic()
    r = subprocess.run(req["argv"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ran = round(time.monotonic() - t0, 3)
    out = {"rc": r.returncode, "output": text_of(r.stdout), "trigger_took": ran}
    if r.returncode != 0:
        out.update(ok=False, error=f"{req['argv']} failed (exit {r.returncode}): "
                                   f"{text_of(r.stdout)}")
        return out
    entries = req["procs"]
    deadline = t0 + float(req.get("timeout", 5))
    ended = {}  # pid -> seconds after t0 when it was first seen gone
    while True:
        left = alive(entries)
        now = round(time.monotonic() - t0, 3)
        for pid, _ in entries:
            if pid not in ended and [pid, _] not in left:
                ended[pid] = now
        out["ended"] = [[pid, names.get(pid), t] for pid, t in sorted(ended.items(),
                                                                   key=lambda e: e[1])]
        if not left:
            out["gone_after"] = now
            return out
        if time.monotonic() >= deadline:
            out["survivors"] = [proc_info(p) for p, _ in left]
            return out
        drain(0.01)


def op_close(req):
    c = children.pop(req["id"], None)
    if not c:
        return {}
    for sig in (signal.SIGHUP, signal.SIGKILL):
        if c.status is None:
            for p in tree_of(c.pid):
                try:
                    os.kill(p["pid"], sig)
                except OSError:
                    pass
            t = time.monotonic() + 2
            while c.status is None and time.monotonic() < t:
                drain(0.05)
    try:
        os.close(c.fd)
    except OSError:
        pass
    return {"transcript": text_of(c.buf)}


OPS = {
    "spawn": op_spawn,
    "expect": op_expect,
    "send": op_send,
    "output": lambda r: (drain(0), {"transcript": text_of(children[r["id"]].buf)})[1],
    "status": op_status,
    "tree": lambda r: {"procs": tree_of(children[r["id"]].pid)},
    "procs": lambda r: {"procs": all_procs()},
    "alive": lambda r: {"procs": alive(r["procs"])},
    "wait_gone": op_wait_gone,
    "trigger": op_trigger,
    "close": op_close,
}


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    stdin = sys.stdin.buffer
    out = sys.stdout
    out.write(json.dumps({"ok": True, "ready": True, "pid": os.getpid()}) + "\n")
    out.flush()
    while True:
        # Drain the ptys while waiting for the next request.
        while True:
            r, _, _ = select.select([stdin], [], [], 0.05)
            if r:
                break
            drain(0)
        line = stdin.readline()
        if not line:
            break
        try:
            req = json.loads(line)
            if req.get("op") == "quit":
                out.write(json.dumps({"ok": True}) + "\n")
                out.flush()
                break
            rep = OPS[req["op"]](req)
            rep.setdefault("ok", True)
        except Exception as e:  # noqa: BLE001 - every failure goes back to the harness
            rep = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(rep) + "\n")
        out.flush()
    for cid in list(children):
        op_close({"id": cid})


if __name__ == "__main__":
    main()
