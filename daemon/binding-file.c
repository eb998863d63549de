/* binding-file.c: a session binding in memory and on disk — the Binding object, its
 * strict key=value file format (docs/removal.md), no I/O: pure formatting and parsing. */
#include "binding.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>

#include "intern.h"
#include "util.h"

static const char *const binding_state_table[_BINDING_STATE_MAX] = {
        [BINDING_BOUND] = "bound",
        [BINDING_GRACE] = "grace",
        [BINDING_ACTING] = "acting",
        [BINDING_DONE] = "done",
};

DEFINE_STRING_TABLE_LOOKUP(binding_state, BindingState, binding_state_table)

BindingRun *binding_run(Binding *b)
{
	if (!b->run)
		b->run = calloc(1, sizeof(BindingRun));
	return b->run;
}

static void binding_run_free(BindingRun *r)
{
	if (!r)
		return;
	sd_event_source_disable_unref(r->grace_timer);
	sd_event_source_disable_unref(r->verify_timer);
	sd_event_source_disable_unref(r->kill_timer);
	free(r->tree);
	sd_bus_slot_unref(r->call_slot);
	sd_bus_slot_unref(r->match_slot);
	sd_bus_slot_unref(r->resolve_slot);
	intern_unref(r->removed_device);
	free(r);
}

void binding_run_release(Binding *b)
{
	BindingRun *r = b->run;

	if (!r || r->grace_timer || r->verify_timer || r->kill_timer || r->tree || r->call_slot ||
	        r->match_slot || r->resolve_slot || r->unbind_requested)
		return;
	binding_run_free(r);
	b->run = NULL;
}

void binding_free(Binding *b)
{
	if (!b)
		return;
	binding_run_free(b->run);
	sd_event_source_disable_unref(b->expiry_timer);
	intern_unref(b->user);
	intern_unref(b->session_id);
	intern_unref(b->session_path);
	intern_unref(b->session_type);
	intern_unref(b->service);
	intern_unref(b->tty);
	intern_unref(b->cred_id);
	intern_unref(b->cred_label);
	intern_unref(b->hidraw_path);
	intern_unref(b->sysfs_path);
	intern_unref(b->rule);
	intern_unref(b->rule_name);
	intern_unref(b->policy);
	free(b);
}

Binding *binding_new(Manager *m)
{
	Binding *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->manager = m;
	b->uid = (uid_t)-1;
	return b;
}

bool binding_value_ok(const char *v)
{
	if (!v)
		return true;
	if (strlen(v) > BINDING_VALUE_MAX)
		return false;
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

int binding_format(const Binding *b, char **ret, size_t *ret_len)
{
	char *text = NULL;
	const char *strings[] = {b->user, b->session_id, b->session_path, b->session_type,
	        b->service, b->tty, b->cred_id, b->cred_label, b->hidraw_path, b->sysfs_path,
	        b->rule};
	BindingState state = b->state == BINDING_DONE ? BINDING_DONE : BINDING_BOUND;
	size_t len = 0;
	FILE *f;

	/* Grace and acting are not persisted: after a restart the key is looked for again
	 * and, if it is still gone, the action runs again (fail closed). */
	for (size_t i = 0; i < ELEMENTSOF(strings); i++)
		if (!binding_value_ok(strings[i]))
			return -EINVAL;
	f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	fprintf(f, "version=1\nuser=%s\nuid=%u\n", b->user, (unsigned)b->uid);
	if (b->session_id)
		fprintf(f, "session=%s\n", b->session_id);
	if (b->session_path)
		fprintf(f, "session_path=%s\n", b->session_path);
	if (b->session_type)
		fprintf(f, "session_type=%s\n", b->session_type);
	fprintf(f, "pid=%d\npid_start=%" PRIu64 "\npgid=%d\n", (int)b->pid, b->pid_start,
	        (int)b->pgid);
	fprintf(f, "service=%s\ntty=%s\n", strempty(b->service), strempty(b->tty));
	if (b->cred_id)
		fprintf(f, "cred_id=%s\n", b->cred_id);
	if (b->cred_label)
		fprintf(f, "cred_label=%s\n", b->cred_label);
	if (b->hidraw_path)
		fprintf(f, "hidraw=%s\n", b->hidraw_path);
	if (b->sysfs_path)
		fprintf(f, "sysfs=%s\n", b->sysfs_path);
	if (b->rule_name)
		fprintf(f, "rule_name=%s\n", b->rule_name);
	if (b->policy)
		fprintf(f, "policy=%s\n", b->policy);
	if (b->action_seq)
		fprintf(f, "action_seq=%" PRIu64 "\n", b->action_seq);
	if (b->expires_ms)
		fprintf(f, "expires=%" PRIu64 "\n", b->expires_ms);
	fprintf(f,
	        "created=%" PRIu64 "\nrule=%s\nremoval=%s\ngrace_ms=%u\nlock_verify_ms=%u\n"
	        "on_lock_failure=%s\nstate=%s\n",
	        b->created_ms, strempty(b->rule), policy_removal_to_string(b->removal), b->grace_ms,
	        b->lock_verify_ms, policy_lock_failure_to_string(b->on_lock_failure),
	        binding_state_to_string(state));
	if (fclose(f) != 0 || !text) {
		free(text);
		return -ENOMEM;
	}
	*ret = text;
	*ret_len = len;
	return 0;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (isempty(s) || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* The keys of a binding file, each at most once: whether binding_format() always writes
 * it, and for plain string values the Binding field it fills. */
typedef struct BindingKey {
	const char *name;
	bool required;
	bool string;
	size_t offset; /* of the char * field, when string */
} BindingKey;

#define KEY(n, req)                                                                                \
	{                                                                                          \
		.name = (n), .required = (req)                                                     \
	}
#define STRING_KEY(n, req, field)                                                                  \
	{                                                                                          \
		.name = (n), .required = (req), .string = true, .offset = offsetof(Binding, field) \
	}

static const BindingKey binding_keys[] = {
        KEY("version", true),
        STRING_KEY("user", true, user),
        KEY("uid", true),
        STRING_KEY("session", false, session_id),
        STRING_KEY("session_path", false, session_path),
        STRING_KEY("session_type", false, session_type),
        KEY("pid", true),
        KEY("pid_start", true),
        KEY("pgid", true),
        STRING_KEY("service", true, service),
        STRING_KEY("tty", true, tty),
        STRING_KEY("cred_id", false, cred_id),
        STRING_KEY("cred_label", false, cred_label),
        STRING_KEY("hidraw", false, hidraw_path),
        STRING_KEY("sysfs", false, sysfs_path),
        KEY("created", true),
        STRING_KEY("rule", true, rule),
        STRING_KEY("rule_name", false, rule_name),
        STRING_KEY("policy", false, policy),
        KEY("removal", true),
        KEY("grace_ms", true),
        KEY("lock_verify_ms", true),
        KEY("on_lock_failure", true),
        KEY("state", true),
        KEY("action_seq", false),
        KEY("expires", false),
};
_Static_assert(ELEMENTSOF(binding_keys) <= 32, "binding_parse() tracks seen keys in 32 bits");

/* The index of key K; HINT is tried first (binding_format() writes the keys in an order
 * close to the table's, so the key after the last one found is usually it). */
static int binding_key_index_from(const char *k, size_t hint)
{
	if (hint < ELEMENTSOF(binding_keys) && streq(binding_keys[hint].name, k))
		return (int)hint;
	for (size_t i = 0; i < ELEMENTSOF(binding_keys); i++)
		if (streq(binding_keys[i].name, k))
			return (int)i;
	return -1;
}

static int binding_key_index(const char *k)
{
	return binding_key_index_from(k, 0);
}

#define KEY_BIT(k) (UINT32_C(1) << (k))

/* Splits TEXT (LEN bytes, modified) into the value of each key, in table order
 * (pointers into TEXT). Strict: the first line that is not "known key=value", a key given
 * twice or a NUL byte fails (-EBADMSG, *ret_why). Salvage: such lines are skipped and the
 * first problem noted; a key given twice with different values is marked in
 * *ret_conflict; an unterminated last line (binding_format() ends every line) is skipped,
 * as it may have been cut short. */
static int binding_split(char *text, size_t len, bool salvage, const char **values,
        uint32_t *ret_conflict, const char **ret_why)
{
	const char *why = NULL;
	uint32_t conflict = 0;
	char *end = text + len;
	size_t hint = 0;

	for (char *line = text, *nl; line < end; line = nl + 1) {
		const char *problem = NULL;
		char *eq;
		int k;

		nl = memchr(line, '\n', (size_t)(end - line));
		if (!nl) {
			if (salvage) {
				why = why ?: "a last line that is cut short";
				break;
			}
			nl = end;
		}
		*nl = '\0';
		if (line == nl)
			continue;
		eq = strchr(line, '=');
		if (strlen(line) != (size_t)(nl - line))
			problem = "a NUL byte";
		else if (!eq)
			problem = "a line without '='";
		else {
			*eq = '\0';
			k = binding_key_index_from(line, hint);
			hint = k < 0 ? 0 : (size_t)k + 1;
			if (k < 0)
				problem = "an unknown key";
			else if (!values[k])
				values[k] = eq + 1;
			else if (!salvage)
				problem = "a key given twice";
			else if (!streq(values[k], eq + 1)) {
				conflict |= KEY_BIT(k);
				why = why ?: "a key given twice with different values";
			}
		}
		if (!problem)
			continue;
		if (!salvage) {
			*ret_why = problem;
			return -EBADMSG;
		}
		why = why ?: problem;
	}
	if (ret_conflict)
		*ret_conflict = conflict;
	if (why)
		*ret_why = why;
	return 0;
}

/* Sets the field of key K from V: -EINVAL (*ret_why) for a value binding_format() would
 * not write, -ENOMEM. */
static int binding_set(Binding *b, size_t k, const char *v, const char **ret_why)
{
	const char *key = binding_keys[k].name;
	uint64_t n;

	if (!binding_value_ok(v)) {
		*ret_why = "a value that is too long or holds control characters";
		return -EINVAL;
	}
	if (binding_keys[k].string) {
		const char **target =
		        (const char **)(void *)((uint8_t *)b + binding_keys[k].offset);

		return intern_replace(target, v);
	}
	if (streq(key, "version")) {
		if (streq(v, "1"))
			return 0;
		*ret_why = "an unknown version";
		return -EINVAL;
	}
	if (streq(key, "uid") && parse_u64(v, UINT32_MAX - 1, &n) >= 0)
		b->uid = (uid_t)n;
	else if (streq(key, "pid") && parse_u64(v, INT32_MAX, &n) >= 0)
		b->pid = (pid_t)n;
	else if (streq(key, "pgid") && parse_u64(v, INT32_MAX, &n) >= 0)
		b->pgid = (pid_t)n;
	else if (streq(key, "pid_start") && parse_u64(v, UINT64_MAX, &n) >= 0)
		b->pid_start = n;
	else if (streq(key, "action_seq") && parse_u64(v, UINT64_MAX, &n) >= 0 && n > 0)
		b->action_seq = n;
	else if (streq(key, "expires") && parse_u64(v, UINT64_MAX, &n) >= 0 && n > 0)
		b->expires_ms = n;
	else if (streq(key, "created") && parse_u64(v, UINT64_MAX, &n) >= 0)
		b->created_ms = n;
	else if (streq(key, "grace_ms") && parse_u64(v, UINT32_MAX, &n) >= 0)
		b->grace_ms = (uint32_t)n;
	else if (streq(key, "lock_verify_ms") && parse_u64(v, UINT32_MAX, &n) >= 0)
		b->lock_verify_ms = (uint32_t)n;
	else if (streq(key, "removal") && policy_removal_from_string(v) >= 0)
		b->removal = policy_removal_from_string(v);
	else if (streq(key, "on_lock_failure") && policy_lock_failure_from_string(v) >= 0)
		b->on_lock_failure = policy_lock_failure_from_string(v);
	else if (streq(key, "state") && (streq(v, "bound") || streq(v, "done")))
		b->state = binding_state_from_string(v);
	else {
		*ret_why = "an invalid value";
		return -EINVAL;
	}
	return 0;
}

/* Parses one binding file; *ret_why gets a static reason on failure. */
int binding_parse(Manager *m, const char *id, char *text, Binding **ret, const char **ret_why)
{
	const char *values[ELEMENTSOF(binding_keys)] = {};
	Binding *b = binding_new(m);
	int r;

	if (!b)
		return -ENOMEM;
	snprintf(b->id, sizeof(b->id), "%s", id);
	r = binding_split(text, strlen(text), false, values, NULL, ret_why);
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(binding_keys); i++)
		if (values[i])
			r = binding_set(b, i, values[i], ret_why);
		else if (binding_keys[i].required) {
			*ret_why = "missing keys";
			r = -EBADMSG;
		}
	/* (no device: only an SSH agent's elevation, which has a lifetime and a process) */
	if (r >= 0 &&
	        (!valid_user_name(b->user) || (!b->session_id && b->pid <= 0) || b->pid == 1 ||
	                (!b->sysfs_path && !b->hidraw_path && (!b->expires_ms || b->pid <= 1)))) {
		*ret_why = "neither a session nor a process, no device, or an invalid user";
		r = -EBADMSG;
	}
	if (r < 0) {
		binding_free(b);
		return r == -ENOMEM ? r : -EBADMSG;
	}
	*ret = b;
	return 0;
}

static void free_and_null(const char **p)
{
	intern_unref(*p);
	*p = NULL;
}

/* A corrupt binding of the VALUES binding_split() salvaged, less CONFLICT and the invalid
 * ones; *ret_set gets the keys it took. */
static int binding_from_values(Manager *m, const char *id, const char *const *values,
        uint32_t conflict, uint32_t *ret_set, Binding **ret)
{
	Binding *b = binding_new(m);
	uint32_t set = 0;

	if (!b)
		return -ENOMEM;
	snprintf(b->id, sizeof(b->id), "%s", id);
	for (size_t i = 0; i < ELEMENTSOF(binding_keys); i++) {
		const char *problem = NULL;
		int r;

		if (!values[i] || (conflict & KEY_BIT(i)))
			continue;
		r = binding_set(b, i, values[i], &problem);
		if (r == -ENOMEM) {
			binding_free(b);
			return r;
		}
		if (r >= 0)
			set |= KEY_BIT(i);
	}
	/* What a session id or a user name must look like; anything else names nobody. The
	 * session's object path and type are asked of logind again, not taken from a file
	 * that may not match its own session id. */
	if (b->session_id &&
	        (isempty(b->session_id) || strlen(b->session_id) > KEYWARD_MAX_SESSION_ID))
		free_and_null(&b->session_id);
	free_and_null(&b->session_path);
	free_and_null(&b->session_type);
	if (b->user && !valid_user_name(b->user))
		free_and_null(&b->user);
	b->corrupt = true;
	b->state = BINDING_BOUND; /* state=done of a corrupt file proves nothing */
	*ret_set = set;
	*ret = b;
	return 0;
}

int binding_salvage(Manager *m, const char *id, const char *text, size_t len,
        Binding *ret[static 2], bool *ret_rule_action)
{
	_cleanup_free_ char *copy = NULL;
	const char *values[ELEMENTSOF(binding_keys)] = {}, *why = NULL;
	uint32_t conflict = 0, set = 0,
	         both = KEY_BIT(binding_key_index("pid")) | KEY_BIT(binding_key_index("pid_start"));
	bool rule_action, session, process;
	PolicyRemoval read;
	Binding *b = NULL, *e = NULL;
	int r;

	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, text, len);
	copy[len] = '\0';
	(void)binding_split(copy, len, true, values, &conflict, &why);
	r = binding_from_values(m, id, values, conflict, &set, &b);
	if (r < 0)
		return r;
	rule_action = set & KEY_BIT(binding_key_index("removal"));
	read = b->removal;
	session = b->session_id != NULL;
	process = (set & both) == both && b->pid > 1 && b->pid_start > 0;
	if (!process)
		b->pid = 0, b->pid_start = 0;
	if (!session && !process) {
		binding_free(b);
		ret[0] = ret[1] = NULL;
		*ret_rule_action = false;
		return 0;
	}
	/* The rule's action where it can be read and applies to what is identified; else the
	 * strictest: the session is terminated, the elevation ended — both when the file
	 * names both (the session id may be garbled while the process is not, or the other
	 * way round). */
	if (!rule_action && session && process) {
		r = binding_from_values(m, id, values, conflict, &set, &e);
		if (r < 0) {
			binding_free(b);
			return r;
		}
		free_and_null(&e->session_id);
		e->removal = POLICY_REMOVAL_END_ELEVATION;
		b->pid = 0, b->pid_start = 0;
		b->removal = POLICY_REMOVAL_TERMINATE;
	} else if (!session)
		b->removal = POLICY_REMOVAL_END_ELEVATION;
	else if (!rule_action || (b->removal == POLICY_REMOVAL_END_ELEVATION && !process))
		b->removal = POLICY_REMOVAL_TERMINATE;
	ret[0] = b;
	ret[1] = e;
	*ret_rule_action = rule_action && b->removal == read;
	return e ? 2 : 1;
}
