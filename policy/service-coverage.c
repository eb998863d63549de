/* service-coverage.c: the PAM services present (pam-stack.c), whether each reaches
 * pam_keyward.so, the rules that name it, and where the policy asks a user for a key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pam-stack.h"
#include "policy-internal.h"
#include "service-coverage.h"
#include "util.h"

const ServiceHint service_hints[] = {
        {"sudo", "sudo", false, "/dev/pts/0", true},
        {"sudo-i", "sudo -i", false, "/dev/pts/0", true},
        {"su", "su", false, "/dev/pts/0", false},
        {"su-l", "su -l", false, "/dev/pts/0", false},
        {"runuser", "runuser", false, "/dev/pts/0", false},
        {"runuser-l", "runuser -l", false, "/dev/pts/0", false},
        {"doas", "doas", false, "/dev/pts/0", false},
        {"login", "console login", false, "/dev/tty1", false},
        {"sshd", "SSH logins", false, "ssh", false},
        {"gdm-password", "GDM (display manager)", true, "/dev/tty1", false},
        {"gdm-fingerprint", "GDM fingerprint login (display manager)", true, "/dev/tty1", false},
        {"lightdm", "LightDM (display manager)", true, ":0", false},
        {"sddm", "SDDM (display manager)", true, "/dev/tty1", false},
        {"polkit-1", "polkit (pkexec, admin prompts)", false, NULL, false},
        {},
};

const ServiceHint *service_hint_lookup(const char *service)
{
	for (const ServiceHint *h = service_hints; service && h->service; h++)
		if (streq(h->service, service))
			return h;
	return NULL;
}

ServiceCoverage *service_coverage_free(ServiceCoverage *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n; i++) {
		free(c->entries[i].name);
		strv_free(c->entries[i].rules);
	}
	free(c->entries);
	free(c);
	return NULL;
}

const ServiceCoverageEntry *service_coverage_find(const ServiceCoverage *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->n; i++)
		if (streq(c->entries[i].name, name))
			return &c->entries[i];
	return NULL;
}

static ServiceCoverageEntry *entry_add(ServiceCoverage *c, const char *name, bool present)
{
	ServiceCoverageEntry *n;

	n = reallocarray(c->entries, c->n + 1, sizeof(ServiceCoverageEntry));
	if (!n)
		return NULL;
	c->entries = n;
	n = &c->entries[c->n];
	*n = (ServiceCoverageEntry){.name = strdup(name), .present = present};
	n->rules = calloc(1, sizeof(char *));
	if (!n->name || !n->rules) {
		free(n->name);
		free(n->rules);
		return NULL;
	}
	c->n++;
	return n;
}

/* Reads the stack of TYPE of E and whether it reaches pam_keyward.so. A missing stack of
 * one type (no account lines) is no error. */
static void entry_read_stack(ServiceCoverageEntry *e, const char *root, const char *type, bool *ret)
{
	PamStack s = {};
	int r;

	r = pam_stack_load(root, e->name, type, &s);
	if (r < 0 && r != -ENOENT && e->error == 0)
		e->error = r;
	*ret = r >= 0 && pam_stack_has(&s, "pam_keyward.so");
	pam_stack_done(&s);
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(
	        ((const ServiceCoverageEntry *)a)->name, ((const ServiceCoverageEntry *)b)->name);
}

int service_coverage_load(const Policy *p, const char *root, ServiceCoverage **ret)
{
	_cleanup_(service_coverage_freep) ServiceCoverage *c = NULL;
	_cleanup_strv_free_ char **names = NULL;
	int r;

	if (!ret)
		return -EINVAL;
	root = root ?: "";
	r = pam_services_list(root, &names);
	if (r < 0)
		return r;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (char **s = names; *s; s++) {
		ServiceCoverageEntry *e = entry_add(c, *s, true);

		if (!e)
			return -ENOMEM;
		entry_read_stack(e, root, "auth", &e->keyward_auth);
		entry_read_stack(e, root, "account", &e->keyward_account);
		entry_read_stack(e, root, "session", &e->keyward_session);
	}
	for (size_t i = 0; p && i < p->n_rules; i++) {
		const PolicyRule *rule = &p->rules[i];

		for (char *const *s = rule->match.strv[FIELD_SERVICES]; s && *s; s++) {
			ServiceCoverageEntry *e =
			        (ServiceCoverageEntry *)service_coverage_find(c, *s);

			if (!e) {
				/* Only a name a PAM file could have: others never match a login. */
				if (!pam_service_name_valid(*s))
					continue;
				e = entry_add(c, *s, false);
				if (!e)
					return -ENOMEM;
			}
			if (!strv_contains(e->rules, rule->name)) {
				r = strv_extend(&e->rules, rule->name);
				if (r < 0)
					return r;
			}
		}
	}
	if (c->n > 0)
		qsort(c->entries, c->n, sizeof(ServiceCoverageEntry), cmp_entry);
	*ret = TAKE_PTR(c);
	return 0;
}

static int evaluate(const Policy *p, const ServiceCoverageQuery *q, const PolicyRequest *req,
        PolicyDecision *ret)
{
	if (q->evaluate)
		return q->evaluate(req, ret, q->userdata);
	return policy_evaluate(p, req, ret);
}

int service_coverage_user(const ServiceCoverage *c, const Policy *p, const ServiceCoverageQuery *q,
        ServiceCoverageHit **ret, size_t *ret_n)
{
	_cleanup_free_ ServiceCoverageHit *hits = NULL;
	size_t n = 0;
	int r;

	if (!c || !q || !ret || !ret_n || isempty(q->user) || (!p && !q->evaluate))
		return -EINVAL;
	for (size_t i = 0; i < c->n; i++) {
		const ServiceCoverageEntry *e = &c->entries[i];
		const ServiceHint *h = service_hint_lookup(e->name);
		PolicyDecision d = {};
		bool key = false;

		if (!e->present && !q->include_absent)
			continue;
		/* Without a tty, then with the service's usual one. */
		for (int k = 0; k < 2 && !key; k++) {
			PolicyRequest req = {
			        .user = q->user,
			        .uid = q->uid,
			        .groups = q->groups,
			        .service = e->name,
			        .tty = k == 0 ? NULL
			               : h    ? h->tty
			                      : NULL,
			};

			if (k == 1 && !req.tty)
				break;
			r = evaluate(p, q, &req, &d);
			if (r < 0)
				return r;
			key = d.require == POLICY_REQUIRE_KEY;
		}
		if (!key)
			continue;
		ServiceCoverageHit *m = reallocarray(hits, n + 1, sizeof(ServiceCoverageHit));
		if (!m)
			return -ENOMEM;
		hits = m;
		hits[n++] = (ServiceCoverageHit){.entry = e, .decision = d};
	}
	*ret = TAKE_PTR(hits);
	*ret_n = n;
	return 0;
}

int service_coverage_hits_join(const ServiceCoverageHit *hits, size_t n, char **ret)
{
	size_t len = 1;
	char *s;

	for (size_t i = 0; i < n; i++)
		len += strlen(hits[i].entry->name) + 2;
	s = malloc(len);
	if (!s)
		return -ENOMEM;
	s[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			strcat(s, ", ");
		strcat(s, hits[i].entry->name);
	}
	*ret = s;
	return 0;
}
