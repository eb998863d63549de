/* ssh-challenge.c: the table of AgentChallenge's challenges (ssh-challenge.h). */
#include "ssh-challenge.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util.h"

SshChallenge *ssh_challenge_free(SshChallenge *c)
{
	if (!c)
		return NULL;
	decision_unref(c->decision);
	free(c->cred_id);
	explicit_bzero(c, sizeof(*c));
	free(c);
	return NULL;
}

/* Unlinks and frees the entry *PP points to. */
static void table_drop(SshChallengeTable *t, SshChallenge **pp)
{
	SshChallenge *c = *pp;

	*pp = c->next;
	t->n--;
	ssh_challenge_free(c);
}

static void table_expire(SshChallengeTable *t)
{
	uint64_t now = now_monotonic_ms();

	for (SshChallenge **pp = &t->head; *pp;)
		if (now - (*pp)->created_ms >= SSH_CHALLENGE_LIFETIME_MS)
			table_drop(t, pp);
		else
			pp = &(*pp)->next;
}

/* Drops the oldest entry (of UID when not (uid_t)-1). */
static void table_drop_oldest(SshChallengeTable *t, uid_t uid)
{
	SshChallenge **oldest = NULL;

	for (SshChallenge **pp = &t->head; *pp; pp = &(*pp)->next)
		if (uid == (uid_t)-1 || (*pp)->caller_uid == uid)
			oldest = pp;
	if (oldest)
		table_drop(t, oldest);
}

int ssh_challenge_add(SshChallengeTable *t, Decision *d, pid_t caller_pid, uint64_t caller_start,
        uid_t caller_uid, const char *cred_id, const SshChallenge **ret)
{
	_cleanup_(ssh_challenge_freep) SshChallenge *c = NULL;
	uint8_t rnd[KEYWARD_TOKEN_BYTES];
	size_t mine = 0;

	if (!t || !d || !cred_id || !ret)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cred_id = strdup(cred_id);
	if (!c->cred_id)
		return -ENOMEM;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd) ||
	        getrandom(c->challenge, sizeof(c->challenge), 0) != (ssize_t)sizeof(c->challenge))
		return -EIO;
	hex_encode_to(rnd, sizeof(rnd), c->id);
	c->id[KEYWARD_TOKEN_CHARS] = '\0';
	c->decision = decision_ref(d);
	c->caller_pid = caller_pid;
	c->caller_start = caller_start;
	c->caller_uid = caller_uid;
	c->created_ms = now_monotonic_ms();

	table_expire(t);
	for (SshChallenge *i = t->head; i; i = i->next)
		if (i->caller_uid == caller_uid)
			mine++;
	if (caller_uid != 0 && mine >= SSH_CHALLENGE_MAX_PER_UID)
		table_drop_oldest(t, caller_uid);
	/* Full: a non-root caller's oldest goes first, root's only when there is no other. */
	while (t->n >= SSH_CHALLENGE_MAX) {
		SshChallenge **victim = NULL;

		for (SshChallenge **pp = &t->head; *pp; pp = &(*pp)->next)
			if ((*pp)->caller_uid != 0)
				victim = pp;
		if (victim)
			table_drop(t, victim);
		else
			table_drop_oldest(t, (uid_t)-1);
	}
	c->next = t->head;
	t->head = c;
	t->n++;
	*ret = TAKE_PTR(c);
	return 0;
}

SshChallenge *ssh_challenge_take(SshChallengeTable *t, const char *id)
{
	SshChallenge **found = NULL, *c;

	if (!t || !id || strlen(id) != KEYWARD_TOKEN_CHARS)
		return NULL;
	table_expire(t);
	for (SshChallenge **pp = &t->head; *pp; pp = &(*pp)->next)
		if (memcmp_const((*pp)->id, id, KEYWARD_TOKEN_CHARS) == 0 && !found)
			found = pp;
	if (!found)
		return NULL;
	c = *found;
	*found = c->next;
	c->next = NULL;
	t->n--;
	return c;
}

void ssh_challenge_table_clear(SshChallengeTable *t)
{
	while (t->head)
		table_drop(t, &t->head);
}
