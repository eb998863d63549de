"""load_scenarios.py: the system layer's scenario of keywardd under a local user's flood
(issue #14, fair service). Loaded by system_test.py (register(st)).

On Debian's real system bus dbus-daemon queues at most max_outgoing_unix_fds = 64
messages carrying a file descriptor for one connection, and refuses further calls to it
("destination has a full message queue") — root's too. bob, an unprivileged user no
rule covers, floods keywardd from his own shell with keyward-bench-flood (200
connections, 4 Check/Authenticate calls for himself in flight on each; every
Authenticate carries a file descriptor). Meanwhile alice runs su to root (covered): the
touch cue comes, su succeeds and is bound, and bob's flood was answered Busy in part.
"""

import re
import time

import keyward_system as ks

FLOOD = f"{ks.KW_MOUNT}/keyward-bench-flood"


def register(st):
    scenario, check = st.scenario, st.check

    @scenario("flood", enroll=(("alice", 0), ("root", 0)))
    def flood(c):
        """bob floods keywardd over the real system bus; alice's su to root is asked for
        the key, succeeds and is bound; bob's excess calls are answered Busy; keywardd
        keeps running and records bob's refused calls as summaries, not one by one."""
        q = c.shell("bob", cid="bob-flood")
        q.sendline(f"{FLOOD} --user bob --service sudo --connections 200 --inflight 4")
        q.expect(r"ready", 15, what="bob's flood connected (200 connections)")
        time.sleep(3)
        p = c.shell("alice")
        sid = st.session_of_shell(c, p, "alice")
        for i in range(3):
            p.sendline(f"su -c 'echo elevated-{i}-$(id -un)' root")
            c.answer_password(p, "root", prompt=r"Password: $")
            p.expect(r"Touch your security key for root", 15,
                     what=f"keyward's touch cue for root during bob's flood (su #{i})")
            p.expect(rf"elevated-{i}-root", 20, what=f"su #{i} to root during the flood")
        st.expect_bound(c, "su's elevation during the flood", user="root", session=sid)
        q.send("\x04")  # end of input: the flood stops and prints its counts
        q.expect(r"flood: sent=\d+ replies=\d+ errors=\d+ busy=\d+", 30,
                 what="the flood's counts")
        m = re.search(r"flood: sent=(\d+) replies=(\d+) errors=(\d+) busy=(\d+)",
                      q.transcript())
        sent, replies, errors, busy = map(int, m.groups())
        check(replies > 200 and busy > 0,
              f"bob's flood was not answered, or not refused in part: {m.group(0)}")
        st_ = c.run(["busctl", "--system", "call", "org.keyward.Keyward1",
                     "/org/keyward/Keyward1", "org.keyward.Keyward1.Manager",
                     "GetStatus"]).stdout
        check("calls_refused_busy" in st_, f"GetStatus without calls_refused_busy: {st_}")
        r = c.run(["systemctl", "is-active", "keywardd"], check=False)
        check(r.stdout.strip() == "active", f"keywardd after the flood: {r.stdout}")
        bob = [x for x in c.audit() if x.get("user") == "bob"]
        check(len(bob) <= 5, f"bob's refused calls recorded one by one: {len(bob)} records")
