/* policy-names.c: the one non-pure part of policy/ — checks the names a Policy mentions
 * against NSS (groups, users) and /etc/pam.d (services). Used by keywardctl only. */
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <search.h>
#include <stdarg.h>

#include "policy-internal.h"
#include "util.h"

/* Whether NSS knows NAME as a group (GROUP) or as a user: 0: unknown, 1: known, <0: the
 * lookup failed. */
static int nss_name_known(const char *name, bool group)
{
	_cleanup_free_ char *buf = NULL;
	struct group g, *gres = NULL;
	struct passwd pw, *pres = NULL;
	size_t size = 4096;

	for (;;) {
		int r;

		free(buf);
		buf = malloc(size);
		if (!buf)
			return -ENOMEM;
		if (group)
			r = getgrnam_r(name, &g, buf, size, &gres);
		else
			r = getpwnam_r(name, &pw, buf, size, &pres);
		if (r == ERANGE && size < 1024 * 1024) {
			size *= 2;
			continue;
		}
		if (r != 0)
			return -r;
		return group ? gres != NULL : pres != NULL;
	}
}

static int group_known(const char *name)
{
	return nss_name_known(name, true);
}

static int user_known(const char *name)
{
	return nss_name_known(name, false);
}

static int add(PolicyDiagnostics *d, PolicySeverity sev, const char *file, unsigned line,
        const char *fmt, ...) _printf_(5, 6);
static int add(PolicyDiagnostics *d, PolicySeverity sev, const char *file, unsigned line,
        const char *fmt, ...)
{
	PolicyDiagnostic *items;
	char *msg = NULL, *f;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	f = strdup(file);
	items = f ? reallocarray(d->items, d->n + 1, sizeof(PolicyDiagnostic)) : NULL;
	if (!items) {
		free(msg);
		free(f);
		return -ENOMEM;
	}
	d->items = items;
	items[d->n++] =
	        (PolicyDiagnostic){.severity = sev, .file = f, .line = line, .message = msg};
	return 0;
}

static int key_compare(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Names already looked up, so that a name repeated in many rules costs one NSS call
 * and one message. Keys are "<kind><name>"; returns 1 when new, 0 when seen. */
static int first_time(void **seen, char kind, const char *name)
{
	char *key, **slot;

	if (asprintf(&key, "%c%s", kind, name) < 0)
		return -ENOMEM;
	slot = tsearch(key, seen, key_compare);
	if (!slot) {
		free(key);
		return -ENOMEM;
	}
	if (*slot != key) {
		free(key);
		return 0;
	}
	return 1;
}

static int check_groups(const char *file, char *const *l, unsigned line, const char *rule,
        void **seen, PolicyDiagnostics *d, int *errors)
{
	for (char *const *g = l; g && *g; g++) {
		int k, r;

		r = first_time(seen, 'g', *g);
		if (r <= 0) {
			if (r < 0)
				return r;
			continue;
		}
		k = group_known(*g);
		if (k > 0)
			continue;
		if (k < 0)
			r = add(d, POLICY_SEVERITY_WARNING, file, line,
			        "rule '%s': group \"%s\" could not be looked up (%s)", rule, *g,
			        strerror(-k));
		else {
			r = add(d, POLICY_SEVERITY_ERROR, file, line,
			        "rule '%s': group \"%s\" does not exist (getgrnam)", rule, *g);
			(*errors)++;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* A trust anchor that cannot be read makes every enrollment under the rule fail. */
static int check_anchors(const char *file, const PolicyOutcome *o, const char *what,
        PolicyDiagnostics *d, int *errors)
{
	if (o->attestation != POLICY_ATTESTATION_VERIFIED)
		return 0;
	for (char *const *a = o->trust_anchors; a && *a; a++) {
		struct stat st;
		int r;

		if (stat(*a, &st) == 0 && S_ISREG(st.st_mode))
			continue;
		r = add(d, POLICY_SEVERITY_ERROR, file, o->trust_anchors_line,
		        "%s: trust anchor %s is not a readable file", what, *a);
		if (r < 0)
			return r;
		(*errors)++;
	}
	return 0;
}

static int check_rule_names(const char *file, const PolicyRule *rule, const char *root, void **seen,
        PolicyDiagnostics *d, int *errors)
{
	for (int pass = 0; pass < 2; pass++) {
		const MatchSet *m = pass == 0 ? &rule->match : &rule->not ;
		int r;

		r = check_groups(file, m->strv[FIELD_GROUPS], m->strv_line[FIELD_GROUPS],
		        rule->name, seen, d, errors);
		if (r < 0)
			return r;
		for (char *const *u = m->strv[FIELD_USERS]; u && *u; u++) {
			r = first_time(seen, 'u', *u);
			if (r < 0)
				return r;
			if (r == 0 || user_known(*u) != 0)
				continue;
			r = add(d, POLICY_SEVERITY_WARNING, file, m->strv_line[FIELD_USERS],
			        "rule '%s': user \"%s\" does not exist (getpwnam)", rule->name, *u);
			if (r < 0)
				return r;
		}
		for (char *const *s = m->strv[FIELD_SERVICES]; s && *s; s++) {
			_cleanup_free_ char *path = NULL, *vendor = NULL;
			struct stat st;

			r = first_time(seen, 's', *s);
			if (r < 0)
				return r;
			if (r == 0)
				continue;
			/* Where libpam looks: /etc/pam.d, then the vendor directory. */
			if (asprintf(&path, "%s/etc/pam.d/%s", root, *s) < 0 ||
			        asprintf(&vendor, "%s/usr/lib/pam.d/%s", root, *s) < 0)
				return -ENOMEM;
			if (stat(path, &st) == 0 || stat(vendor, &st) == 0)
				continue;
			r = add(d, POLICY_SEVERITY_WARNING, file, m->strv_line[FIELD_SERVICES],
			        "rule '%s': PAM service \"%s\" has no /etc/pam.d/%s or "
			        "/usr/lib/pam.d/%s (not installed?)",
			        rule->name, *s, *s, *s);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int policy_check_names(const Policy *p, const char *root, PolicyDiagnostics *d)
{
	void *seen = NULL;
	const char *file;
	int errors = 0, r = 0;

	if (!p || !d)
		return -EINVAL;
	file = p->path;
	root = root ?: "";

	if (p->settings.admin_group) {
		int k = group_known(p->settings.admin_group);

		if (k == 0) {
			r = add(d, POLICY_SEVERITY_ERROR, file, p->admin_group_line,
			        "admin_group \"%s\" does not exist (getgrnam)",
			        p->settings.admin_group);
			errors++;
		} else if (k < 0)
			r = add(d, POLICY_SEVERITY_WARNING, file, p->admin_group_line,
			        "admin_group \"%s\" could not be looked up (%s)",
			        p->settings.admin_group, strerror(-k));
		if (r < 0)
			return r;
	}
	r = check_anchors(file, &p->def, "default", d, &errors);
	for (size_t i = 0; r >= 0 && i < p->n_rules; i++) {
		const PolicyRule *rule = &p->rules[i];
		_cleanup_free_ char *what = NULL;

		if (asprintf(&what, "rule '%s'", rule->name) < 0) {
			r = -ENOMEM;
			break;
		}
		r = check_anchors(file, &rule->outcome, what, d, &errors);
		if (r >= 0)
			r = check_rule_names(file, rule, root, &seen, d, &errors);
	}
	tdestroy(seen, free);
	return r < 0 ? r : errors;
}
