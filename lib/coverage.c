/* coverage.c: the coverage snapshot (format, strict reader, writer), the rule matching
 * shared by policy_evaluate() and the PAM module's fallback, and remote-login detection. */
#include "coverage.h"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

#include "keyward-config.h"
#include "util.h"

/* ---- matching ---- */

static bool any_in(char *const *have, char *const *want)
{
	for (char *const *i = have; i && *i; i++)
		if (strv_contains(want, *i))
			return true;
	return false;
}

static bool tty_matches(char *const *patterns, const char *tty)
{
	for (char *const *i = patterns; i && *i; i++)
		if (fnmatch(*i, tty, 0) == 0)
			return true;
	return false;
}

static bool uid_in(const CoverageUidRange *l, size_t n, uid_t uid)
{
	for (size_t i = 0; i < n; i++)
		if (l[i].lo <= (uint32_t)uid && (uint32_t)uid <= l[i].hi)
			return true;
	return false;
}

/* Whether the conditions of M hold for REQ (1, 0, or -ENODATA when only an unknown field
 * could tell). With NEGATE, whether any condition of M holds (a `not` set): then 1 means
 * "excluded". */
static int match_set(const CoverageMatch *m, const CoverageRequest *req, bool negate)
{
	const char *tty = strempty(req->tty);
	bool unknown = false;
	bool v[5];
	bool set[5] = {m->strv[COVERAGE_FIELD_USERS], m->strv[COVERAGE_FIELD_GROUPS], !!m->uids,
	        m->strv[COVERAGE_FIELD_SERVICES], m->strv[COVERAGE_FIELD_TTYS]};
	bool is_unknown[5] = {false, req->groups_unknown, req->uid_unknown, false, false};

	v[0] = set[0] && strv_contains(m->strv[COVERAGE_FIELD_USERS], req->user);
	v[1] = set[1] && !req->groups_unknown &&
	       any_in(req->groups, m->strv[COVERAGE_FIELD_GROUPS]);
	v[2] = set[2] && !req->uid_unknown && uid_in(m->uids, m->n_uids, req->uid);
	v[3] = set[3] && strv_contains(m->strv[COVERAGE_FIELD_SERVICES], req->service);
	v[4] = set[4] && tty_matches(m->strv[COVERAGE_FIELD_TTYS], tty);

	for (size_t i = 0; i < ELEMENTSOF(v); i++) {
		if (!set[i])
			continue;
		if (is_unknown[i]) {
			unknown = true;
			continue;
		}
		/* match: one condition that fails decides "no"; not: one that holds, "yes" */
		if (negate ? v[i] : !v[i])
			return negate ? 1 : 0;
	}
	if (unknown)
		return -ENODATA;
	return negate ? 0 : 1;
}

int coverage_rule_matches(const CoverageMatch *match, const CoverageMatch *not_, int remote,
        const CoverageRequest *req)
{
	int m, n;

	if (!match || !not_ || !req)
		return -EINVAL;
	if (remote >= 0 && (bool)remote != req->remote)
		return 0;
	m = match_set(match, req, false);
	if (m == 0)
		return 0;
	n = match_set(not_, req, true);
	if (n == 1)
		return 0;
	if (m < 0 || n < 0)
		return -ENODATA;
	return 1;
}

void coverage_outcome_resolve(const CoverageOutcome *o, bool remote, CoverageDecision *d)
{
	d->require = o->require;
	d->reason = o->require == POLICY_REQUIRE_DENY ? o->reason : NULL;
	d->remote_resolved = false;
	if (!remote || o->require != POLICY_REQUIRE_KEY)
		return;
	d->remote_resolved = true;
	if (o->on_remote_set && o->on_remote == POLICY_ON_REMOTE_NONE) {
		d->require = POLICY_REQUIRE_NONE;
		return;
	}
	if (o->on_remote_set && o->on_remote == POLICY_ON_REMOTE_SSH_KEY) {
		d->require = POLICY_REQUIRE_SSH_KEY;
		return;
	}
	d->require = POLICY_REQUIRE_DENY;
	if (!o->on_remote_set)
		d->reason = "a security key cannot be touched over a remote login, and the rule "
		            "sets no on_remote outcome";
	else
		d->reason = o->reason ?: "the rule refuses remote logins (on_remote = \"deny\")";
}

int coverage_evaluate(const CoverageSnapshot *s, const CoverageRequest *req, CoverageDecision *ret)
{
	const CoverageRule *undecided = NULL; /* first rule that may apply, cannot tell */
	CoverageDecision d = {};
	bool found = false;

	if (!s || !req || !ret || isempty(req->user) || isempty(req->service))
		return -EINVAL;

	for (size_t i = 0; i < s->n_rules && !found; i++) {
		const CoverageRule *r = &s->rules[i];
		int m = coverage_rule_matches(&r->match, &r->not, r->remote, req);

		if (m == 0)
			continue;
		if (m < 0 && m != -ENODATA)
			return m;
		coverage_outcome_resolve(&r->outcome, req->remote, &d);
		d.rule_name = r->name;
		if (m < 0 && !undecided)
			undecided = r;
		/* A rule that may apply but would not cover the login changes nothing unless a
		 * later outcome covers it: keep looking. */
		found = m > 0 || d.require != POLICY_REQUIRE_NONE;
	}
	if (!found) {
		coverage_outcome_resolve(&s->def, req->remote, &d);
		d.rule_name = "default";
		d.is_default = true;
	}
	if (undecided && d.require != POLICY_REQUIRE_NONE)
		/* Whether the login is covered, and how, depends on what could not be looked
		 * up: it counts as covered (fail closed). */
		d = (CoverageDecision){
		        .require = POLICY_REQUIRE_KEY,
		        .rule_name = undecided->name,
		        .undecidable = true,
		};
	*ret = d;
	return 0;
}

/* ---- the snapshot ---- */

static const char *const field_keys[_COVERAGE_FIELD_MAX] = {
        [COVERAGE_FIELD_USERS] = "user",
        [COVERAGE_FIELD_GROUPS] = "group",
        [COVERAGE_FIELD_SERVICES] = "service",
        [COVERAGE_FIELD_TTYS] = "tty",
};

static void match_done(CoverageMatch *m)
{
	for (size_t f = 0; f < _COVERAGE_FIELD_MAX; f++)
		m->strv[f] = strv_free(m->strv[f]);
	free(m->uids);
	m->uids = NULL;
}

CoverageSnapshot *coverage_snapshot_free(CoverageSnapshot *s)
{
	if (!s)
		return NULL;
	if (!s->borrowed) {
		for (size_t i = 0; i < s->n_rules; i++) {
			free(s->rules[i].name);
			free(s->rules[i].outcome.reason);
			match_done(&s->rules[i].match);
			match_done(&s->rules[i].not );
		}
		free(s->def.reason);
	}
	free(s->rules);
	free(s);
	return NULL;
}

/* A value the reader takes back: at most COVERAGE_VALUE_MAX bytes, no control characters,
 * empty only where EMPTY_OK. */
static bool valid_value(const char *v, bool empty_ok)
{
	size_t n = 0;

	if (!v || (!empty_ok && !*v))
		return false;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++, n++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return n <= COVERAGE_VALUE_MAX;
}

static int format_outcome(FILE *f, const CoverageOutcome *o)
{
	const char *require = policy_require_to_string(o->require);

	if (!require || o->require == POLICY_REQUIRE_SSH_KEY)
		return -EINVAL;
	fprintf(f, "require %s\n", require);
	if (o->on_remote_set) {
		const char *on_remote = policy_on_remote_to_string(o->on_remote);

		if (!on_remote)
			return -EINVAL;
		fprintf(f, "on-remote %s\n", on_remote);
	}
	if (!isempty(o->reason)) { /* an empty reason is no reason */
		if (!valid_value(o->reason, false))
			return -EINVAL;
		fprintf(f, "reason %s\n", o->reason);
	}
	return 0;
}

static int format_match(FILE *f, const CoverageMatch *m, const char *prefix)
{
	for (size_t k = 0; k < _COVERAGE_FIELD_MAX; k++) {
		size_t n = 0;

		for (char *const *i = m->strv[k]; i && *i; i++, n++) {
			if (!valid_value(*i, k == COVERAGE_FIELD_TTYS) || n >= COVERAGE_LIST_MAX)
				return -EINVAL;
			fprintf(f, "%s%s %s\n", prefix, field_keys[k], *i);
		}
		if (m->strv[k] && n == 0)
			return -EINVAL; /* an empty list cannot be written: it would vanish */
	}
	if (m->uids && (m->n_uids == 0 || m->n_uids > COVERAGE_LIST_MAX))
		return -EINVAL;
	for (size_t i = 0; m->uids && i < m->n_uids; i++) {
		if (m->uids[i].lo > m->uids[i].hi)
			return -EINVAL;
		fprintf(f, "%suid %" PRIu32 "-%" PRIu32 "\n", prefix, m->uids[i].lo, m->uids[i].hi);
	}
	return 0;
}

int coverage_snapshot_format(const CoverageSnapshot *s, char **ret, size_t *ret_len)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	const char *failmode;
	size_t size = 0;
	int r;

	if (!s || !ret)
		return -EINVAL;
	failmode = policy_failmode_to_string(s->failmode);
	if (!failmode || strlen(s->digest) != 64 || strspn(s->digest, "0123456789abcdef") != 64 ||
	        s->n_rules > COVERAGE_RULES_MAX)
		return -EINVAL;
	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	fprintf(f, "keyward-coverage %d\ndigest %s\nfailmode %s\n", COVERAGE_FORMAT_VERSION,
	        s->digest, failmode);
	for (size_t i = 0; i < s->n_rules; i++) {
		const CoverageRule *rule = &s->rules[i];

		if (!valid_value(rule->name, false))
			return -EINVAL;
		fprintf(f, "rule %s\n", rule->name);
		r = format_outcome(f, &rule->outcome);
		if (r < 0)
			return r;
		if (rule->remote >= 0)
			fprintf(f, "remote %s\n", rule->remote ? "yes" : "no");
		r = format_match(f, &rule->match, "");
		if (r < 0)
			return r;
		r = format_match(f, &rule->not, "not-");
		if (r < 0)
			return r;
	}
	fprintf(f, "default\n");
	r = format_outcome(f, &s->def);
	if (r < 0)
		return r;
	fprintf(f, "end %zu\n", s->n_rules);
	if (fflush(f) != 0 || ferror(f))
		return -ENOMEM;
	fclose(TAKE_PTR(f));
	if (size > COVERAGE_FILE_MAX)
		return -EFBIG;
	if (ret_len)
		*ret_len = size;
	*ret = TAKE_PTR(buf);
	return 0;
}

int coverage_snapshot_write(const CoverageSnapshot *s, const char *path)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r;

	if (!path)
		return -EINVAL;
	r = coverage_snapshot_format(s, &text, &len);
	if (r < 0)
		return r;
	return write_file_atomic(path, text, len, 0644);
}

/* ---- the reader ---- */

typedef enum Section {
	SECTION_HEADER,
	SECTION_RULE,
	SECTION_DEFAULT,
	SECTION_END,
} Section;

static int parse_u32_strict(const char *s, size_t n, uint32_t *ret)
{
	uint64_t v = 0;

	if (n == 0 || n > 10 || (n > 1 && s[0] == '0'))
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EBADMSG;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return -EBADMSG;
	*ret = (uint32_t)v;
	return 0;
}

static int list_append(char ***l, const char *v)
{
	if (strv_length(*l) >= COVERAGE_LIST_MAX)
		return -EBADMSG;
	return strv_extend(l, v);
}

static int uid_append(CoverageMatch *m, const char *v)
{
	const char *dash = strchr(v, '-');
	CoverageUidRange range, *a;

	if (!dash || parse_u32_strict(v, (size_t)(dash - v), &range.lo) < 0 ||
	        parse_u32_strict(dash + 1, strlen(dash + 1), &range.hi) < 0 ||
	        range.lo > range.hi || m->n_uids >= COVERAGE_LIST_MAX)
		return -EBADMSG;
	a = reallocarray(m->uids, m->n_uids + 1, sizeof(CoverageUidRange));
	if (!a)
		return -ENOMEM;
	m->uids = a;
	m->uids[m->n_uids++] = range;
	return 0;
}

/* One attribute line of a rule (RULE non-NULL) or of the default outcome. */
static int parse_attribute(
        const char *key, const char *value, CoverageOutcome *o, CoverageRule *rule)
{
	bool negate = strneq(key, "not-", 4);
	const char *field = negate ? key + 4 : key;

	if (streq(key, "on-remote")) {
		if (o->on_remote_set)
			return -EBADMSG;
		o->on_remote = policy_on_remote_from_string(value);
		if (o->on_remote < 0)
			return -EBADMSG;
		o->on_remote_set = true;
		return 0;
	}
	if (streq(key, "reason")) {
		if (o->reason || !*value)
			return -EBADMSG;
		o->reason = strdup(value);
		return o->reason ? 0 : -ENOMEM;
	}
	if (!rule)
		return -EBADMSG;
	if (streq(key, "remote")) {
		if (rule->remote >= 0 || (!streq(value, "yes") && !streq(value, "no")))
			return -EBADMSG;
		rule->remote = streq(value, "yes");
		return 0;
	}
	if (streq(field, "uid"))
		return uid_append(negate ? &rule->not : &rule->match, value);
	for (size_t k = 0; k < _COVERAGE_FIELD_MAX; k++)
		if (streq(field, field_keys[k])) {
			if (!*value && k != COVERAGE_FIELD_TTYS)
				return -EBADMSG;
			return list_append(
			        negate ? &rule->not .strv[k] : &rule->match.strv[k], value);
		}
	return -EBADMSG;
}

int coverage_snapshot_parse(const char *text, size_t len, CoverageSnapshot **ret)
{
	_cleanup_(coverage_snapshot_freep) CoverageSnapshot *s = NULL;
	char line[COVERAGE_LINE_MAX + 1];
	CoverageOutcome *outcome = NULL; /* the block being read */
	CoverageRule *rule = NULL;
	Section section = SECTION_HEADER;
	bool want_require = false;
	unsigned header = 0;
	const char *p = text;
	int r;

	if (!text || !ret)
		return -EINVAL;
	if (len > COVERAGE_FILE_MAX)
		return -EFBIG;
	if (len == 0 || strnlen(text, len) != len || text[len - 1] != '\n')
		return -EBADMSG;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;

	while (p < text + len) {
		const char *nl = memchr(p, '\n', (size_t)(text + len - p));
		size_t n = (size_t)(nl - p);
		char *key, *value;

		if (n > COVERAGE_LINE_MAX || section == SECTION_END)
			return -EBADMSG;
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl + 1;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
				return -EBADMSG;
		key = line;
		value = strchr(line, ' ');
		if (value)
			*value++ = '\0';

		if (section == SECTION_HEADER) {
			if (header == 0 && streq(key, "keyward-coverage") && value &&
			        streq(value, "1")) /* COVERAGE_FORMAT_VERSION */
				header++;
			else if (header == 1 && streq(key, "digest") && value &&
			         strlen(value) == 64 && strspn(value, "0123456789abcdef") == 64) {
				memcpy(s->digest, value, 65);
				header++;
			} else if (header == 2 && streq(key, "failmode") && value) {
				s->failmode = policy_failmode_from_string(value);
				if (s->failmode < 0)
					return -EBADMSG;
				header++;
				section = SECTION_RULE;
			} else
				return -EBADMSG;
			continue;
		}
		if (want_require) {
			if (!streq(key, "require") || !value)
				return -EBADMSG;
			outcome->require = policy_require_from_string(value);
			/* ssh-key is what a remote `key` outcome resolves to, never an outcome */
			if (outcome->require < 0 || outcome->require == POLICY_REQUIRE_SSH_KEY)
				return -EBADMSG;
			want_require = false;
			continue;
		}
		if (streq(key, "rule") && section == SECTION_RULE) {
			CoverageRule *rules;

			if (!valid_value(value, false) || s->n_rules >= COVERAGE_RULES_MAX)
				return -EBADMSG;
			rules = reallocarray(s->rules, s->n_rules + 1, sizeof(CoverageRule));
			if (!rules)
				return -ENOMEM;
			s->rules = rules;
			rule = &s->rules[s->n_rules++];
			*rule = (CoverageRule){.remote = -1};
			rule->name = strdup(value);
			if (!rule->name)
				return -ENOMEM;
			outcome = &rule->outcome;
			want_require = true;
		} else if (streq(key, "default") && !value && section == SECTION_RULE) {
			section = SECTION_DEFAULT;
			rule = NULL;
			outcome = &s->def;
			want_require = true;
		} else if (streq(key, "end") && value && section == SECTION_DEFAULT) {
			uint32_t n_rules;

			if (parse_u32_strict(value, strlen(value), &n_rules) < 0 ||
			        n_rules != s->n_rules)
				return -EBADMSG;
			section = SECTION_END;
		} else if (outcome && value) {
			r = parse_attribute(key, value, outcome, rule);
			if (r < 0)
				return r;
		} else
			return -EBADMSG;
	}
	if (section != SECTION_END)
		return -EBADMSG;
	*ret = TAKE_PTR(s);
	return 0;
}

int coverage_snapshot_load(const char *path, CoverageSnapshot **ret, const char **ret_problem)
{
	_cleanup_free_ char *text = NULL;
	const char *problem = NULL;
	size_t len = 0;
	int r;

	r = read_full_file_safe(path, SAFE_FILE_DEFAULT, COVERAGE_FILE_MAX, &text, &len, &problem);
	if (r == -EFBIG)
		problem = "is too large";
	if (r >= 0) {
		r = coverage_snapshot_parse(text, len, ret);
		if (r == -EBADMSG)
			problem = "is malformed";
		else if (r == -EFBIG)
			problem = "is too large";
	}
	if (r < 0 && ret_problem)
		*ret_problem = problem;
	return r;
}

int coverage_state_path(const char *config_path, char **ret)
{
	char *p;

	if (isempty(config_path) || config_path[0] != '/' || !ret)
		return -EINVAL;
	if (streq(config_path, KEYWARD_DEFAULT_CONFIG))
		p = strdup(KEYWARD_DEFAULT_STATE_DIR "/" COVERAGE_FILE_NAME);
	else if (asprintf(&p, "%s.coverage", config_path) < 0)
		p = NULL;
	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

/* ---- remote detection ---- */

static bool ipv4_is_loopback(const struct in_addr *a)
{
	return (ntohl(a->s_addr) >> 24) == 127;
}

/* An address or name with no port or brackets: local only when it is loopback. */
static bool host_is_local(const char *h)
{
	static const char *const local_names[] = {"localhost", "localhost.",
	        "localhost.localdomain", "ip6-localhost", "ip6-loopback", NULL};
	char buf[INET6_ADDRSTRLEN + 1];
	struct in6_addr a6;
	struct in_addr a4;
	const char *pct;
	size_t n;

	for (const char *const *l = local_names; *l; l++)
		if (strcasecmp(h, *l) == 0)
			return true;
	if (inet_pton(AF_INET, h, &a4) == 1)
		return ipv4_is_loopback(&a4);

	/* IPv6, perhaps with a zone ("::1%lo"). */
	pct = strchr(h, '%');
	n = pct ? (size_t)(pct - h) : strlen(h);
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, h, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET6, buf, &a6) != 1)
		return false;
	if (IN6_IS_ADDR_LOOPBACK(&a6))
		return true;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		memcpy(&a4.s_addr, &a6.s6_addr[12], 4);
		return ipv4_is_loopback(&a4);
	}
	return false;
}

static bool all_digits(const char *s)
{
	return *s && strspn(s, "0123456789") == strlen(s);
}

/* Strips "[addr]:port", "[addr]" and "a.b.c.d:port" / "name:port" into BUF. */
static bool host_is_local_with_port(const char *h)
{
	char buf[256];
	const char *colon;
	size_t n = strlen(h);

	if (n == 0 || n >= sizeof(buf))
		return false;
	if (h[0] == '[') {
		const char *close = strchr(h, ']');

		if (!close || (close[1] && !(close[1] == ':' && all_digits(close + 2))))
			return false;
		n = (size_t)(close - h - 1);
		memcpy(buf, h + 1, n);
		buf[n] = '\0';
		return buf[0] && host_is_local(buf);
	}
	colon = strchr(h, ':');
	if (colon && !strchr(colon + 1, ':')) {
		/* exactly one colon: host:port (IPv6 always has two or more) */
		if (!all_digits(colon + 1))
			return false;
		n = (size_t)(colon - h);
		memcpy(buf, h, n);
		buf[n] = '\0';
		return buf[0] && host_is_local(buf);
	}
	return host_is_local(h);
}

bool coverage_is_remote(const char *rhost, const char *tty)
{
	if (!isempty(rhost))
		return !host_is_local_with_port(rhost);

	/* No rhost: the tty alone decides only for an X display on another host
	 * ("host:0", "10.0.0.5:0.0"); ":0" is the local display. Anything else, such as
	 * /dev/pts/N, is not evidence either way (callers OR in logind's Remote). */
	if (!isempty(tty) && tty[0] != '/' && tty[0] != ':') {
		const char *colon = strrchr(tty, ':');
		char host[256];
		size_t n;

		if (colon && colon != tty) {
			const char *disp = colon + 1;
			const char *dot = strchr(disp, '.');
			bool display =
			        dot ? (dot > disp &&
			                      strspn(disp, "0123456789") == (size_t)(dot - disp) &&
			                      all_digits(dot + 1))
			            : all_digits(disp);

			n = (size_t)(colon - tty);
			if (display && n >= sizeof(host))
				return true; /* no local name is that long */
			if (display) {
				memcpy(host, tty, n);
				host[n] = '\0';
				if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
					host[n - 1] = '\0';
					return !host_is_local(host + 1);
				}
				return !host_is_local(host);
			}
		}
	}
	return false;
}
