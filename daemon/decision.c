/* decision.c: one policy decision per login (decision.h). */
#include "decision.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "process.h"
#include "util.h"

static void *memdup(const void *p, size_t n)
{
	void *c = malloc(n);

	return c ? memcpy(c, p, n) : NULL;
}

static int dup_or_null(const char *s, char **ret)
{
	*ret = NULL;
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

int decision_new(const DecisionRequest *req, const PolicyDecision *pd, Decision **ret)
{
	_cleanup_decision_ Decision *d = NULL;
	uint8_t rnd[KEYWARD_TOKEN_BYTES];
	_cleanup_free_ char *hex = NULL;
	int r;

	if (!req || !req->user || !req->service || !pd || !ret)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->n_ref = 1;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -EIO;
	r = hex_encode(rnd, sizeof(rnd), &hex);
	explicit_bzero(rnd, sizeof(rnd));
	if (r < 0)
		return r;
	memcpy(d->id, hex, KEYWARD_TOKEN_CHARS);
	d->id[KEYWARD_TOKEN_CHARS] = '\0';
	explicit_bzero(hex, strlen(hex));

	d->uid = req->uid;
	d->caller_pid = req->caller_pid;
	d->caller_uid = req->caller_uid;
	if (req->caller_pid > 0 && pid_start_time(req->caller_pid, &d->caller_start) < 0)
		d->caller_start = 0;
	d->remote = pd->remote;
	if (dup_or_null(req->user, &d->user) < 0 || dup_or_null(req->service, &d->service) < 0 ||
	        dup_or_null(req->tty ?: "", &d->tty) < 0 ||
	        dup_or_null(req->rhost ?: "", &d->rhost) < 0 ||
	        dup_or_null(req->client_host, &d->client_host) < 0 ||
	        dup_or_null(req->policy_digest ?: "", &d->policy) < 0 ||
	        dup_or_null(pd->reason, &d->reason) < 0 ||
	        dup_or_null(pd->is_default ? "default" : pd->rule_name, &d->rule_name) < 0)
		return -ENOMEM;
	if (!d->rule_name && !(d->rule_name = strdup("default")))
		return -ENOMEM;
	if (pd->is_default)
		d->rule = strdup("default");
	else if (asprintf(&d->rule, "%s:%u", strna(pd->file), pd->line) < 0)
		d->rule = NULL;
	if (!d->rule)
		return -ENOMEM;

	d->require = pd->require;
	d->remote_resolved = pd->remote_resolved;
	d->user_verification = pd->user_verification;
	d->user_presence = pd->user_presence;
	d->counter = pd->counter;
	d->credentials = pd->credentials;
	d->cached_elevation = pd->cached_elevation;
	d->attestation = pd->attestation;
	if (pd->n_aaguid_allow > 0) {
		d->aaguid_allow = memdup(pd->aaguid_allow, pd->n_aaguid_allow * 16);
		if (!d->aaguid_allow)
			return -ENOMEM;
		d->n_aaguid_allow = pd->n_aaguid_allow;
	}
	if (pd->n_aaguid_deny > 0) {
		d->aaguid_deny = memdup(pd->aaguid_deny, pd->n_aaguid_deny * 16);
		if (!d->aaguid_deny)
			return -ENOMEM;
		d->n_aaguid_deny = pd->n_aaguid_deny;
	}
	d->lockout_max_failures = pd->lockout_max_failures;
	d->lockout_window_s = pd->lockout_window_s;
	d->lockout_unlock_after_s = pd->lockout_unlock_after_s;
	d->remote_lifetime_s = pd->remote_lifetime_s;
	d->removal = pd->removal;
	d->grace_ms = pd->grace_ms;
	d->lock_verify_ms = pd->lock_verify_ms;
	d->on_lock_failure = pd->on_lock_failure;
	d->breakglass = pd->breakglass;
	d->created_ms = now_monotonic_ms();
	*ret = TAKE_PTR(d);
	return 0;
}

Decision *decision_ref(Decision *d)
{
	if (d)
		d->n_ref++;
	return d;
}

Decision *decision_unref(Decision *d)
{
	if (!d || --d->n_ref > 0)
		return NULL;
	explicit_bzero(d->id, sizeof(d->id));
	free(d->user);
	free(d->service);
	free(d->tty);
	free(d->rhost);
	free(d->client_host);
	free(d->rule);
	free(d->rule_name);
	free(d->policy);
	free(d->reason);
	free(d->aaguid_allow);
	free(d->aaguid_deny);
	free(d);
	return NULL;
}

bool decision_matches(const Decision *d, const char *user, const char *service, const char *tty,
        const char *rhost, pid_t caller_pid)
{
	uint64_t start = 0;

	if (!d || !streq(d->user, strempty(user)) || !streq(d->service, strempty(service)) ||
	        !streq(d->tty, strempty(tty)) || !streq(d->rhost, strempty(rhost)))
		return false;
	if (d->caller_pid != caller_pid)
		return false;
	/* The same pid must still be the same process. */
	if (d->caller_start != 0 &&
	        (pid_start_time(caller_pid, &start) < 0 || start != d->caller_start))
		return false;
	return true;
}

static void table_expire(DecisionTable *t)
{
	uint64_t now = now_monotonic_ms();

	for (Decision **p = &t->head; *p;) {
		Decision *d = *p;

		if (now - d->created_ms > DECISION_LIFETIME_MS) {
			*p = d->next;
			d->next = NULL;
			decision_unref(d);
			t->n--;
		} else
			p = &d->next;
	}
}

/* Unlinks and drops the oldest decision for which PICK is true; false if none. */
static bool table_drop_oldest(DecisionTable *t, bool (*pick)(const Decision *, uid_t), uid_t uid)
{
	Decision **oldest = NULL;

	/* The list is newest first: the last match is the oldest. */
	for (Decision **p = &t->head; *p; p = &(*p)->next)
		if (pick(*p, uid))
			oldest = p;
	if (!oldest)
		return false;
	Decision *d = *oldest;
	*oldest = d->next;
	d->next = NULL;
	decision_unref(d);
	t->n--;
	return true;
}

static bool made_for_caller(const Decision *d, uid_t uid)
{
	return d->caller_uid == uid;
}

static bool made_for_non_root(const Decision *d, uid_t uid)
{
	return d->caller_uid != 0;
}

static bool any_decision(const Decision *d, uid_t uid)
{
	return true;
}

void decision_table_add(DecisionTable *t, Decision *d)
{
	size_t mine = 0;

	table_expire(t);
	if (d->caller_uid != 0) {
		for (Decision *o = t->head; o; o = o->next)
			mine += o->caller_uid == d->caller_uid;
		if (mine >= DECISION_MAX_PER_CALLER)
			(void)table_drop_oldest(t, made_for_caller, d->caller_uid);
	}
	if (t->n >= DECISION_TABLE_MAX && !table_drop_oldest(t, made_for_non_root, 0))
		(void)table_drop_oldest(t, any_decision, 0);
	d->next = t->head;
	t->head = decision_ref(d);
	t->n++;
}

Decision *decision_table_find(DecisionTable *t, const char *id)
{
	Decision *found = NULL;

	if (!id || strlen(id) != KEYWARD_TOKEN_CHARS)
		return NULL;
	table_expire(t);
	for (Decision *d = t->head; d; d = d->next)
		if (memcmp_const(d->id, id, KEYWARD_TOKEN_CHARS) == 0 && !found)
			found = d;
	return found && !found->spent ? found : NULL;
}

void decision_table_clear(DecisionTable *t)
{
	while (t->head) {
		Decision *d = t->head;

		t->head = d->next;
		d->next = NULL;
		decision_unref(d);
	}
	t->n = 0;
}
