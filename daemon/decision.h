/* decision.h: one policy decision per login, made once and carried to the end.
 *
 * Check makes it (and hands its id to the PAM module), Authenticate uses it (looked up by
 * id, for the same caller and the same login), the token of a successful authentication
 * carries it to BindSession, and the binding keeps its removal settings. The audit
 * records of the login quote its rule name and the digest of the policy it came from. A
 * Decision is self-contained (it copies what it needs out of the Policy), immutable once
 * made, and reference counted: a reload does not change a decision in flight, the next
 * login gets the new policy.
 *
 * State layer: depends on the policy engine and lib/ only. Main-thread reference counting
 * (a device worker may read a Decision it was given, never ref/unref it). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit.h"
#include "bus-names.h"
#include "policy.h"

typedef struct Decision {
	unsigned n_ref;
	char id[KEYWARD_TOKEN_CHARS + 1]; /* random; what Check hands to the module */

	/* The login it was made for. */
	char *user;
	uid_t uid; /* (uid_t)-1 if NSS does not know the user */
	char *service, *tty, *rhost;
	bool remote;
	/* Where a remote login without PAM_RHOST came from (sudo inside SSH): the RemoteHost
	 * logind has for the caller's session; NULL otherwise. Records and the report show it
	 * as the login's rhost. */
	char *client_host;
	pid_t caller_pid;      /* the PAM application that asked */
	uint64_t caller_start; /* its start time (pid_start_time), 0 if unknown */
	uid_t caller_uid;      /* its uid on the bus: root's decisions are kept first */

	/* Where it came from. */
	char *rule;      /* "file:line" of the deciding rule, or "default" */
	char *rule_name; /* the rule's name, or "default" */
	char *policy;    /* sha256 of the policy text in force when it was made */

	/* The outcome and what it requires. */
	PolicyRequire require;
	char *reason; /* deny reason (rule's text), or NULL */
	bool remote_resolved;
	PolicyUV user_verification;
	bool user_presence;
	PolicyCounter counter;
	PolicyCachedElevation cached_elevation;
	PolicyCredSource credentials; /* local, directory or both */
	/* Which authenticators may be used: checked at every login against the credential's
	 * stored AAGUID and attestation, not only at enrolment. */
	uint8_t (*aaguid_allow)[16];
	size_t n_aaguid_allow; /* 0: any model not denied */
	uint8_t (*aaguid_deny)[16];
	size_t n_aaguid_deny;
	PolicyAttestation attestation;
	uint32_t lockout_max_failures, lockout_window_s, lockout_unlock_after_s;
	uint32_t remote_lifetime_s; /* on_remote = "ssh-key": an agent-approved elevation's */

	/* What removal of the key does to what this login opens. */
	PolicyRemoval removal;
	uint32_t grace_ms, lock_verify_ms;
	PolicyLockFailure on_lock_failure;

	/* A break-glass code or approval may stand in for a key in this login
	 * (policy_breakglass_allows(), at the time the decision was made). */
	bool breakglass;

	uint64_t created_ms;   /* CLOCK_MONOTONIC */
	bool spent;            /* a successful Authenticate used it: Check must decide anew */
	struct Decision *next; /* in a DecisionTable */
} Decision;

typedef struct DecisionRequest {
	const char *user;
	uid_t uid;
	const char *service, *tty, *rhost;
	const char *client_host; /* see Decision; NULL: none */
	pid_t caller_pid;
	uid_t caller_uid;
	const char *policy_digest;
} DecisionRequest;

/* Makes a Decision (n_ref 1) from the policy engine's answer D for REQ. */
int decision_new(const DecisionRequest *req, const PolicyDecision *d, Decision **ret);
Decision *decision_ref(Decision *d);
Decision *decision_unref(Decision *d);
static inline void decision_unrefp(Decision **d)
{
	if (*d)
		decision_unref(*d);
}
#define _cleanup_decision_ _cleanup_(decision_unrefp)

/* Whether D was made for this login: the same user, service, tty and rhost, asked by the
 * same process (pid and start time). */
bool decision_matches(const Decision *d, const char *user, const char *service, const char *tty,
        const char *rhost, pid_t caller_pid);

/* Decisions handed out by Check and not yet expired, newest first, each for
 * DECISION_LIFETIME_MS. Bounded so that no caller can push out another's: a non-root
 * caller (a user asking for itself) keeps at most DECISION_MAX_PER_CALLER (its own oldest
 * goes); when the table is full, the oldest decision of a non-root caller goes first,
 * root's (the PAM applications') only when there is no other. */
#define DECISION_LIFETIME_MS    (5 * 60 * 1000)
#define DECISION_TABLE_MAX      4096
#define DECISION_MAX_PER_CALLER 16

typedef struct DecisionTable {
	Decision *head;
	size_t n;
} DecisionTable;

/* Adds a reference to D to the table. */
void decision_table_add(DecisionTable *t, Decision *d);
/* The decision with this id (constant-time compare per entry), or NULL if unknown,
 * expired or spent. The table keeps its reference: ref it to keep it. */
Decision *decision_table_find(DecisionTable *t, const char *id);
void decision_table_clear(DecisionTable *t);

/* The decision's rule (file:line and name) and policy digest on an audit record. */
static inline void audit_record_set_decision(AuditRecord *rec, const Decision *d)
{
	if (!d)
		return;
	rec->rule = d->rule;
	rec->rule_name = d->rule_name;
	rec->policy = d->policy;
	if ((!rec->rhost || !rec->rhost[0]) && d->client_host)
		rec->rhost = d->client_host;
}
