"""directory_scenarios.py: the system layer's scenario of credentials kept in an LDAP
directory (issue #18). Loaded by system_test.py (register(st)).

slapd runs in the container (its own throwaway cn=config: core, cosine, nis,
inetorgperson and the schema the package installs as /usr/share/keyward/keyward.ldif;
StartTLS with a test CA made on the host), on ldap://127.0.0.1:PORT. keywardd runs
through the SHIPPED unit, which allows no IP: the shipped drop-in
/usr/share/keyward/keywardd-directory.conf is installed the way docs/fleet.md says, and
before it the directory cannot be reached from keywardd at all. alice (group sudo) has no
local key: hers is written into the directory by `keywardctl enroll --directory`; the
real sudo then needs a touch; an administrator's ldapmodify deleting the value reaches
keywardd within `refresh`; with slapd stopped the cache serves until `cache_max_age`,
then sudo is refused with the directory message. bob (not covered) uses sudo throughout.
"""

import re
import subprocess
import tempfile
import time

import keyward_system as ks

PORT = 3890
URI = f"ldap://127.0.0.1:{PORT}"
LDAPI = "ldapi://%2Frun%2Fkw-slapd%2Fldapi"
SUFFIX = "dc=example,dc=com"
ADMIN_DN, ADMIN_PW = f"cn=admin,{SUFFIX}", "admin-pw-9"
SVC_DN, SVC_PW = f"cn=keyward,ou=services,{SUFFIX}", "svc-pw-7"
D = "/root/kw-slapd"
CA = "/etc/keyward/directory-ca.pem"
SECRET = "/etc/keyward/ldap.secret"
REFRESH = 3
MAX_AGE = 12
LDAP_ENV = {"LDAPTLS_CACERT": CA}

POLICY = f"""\
# The system layer's directory policy (tests/system/directory_scenarios.py).
settings = {{
	rp_id = "pam://keyward";
	timeout = {ks.TIMEOUT_MS};
	failmode = "closed";
	audit_failure = "deny";
	directory = {{
		uri = "{URI}";
		base_dn = "ou=people,{SUFFIX}";
		bind = "simple";
		bind_dn = "{SVC_DN}";
		secret_file = "{SECRET}";
		tls_ca_file = "{CA}";
		timeout = 1500;
		refresh = {REFRESH};
		cache_max_age = {MAX_AGE};
		writable = true;
	}};
}};
rules = (
	{{
		name = "admins-elevation";
		match = {{ groups = ["sudo", "root"]; services = ["sudo", "sudo-i", "su", "su-l"]; }};
		require = "key";
		user_verification = "discouraged";
		credentials = "directory";
	}}
);
default = {{ require = "none"; }};
"""


def host_certs():
    """A test CA and a server certificate for 127.0.0.1, made with the host's openssl."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="kw-sys-ldap-") as d:
        def ossl(*a):
            r = subprocess.run(["openssl", *a], capture_output=True, text=True)
            if r.returncode != 0:
                raise ks.Failure(f"openssl {' '.join(a)}: {r.stderr}")
        ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem", "-days", "2", "-subj", "/CN=keyward system CA")
        ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr", "-subj", "/CN=127.0.0.1")
        with open(f"{d}/ext.cnf", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        ossl("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
             "-CAcreateserial", "-out", f"{d}/server.pem", "-days", "2", "-extfile", f"{d}/ext.cnf")
        for n in ("ca.pem", "server.pem", "server.key"):
            with open(f"{d}/{n}") as f:
                out[n] = f.read()
    return out


CONFIG = f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {D}/slapd.pid
olcTLSCACertificateFile: {D}/ca.pem
olcTLSCertificateFile: {D}/server.pem
olcTLSCertificateKeyFile: {D}/server.key

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/nis.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif
include: file:///usr/share/keyward/keyward.ldif

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
olcDbDirectory: {D}/db
olcDbMaxSize: 20971520
olcRootDN: {ADMIN_DN}
olcRootPW: {ADMIN_PW}
olcAccess: {{0}}to attrs=userPassword by anonymous auth by * none
olcAccess: {{1}}to attrs=passkey,keywardCredential,keywardSignCount by dn.exact="{SVC_DN}" write by * read
olcAccess: {{2}}to * by * read
"""

DATA = f"""dn: {SUFFIX}
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

dn: uid=alice,ou=people,{SUFFIX}
objectClass: inetOrgPerson
objectClass: posixAccount
objectClass: keywardUser
uid: alice
cn: alice
sn: alice
uidNumber: 1001
gidNumber: 1001
homeDirectory: /home/alice
"""


def register(st):
    scenario, check = st.scenario, st.check

    def slapd_start(c):
        c.run(["systemd-run", "--unit", "kw-slapd", "--collect", "/usr/sbin/slapd", "-d", "0",
               "-h", f"{URI}/ {LDAPI}/", "-F", f"{D}/config"])
        deadline = time.monotonic() + 15
        while True:
            r = c.run(["ldapsearch", "-x", "-ZZ", "-H", URI, "-b", SUFFIX, "-s", "base", "dn"],
                      check=False, env=LDAP_ENV)
            if r.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise ks.Failure("slapd in the container did not answer StartTLS on "
                                 f"{URI}: {r.stderr}\n" + c.journal("-u", "kw-slapd", "-n", "30"))
            time.sleep(0.2)

    def slapd_setup(c):
        certs = host_certs()
        c.run(["mkdir", "-p", "-m", "0700", D, f"{D}/config", f"{D}/db", "/run/kw-slapd"])
        c.write(f"{D}/ca.pem", certs["ca.pem"])
        c.write(CA, certs["ca.pem"])
        c.write(f"{D}/server.pem", certs["server.pem"])
        c.write(f"{D}/server.key", certs["server.key"], mode="0600")
        c.write(f"{D}/config.ldif", CONFIG)
        c.write(f"{D}/data.ldif", DATA)
        c.run(["test", "-s", "/usr/share/keyward/keyward.ldif"])
        c.run(["slapadd", "-n", "0", "-F", f"{D}/config", "-l", f"{D}/config.ldif"])
        c.run(["slapadd", "-n", "1", "-F", f"{D}/config", "-l", f"{D}/data.ldif"])
        slapd_start(c)

    def values(c, attr):
        r = c.run(["ldapsearch", "-x", "-ZZ", "-LLL", "-o", "ldif-wrap=no", "-H", URI, "-b", SUFFIX,
                   "(uid=alice)", attr], env=LDAP_ENV)
        return [line.split(": ", 1)[1] for line in r.stdout.splitlines()
                if line.lower().startswith(attr.lower() + ": ")]

    def sudo(c, p, user, tag):
        """user's real `sudo -k id -u` in p (answering sudo's password prompts); the exit code."""
        p.sendline(f"sudo -k id -u; echo {tag}-rc=$?")
        for _ in range(4):
            m = p.expect(rf"(\[sudo\] password for \w+: )$|{tag}-rc=(\d+)", 30,
                         what=f"{user}'s sudo ({tag}) prompting or ending")
            if m["groups"][1] is not None:
                p.expect(c.prompt(user), 5, what=f"{user}'s prompt after sudo ({tag})")
                return int(m["groups"][1])
            p.sendline(ks.PASSWORDS[user])
        raise ks.Failure(f"{user}'s sudo ({tag}) asked for the password 4 times:\n{p.transcript()}")

    def sudo_ok(c, p, user, tag):
        cur = c.cursor()
        rc = sudo(c, p, user, tag)
        out = p.transcript().split(f"echo {tag}-rc=$?")[-1]
        check(rc == 0 and re.search(r"^0\s*$", out, re.M),
              f"{user}'s sudo ({tag}) failed (exit {rc}):\n{out}")
        if user == "alice":
            st.key_used(c, "alice", "sudo", cur)

    def sudo_refused(c, p, tag):
        rc = sudo(c, p, "alice", tag)
        out = p.transcript().split(f"echo {tag}-rc=$?")[-1]
        check(rc != 0 and not re.search(r"^0\s*$", out, re.M),
              f"alice's sudo ({tag}) SUCCEEDED:\n{out}")
        ks.log(f"alice's refused sudo ({tag}), exit {rc}:\n{out}")
        return out

    @scenario("directory", enroll=())
    def directory(c):
        """alice's key lives only in slapd (enroll --directory through keywardd under the
        shipped unit plus the shipped directory drop-in; without the drop-in keywardd
        cannot reach it); her real sudo needs a touch; an ldapmodify deleting the value
        refuses her next sudo within refresh; slapd stopped: sudo from the cache, then,
        past cache_max_age, refused with the directory message; bob's sudo throughout."""
        slapd_setup(c)
        c.write(SECRET, SVC_PW + "\n", mode="0600")
        c.write("/etc/keyward/keyward.conf", POLICY)
        r = c.run(["keywardctl", "policy", "check"])
        ks.log(f"policy check:\n{r.stdout}{r.stderr}")
        c.run(["systemctl", "restart", "keywardd"])
        c.wait_daemon()
        node = c.key_node(0)
        enroll = ["keywardctl", "enroll", "alice", "--label", "k1", "--directory", "--device", node]

        # 1. the shipped unit alone allows no IP: the directory cannot be reached
        r = c.run(enroll, check=False, input="", timeout=60)
        check(r.returncode != 0 and not values(c, "passkey"),
              f"enroll --directory worked under the shipped unit with IPAddressDeny=any "
              f"(exit {r.returncode}): {r.stdout}{r.stderr}")
        ks.log(f"without the drop-in: exit {r.returncode}: {r.stdout}{r.stderr}")

        # 2. the drop-in, installed as docs/fleet.md says
        c.sh("""
            mkdir -p /etc/systemd/system/keywardd.service.d
            cp /usr/share/keyward/keywardd-directory.conf /etc/systemd/system/keywardd.service.d/directory.conf
            sed -i 's/^IPAddressAllow=192\\.0\\.2\\.10 192\\.0\\.2\\.11$/IPAddressAllow=127.0.0.1/' \\
                /etc/systemd/system/keywardd.service.d/directory.conf
            grep -qx 'IPAddressAllow=127.0.0.1' /etc/systemd/system/keywardd.service.d/directory.conf
            systemctl daemon-reload
            systemctl restart keywardd
        """)
        c.wait_daemon()
        r = c.run(enroll, input="", timeout=60)
        check("Enrolled a security key for alice" in r.stdout, f"enroll --directory: {r.stdout}{r.stderr}")
        vals = values(c, "passkey")
        check(len(vals) == 1 and vals[0].startswith("passkey:"), f"alice's passkey in slapd: {vals}")
        r = c.run(["keywardctl", "list", "alice"], check=False)
        ks.log(f"keywardctl list alice (local store):\n{r.stdout}{r.stderr}")

        # 3. the real sudo with the directory's key; bob unaffected
        pa = c.shell("alice")
        pb = c.shell("bob")
        sudo_ok(c, pa, "alice", "dir")
        sudo_ok(c, pb, "bob", "bob1")

        # 4. revoked by the directory's administrator: refused within refresh
        n0 = len(c.audit())
        c.run(["ldapmodify", "-x", "-ZZ", "-H", URI, "-D", ADMIN_DN, "-w", ADMIN_PW], env=LDAP_ENV,
              input=f"dn: uid=alice,ou=people,{SUFFIX}\nchangetype: modify\ndelete: passkey\n-\n"
                    "delete: keywardCredential\n-\n")
        t0 = time.monotonic()
        time.sleep(REFRESH + 1)
        sudo_refused(c, pa, "revoked")
        st.expect_audit(c, n0, "alice's refused sudo after the revocation", user="alice",
                        service="sudo", result="failure", reason="not-enrolled")
        ks.log(f"revocation: sudo asked {REFRESH + 1} s after the ldapmodify (refresh {REFRESH} s), refused; "
               f"done {time.monotonic() - t0:.1f} s after it (sudo asks 3 times)")
        sudo_ok(c, pb, "bob", "bob2")

        # 5. enrolled again; slapd stopped: sudo from the cache
        c.run(["keywardctl", "enroll", "alice", "--label", "k2", "--directory", "--device", node],
              input="", timeout=60)
        sudo_ok(c, pa, "alice", "again")
        time.sleep(1)
        c.run(["systemctl", "stop", "kw-slapd"])
        t_stop = time.monotonic()
        n0 = len(c.audit())
        sudo_ok(c, pa, "alice", "cached")
        st.expect_audit(c, n0, "alice's sudo from the cache", user="alice", service="sudo",
                        event="auth", result="success")
        sudo_ok(c, pb, "bob", "bob3")
        r = c.run(["keywardctl", "directory", "status"], check=False)
        ks.log(f"directory status with slapd stopped:\n{r.stdout}{r.stderr}")

        # 6. past cache_max_age: refused, with the directory's message
        time.sleep(max(0.0, MAX_AGE + 1 - (time.monotonic() - t_stop)))
        n0 = len(c.audit())
        cur = c.cursor()
        sudo_refused(c, pa, "tooold")
        st.expect_audit(c, n0, "alice's sudo refused with a too-old cache", user="alice",
                        service="sudo", result="failure", reason="directory-unavailable")
        c.wait_journal(rf"The directory \({re.escape(URI)}\) cannot be reached and the cached keys "
                       rf"of alice are \d+ s old \(limit {MAX_AGE} s\)", cur, unit=None, timeout=5,
                       what="the directory message for alice")
        sudo_ok(c, pb, "bob", "bob4")
