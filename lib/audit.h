/* audit.h: keyward's audit trail — one JSON-lines record per decision, hash-chained
 * (SHA-256 of the previous record), with periodic HMAC-sealed checkpoints; also fed to
 * syslog/journald and the Linux audit subsystem. Library code: returns -errno. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct AuditLog AuditLog;

/* Event names written in the "event" field. */
typedef enum AuditEvent {
	AUDIT_EVENT_AUTH,             /* an authentication decision */
	AUDIT_EVENT_ACCOUNT,          /* an account-phase decision (no key enrolled, lockout) */
	AUDIT_EVENT_ENROLL,
	AUDIT_EVENT_REVOKE,
	AUDIT_EVENT_IMPORT,
	AUDIT_EVENT_POLICY_LOAD,      /* loaded, reloaded or rejected (result says) */
	AUDIT_EVENT_SESSION_BIND,
	AUDIT_EVENT_SESSION_UNBIND,
	AUDIT_EVENT_KEY_REMOVED,
	AUDIT_EVENT_KEY_ADDED,
	AUDIT_EVENT_ACTION,           /* removal action issued (lock/terminate/end-elevation/none) */
	AUDIT_EVENT_LOCK_VERIFIED,
	AUDIT_EVENT_LOCK_ESCALATED,
	AUDIT_EVENT_LOCK_FAILED,
	AUDIT_EVENT_GRACE_CANCELLED,  /* same key proved back within grace */
	AUDIT_EVENT_CLONE_ALERT,
	AUDIT_EVENT_LOCKOUT,
	AUDIT_EVENT_DAEMON_START,
	AUDIT_EVENT_DAEMON_STOP,
	AUDIT_EVENT_SEAL,             /* checkpoint record (written by the library itself) */
	AUDIT_EVENT_ROTATE,           /* first record of a rotated-to file */
	_AUDIT_EVENT_MAX,
	_AUDIT_EVENT_INVALID = -EINVAL,
} AuditEvent;

typedef enum AuditResult {
	AUDIT_RESULT_FAILURE, /* records start as failure; set success only at the end */
	AUDIT_RESULT_SUCCESS,
	AUDIT_RESULT_INFO,
	_AUDIT_RESULT_MAX,
	_AUDIT_RESULT_INVALID = -EINVAL,
} AuditResult;

/* One decision. Every string may be NULL (omitted from the record). Never put a
 * secret (PIN, token) here. */
typedef struct AuditRecord {
	AuditEvent event;
	AuditResult result;
	const char *reason; /* machine word: "no-touch", "wrong-pin", "uv-missing", ... */
	const char *message; /* human sentence, optional */
	const char *user;
	uid_t uid;          /* (uid_t)-1: unknown / omitted */
	const char *service;
	const char *tty;
	const char *rhost;
	const char *cred_label;
	const char *cred_id;  /* hex or base64 id as stored */
	const char *aaguid;   /* canonical UUID text */
	const char *device;   /* key's sysfs path */
	const char *rule;     /* matched policy rule "file:line" */
	const char *session;  /* logind session id or "pid:N" for elevations */
	const char *action;   /* removal action name */
	const char *detail;   /* free-form extra, e.g. policy digest */
} AuditRecord;

#define AUDIT_RECORD_INIT { .result = AUDIT_RESULT_FAILURE, .uid = (uid_t)-1 }

typedef struct AuditOptions {
	const char *path;          /* the trail (JSON lines) */
	const char *seal_key_path; /* root-only HMAC key; created (0600) if missing */
	unsigned seal_every;       /* a sealed checkpoint every N records (default 64) */
	bool fsync_each;           /* fsync after every record (default true) */
	uint64_t rotate_bytes;     /* rotate when the file grows past this (0: never) */
	bool to_syslog;            /* also syslog/journald */
	bool to_linux_audit;       /* also libaudit, if available */
} AuditOptions;

/* Opens (creating) the trail; recovers the chain from the last good record. A torn last
 * line is detected, reported through *ret_torn (if given) and chained over. */
int audit_log_open(const AuditOptions *opts, AuditLog **ret, bool *ret_torn);
AuditLog *audit_log_free(AuditLog *log);
/* Appends one record (adds time, host, seq, prev hash). -errno when it could not be
 * made durable: the caller applies the policy's audit_failure. */
int audit_log_append(AuditLog *log, const AuditRecord *rec);

const char *audit_event_to_string(AuditEvent e);
AuditEvent audit_event_from_string(const char *s);
const char *audit_result_to_string(AuditResult r);
AuditResult audit_result_from_string(const char *s);
