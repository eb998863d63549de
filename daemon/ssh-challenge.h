/* ssh-challenge.h: the challenges AgentChallenge hands out for a signature through the
 * forwarded SSH agent — random, bound to one login's decision and the process that asked,
 * valid SSH_CHALLENGE_LIFETIME_MS, spent by the first Authenticate that names them.
 *
 * State layer: depends on decision.h and lib/ only. Main-thread only. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bus-names.h"
#include "decision.h"

#define SSH_CHALLENGE_BYTES       32
#define SSH_CHALLENGE_LIFETIME_MS (60 * 1000)
#define SSH_CHALLENGE_MAX         256 /* in the table at once */
#define SSH_CHALLENGE_MAX_PER_UID 8   /* for a non-root caller (root's: the PAM applications) */

typedef struct SshChallenge {
	char id[KEYWARD_TOKEN_CHARS + 1]; /* random hex: what the module names */
	uint8_t challenge[SSH_CHALLENGE_BYTES];
	Decision *decision; /* the login's (a reference) */
	pid_t caller_pid;
	uint64_t caller_start; /* pid_start_time of caller_pid, 0 if unknown */
	uid_t caller_uid;
	char *cred_id;       /* the registered key picked for the signature */
	uint64_t created_ms; /* CLOCK_MONOTONIC */
	struct SshChallenge *next;
} SshChallenge;

typedef struct SshChallengeTable {
	SshChallenge *head; /* newest first */
	size_t n;
} SshChallengeTable;

SshChallenge *ssh_challenge_free(SshChallenge *c);
static inline void ssh_challenge_freep(SshChallenge **c)
{
	if (*c)
		ssh_challenge_free(*c);
}

/* A new challenge (random id and bytes) for decision D, asked by CALLER_PID/UID, for
 * credential CRED_ID, added to T. Expired entries go first; when T is full, or the caller
 * (non-root) has SSH_CHALLENGE_MAX_PER_UID, its/the oldest goes. *ret stays owned by T. */
int ssh_challenge_add(SshChallengeTable *t, Decision *d, pid_t caller_pid, uint64_t caller_start,
        uid_t caller_uid, const char *cred_id, const SshChallenge **ret);
/* Takes the challenge named ID out of T (constant-time compare; one use): the caller owns
 * it. NULL when unknown, spent or expired (an expired one is dropped too). */
SshChallenge *ssh_challenge_take(SshChallengeTable *t, const char *id);
void ssh_challenge_table_clear(SshChallengeTable *t);
