/* test-coverage.c: the coverage snapshot — policy_evaluate() and the snapshot agree on every
 * request of a grid, the text round-trips, the reader refuses malformed, truncated and
 * oversized text, and a login whose account cannot be looked up is decided fail-closed. */
#include <stdarg.h>
#include <stdio.h>

#include "coverage.h"
#include "keyward-config.h"
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

/* Every condition the evaluator knows, in match and in not, and every remote outcome. */
static const char fixture[] =
        "settings = { failmode = \"open\"; };\n"
        "rules = (\n"
        "  { name = \"breakglass\"; match = { users = \"breakglass\"; }; require = \"none\"; },\n"
        "  { name = \"ssh-root\"; match = { users = \"root\"; services = \"sshd\"; };\n"
        "    require = \"deny\"; reason = \"no root over ssh\"; },\n"
        "  { name = \"remote-ops\"; match = { groups = \"ops\"; remote = true; };\n"
        "    require = \"key\"; on_remote = \"none\"; },\n"
        "  { name = \"ssh-wheel\"; match = { groups = \"wheel\"; services = [\"sshd\", \"su\"]; "
        "};\n"
        "    require = \"key\"; on_remote = \"ssh-key\"; remote_lifetime = 60; },\n"
        "  { name = \"wheel\"; match = { groups = [\"wheel\", \"adm\"];\n"
        "    not = { users = \"carol\"; services = \"cron\"; ttys = \"/dev/tty9\"; }; };\n"
        "    require = \"key\"; },\n"
        "  { name = \"uids\"; match = { uids = [\"0\", \"2000-2999\"]; not = { uids = \"2500\"; }; "
        "};\n"
        "    require = \"key\"; on_remote = \"deny\"; reason = \"local only\"; },\n"
        "  { name = \"consoles\"; match = { ttys = [\"/dev/tty[1-6]\", \"\"]; services = "
        "\"login\";\n"
        "    remote = false; }; require = \"key\"; },\n"
        "  { name = \"no-groups\"; match = { not = { groups = \"staff\"; }; services = \"su\"; };\n"
        "    require = \"deny\"; }\n"
        ");\n"
        "default = { require = \"none\"; };\n";

static const char *const users[] = {"alice", "bob", "carol", "root", "breakglass"};
static const uid_t uids[] = {1000, 2000, 2500, 0, 999};
static char *const groups_wheel[] = {"wheel", NULL};
static char *const groups_ops[] = {"ops", "staff", NULL};
static char *const groups_none[] = {NULL};
static char *const *const group_sets[] = {groups_wheel, groups_ops, groups_none};
static const char *const services[] = {"sudo", "sshd", "login", "cron", "su"};
static const char *const ttys[] = {"", "/dev/tty1", "/dev/tty9", "/dev/pts/0", "host.example:0"};
static const char *const rhosts[] = {"", "127.0.0.1", "192.0.2.7"};

static void test_agreement(const Policy *p, const CoverageSnapshot *s)
{
	size_t dims[] = {ELEMENTSOF(users), ELEMENTSOF(group_sets), ELEMENTSOF(services),
	        ELEMENTSOF(ttys), ELEMENTSOF(rhosts), 2};
	size_t total = 1;

	for (size_t i = 0; i < ELEMENTSOF(dims); i++)
		total *= dims[i];
	for (size_t n = 0; n < total; n++) {
		size_t idx[ELEMENTSOF(dims)], rest = n;
		PolicyDecision pd;
		CoverageDecision cd;

		for (size_t i = 0; i < ELEMENTSOF(dims); i++) {
			idx[i] = rest % dims[i];
			rest /= dims[i];
		}
		PolicyRequest preq = {
		        .user = users[idx[0]],
		        .uid = uids[idx[0]],
		        .groups = group_sets[idx[1]],
		        .service = services[idx[2]],
		        .tty = isempty(ttys[idx[3]]) ? NULL : ttys[idx[3]],
		        .rhost = isempty(rhosts[idx[4]]) ? NULL : rhosts[idx[4]],
		        .remote = idx[5],
		};
		CoverageRequest creq = {
		        .user = preq.user,
		        .uid = preq.uid,
		        .groups = preq.groups,
		        .service = preq.service,
		        .tty = ttys[idx[3]],
		        .remote = preq.remote || coverage_is_remote(preq.rhost, preq.tty),
		};

		CHECK(policy_evaluate(p, &preq, &pd) == 0, "policy_evaluate");
		CHECK(coverage_evaluate(s, &creq, &cd) == 0, "coverage_evaluate");
		CHECK(pd.require == cd.require && streq(pd.rule_name, cd.rule_name) &&
		                pd.is_default == cd.is_default && !cd.undecidable &&
		                streq(strempty(pd.reason), strempty(cd.reason)),
		        "%s groups #%zu %s tty '%s' rhost '%s' logind-remote %zu: policy %s (%s), "
		        "snapshot %s (%s)",
		        preq.user, idx[1], preq.service, ttys[idx[3]], rhosts[idx[4]], idx[5],
		        policy_require_to_string(pd.require), pd.rule_name,
		        policy_require_to_string(cd.require), cd.rule_name);
	}
	fprintf(stderr, "agreement: %zu requests\n", total);
}

static const char *evaluate(const CoverageSnapshot *s, const char *user, char *const *groups,
        bool groups_unknown, const char *service, bool *ret_undecidable)
{
	CoverageRequest req = {
	        .user = user,
	        .uid = 1000,
	        .groups = groups,
	        .groups_unknown = groups_unknown,
	        .service = service,
	};
	CoverageDecision d;

	if (coverage_evaluate(s, &req, &d) < 0)
		return "error";
	*ret_undecidable = d.undecidable;
	return policy_require_to_string(d.require);
}

static void test_unknown_groups(void)
{
	static const char text[] =
	        "keyward-coverage 1\n"
	        "digest 0000000000000000000000000000000000000000000000000000000000000000\n"
	        "failmode open\n"
	        "rule sshd-only\n"
	        "require key\n"
	        "group wheel\n"
	        "service sshd\n"
	        "rule deny-bob\n"
	        "require deny\n"
	        "user bob\n"
	        "rule staff-free\n"
	        "require none\n"
	        "group staff\n"
	        "default\n"
	        "require none\n"
	        "end 3\n";
	_cleanup_(coverage_snapshot_freep) CoverageSnapshot *s = NULL;
	bool undecidable = false;

	CHECK(coverage_snapshot_parse(text, strlen(text), &s) == 0, "parse");
	if (!s)
		return;
	/* the group rule cannot tell for sshd: covered */
	CHECK(streq(evaluate(s, "alice", NULL, true, "sshd", &undecidable), "key") && undecidable,
	        "unknown groups, group rule may apply");
	/* another service: the group rule does not apply whatever the groups */
	CHECK(streq(evaluate(s, "alice", NULL, true, "sudo", &undecidable), "none") && !undecidable,
	        "unknown groups, group rule cannot apply");
	/* a later rule that covers the user is decided: bob is denied whatever his groups */
	CHECK(streq(evaluate(s, "bob", NULL, true, "sudo", &undecidable), "deny") && !undecidable,
	        "unknown groups, user rule decides");
	/* known groups: the usual answer */
	CHECK(streq(evaluate(s, "alice", groups_wheel, false, "sshd", &undecidable), "key") &&
	                !undecidable,
	        "known groups");
}

/* Text that must not parse: each is the good snapshot with one thing wrong. */
static void test_malformed(const char *good)
{
	static const struct {
		const char *from, *to;
	} edits[] = {
	        {"keyward-coverage 1\n", "keyward-coverage 2\n"},
	        {"keyward-coverage 1\n", ""},
	        {"failmode open\n", "failmode ajar\n"},
	        {"failmode open\n", ""},
	        {"digest ", "digest x"},
	        {"require deny\n", ""},
	        {"require deny\n", "require maybe\n"},
	        /* what a remote key outcome resolves to, never an outcome of its own */
	        {"require deny\n", "require ssh-key\n"},
	        {"on-remote ssh-key\n", "on-remote ssh\n"},
	        {"rule breakglass\n", "rule \n"},
	        {"user breakglass\n", "user \n"},
	        {"user breakglass\n", "users breakglass\n"},
	        {"user breakglass\n", "user breakglass\r\n"},
	        {"user breakglass\n", "user break\tglass\n"},
	        {"uid 2000-2999\n", "uid 2999-2000\n"},
	        {"uid 2000-2999\n", "uid 2000\n"},
	        {"uid 2000-2999\n", "uid 02000-2999\n"},
	        {"uid 2000-2999\n", "uid 2000-99999999999\n"},
	        {"remote yes\n", "remote yes\nremote yes\n"},
	        {"remote yes\n", "remote maybe\n"},
	        {"on-remote none\n", "on-remote none\non-remote none\n"},
	        {"reason no root over ssh\n", "reason a\nreason b\n"},
	        {"default\n", "default now\n"},
	        {"default\n", ""},
	        {"\nend ", "\nend 99"},
	        {"\nend ", "\nuser x\nend "},
	        {"\nend ", "\nrule late\nend "},
	        {"keyward-coverage 1\n", "keyward-coverage 1\nkeyward-coverage 1\n"},
	        {"user breakglass\n", "user breakglass\n\n"},
	        {"user breakglass\n", "# a comment\n"},
	};
	size_t len = strlen(good);

	for (size_t i = 0; i < ELEMENTSOF(edits); i++) {
		_cleanup_(coverage_snapshot_freep) CoverageSnapshot *s = NULL;
		_cleanup_free_ char *bad = NULL;
		const char *at = strstr(good, edits[i].from);

		CHECK(at, "edit %zu: '%s' not in the snapshot", i, edits[i].from);
		if (!at)
			continue;
		CHECK(asprintf(&bad, "%.*s%s%s", (int)(at - good), good, edits[i].to,
		              at + strlen(edits[i].from)) > 0,
		        "asprintf");
		CHECK(coverage_snapshot_parse(bad, strlen(bad), &s) == -EBADMSG && !s,
		        "edit %zu ('%s' -> '%s') was accepted", i, edits[i].from, edits[i].to);
	}

	/* every truncation, at any byte */
	for (size_t n = 0; n < len; n++) {
		_cleanup_(coverage_snapshot_freep) CoverageSnapshot *s = NULL;

		CHECK(coverage_snapshot_parse(good, n, &s) < 0 && !s, "truncated at %zu accepted",
		        n);
	}
	/* something after the end line */
	{
		_cleanup_(coverage_snapshot_freep) CoverageSnapshot *s = NULL;
		_cleanup_free_ char *more = NULL;

		CHECK(asprintf(&more, "%srule x\n", good) > 0, "asprintf");
		CHECK(coverage_snapshot_parse(more, strlen(more), &s) == -EBADMSG,
		        "data after end");
	}
	/* a NUL byte */
	{
		_cleanup_(coverage_snapshot_freep) CoverageSnapshot *s = NULL;
		_cleanup_free_ char *copy = strdup(good);

		copy[20] = '\0';
		CHECK(coverage_snapshot_parse(copy, len, &s) == -EBADMSG, "NUL byte");
	}
	/* an over-long line */
	{
		_cleanup_(coverage_snapshot_freep) CoverageSnapshot *s = NULL;
		_cleanup_free_ char *line = calloc(1, COVERAGE_LINE_MAX + 2), *long_ = NULL;

		memset(line, 'a', COVERAGE_LINE_MAX);
		CHECK(asprintf(&long_, "%.*sreason %s\nend 0\n",
		              (int)(strstr(good, "\nend ") - good + 1), good, line) > 0,
		        "asprintf");
		CHECK(coverage_snapshot_parse(long_, strlen(long_), &s) == -EBADMSG, "long line");
	}
	/* oversized */
	{
		_cleanup_(coverage_snapshot_freep) CoverageSnapshot *s = NULL;
		size_t big = COVERAGE_FILE_MAX + 1;
		_cleanup_free_ char *huge = malloc(big + 1);

		memset(huge, '\n', big);
		huge[big] = '\0';
		CHECK(coverage_snapshot_parse(huge, big, &s) == -EFBIG, "oversized");
	}
	/* too many rules */
	{
		_cleanup_(coverage_snapshot_freep) CoverageSnapshot *s = NULL;
		_cleanup_free_ char *many = NULL;
		_cleanup_fclose_ FILE *f = NULL;
		size_t size = 0;

		f = open_memstream(&many, &size);
		fprintf(f, "keyward-coverage 1\ndigest %064d\nfailmode closed\n", 0);
		for (unsigned i = 0; i <= COVERAGE_RULES_MAX; i++)
			fprintf(f, "rule r%u\nrequire key\n", i);
		fprintf(f, "default\nrequire none\nend %u\n", COVERAGE_RULES_MAX + 1);
		fclose(TAKE_PTR(f));
		CHECK(coverage_snapshot_parse(many, size, &s) == -EBADMSG, "too many rules");
	}
}

static void test_paths(void)
{
	_cleanup_free_ char *a = NULL, *b = NULL;

	CHECK(coverage_state_path("/etc/x/keyward.conf", &a) == 0 &&
	                streq(a, "/etc/x/keyward.conf.coverage"),
	        "%s", strna(a));
	CHECK(coverage_state_path(KEYWARD_DEFAULT_CONFIG, &b) == 0 &&
	                streq(b, KEYWARD_DEFAULT_STATE_DIR "/coverage"),
	        "%s", strna(b));
	CHECK(coverage_state_path("relative", &a) == -EINVAL, "relative");
}

int main(void)
{
	_cleanup_(policy_diagnostics_clear) PolicyDiagnostics diags = {};
	_cleanup_(coverage_snapshot_freep) CoverageSnapshot *view = NULL, *parsed = NULL;
	_cleanup_(policy_freep) Policy *p = NULL;
	_cleanup_free_ char *text = NULL, *again = NULL;
	size_t len = 0, len2 = 0;
	int r;

	r = policy_load_string(fixture, "fixture", &diags, &p);
	for (size_t i = 0; i < diags.n; i++)
		if (diags.items[i].severity == POLICY_SEVERITY_ERROR)
			fprintf(stderr, "fixture:%u: %s\n", diags.items[i].line,
			        diags.items[i].message);
	CHECK(r == 0, "fixture: %s", strerror(-r));
	if (r < 0)
		return 1;
	CHECK(policy_coverage(p, &view) == 0, "policy_coverage");
	CHECK(coverage_snapshot_format(view, &text, &len) == 0, "format");
	CHECK(coverage_snapshot_parse(text, len, &parsed) == 0, "parse:\n%s", text);
	if (!parsed)
		return 1;
	CHECK(streq(parsed->digest, policy_digest(p)), "digest");
	CHECK(parsed->failmode == POLICY_FAILMODE_OPEN, "failmode");
	CHECK(parsed->n_rules == 8, "rules %zu", parsed->n_rules);
	CHECK(coverage_snapshot_format(parsed, &again, &len2) == 0 && len == len2 &&
	                streq(text, again),
	        "round trip:\n%s\n---\n%s", text, strna(again));
	CHECK(strstr(text, "rule no-groups\nrequire deny\nservice su\nnot-group staff\n"),
	        "text:\n%s", text);
	CHECK(strstr(text, "tty /dev/tty[1-6]\ntty \n"), "empty tty pattern:\n%s", text);

	test_agreement(p, parsed);
	test_agreement(p, view);
	test_unknown_groups();
	test_malformed(text);
	test_paths();
	fprintf(stderr, "test-coverage: %u checks, %u failed\n", checks, failures);
	return failures ? 1 : 0;
}
