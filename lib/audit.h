/* audit.h: keyward's audit trail — one JSON-lines record per decision, hash-chained
 * (SHA-256 of the previous record), with periodic HMAC-sealed checkpoints; also fed to
 * syslog/journald and the Linux audit subsystem. Library code: returns -errno. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct AuditLog AuditLog;

/* Limits on what goes into one record (outsiders control user, rhost, ...). */
#define AUDIT_FIELD_MAX          1024u /* bytes of one string value before escaping; longer is cut */
#define AUDIT_FIELD_SHORT        64u /* ... cut to this when a record would exceed AUDIT_LINE_MAX */
#define AUDIT_LINE_MAX           16384u /* bytes of one JSON line; readers reject longer lines */
#define AUDIT_SEAL_EVERY_DEFAULT 64u
#define AUDIT_SEAL_KEY_SIZE      32u
#define AUDIT_HASH_HEX_LEN       64u
/* The seal key's file name in the policy's state_dir (daemon and keywardctl agree). */
#define AUDIT_SEAL_KEY_FILENAME "audit-seal.key"
/* In the "detail" of an auth/account record: the sign counter stored with it. keywardd
 * writes the counter file without its own sync and recovers it from here at start. */
#define AUDIT_SIGN_COUNTER_DETAIL "sign-counter="

/* Forward-secure sealing (lib/audit-seal.c). The seal key evolves after every seal:
 * k_{e+1} = HMAC-SHA256(k_e, "keyward-audit-seal-evolve-v1"), k_e is erased and the key
 * file replaced atomically; a seal carries its "epoch". k_0 is the verification key: it
 * leaves the machine at setup and proves every epoch's seals. A legacy key file (32 raw
 * bytes) is a static key: its seals have no epoch. */
#define AUDIT_SEAL_EPOCH_NONE UINT64_MAX
typedef struct AuditSealKey {
	uint64_t epoch; /* AUDIT_SEAL_EPOCH_NONE: a legacy static key */
	uint8_t key[AUDIT_SEAL_KEY_SIZE];
	char key_id[17]; /* id of k_0 (names the chain of keys); legacy: of the key */
	bool exported;   /* k_0 was handed out (setup-keys); false: created by keywardd */
} AuditSealKey;

/* Reads a key file, either format ("keyward-seal-key v1 epoch=N id=... exported=yes|no
 * key=<hex>\n" or 32 raw bytes); same file checks as audit_seal_key_load(). */
int audit_seal_key_read(
        const char *path, bool require_root, AuditSealKey *ret, const char **ret_problem);
int audit_seal_key_parse(const char *text, size_t len, AuditSealKey *ret, const char **ret_problem);
/* Atomically replaces PATH (temp file, fsync, rename, fsync dir) with K, mode 0600. */
int audit_seal_key_write(const char *path, const AuditSealKey *k);
/* Creates a new epoch-0 key at PATH (O_EXCL, 0600); *ret (may be NULL) gets k_0. */
int audit_seal_key_create(const char *path, bool exported, AuditSealKey *ret);
/* k_e -> k_{e+1} in place, the old key overwritten. */
int audit_seal_key_evolve(AuditSealKey *k);
/* The key of EPOCH (>= k0->epoch) derived from K0. */
int audit_seal_key_derive(const AuditSealKey *k0, uint64_t epoch, AuditSealKey *ret);
/* The key file's text (a secret: wipe it). */
int audit_seal_key_to_string(const AuditSealKey *k, char **ret);
void audit_seal_key_clear(AuditSealKey *k);

/* Anchors: the head of a seal, published where root on this host cannot take it back
 * (journald forwarded to a collector; `keywardctl audit anchor` output). Text form:
 * "keyward-anchor v1 host=H epoch=E|none seq=N file_seq=F hash=<sha256 of the seal line>
 * key_id=K" (key_id: the seal's key id, which names the key chain; optional when reading).
 * journald: MESSAGE_ID=AUDIT_ANCHOR_MESSAGE_ID with KEYWARD_ANCHOR_HOST, _EPOCH, _SEQ,
 * _FILE_SEQ, _HASH and _KEY_ID. An anchor of another key chain (a trail started over with
 * setup-keys on the same host) says nothing about this one: verify counts and skips it. */
#define AUDIT_ANCHOR_MESSAGE_ID "5b16eb6313ee4944a6befdc85437dcaf"
typedef struct AuditAnchor {
	uint64_t epoch; /* AUDIT_SEAL_EPOCH_NONE: a legacy seal */
	uint64_t seq, file_seq;
	char hash[AUDIT_HASH_HEX_LEN + 1];
	char host[65];
	char key_id[17]; /* "" : not known (an anchor line without key_id) */
} AuditAnchor;
int audit_anchor_format(const AuditAnchor *a, char **ret);
int audit_anchor_parse(const char *line, AuditAnchor *ret);
int audit_anchor_from_fields(const char *host, const char *epoch, const char *seq,
        const char *file_seq, const char *hash, const char *key_id, AuditAnchor *ret);
/* Sends the anchor to journald (its own structured message). */
int audit_anchor_send(const AuditAnchor *a);

/* Where else records go besides the trail. */
typedef enum AuditSink {
	AUDIT_SINK_JOURNAL,     /* sd_journal_send (syslog fallback) */
	AUDIT_SINK_LINUX_AUDIT, /* libaudit netlink */
	_AUDIT_SINK_MAX,
	_AUDIT_SINK_INVALID = -EINVAL,
} AuditSink;

/* Event names written in the "event" field. */
typedef enum AuditEvent {
	AUDIT_EVENT_AUTH,    /* an authentication decision */
	AUDIT_EVENT_ACCOUNT, /* an account-phase decision (no key enrolled, lockout) */
	AUDIT_EVENT_ENROLL,
	AUDIT_EVENT_REVOKE,
	AUDIT_EVENT_IMPORT,
	AUDIT_EVENT_POLICY_LOAD, /* loaded, reloaded or rejected (result says) */
	AUDIT_EVENT_SESSION_BIND,
	AUDIT_EVENT_SESSION_UNBIND,
	AUDIT_EVENT_KEY_REMOVED,
	AUDIT_EVENT_KEY_ADDED,
	AUDIT_EVENT_ACTION, /* removal action issued (lock/terminate/end-elevation/none) */
	AUDIT_EVENT_LOCK_VERIFIED,
	AUDIT_EVENT_LOCK_ESCALATED,
	AUDIT_EVENT_LOCK_FAILED,
	AUDIT_EVENT_OUTCOME,         /* how a removal action ended (action_seq names the action) */
	AUDIT_EVENT_GRACE_CANCELLED, /* same key proved back within grace */
	AUDIT_EVENT_CLONE_ALERT,
	AUDIT_EVENT_LOCKOUT,
	AUDIT_EVENT_DAEMON_START,
	AUDIT_EVENT_DAEMON_STOP,
	AUDIT_EVENT_SEAL,        /* checkpoint record (written by the library itself) */
	AUDIT_EVENT_ROTATE,      /* first record of every trail file (file header) */
	AUDIT_EVENT_TORN_TAIL,   /* acknowledges a torn line left by a crash (library) */
	AUDIT_EVENT_RETENTION,   /* rotated files removed; names them (library) */
	AUDIT_EVENT_SPACE,       /* free space crossed a threshold, or came back (library) */
	AUDIT_EVENT_PIN_PROMPT,  /* the key wants its PIN: the module asks it and retries (info) */
	AUDIT_EVENT_AUDIT_SINK,  /* a copy (Linux audit) stopped or resumed being sent (info) */
	AUDIT_EVENT_SPOOL_TAKEN, /* records spooled during a trail outage were taken in (info) */
	/* Break-glass recovery (docs/breakglass.md). Never the code or its hash in a record. */
	AUDIT_EVENT_BREAKGLASS_ISSUE, /* a set of codes issued (actor: who, user: for whom) */
	AUDIT_EVENT_BREAKGLASS_USE,   /* a code or an approval let a user in (success) */
	AUDIT_EVENT_BREAKGLASS_FAIL,  /* an attempt refused (reason: wrong-code, used-code, ...) */
	AUDIT_EVENT_BREAKGLASS_APPROVE, /* another admin's key approved one login (two-person) */
	AUDIT_EVENT_BREAKGLASS_EXPIRE,  /* unused codes or approvals passed their expiry (info) */
	AUDIT_EVENT_BREAKGLASS_REVOKE,  /* a user's codes (and approvals) withdrawn */
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

/* The person behind a request (the D-Bus caller of enrol, revoke, import, reload). */
typedef struct AuditActor {
	uid_t uid;           /* the caller's uid */
	const char *user;    /* its name; NULL: none */
	uid_t loginuid;      /* audit login uid (who logged in, before sudo); (uid_t)-1: unset */
	const char *login;   /* the login uid's name */
	const char *session; /* audit session id (decimal); NULL: unset */
	const char *tty;     /* the caller's controlling terminal ("pts/3"); NULL: none */
} AuditActor;

/* One decision. Every string may be NULL (omitted from the record). Never put a
 * secret (PIN, token) here. */
typedef struct AuditRecord {
	AuditEvent event;
	AuditResult result;
	const char *reason;  /* machine word: "no-touch", "wrong-pin", "uv-missing", ... */
	const char *message; /* human sentence, optional */
	const char *user;
	uid_t uid; /* (uid_t)-1: unknown / omitted */
	const char *service;
	const char *tty;
	const char *rhost;
	const char *cred_label;
	const char *cred_id;     /* hex or base64 id as stored */
	const char *aaguid;      /* canonical UUID text */
	const char *device;      /* key's sysfs path */
	const char *rule;        /* matched policy rule "file:line" */
	const char *rule_name;   /* its name ("default" when no rule matched) */
	const char *policy;      /* sha256 of the policy the decision came from */
	const char *session;     /* logind session id or "pid:N" for elevations */
	const char *action;      /* removal action name */
	const char *detail;      /* free-form extra, e.g. policy digest */
	uint64_t action_seq;     /* outcome: seq of the removal action's record (0: omitted) */
	const AuditActor *actor; /* who asked (enrol, revoke, import, policy reload); NULL: none */
	const char *spooled;     /* original time of a record taken in from the spool */
	const char *spool_id; /* its id in the spool (taken in once); the batch's on spool-taken */
} AuditRecord;

#define AUDIT_RECORD_INIT                                                                          \
	{                                                                                          \
		.result = AUDIT_RESULT_FAILURE, .uid = (uid_t)-1                                   \
	}

/* What to do when free space on the trail's file system falls below a threshold
 * (space_left, admin_space_left) or runs out (disk_full). */
typedef enum AuditSpaceAction {
	AUDIT_SPACE_IGNORE, /* nothing (thresholds only) */
	AUDIT_SPACE_ALERT,  /* a "space" record (journald: warning), once per crossing */
	AUDIT_SPACE_ROTATE, /* alert, then remove the oldest rotated files (keeping keep_min_files)
	                     * until the threshold is met again */
	AUDIT_SPACE_DENY,   /* disk full only: the record fails (-ENOSPC); the caller denies */
	_AUDIT_SPACE_ACTION_MAX,
	_AUDIT_SPACE_ACTION_INVALID = -EINVAL,
} AuditSpaceAction;

/* A free-space threshold: an absolute byte count or a percentage of the file system. */
typedef struct AuditSpaceThreshold {
	uint64_t bytes;   /* used when percent is 0 */
	unsigned percent; /* 1..99; 0: use bytes (0 bytes: threshold off) */
} AuditSpaceThreshold;

/* Rotation, retention and free-space limits; set at open and again with
 * audit_log_set_limits() (policy reload) without reopening the trail. */
typedef struct AuditLimits {
	unsigned seal_every;     /* a sealed checkpoint every N records (0: 64) */
	uint64_t rotate_bytes;   /* rotate when the file grows past this (0: never) */
	uint64_t rotate_age_s;   /* rotate a file older than this (0: never) */
	unsigned keep_files;     /* rotated files kept (0: no limit) */
	uint64_t keep_age_s;     /* rotated files older than this are removed (0: no limit) */
	unsigned keep_min_files; /* rotated files never removed to make room (space actions) */
	AuditSpaceThreshold space_left;
	AuditSpaceAction space_left_action; /* ignore | alert | rotate */
	AuditSpaceThreshold admin_space_left;
	AuditSpaceAction admin_space_left_action; /* ignore | alert | rotate */
	AuditSpaceAction disk_full_action;        /* deny | rotate */
} AuditLimits;

typedef struct AuditOptions {
	const char *path;           /* the trail (JSON lines) */
	const char *seal_key_path;  /* root-only HMAC key; created (0600) if missing */
	unsigned seal_every;        /* a sealed checkpoint every N records (0: 64) */
	bool fsync_each;            /* fdatasync after every record; keywardd sets it (the default
	                             * durability); false only for benchmarks and tests */
	uint64_t rotate_bytes;      /* rotate when the file grows past this (0: never) */
	bool to_syslog;             /* also syslog/journald */
	const char *journal_socket; /* where journald listens (NULL: /run/systemd/journal/socket);
	                             * absent: the journal sink has failed */
	bool to_linux_audit;        /* also libaudit, if available */
	/* Called at most once per secondary sink (journald, Linux audit) the first time it
	 * fails; the trail itself is unaffected. error is -errno. May be NULL: the caller can
	 * ask audit_log_sink_error() instead. Library code does not log; the caller does. */
	void (*on_sink_error)(AuditSink sink, int error, void *userdata);
	void *userdata;
	/* Rotation, retention, space: used when has_limits (else only seal_every and
	 * rotate_bytes above count, as before). */
	bool has_limits;
	AuditLimits limits;
	/* Sends one Linux audit message in place of libaudit (tests): > 0 sent, -errno not.
	 * NULL: libaudit. */
	int (*linux_audit_send)(
	        const AuditRecord *rec, const char *message, const char *terminal, void *userdata);
	/* Group commit (keywardd): a record is written at once and made durable by a sync
	 * thread, one fdatasync for every record written while the previous one ran; seals'
	 * anchors and key updates follow in that thread once the seal is on disk. fsync_each is
	 * then ignored. See audit_log_append_async(). */
	bool group_commit;
	/* Makes the trail durable in place of fdatasync() (tests: a slow or failing disk);
	 * runs in the sync thread. 0 or -errno. NULL: fdatasync(). */
	int (*sync)(int fd, void *userdata);
	/* Called before a rotation moves the live file away, after everything in it is
	 * durable (keywardd: makes the sign counters durable, which it recovers from the live
	 * file only). -errno stops the rotation. May be NULL. */
	int (*before_rotate)(void *userdata);
} AuditOptions;

/* Opens (creating) the trail; recovers the chain from the last good record. A torn last
 * line is detected, reported through *ret_torn (if given) and chained over. */
int audit_log_open(const AuditOptions *opts, AuditLog **ret, bool *ret_torn);
AuditLog *audit_log_free(AuditLog *log);
/* Appends one record (adds time, host, seq, prev hash). -errno when it could not be
 * made durable: the caller applies the policy's audit_failure. */
int audit_log_append(AuditLog *log, const AuditRecord *rec);
/* Group commit (opts->group_commit). Appends REC like audit_log_append() but does not
 * wait for the disk: DONE(0) is called from audit_log_commit_dispatch() once the sync that
 * covers the record (and everything written before it) returned, DONE(-errno) if it
 * failed (then the trail is broken until reopened: fail closed). A return < 0 means the
 * record was not taken and DONE is never called. Without group commit, DONE runs before
 * this returns. */
typedef void (*AuditCommitFn)(int error, void *userdata);
int audit_log_append_async(
        AuditLog *log, const AuditRecord *rec, AuditCommitFn done, void *userdata);
/* An eventfd that becomes readable when a commit finished (-EBADF without group commit):
 * the event loop then calls audit_log_commit_dispatch(). */
int audit_log_commit_fd(const AuditLog *log);
/* Runs the callbacks of the records now durable (or failed). Returns the sync error (the
 * trail is then broken), else 0. */
int audit_log_commit_dispatch(AuditLog *log);
/* The sync thread's error (-errno; 0: none): the trail is then broken until reopened. */
int audit_log_sync_error(const AuditLog *log);
/* Waits until everything written is durable and runs the callbacks (blocks). */
int audit_log_flush(AuditLog *log);
/* Records waiting for a commit (their callbacks not run yet). */
size_t audit_log_commit_waiting(const AuditLog *log);
/* Copies to journald and Linux audit that found the sink queue full and were dropped
 * (each such drop also writes one audit-sink record with reason "overflow"). */
uint64_t audit_log_sink_dropped(const AuditLog *log);
/* Writes a sealed checkpoint now (REASON e.g. "stop"); no-op when nothing is unsealed
 * and FORCE is false. audit_log_free() seals with reason "close" on its own (best
 * effort); call this first when the result matters (daemon stop). */
int audit_log_seal(AuditLog *log, const char *reason, bool force);
/* Replaces the rotation, retention and space limits (policy reload); the chain goes on in
 * the same file. Applies them at once: a rotation or retention now due is done. */
int audit_log_set_limits(AuditLog *log, const AuditLimits *limits);
/* Housekeeping without a record (a timer calls it): rotation by age, retention by count
 * and age, the free-space check with its alert and action. */
int audit_log_maintain(AuditLog *log);
/* Free-space level of the trail's file system, as last checked: 0 above space_left,
 * 1 below space_left, 2 below admin_space_left, 3 full (an append failed with ENOSPC). */
int audit_log_space_level(const AuditLog *log);
/* The first error of a secondary sink (0 if none, -ENOTSUP if not built in). */
int audit_log_sink_error(const AuditLog *log, AuditSink sink);
/* Sequence number of the last record written (0 before any). */
uint64_t audit_log_seq(const AuditLog *log);
/* The next seal's epoch (AUDIT_SEAL_EPOCH_NONE with a legacy key), whether k_0 was
 * exported (false: created by the writer itself; seals cannot be proved off the machine),
 * and the epoch the open had to skip ahead from (AUDIT_SEAL_EPOCH_NONE if none): the key
 * file was older than the trail's last seal (crash between a seal and the key update). */
uint64_t audit_log_seal_epoch(const AuditLog *log);
bool audit_log_key_exported(const AuditLog *log);
uint64_t audit_log_key_recovered_from(const AuditLog *log);
static inline void audit_log_freep(AuditLog **l)
{
	if (*l)
		audit_log_free(*l);
}

/* Loads a seal key: a regular file of exactly AUDIT_SEAL_KEY_SIZE bytes, not group or
 * world readable or writable (and root-owned when REQUIRE_ROOT). ret_problem gets a
 * static explanation on failure. */
int audit_seal_key_load(const char *path, bool require_root,
        uint8_t ret_key[static AUDIT_SEAL_KEY_SIZE], const char **ret_problem);

/* ---- reading and verifying (keywardctl audit verify/show, report) ---- */

/* One parsed record. Strings are owned by the entry (NULL when absent). */
typedef struct AuditEntry {
	uint64_t seq;
	uint64_t time_ms;
	char *time, *host;
	AuditEvent event;
	AuditResult result;
	char *reason, *message, *user;
	int64_t uid; /* -1: absent */
	char *service, *tty, *rhost, *cred_label, *cred_id, *aaguid, *device, *rule, *rule_name,
	        *policy, *session, *action, *detail;
	int64_t actor_uid, actor_loginuid; /* -1: absent */
	char *actor, *actor_login, *actor_session, *actor_tty, *spooled, *spool_id;
	/* rotate (file header) */
	uint64_t file_seq;
	char *prev_file;
	/* torn-tail */
	uint64_t torn_offset, torn_length;
	char *torn_sha256;
	/* seal */
	uint64_t every;
	uint64_t epoch; /* AUDIT_SEAL_EPOCH_NONE: absent (legacy seal, or not a seal) */
	char *key_id, *mac;
	char *prev;
	/* outcome: seq of the action record it concludes (0: absent) */
	uint64_t action_seq;
} AuditEntry;

AuditEntry *audit_entry_free(AuditEntry *e);
static inline void audit_entry_freep(AuditEntry **e)
{
	if (*e)
		audit_entry_free(*e);
}
/* Strictly parses one line (without its newline): a flat JSON object with the known
 * keys only, each at most once, of the right type. -EBADMSG with *ret_why (static) set. */
int audit_entry_parse(const char *line, size_t len, AuditEntry **ret, const char **ret_why);

/* The trail files of PATH in chain order: PATH.000001, PATH.000002, ... then PATH. */
int audit_trail_files(const char *path, char ***ret);

/* Calls CB for every well-formed record of FILES in order; malformed lines are counted
 * in *ret_bad (if given) and skipped. CB returning < 0 stops the walk with that value. */
typedef int (*AuditEntryFn)(const AuditEntry *e, const char *file, uint64_t line, void *userdata);
int audit_read_files(char *const *files, AuditEntryFn cb, void *userdata, uint64_t *ret_bad);
/* Calls CB for every well-formed record of the one file PATH whose line contains NEEDLE
 * (a cheap filter before parsing: keywardd's sign-counter recovery at open). CB returning
 * < 0 stops with that value. Reads in chunks: the file may be large. */
int audit_scan_file(const char *path, const char *needle, AuditEntryFn cb, void *userdata);

typedef enum AuditVerifyStatus {
	AUDIT_VERIFY_INTACT,
	AUDIT_VERIFY_MALFORMED,    /* a line is not a record */
	AUDIT_VERIFY_EDITED,       /* a record's hash does not match the next record's "prev" */
	AUDIT_VERIFY_DELETED,      /* sequence numbers skip forward */
	AUDIT_VERIFY_REORDERED,    /* sequence numbers go back or repeat */
	AUDIT_VERIFY_TRUNCATED,    /* ends inside a record, or (strict) without a closing seal */
	AUDIT_VERIFY_FORGED_SEAL,  /* a seal's MAC does not verify: rewritten or forged */
	AUDIT_VERIFY_WRONG_KEY,    /* seals made with another key than the one given */
	AUDIT_VERIFY_MISSING_SEAL, /* more records without a seal than the trail's interval */
	AUDIT_VERIFY_FILE_GAP,     /* a rotated file is missing, out of order or re-anchored */
	AUDIT_VERIFY_ROLLBACK, /* an anchored seal is not in the trail: an older copy restored */
	_AUDIT_VERIFY_STATUS_MAX,
	_AUDIT_VERIFY_STATUS_INVALID = -EINVAL,
} AuditVerifyStatus;

typedef struct AuditVerifyOptions {
	const uint8_t *key; /* legacy static key, AUDIT_SEAL_KEY_SIZE bytes; NULL: legacy seals
	                     * are not checked */
	const AuditSealKey *verification_key; /* k_0 (epoch 0); NULL: epoch seals unchecked */
	const AuditAnchor *anchors;           /* seal heads published elsewhere (any order) */
	size_t n_anchors;
	bool strict; /* the last file must end with a seal (stopped daemon / archive) */
} AuditVerifyOptions;

typedef struct AuditVerifyResult {
	AuditVerifyStatus status;
	char *file;              /* where the first problem is (NULL when intact) */
	uint64_t line;           /* 1-based line in that file (0: the file as a whole) */
	char *message;           /* what is wrong, in words */
	uint64_t records;        /* lines checked, seals included */
	uint64_t seals;          /* seals in the chain (proven or not) */
	uint64_t seals_proven;   /* seals whose MAC was checked with the key they need */
	uint64_t seals_unproven; /* seals not checked: their key was not given */
	uint64_t epoch_seals;    /* forward-secure seals among them */
	uint64_t anchors_matched, anchors_before; /* anchors found / before the first file */
	uint64_t anchors_other_chain;             /* anchors of another key chain (skipped) */
	/* The last seal (for `audit anchor`); last_seal_seq 0: none. */
	uint64_t last_seal_seq, last_seal_epoch, last_seal_file_seq;
	char last_seal_hash[AUDIT_HASH_HEX_LEN + 1];
	char last_seal_host[65];
	char last_seal_key_id[17];
	uint64_t files;
	uint64_t first_seq, last_seq;
	uint64_t first_file_seq;    /* 1: anchored at the genesis file */
	uint64_t unsealed_tail;     /* records after the last seal (not protected by a MAC) */
	uint64_t torn_acknowledged; /* crash-torn lines acknowledged by a torn-tail record */
} AuditVerifyResult;

void audit_verify_result_clear(AuditVerifyResult *r);
/* Verifies FILES as one chain. Returns 0 when the check ran (ret->status says what it
 * found), -errno when a file cannot be read (ret->file names it). */
int audit_verify_files(char *const *files, const AuditVerifyOptions *opts, AuditVerifyResult *ret);
const char *audit_verify_status_to_string(AuditVerifyStatus s);

/* Internal helpers shared by writer and verifier (also used by the tests). */
/* SHA-256 of a line (without newline) as 64 lower-case hex chars + NUL. */
int audit_line_hash(const char *line, size_t len, char ret_hex[static AUDIT_HASH_HEX_LEN + 1]);
/* HMAC-SHA-256 over the seal line prefix (everything before ,"mac":). */
int audit_seal_mac(const uint8_t key[static AUDIT_SEAL_KEY_SIZE], const char *prefix, size_t len,
        char ret_hex[static AUDIT_HASH_HEX_LEN + 1]);
/* Short public id of a seal key (16 hex chars + NUL). */
int audit_seal_key_id(const uint8_t key[static AUDIT_SEAL_KEY_SIZE], char ret_hex[static 17]);
/* The Linux audit copy of REC, built without the audit socket: *ret_message is what
 * audit_log_user_message() gets as its message ("op=... acct=... rhost=..."; libaudit
 * appends exe, hostname=?, addr=?, terminal and the one res=), *ret_terminal its tty
 * argument. Every outsider's value is encoded as libaudit's audit_encode_nv_string()
 * does: hex when it holds a space, quote, control character or non-ASCII byte. */
int audit_linux_message(const AuditRecord *rec, char **ret_message, char **ret_terminal);
/* Sends REC to journald (syslog without it) on its own, outside the trail: a refused
 * login the trail could not take (keywardd) carries KEYWARD_TRAIL=unavailable. DECIDED_BY
 * (KEYWARD_DECIDED_BY) may be NULL. No seq, no hash: it is not part of the chain. */
int audit_journal_send(const AuditRecord *rec, const char *decided_by);
/* The journald MESSAGE / syslog line for REC: one line; values that hold spaces, '=',
 * quotes, backslashes, control characters or non-ASCII are quoted and escaped. */
int audit_journal_summary(const AuditRecord *rec, char **ret);

const char *audit_event_to_string(AuditEvent e);
AuditEvent audit_event_from_string(const char *s);
const char *audit_result_to_string(AuditResult r);
AuditResult audit_result_from_string(const char *s);
const char *audit_sink_to_string(AuditSink s);
const char *audit_space_action_to_string(AuditSpaceAction a);
AuditSpaceAction audit_space_action_from_string(const char *s);
