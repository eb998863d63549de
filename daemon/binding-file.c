/* binding-file.c: a session binding in memory and on disk — the Binding object, its
 * strict key=value file format (docs/removal.md), no I/O: pure formatting and parsing. */
#include "binding.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>

#include "util.h"

static const char *const binding_state_table[_BINDING_STATE_MAX] = {
        [BINDING_BOUND] = "bound",
        [BINDING_GRACE] = "grace",
        [BINDING_ACTING] = "acting",
        [BINDING_DONE] = "done",
};

DEFINE_STRING_TABLE_LOOKUP(binding_state, BindingState, binding_state_table)

void binding_free(Binding *b)
{
	if (!b)
		return;
	sd_event_source_disable_unref(b->grace_timer);
	sd_event_source_disable_unref(b->verify_timer);
	sd_event_source_disable_unref(b->kill_timer);
	free(b->tree);
	sd_bus_slot_unref(b->call_slot);
	sd_bus_slot_unref(b->match_slot);
	sd_bus_slot_unref(b->resolve_slot);
	free(b->user);
	free(b->session_id);
	free(b->session_path);
	free(b->session_type);
	free(b->service);
	free(b->tty);
	free(b->cred_id);
	free(b->cred_label);
	free(b->hidraw_path);
	free(b->sysfs_path);
	free(b->rule);
	free(b->rule_name);
	free(b->policy);
	free(b->removed_device);
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
};
_Static_assert(ELEMENTSOF(binding_keys) <= 32, "binding_parse() tracks seen keys in 32 bits");

static int binding_key_index(const char *k)
{
	for (size_t i = 0; i < ELEMENTSOF(binding_keys); i++)
		if (streq(binding_keys[i].name, k))
			return (int)i;
	return -1;
}

/* Parses one binding file; *ret_why gets a static reason on failure. */
int binding_parse(Manager *m, const char *id, char *text, Binding **ret, const char **ret_why)
{
	Binding *b = binding_new(m);
	char *line, *save = NULL;
	uint32_t seen = 0;
	int r = 0;

	if (!b)
		return -ENOMEM;
	snprintf(b->id, sizeof(b->id), "%s", id);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '='), *v, **target = NULL;
		uint64_t n;
		int k;

		if (!eq) {
			*ret_why = "a line without '='";
			goto fail;
		}
		*eq = '\0';
		v = eq + 1;
		k = binding_key_index(line);
		if (k < 0) {
			*ret_why = "an unknown key";
			goto fail;
		}
		if (seen & (UINT32_C(1) << k)) {
			*ret_why = "a key given twice";
			goto fail;
		}
		seen |= UINT32_C(1) << k;
		if (!binding_value_ok(v)) {
			*ret_why = "a value that is too long or holds control characters";
			goto fail;
		}
		if (binding_keys[k].string)
			target = (char **)((uint8_t *)b + binding_keys[k].offset);
		else if (streq(line, "version")) {
			if (!streq(v, "1")) {
				*ret_why = "an unknown version";
				goto fail;
			}
		} else if (streq(line, "uid") && parse_u64(v, UINT32_MAX - 1, &n) >= 0)
			b->uid = (uid_t)n;
		else if (streq(line, "pid") && parse_u64(v, INT32_MAX, &n) >= 0)
			b->pid = (pid_t)n;
		else if (streq(line, "pgid") && parse_u64(v, INT32_MAX, &n) >= 0)
			b->pgid = (pid_t)n;
		else if (streq(line, "pid_start") && parse_u64(v, UINT64_MAX, &n) >= 0)
			b->pid_start = n;
		else if (streq(line, "created") && parse_u64(v, UINT64_MAX, &n) >= 0)
			b->created_ms = n;
		else if (streq(line, "grace_ms") && parse_u64(v, UINT32_MAX, &n) >= 0)
			b->grace_ms = (uint32_t)n;
		else if (streq(line, "lock_verify_ms") && parse_u64(v, UINT32_MAX, &n) >= 0)
			b->lock_verify_ms = (uint32_t)n;
		else if (streq(line, "removal") && policy_removal_from_string(v) >= 0)
			b->removal = policy_removal_from_string(v);
		else if (streq(line, "on_lock_failure") && policy_lock_failure_from_string(v) >= 0)
			b->on_lock_failure = policy_lock_failure_from_string(v);
		else if (streq(line, "state") && (streq(v, "bound") || streq(v, "done")))
			b->state = binding_state_from_string(v);
		else {
			*ret_why = "an invalid value";
			goto fail;
		}
		if (target) {
			*target = strdup(v);
			if (!*target) {
				r = -ENOMEM;
				goto fail;
			}
		}
	}
	for (size_t i = 0; i < ELEMENTSOF(binding_keys); i++)
		if (binding_keys[i].required && !(seen & (UINT32_C(1) << i))) {
			*ret_why = "missing keys";
			goto fail;
		}
	if (!valid_user_name(b->user) || (!b->session_id && b->pid <= 0) || b->pid == 1 ||
	        (!b->sysfs_path && !b->hidraw_path)) {
		*ret_why = "neither a session nor a process, no device, or an invalid user";
		goto fail;
	}
	*ret = b;
	return 0;
fail:
	binding_free(b);
	return r < 0 ? r : -EBADMSG;
}
