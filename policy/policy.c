/* policy.c: the keyward policy engine — parses keyward.conf (libconfig) into a Policy,
 * validates it with file:line diagnostics, and evaluates requests. Pure: no logging. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <ctype.h>
#include <fnmatch.h>
#include <libconfig.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>

#include "coverage.h"
#include "keyward-config.h"
#include "policy-internal.h"
#include "util.h"

#define POLICY_LINES_MAX     65535 /* libconfig keeps line numbers in an unsigned short */
#define POLICY_RULES_MAX     1024
#define POLICY_LIST_MAX      256
#define POLICY_ANCHORS_MAX   16
#define POLICY_STRING_MAX    1024
#define POLICY_NAME_MAX      64
#define POLICY_REASON_MAX    256
#define POLICY_SHADOW_BUDGET (UINT64_C(50) * 1000 * 1000) /* comparisons, reachability check */

/* ---- enum tables ---- */

static const char *const attestation_table[_POLICY_ATTESTATION_MAX] = {
        [POLICY_ATTESTATION_NONE] = "none",
        [POLICY_ATTESTATION_VERIFIED] = "verified",
};
static const char *const counter_table[_POLICY_COUNTER_MAX] = {
        [POLICY_COUNTER_STRICT] = "strict",
        [POLICY_COUNTER_ALLOW_ZERO] = "allow-zero",
};
static const char *const cached_elevation_table[_POLICY_CACHED_ELEVATION_MAX] = {
        [POLICY_CACHED_ELEVATION_SAME_KEY] = "same-key",
        [POLICY_CACHED_ELEVATION_TOUCH] = "touch",
};
static const char *const removal_table[_POLICY_REMOVAL_MAX] = {
        [POLICY_REMOVAL_NONE] = "none",
        [POLICY_REMOVAL_LOCK] = "lock",
        [POLICY_REMOVAL_TERMINATE] = "terminate",
        [POLICY_REMOVAL_END_ELEVATION] = "end-elevation",
};
static const char *const lock_failure_table[_POLICY_LOCK_FAILURE_MAX] = {
        [POLICY_LOCK_FAILURE_TERMINATE] = "terminate",
        [POLICY_LOCK_FAILURE_ALERT] = "alert",
};
static const char *const audit_failure_table[_POLICY_AUDIT_FAILURE_MAX] = {
        [POLICY_AUDIT_FAILURE_DENY] = "deny",
        [POLICY_AUDIT_FAILURE_ALERT] = "alert",
};
static const char *const audit_space_table[_POLICY_AUDIT_SPACE_MAX] = {
        [POLICY_AUDIT_SPACE_IGNORE] = "ignore",
        [POLICY_AUDIT_SPACE_ALERT] = "alert",
        [POLICY_AUDIT_SPACE_ROTATE] = "rotate",
        [POLICY_AUDIT_SPACE_DENY] = "deny",
};

DEFINE_STRING_TABLE_LOOKUP(policy_audit_space_action, PolicyAuditSpaceAction, audit_space_table)
DEFINE_STRING_TABLE_LOOKUP(policy_attestation, PolicyAttestation, attestation_table)
DEFINE_STRING_TABLE_LOOKUP(policy_counter, PolicyCounter, counter_table)
DEFINE_STRING_TABLE_LOOKUP(policy_cached_elevation, PolicyCachedElevation, cached_elevation_table)
DEFINE_STRING_TABLE_LOOKUP(policy_removal, PolicyRemoval, removal_table)
DEFINE_STRING_TABLE_LOOKUP(policy_lock_failure, PolicyLockFailure, lock_failure_table)
DEFINE_STRING_TABLE_LOOKUP(policy_audit_failure, PolicyAuditFailure, audit_failure_table)

static const char *const cred_source_table[_POLICY_CRED_SOURCE_MAX] = {
        [POLICY_CRED_SOURCE_LOCAL] = "local",
        [POLICY_CRED_SOURCE_DIRECTORY] = "directory",
        [POLICY_CRED_SOURCE_BOTH] = "both",
};
static const char *const directory_bind_table[_POLICY_DIRECTORY_BIND_MAX] = {
        [POLICY_DIRECTORY_BIND_NONE] = "none",
        [POLICY_DIRECTORY_BIND_SIMPLE] = "simple",
        [POLICY_DIRECTORY_BIND_SASL_EXTERNAL] = "sasl-external",
};
DEFINE_STRING_TABLE_LOOKUP(policy_cred_source, PolicyCredSource, cred_source_table)
const char *policy_directory_bind_to_string(PolicyDirectoryBind b)
{
	return string_table_lookup_to_string(
	        directory_bind_table, ELEMENTSOF(directory_bind_table), (int)b);
}

/* ---- the keys ---- */

static const char *const top_keys[] = {"settings", "rules", "default", NULL};
static const char *const settings_keys[] = {"rp_id", "timeout", "failmode", "audit_failure",
        "credentials_dir", "state_dir", "runtime_dir", "audit_log", "admin_group", "cue",
        "max_credentials_per_user", "max_bindings", "audit", "breakglass", "directory", NULL};
static const char *const directory_keys[] = {"uri", "base_dn", "user_filter", "bind", "bind_dn",
        "secret_file", "tls_ca_file", "tls_cert_file", "tls_key_file", "attribute", "timeout",
        "refresh", "cache_max_age", "writable", NULL};
static const char *const breakglass_keys[] = {"services", "codes", "validity", "argon2",
        "max_attempts", "window", "two_person", "approval_validity", "require_enroll", NULL};
static const char *const argon2_keys[] = {"opslimit", "memlimit", NULL};
static const char *const audit_keys[] = {"rotate_size", "rotate_age", "keep_files", "keep_age",
        "keep_min_files", "seal_every", "space_left", "space_left_action", "admin_space_left",
        "admin_space_left_action", "disk_full_action", NULL};
static const char *const match_keys[] = {
        "users", "groups", "uids", "services", "ttys", "remote", "not", NULL};
static const char *const not_keys[] = {"users", "groups", "uids", "services", "ttys", NULL};
static const char *const removal_keys[] = {
        "action", "grace", "lock_verify", "on_lock_failure", NULL};
static const char *const lockout_keys[] = {"max_failures", "window", "unlock_after", NULL};
/* Outcome keys, shared by rules and `default`; rules also take name and match. */
static const char *const outcome_keys[] = {"require", "reason", "on_remote", "user_verification",
        "user_presence", "aaguid_allow", "aaguid_deny", "attestation", "trust_anchors", "counter",
        "cached_elevation", "credentials", "removal", "lockout", "remote_lifetime", "breakglass",
        NULL};
static const char *const rule_keys[] = {"name", "match", "require", "reason", "on_remote",
        "user_verification", "user_presence", "aaguid_allow", "aaguid_deny", "attestation",
        "trust_anchors", "counter", "cached_elevation", "credentials", "removal", "lockout",
        "remote_lifetime", "breakglass", NULL};
/* Outcome keys that only mean something when require = "key". */
static const char *const key_only_keys[] = {"on_remote", "user_verification", "user_presence",
        "aaguid_allow", "aaguid_deny", "attestation", "trust_anchors", "counter",
        "cached_elevation", "credentials", "removal", "lockout", "remote_lifetime", "breakglass",
        NULL};

const char *const policy_known_keys[] = {"settings", "rules", "default",
        /* settings */
        "rp_id", "timeout", "failmode", "audit_failure", "credentials_dir", "state_dir",
        "runtime_dir", "audit_log", "admin_group", "cue", "max_credentials_per_user",
        "max_bindings", "audit", "directory",
        /* settings.directory */
        "uri", "base_dn", "user_filter", "bind", "bind_dn", "secret_file", "tls_ca_file",
        "tls_cert_file", "tls_key_file", "attribute", "refresh", "cache_max_age", "writable",
        /* settings.audit */
        "rotate_size", "rotate_age", "keep_files", "keep_age", "keep_min_files", "seal_every",
        "space_left", "space_left_action", "admin_space_left", "admin_space_left_action",
        "disk_full_action",
        /* settings.breakglass (and the outcome's breakglass = true|false) */
        "breakglass", "codes", "validity", "argon2", "opslimit", "memlimit", "max_attempts",
        "two_person", "approval_validity", "require_enroll",
        /* rules */
        "name", "match", "users", "groups", "uids", "services", "ttys", "remote", "not",
        /* outcome */
        "require", "reason", "on_remote", "user_verification", "user_presence", "aaguid_allow",
        "aaguid_deny", "attestation", "trust_anchors", "counter", "cached_elevation", "credentials",
        "removal", "action", "grace", "lock_verify", "on_lock_failure", "lockout", "max_failures",
        "window", "unlock_after", "remote_lifetime", NULL};

/* ---- diagnostics ---- */

void policy_diagnostics_clear(PolicyDiagnostics *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++) {
		free(d->items[i].file);
		free(d->items[i].message);
	}
	free(d->items);
	d->items = NULL;
	d->n = 0;
}

size_t policy_diagnostics_errors(const PolicyDiagnostics *d)
{
	size_t n = 0;

	if (!d)
		return 0;
	for (size_t i = 0; i < d->n; i++)
		if (d->items[i].severity == POLICY_SEVERITY_ERROR)
			n++;
	return n;
}

/* An integer literal whose value libconfig cannot hold: it wraps a number without an 'L'
 * suffix to 32 bits (Debian's 1.5) and saturates one with it, so the value a getter sees
 * is not the one written. Points into the policy text. */
typedef struct BadInteger {
	unsigned line; /* of the setting's name, as config_setting_source_line() has it */
	const char *name;
	size_t name_len;
	const char *literal;
	size_t literal_len;
	bool reported;
} BadInteger;

typedef struct Ctx {
	const char *file;
	PolicyDiagnostics *diags;
	size_t n_errors;
	bool oom;
	unsigned admin_group_line;
	BadInteger *bad_integers;
	size_t n_bad_integers;
} Ctx;

_printf_(4, 5) static void diag(Ctx *c, PolicySeverity sev, unsigned line, const char *fmt, ...)
{
	PolicyDiagnostic *items;
	char *msg = NULL, *file = NULL;
	va_list ap;
	int r;

	if (sev == POLICY_SEVERITY_ERROR)
		c->n_errors++;
	if (!c->diags)
		return;
	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0) {
		c->oom = true;
		return;
	}
	/* Messages quote the file's text: no control characters reach a terminal. */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	file = strdup(c->file);
	items = reallocarray(c->diags->items, c->diags->n + 1, sizeof(PolicyDiagnostic));
	if (!file || !items) {
		free(msg);
		free(file);
		if (items)
			c->diags->items = items;
		c->oom = true;
		return;
	}
	c->diags->items = items;
	items[c->diags->n++] = (PolicyDiagnostic){
	        .severity = sev,
	        .file = file,
	        .line = line,
	        .message = msg,
	};
}

#define error(c, line, ...)   diag(c, POLICY_SEVERITY_ERROR, line, __VA_ARGS__)
#define warning(c, line, ...) diag(c, POLICY_SEVERITY_WARNING, line, __VA_ARGS__)

/* ---- freeing ---- */

static void match_done(MatchSet *m)
{
	for (size_t i = 0; i < _FIELD_STRV_MAX; i++)
		strv_free(m->strv[i]);
	free(m->uids);
}

static void outcome_done(PolicyOutcome *o)
{
	free(o->reason);
	free(o->aaguid_allow);
	free(o->aaguid_deny);
	strv_free(o->trust_anchors);
}

Policy *policy_free(Policy *p)
{
	if (!p)
		return NULL;
	for (size_t i = 0; i < p->n_rules; i++) {
		free(p->rules[i].name);
		match_done(&p->rules[i].match);
		match_done(&p->rules[i].not );
		outcome_done(&p->rules[i].outcome);
	}
	free(p->rules);
	outcome_done(&p->def);
	strv_free(p->settings.directory.uris);
	free(p->settings.directory.base_dn);
	free(p->settings.directory.user_filter);
	free(p->settings.directory.bind_dn);
	free(p->settings.directory.secret_file);
	free(p->settings.directory.tls_ca_file);
	free(p->settings.directory.tls_cert_file);
	free(p->settings.directory.tls_key_file);
	free(p->settings.directory.attribute);
	free(p->settings.rp_id);
	free(p->settings.credentials_dir);
	free(p->settings.state_dir);
	free(p->settings.runtime_dir);
	free(p->settings.audit_log);
	free(p->settings.admin_group);
	free(p->settings.cue);
	strv_free(p->settings.breakglass.services);
	free(p->path);
	free(p);
	return NULL;
}

/* ---- typed getters ---- */

static unsigned line_of(const config_setting_t *s)
{
	return config_setting_source_line(s);
}

static const char *type_name(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	default:
		return "an unknown type";
	}
}

static char *join_keys(const char *const *keys)
{
	size_t n = 1;
	char *s, *p;

	for (const char *const *k = keys; *k; k++)
		n += strlen(*k) + 2;
	s = malloc(n);
	if (!s)
		return NULL;
	p = s;
	*p = '\0';
	for (const char *const *k = keys; *k; k++)
		p = stpcpy(stpcpy(p, k == keys ? "" : ", "), *k);
	return s;
}

static bool key_in(const char *const *keys, const char *k)
{
	for (const char *const *i = keys; *i; i++)
		if (streq(*i, k))
			return true;
	return false;
}

/* Errors for members of GROUP not in KEYS. WHAT names the group in messages. */
static void check_keys(
        Ctx *c, const config_setting_t *group, const char *const *keys, const char *what)
{
	int n = config_setting_length(group);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s);

		if (name && !key_in(keys, name)) {
			_cleanup_free_ char *expected = join_keys(keys);

			error(c, line_of(s), "unknown key '%s' in %s (expected one of: %s)", name,
			        what, strna(expected));
		}
	}
}

static bool expect_group(Ctx *c, const config_setting_t *s, const char *what)
{
	if (config_setting_type(s) == CONFIG_TYPE_GROUP)
		return true;
	error(c, line_of(s), "%s must be a group { ... }, not %s", what, type_name(s));
	return false;
}

static bool printable(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* A string setting, copied. MAX bounds its length. */
static int get_string(Ctx *c, const config_setting_t *s, size_t max, char **ret)
{
	const char *v;
	char *copy;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		error(c, line_of(s), "'%s' must be a string, not %s", config_setting_name(s),
		        type_name(s));
		return -EINVAL;
	}
	v = config_setting_get_string(s);
	if (strlen(v) > max) {
		error(c, line_of(s), "'%s' is longer than %zu characters", config_setting_name(s),
		        max);
		return -EINVAL;
	}
	if (!printable(v)) {
		error(c, line_of(s), "'%s' contains control characters", config_setting_name(s));
		return -EINVAL;
	}
	copy = strdup(v);
	if (!copy) {
		c->oom = true;
		return -ENOMEM;
	}
	*ret = copy;
	return 0;
}

/* The out-of-range literal written for setting S, if any (see scan_integers()). */
static BadInteger *bad_integer_of(Ctx *c, const config_setting_t *s)
{
	const char *name = config_setting_name(s);

	if (!name)
		return NULL;
	for (size_t i = 0; i < c->n_bad_integers; i++) {
		BadInteger *b = &c->bad_integers[i];

		if (b->line == line_of(s) && b->name_len == strlen(name) &&
		        strneq(b->name, name, b->name_len))
			return b;
	}
	return NULL;
}

#define LITERAL_SHOWN_MAX 32 /* characters of an out-of-range literal quoted back */

static int literal_shown(size_t len)
{
	return (int)(len < LITERAL_SHOWN_MAX ? len : LITERAL_SHOWN_MAX);
}

static int get_uint(Ctx *c, const config_setting_t *s, uint32_t lo, uint32_t hi, const char *unit,
        uint32_t *ret)
{
	BadInteger *bad;
	long long v;

	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	        config_setting_type(s) != CONFIG_TYPE_INT64) {
		error(c, line_of(s), "'%s' must be an integer (%s), not %s", config_setting_name(s),
		        unit, type_name(s));
		return -EINVAL;
	}
	/* libconfig's value is not the one written: judge the text. */
	bad = bad_integer_of(c, s);
	if (bad) {
		bad->reported = true;
		error(c, line_of(s), "'%s' is %.*s%s, expected %" PRIu32 "..%" PRIu32 " (%s)",
		        config_setting_name(s), literal_shown(bad->literal_len), bad->literal,
		        bad->literal_len > LITERAL_SHOWN_MAX ? "..." : "", lo, hi, unit);
		return -ERANGE;
	}
	v = config_setting_get_int64(s);
	if (v < (long long)lo || v > (long long)hi) {
		error(c, line_of(s), "'%s' is %lld, expected %" PRIu32 "..%" PRIu32 " (%s)",
		        config_setting_name(s), v, lo, hi, unit);
		return -ERANGE;
	}
	*ret = (uint32_t)v;
	return 0;
}

static int get_bool(Ctx *c, const config_setting_t *s, bool *ret)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		error(c, line_of(s), "'%s' must be true or false, not %s", config_setting_name(s),
		        type_name(s));
		return -EINVAL;
	}
	*ret = config_setting_get_bool(s);
	return 0;
}

/* An enumerated string value, looked up in TABLE. */
static int get_enum(Ctx *c, const config_setting_t *s, const char *const *table, size_t n, int *ret)
{
	_cleanup_free_ char *expected = NULL;
	const char *keys[8] = {};
	const char *v = NULL;
	int r = -EINVAL;

	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		v = config_setting_get_string(s);
		r = string_table_lookup_from_string(table, n, v);
		if (r >= 0) {
			*ret = r;
			return 0;
		}
	}
	for (size_t i = 0; i < n && i < ELEMENTSOF(keys) - 1; i++)
		keys[i] = table[i];
	expected = join_keys(keys);
	if (!v)
		error(c, line_of(s), "'%s' must be a string (one of: %s), not %s",
		        config_setting_name(s), strna(expected), type_name(s));
	else
		error(c, line_of(s), "'%s' is \"%.64s\", expected one of: %s",
		        config_setting_name(s), v, strna(expected));
	return r;
}

typedef bool (*ItemValidator)(const char *s);

/* A string or a list/array of strings (at most POLICY_LIST_MAX, none empty unless
 * ALLOW_EMPTY_ITEM). VALID checks each item; WHAT_ITEM names one in messages. */
static int get_strv(Ctx *c, const config_setting_t *s, ItemValidator valid, const char *what_item,
        bool allow_empty_item, char ***ret)
{
	_cleanup_strv_free_ char **l = NULL;
	const char *name = config_setting_name(s);
	int type = config_setting_type(s), n;
	bool bad = false;

	if (type == CONFIG_TYPE_STRING)
		n = 1;
	else if (type == CONFIG_TYPE_ARRAY || type == CONFIG_TYPE_LIST)
		n = config_setting_length(s);
	else {
		error(c, line_of(s), "'%s' must be a string or a list of strings, not %s", name,
		        type_name(s));
		return -EINVAL;
	}
	if (n == 0) {
		error(c, line_of(s), "'%s' is an empty list; remove it or name at least one entry",
		        name);
		return -EINVAL;
	}
	if (n > POLICY_LIST_MAX) {
		error(c, line_of(s), "'%s' has %d entries, at most %d are allowed", name, n,
		        POLICY_LIST_MAX);
		return -E2BIG;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e =
		        type == CONFIG_TYPE_STRING ? s : config_setting_get_elem(s, (unsigned)i);
		const char *v;

		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			error(c, line_of(e), "'%s' must list strings, entry %d is %s", name, i + 1,
			        type_name(e));
			bad = true;
			continue;
		}
		v = config_setting_get_string(e);
		if ((!allow_empty_item && isempty(v)) || strlen(v) > POLICY_STRING_MAX ||
		        !printable(v) || (!isempty(v) && valid && !valid(v))) {
			error(c, line_of(e), "'%s' entry \"%.64s\" is not a valid %s", name, v,
			        what_item);
			bad = true;
			continue;
		}
		if (strv_contains(l, v)) {
			warning(c, line_of(e), "'%s' lists \"%.64s\" twice", name, v);
			continue;
		}
		if (strv_extend(&l, v) < 0) {
			c->oom = true;
			return -ENOMEM;
		}
	}
	if (bad)
		return -EINVAL;
	*ret = TAKE_PTR(l);
	return 0;
}

static bool valid_service(const char *s)
{
	if (isempty(s) || strlen(s) > POLICY_NAME_MAX || s[0] == '.')
		return false;
	for (const char *p = s; *p; p++)
		if (!(isalnum((unsigned char)*p) || strchr("._-+", *p)))
			return false;
	return true;
}

static bool valid_rule_name(const char *s)
{
	return valid_service(s) && !strchr(s, '+');
}

static bool valid_tty_pattern(const char *s)
{
	return strlen(s) <= POLICY_NAME_MAX;
}

static bool valid_path(const char *s)
{
	if (s[0] != '/' || strlen(s) >= PATH_MAX)
		return false;
	/* No "." or ".." components: paths in the policy say what they mean. */
	for (const char *p = s; (p = strchr(p, '/')); p++)
		if ((p[1] == '.' && (p[2] == '/' || p[2] == '\0')) ||
		        (p[1] == '.' && p[2] == '.' && (p[3] == '/' || p[3] == '\0')))
			return false;
	return true;
}

static bool parse_u32(const char *s, uint32_t *ret)
{
	unsigned long long v = 0;

	if (!isdigit((unsigned char)*s))
		return false;
	for (; isdigit((unsigned char)*s); s++) {
		v = v * 10 + (unsigned)(*s - '0');
		if (v > UINT32_MAX - 1) /* (uid_t)-1 is never a valid uid */
			return false;
	}
	if (*s)
		return false;
	*ret = (uint32_t)v;
	return true;
}

/* "N" or "N-M" with N <= M. */
static bool parse_uid_range(const char *s, UidRange *ret)
{
	const char *dash = strchr(s, '-');
	char lo[16];
	UidRange r;

	if (!dash) {
		if (!parse_u32(s, &r.lo))
			return false;
		r.hi = r.lo;
	} else {
		if ((size_t)(dash - s) >= sizeof(lo))
			return false;
		memcpy(lo, s, (size_t)(dash - s));
		lo[dash - s] = '\0';
		if (!parse_u32(lo, &r.lo) || !parse_u32(dash + 1, &r.hi) || r.lo > r.hi)
			return false;
	}
	*ret = r;
	return true;
}

static bool valid_uid_range(const char *s)
{
	UidRange r;
	return parse_uid_range(s, &r);
}

static int get_uids(Ctx *c, const config_setting_t *s, MatchSet *m)
{
	_cleanup_strv_free_ char **l = NULL;
	size_t n;
	int r;

	if (config_setting_type(s) == CONFIG_TYPE_INT ||
	        config_setting_type(s) == CONFIG_TYPE_INT64) {
		error(c, line_of(s), "'uids' takes strings such as \"0\" or \"1000-1999\", not %s",
		        type_name(s));
		return -EINVAL;
	}
	r = get_strv(c, s, valid_uid_range, "uid or uid range (\"N\" or \"N-M\")", false, &l);
	if (r < 0)
		return r;
	n = strv_length(l);
	m->uids = calloc(n, sizeof(UidRange));
	if (!m->uids) {
		c->oom = true;
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		(void)parse_uid_range(l[i], &m->uids[i]);
	m->n_uids = n;
	m->uids_line = line_of(s);
	return 0;
}

static int parse_aaguid(const char *s, uint8_t ret[16])
{
	size_t n = 0;

	for (const char *p = s; *p; p++) {
		int hi, lo;

		if (*p == '-') {
			size_t pos = (size_t)(p - s);
			if (strlen(s) != 36 || (pos != 8 && pos != 13 && pos != 18 && pos != 23))
				return -EINVAL;
			continue;
		}
		if (n >= 16 || !isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]))
			return -EINVAL;
		hi = isdigit((unsigned char)p[0]) ? p[0] - '0'
		                                  : (tolower((unsigned char)p[0]) - 'a' + 10);
		lo = isdigit((unsigned char)p[1]) ? p[1] - '0'
		                                  : (tolower((unsigned char)p[1]) - 'a' + 10);
		ret[n++] = (uint8_t)(hi << 4 | lo);
		p++;
	}
	return n == 16 ? 0 : -EINVAL;
}

static bool valid_aaguid(const char *s)
{
	uint8_t b[16];
	return parse_aaguid(s, b) == 0;
}

static int get_aaguids(Ctx *c, const config_setting_t *s, uint8_t (**ret)[16], size_t *ret_n)
{
	_cleanup_strv_free_ char **l = NULL;
	uint8_t(*a)[16];
	size_t n;
	int r;

	r = get_strv(c, s, valid_aaguid,
	        "AAGUID (\"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx\" or 32 hex digits)", false, &l);
	if (r < 0)
		return r;
	n = strv_length(l);
	a = calloc(n, sizeof(*a));
	if (!a) {
		c->oom = true;
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		(void)parse_aaguid(l[i], a[i]);
	*ret = a;
	*ret_n = n;
	return 0;
}

/* ---- sections ---- */

/* `match` of RULE, or its `not` group when IS_NOT. Errors are reported, not returned. */
static void parse_match(Ctx *c, const config_setting_t *g, PolicyRule *rule, bool is_not)
{
	_cleanup_free_ char *what = NULL;
	MatchSet *m = is_not ? &rule->not : &rule->match;
	int n;

	if (asprintf(&what, is_not ? "'not' of rule '%s'" : "'match' of rule '%s'", rule->name) <
	        0) {
		c->oom = true;
		return;
	}
	if (!expect_group(c, g, what))
		return;
	check_keys(c, g, is_not ? not_keys : match_keys, what);
	n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *k = config_setting_name(s);
		bool b;

		if (streq(k, "users"))
			(void)get_strv(
			        c, s, valid_user_name, "user name", false, &m->strv[FIELD_USERS]);
		else if (streq(k, "groups"))
			(void)get_strv(
			        c, s, valid_user_name, "group name", false, &m->strv[FIELD_GROUPS]);
		else if (streq(k, "services"))
			(void)get_strv(c, s, valid_service, "PAM service name", false,
			        &m->strv[FIELD_SERVICES]);
		else if (streq(k, "ttys"))
			(void)get_strv(
			        c, s, valid_tty_pattern, "tty pattern", true, &m->strv[FIELD_TTYS]);
		else if (streq(k, "uids"))
			(void)get_uids(c, s, m);
		else if (streq(k, "remote") && !is_not) {
			if (get_bool(c, s, &b) >= 0)
				rule->remote = b;
		} else if (streq(k, "not") && !is_not)
			parse_match(c, s, rule, true);
		for (size_t f = 0; f < _FIELD_STRV_MAX; f++)
			if (streq(k, field_names[f])) {
				m->strv_line[f] = line_of(s);
				m->n_strv[f] = strv_length(m->strv[f]);
			}
	}
}

static void outcome_init(PolicyOutcome *o)
{
	*o = (PolicyOutcome){
	        .require = _POLICY_REQUIRE_INVALID,
	        .uv = POLICY_UV_PREFERRED,
	        .up = true,
	        .attestation = POLICY_ATTESTATION_NONE,
	        .counter = POLICY_COUNTER_STRICT,
	        .cached_elevation = POLICY_CACHED_ELEVATION_SAME_KEY,
	        .removal = POLICY_REMOVAL_NONE,
	        .grace_ms = 0,
	        .lock_verify_ms = 2000,
	        .on_lock_failure = POLICY_LOCK_FAILURE_TERMINATE,
	        .lockout_max_failures = 0,
	        .lockout_window_s = 900,
	        .lockout_unlock_after_s = 900,
	        .remote_lifetime_s = POLICY_REMOTE_LIFETIME_DEFAULT,
	};
}

static void parse_removal(Ctx *c, const config_setting_t *g, PolicyOutcome *o)
{
	int n, v;

	if (!expect_group(c, g, "'removal'"))
		return;
	check_keys(c, g, removal_keys, "'removal'");
	n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *k = config_setting_name(s);

		if (streq(k, "action")) {
			if (get_enum(c, s, removal_table, ELEMENTSOF(removal_table), &v) >= 0)
				o->removal = v;
		} else if (streq(k, "grace"))
			(void)get_uint(c, s, 0, 600000, "milliseconds", &o->grace_ms);
		else if (streq(k, "lock_verify"))
			(void)get_uint(c, s, 100, 60000, "milliseconds", &o->lock_verify_ms);
		else if (streq(k, "on_lock_failure")) {
			if (get_enum(c, s, lock_failure_table, ELEMENTSOF(lock_failure_table),
			            &v) >= 0)
				o->on_lock_failure = v;
		}
	}
}

static void parse_lockout(Ctx *c, const config_setting_t *g, PolicyOutcome *o)
{
	int n;

	if (!expect_group(c, g, "'lockout'"))
		return;
	check_keys(c, g, lockout_keys, "'lockout'");
	n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *k = config_setting_name(s);

		if (streq(k, "max_failures"))
			(void)get_uint(c, s, 0, 1000, "failures, 0 = no lockout",
			        &o->lockout_max_failures);
		else if (streq(k, "window"))
			(void)get_uint(c, s, 1, 604800, "seconds", &o->lockout_window_s);
		else if (streq(k, "unlock_after"))
			(void)get_uint(c, s, 1, 2592000, "seconds", &o->lockout_unlock_after_s);
	}
}

/* The outcome keys of a rule or of `default`. WHAT names it in messages. */
static void parse_outcome(Ctx *c, const config_setting_t *g, PolicyOutcome *o, const char *what)
{
	const config_setting_t *s;
	int n, v;

	outcome_init(o);
	n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const char *k;

		s = config_setting_get_elem(g, (unsigned)i);
		k = config_setting_name(s);
		if (streq(k, "require")) {
			/* ssh-key is the table's last entry: only ever the resolution of a
			 * remote `key` outcome, not a value of `require` */
			if (config_setting_type(s) == CONFIG_TYPE_STRING &&
			        streq(config_setting_get_string(s), "ssh-key"))
				error(c, line_of(s),
				        "require = \"ssh-key\" in %s: an SSH key is what a remote "
				        "login of require = \"key\" needs with on_remote = "
				        "\"ssh-key\"; write those two",
				        what);
			else if (get_enum(c, s, policy_require_table, POLICY_REQUIRE_SSH_KEY, &v) >=
			         0)
				o->require = v;
		} else if (streq(k, "reason"))
			(void)get_string(c, s, POLICY_REASON_MAX, &o->reason);
		else if (streq(k, "on_remote")) {
			if (get_enum(c, s, policy_on_remote_table,
			            ELEMENTSOF(policy_on_remote_table), &v) >= 0) {
				o->on_remote = v;
				o->on_remote_set = true;
			}
		} else if (streq(k, "user_verification")) {
			if (get_enum(c, s, policy_uv_table, ELEMENTSOF(policy_uv_table), &v) >= 0)
				o->uv = v;
		} else if (streq(k, "user_presence")) {
			if (get_bool(c, s, &o->up) >= 0 && !o->up)
				warning(c, line_of(s),
				        "user_presence = false in %s: a key that is merely plugged "
				        "in satisfies it without a touch",
				        what);
		} else if (streq(k, "aaguid_allow"))
			(void)get_aaguids(c, s, &o->aaguid_allow, &o->n_aaguid_allow);
		else if (streq(k, "aaguid_deny"))
			(void)get_aaguids(c, s, &o->aaguid_deny, &o->n_aaguid_deny);
		else if (streq(k, "attestation")) {
			if (get_enum(c, s, attestation_table, ELEMENTSOF(attestation_table), &v) >=
			        0)
				o->attestation = v;
		} else if (streq(k, "trust_anchors")) {
			o->trust_anchors_line = line_of(s);
			if (get_strv(c, s, valid_path, "absolute path to a PEM file", false,
			            &o->trust_anchors) >= 0 &&
			        strv_length(o->trust_anchors) > POLICY_ANCHORS_MAX) {
				error(c, line_of(s), "'trust_anchors' names more than %d files",
				        POLICY_ANCHORS_MAX);
			}
		} else if (streq(k, "credentials")) {
			if (get_enum(c, s, cred_source_table, ELEMENTSOF(cred_source_table), &v) >=
			        0)
				o->credentials = v;
		} else if (streq(k, "counter")) {
			if (get_enum(c, s, counter_table, ELEMENTSOF(counter_table), &v) >= 0) {
				o->counter = v;
				if (v == POLICY_COUNTER_ALLOW_ZERO)
					warning(c, line_of(s),
					        "counter = \"allow-zero\" in %s: a clone of an "
					        "authenticator that always reports 0 cannot be "
					        "detected",
					        what);
			}
		} else if (streq(k, "cached_elevation")) {
			if (get_enum(c, s, cached_elevation_table,
			            ELEMENTSOF(cached_elevation_table), &v) >= 0)
				o->cached_elevation = v;
		} else if (streq(k, "removal"))
			parse_removal(c, s, o);
		else if (streq(k, "lockout"))
			parse_lockout(c, s, o);
		else if (streq(k, "remote_lifetime"))
			(void)get_uint(c, s, 1, POLICY_REMOTE_LIFETIME_MAX, "seconds",
			        &o->remote_lifetime_s);
		else if (streq(k, "breakglass"))
			(void)get_bool(c, s, &o->breakglass);
	}

	if (o->require < 0) {
		if (!config_setting_get_member(g, "require"))
			error(c, line_of(g),
			        "%s has no 'require' (expected \"key\", \"none\" or \"deny\")",
			        what);
		return;
	}
	if (o->attestation == POLICY_ATTESTATION_VERIFIED && !o->trust_anchors &&
	        (s = config_setting_get_member(g, "attestation")))
		error(c, line_of(s),
		        "attestation = \"verified\" in %s needs 'trust_anchors' (PEM files of the "
		        "accepted roots)",
		        what);
	if (o->attestation != POLICY_ATTESTATION_VERIFIED && o->trust_anchors &&
	        (s = config_setting_get_member(g, "trust_anchors")))
		warning(c, line_of(s),
		        "'trust_anchors' in %s has no effect unless attestation = \"verified\"",
		        what);
	if (o->require != POLICY_REQUIRE_KEY)
		for (const char *const *k = key_only_keys; *k; k++)
			if ((s = config_setting_get_member(g, *k)))
				warning(c, line_of(s),
				        "'%s' in %s has no effect unless require = \"key\"", *k,
				        what);
	if (o->require == POLICY_REQUIRE_KEY &&
	        !(o->on_remote_set && o->on_remote == POLICY_ON_REMOTE_SSH_KEY) &&
	        (s = config_setting_get_member(g, "remote_lifetime")))
		warning(c, line_of(s),
		        "'remote_lifetime' in %s has no effect unless on_remote = \"ssh-key\"",
		        what);
}

static int parse_rule(Ctx *c, const config_setting_t *g, size_t index, PolicyRule *rule)
{
	_cleanup_free_ char *what = NULL;
	const config_setting_t *s;

	rule->remote = -1;
	rule->line = line_of(g);
	outcome_init(&rule->outcome);
	if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
		error(c, line_of(g), "rule %zu must be a group { name = ...; ... }, not %s",
		        index + 1, type_name(g));
		if (asprintf(&rule->name, "#%zu", index + 1) < 0) {
			rule->name = NULL;
			c->oom = true;
			return -ENOMEM;
		}
		return -EINVAL;
	}
	s = config_setting_get_member(g, "name");
	if (!s)
		error(c, line_of(g), "rule %zu has no 'name' (expected name = \"...\";)",
		        index + 1);
	else if (get_string(c, s, POLICY_NAME_MAX, &rule->name) >= 0 &&
	         (!valid_rule_name(rule->name) || streq(rule->name, "default"))) {
		error(c, line_of(s),
		        "rule name \"%s\" is not valid (letters, digits, '.', '_', '-'; not "
		        "\"default\")",
		        rule->name);
	}
	if (!rule->name) {
		if (asprintf(&rule->name, "#%zu", index + 1) < 0) {
			rule->name = NULL;
			c->oom = true;
			return -ENOMEM;
		}
	}
	if (asprintf(&what, "rule '%s'", rule->name) < 0) {
		c->oom = true;
		return -ENOMEM;
	}
	check_keys(c, g, rule_keys, what);
	s = config_setting_get_member(g, "match");
	if (s)
		parse_match(c, s, rule, false);
	parse_outcome(c, g, &rule->outcome, what);
	return 0;
}

/* ---- settings.audit ---- */

#define AUDIT_SIZE_MIN UINT64_C(4096)
#define AUDIT_SIZE_MAX (UINT64_C(1) << 40) /* 1 TiB */
#define AUDIT_AGE_MAX  (UINT64_C(10) * 366 * 86400)

/* "<n>" with an optional suffix from SUFFIXES (each with its factor); -EINVAL when the
 * text is not that, -ERANGE when it overflows. */
static int parse_scaled(const char *v, const char *suffixes, const uint64_t *factors, uint64_t *ret)
{
	uint64_t n = 0, f = 1;
	const char *p = v;

	if (!(*p >= '0' && *p <= '9'))
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (*p) {
		const char *at = strchr(suffixes, *p);
		if (!at || p[1])
			return -EINVAL;
		f = factors[at - suffixes];
	}
	if (n > UINT64_MAX / f)
		return -ERANGE;
	*ret = n * f;
	return 0;
}

/* An integer setting as written, 0..UINT64 (libconfig's own value is not trusted when the
 * literal was out of range: scan_integers()). */
static int get_u64_literal(Ctx *c, const config_setting_t *s, uint64_t *ret)
{
	BadInteger *bad = bad_integer_of(c, s);
	long long v;

	if (bad) {
		bad->reported = true;
		return -ERANGE;
	}
	v = config_setting_get_int64(s);
	if (v < 0)
		return -ERANGE;
	*ret = (uint64_t)v;
	return 0;
}

/* A size: bytes as an integer or "<n>[K|M|G|T]" (powers of 1024); 0 or LO..HI. With
 * RET_PERCENT also "<n>%" (1..99). */
static int get_size(Ctx *c, const config_setting_t *s, uint64_t lo, uint64_t hi, uint64_t *ret,
        unsigned *ret_percent)
{
	static const uint64_t factors[] = {
	        1024, UINT64_C(1) << 20, UINT64_C(1) << 30, UINT64_C(1) << 40};
	const char *name = config_setting_name(s), *v;
	uint64_t n = 0;
	int r;

	if (config_setting_type(s) == CONFIG_TYPE_INT ||
	        config_setting_type(s) == CONFIG_TYPE_INT64)
		r = get_u64_literal(c, s, &n);
	else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		v = config_setting_get_string(s);
		if (ret_percent && *v && v[strlen(v) - 1] == '%') {
			_cleanup_free_ char *num = strndup(v, strlen(v) - 1);
			uint64_t pct = 0;

			if (!num) {
				c->oom = true;
				return -ENOMEM;
			}
			if (parse_scaled(num, "", NULL, &pct) < 0 || pct < 1 || pct > 99) {
				error(c, line_of(s), "'%s' is \"%.32s\", expected 1%%..99%%", name,
				        v);
				return -ERANGE;
			}
			*ret_percent = (unsigned)pct;
			*ret = 0;
			return 0;
		}
		r = parse_scaled(v, "KMGT", factors, &n);
		if (r == -EINVAL) {
			error(c, line_of(s),
			        "'%s' is \"%.32s\", expected a size: bytes, or a number with K, M, "
			        "G "
			        "or T%s",
			        name, v, ret_percent ? ", or a percentage such as \"5%\"" : "");
			return r;
		}
	} else {
		error(c, line_of(s),
		        "'%s' must be a size (an integer or a string such as \"64M\"), "
		        "not %s",
		        name, type_name(s));
		return -EINVAL;
	}
	if (r < 0 || (n != 0 && (n < lo || n > hi))) {
		error(c, line_of(s),
		        "'%s' is out of range: expected 0 (off) or %" PRIu64 "..%" PRIu64 " bytes",
		        name, lo, hi);
		return -ERANGE;
	}
	*ret = n;
	if (ret_percent)
		*ret_percent = 0;
	return 0;
}

/* A duration: seconds as an integer or "<n>[s|m|h|d|w]"; 0 (off) or up to ten years. */
static int get_duration(Ctx *c, const config_setting_t *s, uint64_t *ret)
{
	static const uint64_t factors[] = {1, 60, 3600, 86400, 7 * 86400};
	const char *name = config_setting_name(s);
	uint64_t n = 0;
	int r;

	if (config_setting_type(s) == CONFIG_TYPE_INT ||
	        config_setting_type(s) == CONFIG_TYPE_INT64)
		r = get_u64_literal(c, s, &n);
	else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		r = parse_scaled(config_setting_get_string(s), "smhdw", factors, &n);
		if (r == -EINVAL) {
			error(c, line_of(s),
			        "'%s' is \"%.32s\", expected a duration: seconds, or a number with "
			        "s, m, h, d or w (\"30d\")",
			        name, config_setting_get_string(s));
			return r;
		}
	} else {
		error(c, line_of(s),
		        "'%s' must be a duration (an integer or a string such as "
		        "\"30d\"), not %s",
		        name, type_name(s));
		return -EINVAL;
	}
	if (r < 0 || n > AUDIT_AGE_MAX) {
		error(c, line_of(s), "'%s' is out of range: expected 0 (off) up to 10 years", name);
		return -ERANGE;
	}
	*ret = n;
	return 0;
}

/* A threshold's action: ignore, alert or rotate (deny only for disk_full_action). */
static int get_space_action(Ctx *c, const config_setting_t *s, bool disk_full, int *ret)
{
	static const char *const space_table[] = {"ignore", "alert", "rotate"};
	static const char *const full_table[] = {"deny", "rotate"};
	int v;

	if (disk_full) {
		if (get_enum(c, s, full_table, ELEMENTSOF(full_table), &v) < 0)
			return -EINVAL;
		*ret = v == 0 ? POLICY_AUDIT_SPACE_DENY : POLICY_AUDIT_SPACE_ROTATE;
		return 0;
	}
	if (get_enum(c, s, space_table, ELEMENTSOF(space_table), &v) < 0)
		return -EINVAL;
	*ret = v; /* same order as audit_space_table */
	return 0;
}

static void parse_audit(Ctx *c, const config_setting_t *g, PolicyAuditSettings *a)
{
	unsigned space_line = 0, admin_line = 0;
	int n, v;

	if (!expect_group(c, g, "'audit'"))
		return;
	check_keys(c, g, audit_keys, "'audit'");
	n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *k = config_setting_name(s);

		if (streq(k, "rotate_size"))
			(void)get_size(c, s, AUDIT_SIZE_MIN, AUDIT_SIZE_MAX, &a->rotate_size, NULL);
		else if (streq(k, "rotate_age"))
			(void)get_duration(c, s, &a->rotate_age_s);
		else if (streq(k, "keep_age"))
			(void)get_duration(c, s, &a->keep_age_s);
		else if (streq(k, "keep_files"))
			(void)get_uint(
			        c, s, 0, 100000, "rotated files, 0 = no limit", &a->keep_files);
		else if (streq(k, "keep_min_files"))
			(void)get_uint(c, s, 0, 100000, "rotated files", &a->keep_min_files);
		else if (streq(k, "seal_every"))
			(void)get_uint(c, s, 1, 100000, "records", &a->seal_every);
		else if (streq(k, "space_left")) {
			if (get_size(c, s, 1, AUDIT_SIZE_MAX, &a->space_left.bytes,
			            &a->space_left.percent) >= 0)
				space_line = line_of(s);
		} else if (streq(k, "admin_space_left")) {
			if (get_size(c, s, 1, AUDIT_SIZE_MAX, &a->admin_space_left.bytes,
			            &a->admin_space_left.percent) >= 0)
				admin_line = line_of(s);
		} else if (streq(k, "space_left_action")) {
			if (get_space_action(c, s, false, &v) >= 0)
				a->space_left_action = v;
		} else if (streq(k, "admin_space_left_action")) {
			if (get_space_action(c, s, false, &v) >= 0)
				a->admin_space_left_action = v;
		} else if (streq(k, "disk_full_action")) {
			if (get_space_action(c, s, true, &v) >= 0)
				a->disk_full_action = v;
		}
	}
	/* admin_space_left is the later, graver threshold: it must not be above space_left
	 * when both are in the same unit. */
	if ((space_line || admin_line) &&
	        ((a->space_left.percent && a->admin_space_left.percent &&
	                 a->admin_space_left.percent > a->space_left.percent) ||
	                (!a->space_left.percent && !a->admin_space_left.percent &&
	                        a->space_left.bytes &&
	                        a->admin_space_left.bytes > a->space_left.bytes)))
		error(c, admin_line ?: space_line,
		        "'admin_space_left' must not be more than 'space_left' (it is the later, "
		        "graver threshold)");
	if (a->keep_files > 0 && a->keep_min_files > a->keep_files)
		error(c, line_of(g),
		        "'keep_min_files' (%" PRIu32 ") is more than 'keep_files' (%" PRIu32 ")",
		        a->keep_min_files, a->keep_files);
}

/* ---- settings.breakglass ---- */

static void parse_argon2(Ctx *c, const config_setting_t *g, PolicyBreakglass *b)
{
	int n;

	if (!expect_group(c, g, "'argon2'"))
		return;
	check_keys(c, g, argon2_keys, "'argon2'");
	n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *k = config_setting_name(s);
		uint64_t mem = 0;

		if (streq(k, "opslimit")) {
			if (get_uint(c, s, POLICY_BREAKGLASS_OPSLIMIT_MIN,
			            POLICY_BREAKGLASS_OPSLIMIT_MAX, "Argon2id passes",
			            &b->argon2_opslimit) >= 0 &&
			        b->argon2_opslimit < 2)
				warning(c, line_of(s),
				        "'opslimit' = %" PRIu32 " is below libsodium's interactive "
				        "level (2): stolen code hashes are cheaper to guess",
				        b->argon2_opslimit);
		} else if (streq(k, "memlimit")) {
			if (get_size(c, s, POLICY_BREAKGLASS_MEMLIMIT_MIN,
			            POLICY_BREAKGLASS_MEMLIMIT_MAX, &mem, NULL) < 0)
				continue;
			if (mem == 0) {
				error(c, line_of(s),
				        "'memlimit' must be %" PRIu64 "..%" PRIu64
				        " bytes (libsodium's minimum is 8K)",
				        POLICY_BREAKGLASS_MEMLIMIT_MIN,
				        POLICY_BREAKGLASS_MEMLIMIT_MAX);
				continue;
			}
			b->argon2_memlimit = mem;
			if (mem < (UINT64_C(64) << 20))
				warning(c, line_of(s),
				        "'memlimit' is below libsodium's interactive level (64M): "
				        "stolen code hashes are cheaper to guess");
		}
	}
}

static void parse_breakglass(Ctx *c, const config_setting_t *g, PolicyBreakglass *b)
{
	int n;

	if (!expect_group(c, g, "'breakglass'"))
		return;
	check_keys(c, g, breakglass_keys, "'breakglass'");
	n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *k = config_setting_name(s);
		char **l = NULL;

		if (streq(k, "services")) {
			if (get_strv(c, s, valid_service, "PAM service name", false, &l) < 0)
				continue;
			strv_free(b->services);
			b->services = l;
			if (strv_contains(l, "sshd"))
				warning(c, line_of(s),
				        "'breakglass' lists \"sshd\": a recovery code may then "
				        "open "
				        "an ssh login, which anyone who learns the code can try "
				        "from "
				        "afar (logins the policy sees as remote still never take "
				        "one)");
		} else if (streq(k, "codes"))
			(void)get_uint(
			        c, s, 1, POLICY_BREAKGLASS_CODES_MAX, "codes per issue", &b->codes);
		else if (streq(k, "validity")) {
			uint64_t v = 0;

			if (get_duration(c, s, &v) < 0)
				continue;
			if (v < 60) {
				error(c, line_of(s),
				        "'validity' must be at least 60 seconds (codes that expire "
				        "before they can be stored are useless)");
				continue;
			}
			b->validity_s = v;
		} else if (streq(k, "argon2"))
			parse_argon2(c, s, b);
		else if (streq(k, "max_attempts"))
			(void)get_uint(c, s, 1, 1000, "attempts per window", &b->max_attempts);
		else if (streq(k, "window"))
			(void)get_uint(c, s, 1, 604800, "seconds", &b->window_s);
		else if (streq(k, "two_person"))
			(void)get_bool(c, s, &b->two_person);
		else if (streq(k, "approval_validity"))
			(void)get_uint(c, s, 1, 86400, "seconds", &b->approval_validity_s);
		else if (streq(k, "require_enroll")) {
			if (get_bool(c, s, &b->require_enroll) >= 0 && !b->require_enroll)
				warning(c, line_of(s),
				        "require_enroll = false: a user who came in with a "
				        "recovery "
				        "code may elevate without any key");
		}
	}
}

/* An absolute path setting without "." or ".." components, copied. */
static int get_path(Ctx *c, const config_setting_t *s, char **ret)
{
	char *v = NULL;

	if (get_string(c, s, PATH_MAX - 1, &v) < 0)
		return -EINVAL;
	if (!valid_path(v)) {
		error(c, line_of(s), "'%s' must be an absolute path without '.' or '..' components",
		        config_setting_name(s));
		free(v);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

/* ---- the directory group (policy-directory.h) ---- */

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool valid_directory_uri(const char *s)
{
	if (!has_prefix(s, "ldaps://") && !has_prefix(s, "ldap://") && !has_prefix(s, "ldapi://"))
		return false;
	for (const char *p = s; *p; p++)
		if (*p == ' ' || *p == ',' || (unsigned char)*p < 0x21)
			return false;
	return true;
}

static bool valid_attribute_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 || !isalpha((unsigned char)s[0]))
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-')
			return false;
	return true;
}

/* "(...)" with "%u" at least once and no other % sequence than "%%". */
static bool valid_user_filter(const char *s)
{
	bool has_u = false;
	size_t n = strlen(s);

	if (n < 3 || s[0] != '(' || s[n - 1] != ')')
		return false;
	for (const char *p = s; (p = strchr(p, '%')); p += 2) {
		if (p[1] == 'u')
			has_u = true;
		else if (p[1] != '%')
			return false;
	}
	return has_u;
}

static void parse_directory(Ctx *c, const config_setting_t *g, PolicyDirectory *d)
{
	unsigned bind_line = line_of(g);
	int n, v;

	if (!expect_group(c, g, "'directory'"))
		return;
	check_keys(c, g, directory_keys, "'directory'");
	d->configured = true;
	n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *k = config_setting_name(s);
		char **target = NULL, *v_str = NULL;

		if (streq(k, "uri")) {
			strv_free(d->uris);
			d->uris = NULL;
			if (get_strv(c, s, valid_directory_uri,
			            "ldaps://, ldap:// (StartTLS) or ldapi:// URI", false,
			            &d->uris) >= 0 &&
			        strv_length(d->uris) > POLICY_DIRECTORY_URIS_MAX)
				error(c, line_of(s), "'uri' names more than %d servers",
				        POLICY_DIRECTORY_URIS_MAX);
		} else if (streq(k, "bind")) {
			if (get_enum(c, s, directory_bind_table, ELEMENTSOF(directory_bind_table),
			            &v) >= 0)
				d->bind = v;
			bind_line = line_of(s);
		} else if (streq(k, "timeout"))
			(void)get_uint(c, s, POLICY_DIRECTORY_TIMEOUT_MIN,
			        POLICY_DIRECTORY_TIMEOUT_MAX, "milliseconds", &d->timeout_ms);
		else if (streq(k, "refresh"))
			(void)get_uint(c, s, 1, 86400, "seconds", &d->refresh_s);
		else if (streq(k, "cache_max_age"))
			(void)get_uint(c, s, 1, 31 * 86400, "seconds", &d->cache_max_age_s);
		else if (streq(k, "writable"))
			(void)get_bool(c, s, &d->writable);
		else if (streq(k, "attribute")) {
			if (get_string(c, s, 64, &v_str) < 0)
				continue;
			if (!valid_attribute_name(v_str)) {
				error(c, line_of(s),
				        "'attribute' \"%s\" is not an LDAP attribute name", v_str);
				free(v_str);
				continue;
			}
			target = &d->attribute;
		} else if (streq(k, "user_filter")) {
			if (get_string(c, s, POLICY_DIRECTORY_FILTER_MAX, &v_str) < 0)
				continue;
			if (!valid_user_filter(v_str)) {
				error(c, line_of(s),
				        "'user_filter' must be a parenthesised LDAP filter with "
				        "%%u "
				        "(the user name, escaped) and no other %% sequence than "
				        "%%%%");
				free(v_str);
				continue;
			}
			target = &d->user_filter;
		} else if (streq(k, "base_dn") || streq(k, "bind_dn")) {
			if (get_string(c, s, 1024, &v_str) < 0)
				continue;
			if (isempty(v_str) || !strchr(v_str, '=')) {
				error(c, line_of(s),
				        "'%s' must be a distinguished name (dc=example,dc=com)", k);
				free(v_str);
				continue;
			}
			target = streq(k, "base_dn") ? &d->base_dn : &d->bind_dn;
		} else if (streq(k, "secret_file") || streq(k, "tls_ca_file") ||
		           streq(k, "tls_cert_file") || streq(k, "tls_key_file")) {
			if (get_path(c, s, &v_str) < 0)
				continue;
			target = streq(k, "secret_file")     ? &d->secret_file
			         : streq(k, "tls_ca_file")   ? &d->tls_ca_file
			         : streq(k, "tls_cert_file") ? &d->tls_cert_file
			                                     : &d->tls_key_file;
		}
		if (target) {
			free(*target);
			*target = v_str;
		}
	}
	if (!d->uris)
		error(c, line_of(g), "'directory' needs 'uri' (the server or servers)");
	if (!d->base_dn)
		error(c, line_of(g), "'directory' needs 'base_dn' (where the users are)");
	if (d->bind == POLICY_DIRECTORY_BIND_SIMPLE && (!d->bind_dn || !d->secret_file))
		error(c, bind_line, "bind = \"simple\" needs 'bind_dn' and 'secret_file'");
	if (d->bind != POLICY_DIRECTORY_BIND_SIMPLE && d->secret_file)
		error(c, bind_line, "'secret_file' is only used with bind = \"simple\"");
	if (!d->tls_cert_file != !d->tls_key_file)
		error(c, line_of(g), "'tls_cert_file' and 'tls_key_file' go together");
	if (d->bind == POLICY_DIRECTORY_BIND_SASL_EXTERNAL && !d->tls_cert_file) {
		bool ldapi_only = true;

		for (char **u = d->uris; u && *u; u++)
			ldapi_only = ldapi_only && has_prefix(*u, "ldapi://");
		if (!ldapi_only)
			error(c, bind_line,
			        "bind = \"sasl-external\" needs 'tls_cert_file' and 'tls_key_file' "
			        "(the client certificate), unless every uri is ldapi://");
	}
	if (d->refresh_s > d->cache_max_age_s)
		warning(c, line_of(g),
		        "'refresh' (%" PRIu32 " s) is longer than 'cache_max_age' (%" PRIu32
		        " s): covered logins are refused whenever the server is down",
		        d->refresh_s, d->cache_max_age_s);
	if (!d->user_filter)
		d->user_filter = strdup("(&(objectClass=posixAccount)(uid=%u))");
	if (!d->attribute)
		d->attribute = strdup("passkey");
	if (!d->user_filter || !d->attribute)
		c->oom = true;
}

static void parse_settings(Ctx *c, const config_setting_t *g, PolicySettings *st)
{
	int n, v;

	if (!expect_group(c, g, "'settings'"))
		return;
	check_keys(c, g, settings_keys, "'settings'");
	n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *k = config_setting_name(s);
		char **target = NULL, *v_str = NULL;

		if (streq(k, "rp_id")) {
			if (get_string(c, s, 255, &v_str) < 0)
				continue;
			if (isempty(v_str) || strpbrk(v_str, " \t")) {
				error(c, line_of(s),
				        "'rp_id' must be non-empty and contain no spaces");
				free(v_str);
				continue;
			}
			target = &st->rp_id;
		} else if (streq(k, "timeout"))
			(void)get_uint(c, s, 100, 600000, "milliseconds", &st->timeout_ms);
		else if (streq(k, "failmode")) {
			if (get_enum(c, s, policy_failmode_table, ELEMENTSOF(policy_failmode_table),
			            &v) >= 0) {
				st->failmode = v;
				if (v == POLICY_FAILMODE_OPEN)
					warning(c, line_of(s),
					        "failmode = \"open\": covered users get in without "
					        "a key whenever keywardd cannot be reached");
			}
		} else if (streq(k, "audit_failure")) {
			if (get_enum(c, s, audit_failure_table, ELEMENTSOF(audit_failure_table),
			            &v) >= 0) {
				st->audit_failure = v;
				if (v == POLICY_AUDIT_FAILURE_ALERT)
					warning(c, line_of(s),
					        "audit_failure = \"alert\": authentications go on "
					        "unrecorded when the audit trail cannot be "
					        "written");
			}
		} else if (streq(k, "credentials_dir") || streq(k, "state_dir") ||
		           streq(k, "runtime_dir") || streq(k, "audit_log")) {
			if (get_path(c, s, &v_str) < 0)
				continue;
			target = streq(k, "credentials_dir") ? &st->credentials_dir
			         : streq(k, "state_dir")     ? &st->state_dir
			         : streq(k, "runtime_dir")   ? &st->runtime_dir
			                                     : &st->audit_log;
		} else if (streq(k, "admin_group")) {
			if (get_string(c, s, 32, &v_str) < 0)
				continue;
			if (!valid_user_name(v_str)) {
				error(c, line_of(s),
				        "'admin_group' \"%s\" is not a valid group name", v_str);
				free(v_str);
				continue;
			}
			target = &st->admin_group;
			c->admin_group_line = line_of(s);
		} else if (streq(k, "cue")) {
			bool ok = true;

			if (get_string(c, s, POLICY_REASON_MAX, &v_str) < 0)
				continue;
			for (const char *p = v_str; (p = strchr(p, '%')); p += 2)
				if (p[1] != 'u' && p[1] != '%') {
					ok = false;
					break;
				}
			if (!ok) {
				error(c, line_of(s),
				        "'cue' may contain only %%u (the user) and %%%% as %% "
				        "sequences");
				free(v_str);
				continue;
			}
			target = &st->cue;
		} else if (streq(k, "max_credentials_per_user"))
			(void)get_uint(c, s, 1, 1024, "credentials", &st->max_credentials_per_user);
		else if (streq(k, "max_bindings"))
			(void)get_uint(c, s, 1, 1048576, "bindings", &st->max_bindings);
		else if (streq(k, "audit"))
			parse_audit(c, s, &st->audit);
		else if (streq(k, "directory"))
			parse_directory(c, s, &st->directory);
		else if (streq(k, "breakglass"))
			parse_breakglass(c, s, &st->breakglass);

		if (target) {
			free(*target);
			*target = v_str;
		}
	}
}

static int settings_defaults(PolicySettings *st)
{
	*st = (PolicySettings){
	        .rp_id = strdup("pam://keyward"),
	        .timeout_ms = 30000,
	        .credentials_dir = strdup(KEYWARD_DEFAULT_CREDENTIALS_DIR),
	        .state_dir = strdup(KEYWARD_DEFAULT_STATE_DIR),
	        .runtime_dir = strdup(KEYWARD_DEFAULT_RUNTIME_DIR),
	        .audit_log = strdup(KEYWARD_DEFAULT_AUDIT_LOG),
	        .failmode = POLICY_FAILMODE_CLOSED,
	        .audit_failure = POLICY_AUDIT_FAILURE_DENY,
	        .cue = strdup("Touch your security key for %u"),
	        .max_credentials_per_user = 16,
	        .max_bindings = 65536,
	        .directory =
	                {
	                        .timeout_ms = 3000,
	                        .refresh_s = 300,
	                        .cache_max_age_s = 86400,
	                },
	        .audit =
	                {
	                        .rotate_size = UINT64_C(64) << 20,
	                        .keep_files = 16,
	                        .keep_min_files = 1,
	                        .seal_every = 64,
	                        .space_left = {.percent = 5},
	                        .space_left_action = POLICY_AUDIT_SPACE_ALERT,
	                        .admin_space_left = {.percent = 1},
	                        .admin_space_left_action = POLICY_AUDIT_SPACE_ALERT,
	                        .disk_full_action = POLICY_AUDIT_SPACE_DENY,
	                },
	        .breakglass =
	                {
	                        .codes = 10,
	                        .validity_s = 30 * 86400,
	                        .argon2_opslimit = POLICY_BREAKGLASS_OPSLIMIT_DEFAULT,
	                        .argon2_memlimit = POLICY_BREAKGLASS_MEMLIMIT_DEFAULT,
	                        .max_attempts = 5,
	                        .window_s = 900,
	                        .two_person = false,
	                        .approval_validity_s = 900,
	                        .require_enroll = true,
	                },
	};
	if (!st->rp_id || !st->credentials_dir || !st->state_dir || !st->runtime_dir ||
	        !st->audit_log || !st->cue || strv_extend(&st->breakglass.services, "login") < 0)
		return -ENOMEM;
	return 0;
}

/* ---- shadowing (unreachable rules) ---- */

static bool strv_subset(char *const *a, char *const *b) /* a ⊆ b */
{
	for (char *const *i = a; i && *i; i++)
		if (!strv_contains(b, *i))
			return false;
	return true;
}

static bool strv_disjoint(char *const *a, char *const *b)
{
	for (char *const *i = a; i && *i; i++)
		if (strv_contains(b, *i))
			return false;
	return true;
}

static bool range_in(UidRange r, const UidRange *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (l[i].lo <= r.lo && r.hi <= l[i].hi)
			return true;
	return false;
}

static bool ranges_disjoint(const UidRange *a, size_t na, const UidRange *b, size_t nb)
{
	for (size_t i = 0; i < na; i++)
		for (size_t j = 0; j < nb; j++)
			if (a[i].lo <= b[j].hi && b[j].lo <= a[i].hi)
				return false;
	return true;
}

/* An upper bound of the comparisons rule_shadows(A, B) makes. */
static uint64_t shadow_cost(const PolicyRule *a, const PolicyRule *b)
{
	uint64_t cost = 1 + (uint64_t)a->match.n_uids * b->match.n_uids +
	                (uint64_t)a->not .n_uids * (b->not .n_uids + b->match.n_uids);

	for (size_t f = 0; f < _FIELD_STRV_MAX; f++)
		cost += (uint64_t)(a->match.n_strv[f] + 1) * (b->match.n_strv[f] + 1) +
		        (uint64_t)(a->not .n_strv[f] + 1) *
		                (b->not .n_strv[f] + b->match.n_strv[f] + 1);
	return cost;
}

/* Sound but conservative: true only when every request that B matches, A matches too. */
static bool rule_shadows(const PolicyRule *a, const PolicyRule *b)
{
	for (size_t f = 0; f < _FIELD_STRV_MAX; f++) {
		char **pa = a->match.strv[f], **pb = b->match.strv[f];

		if (!pa)
			continue;
		if (!pb)
			return false;
		if (f == FIELD_TTYS && strv_contains(pa, "*"))
			continue;
		if (!strv_subset(pb, pa))
			return false;
	}
	if (a->match.uids) {
		if (!b->match.uids)
			return false;
		for (size_t i = 0; i < b->match.n_uids; i++)
			if (!range_in(b->match.uids[i], a->match.uids, a->match.n_uids))
				return false;
	}
	if (a->remote >= 0 && a->remote != b->remote)
		return false;

	/* A's exclusions must exclude nothing that B can match. */
	for (size_t f = 0; f < _FIELD_STRV_MAX; f++) {
		char **na = a->not .strv[f];
		bool single = f == FIELD_USERS || f == FIELD_SERVICES; /* one value per request */

		if (!na)
			continue;
		if (strv_subset(na, b->not .strv[f]))
			continue;
		if (single && b->match.strv[f] && strv_disjoint(b->match.strv[f], na))
			continue;
		return false;
	}
	if (a->not .uids) {
		bool ok = true;

		for (size_t i = 0; i < a->not .n_uids; i++)
			if (!b->not .uids ||
			        !range_in(a->not .uids[i], b->not .uids, b->not .n_uids))
				ok = false;
		if (!ok && !(b->match.uids && ranges_disjoint(b->match.uids, b->match.n_uids,
		                                      a->not .uids, a->not .n_uids)))
			return false;
	}
	return true;
}

static bool match_covers_root(const MatchSet *m)
{
	if (strv_contains(m->strv[FIELD_USERS], "root"))
		return true;
	return m->uids && range_in((UidRange){0, 0}, m->uids, m->n_uids);
}

/* ---- loading ---- */

/* The line of an "@include" directive, or 0. libconfig would open the named file on its
 * own: refused, the policy is one file. */
static unsigned include_line(const char *text)
{
	unsigned line = 1;

	for (const char *l = text; l; line++) {
		l += strspn(l, " \t");
		if (strneq(l, "@include", 8))
			return line;
		l = strchr(l, '\n');
		if (l)
			l++;
	}
	return 0;
}

#define BAD_INTEGERS_MAX 256

static bool is_name_start(char ch)
{
	return isalpha((unsigned char)ch) || ch == '*';
}

static bool is_name_char(char ch)
{
	return ch != '\0' && (isalnum((unsigned char)ch) || strchr("-_*", ch));
}

/* Whether the integer literal T (libconfig's integer, integer64, hex or hex64 token) holds
 * a value libconfig stores unchanged. Anything else (floats, garbage) is left to it. */
static bool integer_literal_fits(const char *t, size_t n)
{
	bool negative = false, hex = false;
	uint64_t v = 0, limit;
	size_t i = 0, digits, suffix = 0;

	if (n > 0 && (t[0] == '-' || t[0] == '+')) {
		negative = t[0] == '-';
		i++;
	} else if (n > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
		hex = true;
		i = 2;
	}
	while (suffix < 2 && n - i > suffix && t[n - 1 - suffix] == 'L')
		suffix++;
	n -= suffix;
	digits = n - i;
	if (digits == 0)
		return true;
	for (size_t j = i; j < n; j++)
		if (!(hex ? isxdigit((unsigned char)t[j]) : isdigit((unsigned char)t[j])))
			return true; /* not an integer */
	limit = suffix > 0 ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX;
	limit += negative;
	for (size_t j = i; j < n; j++) {
		unsigned d = hex ? (unsigned)(isdigit((unsigned char)t[j])
		                                      ? t[j] - '0'
		                                      : tolower((unsigned char)t[j]) - 'a' + 10)
		                 : (unsigned)(t[j] - '0');

		if (v > (limit - d) / (hex ? 16 : 10))
			return false;
		v = v * (hex ? 16 : 10) + d;
	}
	return true;
}

/* libconfig 1.5 wraps integers without an 'L' suffix to 32 bits (and clamps those with
 * one), so the value it returns may not be the one written: 4294972296 reads as 5000.
 * Find such literals in the text, with the name of the setting they belong to; the
 * getters refuse them. Skips strings and comments as libconfig's scanner does. */
static int scan_integers(Ctx *c, const char *text)
{
	const char *name = NULL;
	size_t name_len = 0;
	unsigned line = 1, name_line = 0;

	for (const char *p = text; *p;) {
		if (*p == '\n') {
			line++;
			p++;
		} else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
			p = strchrnul(p, '\n');
		} else if (p[0] == '/' && p[1] == '*') {
			for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
				line += *p == '\n';
			if (*p)
				p += 2;
		} else if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				line += *p == '\n';
			}
			if (*p)
				p++;
		} else if (is_name_start(*p)) {
			name = p;
			name_line = line;
			while (is_name_char(*p))
				p++;
			name_len = (size_t)(p - name);
		} else if (isdigit((unsigned char)*p) || *p == '-' || *p == '+' || *p == '.') {
			const char *t = p;
			BadInteger *b;

			for (p++; *p && (isalnum((unsigned char)*p) || strchr("._+-", *p)); p++)
				;
			if (integer_literal_fits(t, (size_t)(p - t)))
				continue;
			if (c->n_bad_integers >= BAD_INTEGERS_MAX) {
				error(c, line, "more than %d integers out of range",
				        BAD_INTEGERS_MAX);
				return -EINVAL;
			}
			b = reallocarray(
			        c->bad_integers, c->n_bad_integers + 1, sizeof(BadInteger));
			if (!b) {
				c->oom = true;
				return -ENOMEM;
			}
			c->bad_integers = b;
			b[c->n_bad_integers++] = (BadInteger){
			        .line = name ? name_line : line,
			        .name = name,
			        .name_len = name_len,
			        .literal = t,
			        .literal_len = (size_t)(p - t),
			};
		} else
			p++;
	}
	return 0;
}

/* Out-of-range integers no getter judged (a key that takes no number, an array entry):
 * still an error, never a silently wrapped value. */
static void report_bad_integers(Ctx *c)
{
	for (size_t i = 0; i < c->n_bad_integers; i++) {
		const BadInteger *b = &c->bad_integers[i];

		if (b->reported)
			continue;
		error(c, b->line,
		        "the integer %.*s%s is out of range (%" PRId32 "..%" PRId32
		        ", or 64 bits with an 'L' suffix)",
		        literal_shown(b->literal_len), b->literal,
		        b->literal_len > LITERAL_SHOWN_MAX ? "..." : "", INT32_MIN, INT32_MAX);
	}
}

static int sha256_hex(const void *data, size_t len, char ret[static 65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return -EIO;
	for (unsigned i = 0; i < n; i++)
		sprintf(ret + 2 * i, "%02x", md[i]);
	ret[64] = '\0';
	return 0;
}

static void config_destroyp(config_t **c)
{
	if (*c)
		config_destroy(*c);
}

static int policy_parse(Ctx *c, const char *text, size_t len, Policy **ret)
{
	_cleanup_(policy_freep) Policy *p = NULL;
	_cleanup_(config_destroyp) config_t *cfg = NULL;
	config_t cfg_storage;
	const config_setting_t *root, *s;
	uint64_t budget = POLICY_SHADOW_BUDGET;
	bool budget_spent = false;
	size_t lines = 1;
	unsigned line;
	int r;

	if (len > POLICY_FILE_MAX) {
		error(c, 0, "the file is larger than %d bytes", POLICY_FILE_MAX);
		return -EFBIG;
	}
	if (memchr(text, '\0', len)) {
		error(c, 0, "the file contains a NUL byte; it is not a text file");
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	if (lines > POLICY_LINES_MAX) {
		error(c, 0, "the file has more than %d lines", POLICY_LINES_MAX);
		return -EFBIG;
	}
	if ((line = include_line(text)) > 0) {
		error(c, line, "@include is not supported; keep the whole policy in one file");
		return -EINVAL;
	}

	p = calloc(1, sizeof(Policy));
	if (!p)
		return -ENOMEM;
	r = settings_defaults(&p->settings);
	if (r < 0)
		return r;
	p->path = strdup(c->file);
	if (!p->path)
		return -ENOMEM;
	r = sha256_hex(text, len, p->digest);
	if (r < 0)
		return r;

	r = scan_integers(c, text);
	if (r < 0)
		return r;

	config_init(&cfg_storage);
	cfg = &cfg_storage;
	config_set_options(cfg, 0);
	if (config_read_string(cfg, text) != CONFIG_TRUE) {
		error(c, (unsigned)config_error_line(cfg), "%s", strna(config_error_text(cfg)));
		return -EINVAL;
	}
	root = config_root_setting(cfg);
	check_keys(c, root, top_keys, "the top level");

	s = config_setting_get_member(root, "settings");
	if (s)
		parse_settings(c, s, &p->settings);

	s = config_setting_get_member(root, "rules");
	if (s) {
		int n = config_setting_length(s);

		if (config_setting_type(s) != CONFIG_TYPE_LIST) {
			error(c, line_of(s), "'rules' must be a list ( { ... }, { ... } ), not %s",
			        type_name(s));
		} else if (n > POLICY_RULES_MAX) {
			error(c, line_of(s), "'rules' has %d rules, at most %d are allowed", n,
			        POLICY_RULES_MAX);
		} else if (n > 0) {
			p->rules = calloc((size_t)n, sizeof(PolicyRule));
			if (!p->rules)
				return -ENOMEM;
			for (int i = 0; i < n; i++) {
				PolicyRule *rule = &p->rules[p->n_rules++];

				size_t errors_before = c->n_errors;

				r = parse_rule(c, config_setting_get_elem(s, (unsigned)i),
				        (size_t)i, rule);
				if (r == -ENOMEM)
					return r;
				/* a rule with its own errors is left out of the cross-rule checks
				 */
				rule->invalid = c->n_errors > errors_before;
			}
		}
	}

	s = config_setting_get_member(root, "default");
	if (!s) {
		error(c, 0,
		        "no 'default' outcome: add default = { require = \"none\"; }; (or "
		        "\"key\"/\"deny\") to say what happens when no rule matches");
		outcome_init(&p->def);
	} else if (expect_group(c, s, "'default'")) {
		check_keys(c, s, outcome_keys, "'default'");
		parse_outcome(c, s, &p->def, "'default'");
		p->default_line = line_of(s);
	} else
		outcome_init(&p->def);

	/* Cross-rule checks. The reachability check is quadratic: bounded by a budget of
	 * string comparisons (a few hundred ms), far above any real policy. */
	for (size_t i = 0; i < p->n_rules; i++) {
		PolicyRule *b = &p->rules[i];

		for (size_t j = 0; j < i; j++) {
			if (streq(p->rules[j].name, b->name)) {
				error(c, b->line,
				        "duplicate rule name '%s' (first defined at line %u)",
				        b->name, p->rules[j].line);
				break;
			}
		}
		for (size_t j = 0; j < i && !budget_spent && !b->invalid; j++) {
			uint64_t cost = shadow_cost(&p->rules[j], b);

			if (cost > budget) {
				/* Best effort by design: say so rather than stall the daemon. */
				warning(c, b->line,
				        "too many rules and entries to look for unreachable rules "
				        "from rule '%s' on",
				        b->name);
				budget_spent = true;
				break;
			}
			budget -= cost;
			if (!p->rules[j].invalid && rule_shadows(&p->rules[j], b)) {
				error(c, b->line,
				        "rule '%s' can never match: the earlier rule '%s' (line "
				        "%u) matches every request it matches",
				        b->name, p->rules[j].name, p->rules[j].line);
				break;
			}
		}
		if (b->outcome.require == POLICY_REQUIRE_NONE && match_covers_root(&b->match))
			warning(c, b->line,
			        "rule '%s' exempts root from the security key (require = \"none\")",
			        b->name);
		if (b->outcome.require == POLICY_REQUIRE_KEY && b->remote == 1 &&
		        !(b->outcome.on_remote_set &&
		                b->outcome.on_remote == POLICY_ON_REMOTE_SSH_KEY))
			warning(c, b->line,
			        "rule '%s' matches only remote logins, where a key cannot be "
			        "touched: it always resolves to on_remote (%s)",
			        b->name,
			        b->outcome.on_remote_set
			                ? policy_on_remote_to_string(b->outcome.on_remote)
			                : "deny, not set");
	}

	for (size_t i = 0; i <= p->n_rules; i++) {
		const PolicyOutcome *o = i < p->n_rules ? &p->rules[i].outcome : &p->def;

		if (o->credentials != POLICY_CRED_SOURCE_LOCAL && !p->settings.directory.configured)
			error(c, i < p->n_rules ? p->rules[i].line : p->default_line,
			        "credentials = \"%s\" in %s needs a 'directory' group in "
			        "'settings'",
			        policy_cred_source_to_string(o->credentials),
			        i < p->n_rules ? p->rules[i].name : "'default'");
	}
	report_bad_integers(c);
	p->admin_group_line = c->admin_group_line;
	if (c->oom)
		return -ENOMEM;
	if (c->n_errors > 0)
		return -EINVAL;
	*ret = TAKE_PTR(p);
	return 0;
}

/* Messages of one load in line order (stable: same-line messages keep their order). */
static void sort_diagnostics(PolicyDiagnostics *d, size_t start)
{
	if (!d)
		return;
	for (size_t i = start + 1; i < d->n; i++) {
		PolicyDiagnostic x = d->items[i];
		size_t j = i;

		for (; j > start && d->items[j - 1].line > x.line; j--)
			d->items[j] = d->items[j - 1];
		d->items[j] = x;
	}
}

int policy_load_string(
        const char *text, const char *filename, PolicyDiagnostics *diags, Policy **ret)
{
	Ctx c = {.file = filename ?: "<string>", .diags = diags};
	size_t start = diags ? diags->n : 0;
	int r;

	if (!text || !ret)
		return -EINVAL;
	r = policy_parse(&c, text, strlen(text), ret);
	free(c.bad_integers);
	sort_diagnostics(diags, start);
	return r;
}

int policy_last_good_path(const char *config_path, char **ret)
{
	char *p;

	if (isempty(config_path) || config_path[0] != '/')
		return -EINVAL;
	if (streq(config_path, KEYWARD_DEFAULT_CONFIG))
		p = strdup(KEYWARD_DEFAULT_STATE_DIR "/policy.last-good");
	else if (asprintf(&p, "%s.last-good", config_path) < 0)
		p = NULL;
	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

int policy_load_file(const char *path, PolicyDiagnostics *diags, Policy **ret)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_close_ int fd = -EBADF;
	Ctx c = {.file = path, .diags = diags};
	const char *problem = NULL;
	size_t len = 0, start;
	int r;

	if (!path || !ret)
		return -EINVAL;
	fd = safe_open(path, 0, NULL, &problem);
	if (fd < 0) {
		error(&c, 0, "%s", problem ?: "cannot be opened");
		return fd;
	}
	r = read_full_fd(fd, POLICY_FILE_MAX, &text, &len);
	if (r == -EFBIG) {
		error(&c, 0, "the file is larger than %d bytes", POLICY_FILE_MAX);
		return r;
	}
	if (r < 0) {
		error(&c, 0, "cannot be read: %s", strerror(-r));
		return r;
	}
	start = diags ? diags->n : 0;
	r = policy_parse(&c, text, len, ret);
	free(c.bad_integers);
	sort_diagnostics(diags, start);
	return r;
}

const PolicySettings *policy_settings(const Policy *p)
{
	return p ? &p->settings : NULL;
}

const char *policy_digest(const Policy *p)
{
	return p ? p->digest : NULL;
}

const char *policy_path(const Policy *p)
{
	return p ? p->path : NULL;
}

/* ---- evaluation ---- */

/* A view of M for coverage_rule_matches(): the same lists, not copied. */
static CoverageMatch match_view(const MatchSet *m)
{
	CoverageMatch v = {.uids = m->uids, .n_uids = m->n_uids};

	for (size_t f = 0; f < _FIELD_STRV_MAX; f++)
		v.strv[f] = m->strv[f];
	return v;
}

static CoverageOutcome outcome_view(const PolicyOutcome *o)
{
	return (CoverageOutcome){
	        .require = o->require,
	        .on_remote_set = o->on_remote_set,
	        .on_remote = o->on_remote,
	        .reason = o->reason,
	};
}

/* Which rule applies is decided by coverage.c, the code the PAM module's fallback runs on
 * the snapshot: the two cannot disagree. */
static bool rule_matches(const PolicyRule *r, const PolicyRequest *req, bool remote)
{
	CoverageMatch match = match_view(&r->match), not_ = match_view(&r->not );
	CoverageRequest creq = {
	        .user = req->user,
	        .uid = req->uid,
	        .groups = req->groups,
	        .service = req->service,
	        .tty = req->tty,
	        .remote = remote,
	};

	return coverage_rule_matches(&match, &not_, r->remote, &creq) > 0;
}

int policy_evaluate(const Policy *p, const PolicyRequest *req, PolicyDecision *ret)
{
	const PolicyOutcome *o = NULL;
	CoverageOutcome co;
	CoverageDecision cd = {};
	PolicyDecision d = {};
	bool remote;

	if (!p || !req || !ret || isempty(req->user) || isempty(req->service))
		return -EINVAL;
	for (char *const *g = req->groups; g && *g; g++)
		if (!*g)
			return -EINVAL;

	/* Fail safe: a caller can only add "remote", never take it away. */
	remote = req->remote || coverage_is_remote(req->rhost, req->tty);

	for (size_t i = 0; i < p->n_rules; i++)
		if (rule_matches(&p->rules[i], req, remote)) {
			o = &p->rules[i].outcome;
			d.rule_name = p->rules[i].name;
			d.line = p->rules[i].line;
			break;
		}
	if (!o) {
		o = &p->def;
		d.rule_name = "default";
		d.line = p->default_line;
		d.is_default = true;
	}
	d.file = p->path;
	d.user_verification = o->uv;
	d.user_presence = o->up;
	d.aaguid_allow = (const uint8_t(*)[16])o->aaguid_allow;
	d.n_aaguid_allow = o->n_aaguid_allow;
	d.aaguid_deny = (const uint8_t(*)[16])o->aaguid_deny;
	d.n_aaguid_deny = o->n_aaguid_deny;
	d.attestation = o->attestation;
	d.trust_anchors = o->trust_anchors;
	d.counter = o->counter;
	d.cached_elevation = o->cached_elevation;
	d.credentials = o->credentials;
	d.removal = o->removal;
	d.grace_ms = o->grace_ms;
	d.lock_verify_ms = o->lock_verify_ms;
	d.on_lock_failure = o->on_lock_failure;
	d.lockout_max_failures = o->lockout_max_failures;
	d.lockout_window_s = o->lockout_window_s;
	d.lockout_unlock_after_s = o->lockout_unlock_after_s;
	d.remote_lifetime_s = o->remote_lifetime_s;
	d.remote = remote;
	d.on_remote_set = o->on_remote_set;
	d.on_remote = o->on_remote_set ? o->on_remote : POLICY_ON_REMOTE_DENY;
	d.breakglass = o->breakglass;

	/* require, reason and the remote resolution: coverage.c, as for the snapshot. */
	co = outcome_view(o);
	coverage_outcome_resolve(&co, remote, &cd);
	d.require = cd.require;
	d.reason = cd.reason;
	d.remote_resolved = cd.remote_resolved;
	*ret = d;
	return 0;
}

bool policy_breakglass_allows(const Policy *p, const PolicyDecision *d, const char *service)
{
	return p && d && !isempty(service) && d->breakglass && d->require == POLICY_REQUIRE_KEY &&
	       strv_contains(p->settings.breakglass.services, service);
}

int policy_coverage(const Policy *p, CoverageSnapshot **ret)
{
	_cleanup_(coverage_snapshot_freep) CoverageSnapshot *s = NULL;

	if (!p || !ret)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->borrowed = true;
	memcpy(s->digest, p->digest, sizeof(s->digest));
	s->failmode = p->settings.failmode;
	if (p->n_rules > 0) {
		s->rules = calloc(p->n_rules, sizeof(CoverageRule));
		if (!s->rules)
			return -ENOMEM;
	}
	for (size_t i = 0; i < p->n_rules; i++)
		s->rules[i] = (CoverageRule){
		        .name = p->rules[i].name,
		        .match = match_view(&p->rules[i].match),
		        .not = match_view(&p->rules[i].not ),
		        .remote = p->rules[i].remote,
		        .outcome = outcome_view(&p->rules[i].outcome),
		};
	s->n_rules = p->n_rules;
	s->def = outcome_view(&p->def);
	*ret = TAKE_PTR(s);
	return 0;
}

/* ---- remote detection: lib/coverage.c, shared with the PAM module's fallback ---- */

bool policy_is_remote(const char *rhost, const char *tty)
{
	return coverage_is_remote(rhost, tty);
}

/* ---- explanation ---- */

static int aaguid_list(FILE *f, const uint8_t (*l)[16], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *b = l[i];

		fprintf(f, "%s%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		        i ? ", " : "", b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		        b[10], b[11], b[12], b[13], b[14], b[15]);
	}
	return 0;
}

static void explain_space(FILE *f, const char *name, const PolicySpace *sp)
{
	if (sp->percent)
		fprintf(f, "%s: below %u%% of the file system free\n", name, sp->percent);
	else if (sp->bytes)
		fprintf(f, "%s: below %" PRIu64 " bytes free\n", name, sp->bytes);
	else
		fprintf(f, "%s: off\n", name);
}

int policy_audit_explain(const PolicyAuditSettings *a, char **ret)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	size_t size = 0;

	if (!a || !ret)
		return -EINVAL;
	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	if (a->rotate_size)
		fprintf(f, "Rotation by size: when the trail passes %" PRIu64 " bytes\n",
		        a->rotate_size);
	else
		fprintf(f, "Rotation by size: off\n");
	if (a->rotate_age_s)
		fprintf(f, "Rotation by age: when the trail file is %" PRIu64 " s old\n",
		        a->rotate_age_s);
	else
		fprintf(f, "Rotation by age: off\n");
	fprintf(f, "Rotated files kept: %s", a->keep_files ? "" : "no limit");
	if (a->keep_files)
		fprintf(f, "the newest %" PRIu32, a->keep_files);
	if (a->keep_age_s)
		fprintf(f, ", none older than %" PRIu64 " s", a->keep_age_s);
	fprintf(f, " (oldest removed first, only when sealed)\n");
	fprintf(f, "Seal: every %" PRIu32 " records\n", a->seal_every);
	explain_space(f, "space_left", &a->space_left);
	fprintf(f, "space_left_action: %s\n",
	        strna(policy_audit_space_action_to_string(a->space_left_action)));
	explain_space(f, "admin_space_left", &a->admin_space_left);
	fprintf(f, "admin_space_left_action: %s\n",
	        strna(policy_audit_space_action_to_string(a->admin_space_left_action)));
	fprintf(f, "disk_full_action: %s\n",
	        a->disk_full_action == POLICY_AUDIT_SPACE_ROTATE
	                ? "rotate (remove the oldest sealed rotated files, keeping "
	                  "keep_min_files, and retry the record once)"
	                : "deny (covered logins are denied while the record cannot be written)");
	fprintf(f, "Rotated files never removed to make room: %" PRIu32 "\n", a->keep_min_files);
	if (fflush(f) != 0 || ferror(f))
		return -ENOMEM;
	fclose(TAKE_PTR(f));
	*ret = TAKE_PTR(buf);
	return 0;
}

int policy_decision_explain(const PolicyDecision *d, char **ret)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	size_t size = 0;
	static const char *const uv_words[_POLICY_UV_MAX] = {
	        [POLICY_UV_DISCOURAGED] = "discouraged (a touch is enough)",
	        [POLICY_UV_PREFERRED] = "preferred (PIN or biometric when the key has one)",
	        [POLICY_UV_REQUIRED] = "required (PIN or biometric on the key)",
	};
	static const char *const removal_words[_POLICY_REMOVAL_MAX] = {
	        [POLICY_REMOVAL_NONE] = "nothing happens",
	        [POLICY_REMOVAL_LOCK] = "the session is locked",
	        [POLICY_REMOVAL_TERMINATE] = "the session is terminated",
	        [POLICY_REMOVAL_END_ELEVATION] = "the elevated process (sudo, su) is ended",
	};

	if (!d || !ret || d->require < 0 || d->require >= _POLICY_REQUIRE_MAX)
		return -EINVAL;
	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;

	if (d->is_default)
		fprintf(f, "Rule: default (no rule matched) at %s:%u\n", strna(d->file), d->line);
	else
		fprintf(f, "Rule: %s at %s:%u\n", strna(d->rule_name), strna(d->file), d->line);
	fprintf(f, "Login: %s\n", d->remote ? "remote" : "local");

	switch (d->require) {
	case POLICY_REQUIRE_NONE:
		if (d->remote_resolved)
			fprintf(f, "Decision: not covered for this remote login (on_remote = "
			           "\"none\"): keyward steps aside and the other PAM modules "
			           "decide\n");
		else
			fprintf(f, "Decision: not covered: keyward steps aside and the other PAM "
			           "modules decide\n");
		break;
	case POLICY_REQUIRE_DENY:
		fprintf(f, "Decision: refused\n");
		if (d->reason)
			fprintf(f, "Reason: %s\n", d->reason);
		break;
	case POLICY_REQUIRE_SSH_KEY:
		fprintf(f, "Decision: a registered security-key SSH key is required (on_remote = "
		           "\"ssh-key\"): sshd's publickey login with it, and for an elevation a "
		           "fresh signature through the forwarded SSH agent\n");
		fprintf(f, "User presence (touch): %s\n",
		        d->user_presence ? "required" : "NOT required (turned off by the policy)");
		fprintf(f, "User verification: %s\n",
		        d->user_verification == POLICY_UV_REQUIRED
		                ? "required (the key must be registered with verify-required)"
		                : "as registered with the key (verify-required)");
		fprintf(f, "Sign counter: %s\n",
		        d->counter == POLICY_COUNTER_ALLOW_ZERO
		                ? "must increase, except that keys always reporting 0 are tolerated"
		                : "must increase (a rewound counter is refused as a possible "
		                  "clone)");
		fprintf(f,
		        "Elevation lifetime: %" PRIu32
		        " s (remote_lifetime; an agent-approved elevation is ended then)\n",
		        d->remote_lifetime_s);
		break;
	case POLICY_REQUIRE_KEY:
	default:
		fprintf(f, "Decision: a registered security key is required\n");
		fprintf(f, "User presence (touch): %s\n",
		        d->user_presence ? "required" : "NOT required (turned off by the policy)");
		fprintf(f, "User verification: %s\n",
		        d->user_verification >= 0 && d->user_verification < _POLICY_UV_MAX
		                ? uv_words[d->user_verification]
		                : "?");
		fprintf(f, "Authenticators: ");
		if (d->n_aaguid_allow > 0) {
			fprintf(f, "only AAGUIDs ");
			aaguid_list(f, d->aaguid_allow, d->n_aaguid_allow);
		} else
			fprintf(f, "any model");
		if (d->n_aaguid_deny > 0) {
			fprintf(f, "; never AAGUIDs ");
			aaguid_list(f, d->aaguid_deny, d->n_aaguid_deny);
		}
		fprintf(f, "\n");
		if (d->attestation == POLICY_ATTESTATION_VERIFIED) {
			fprintf(f, "Attestation: must chain to one of:");
			for (char *const *a = d->trust_anchors; a && *a; a++)
				fprintf(f, " %s", *a);
			fprintf(f, "\n");
		} else
			fprintf(f, "Attestation: not checked\n");
		fprintf(f, "Sign counter: %s\n",
		        d->counter == POLICY_COUNTER_ALLOW_ZERO
		                ? "must increase, except that keys always reporting 0 are tolerated"
		                : "must increase (a rewound counter is refused as a possible "
		                  "clone)");
		if (d->credentials != POLICY_CRED_SOURCE_LOCAL)
			fprintf(f, "Registered keys from: %s\n",
			        d->credentials == POLICY_CRED_SOURCE_DIRECTORY
			                ? "the directory (or its cache) only"
			                : "the local files and the directory (or its cache)");
		fprintf(f, "Elevation without a password prompt (sudo's cached timestamp): %s\n",
		        d->cached_elevation == POLICY_CACHED_ELEVATION_TOUCH
		                ? "a fresh touch of the key every time"
		                : "allowed while the key of the last authentication stays "
		                  "plugged (proven by a silent assertion), else a touch");
		fprintf(f, "On key removal: %s",
		        d->removal >= 0 && d->removal < _POLICY_REMOVAL_MAX
		                ? removal_words[d->removal]
		                : "?");
		if (d->removal != POLICY_REMOVAL_NONE) {
			if (d->grace_ms > 0)
				fprintf(f, " unless the same key returns within %" PRIu32 " ms",
				        d->grace_ms);
			else
				fprintf(f, " at once");
		}
		fprintf(f, "\n");
		if (d->removal == POLICY_REMOVAL_LOCK)
			fprintf(f,
			        "Lock check: logind must still report the session locked %" PRIu32
			        " ms after the lock, otherwise %s\n",
			        d->lock_verify_ms,
			        d->on_lock_failure == POLICY_LOCK_FAILURE_ALERT
			                ? "an alert is raised"
			                : "the session is terminated");
		if (d->lockout_max_failures > 0)
			fprintf(f,
			        "Lockout: after %" PRIu32 " failures within %" PRIu32
			        " s, for %" PRIu32 " s\n",
			        d->lockout_max_failures, d->lockout_window_s,
			        d->lockout_unlock_after_s);
		else
			fprintf(f, "Lockout: none\n");
		fprintf(f, "Remote logins: %s\n",
		        !d->on_remote_set ? "refused (the rule sets no on_remote)"
		        : d->on_remote == POLICY_ON_REMOTE_NONE
		                ? "not covered (on_remote = \"none\")"
		        : d->on_remote == POLICY_ON_REMOTE_SSH_KEY
		                ? "a registered security-key SSH key (on_remote = \"ssh-key\")"
		                : "refused (on_remote = \"deny\")");
		fprintf(f, "Break-glass recovery: %s\n",
		        d->breakglass ? "allowed by this rule, on the services of "
		                        "settings.breakglass, for a user without a usable key"
		                      : "not allowed (the rule does not set breakglass = true)");
		break;
	}
	if (fflush(f) != 0 || ferror(f))
		return -ENOMEM;
	fclose(TAKE_PTR(f));
	*ret = TAKE_PTR(buf);
	return 0;
}
