/* test-policy.c: the policy engine — evaluation table, malformed files with exact
 * messages and lines, policy_is_remote() table, warnings, explain text, file loading. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"
#include "util.h"

static unsigned failures, checks;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		checks++;                                                                          \
		if (!(cond)) {                                                                     \
			failures++;                                                                \
			fprintf(stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__, #cond);           \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
		}                                                                                  \
	} while (0)

static void dump(const PolicyDiagnostics *d)
{
	for (size_t i = 0; i < d->n; i++)
		fprintf(stderr, "    %s:%u: %s: %s\n", d->items[i].file, d->items[i].line,
		        d->items[i].severity == POLICY_SEVERITY_ERROR ? "error" : "warning",
		        d->items[i].message);
}

/* ---- evaluation ---- */

/* clang-format off */
static const char eval_policy[] =
	"# evaluation fixture\n"                                                               /* 1 */
	"settings = { timeout = 15000; };\n"                                                   /* 2 */
	"rules = (\n"                                                                          /* 3 */
	"  { name = \"breakglass\"; match = { users = \"breakglass\"; }; require = \"none\"; },\n" /* 4 */
	"  { name = \"remote-admins\"; match = { groups = [\"wheel\", \"sudo\"]; remote = true;\n" /* 5 */
	"      services = \"sshd\"; }; require = \"deny\"; reason = \"no remote admins\"; },\n" /* 6 */
	"  { name = \"admins-sudo\";\n"                                                        /* 7 */
	"    match = { groups = [\"wheel\", \"sudo\"]; services = [\"sudo\", \"su\"];\n"       /* 8 */
	"              not = { users = [\"carol\"]; }; };\n"                                   /* 9 */
	"    require = \"key\"; user_verification = \"required\"; on_remote = \"none\";\n"     /* 10 */
	"    removal = { action = \"end-elevation\"; grace = 0; }; },\n"                       /* 11 */
	"  { name = \"carol-sudo\"; match = { users = \"carol\"; services = \"sudo\"; };\n"    /* 12 */
	"    require = \"key\"; },\n"                                                          /* 13 */
	"  { name = \"console\"; match = { groups = \"wheel\"; ttys = [\"tty[0-9]*\", \"/dev/tty[0-9]*\"]; };\n" /* 14 */
	"    require = \"key\"; on_remote = \"deny\"; removal = { action = \"lock\"; grace = 1500; }; },\n" /* 15 */
	"  { name = \"service-accounts\"; match = { uids = [\"100-999\"]; not = { uids = \"500\"; }; };\n" /* 16 */
	"    require = \"deny\"; reason = \"service accounts do not log in\"; },\n"           /* 17 */
	"  { name = \"kiosk-no-tty\"; match = { users = \"kiosk\"; ttys = \"\"; }; require = \"deny\"; },\n" /* 18 */
	"  { name = \"remote-only\"; match = { users = \"xuser\"; remote = true; }; require = \"deny\"; },\n" /* 19 */
	"  { name = \"local-only\"; match = { users = \"xuser\"; remote = false; }; require = \"key\"; },\n" /* 20 */
	"  { name = \"staff\"; match = { groups = \"staff\";\n"                               /* 21 */
	"      not = { services = \"gdm-password\"; groups = \"interns\"; }; };\n"              /* 22 */
	"    require = \"key\"; user_presence = true; counter = \"strict\"; },\n"              /* 23 */
	"  { name = \"root\"; match = { uids = \"0\"; }; require = \"key\"; on_remote = \"deny\"; },\n" /* 24 */
	"  { name = \"pts\"; match = { ttys = \"/dev/pts/*\"; services = \"login\"; }; require = \"deny\"; }\n" /* 25 */
	");\n"                                                                                 /* 26 */
	"default = { require = \"none\"; };\n";                                                /* 27 */
/* clang-format on */

typedef struct EvalCase {
	const char *user;
	uid_t uid;
	const char *groups; /* comma-separated */
	const char *service;
	const char *rhost;
	const char *tty;
	bool remote;
	const char *rule;
	PolicyRequire require;
	unsigned line;
} EvalCase;

#define K POLICY_REQUIRE_KEY
#define N POLICY_REQUIRE_NONE
#define D POLICY_REQUIRE_DENY

static const EvalCase eval_cases[] = {
        /* first match: breakglass is in wheel but matched first */
        {"breakglass", 1001, "wheel", "sudo", NULL, "/dev/pts/1", false, "breakglass", N, 4},
        {"breakglass", 1001, "wheel", "sshd", "203.0.113.9", NULL, false, "breakglass", N, 4},
        /* remote admins over sshd */
        {"alice", 1000, "alice,wheel", "sshd", "203.0.113.9", "ssh", false, "remote-admins", D, 5},
        {"alice", 1000, "alice,sudo", "sshd", "2001:db8::1", NULL, false, "remote-admins", D, 5},
        {"alice", 1000, "alice,sudo", "sshd", "[2001:db8::1]:22", NULL, false, "remote-admins", D,
                5},
        {"alice", 1000, "alice,sudo", "sshd", "::ffff:198.51.100.7", NULL, false, "remote-admins",
                D, 5},
        {"alice", 1000, "alice,sudo", "sshd", "host.example.org", NULL, false, "remote-admins", D,
                5},
        {"alice", 1000, "alice,sudo", "sshd", NULL, NULL, true, "remote-admins", D, 5},
        /* sshd from loopback is local: not remote-admins; falls through to staff? no: default */
        {"alice", 1000, "alice,sudo", "sshd", "127.0.0.1", NULL, false, "default", N, 27},
        {"alice", 1000, "alice,sudo", "sshd", "::1", NULL, false, "default", N, 27},
        {"alice", 1000, "alice,sudo", "sshd", "::ffff:127.0.0.1", NULL, false, "default", N, 27},
        {"alice", 1000, "alice,sudo", "sshd", "[::1]:2222", NULL, false, "default", N, 27},
        {"alice", 1000, "alice,sudo", "sshd", "localhost", NULL, false, "default", N, 27},
        /* admins-sudo: supplementary group, either group, local */
        {"alice", 1000, "alice,wheel", "sudo", NULL, "/dev/pts/0", false, "admins-sudo", K, 7},
        {"bob", 1002, "bob,users,sudo", "su", NULL, "/dev/pts/4", false, "admins-sudo", K, 7},
        {"bob", 1002, "sudo", "sudo", "", NULL, false, "admins-sudo", K, 7},
        /* admins-sudo from a remote session resolves to none (on_remote = "none") */
        {"bob", 1002, "sudo", "sudo", NULL, "/dev/pts/4", true, "admins-sudo", N, 7},
        {"bob", 1002, "sudo", "sudo", "192.0.2.1", NULL, false, "admins-sudo", N, 7},
        /* carol is excluded from admins-sudo by `not`, caught by carol-sudo */
        {"carol", 1003, "carol,wheel", "sudo", NULL, "/dev/pts/2", false, "carol-sudo", K, 12},
        /* carol-sudo has no on_remote: a remote key requirement resolves to deny */
        {"carol", 1003, "carol,wheel", "sudo", "fe80::1%eth0", NULL, false, "carol-sudo", D, 12},
        /* carol with su: not admins-sudo (not), not carol-sudo (service), console? tty pts no */
        {"carol", 1003, "carol,wheel", "su", NULL, "/dev/pts/2", false, "default", N, 27},
        /* console: tty patterns */
        {"carol", 1003, "carol,wheel", "login", NULL, "tty1", false, "console", K, 14},
        {"alice", 1000, "wheel", "login", NULL, "/dev/tty3", false, "console", K, 14},
        {"alice", 1000, "wheel", "login", NULL, "/dev/ttyS0", false, "default", N,
                27}, /* S: no digit */
        /* service accounts: uid ranges with a hole */
        {"daemon1", 100, NULL, "login", NULL, NULL, false, "service-accounts", D, 16},
        {"daemon2", 999, "daemon2", "cron", NULL, NULL, false, "service-accounts", D, 16},
        {"daemon3", 500, NULL, "cron", NULL, NULL, false, "default", N, 27},
        {"daemon4", 1000, NULL, "cron", NULL, NULL, false, "default", N, 27},
        {"daemon5", 99, NULL, "cron", NULL, NULL, false, "default", N, 27},
        /* empty tty pattern matches requests without a tty */
        {"kiosk", 2000, NULL, "gdm-password", NULL, NULL, false, "kiosk-no-tty", D, 18},
        {"kiosk", 2000, NULL, "gdm-password", NULL, ":0", false, "default", N, 27},
        /* remote = true / false */
        {"xuser", 2001, NULL, "login", "10.1.2.3", NULL, false, "remote-only", D, 19},
        {"xuser", 2001, NULL, "login", NULL, NULL, false, "local-only", K, 20},
        {"xuser", 2001, NULL, "login", NULL, "otherhost:0", false, "remote-only", D, 19},
        {"xuser", 2001, NULL, "login", NULL, ":0", false, "local-only", K, 20},
        /* staff with negated service and group */
        {"dave", 3000, "dave,staff", "polkit-1", NULL, NULL, false, "staff", K, 21},
        {"dave", 3000, "dave,staff", "gdm-password", NULL, NULL, false, "default", N, 27},
        {"erin", 3001, "staff,interns", "polkit-1", NULL, NULL, false, "default", N, 27},
        /* staff requires a key and sets no on_remote: remote → deny */
        {"dave", 3000, "dave,staff", "polkit-1", NULL, NULL, true, "staff", D, 21},
        /* root by uid, by any name */
        {"root", 0, "root", "login", NULL, "/dev/pts/9", false, "root", K, 24},
        {"toor", 0, NULL, "sudo", NULL, NULL, false, "root", K, 24},
        {"root", 0, "root", "login", "[::ffff:8.8.8.8]", NULL, false, "root", D, 24},
        /* pts pattern and default */
        {"frank", 4000, "frank", "login", NULL, "/dev/pts/17", false, "pts", D, 25},
        {"frank", 4000, "frank", "login", NULL, "/dev/tty2", false, "default", N, 27},
        {"frank", 4000, "frank", "sudo", NULL, NULL, false, "default", N, 27},
        /* the caller's remote verdict cannot be undone by a local rhost */
        {"alice", 1000, "sudo", "sshd", "127.0.0.1", NULL, true, "remote-admins", D, 5},
};

static char **split(const char *s)
{
	char **l = calloc(1, sizeof(char *));
	_cleanup_free_ char *copy = s ? strdup(s) : NULL;
	char *save = NULL;

	if (!l)
		abort();
	if (!copy)
		return l;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (strv_extend(&l, t) < 0)
			abort();
	return l;
}

static void test_evaluate(void)
{
	_cleanup_(policy_freep) Policy *p = NULL;
	PolicyDiagnostics d = {};
	int r;

	r = policy_load_string(eval_policy, "eval.conf", &d, &p);
	CHECK(r == 0 && p, "eval fixture loads (r=%d)", r);
	if (r < 0) {
		dump(&d);
		return;
	}
	CHECK(policy_diagnostics_errors(&d) == 0, "no errors");
	policy_diagnostics_clear(&d);
	CHECK(policy_settings(p)->timeout_ms == 15000, "timeout");

	for (size_t i = 0; i < ELEMENTSOF(eval_cases); i++) {
		const EvalCase *c = &eval_cases[i];
		_cleanup_strv_free_ char **groups = split(c->groups);
		PolicyRequest req = {
		        .user = c->user,
		        .uid = c->uid,
		        .groups = groups,
		        .service = c->service,
		        .rhost = c->rhost,
		        .tty = c->tty,
		        .remote = c->remote,
		};
		PolicyDecision dec;

		r = policy_evaluate(p, &req, &dec);
		CHECK(r == 0, "case %zu evaluates", i);
		if (r < 0)
			continue;
		CHECK(streq(dec.rule_name, c->rule) && dec.require == c->require &&
		                dec.line == c->line && streq(dec.file, "eval.conf"),
		        "case %zu (%s/%s/%s/%s): got rule %s line %u require %s, want %s line %u "
		        "%s",
		        i, c->user, c->service, strna(c->rhost), strna(c->tty), dec.rule_name,
		        dec.line, policy_require_to_string(dec.require), c->rule, c->line,
		        policy_require_to_string(c->require));
		CHECK(dec.is_default == streq(c->rule, "default"), "case %zu is_default", i);
	}
}

static void test_decision_fields(void)
{
	_cleanup_(policy_freep) Policy *p = NULL;
	char *groups[] = {"sudo", NULL};
	PolicyRequest req = {.user = "bob", .uid = 1002, .groups = groups, .service = "sudo"};
	PolicyDecision dec;
	_cleanup_free_ char *text = NULL;

	CHECK(policy_load_string(eval_policy, "eval.conf", NULL, &p) == 0, "load");
	if (!p)
		return;
	CHECK(policy_evaluate(p, &req, &dec) == 0, "evaluate");
	CHECK(dec.require == POLICY_REQUIRE_KEY && dec.user_verification == POLICY_UV_REQUIRED &&
	                dec.user_presence && dec.removal == POLICY_REMOVAL_END_ELEVATION &&
	                dec.grace_ms == 0 && dec.lock_verify_ms == 2000 &&
	                dec.counter == POLICY_COUNTER_STRICT && !dec.remote &&
	                !dec.remote_resolved && dec.on_remote_set &&
	                dec.on_remote == POLICY_ON_REMOTE_NONE && dec.n_aaguid_allow == 0,
	        "admins-sudo fields");
	CHECK(policy_decision_explain(&dec, &text) == 0 &&
	                strstr(text, "Rule: admins-sudo at eval.conf:7\n") &&
	                strstr(text, "Decision: a registered security key is required\n") &&
	                strstr(text,
	                        "User verification: required (PIN or biometric on the key)\n") &&
	                strstr(text, "On key removal: the elevated process (sudo, su) is ended at "
	                             "once\n"),
	        "explain text:\n%s", strna(text));
	free(TAKE_PTR(text));

	/* carol-sudo from remote: resolved deny with the built-in reason */
	req.user = "carol";
	req.remote = true;
	CHECK(policy_evaluate(p, &req, &dec) == 0 && dec.require == POLICY_REQUIRE_DENY &&
	                dec.remote_resolved && !dec.on_remote_set && dec.reason &&
	                streq(dec.reason, "a security key cannot be touched over a remote login, "
	                                  "and the rule sets no on_remote outcome"),
	        "carol remote deny reason: %s", strna(dec.reason));
	CHECK(policy_decision_explain(&dec, &text) == 0 && strstr(text, "Login: remote\n") &&
	                strstr(text, "Decision: refused\nReason: a security key cannot be touched"),
	        "explain remote:\n%s", strna(text));
	free(TAKE_PTR(text));

	/* deny with the rule's own reason */
	req.user = "svc";
	req.uid = 123;
	req.groups = NULL;
	req.remote = false;
	CHECK(policy_evaluate(p, &req, &dec) == 0 && dec.require == POLICY_REQUIRE_DENY &&
	                streq(strna(dec.reason), "service accounts do not log in"),
	        "deny reason");
	/* console removal fields */
	{
		char *wheel[] = {"wheel", NULL};
		PolicyRequest r2 = {.user = "w",
		        .uid = 5000,
		        .groups = wheel,
		        .service = "login",
		        .tty = "tty2"};
		CHECK(policy_evaluate(p, &r2, &dec) == 0 && dec.removal == POLICY_REMOVAL_LOCK &&
		                dec.grace_ms == 1500 &&
		                dec.on_lock_failure == POLICY_LOCK_FAILURE_TERMINATE,
		        "console removal");
	}
	/* bad requests */
	req.user = NULL;
	CHECK(policy_evaluate(p, &req, &dec) == -EINVAL, "NULL user");
	req.user = "x";
	req.service = "";
	CHECK(policy_evaluate(p, &req, &dec) == -EINVAL, "empty service");
	CHECK(policy_evaluate(NULL, &req, &dec) == -EINVAL, "NULL policy");
}

/* ---- malformed files: the first error's line and exact message ---- */

typedef struct BadCase {
	const char *text;
	unsigned line;
	const char *message;
} BadCase;

#define DEF        "default = { require = \"none\"; };\n"
#define DEF_SHA256 "b533291acb14f5a8f1879fc18567744e848fe089bbc8ab9991a02f73590e165d"

static const BadCase bad_cases[] = {
        {"settings = {\n  timeout = ;\n};\n" DEF, 2, "syntax error"},
        {"settings = { colour = \"blue\"; };\n" DEF, 1,
                "unknown key 'colour' in 'settings' (expected one of: rp_id, timeout, failmode, "
                "audit_failure, credentials_dir, state_dir, runtime_dir, audit_log, admin_group, "
                "cue, max_credentials_per_user, max_bindings, audit, breakglass, directory)"},
        /* settings.audit: every malformed value is an error at its line */
        {"settings = {\n  audit = {\n    rotate_size = \"64Q\";\n  };\n};\n" DEF, 3,
                "'rotate_size' is \"64Q\", expected a size: bytes, or a number with K, M, G or "
                "T"},
        {"settings = { audit = { rotate_size = 100; }; };\n" DEF, 1,
                "'rotate_size' is out of range: expected 0 (off) or 4096..1099511627776 bytes"},
        {"settings = { audit = { rotate_size = \"99999999999999999999M\"; }; };\n" DEF, 1,
                "'rotate_size' is out of range: expected 0 (off) or 4096..1099511627776 bytes"},
        {"settings = { audit = { rotate_size = true; }; };\n" DEF, 1,
                "'rotate_size' must be a size (an integer or a string such as \"64M\"), not a "
                "boolean"},
        {"settings = { audit = { rotate_age = \"1 month\"; }; };\n" DEF, 1,
                "'rotate_age' is \"1 month\", expected a duration: seconds, or a number with s, "
                "m, h, d or w (\"30d\")"},
        {"settings = { audit = { keep_age = \"5000w\"; }; };\n" DEF, 1,
                "'keep_age' is out of range: expected 0 (off) up to 10 years"},
        {"settings = { audit = { space_left = \"0%\"; }; };\n" DEF, 1,
                "'space_left' is \"0%\", expected 1%..99%"},
        {"settings = { audit = { admin_space_left = \"100%\"; }; };\n" DEF, 1,
                "'admin_space_left' is \"100%\", expected 1%..99%"},
        {"settings = { audit = { space_left = \"5 %\"; }; };\n" DEF, 1,
                "'space_left' is \"5 %\", expected 1%..99%"},
        {"settings = { audit = { space_left_action = \"halt\"; }; };\n" DEF, 1,
                "'space_left_action' is \"halt\", expected one of: ignore, alert, rotate"},
        {"settings = { audit = { admin_space_left_action = \"deny\"; }; };\n" DEF, 1,
                "'admin_space_left_action' is \"deny\", expected one of: ignore, alert, rotate"},
        {"settings = { audit = { disk_full_action = \"alert\"; }; };\n" DEF, 1,
                "'disk_full_action' is \"alert\", expected one of: deny, rotate"},
        {"settings = { audit = { seal_every = 0; }; };\n" DEF, 1,
                "'seal_every' is 0, expected 1..100000 (records)"},
        {"settings = { audit = { keep_files = -1; }; };\n" DEF, 1,
                "'keep_files' is -1, expected 0..100000 (rotated files, 0 = no limit)"},
        {"settings = {\n  audit = {\n    space_left = \"2%\";\n    admin_space_left = "
         "\"3%\";\n  };\n};\n" DEF,
                4,
                "'admin_space_left' must not be more than 'space_left' (it is the later, graver "
                "threshold)"},
        {"settings = { audit = { space_left = \"1M\"; admin_space_left = \"2M\"; }; };\n" DEF, 1,
                "'admin_space_left' must not be more than 'space_left' (it is the later, graver "
                "threshold)"},
        {"settings = {\n  audit = {\n    keep_files = 2;\n    keep_min_files = 3;\n  };\n};\n" DEF,
                2, "'keep_min_files' (3) is more than 'keep_files' (2)"},
        {"settings = { audit = { rotate = \"daily\"; }; };\n" DEF, 1,
                "unknown key 'rotate' in 'audit' (expected one of: rotate_size, rotate_age, "
                "keep_files, keep_age, keep_min_files, seal_every, space_left, space_left_action, "
                "admin_space_left, admin_space_left_action, disk_full_action)"},
        {"settings = { audit = \"on\"; };\n" DEF, 1,
                "'audit' must be a group { ... }, not a string"},
        {DEF "rulez = ();\n", 2,
                "unknown key 'rulez' in the top level (expected one of: settings, rules, default)"},
        {"settings = {\n  timeout = \"30\";\n};\n" DEF, 2,
                "'timeout' must be an integer (milliseconds), not a string"},
        {"settings = {\n\n  timeout = 50;\n};\n" DEF, 3,
                "'timeout' is 50, expected 100..600000 (milliseconds)"},
        {"settings = { timeout = 10000000000L; };\n" DEF, 1,
                "'timeout' is 10000000000, expected 100..600000 (milliseconds)"},
        /* libconfig 1.5 wraps an integer without 'L' to 32 bits before we see it */
        {"settings = { timeout = 4294972296; };\n" DEF, 1,
                "'timeout' is 4294972296, expected 100..600000 (milliseconds)"},
        {"settings = {\n  timeout = 99999999999999999999999;\n};\n" DEF, 2,
                "'timeout' is 99999999999999999999999, expected 100..600000 (milliseconds)"},
        {"settings = { timeout = 99999999999999999999999L; };\n" DEF, 1,
                "'timeout' is 99999999999999999999999L, expected 100..600000 (milliseconds)"},
        {"settings = { timeout = 0x100000000; };\n" DEF, 1,
                "'timeout' is 0x100000000, expected 100..600000 (milliseconds)"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    lockout = { window = 60; "
         "max_failures = 4294967296; }; }\n);\n" DEF,
                3, "'max_failures' is 4294967296, expected 0..1000 (failures, 0 = no lockout)"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    removal = { grace = "
         "-4294967296; }; }\n);\n" DEF,
                3, "'grace' is -4294967296, expected 0..600000 (milliseconds)"},
        {"settings = { failmode = \"ajar\"; };\n" DEF, 1,
                "'failmode' is \"ajar\", expected one of: closed, open"},
        {"settings = { failmode = true; };\n" DEF, 1,
                "'failmode' must be a string (one of: closed, open), not a boolean"},
        {"settings = { state_dir = \"var/lib/keyward\"; };\n" DEF, 1,
                "'state_dir' must be an absolute path without '.' or '..' components"},
        {"settings = { audit_log = \"/var/log/../tmp/x\"; };\n" DEF, 1,
                "'audit_log' must be an absolute path without '.' or '..' components"},
        {"settings = { rp_id = \"\"; };\n" DEF, 1,
                "'rp_id' must be non-empty and contain no spaces"},
        {"settings = { cue = \"touch %s\"; };\n" DEF, 1,
                "'cue' may contain only %u (the user) and %% as % sequences"},
        {"settings = { max_bindings = 0; };\n" DEF, 1,
                "'max_bindings' is 0, expected 1..1048576 (bindings)"},
        {"settings = { admin_group = \"bad:group\"; };\n" DEF, 1,
                "'admin_group' \"bad:group\" is not a valid group name"},
        {"settings = ( 1 );\n" DEF, 1, "'settings' must be a group { ... }, not a list"},
        {"rules = ();\n", 0,
                "no 'default' outcome: add default = { require = \"none\"; }; (or "
                "\"key\"/\"deny\") to say what happens when no rule matches"},
        {"default = { require = \"maybe\"; };\n", 1,
                "'require' is \"maybe\", expected one of: none, key, deny"},
        {"default = { };\n", 1,
                "'default' has no 'require' (expected \"key\", \"none\" or \"deny\")"},
        {"default = { require = \"none\"; name = \"x\"; };\n", 1,
                "unknown key 'name' in 'default' (expected one of: require, reason, on_remote, "
                "user_verification, user_presence, aaguid_allow, aaguid_deny, attestation, "
                "trust_anchors, counter, cached_elevation, credentials, removal, lockout, "
                "remote_lifetime, "
                "breakglass)"},
        {"rules = (\n  { match = { users = \"a\"; }; require = \"key\"; }\n);\n" DEF, 2,
                "rule 1 has no 'name' (expected name = \"...\";)"},
        {"rules = (\n  { name = \"a\"; require = \"key\"; match = { users = \"x\"; }; },\n  { name "
         "= \"a\"; require = \"key\"; match = { users = \"y\"; }; }\n);\n" DEF,
                3, "duplicate rule name 'a' (first defined at line 2)"},
        {"rules = (\n  { name = \"default\"; require = \"key\"; }\n);\n" DEF, 2,
                "rule name \"default\" is not valid (letters, digits, '.', '_', '-'; not "
                "\"default\")"},
        {"rules = (\n  { name = \"a\"; require = \"key\"; colour = 1; }\n);\n" DEF, 2,
                "unknown key 'colour' in rule 'a' (expected one of: name, match, require, reason, "
                "on_remote, user_verification, user_presence, aaguid_allow, aaguid_deny, "
                "attestation, trust_anchors, counter, cached_elevation, credentials, removal, "
                "lockout, "
                "remote_lifetime, breakglass)"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    match = { user = \"x\"; }; "
         "}\n);\n" DEF,
                3,
                "unknown key 'user' in 'match' of rule 'a' (expected one of: users, groups, uids, "
                "services, ttys, remote, not)"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    match = { not = { remote = true; }; "
         "}; }\n);\n" DEF,
                3,
                "unknown key 'remote' in 'not' of rule 'a' (expected one of: users, groups, uids, "
                "services, ttys)"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    match = { groups = []; }; "
         "}\n);\n" DEF,
                3, "'groups' is an empty list; remove it or name at least one entry"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    match = { users = [\"ok\",\n "
         "\"bad/name\"]; }; }\n);\n" DEF,
                4, "'users' entry \"bad/name\" is not a valid user name"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    match = { uids = 1000; }; "
         "}\n);\n" DEF,
                3, "'uids' takes strings such as \"0\" or \"1000-1999\", not an integer"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    match = { uids = \"2000-1000\"; }; "
         "}\n);\n" DEF,
                3, "'uids' entry \"2000-1000\" is not a valid uid or uid range (\"N\" or \"N-M\")"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    match = { remote = \"yes\"; }; "
         "}\n);\n" DEF,
                3, "'remote' must be true or false, not a string"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    match = { services = [\"su do\"]; "
         "}; }\n);\n" DEF,
                3, "'services' entry \"su do\" is not a valid PAM service name"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    match = { groups = (\"x\", 3); }; "
         "}\n);\n" DEF,
                3, "'groups' must list strings, entry 2 is an integer"},
        {"rules = (\n  { name = \"all\"; require = \"key\"; },\n  { name = \"b\"; require = "
         "\"deny\"; match = { users = \"x\"; }; }\n);\n" DEF,
                3,
                "rule 'b' can never match: the earlier rule 'all' (line 2) matches every request "
                "it matches"},
        {"rules = (\n  { name = \"a\"; require = \"key\"; match = { groups = [\"w\", \"s\"]; "
         "services = \"sudo\"; }; },\n  { name = \"b\"; require = \"deny\"; match = { services = "
         "\"sudo\"; groups = \"s\"; uids = \"5\"; }; }\n);\n" DEF,
                3,
                "rule 'b' can never match: the earlier rule 'a' (line 2) matches every request it "
                "matches"},
        {"rules = (\n  { name = \"a\"; require = \"key\"; match = { users = \"x\"; }; },\n  { name "
         "= \"b\"; require = \"deny\"; match = { users = \"x\"; }; }\n);\n" DEF,
                3,
                "rule 'b' can never match: the earlier rule 'a' (line 2) matches every request it "
                "matches"},
        {"rules = (\n  { name = \"a\"; require = \"key\"; match = { uids = \"0-999\"; }; },\n  { "
         "name = \"b\"; require = \"deny\"; match = { uids = [\"5-10\", \"900\"]; }; }\n);\n" DEF,
                3,
                "rule 'b' can never match: the earlier rule 'a' (line 2) matches every request it "
                "matches"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    attestation = \"verified\"; "
         "}\n);\n" DEF,
                3,
                "attestation = \"verified\" in rule 'a' needs 'trust_anchors' (PEM files of the "
                "accepted roots)"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    trust_anchors = \"relative.pem\"; "
         "attestation = \"verified\"; }\n);\n" DEF,
                3,
                "'trust_anchors' entry \"relative.pem\" is not a valid absolute path to a PEM "
                "file"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    aaguid_allow = [\"not-a-guid\"]; "
         "}\n);\n" DEF,
                3,
                "'aaguid_allow' entry \"not-a-guid\" is not a valid AAGUID "
                "(\"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx\" or 32 hex digits)"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    user_verification = \"always\"; "
         "}\n);\n" DEF,
                3,
                "'user_verification' is \"always\", expected one of: discouraged, preferred, "
                "required"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    removal = { action = \"explode\"; "
         "}; }\n);\n" DEF,
                3,
                "'action' is \"explode\", expected one of: none, lock, terminate, end-elevation"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    removal = { action = \"lock\";\n    "
         "  lock_verify = 10; }; }\n);\n" DEF,
                4, "'lock_verify' is 10, expected 100..60000 (milliseconds)"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    removal = { grace = -1; }; "
         "}\n);\n" DEF,
                3, "'grace' is -1, expected 0..600000 (milliseconds)"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    removal = { when = 1; }; "
         "}\n);\n" DEF,
                3,
                "unknown key 'when' in 'removal' (expected one of: action, grace, lock_verify, "
                "on_lock_failure)"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    lockout = { max_failures = 5000; }; "
         "}\n);\n" DEF,
                3, "'max_failures' is 5000, expected 0..1000 (failures, 0 = no lockout)"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    on_remote = \"allow\"; }\n);\n" DEF,
                3, "'on_remote' is \"allow\", expected one of: deny, none, ssh-key"},
        {"rules = (\n  { name = \"a\";\n    require = \"ssh-key\"; }\n);\n" DEF, 3,
                "require = \"ssh-key\" in rule 'a': an SSH key is what a remote login of "
                "require = \"key\" needs with on_remote = \"ssh-key\"; write those two"},
        {"rules = (\n  { name = \"a\"; require = \"key\"; on_remote = \"ssh-key\";\n    "
         "remote_lifetime = 0; }\n);\n" DEF,
                3, "'remote_lifetime' is 0, expected 1..86400 (seconds)"},
        {"rules = (\n  { name = \"a\"; require = \"key\"; on_remote = \"ssh-key\";\n    "
         "remote_lifetime = 86401; }\n);\n" DEF,
                3, "'remote_lifetime' is 86401, expected 1..86400 (seconds)"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    counter = \"lenient\"; }\n);\n" DEF,
                3, "'counter' is \"lenient\", expected one of: strict, allow-zero"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    user_presence = 0; }\n);\n" DEF, 3,
                "'user_presence' must be true or false, not an integer"},
        {"rules = { a = 1; };\n" DEF, 1,
                "'rules' must be a list ( { ... }, { ... } ), not a group"},
        {"rules = ( \"a\" );\n" DEF, 1, "rule 1 must be a group { name = ...; ... }, not a string"},
        {"rules = (\n  \"a\",\n  \"b\"\n);\n" DEF, 2,
                "rule 1 must be a group { name = ...; ... }, not a string"},
        {DEF "\n@include \"/etc/passwd\"\n", 3,
                "@include is not supported; keep the whole policy in one file"},
        {"settings = { failmode = \"\\x1b[31mred\"; };\n" DEF, 1,
                "'failmode' is \"?[31mred\", expected one of: closed, open"},
        {"# an @include in a comment is fine\n" DEF "  @include \"x\"\n", 3,
                "@include is not supported; keep the whole policy in one file"},
        {"default = { require = \"none\"; };\ndefault = { require = \"key\"; };\n", 2,
                "duplicate setting name"},
};

static void test_malformed(void)
{
	for (size_t i = 0; i < ELEMENTSOF(bad_cases); i++) {
		const BadCase *c = &bad_cases[i];
		PolicyDiagnostics d = {};
		Policy *p = (Policy *)0x1; /* must stay untouched */
		const PolicyDiagnostic *first = NULL;
		int r;

		r = policy_load_string(c->text, "bad.conf", &d, &p);
		for (size_t j = 0; j < d.n; j++)
			if (d.items[j].severity == POLICY_SEVERITY_ERROR) {
				first = &d.items[j];
				break;
			}
		CHECK(r == -EINVAL && p == (Policy *)0x1, "bad case %zu refused (r=%d)", i, r);
		CHECK(first && first->line == c->line && streq(first->message, c->message) &&
		                streq(first->file, "bad.conf"),
		        "bad case %zu: want %u: %s", i, c->line, c->message);
		if (!first || first->line != c->line || !streq(first->message, c->message))
			dump(&d);
		policy_diagnostics_clear(&d);
	}
}

/* ---- warnings (file loads) ---- */

typedef struct WarnCase {
	const char *text;
	unsigned line;
	const char *message;
} WarnCase;

static const WarnCase warn_cases[] = {
        {"settings = { failmode = \"open\"; };\n" DEF, 1,
                "failmode = \"open\": covered users get in without a key whenever keywardd cannot "
                "be reached"},
        {"settings = { audit_failure = \"alert\"; };\n" DEF, 1,
                "audit_failure = \"alert\": authentications go on unrecorded when the audit trail "
                "cannot be written"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    user_presence = false; }\n);\n" DEF,
                3,
                "user_presence = false in rule 'a': a key that is merely plugged in satisfies it "
                "without a touch"},
        {"rules = (\n  { name = \"r\"; match = { users = \"root\"; }; require = \"none\"; "
         "}\n);\n" DEF,
                2, "rule 'r' exempts root from the security key (require = \"none\")"},
        {"rules = (\n  { name = \"r\"; match = { uids = \"0-10\"; }; require = \"none\"; "
         "}\n);\n" DEF,
                2, "rule 'r' exempts root from the security key (require = \"none\")"},
        {"default = { require = \"deny\";\n  removal = { action = \"lock\"; }; };\n", 2,
                "'removal' in 'default' has no effect unless require = \"key\""},
        {"rules = (\n  { name = \"a\"; require = \"key\"; match = { remote = true; }; }\n);\n" DEF,
                2,
                "rule 'a' matches only remote logins, where a key cannot be touched: it always "
                "resolves to on_remote (deny, not set)"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    remote_lifetime = 60; }\n);\n" DEF,
                3, "'remote_lifetime' in rule 'a' has no effect unless on_remote = \"ssh-key\""},
        {"rules = (\n  { name = \"a\"; require = \"key\"; on_remote = \"none\";\n    "
         "remote_lifetime = 60; }\n);\n" DEF,
                3, "'remote_lifetime' in rule 'a' has no effect unless on_remote = \"ssh-key\""},
        {"rules = (\n  { name = \"a\"; require = \"deny\";\n    remote_lifetime = 60; }\n);\n" DEF,
                3, "'remote_lifetime' in rule 'a' has no effect unless require = \"key\""},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    counter = \"allow-zero\"; "
         "}\n);\n" DEF,
                3,
                "counter = \"allow-zero\" in rule 'a': a clone of an authenticator that always "
                "reports 0 cannot be detected"},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    trust_anchors = "
         "\"/etc/keyward/yubico.pem\"; }\n);\n" DEF,
                3, "'trust_anchors' in rule 'a' has no effect unless attestation = \"verified\""},
        {"rules = (\n  { name = \"a\"; require = \"key\";\n    match = { users = [\"x\", \"x\"]; "
         "}; }\n);\n" DEF,
                3, "'users' lists \"x\" twice"},
};

static void test_warnings(void)
{
	for (size_t i = 0; i < ELEMENTSOF(warn_cases); i++) {
		const WarnCase *c = &warn_cases[i];
		_cleanup_(policy_freep) Policy *p = NULL;
		PolicyDiagnostics d = {};
		int r;

		r = policy_load_string(c->text, "warn.conf", &d, &p);
		CHECK(r == 0 && p && d.n == 1 && d.items[0].severity == POLICY_SEVERITY_WARNING &&
		                d.items[0].line == c->line && streq(d.items[0].message, c->message),
		        "warn case %zu: want %u: %s (r=%d)", i, c->line, c->message, r);
		if (r < 0 || d.n != 1 || d.items[0].line != c->line ||
		        !streq(d.items[0].message, c->message))
			dump(&d);
		policy_diagnostics_clear(&d);
	}
}

/* ---- full settings, shadowing that must NOT be reported ---- */

static void test_settings_and_reachability(void)
{
	static const char text[] =
	        "settings = { rp_id = \"pam://example\"; timeout = 500; failmode = \"closed\";\n"
	        "  audit_failure = \"deny\"; credentials_dir = \"/tmp/kw/creds\"; state_dir = "
	        "\"/tmp/kw/state\";\n"
	        "  runtime_dir = \"/tmp/kw/run\"; audit_log = \"/tmp/kw/audit.log\"; admin_group = "
	        "\"kwadm\";\n"
	        "  cue = \"Touch for %u (100%%)\"; max_credentials_per_user = 4; max_bindings = "
	        "10; };\n"
	        "rules = (\n"
	        "  { name = \"a\"; match = { groups = \"wheel\"; not = { users = \"bob\"; }; }; "
	        "require = \"key\"; },\n"
	        "  { name = \"b\"; match = { groups = \"wheel\"; }; require = \"deny\"; },\n"
	        "  { name = \"c\"; match = { uids = \"0-999\"; }; require = \"key\"; },\n"
	        "  { name = \"d\"; match = { uids = [\"500-1500\"]; }; require = \"key\"; },\n"
	        "  { name = \"e\"; match = { ttys = \"*\"; services = \"x\"; }; require = \"key\"; "
	        "},\n"
	        "  { name = \"f\"; match = { services = \"y\"; remote = true; }; require = "
	        "\"deny\"; },\n"
	        "  { name = \"g\"; match = { services = \"y\"; }; require = \"deny\"; },\n"
	        "  { name = \"h\"; aaguid_allow = [\"cb69481e-8ff7-4039-93ec-0a2729a154a8\"];\n"
	        "    aaguid_deny = \"00112233445566778899AABBCCDDEEFF\"; require = \"key\";\n"
	        "    attestation = \"verified\"; trust_anchors = [\"/etc/keyward/a.pem\"];\n"
	        "    lockout = { max_failures = 3; window = 60; unlock_after = 120; };\n"
	        "    removal = { action = \"lock\"; grace = 0; lock_verify = 1000; on_lock_failure "
	        "= \"alert\"; }; }\n"
	        ");\n"
	        "default = { require = \"deny\"; reason = \"nobody else\"; };\n";
	_cleanup_(policy_freep) Policy *p = NULL;
	PolicyDiagnostics d = {};
	const PolicySettings *s;
	PolicyDecision dec;
	PolicyRequest req = {.user = "z", .uid = 5000, .service = "q"};
	int r;

	r = policy_load_string(text, "full.conf", &d, &p);
	CHECK(r == 0 && d.n == 0, "full file loads cleanly (r=%d, %zu messages)", r, d.n);
	if (r < 0 || d.n) {
		dump(&d);
		policy_diagnostics_clear(&d);
		return;
	}
	s = policy_settings(p);
	CHECK(streq(s->rp_id, "pam://example") && s->timeout_ms == 500 &&
	                s->failmode == POLICY_FAILMODE_CLOSED &&
	                s->audit_failure == POLICY_AUDIT_FAILURE_DENY &&
	                streq(s->credentials_dir, "/tmp/kw/creds") &&
	                streq(s->state_dir, "/tmp/kw/state") &&
	                streq(s->runtime_dir, "/tmp/kw/run") &&
	                streq(s->audit_log, "/tmp/kw/audit.log") &&
	                streq(s->admin_group, "kwadm") && streq(s->cue, "Touch for %u (100%%)") &&
	                s->max_credentials_per_user == 4 && s->max_bindings == 10,
	        "settings");
	CHECK(policy_evaluate(p, &req, &dec) == 0 && streq(dec.rule_name, "h") &&
	                dec.n_aaguid_allow == 1 && dec.aaguid_allow[0][0] == 0xcb &&
	                dec.aaguid_allow[0][15] == 0xa8 && dec.n_aaguid_deny == 1 &&
	                dec.aaguid_deny[0][10] == 0xaa &&
	                dec.attestation == POLICY_ATTESTATION_VERIFIED &&
	                streq(dec.trust_anchors[0], "/etc/keyward/a.pem") &&
	                !dec.trust_anchors[1] && dec.lockout_max_failures == 3 &&
	                dec.lockout_window_s == 60 && dec.lockout_unlock_after_s == 120 &&
	                dec.lock_verify_ms == 1000 &&
	                dec.on_lock_failure == POLICY_LOCK_FAILURE_ALERT,
	        "rule h fields");
	CHECK(strlen(policy_digest(p)) == 64 && streq(policy_path(p), "full.conf"), "digest/path");

	/* defaults */
	{
		_cleanup_(policy_freep) Policy *q = NULL;
		CHECK(policy_load_string(DEF, "min.conf", NULL, &q) == 0, "minimal file");
		if (q) {
			s = policy_settings(q);
			CHECK(streq(s->rp_id, "pam://keyward") && s->timeout_ms == 30000 &&
			                s->failmode == POLICY_FAILMODE_CLOSED &&
			                s->max_credentials_per_user == 16 &&
			                s->max_bindings == 65536 && !s->admin_group &&
			                s->credentials_dir[0] == '/',
			        "defaults");
		}
	}
}

/* settings.audit: defaults, every key parsed, sizes, percentages and durations. */
static void test_audit_settings(void)
{
	PolicyDiagnostics d = {};
	Policy *p = NULL;
	const PolicyAuditSettings *a;
	_cleanup_free_ char *text = NULL;

	CHECK(policy_load_string(DEF, "t.conf", &d, &p) == 0, "defaults load");
	a = &policy_settings(p)->audit;
	CHECK(a->rotate_size == 64u << 20 && a->rotate_age_s == 0 && a->keep_files == 16 &&
	                a->keep_age_s == 0 && a->keep_min_files == 1 && a->seal_every == 64,
	        "audit defaults: rotation and retention");
	CHECK(a->space_left.percent == 5 && a->admin_space_left.percent == 1 &&
	                a->space_left_action == POLICY_AUDIT_SPACE_ALERT &&
	                a->admin_space_left_action == POLICY_AUDIT_SPACE_ALERT &&
	                a->disk_full_action == POLICY_AUDIT_SPACE_DENY,
	        "audit defaults: space");
	policy_free(p);
	p = NULL;

	CHECK(policy_load_string(
	              "settings = { audit = {\n"
	              "  rotate_size = \"8K\"; rotate_age = \"1w\";\n"
	              "  keep_files = 4; keep_age = 86400; keep_min_files = 2;\n"
	              "  seal_every = 8; space_left = \"2G\"; admin_space_left = 1048576;\n"
	              "  space_left_action = \"rotate\"; admin_space_left_action = "
	              "\"ignore\";\n"
	              "  disk_full_action = \"rotate\"; }; };\n" DEF,
	              "t.conf", &d, &p) == 0,
	        "every audit key loads");
	CHECK(policy_diagnostics_errors(&d) == 0, "no errors");
	a = &policy_settings(p)->audit;
	CHECK(a->rotate_size == 8192 && a->rotate_age_s == 7 * 86400 && a->keep_files == 4 &&
	                a->keep_age_s == 86400 && a->keep_min_files == 2 && a->seal_every == 8,
	        "audit rotation values");
	CHECK(a->space_left.percent == 0 && a->space_left.bytes == (uint64_t)2 << 30 &&
	                a->admin_space_left.bytes == 1048576 &&
	                a->space_left_action == POLICY_AUDIT_SPACE_ROTATE &&
	                a->admin_space_left_action == POLICY_AUDIT_SPACE_IGNORE &&
	                a->disk_full_action == POLICY_AUDIT_SPACE_ROTATE,
	        "audit space values");
	CHECK(policy_audit_explain(a, &text) == 0 && strstr(text, "passes 8192 bytes") &&
	                strstr(text, "space_left: below 2147483648 bytes free") &&
	                strstr(text, "disk_full_action: rotate"),
	        "explain --audit");
	policy_free(p);
	policy_diagnostics_clear(&d);

	/* "0" turns rotation by size off. */
	p = NULL;
	CHECK(policy_load_string(
	              "settings = { audit = { rotate_size = \"0\"; space_left = 0; }; };\n" DEF,
	              "t.conf", &d, &p) == 0 &&
	                policy_settings(p)->audit.rotate_size == 0 &&
	                policy_settings(p)->audit.space_left.bytes == 0 &&
	                policy_settings(p)->audit.space_left.percent == 0,
	        "rotate_size 0 is off");
	policy_free(p);
	policy_diagnostics_clear(&d);
}

/* settings.breakglass and the outcome's opt-in: defaults, values, errors, warnings, and
 * policy_breakglass_allows(). */
static void test_breakglass(void)
{
	static const struct {
		const char *text;
		const char *message; /* the first error */
	} bad[] = {
	        {"settings = { breakglass = { services = []; }; };\n" DEF,
	                "'services' is an empty list; remove it or name at least one entry"},
	        {"settings = { breakglass = { argon2 = { opslimit = 0; }; }; };\n" DEF,
	                "'opslimit' is 0, expected 1..32 (Argon2id passes)"},
	        {"settings = { breakglass = { argon2 = { memlimit = 4096; }; }; };\n" DEF,
	                "'memlimit' is out of range: expected 0 (off) or 8192..1073741824 bytes"},
	        {"settings = { breakglass = { argon2 = { memlimit = 0; }; }; };\n" DEF,
	                "'memlimit' must be 8192..1073741824 bytes (libsodium's minimum is 8K)"},
	        {"settings = { breakglass = { codes = 0; }; };\n" DEF,
	                "'codes' is 0, expected 1..64 (codes per issue)"},
	        {"settings = { breakglass = { validity = 30; }; };\n" DEF,
	                "'validity' must be at least 60 seconds (codes that expire before they "
	                "can be stored are useless)"},
	        {"settings = { breakglass = { colour = 1; }; };\n" DEF,
	                "unknown key 'colour' in 'breakglass' (expected one of: services, codes, "
	                "validity, argon2, max_attempts, window, two_person, approval_validity, "
	                "require_enroll)"},
	        {"settings = { breakglass = true; };\n" DEF,
	                "'breakglass' must be a group { ... }, not a boolean"},
	        {"default = { require = \"key\"; breakglass = \"yes\"; };\n",
	                "'breakglass' must be true or false, not a string"},
	};
	_cleanup_(policy_freep) Policy *p = NULL, *q = NULL;
	const PolicyBreakglass *b;
	PolicyDiagnostics d = {};
	PolicyDecision dec;
	PolicyRequest req = {.user = "alice", .uid = 1000, .service = "login"};
	Policy *x = NULL;

	CHECK(policy_load_string(DEF, "t.conf", &d, &p) == 0, "defaults load");
	b = &policy_settings(p)->breakglass;
	CHECK(strv_length(b->services) == 1 && streq(b->services[0], "login") && b->codes == 10 &&
	                b->validity_s == 2592000 && b->argon2_opslimit == 3 &&
	                b->argon2_memlimit == 67108864 && b->max_attempts == 5 &&
	                b->window_s == 900 && !b->two_person && b->approval_validity_s == 900 &&
	                b->require_enroll,
	        "breakglass defaults");
	CHECK(policy_evaluate(p, &req, &dec) == 0 && !dec.breakglass, "opt-in off by default");

	CHECK(policy_load_string(
	              "settings = { breakglass = { services = [\"login\", \"sshd\"]; codes = 4;\n"
	              "  validity = \"2d\"; argon2 = { opslimit = 1; memlimit = \"8K\"; };\n"
	              "  max_attempts = 2; window = 60; two_person = true;\n"
	              "  approval_validity = 30; require_enroll = false; }; };\n"
	              "rules = ( { name = \"admins\"; match = { users = \"alice\"; };\n"
	              "  require = \"key\"; breakglass = true; } );\n"
	              "default = { require = \"key\"; };\n",
	              "t.conf", &d, &q) == 0,
	        "every breakglass key loads");
	CHECK(policy_diagnostics_errors(&d) == 0 && d.n == 4, "four warnings (%zu)", d.n);
	CHECK(d.n > 0 && strstr(d.items[0].message, "lists \"sshd\""), "sshd warned");
	policy_diagnostics_clear(&d);
	b = &policy_settings(q)->breakglass;
	CHECK(strv_length(b->services) == 2 && b->codes == 4 && b->validity_s == 2 * 86400 &&
	                b->argon2_opslimit == 1 && b->argon2_memlimit == 8192 &&
	                b->max_attempts == 2 && b->window_s == 60 && b->two_person &&
	                b->approval_validity_s == 30 && !b->require_enroll,
	        "breakglass values");
	{
		_cleanup_free_ char *words = NULL;

		CHECK(policy_evaluate(q, &req, &dec) == 0 &&
		                policy_decision_explain(&dec, &words) == 0 &&
		                strstr(words, "Break-glass recovery: allowed by this rule"),
		        "explain says break-glass is allowed");
	}
	CHECK(policy_evaluate(q, &req, &dec) == 0 && dec.breakglass &&
	                policy_breakglass_allows(q, &dec, "login") &&
	                policy_breakglass_allows(q, &dec, "sshd") &&
	                !policy_breakglass_allows(q, &dec, "sudo"),
	        "opted-in rule, listed services only");
	req.user = "bob";
	CHECK(policy_evaluate(q, &req, &dec) == 0 && !dec.breakglass &&
	                !policy_breakglass_allows(q, &dec, "login"),
	        "a rule that did not opt in");
	/* a remote login the rule resolves to deny: never */
	req.user = "alice";
	req.rhost = "203.0.113.9";
	req.service = "sshd";
	CHECK(policy_evaluate(q, &req, &dec) == 0 && !policy_breakglass_allows(q, &dec, "sshd"),
	        "remote login resolved to deny");

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		int r = policy_load_string(bad[i].text, "bad.conf", &d, &x);
		const PolicyDiagnostic *first = NULL;

		for (size_t k = 0; k < d.n && !first; k++)
			if (d.items[k].severity == POLICY_SEVERITY_ERROR)
				first = &d.items[k];
		CHECK(r < 0 && !x && first && streq(first->message, bad[i].message),
		        "breakglass bad case %zu: want: %s", i, bad[i].message);
		if (!first || !streq(first->message, bad[i].message))
			dump(&d);
		policy_diagnostics_clear(&d);
	}
}

static void test_digest(void)
{
	_cleanup_(policy_freep) Policy *a = NULL, *b = NULL, *c = NULL;

	CHECK(policy_load_string(DEF, "x", NULL, &a) == 0, "a");
	CHECK(policy_load_string(DEF, "y", NULL, &b) == 0, "b");
	CHECK(policy_load_string(DEF "# comment\n", "x", NULL, &c) == 0, "c");
	if (!a || !b || !c)
		return;
	CHECK(streq(policy_digest(a), policy_digest(b)), "same content, same digest");
	CHECK(!streq(policy_digest(a), policy_digest(c)), "different content, different digest");
	/* sha256("default = { require = \"none\"; };\n"), computed with sha256sum */
	CHECK(streq(policy_digest(a), DEF_SHA256), "known digest %s", policy_digest(a));
}

/* ---- files ---- */

static void test_files(void)
{
	char dir[] = "/tmp/test-policy-XXXXXX", path[256], link[256];
	_cleanup_(policy_freep) Policy *p = NULL;
	PolicyDiagnostics d = {};
	Policy *untouched = (Policy *)0x1;
	int fd, r;

	if (!mkdtemp(dir)) {
		CHECK(false, "mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/keyward.conf", dir);
	snprintf(link, sizeof(link), "%s/link.conf", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	CHECK(fd >= 0 && write(fd, DEF, strlen(DEF)) == (ssize_t)strlen(DEF), "write");
	if (fd >= 0)
		close(fd);
	r = policy_load_file(path, &d, &p);
	CHECK(r == 0 && p && streq(policy_path(p), path), "load file (r=%d)", r);

	CHECK(symlink(path, link) == 0, "symlink");
	r = policy_load_file(link, &d, &untouched);
	CHECK(r == -ELOOP && untouched == (Policy *)0x1, "symlink refused (r=%d)", r);
	CHECK(d.n == 1 && d.items[0].line == 0 && streq(d.items[0].file, link) &&
	                streq(d.items[0].message,
	                        "is a symbolic link; replace it with a regular file"),
	        "symlink message");
	policy_diagnostics_clear(&d);

	r = policy_load_file(dir, &d, &untouched);
	CHECK(r == -EBADFD && d.n == 1 && streq(d.items[0].message, "is not a regular file"),
	        "directory refused (r=%d)", r);
	policy_diagnostics_clear(&d);

	snprintf(link, sizeof(link), "%s/missing.conf", dir);
	r = policy_load_file(link, &d, &untouched);
	CHECK(r == -ENOENT && d.n == 1 && streq(d.items[0].message, "does not exist"),
	        "missing (r=%d)", r);
	policy_diagnostics_clear(&d);

	/* too big: 1 MiB + 1 of comment */
	{
		char big[256];
		FILE *f;

		snprintf(big, sizeof(big), "%s/big.conf", dir);
		f = fopen(big, "we");
		CHECK(f != NULL, "fopen big");
		if (f) {
			fputs(DEF, f);
			while (ftell(f) <= 1024 * 1024)
				fputs("# padding padding padding padding padding padding padding "
				      "pad\n",
				        f);
			fclose(f);
		}
		r = policy_load_file(big, &d, &untouched);
		CHECK(r == -EFBIG && d.n == 1 &&
		                streq(d.items[0].message, "the file is larger than 1048576 bytes"),
		        "too big (r=%d)", r);
		policy_diagnostics_clear(&d);
		unlink(big);
	}

	/* "reload": a bad file never replaces a good policy */
	{
		Policy *live = TAKE_PTR(p), *next = NULL;

		r = policy_load_string("default = { require = \"key\" ; ", "new.conf", &d, &next);
		CHECK(r < 0 && !next, "bad reload refused");
		if (r >= 0) {
			policy_free(live);
			live = next;
		}
		CHECK(live && streq(policy_path(live), path), "previous policy kept");
		policy_free(live);
		policy_diagnostics_clear(&d);
	}

	unlink(link);
	snprintf(link, sizeof(link), "%s/link.conf", dir);
	unlink(link);
	unlink(path);
	rmdir(dir);
}

/* ---- integers libconfig would wrap ---- */

static bool has_error(const PolicyDiagnostics *d, unsigned line, const char *message)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->items[i].severity == POLICY_SEVERITY_ERROR && d->items[i].line == line &&
		        streq(d->items[i].message, message))
			return true;
	return false;
}

static void test_wide_integers(void)
{
	static const char ok[] = "# 99999999999 in a comment\n"
	                         "/* 4294972296 */ // 4294967296\n"
	                         "settings = { timeout = 2000L; max_bindings = 0x400; };\n"
	                         "rules = ( { name = \"a\"; require = \"key\";\n"
	                         "  reason = \"99999999999 \\\" 99999999999\";\n"
	                         "  lockout = { max_failures = 3; window = 600; }; } );\n" DEF;
	_cleanup_(policy_freep) Policy *p = NULL;
	PolicyDiagnostics d = {};
	int r;

	r = policy_load_string(ok, "ok.conf", &d, &p);
	CHECK(r == 0 && p, "numbers in comments and strings, L and hex (r=%d)", r);
	if (r < 0)
		dump(&d);
	policy_diagnostics_clear(&d);
	policy_free(TAKE_PTR(p));

	/* a literal no getter reads is refused too */
	r = policy_load_string("settings = { rp_id = 4294967296; };\n" DEF, "wide.conf", &d, &p);
	CHECK(r == -EINVAL && !p, "wide literal in a string key refused (r=%d)", r);
	CHECK(has_error(&d, 1,
	              "the integer 4294967296 is out of range (-2147483648..2147483647, or 64 "
	              "bits with an 'L' suffix)"),
	        "wide literal reported");
	CHECK(d.n == 2, "two errors, type and range (%zu)", d.n);
	policy_diagnostics_clear(&d);

	/* long literals are quoted back shortened */
	r = policy_load_string("settings = { timeout = "
	                       "1234567890123456789012345678901234567890; };\n" DEF,
	        "long.conf", &d, &p);
	CHECK(r == -EINVAL && has_error(&d, 1,
	                              "'timeout' is 12345678901234567890123456789012..., "
	                              "expected 100..600000 (milliseconds)"),
	        "long literal shortened");
	if (r != -EINVAL || d.n != 1)
		dump(&d);
	policy_diagnostics_clear(&d);
}

/* ---- many rules / limits ---- */

static void test_limits(void)
{
	_cleanup_free_ char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);
	PolicyDiagnostics d = {};
	Policy *p = NULL;
	int r;

	if (!f)
		abort();
	fputs("rules = (\n", f);
	for (int i = 0; i < 1025; i++)
		fprintf(f,
		        "%s{ name = \"r%d\"; match = { users = \"u%d\"; }; require = \"key\"; }\n",
		        i ? "," : "", i, i);
	fputs(");\n" DEF, f);
	fclose(f);
	r = policy_load_string(text, "many.conf", &d, &p);
	CHECK(r == -EINVAL && d.n >= 1 && d.items[0].line == 1 &&
	                streq(d.items[0].message,
	                        "'rules' has 1025 rules, at most 1024 are allowed"),
	        "1025 rules refused");
	policy_diagnostics_clear(&d);

	/* 1024 rules are fine, and evaluate to the last */
	{
		char *last = strstr(text, ",{ name = \"r1024\"");
		char *groups[] = {NULL};
		PolicyRequest req = {.user = "u1023", .uid = 1, .groups = groups, .service = "s"};
		PolicyDecision dec;

		CHECK(last != NULL, "find last");
		if (!last)
			return;
		strcpy(last, ");\n" DEF);
		r = policy_load_string(text, "many.conf", &d, &p);
		CHECK(r == 0 && p, "1024 rules load (r=%d)", r);
		if (r < 0)
			dump(&d);
		policy_diagnostics_clear(&d);
		if (p) {
			CHECK(policy_evaluate(p, &req, &dec) == 0 && streq(dec.rule_name, "r1023"),
			        "last rule");
			policy_free(p);
		}
	}
}

/* ---- policy_is_remote ---- */

typedef struct RemoteCase {
	const char *rhost, *tty;
	bool remote;
} RemoteCase;

static const RemoteCase remote_cases[] = {
        {NULL, NULL, false}, {"", NULL, false}, {"", "/dev/pts/3", false},
        {NULL, "/dev/pts/3", false}, {NULL, "ssh", false}, {NULL, "tty1", false},
        {NULL, ":0", false}, {NULL, ":1.0", false}, {NULL, "localhost:10.0", false},
        {NULL, "otherhost:0", true}, {NULL, "192.0.2.5:0.0", true}, {NULL, "127.0.0.1:0", false},
        {NULL, "[2001:db8::5]:0", true}, {NULL, "[::1]:0", false},
        {NULL,
                "a-very-long-host-name-that-goes-on-and-on-and-on-and-on-and-on-and-on-and-on-and-"
                "on-and-on-and-on-and-"
                "on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-"
                "and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on."
                "localhost:0", /* longer than 255 before the colon */
                true},
        {"127.0.0.1", NULL, false}, {"127.1.2.3", NULL, false}, {"127.0.0.1:22", NULL, false},
        {"::1", NULL, false}, {"0:0:0:0:0:0:0:1", NULL, false}, {"0000:0000::0001", NULL, false},
        {"[::1]", NULL, false}, {"[::1]:22", NULL, false}, {"::1%lo", NULL, false},
        {"::ffff:127.0.0.1", NULL, false}, {"::FFFF:127.0.0.2", NULL, false},
        {"[::ffff:127.0.0.1]:2222", NULL, false}, {"::ffff:7f00:1", NULL, false},
        {"localhost", NULL, false}, {"LOCALHOST", NULL, false},
        {"localhost.localdomain", NULL, false}, {"ip6-localhost", NULL, false},
        {"localhost", "otherhost:0", false}, /* rhost decides when present */
        {"10.0.0.1", NULL, true}, {"10.0.0.1:22", NULL, true}, {"128.0.0.1", NULL, true},
        {"0.0.0.0", NULL, true}, {"::", NULL, true}, {"2001:db8::1", NULL, true},
        {"[2001:db8::1]:22", NULL, true}, {"fe80::1%eth0", NULL, true},
        {"::ffff:10.1.2.3", NULL, true},
        {"::127.0.0.1", NULL, true}, /* IPv4-compatible, deprecated: not loopback */
        {"::2", NULL, true}, {"host.example.org", NULL, true},
        {"localhost.evil.example", NULL, true}, {"mylocalhost", NULL, true},
        {"127.0.0.1.evil.example", NULL, true},
        {"127.1", NULL, true}, /* not a dotted quad: a name */
        {"[::1", NULL, true}, {"[::1]x", NULL, true}, {"[::1]:", NULL, true}, {"[]", NULL, true},
        {"127.0.0.1:abc", NULL, true}, {" 127.0.0.1", NULL, true},
        {"localhost", "/dev/pts/0", false},
        {"203.0.113.1", "tty1", true}, /* a console tty does not make it local */
};

static void test_is_remote(void)
{
	for (size_t i = 0; i < ELEMENTSOF(remote_cases); i++) {
		const RemoteCase *c = &remote_cases[i];

		CHECK(policy_is_remote(c->rhost, c->tty) == c->remote, "is_remote(%s, %s) != %s",
		        c->rhost ? c->rhost : "NULL", c->tty ? c->tty : "NULL",
		        c->remote ? "true" : "false");
	}
}

/* ---- string tables ---- */

static void test_tables(void)
{
#define ROUNDTRIP(name, max)                                                                       \
	for (int i = 0; i < (max); i++)                                                            \
		CHECK(policy_##name##_from_string(policy_##name##_to_string(i)) == i, #name " %d", \
		        i);                                                                        \
	CHECK(policy_##name##_from_string("bogus") == -EINVAL, #name " bogus");                    \
	CHECK(policy_##name##_from_string(NULL) == -EINVAL, #name " NULL");                        \
	CHECK(policy_##name##_to_string(max) == NULL, #name " max");                               \
	CHECK(policy_##name##_to_string(-1) == NULL, #name " -1");
	ROUNDTRIP(require, _POLICY_REQUIRE_MAX);
	ROUNDTRIP(uv, _POLICY_UV_MAX);
	ROUNDTRIP(attestation, _POLICY_ATTESTATION_MAX);
	ROUNDTRIP(counter, _POLICY_COUNTER_MAX);
	ROUNDTRIP(removal, _POLICY_REMOVAL_MAX);
	ROUNDTRIP(lock_failure, _POLICY_LOCK_FAILURE_MAX);
	ROUNDTRIP(failmode, _POLICY_FAILMODE_MAX);
	ROUNDTRIP(on_remote, _POLICY_ON_REMOTE_MAX);
	ROUNDTRIP(audit_failure, _POLICY_AUDIT_FAILURE_MAX);
	CHECK(streq(policy_removal_to_string(POLICY_REMOVAL_END_ELEVATION), "end-elevation"),
	        "names");
	CHECK(streq(policy_counter_to_string(POLICY_COUNTER_ALLOW_ZERO), "allow-zero"), "names");
}

/* on_remote = "ssh-key": a remote login of the rule needs a registered sk SSH key; local
 * logins are unchanged; remote_lifetime travels in the decision; a rule that matches only
 * remote logins is no mistake then (no warning). */
static void test_ssh_key(void)
{
	static const char text[] =
	        "rules = (\n"
	        "  { name = \"admins\"; match = { groups = \"wheel\"; };\n"
	        "    require = \"key\"; on_remote = \"ssh-key\"; remote_lifetime = 120;\n"
	        "    user_verification = \"required\"; },\n"
	        "  { name = \"ops\"; match = { groups = \"ops\"; remote = true; };\n"
	        "    require = \"key\"; on_remote = \"ssh-key\"; }\n"
	        ");\n"
	        "default = { require = \"none\"; };\n";
	_cleanup_(policy_freep) Policy *p = NULL;
	PolicyDiagnostics diags = {};
	char *wheel[] = {"wheel", NULL}, *ops[] = {"ops", NULL};
	PolicyRequest req = {.user = "alice",
	        .uid = 1000,
	        .groups = wheel,
	        .service = "sshd",
	        .rhost = "192.0.2.7"};
	PolicyDecision dec;
	_cleanup_free_ char *text_out = NULL;

	CHECK(policy_load_string(text, "ssh.conf", &diags, &p) == 0 && diags.n == 0,
	        "ssh-key policy loads without warnings (%zu)", diags.n);
	dump(&diags);
	policy_diagnostics_clear(&diags);
	if (!p)
		return;
	CHECK(policy_evaluate(p, &req, &dec) == 0 && dec.require == POLICY_REQUIRE_SSH_KEY &&
	                dec.remote && dec.remote_resolved && dec.on_remote_set &&
	                dec.on_remote == POLICY_ON_REMOTE_SSH_KEY && dec.remote_lifetime_s == 120 &&
	                dec.user_verification == POLICY_UV_REQUIRED && !dec.reason,
	        "remote sshd login resolves to ssh-key");
	CHECK(policy_decision_explain(&dec, &text_out) == 0 &&
	                strstr(text_out,
	                        "Decision: a registered security-key SSH key is required") &&
	                strstr(text_out, "Elevation lifetime: 120 s") &&
	                strstr(text_out, "User verification: required (the key must be registered "
	                                 "with verify-required)"),
	        "explain ssh-key:\n%s", strna(text_out));
	free(TAKE_PTR(text_out));
	/* sudo inside the SSH session: remote by logind's verdict */
	req.service = "sudo";
	req.rhost = NULL;
	req.tty = "/dev/pts/3";
	req.remote = true;
	CHECK(policy_evaluate(p, &req, &dec) == 0 && dec.require == POLICY_REQUIRE_SSH_KEY,
	        "sudo in a remote session resolves to ssh-key");
	/* local: the key itself, and explain says what remote logins need */
	req.remote = false;
	CHECK(policy_evaluate(p, &req, &dec) == 0 && dec.require == POLICY_REQUIRE_KEY &&
	                !dec.remote_resolved,
	        "local sudo needs the key");
	CHECK(policy_decision_explain(&dec, &text_out) == 0 &&
	                strstr(text_out, "Remote logins: a registered security-key SSH key "
	                                 "(on_remote = \"ssh-key\")"),
	        "explain local:\n%s", strna(text_out));
	free(TAKE_PTR(text_out));
	/* default lifetime */
	req.groups = ops;
	req.remote = true;
	CHECK(policy_evaluate(p, &req, &dec) == 0 && dec.require == POLICY_REQUIRE_SSH_KEY &&
	                dec.remote_lifetime_s == POLICY_REMOTE_LIFETIME_DEFAULT &&
	                dec.remote_lifetime_s == 900,
	        "default remote_lifetime 900");
	CHECK(policy_require_from_string("ssh-key") == POLICY_REQUIRE_SSH_KEY &&
	                policy_on_remote_from_string("ssh-key") == POLICY_ON_REMOTE_SSH_KEY,
	        "string tables");
}

int main(void)
{
	test_ssh_key();
	test_evaluate();
	test_decision_fields();
	test_malformed();
	test_warnings();
	test_settings_and_reachability();
	test_audit_settings();
	test_breakglass();
	test_digest();
	test_files();
	test_limits();
	test_wide_integers();
	test_is_remote();
	test_tables();
	fprintf(stderr,
	        "test-policy: %u checks, %u failed (%zu evaluation cases, %zu malformed files, %zu "
	        "remote cases)\n",
	        checks, failures, ELEMENTSOF(eval_cases), ELEMENTSOF(bad_cases),
	        ELEMENTSOF(remote_cases));
	return failures ? 1 : 0;
}
