#!/usr/bin/python3
"""directory_test.py: the credential directory with a real slapd, one case per run.

    directory_test.py --build-dir B --source-dir S CASE

Starts a throwaway slapd (Debian's, never the system one: its own cn=config built with
slapadd from the core/cosine/nis/inetorgperson schemas and dist/keyward.ldif, an mdb
database, a test CA and server certificate for StartTLS and ldaps, on 127.0.0.1 ports of
its own and a private ldapi socket), then one or two "hosts": each a keyward-testbed
(emulated key + private system bus) with its own keywardd, state and audit trail. The
emulated keys of two hosts share one key state (the same physical key carried from one
host to the other). slapd is killed at the end. Never skips: a missing tool fails.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
import daemon_test as dt  # noqa: E402
from daemon_test import Fail, check, log  # noqa: E402

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SUFFIX = "dc=example,dc=com"
ADMIN_DN = "cn=admin," + SUFFIX
ADMIN_PW = "adminsecret"
SVC_DN = "cn=keyward,ou=services," + SUFFIX
SVC_PW = "keywardsecret"
ROOT_PEER = "gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth"
TOOLS = ("openssl", "ldapmodify", "ldapsearch", SLAPD, SLAPADD)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)
    if r.returncode != 0:
        raise Fail(f"{argv[0]} failed ({r.returncode}): {r.stderr}{r.stdout}")
    return r.stdout


class Slapd:
    def __init__(self, src):
        self.src = src
        self.dir = tempfile.mkdtemp(prefix="keyward-slapd-")
        self.port = free_port()
        self.tls_port = free_port()
        self.sock = os.path.join(self.dir, "ldapi")
        self.ldapi = "ldapi://" + self.sock.replace("/", "%2F")
        self.uri = f"ldap://127.0.0.1:{self.port}"
        self.ldaps = f"ldaps://127.0.0.1:{self.tls_port}"
        self.proc = None
        self.ca = os.path.join(self.dir, "ca.pem")
        self.make_certs()
        self.make_config()

    def make_certs(self):
        d = self.dir
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", f"{d}/ca.key", "-out", self.ca, "-days", "2", "-subj", "/CN=keyward test CA"])
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr", "-subj", "/CN=127.0.0.1"])
        with open(f"{d}/ext.cnf", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run(["openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", self.ca, "-CAkey", f"{d}/ca.key",
             "-CAcreateserial", "-out", f"{d}/server.pem", "-days", "2", "-extfile", f"{d}/ext.cnf"])
        os.chmod(f"{d}/server.key", 0o600)

    def make_config(self):
        d = self.dir
        os.mkdir(f"{d}/config")
        os.mkdir(f"{d}/db")
        schema = "".join(f"include: file:///etc/ldap/schema/{s}.ldif\n" for s in ("core", "cosine", "nis", "inetorgperson"))
        schema += f"include: file://{self.src}/dist/keyward.ldif\n"
        # A stand-in for FreeIPA's passkey attribute (its name and shape, not its OIDs),
        # for the case with attribute = "ipaPassKey".
        with open(f"{d}/ipa-standin.ldif", "w") as f:
            f.write("dn: cn=ipa-standin,cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: ipa-standin\n"
                    "olcAttributeTypes: ( 1.3.6.1.4.1.59127.9.1 NAME 'ipaPassKey' EQUALITY caseExactMatch "
                    "SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n"
                    "olcObjectClasses: ( 1.3.6.1.4.1.59127.9.2 NAME 'ipaPasskeyUser' SUP top AUXILIARY "
                    "MAY ipaPassKey )\n")
        schema += f"include: file://{d}/ipa-standin.ldif\n"
        with open(f"{d}/config.ldif", "w") as f:
            f.write(f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {d}/slapd.pid
olcTLSCACertificateFile: {self.ca}
olcTLSCertificateFile: {d}/server.pem
olcTLSCertificateKeyFile: {d}/server.key

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schema}
dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcDbDirectory: {d}/db
olcDbMaxSize: 20971520
olcRootDN: {ADMIN_DN}
olcRootPW: {ADMIN_PW}
olcAccess: {{0}}to attrs=userPassword by anonymous auth by * none
olcAccess: {{1}}to attrs=passkey,keywardCredential,keywardSignCount by dn.exact="{SVC_DN}" write by dn.exact="{ROOT_PEER}" write by * read
olcAccess: {{2}}to * by * read
""")
        run([SLAPADD, "-n", "0", "-F", f"{d}/config", "-l", f"{d}/config.ldif"])
        with open(f"{d}/data.ldif", "w") as f:
            f.write(f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: example

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: ou=services,{SUFFIX}
objectClass: organizationalUnit
ou: services

dn: {SVC_DN}
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: keyward
userPassword: {SVC_PW}
""")
            for uid, num in (("root", 0), ("alice", 1001), ("bob", 1002)):
                f.write(f"""
dn: uid={uid},ou=people,{SUFFIX}
objectClass: inetOrgPerson
objectClass: posixAccount
objectClass: keywardUser
objectClass: ipaPasskeyUser
uid: {uid}
cn: {uid}
sn: {uid}
uidNumber: {num}
gidNumber: {num}
homeDirectory: /home/{uid}
""")
        run([SLAPADD, "-n", "1", "-F", f"{d}/config", "-l", f"{d}/data.ldif"])

    def start(self):
        self.proc = subprocess.Popen([SLAPD, "-d", "0", "-h", f"{self.uri}/ {self.ldaps}/ {self.ldapi}",
                                      "-F", f"{self.dir}/config"],
                                     stdout=open(f"{self.dir}/slapd.log", "a"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Fail("slapd exited at start:\n" + open(f"{self.dir}/slapd.log").read())
            r = subprocess.run(["ldapsearch", "-x", "-H", self.uri, "-b", SUFFIX, "-s", "base", "dn"],
                               capture_output=True, text=True)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise Fail("slapd did not answer")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def modify(self, ldif):
        env = dict(os.environ, LDAPTLS_CACERT=self.ca)
        return run(["ldapmodify", "-x", "-ZZ", "-H", self.uri, "-D", ADMIN_DN, "-w", ADMIN_PW], input=ldif, env=env)

    def values(self, uid, attr):
        env = dict(os.environ, LDAPTLS_CACERT=self.ca)
        out = run(["ldapsearch", "-x", "-ZZ", "-LLL", "-o", "ldif-wrap=no", "-H", self.uri, "-b", SUFFIX,
                   f"(uid={uid})", attr], env=env)
        return [l.split(": ", 1)[1] for l in out.splitlines() if l.lower().startswith(attr.lower() + ": ")]

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Host(dt.Env):
    """One keyward host: its own testbed (key + system bus), keywardd, state and trail."""

    def __init__(self, args, name, keystate, bed_args=()):
        super().__init__(args)
        self.name = name
        envfile = os.path.join(self.tmp, "agent-env.json")
        conf = os.path.join(self.src, "dist", "org.keyward.Keyward1.conf")
        self.bed_proc = subprocess.Popen([self.testbed, "--aaguid", dt.AAGUID, "--state", keystate, *bed_args, "--bus",
                                          "--bus-policy", conf, "--", "/usr/bin/python3", os.path.abspath(__file__),
                                          "--agent", envfile], stdin=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not os.path.exists(envfile):
            if self.bed_proc.poll() is not None or time.monotonic() > deadline:
                raise Fail(f"host {name}: the testbed did not start")
            time.sleep(0.05)
        time.sleep(0.05)
        with open(envfile) as f:
            self.hostenv = json.load(f)

    def bus(self):
        import dbus.bus
        if self._bus is None:
            self._bus = dbus.bus.BusConnection(self.hostenv["DBUS_SYSTEM_BUS_ADDRESS"])
        return self._bus

    def start(self, env=None):
        super().start(env=self.hostenv)

    def ctl(self, *args, stdin=None, expect=0, env_extra=None):
        r = subprocess.run([self.keywardctl, "-c", self.conf, *args], input=stdin, capture_output=True, text=True,
                           timeout=60, env=self.hostenv)
        log(f"[{self.name}] $ keywardctl {' '.join(args)} -> {r.returncode}\n{r.stdout}{r.stderr}")
        if expect is not None:
            check(r.returncode == expect, f"keywardctl {args[0]}: exit {r.returncode}, expected {expect}: {r.stderr}")
        return r

    def bed(self, *args):
        r = subprocess.run([self.testbed, "ctl", "-", *args], capture_output=True, text=True, timeout=20,
                           env=self.hostenv)
        check(r.returncode == 0, f"testbed ctl {args}: {r.stderr}")
        return r.stdout

    def enroll(self, *extra, pin=None, expect=0):
        return self.ctl("enroll", "root", *extra, expect=expect)

    def cleanup(self):
        if os.path.exists(self.daemon_log):
            log(f"--- keywardd log of host {self.name} (tail) ---\n" + self.log_text()[-4000:])
        try:
            super().cleanup()
        finally:
            if self.bed_proc.poll() is None:
                self.bed_proc.stdin.close()
                try:
                    self.bed_proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.bed_proc.kill()
                    self.bed_proc.wait()


def directory_group(slapd, uri=None, refresh=300, max_age=86400, timeout=1500, bind="simple", extra=""):
    secret = os.path.join(slapd.dir, "secret")
    if not os.path.exists(secret):
        with open(secret, "w") as f:
            f.write(SVC_PW + "\n")
        os.chmod(secret, 0o600)
    b = f'bind = "simple"; bind_dn = "{SVC_DN}"; secret_file = "{secret}";' if bind == "simple" else f'bind = "{bind}";'
    return f"""directory = {{
		uri = "{uri or slapd.uri}";
		base_dn = "ou=people,{SUFFIX}";
		{b}
		tls_ca_file = "{slapd.ca}";
		timeout = {timeout};
		refresh = {refresh};
		cache_max_age = {max_age};
		{extra}
	}};"""


def setup_host(args, slapd, name, keystate, source="directory", bed_args=(), **kw):
    h = Host(args, name, keystate, bed_args)
    h.write_policy(settings_extra=directory_group(slapd, **kw), rule_extra=f'credentials = "{source}";')
    return h


def publish(slapd, host, uid="root"):
    """Moves HOST's local registrations of UID to the directory (keywardctl directory
    export, then ldapmodify as the directory's administrator), and removes them locally."""
    out = host.ctl("directory", "export", uid).stdout
    lines = [l for l in out.splitlines() if l.strip()]
    check(lines and lines[0].startswith("passkey: passkey:"), f"export: {out}")
    ldif = f"dn: uid={uid},ou=people,{SUFFIX}\nchangetype: modify\n"
    for attr in ("passkey", "keywardCredential"):
        vals = [l for l in lines if l.startswith(attr + ": ")]
        ldif += f"add: {attr}\n" + "".join(v + "\n" for v in vals) + "-\n"
    slapd.modify(ldif)
    for f in os.listdir(host.creds):
        os.unlink(os.path.join(host.creds, f))
    return [l.split(": ", 1)[1] for l in lines if l.startswith("passkey: ")]


# --- cases ---------------------------------------------------------------------------

def case_login(args, slapd, keystate):
    """A credential held only in the directory: the login asks the server (StartTLS,
    simple bind), the cache is written root-only, and a login for a rule with
    credentials = "local" does not see it."""
    a = setup_host(args, slapd, "A", keystate)
    try:
        a.start()
        a.enroll("--label", "k1")
        publish(slapd, a, "root")
        check(not os.listdir(a.creds), "local registrations removed")
        r = a.authenticate()
        check(r["granted"], f"directory credential login: {r}")
        cache = os.path.join(a.state, "directory-cache", "root")
        st = os.stat(cache)
        check(st.st_uid == 0 and (st.st_mode & 0o077) == 0, f"cache mode {oct(st.st_mode)}")
        check("passkey:" in open(cache).read(), "the cache holds the value")
        a.ctl("directory", "status")
        # policy check validates the group's files: a readable secret file is refused, by
        # the check and by keywardd (which then cannot bind: the cache stands in, the
        # reason is logged)
        a.ctl("policy", "check", "-c", a.conf)
        secret = os.path.join(slapd.dir, "secret")
        os.chmod(secret, 0o644)
        r = a.ctl("policy", "check", "-c", a.conf, expect=1)
        check("secret_file" in r.stderr and "mode 0600" in r.stderr, f"policy check: {r.stderr}")
        r = a.authenticate()
        check(r["granted"], f"the cache stands in: {r}")
        check("secret_file" in a.log_text() and "world-readable" in a.log_text(), "the refused secret is logged")
        os.chmod(secret, 0o600)
        # the same host with credentials = "local": the directory does not count
        a.write_policy(settings_extra=directory_group(slapd), rule_extra='credentials = "local";')
        a.daemon.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        r = a.authenticate()
        check(not r["granted"] and r["reason"] == "not-enrolled", f"local only: {r}")
    finally:
        a.cleanup()


def case_ldaps(args, slapd, keystate):
    """ldaps:// with the test CA, anonymous bind (the ACL lets anyone read)."""
    a = setup_host(args, slapd, "A", keystate, uri=slapd.ldaps, bind="none")
    try:
        a.start()
        a.enroll("--label", "k1")
        publish(slapd, a, "root")
        check(a.authenticate()["granted"], "ldaps login")
    finally:
        a.cleanup()


def case_ldapi_external(args, slapd, keystate):
    """ldapi:// with SASL EXTERNAL (the peer credentials of root, no password anywhere):
    enrolment writes into the directory and the login reads it back."""
    a = setup_host(args, slapd, "A", keystate, uri=slapd.ldapi, bind="sasl-external",
                   extra="writable = true;")
    try:
        a.start()
        a.enroll("--label", "k1", "--directory")
        check(slapd.values("root", "passkey"), "written over ldapi with SASL EXTERNAL")
        r = a.authenticate()
        check(r["granted"] and r["cred"] == "k1", f"login over ldapi: {r}")
        check(shared_counter(slapd)[1], "the shared counter was written")
    finally:
        a.cleanup()


def case_both(args, slapd, keystate):
    """credentials = "both": a local key and a directory key both count; each source alone
    only its own."""
    a = setup_host(args, slapd, "A", keystate, source="both", bed_args=("--keys", "2"),
                   extra="writable = true;")
    try:
        a.start()
        a.enroll("--label", "local1", "--device", "/dev/hidraw0")
        a.enroll("--label", "dir1", "--directory", "--device", "/dev/hidraw1")
        check(len(os.listdir(a.creds)) == 1, "local1 is local")

        def source(src):
            a.write_policy(settings_extra=directory_group(slapd, extra="writable = true;"),
                           rule_extra=f'credentials = "{src}";')
            a.daemon.send_signal(signal.SIGHUP)
            time.sleep(0.5)

        r = a.authenticate()
        check(r["granted"] and r["cred"] in ("local1", "dir1"), f"both: {r}")
        source("local")
        r = a.authenticate()
        check(r["granted"] and r["cred"] == "local1", f"local only: {r}")
        a.ctl("revoke", "root", "local1")
        r = a.authenticate()
        check(not r["granted"] and r["reason"] == "not-enrolled", f"local only, none left: {r}")
        source("both")
        r = a.authenticate()
        check(r["granted"] and r["cred"] == "dir1", f"the directory key under both: {r}")
    finally:
        a.cleanup()


def pam_auth(h, expect):
    """pam-driver (libpamtest) under pam_wrapper with pam_keyward.so, on host H's bus."""
    pam_dir = os.path.join(h.tmp, "pam.d")
    if not os.path.isdir(pam_dir):
        os.mkdir(pam_dir)
        with open(os.path.join(pam_dir, "other"), "w") as f:
            f.write("auth required pam_deny.so\naccount required pam_deny.so\nsession required pam_deny.so\n")
        with open(os.path.join(pam_dir, "sudo"), "w") as f:
            f.write(f"auth required {os.path.join(h.build, 'pam_module', 'pam_keyward.so')} config={h.conf}\n")
    pre = [p for p in h.hostenv.get("LD_PRELOAD", "").replace(":", " ").split() if p]
    env = dict(h.hostenv, LD_PRELOAD=" ".join(pre + ["libpam_wrapper.so"]), PAM_WRAPPER="1",
               PAM_WRAPPER_SERVICE_DIR=pam_dir, PAM_WRAPPER_DISABLE_DEEPBIND="1",
               UID_WRAPPER_DISABLE_DEEPBIND="1")
    driver = os.path.join(h.build, "tests", "integration", "pam-driver")
    r = subprocess.run([driver, "sudo", "root", f"auth:{expect}"], env=env, capture_output=True, text=True,
                       timeout=60)
    log(f"[{h.name}] $ pam-driver sudo root auth:{expect} -> {r.returncode}\n{r.stdout}{r.stderr}")
    check(r.returncode == 0, f"pam-driver auth:{expect} failed")
    return r.stdout + r.stderr


def case_pam(args, slapd, keystate):
    """The whole chain through pam_keyward.so (pam_wrapper + libpamtest): a host that has
    never seen the user's keys (no cache) lets the directory key in; with the server gone
    and the cache too old, the module refuses with the daemon's message (a keyward
    fault, PAM_SERVICE_ERR, not a wrong password)."""
    a = setup_host(args, slapd, "A", keystate, max_age=3, extra="writable = true;")
    try:
        a.start()
        a.enroll("--label", "k1", "--directory")
        os.unlink(os.path.join(a.state, "directory-cache", "root"))
        pam_auth(a, "PAM_SUCCESS")
        check(os.path.exists(os.path.join(a.state, "directory-cache", "root")), "the login wrote the cache")
        slapd.stop()
        time.sleep(4)
        out = pam_auth(a, "PAM_SERVICE_ERR")
        check("cannot be reached" in out and "limit 3 s" in out, f"the module showed: {out}")
    finally:
        a.cleanup()


def case_ipa_attribute(args, slapd, keystate):
    """attribute = "ipaPassKey" (FreeIPA's name) and another user_filter: the same SSSD
    values under another attribute; keyward's own attributes stay optional."""
    a = setup_host(args, slapd, "A", keystate,
                   extra='attribute = "ipaPassKey"; user_filter = "(&(objectClass=inetOrgPerson)(uid=%u))";')
    try:
        a.start()
        a.enroll("--label", "k1")
        out = a.ctl("directory", "export", "root").stdout
        vals = [l.split(": ", 1)[1] for l in out.splitlines() if l.startswith("ipaPassKey: ")]
        check(len(vals) == 1 and vals[0].startswith("passkey:"), f"export names the attribute: {out}")
        slapd.modify(f"dn: uid=root,ou=people,{SUFFIX}\nchangetype: modify\nadd: ipaPassKey\nipaPassKey: {vals[0]}\n-\n")
        for f in os.listdir(a.creds):
            os.unlink(os.path.join(a.creds, f))
        r = a.authenticate()
        check(r["granted"] and r["cred"] == "directory-1", f"login with an ipaPassKey value: {r}")
    finally:
        a.cleanup()


def case_two_hosts(args, slapd, keystate):
    """Enrol on host A into the directory (`enroll --directory`: keywardd writes the value),
    log in on host B; revoke on A (`revoke --directory`) and B refuses within `refresh`
    seconds (B's periodic refresh, not a login, removes it from B's cache)."""
    a = setup_host(args, slapd, "A", keystate, refresh=2, extra="writable = true;")
    b = None
    try:
        a.vk = os.path.join(a.tmp, "verification.key")
        a.ctl("audit", "setup-keys", "--output", a.vk)
        a.start()
        a.enroll("--label", "k1", "--directory")
        check(not os.listdir(a.creds), "nothing stored locally")
        vals = slapd.values("root", "passkey")
        check(len(vals) == 1 and vals[0].startswith("passkey:"), f"the directory holds it: {vals}")
        kw = slapd.values("root", "keywardCredential")
        check(len(kw) == 1 and " label=k1 " in kw[0], f"keywardCredential: {kw}")
        check(a.audit_find(event="enroll", result="success", detail="directory"), "enrolment audited")
        # the same label again is refused by the directory's copy
        r = a.enroll("--label", "k1", "--directory", expect=None)
        check(r.returncode != 0, "a second k1 was accepted")
        b = setup_host(args, slapd, "B", keystate, refresh=2, extra="writable = true;")
        b.vk = os.path.join(b.tmp, "verification.key")
        b.ctl("audit", "setup-keys", "--output", b.vk)
        b.start()
        # B has no cache yet: Check (what pam_keyward asks first) must not answer "no
        # keys" — the directory is asked at Authenticate, with Check's decision.
        ck = b.manager().Check("root", "sudo", "", "")
        check(str(ck[0]) == "key" and int(ck[6]) >= 1 and str(ck[7]), f"Check on B before any login: {ck}")
        import dbus
        r = b.authenticate(options={"decision": dbus.String(str(ck[7]))})
        check(r["granted"] and r["cred"] == "k1", f"host B login with A's registration: {r}")
        ck = b.manager().Check("root", "sudo", "", "")
        check(int(ck[6]) == 1, f"Check on B counts the cached key: {ck}")
        a.ctl("revoke", "root", "k1", "--directory")
        check(not slapd.values("root", "passkey"), "the value is gone from the directory")
        t0 = time.monotonic()
        cache = os.path.join(b.state, "directory-cache", "root")
        while "passkey:" in open(cache).read():
            check(time.monotonic() - t0 < 2 + 3, "the revocation did not reach B's cache within refresh")
            time.sleep(0.2)
        log(f"revocation in B's cache after {time.monotonic() - t0:.1f} s (refresh 2 s)")
        r = b.authenticate()
        check(not r["granted"] and r["reason"] == "not-enrolled", f"revoked: {r}")
        a.stop()
        b.stop()
        fleet_report(args, a, b)
    finally:
        a.cleanup()
        if b:
            b.cleanup()


def fleet_report(args, a, b):
    """The fleet report over both hosts (`keywardctl report --host NAME=DIR`), each DIR as a
    collector keeps it: the trail (audit.log*), the verification key from `audit setup-keys`
    and the host's published anchor. Both hosts intact; A's enrolment and B's login are in it."""
    dirs = {}
    for h in (a, b):
        d = os.path.join(a.tmp, "fleet", "host" + h.name)
        os.makedirs(d)
        logdir = os.path.dirname(h.audit)
        for f in os.listdir(logdir):
            if f.startswith("audit.log"):
                shutil.copy(os.path.join(logdir, f), d)
        shutil.copy(h.vk, os.path.join(d, "verification.key"))
        anchor = h.ctl("audit", "anchor", h.audit).stdout.strip()
        check(anchor, f"host {h.name}: no anchor")
        with open(os.path.join(d, "anchors"), "w") as f:
            f.write(anchor + "\n")
        dirs[h.name] = d
    argv = ["report", "--host", "hostA=" + dirs["A"], "--host", "hostB=" + dirs["B"]]
    r = json.loads(a.ctl(*argv, "--format", "json").stdout)
    hosts = {h["host"]: h for h in r["hosts"]}
    check(sorted(hosts) == ["hostA", "hostB"], f"hosts in the report: {r['hosts']}")
    for name, h in hosts.items():
        check(h["status"] == "intact" and h["verdict"] == "intact", f"{name} not intact: {h}")
    cov = sorted((c["host"], c["trail"], c["user"], c["service"], c["success"], c["failure"])
                 for c in r["coverage"])
    # B: the login with A's enrolment granted, the one after the revocation refused; A: none
    check(cov == [("hostB", "intact", "root", "sudo", 1, 1)], f"coverage: {cov}")
    # no elevation rows: these logins are bare Authenticate calls, no PAM session to bind
    check(r["elevations"] == [], f"elevations: {r['elevations']}")
    # The enrolment on A: the multi-host report has no table of enrolments (coverage and
    # elevations only); A's proven trail holds it, and B's login above used it.
    enrols = [x for x in a.audit_records() if x.get("event") == "enroll" and x.get("detail") == "directory"]
    check(len(enrols) == 1 and hosts["hostA"]["records"] >= enrols[0]["seq"],
          f"hostA's report covers its enrolment record: {hosts['hostA']} {enrols}")
    text = a.ctl(*argv).stdout
    check("hostA" in text and "hostB" in text and "intact" in text, "the text report names both hosts")


def case_offline(args, slapd, keystate):
    """slapd stopped: logins go on from the cache until cache_max_age, then refused with
    the message that names the server and the age."""
    a = setup_host(args, slapd, "A", keystate, max_age=4, refresh=3600)
    try:
        a.start()
        a.enroll("--label", "k1")
        publish(slapd, a, "root")
        check(a.authenticate()["granted"], "online login")
        slapd.stop()
        r = a.authenticate()
        check(r["granted"], f"offline login from the cache: {r}")
        check("Using the cached directory keys of root" in a.log_text(), "cache use logged")
        out = a.ctl("directory", "status").stdout
        check("last answer:" in out and "last error:" in out and slapd.uri in out, f"status: {out}")
        time.sleep(5)
        r = a.authenticate()
        check(not r["granted"] and r["reason"] == "directory-unavailable", f"too old: {r}")
        check(slapd.uri in r["message"] and "cached keys of root are" in r["message"] and "limit 4 s" in r["message"],
              f"message: {r['message']}")
        slapd.start()
        check(a.authenticate()["granted"], "back online")
    finally:
        a.cleanup()


def case_timeout(args, slapd, keystate):
    """A server that accepts TCP and never answers: the login waits no longer than the
    timeout, then uses the cache."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(lsock.accept()[0])
            except OSError:
                pass

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    dead = f"ldap://127.0.0.1:{lsock.getsockname()[1]}"
    a = setup_host(args, slapd, "A", keystate, timeout=1000)
    try:
        a.start()
        a.enroll("--label", "k1")
        publish(slapd, a, "root")
        check(a.authenticate()["granted"], "online login (cache written)")
        a.write_policy(settings_extra=directory_group(slapd, uri=dead, timeout=1000), rule_extra='credentials = "directory";')
        a.daemon.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        r = a.authenticate()
        check(r["granted"], f"login from the cache behind a silent server: {r}")
        check(r["secs"] < 1.0 + 1.5, f"the login waited {r['secs']:.2f} s (timeout 1 s)")
        check(held, "the silent server was connected to")
        check("Directory unreachable for root" in a.log_text(), "logged")
        # the same behind ldaps:// (the TLS handshake never answered) and with the silent
        # server first and the real one second: one budget for the whole list
        silent_tls = dead.replace("ldap://", "ldaps://")
        for uri, expect_fresh in ((silent_tls, False), (f'{dead}", "{slapd.uri}', True)):
            a.write_policy(settings_extra=directory_group(slapd, uri=uri, timeout=1000),
                           rule_extra='credentials = "directory";')
            a.daemon.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            n_before = a.log_text().count("Directory unreachable for root")
            r = a.authenticate()
            check(r["granted"] and r["secs"] < 1.0 + 1.5, f"{uri}: {r}")
            # with the silent server first the budget is spent on it: the cache answers
            check(a.log_text().count("Directory unreachable for root") == n_before + 1,
                  f"{uri}: the cache was not used")
    finally:
        stop.set()
        a.cleanup()
        for s in held:
            s.close()
        lsock.close()


def case_malformed(args, slapd, keystate):
    """Bad values (bad base64, a wrong key type, a huge value, too many values) are each
    rejected with a log line; the user's good key still works."""
    a = setup_host(args, slapd, "A", keystate)
    try:
        a.start()
        a.enroll("--label", "k1")
        good = publish(slapd, a, "root")[0]
        rsa1024 = run(["sh", "-c", "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 2>/dev/null | "
                       "openssl pkey -pubout -outform DER | base64 -w0"]).strip()
        x25519 = run(["sh", "-c", "openssl genpkey -algorithm X25519 2>/dev/null | "
                      "openssl pkey -pubout -outform DER | base64 -w0"]).strip()
        bad = ["passkey:!!notbase64!!," + good.split(",")[1],
               "passkey:" + good.split(",")[0][8:] + "," + x25519,
               "passkey:" + good.split(",")[0][8:] + "," + rsa1024,
               "passkey:" + "A" * 8000 + "," + good.split(",")[1],
               "passkey:onlyone",
               "ssh-ed25519 AAAA not a passkey"]
        bad += [f"passkey:{i:04d}AAAA,AAAA" for i in range(70)]
        ldif = f"dn: uid=root,ou=people,{SUFFIX}\nchangetype: modify\nadd: passkey\n" + "".join(
            f"passkey: {v}\n" for v in bad) + "-\n"
        slapd.modify(ldif)
        r = a.authenticate()
        check(r["granted"], f"the good key still works: {r}")
        text = a.log_text()
        for what in ("not base64", "wrong key type", "is not 2048 bits", "too long", "expected passkey:",
                     "does not start with", "more than 64 passkey values"):
            check(what in text, f"no log line for: {what}")
        out = a.ctl("directory", "show", "root").stdout
        check("rejected:" in out and "1 credential(s)" in out, f"show: {out}")
    finally:
        a.cleanup()


def case_injection(args, slapd, keystate):
    """A user name that would widen the filter never reaches the server: keywardctl and
    keywardd refuse it as a user name, and the filter escapes (RFC 4515) whatever it is
    given (test-directory.c); a login for such a name is refused, never granted."""
    a = setup_host(args, slapd, "A", keystate)
    try:
        a.start()
        a.enroll("--label", "k1")
        publish(slapd, a, "root")
        before = len(open(f"{slapd.dir}/slapd.log").read()) if os.path.exists(f"{slapd.dir}/slapd.log") else 0
        for evil in ("*)(uid=*", "*", "root)(|(uid=*"):
            r = a.ctl("directory", "show", evil, expect=None)
            check(r.returncode == 2 and "not a valid user name" in r.stderr, f"{evil!r}: {r.stdout}{r.stderr}")
            try:
                res = a.authenticate(user=evil)
                check(not res["granted"], f"{evil!r} login: {res}")
            except Exception as x:  # a bus error (invalid user name) is a refusal too
                if isinstance(x, Fail):
                    raise
                log(f"{evil!r}: refused by the bus layer: {x}")
        r = a.ctl("directory", "show", "alice")
        check("entry uid=alice" in r.stdout, "a real user is found")
        r = a.ctl("directory", "show", "nosuchuser")
        check("no entry" in r.stdout, "an unknown user has no entry")
        check(a.authenticate()["granted"], "root's login still works")
    finally:
        a.cleanup()


def shared_counter(slapd):
    vals = slapd.values("root", "keywardSignCount")
    return vals, max((int(v.split()[1]) for v in vals), default=None)


def case_counter(args, slapd, keystate):
    """The shared sign counter (writable directory): each login raises keywardSignCount
    with a compare-and-swap; two hosts' logins at the same moment both get through (the
    loser of the race re-reads and retries); and a key whose counter is behind what
    another host saw - a clone, or here the emulated key of host A whose counter copy did
    not move while host B's did - is refused as a clone, which A's own local counter
    would not have noticed."""
    a = setup_host(args, slapd, "A", keystate, extra="writable = true;")
    b = None
    try:
        a.start()
        a.enroll("--label", "k1", "--directory")
        check(a.authenticate()["granted"], "A login")
        vals, n1 = shared_counter(slapd)
        check(len(vals) == 1 and n1 and n1 > 0, f"shared counter after A: {vals}")
        b = setup_host(args, slapd, "B", keystate, extra="writable = true;")
        b.start()
        for _ in range(3):
            check(b.authenticate()["granted"], "B login")
        vals, n2 = shared_counter(slapd)
        check(len(vals) == 1 and n2 > n1, f"shared counter after B: {vals} (A left {n1})")
        # both at once: the CAS race (one of them re-reads and retries)
        results = {}

        def login(h):
            results[h.name] = h.authenticate()

        ths = [threading.Thread(target=login, args=(h,)) for h in (b, b)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        vals, n3 = shared_counter(slapd)
        check(len(vals) == 1 and n3 > n2, f"after the race: {vals}")
        # A's key is behind B's: a clone as far as the fleet can tell
        r = a.authenticate()
        log(f"A after B: {r}")
        check(not r["granted"] and r["reason"] == "clone", f"A's rewound counter was accepted: {r}")
        check(a.audit_find(event="clone-alert", user="root"), "clone-alert audited on A")
        check("CLONE ALERT" in a.log_text(), "clone logged on A")
        vals2, n4 = shared_counter(slapd)
        check(n4 == n3, f"a clone does not move the shared counter: {vals2}")
        # The race itself, made certain: another host raises the shared counter while B's
        # key waits for its touch (after B read it): B's compare-and-swap fails, B reads
        # again and raises it past the other host's value.
        b.cleanup()
        b = setup_host(args, slapd, "B2", keystate, bed_args=("--touch-delay", "1500"), extra="writable = true;")
        b.start()
        # (B2's emulated key starts from the key state on disk, behind what B's copy
        # reached: the administrator resets the shared counter first, as after a key
        # replacement, so that B2's key is ahead of it.)
        def cas(old, new):
            slapd.modify(f"dn: uid=root,ou=people,{SUFFIX}\nchangetype: modify\ndelete: keywardSignCount\n"
                         f"keywardSignCount: {old}\n-\nadd: keywardSignCount\nkeywardSignCount: {new}\n-\n")
        cur = shared_counter(slapd)[0][0]
        cid = cur.split()[0]
        cas(cur, f"{cid} 1")
        res = {}
        t = threading.Thread(target=lambda: res.update(r=b.authenticate()))
        t.start()
        time.sleep(0.7)  # B2 has read "1" and waits for the touch
        cas(f"{cid} 1", f"{cid} 2")  # another host wins the race
        t.join()
        log(f"B2 during the race: {res['r']}")
        vals, n5 = shared_counter(slapd)
        check("changed meanwhile" in b.log_text(), "B2 did not retry after losing the race")
        check(res["r"]["granted"], f"B2 (ahead of the other host's 2): {res['r']}")
        check(len(vals) == 1 and n5 > 2, f"B2 raised it past the other host's 2: {vals}")
    finally:
        a.cleanup()
        if b:
            b.cleanup()


CASES = {
    "login": case_login,
    "ldaps": case_ldaps,
    "two-hosts": case_two_hosts,
    "offline": case_offline,
    "timeout": case_timeout,
    "malformed": case_malformed,
    "injection": case_injection,
    "counter": case_counter,
    "ldapi-external": case_ldapi_external,
    "both": case_both,
    "pam": case_pam,
    "ipa-attribute": case_ipa_attribute,
}


def agent(envfile):
    """Inside a testbed: hand its environment to the test and wait for stdin to close."""
    tmp = envfile + ".tmp"
    with open(tmp, "w") as f:
        json.dump(dict(os.environ), f)
    os.rename(tmp, envfile)
    sys.stdin.read()
    return 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--agent":
        return agent(sys.argv[2])
    p = argparse.ArgumentParser()
    p.add_argument("--build-dir", required=True)
    p.add_argument("--source-dir", required=True)
    p.add_argument("case", choices=sorted(CASES))
    args = p.parse_args()
    for tool in TOOLS:
        if not shutil.which(tool):
            print(f"missing tool: {tool}", file=sys.stderr)
            return 1
    slapd = Slapd(os.path.abspath(args.source_dir))
    keystate = tempfile.mkdtemp(prefix="keyward-keystate-")
    ok = False
    try:
        slapd.start()
        CASES[args.case](args, slapd, keystate)
        ok = True
    except Fail as x:
        log(f"FAIL: {x}")
        if os.path.exists(f"{slapd.dir}/slapd.log"):
            log("--- slapd log (tail) ---\n" + open(f"{slapd.dir}/slapd.log").read()[-3000:])
    finally:
        slapd.cleanup()
        shutil.rmtree(keystate, ignore_errors=True)
    log(f"{args.case}: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
