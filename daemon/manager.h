/* manager.h: keywardd's state layer — the event loop, the bus connection, the loaded
 * policy, the audit trail, the tokens of successful authentications (for BindSession)
 * and the tables the layers above keep here (device operations, bindings, removal). It
 * includes nothing of the daemon above it; daemon.c wires the layers together. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "audit.h"
#include "bus-names.h"
#include "decision.h"
#include "device-op.h"
#include "policy.h"
#include "ssh-challenge.h"

typedef struct Manager Manager;
typedef struct Binding Binding; /* daemon/binding.h */

/* What a successful Authenticate leaves behind for BindSession: who authenticated, for
 * which service, from which process, with which credential on which physical key, and
 * the removal behaviour of the rule that decided (frozen: a reload does not change it).
 * Looked up by token (constant-time compare). */
typedef struct AuthToken {
	char token[KEYWARD_TOKEN_CHARS + 1];
	char *user; /* the authenticated user (PAM_USER at authentication) */
	uid_t uid;
	char *service;
	char *tty;
	char *cred_id; /* base64, as stored */
	char *cred_label;
	char *hidraw_path; /* /dev/hidrawN as libfido2 named it */
	char *sysfs_path; /* /sys/devices/... of the hidraw device (NULL if udev did not know it) */
	char *rule;       /* decision_rule_label() of the deciding rule */
	Decision *decision; /* the login's decision (a reference), carried to BindSession */
	PolicyRemoval removal;
	uint32_t grace_ms, lock_verify_ms;
	PolicyLockFailure on_lock_failure;
	pid_t caller_pid;      /* the PAM application that authenticated */
	uint64_t caller_start; /* its start time (pid_start_time), 0 if unknown */
	/* Approved by a signature through the forwarded SSH agent (ssh-proof.c): no device,
	 * the binding ends the elevation after lifetime_s (remote_lifetime) instead. */
	bool ssh_agent;
	uint32_t lifetime_s;
	uint64_t created_ms; /* CLOCK_MONOTONIC */
	uint64_t realtime_ms;
	/* Granted with a break-glass code or approval, not a key (breakglass.c): no key to
	 * bind, BindSession records and tracks it instead (session.c). "code=<id>" or
	 * "approval=<approver>". */
	bool breakglass;
	char breakglass_via[48];
	struct AuthToken *next;
} AuthToken;

/* A session or elevation opened with break-glass: no key to bind it to, so no removal
 * action; kept for GetStatus until UnbindSession (session.c). */
typedef struct BreakglassSession {
	char id[KEYWARD_TOKEN_CHARS + 1]; /* what BindSession answered */
	char *user, *service, *session;   /* session: logind id or "pid:N" */
	char via[48];
	uint64_t realtime_ms;
	struct BreakglassSession *next;
} BreakglassSession;
void breakglass_session_free_all(BreakglassSession *s);

/* The key of a user's last successful authentication, while it stays plugged in: what a
 * cached elevation (cached_elevation = "same-key") proves with a silent assertion.
 * Forgotten when that key is removed. */
typedef struct AuthGrant {
	uid_t uid;
	char *cred_id;
	char *hidraw_path;
	char *sysfs_path;
	uint64_t realtime_ms;
	struct AuthGrant *next;
} AuthGrant;

/* Tokens not bound within this time are forgotten. */
#define AUTH_TOKEN_LIFETIME_MS (5 * 60 * 1000)
#define AUTH_TOKEN_MAX         4096

typedef struct ManagerOptions {
	const char *config_path;
	bool verbose;
} ManagerOptions;

struct Manager {
	sd_event *event;
	sd_bus *bus;
	sd_bus_slot *vtable_slot;

	char *config_path;
	Policy *policy; /* never NULL after manager_startup() */
	/* Why the file at config_path was last rejected ("file:line: message"), NULL while
	 * it is the file in force; then m->policy is the one loaded before, or at start the
	 * last good copy (policy_last_good_path()). */
	char *policy_rejected;
	AuditLog
	        *audit; /* NULL when the trail could not be opened (policy audit_failure applies) */
	char *audit_path; /* path the trail was opened at (reopened when the policy moves it) */
	sd_event_source *audit_commit; /* the trail's group commits (audit_log_commit_fd) */
	bool spool_clean; /* the outage spool was found empty (set false when a record goes there)
	                   */

	DeviceOpSet ops; /* pending Authenticate/Enroll (device-op.h) */
	/* (extension) the non-root callers' queues and the connection identities
	 * (daemon/bus-fair.h, the bus API's). */
	struct BusFair *fair;

	DecisionTable decisions;          /* made by Check, awaiting Authenticate (decision.h) */
	SshChallengeTable ssh_challenges; /* AgentChallenge's, awaiting Authenticate */
	AuthToken *tokens;                /* successful authentications awaiting BindSession */
	size_t n_tokens;
	AuthGrant *grants; /* per uid: the key of the last successful authentication */
	size_t n_grants;

	/* (extension) session bindings: BindSession/UnbindSession, removal actions. */
	Binding *bindings;
	size_t n_bindings;
	/* The bindings by key (daemon/binding-index.c): an open-addressing table from the
	 * interned sysfs path (else device node) to the chain of its bindings. */
	struct {
		const char **keys;
		Binding **heads;
		size_t size, n;
		Binding *overflow; /* no room in the table (out of memory): always looked at */
	} by_device;
	struct PruneJob *prune; /* start-up check of the bound sessions (binding.c) */
	struct udev *udev;      /* for sysfs paths; removal.c's watch shares it */
	/* The plugged FIDO keys, kept from udev (plugged.h). */
	struct PluggedSet *plugged;
	/* (extension) removal state: proofs in flight, logind watches (daemon/removal.h). */
	struct RemovalContext *removal;
	BreakglassSession *breakglass_sessions; /* (extension) session.c, breakglass.c */
	/* (extension) the credential directory's periodic refresh (directory-source.h). */
	struct DirectoryService *directory;

	sd_event_source *sighup_source;
	sd_event_source *sigterm_source;
	sd_event_source *sigint_source;

	/* Non-root callers' answered-without-a-key calls, counted (manager_audit_self_call). */
	struct SelfCallTally *self_calls;
	sd_event_source *self_call_flush;
	sd_event_source *audit_maintain; /* rotation by age, retention, free space (timer) */

	uint64_t started_ms;               /* realtime */
	uint64_t n_auth_ok, n_auth_failed; /* GetStatus counters */
	bool shutting_down;
};

int manager_new(const ManagerOptions *opts, Manager **ret);
Manager *manager_free(Manager *m);
static inline void manager_freep(Manager **m)
{
	if (*m)
		manager_free(*m);
}
/* Blocks and watches the signals, loads the policy, opens the audit trail, opens udev. */
int manager_startup(Manager *m);
/* Once every layer has started (daemon.c): the start records and READY=1. */
void manager_announce_ready(Manager *m);
/* Runs the event loop until SIGTERM/SIGINT; returns the exit code of the loop. */
int manager_run(Manager *m);
/* The daemon-stop record for the loop's exit code R. */
void manager_record_stop(Manager *m, int r);

/* (Re)loads the policy from m->config_path. On failure the old policy stays, the
 * reasons are logged (file:line: why) and audited; returns -errno. */
int manager_reload(Manager *m, const char *trigger);
/* A record the trail could not take: a refused login (auth/account failure, lockout, clone
 * alert) goes to the journal (KEYWARD_TRAIL=unavailable) and to the outage spool in
 * state_dir, which the trail takes in with its next record. manager_audit() calls it. */
void manager_audit_outage(Manager *m, const AuditRecord *rec);
/* The same, asked by ACTOR (a bus caller; NULL: a signal), who is named in the record. */
int manager_reload_by(Manager *m, const char *trigger, const AuditActor *actor);

/* Appends an audit record; applies nothing (callers decide with policy audit_failure).
 * Returns 0 or -errno (also when no trail is open). Never fails silently: logs. */
int manager_audit(Manager *m, const AuditRecord *rec);
/* Group commit: appends REC and calls DONE(0) on the event loop once it is durable, or
 * DONE(-errno) when the sync failed (the record's outcome must then fail closed). A
 * return < 0: not taken (logged, outage applied), DONE never called. */
int manager_audit_async(Manager *m, const AuditRecord *rec, AuditCommitFn done, void *userdata);
/* What manager_audit() does when the trail failed REC with R (< 0): log, close a trail
 * whose sync failed, journal and spool a refusal. R >= 0: takes in the spool. */
void manager_audit_failed(Manager *m, const AuditRecord *rec, int r);
/* Sign counters behind the trail after a crash are taken from it (at every open). */
int manager_counters_recover(Manager *m);
/* The record of a call a non-root caller made for itself and that was answered without
 * a key (not covered, locked out, refused by the policy, an expired decision): root's
 * (the PAM applications') calls are recorded one by one; a non-root uid's are, up to
 * AUDIT_SELF_CALL_BURST per AUDIT_SELF_CALL_WINDOW_MS, and beyond that counted and written
 * as one summary record per uid and outcome at the end of the window, so that a user
 * flooding keywardd costs no fsync per call. "not-covered" answers to non-root callers are
 * only counted. Returns whether REC was written now (the caller may then log it). */
#define AUDIT_SELF_CALL_WINDOW_MS (60 * 1000)
/* How often keywardd checks the trail without a record (rotate_age, keep_age, space). */
#define AUDIT_MAINTAIN_USEC   (UINT64_C(60) * 1000 * 1000)
#define AUDIT_SELF_CALL_BURST 5
bool manager_audit_self_call(Manager *m, const AuditRecord *rec, uid_t caller_uid);
/* Writes the pending summary records now (at shutdown, and in tests through SIGHUP). */
void manager_flush_self_calls(Manager *m);
/* Whether a failed audit write must deny (policy audit_failure = deny). */
bool manager_audit_failure_denies(Manager *m);

/* The one place that decides whether a login is remote: RHOST/TTY through the
 * policy engine, ORed with logind's Remote property of the caller's session (if the
 * caller PID belongs to one). */
bool manager_is_remote(Manager *m, const char *rhost, const char *tty, pid_t caller_pid);

/* Evaluates the policy for USER (resolving uid and groups through NSS). */
int manager_evaluate(Manager *m, const char *user, const char *service, const char *tty,
        const char *rhost, pid_t caller_pid, PolicyDecision *ret_decision, bool *ret_remote,
        uid_t *ret_uid);
/* Evaluates the policy for this login once and makes the Decision that the rest of the
 * login carries (decision.h): with the uid, the remote verdict and the digest of the
 * policy in force. CALLER_PID/CALLER_UID: who asked on the bus. */
int manager_decide(Manager *m, const char *user, const char *service, const char *tty,
        const char *rhost, pid_t caller_pid, uid_t caller_uid, Decision **ret);
/* The rule a decision came from, for replies, records and bindings: "file:line", or
 * "default". Returns 0 or -ENOMEM (*RET untouched). */
int decision_rule_label(const PolicyDecision *d, char **ret);

/* Tokens of successful authentications: copies TMPL's fields (its token and next are
 * ignored) into a new token with a fresh random value. */
int manager_token_add(Manager *m, const AuthToken *tmpl, const AuthToken **ret);
/* Finds the token (constant time per entry) and removes it from the list; the caller
 * owns it (auth_token_free). NULL if unknown or expired. For BindSession. */
AuthToken *manager_token_take(Manager *m, const char *token);
void auth_token_free(AuthToken *t);

/* Grants: set (replacing the uid's earlier one), find, and forget those of a removed key
 * (matched by sysfs path, else by device node). */
int manager_grant_set(Manager *m, uid_t uid, const char *cred_id, const char *hidraw_path,
        const char *sysfs_path);
const AuthGrant *manager_grant_find(Manager *m, uid_t uid);
/* Returns how many grants were forgotten. */
size_t manager_grants_forget_device(Manager *m, const char *syspath, const char *devnode);

/* Maps /dev/hidrawN to its sysfs path through libudev; -ENODEV if udev does not know it. */
int manager_hidraw_to_syspath(Manager *m, const char *devnode, char **ret);
