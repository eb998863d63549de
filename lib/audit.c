/* audit.c: the audit trail writer — JSON lines, each carrying the SHA-256 of the line
 * before it, HMAC-sealed checkpoints, rotation that keeps the chain, crash recovery;
 * plus the copies sent to journald/syslog and the Linux audit subsystem. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <systemd/sd-journal.h>
#if HAVE_LIBAUDIT
#include <libaudit.h>
#endif

#include "audit-json.h"
#include "audit.h"
#include "util.h"

#define ZERO_HASH           "0000000000000000000000000000000000000000000000000000000000000000"
#define SEAL_MAC_SUFFIX_LEN (8 + AUDIT_HASH_HEX_LEN + 2) /* ,"mac":"<64 hex>"} */
#define TAIL_WINDOW         (4 * AUDIT_LINE_MAX)
#define SINK_QUEUE_MAX      4096u /* copies waiting for the sync thread (group commit) */

/* A record durable before its callback runs (group commit; owned by the event loop). */
typedef struct CommitWaiter {
	struct CommitWaiter *next;
	uint64_t seq;
	AuditCommitFn done;
	void *userdata;
} CommitWaiter;

/* A copy for journald or Linux audit, or a seal's anchor, sent by the sync thread once
 * record SEQ is durable (in trail order). */
typedef enum SinkKind { SINK_ITEM_JOURNAL, SINK_ITEM_LINUX_AUDIT, SINK_ITEM_ANCHOR } SinkKind;
typedef struct SinkItem {
	struct SinkItem *next;
	uint64_t seq;
	SinkKind kind;
	char **strs; /* journal: fields, MESSAGE first */
	size_t n;
	char *msg;
	int prio;
	AuditEvent event; /* linux audit */
	AuditResult result;
	char *message, *terminal;
	AuditAnchor anchor;
} SinkItem;

struct AuditLog {
	char *path;
	char *seal_key_path;
	uint8_t key[AUDIT_SEAL_KEY_SIZE];
	char key_id[17];
	uint64_t epoch;              /* the key's epoch; AUDIT_SEAL_EPOCH_NONE: legacy key */
	bool key_exported;           /* k_0 left the machine (setup-keys) */
	uint64_t last_seal_epoch;    /* epoch of the trail's last seal found at open */
	uint64_t key_recovered_from; /* key file epoch skipped at open (NONE: no skip) */
	unsigned seal_every;
	bool fsync_each;
	AuditLimits limits; /* rotation (rotate_bytes, age), retention, space: see below */
	bool to_syslog;
	bool to_linux_audit;
	void (*on_sink_error)(AuditSink sink, int error, void *userdata);
	void *userdata;

	int fd;
	uint64_t size;                     /* bytes in the current file */
	uint64_t seq;                      /* last sequence number written */
	uint64_t file_seq;                 /* this file's number in the chain (1 = genesis) */
	char head[AUDIT_HASH_HEX_LEN + 1]; /* hash of the last line written */
	unsigned unsealed;                 /* records since the last seal */
	bool broken;              /* the file is in an unknown state: refuse until reopened */
	uint64_t file_started_ms; /* time of this file's header (rotation by age) */
	int space_level;          /* see audit_log_space_level() */
	char host[HOST_NAME_MAX + 1];

	int sink_error[_AUDIT_SINK_MAX];
	bool no_journal; /* journald's socket is absent: sd_journal_send() would drop silently */
	int audit_fd;
	int (*linux_audit_send)(
	        const AuditRecord *rec, const char *message, const char *terminal, void *userdata);
	bool linux_audit_down; /* an audit-sink record says so; the next success says "back" */
	JsonBuf buf;

	/* Group commit. The event loop writes lines and queues waiters; the sync thread makes
	 * them durable. Fields under `lock` are shared; the rest belong to the loop. */
	bool group;
	int (*sync_fn)(int fd, void *userdata);
	int (*before_rotate)(void *userdata);
	CommitWaiter *waiters, *waiters_tail;
	size_t n_waiting;
	bool sink_overflow;     /* an audit-sink "overflow" record is out, no "recovered" yet */
	uint64_t dropped_noted; /* sinks_dropped at the end of the last overflow */
	int commit_fd;          /* eventfd: the thread says a commit (or a sink state) changed */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	uint64_t requested, synced; /* under lock: seq wanted durable / made durable */
	int sync_error;             /* under lock: sticky; the trail is broken */
	bool stopping;              /* under lock */
	bool seal_pending;          /* under lock: key file to write once seal_seq is durable */
	uint64_t seal_seq;
	AuditSealKey seal_key;
	pthread_t key_thread; /* writes the key file after its seal is durable */
	bool key_thread_started;
	pthread_cond_t key_work;
	bool key_ready; /* under lock: key_next waits to be written */
	AuditSealKey key_next;
	SinkItem *sinks, *sinks_tail; /* under lock */
	size_t n_sinks;
	uint64_t sinks_dropped;   /* under lock */
	int thread_journal_error; /* under lock: first journald failure in the thread */
	int thread_la_error;      /* under lock: last Linux audit failure */
	bool thread_la_down;      /* under lock: Linux audit copies fail now */
	bool thread_la_changed;   /* under lock: thread_la_down moved since the loop looked */
};

static const char *const audit_event_table[_AUDIT_EVENT_MAX] = {
        [AUDIT_EVENT_AUTH] = "auth",
        [AUDIT_EVENT_ACCOUNT] = "account",
        [AUDIT_EVENT_ENROLL] = "enroll",
        [AUDIT_EVENT_REVOKE] = "revoke",
        [AUDIT_EVENT_IMPORT] = "import",
        [AUDIT_EVENT_POLICY_LOAD] = "policy-load",
        [AUDIT_EVENT_SESSION_BIND] = "session-bind",
        [AUDIT_EVENT_SESSION_UNBIND] = "session-unbind",
        [AUDIT_EVENT_KEY_REMOVED] = "key-removed",
        [AUDIT_EVENT_KEY_ADDED] = "key-added",
        [AUDIT_EVENT_ACTION] = "action",
        [AUDIT_EVENT_LOCK_VERIFIED] = "lock-verified",
        [AUDIT_EVENT_LOCK_ESCALATED] = "lock-escalated",
        [AUDIT_EVENT_LOCK_FAILED] = "lock-failed",
        [AUDIT_EVENT_OUTCOME] = "outcome",
        [AUDIT_EVENT_GRACE_CANCELLED] = "grace-cancelled",
        [AUDIT_EVENT_CLONE_ALERT] = "clone-alert",
        [AUDIT_EVENT_LOCKOUT] = "lockout",
        [AUDIT_EVENT_DAEMON_START] = "daemon-start",
        [AUDIT_EVENT_DAEMON_STOP] = "daemon-stop",
        [AUDIT_EVENT_SEAL] = "seal",
        [AUDIT_EVENT_ROTATE] = "rotate",
        [AUDIT_EVENT_TORN_TAIL] = "torn-tail",
        [AUDIT_EVENT_RETENTION] = "retention",
        [AUDIT_EVENT_SPACE] = "space",
        [AUDIT_EVENT_PIN_PROMPT] = "pin-prompt",
        [AUDIT_EVENT_AUDIT_SINK] = "audit-sink",
        [AUDIT_EVENT_SPOOL_TAKEN] = "spool-taken",
        [AUDIT_EVENT_BREAKGLASS_ISSUE] = "breakglass-issue",
        [AUDIT_EVENT_BREAKGLASS_USE] = "breakglass-use",
        [AUDIT_EVENT_BREAKGLASS_FAIL] = "breakglass-fail",
        [AUDIT_EVENT_BREAKGLASS_APPROVE] = "breakglass-approve",
        [AUDIT_EVENT_BREAKGLASS_EXPIRE] = "breakglass-expire",
        [AUDIT_EVENT_BREAKGLASS_REVOKE] = "breakglass-revoke",
};

static const char *const audit_result_table[_AUDIT_RESULT_MAX] = {
        [AUDIT_RESULT_FAILURE] = "failure",
        [AUDIT_RESULT_SUCCESS] = "success",
        [AUDIT_RESULT_INFO] = "info",
};

static const char *const audit_sink_table[_AUDIT_SINK_MAX] = {
        [AUDIT_SINK_JOURNAL] = "journal",
        [AUDIT_SINK_LINUX_AUDIT] = "linux-audit",
};

DEFINE_STRING_TABLE_LOOKUP(audit_event, AuditEvent, audit_event_table)
DEFINE_STRING_TABLE_LOOKUP(audit_result, AuditResult, audit_result_table)
DEFINE_STRING_TABLE_LOOKUP_TO_STRING(audit_sink, AuditSink, audit_sink_table)

/* ---- hashing ---- */

int audit_line_hash(const char *line, size_t len, char ret_hex[static AUDIT_HASH_HEX_LEN + 1])
{
	/* Fetched once and reused: verify hashes millions of lines, and an implicit fetch per
	 * call costs more than hashing a 300-byte line. */
	static _Thread_local EVP_MD_CTX *ctx = NULL;
	static _Thread_local EVP_MD *md_sha256 = NULL;
	uint8_t md[32];
	unsigned n = 0;

	if (!md_sha256) {
		md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
		if (!md_sha256)
			return -EIO;
	}
	if (!ctx) {
		ctx = EVP_MD_CTX_new();
		if (!ctx)
			return -ENOMEM;
	}
	if (EVP_DigestInit_ex2(ctx, md_sha256, NULL) != 1 ||
	        EVP_DigestUpdate(ctx, line, len) != 1 || EVP_DigestFinal_ex(ctx, md, &n) != 1 ||
	        n != sizeof(md))
		return -EIO;
	hex_encode_to(md, sizeof(md), ret_hex);
	return 0;
}

int audit_seal_mac(const uint8_t key[static AUDIT_SEAL_KEY_SIZE], const char *prefix, size_t len,
        char ret_hex[static AUDIT_HASH_HEX_LEN + 1])
{
	uint8_t md[32];
	unsigned n = 0;

	if (!HMAC(EVP_sha256(), key, AUDIT_SEAL_KEY_SIZE, (const unsigned char *)prefix, len, md,
	            &n) ||
	        n != sizeof(md))
		return -EIO;
	hex_encode_to(md, sizeof(md), ret_hex);
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}

int audit_seal_key_id(const uint8_t key[static AUDIT_SEAL_KEY_SIZE], char ret_hex[static 17])
{
	static const char domain[] = "keyward-audit-seal-key-id-v1";
	uint8_t md[32];
	unsigned n = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = 0;

	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	        EVP_DigestUpdate(ctx, domain, sizeof(domain) - 1) != 1 ||
	        EVP_DigestUpdate(ctx, key, AUDIT_SEAL_KEY_SIZE) != 1 ||
	        EVP_DigestFinal_ex(ctx, md, &n) != 1)
		r = -EIO;
	EVP_MD_CTX_free(ctx);
	if (r < 0)
		return r;
	hex_encode_to(md, 8, ret_hex);
	return 0;
}

/* ---- the seal key ---- */

int audit_seal_key_load(const char *path, bool require_root,
        uint8_t ret_key[static AUDIT_SEAL_KEY_SIZE], const char **ret_problem)
{
	AuditSealKey k = {};
	int r;

	r = audit_seal_key_read(path, require_root, &k, ret_problem);
	if (r >= 0 && k.epoch != AUDIT_SEAL_EPOCH_NONE) {
		if (ret_problem)
			*ret_problem = "is a forward-secure seal key, not a static one";
		r = -EBADMSG;
	}
	if (r >= 0)
		memcpy(ret_key, k.key, AUDIT_SEAL_KEY_SIZE);
	audit_seal_key_clear(&k);
	return r;
}

/* ---- secondary sinks ---- */

static void sink_failed(AuditLog *log, AuditSink sink, int error)
{
	if (log->sink_error[sink] != 0)
		return; /* reported once */
	log->sink_error[sink] = error < 0 ? error : -EIO;
	if (log->on_sink_error)
		log->on_sink_error(sink, log->sink_error[sink], log->userdata);
}

int audit_log_sink_error(const AuditLog *log, AuditSink sink)
{
	if (!log || sink < 0 || sink >= _AUDIT_SINK_MAX)
		return -EINVAL;
	return log->sink_error[sink];
}

/* Appends " NAME=VALUE" to the one-line summary. VALUE comes from outsiders (user,
 * rhost, ...): anything that could end it early or start a new line or field (space,
 * '=', quote, backslash, control characters, non-ASCII such as bidi overrides) puts it
 * in double quotes with C escapes, so "user=x service=sshd" cannot pose as two fields. */
static void summary_append(JsonBuf *m, const char *name, const char *value)
{
	static const char hex[] = "0123456789abcdef";
	size_t len;
	bool quote = false;

	if (isempty(value))
		return;
	len = strnlen(value, 256);
	for (size_t i = 0; i < len && !quote; i++) {
		unsigned char c = (unsigned char)value[i];
		quote = c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '=';
	}
	json_buf_printf(m, " %s=", name);
	if (!quote) {
		json_buf_append(m, value, len);
		return;
	}
	json_buf_append(m, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			json_buf_append(m, e, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 0x0f]};
			json_buf_append(m, e, 4);
		} else
			json_buf_append(m, (const char *)&c, 1);
	}
	json_buf_append(m, "\"", 1);
}

int audit_journal_summary(const AuditRecord *rec, char **ret)
{
	JsonBuf msg = {};

	if (!rec || !ret)
		return -EINVAL;
	json_buf_printf(&msg, "keyward %s %s", strna(audit_event_to_string(rec->event)),
	        strna(audit_result_to_string(rec->result)));
	summary_append(&msg, "user", rec->user);
	summary_append(&msg, "service", rec->service);
	summary_append(&msg, "reason", rec->reason);
	summary_append(&msg, "credential", rec->cred_label);
	summary_append(&msg, "session", rec->session);
	summary_append(&msg, "action", rec->action);
	summary_append(&msg, "rule", rec->rule);
	if (msg.oom) {
		json_buf_free(&msg);
		return -ENOMEM;
	}
	*ret = TAKE_PTR(msg.data);
	return 0;
}

#define JOURNAL_FIELDS_MAX 40

/* The journald fields of REC, after the ones the caller put in STRS[0..*n): each value
 * its own entry, so a newline or '=' stays inside it. -ENOMEM leaves *n consistent. */
static int journal_record_fields(
        const AuditRecord *rec, const char *msg, int prio, char **strs, size_t *n)
{
	static const struct {
		const char *field;
		size_t offset;
	} fields[] = {
	        {"KEYWARD_REASON", offsetof(AuditRecord, reason)},
	        {"KEYWARD_USER", offsetof(AuditRecord, user)},
	        {"KEYWARD_SERVICE", offsetof(AuditRecord, service)},
	        {"KEYWARD_TTY", offsetof(AuditRecord, tty)},
	        {"KEYWARD_RHOST", offsetof(AuditRecord, rhost)},
	        {"KEYWARD_CREDENTIAL", offsetof(AuditRecord, cred_label)},
	        {"KEYWARD_CREDENTIAL_ID", offsetof(AuditRecord, cred_id)},
	        {"KEYWARD_AAGUID", offsetof(AuditRecord, aaguid)},
	        {"KEYWARD_DEVICE", offsetof(AuditRecord, device)},
	        {"KEYWARD_RULE", offsetof(AuditRecord, rule)},
	        {"KEYWARD_SESSION", offsetof(AuditRecord, session)},
	        {"KEYWARD_ACTION", offsetof(AuditRecord, action)},
	        {"KEYWARD_DETAIL", offsetof(AuditRecord, detail)},
	        {"KEYWARD_SPOOLED", offsetof(AuditRecord, spooled)},
	};
	const AuditActor *a = rec->actor;

#define ADD(...)                                                                                   \
	do {                                                                                       \
		if (*n >= JOURNAL_FIELDS_MAX || asprintf(&strs[*n], __VA_ARGS__) < 0) {            \
			strs[*n] = NULL;                                                           \
			return -ENOMEM;                                                            \
		}                                                                                  \
		(*n)++;                                                                            \
	} while (0)
	ADD("MESSAGE=%s", msg);
	ADD("PRIORITY=%d", prio);
	ADD("SYSLOG_FACILITY=%d", LOG_AUTHPRIV >> 3);
	ADD("KEYWARD_EVENT=%s", strna(audit_event_to_string(rec->event)));
	ADD("KEYWARD_RESULT=%s", strna(audit_result_to_string(rec->result)));
	if (rec->uid != (uid_t)-1)
		ADD("KEYWARD_UID=%u", (unsigned)rec->uid);
	for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
		const char *v = *(const char *const *)((const char *)rec + fields[i].offset);
		if (!isempty(v))
			ADD("%s=%.*s", fields[i].field, (int)AUDIT_FIELD_MAX, v);
	}
	if (rec->action_seq)
		ADD("KEYWARD_ACTION_SEQ=%" PRIu64, rec->action_seq);
	if (a && a->uid != (uid_t)-1)
		ADD("KEYWARD_ACTOR_UID=%u", (unsigned)a->uid);
	if (a && !isempty(a->user))
		ADD("KEYWARD_ACTOR=%s", a->user);
	if (a && a->loginuid != (uid_t)-1)
		ADD("KEYWARD_ACTOR_LOGINUID=%u", (unsigned)a->loginuid);
	if (a && !isempty(a->login))
		ADD("KEYWARD_ACTOR_LOGIN=%s", a->login);
	if (a && !isempty(a->session))
		ADD("KEYWARD_ACTOR_SESSION=%s", a->session);
	if (a && !isempty(a->tty))
		ADD("KEYWARD_ACTOR_TTY=%.*s", (int)AUDIT_FIELD_MAX, a->tty);
#undef ADD
	return 0;
}

static int journal_priority(const AuditRecord *rec)
{
	return rec->result == AUDIT_RESULT_FAILURE || rec->event == AUDIT_EVENT_CLONE_ALERT ||
	                       rec->event == AUDIT_EVENT_LOCK_FAILED ||
	                       (rec->event == AUDIT_EVENT_SPACE &&
	                               !(rec->reason && streq(rec->reason, "recovered")))
	               ? LOG_WARNING
	               : LOG_INFO;
}

/* Sends STRS[0..n) (MESSAGE first); without journald (containers, early boot) the
 * summary goes to plain syslog, which still reaches rsyslog. */
static int journal_sendv(char **strs, size_t n, bool no_journal, const char *msg, int prio)
{
	struct iovec iov[JOURNAL_FIELDS_MAX];
	int r;

	for (size_t i = 0; i < n; i++)
		iov[i] = (struct iovec){.iov_base = strs[i], .iov_len = strlen(strs[i])};
	r = no_journal ? -ENOENT : sd_journal_sendv(iov, (int)n);
	if (r < 0)
		syslog(LOG_AUTHPRIV | prio, "%s", msg);
	return r;
}

static int sink_push(AuditLog *log, SinkItem *it);

static void send_journal(AuditLog *log, const AuditRecord *rec, uint64_t seq, const char *hash)
{
	char *strs[JOURNAL_FIELDS_MAX] = {};
	_cleanup_free_ char *msg = NULL;
	size_t n = 0;
	int r, prio = journal_priority(rec);

	if (audit_journal_summary(rec, &msg) < 0)
		goto out;
	if (!log->to_syslog)
		goto out;
	if (journal_record_fields(rec, msg, prio, strs, &n) < 0 ||
	        asprintf(&strs[n++], "KEYWARD_SEQ=%" PRIu64, seq) < 0 ||
	        asprintf(&strs[n++], "KEYWARD_HASH=%s", hash) < 0) {
		strs[--n] = NULL;
		goto out;
	}
	if (log->group) {
		/* The sync thread sends it once the record is durable. */
		SinkItem *it = calloc(1, sizeof(*it));
		if (it)
			it->strs = calloc(n, sizeof(char *));
		if (!it || !it->strs) {
			free(it);
			goto out;
		}
		it->kind = SINK_ITEM_JOURNAL;
		it->seq = seq;
		it->n = n;
		it->prio = prio;
		it->msg = TAKE_PTR(msg);
		memcpy(it->strs, strs, n * sizeof(char *));
		memset(strs, 0, sizeof(strs));
		(void)sink_push(log, it);
		goto out;
	}
	r = journal_sendv(strs, n, log->no_journal, msg, prio);
	if (r < 0)
		sink_failed(log, AUDIT_SINK_JOURNAL, r);
out:
	for (size_t i = 0; i < ELEMENTSOF(strs); i++)
		free(strs[i]);
}

int audit_journal_send(const AuditRecord *rec, const char *decided_by)
{
	char *strs[JOURNAL_FIELDS_MAX] = {};
	_cleanup_free_ char *msg = NULL;
	size_t n = 0;
	int r, prio;

	if (!rec || rec->event < 0 || rec->event >= _AUDIT_EVENT_MAX)
		return -EINVAL;
	prio = journal_priority(rec);
	r = audit_journal_summary(rec, &msg);
	if (r >= 0)
		r = journal_record_fields(rec, msg, prio, strs, &n);
	if (r >= 0 && (asprintf(&strs[n++], "KEYWARD_TRAIL=unavailable") < 0 ||
	                      (decided_by && asprintf(&strs[n++], "KEYWARD_DECIDED_BY=%s",
	                                             decided_by) < 0))) {
		strs[--n] = NULL;
		r = -ENOMEM;
	}
	if (r >= 0)
		r = journal_sendv(
		        strs, n, access("/run/systemd/journal/socket", F_OK) < 0, msg, prio);
	for (size_t i = 0; i < ELEMENTSOF(strs); i++)
		free(strs[i]);
	return r;
}

/* ---- Linux audit message ---- */

/* Untrusted values are cut to this many bytes before encoding (hex doubles them), so a
 * record stays far below libaudit's MAX_AUDIT_MESSAGE_LENGTH with every field set. */
#define LINUX_AUDIT_VALUE_MAX 256u

/* libaudit's audit_value_needs_encoding(): a value with a space, a quote, a control
 * character, DEL or any byte >= 0x80 must be hex-encoded, or it could end the field
 * and forge others ("x res=success acct=root"). */
static bool linux_audit_needs_encoding(const char *v, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '"' || c < 0x21 || c >= 0x7f)
			return true;
	}
	return false;
}

static void linux_audit_put_hex(JsonBuf *m, const char *v, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < len; i++) {
		char h[2] = {hex[(unsigned char)v[i] >> 4], hex[(unsigned char)v[i] & 0x0f]};
		json_buf_append(m, h, 2);
	}
}

/* " NAME=HEX" or " NAME=\"VALUE\"", as audit_encode_nv_string() writes it. */
static void linux_audit_put(JsonBuf *m, const char *name, const char *v)
{
	size_t len = strnlen(v, LINUX_AUDIT_VALUE_MAX);

	json_buf_printf(m, " %s=", name);
	if (linux_audit_needs_encoding(v, len))
		linux_audit_put_hex(m, v, len);
	else {
		json_buf_append(m, "\"", 1);
		json_buf_append(m, v, len);
		json_buf_append(m, "\"", 1);
	}
}

/* Who asked for it: the kernel stamps auid= and ses= of keywardd itself (libaudit has no
 * call that sets another's), so the caller's login uid and session are in the message. */
static void linux_audit_put_actor(JsonBuf *m, const AuditActor *a)
{
	if (!a)
		return;
	if (a->uid != (uid_t)-1)
		json_buf_printf(m, " actor_uid=%u", (unsigned)a->uid);
	if (!isempty(a->user))
		linux_audit_put(m, "actor", a->user);
	if (a->loginuid != (uid_t)-1)
		json_buf_printf(m, " actor_auid=%u", (unsigned)a->loginuid);
	if (!isempty(a->session))
		linux_audit_put(m, "actor_ses", a->session);
}

int audit_linux_message(const AuditRecord *rec, char **ret_message, char **ret_terminal)
{
	bool acct_event;
	JsonBuf m = {}, t = {};

	if (!rec || rec->event < 0 || rec->event >= _AUDIT_EVENT_MAX || !ret_message ||
	        !ret_terminal)
		return -EINVAL;
	acct_event = rec->event == AUDIT_EVENT_AUTH || rec->event == AUDIT_EVENT_ACCOUNT;

	if (rec->event == AUDIT_EVENT_AUTH)
		json_buf_puts(&m, "op=PAM:keyward-authentication");
	else if (rec->event == AUDIT_EVENT_ACCOUNT)
		json_buf_puts(&m, "op=PAM:keyward-account");
	else
		json_buf_printf(&m, "op=keyward-%s", audit_event_to_string(rec->event));
	/* The account the decision is about, by name (as pam's own records do): the uid in
	 * "id=" only where there is no login and it really is the account's uid. */
	linux_audit_put(&m, "acct", isempty(rec->user) ? "?" : rec->user);
	if (!acct_event && rec->uid != (uid_t)-1)
		json_buf_printf(&m, " id=%u", (unsigned)rec->uid);
	/* The remote host goes in the message, never to libaudit's hostname parameter:
	 * libaudit would resolve it (getaddrinfo) and print it unencoded. */
	if (!isempty(rec->rhost))
		linux_audit_put(&m, "rhost", rec->rhost);
	if (!isempty(rec->reason))
		linux_audit_put(&m, "reason", rec->reason);
	if (!isempty(rec->cred_label))
		linux_audit_put(&m, "cred", rec->cred_label);
	if (!isempty(rec->session))
		linux_audit_put(&m, "session", rec->session);
	if (!isempty(rec->action))
		linux_audit_put(&m, "action", rec->action);
	linux_audit_put_actor(&m, rec->actor);

	/* libaudit prints the terminal as given (terminal=%s): give it only safe bytes, and
	 * "?" rather than NULL, which would make it look up the daemon's own tty. */
	if (isempty(rec->tty))
		json_buf_puts(&t, "?");
	else {
		size_t len = strnlen(rec->tty, LINUX_AUDIT_VALUE_MAX);
		if (linux_audit_needs_encoding(rec->tty, len))
			linux_audit_put_hex(&t, rec->tty, len);
		else
			json_buf_append(&t, rec->tty, len);
	}

	if (m.oom || t.oom) {
		json_buf_free(&m);
		json_buf_free(&t);
		return -ENOMEM;
	}
	*ret_message = TAKE_PTR(m.data);
	*ret_terminal = TAKE_PTR(t.data);
	return 0;
}

#if HAVE_LIBAUDIT
/* The Linux audit record type for an event (0: not sent). */
static int linux_audit_type(AuditEvent e)
{
	switch (e) {
	case AUDIT_EVENT_SEAL:
	case AUDIT_EVENT_ROTATE:
	case AUDIT_EVENT_TORN_TAIL:
	case AUDIT_EVENT_RETENTION:
	case AUDIT_EVENT_AUDIT_SINK:
		return 0; /* trail bookkeeping */
	case AUDIT_EVENT_AUTH:
		return AUDIT_USER_AUTH;
	case AUDIT_EVENT_ACCOUNT:
		return AUDIT_USER_ACCT;
	case AUDIT_EVENT_LOCKOUT:
		return AUDIT_ANOM_LOGIN_FAILURES;
	case AUDIT_EVENT_ENROLL:
	case AUDIT_EVENT_REVOKE:
	case AUDIT_EVENT_IMPORT:
		return AUDIT_USER_MGMT;
	case AUDIT_EVENT_POLICY_LOAD:
		return AUDIT_USYS_CONFIG;
	case AUDIT_EVENT_KEY_ADDED:
	case AUDIT_EVENT_KEY_REMOVED:
		return AUDIT_USER_DEVICE;
	default:
		return AUDIT_TRUSTED_APP;
	}
}

/* One message through libaudit: > 0 sent, -errno not. "Auditing is off" is not an error
 * to libaudit (the kernel drops the message and says nothing): asked while the sink is
 * down, so that its return is noticed. */
static int linux_audit_send_libaudit(
        AuditLog *log, const AuditRecord *rec, const char *message, const char *terminal, bool down)
{
	int r;

	if (log->audit_fd < 0) {
		log->audit_fd = audit_open();
		if (log->audit_fd < 0)
			return errno ? -errno : -EIO;
	}
	if (down) {
		errno = 0;
		r = audit_is_enabled(log->audit_fd);
		if (r == 0)
			return -ENODATA;
		if (r < 0)
			return errno ? -errno : -EIO;
	}
	/* hostname and addr NULL: libaudit resolves a hostname it is given (getaddrinfo)
	 * unless addr is set; with NULL it prints "?" and looks nothing up. The encoded
	 * rhost is in the message. audit_log_acct_message() is not used: it prints host and
	 * tty unencoded and puts a known uid in "id=" instead of the account in "acct=". */
	errno = 0;
	r = audit_log_user_message(log->audit_fd, linux_audit_type(rec->event), message, NULL, NULL,
	        terminal, rec->result != AUDIT_RESULT_FAILURE);
	return r > 0 ? 1 : errno ? -errno : -EIO;
}
#endif

/* ---- formatting ---- */

typedef struct Extra {
	uint64_t file_seq; /* rotate */
	const char *prev_file;
	bool torn; /* torn-tail */
	uint64_t torn_offset, torn_length;
	const char *torn_sha256;
	bool seal;
} Extra;

static void put_str(JsonBuf *b, const char *key, const char *v, size_t max)
{
	size_t klen, len;
	bool plain = true;

	if (!v)
		return;
	klen = strlen(key);
	json_buf_append(b, ",\"", 2);
	json_buf_append(b, key, klen);
	json_buf_append(b, "\":", 2);
	/* Most values are printable ASCII with nothing to escape: copied in one go (the
	 * event loop formats every record; escaping byte by byte was most of its time). */
	len = strnlen(v, max + 1);
	for (size_t i = 0; i < len && plain; i++) {
		unsigned char c = (unsigned char)v[i];
		plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
	}
	if (!plain || len > max) {
		json_buf_put_string(b, v, max);
		return;
	}
	json_buf_append(b, "\"", 1);
	json_buf_append(b, v, len);
	json_buf_append(b, "\"", 1);
}

static void put_actor(JsonBuf *b, const AuditActor *a, size_t max)
{
	if (!a)
		return;
	if (a->uid != (uid_t)-1)
		json_buf_printf(b, ",\"actor_uid\":%u", (unsigned)a->uid);
	put_str(b, "actor", a->user, max);
	if (a->loginuid != (uid_t)-1)
		json_buf_printf(b, ",\"actor_loginuid\":%u", (unsigned)a->loginuid);
	put_str(b, "actor_login", a->login, max);
	put_str(b, "actor_session", a->session, max);
	put_str(b, "actor_tty", a->tty, max);
}

static int format_record(AuditLog *log, const AuditRecord *rec, const Extra *x, uint64_t seq,
        size_t field_max, JsonBuf *b)
{
	char t[40];
	int r;

	r = format_rfc3339_ms(now_realtime_ms(), t, sizeof(t));
	if (r < 0)
		return r;
	json_buf_reset(b);
	json_buf_printf(b, "{\"seq\":%" PRIu64 ",\"time\":\"%s\"", seq, t);
	put_str(b, "host", log->host, field_max);
	put_str(b, "event", audit_event_to_string(rec->event), field_max);
	put_str(b, "result", audit_result_to_string(rec->result), field_max);
	put_str(b, "reason", rec->reason, field_max);
	put_str(b, "message", rec->message, field_max);
	put_str(b, "user", rec->user, field_max);
	if (rec->uid != (uid_t)-1)
		json_buf_printf(b, ",\"uid\":%u", (unsigned)rec->uid);
	put_str(b, "service", rec->service, field_max);
	put_str(b, "tty", rec->tty, field_max);
	put_str(b, "rhost", rec->rhost, field_max);
	put_str(b, "cred_label", rec->cred_label, field_max);
	put_str(b, "cred_id", rec->cred_id, field_max);
	put_str(b, "aaguid", rec->aaguid, field_max);
	put_str(b, "device", rec->device, field_max);
	put_str(b, "rule", rec->rule, field_max);
	put_str(b, "rule_name", rec->rule_name, field_max);
	put_str(b, "policy", rec->policy, field_max);
	put_str(b, "session", rec->session, field_max);
	put_str(b, "action", rec->action, field_max);
	put_str(b, "detail", rec->detail, field_max);
	if (rec->action_seq)
		json_buf_printf(b, ",\"action_seq\":%" PRIu64, rec->action_seq);
	put_actor(b, rec->actor, field_max);
	put_str(b, "spooled", rec->spooled, field_max);
	put_str(b, "spool_id", rec->spool_id, field_max);
	if (rec->event == AUDIT_EVENT_ROTATE) {
		json_buf_printf(b, ",\"file_seq\":%" PRIu64, x->file_seq);
		put_str(b, "prev_file", x->prev_file, field_max);
	}
	if (x->torn)
		json_buf_printf(b,
		        ",\"torn_offset\":%" PRIu64 ",\"torn_length\":%" PRIu64
		        ",\"torn_sha256\":\"%s\"",
		        x->torn_offset, x->torn_length, x->torn_sha256);
	if (x->seal) {
		json_buf_printf(b, ",\"every\":%u", log->seal_every);
		if (log->epoch != AUDIT_SEAL_EPOCH_NONE)
			json_buf_printf(b, ",\"epoch\":%" PRIu64, log->epoch);
		json_buf_printf(b, ",\"key_id\":\"%s\"", log->key_id);
	}
	json_buf_printf(b, ",\"prev\":\"%s\"", log->head);
	if (x->seal) {
		char mac[AUDIT_HASH_HEX_LEN + 1];
		if (b->oom)
			return -ENOMEM;
		r = audit_seal_mac(log->key, b->data, b->len, mac);
		if (r < 0)
			return r;
		json_buf_printf(b, ",\"mac\":\"%s\"", mac);
	}
	json_buf_append(b, "}", 1);
	if (b->oom)
		return -ENOMEM;
	if (b->len >= AUDIT_LINE_MAX)
		return -E2BIG;
	return 0;
}

/* Writes the line in log->buf (without newline), fsyncs, advances the chain. */
static int write_line(AuditLog *log)
{
	char hash[AUDIT_HASH_HEX_LEN + 1];
	uint64_t off = log->size;
	size_t done = 0, len;
	int r;

	r = audit_line_hash(log->buf.data, log->buf.len, hash);
	if (r < 0)
		return r;
	json_buf_append(&log->buf, "\n", 1);
	if (log->buf.oom)
		return -ENOMEM;
	len = log->buf.len;
	while (done < len) {
		ssize_t n = write(log->fd, log->buf.data + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			/* Take a partial line back so the file stays a clean chain. */
			if (done > 0 && ftruncate(log->fd, (off_t)off) < 0)
				log->broken = true;
			return r;
		}
		if (n == 0) {
			if (ftruncate(log->fd, (off_t)off) < 0)
				log->broken = true;
			return -EIO;
		}
		done += (size_t)n;
	}
	/* The line is in the file: the chain advances even if fsync fails below. */
	log->size += len;
	memcpy(log->head, hash, sizeof(hash));
	if (log->fsync_each && fdatasync(log->fd) < 0)
		return -errno;
	return 0;
}

static void linux_audit_forward(AuditLog *log, const AuditRecord *rec);

static int append_internal(AuditLog *log, const AuditRecord *rec, const Extra *x)
{
	uint64_t size_before = log->size;
	int r;

	if (log->broken)
		return -EIO;
	r = format_record(log, rec, x, log->seq + 1, AUDIT_FIELD_MAX, &log->buf);
	if (r == -E2BIG)
		/* Escaping can grow a value sixfold: cut every value shorter rather than lose
		 * the record (20 fields of 64 bytes fit in any case). */
		r = format_record(log, rec, x, log->seq + 1, AUDIT_FIELD_SHORT, &log->buf);
	if (r < 0)
		return r;
	r = write_line(log);
	if (log->size != size_before) {
		/* The line is in the file (even if fsync then failed): the chain moved on. */
		log->seq++;
		log->unsealed = x->seal ? 0 : log->unsealed + 1;
	}
	if (r < 0)
		return r;
	if (log->to_syslog)
		/* journald keeps seq and the line's hash: the trail can be checked against it */
		send_journal(log, rec, log->seq, log->head);
	if (log->to_linux_audit)
		linux_audit_forward(log, rec);
	return 0;
}

/* ---- Linux audit copies, and their outages in the trail ---- */

/* An outage of the Linux audit copy (or its end) as one audit-sink record: the copy
 * may be dropped, the fact that it was may not. */
static void linux_audit_note(AuditLog *log, int error)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	Extra x = {};
	char detail[96];

	rec.event = AUDIT_EVENT_AUDIT_SINK;
	rec.result = AUDIT_RESULT_INFO;
	rec.detail = audit_sink_to_string(AUDIT_SINK_LINUX_AUDIT);
	if (error < 0) {
		rec.reason = error == -ENODATA ? "disabled" : "unavailable";
		snprintf(detail, sizeof(detail), "%s: %s", rec.detail,
		        error == -ENODATA ? "auditing is off" : strerror(-error));
		rec.detail = detail;
		rec.message = "Records are not reaching the Linux audit subsystem; the trail "
		              "keeps them. Another audit-sink record says when they do again.";
	} else {
		rec.reason = "recovered";
		rec.message = "Records reach the Linux audit subsystem again.";
	}
	(void)append_internal(log, &rec, &x);
}

static bool linux_audit_skips(AuditEvent e)
{
	/* trail bookkeeping, and the sink's own outage records */
	return e == AUDIT_EVENT_SEAL || e == AUDIT_EVENT_ROTATE || e == AUDIT_EVENT_TORN_TAIL ||
	       e == AUDIT_EVENT_RETENTION || e == AUDIT_EVENT_AUDIT_SINK;
}

static void linux_audit_forward(AuditLog *log, const AuditRecord *rec)
{
	_cleanup_free_ char *message = NULL, *terminal = NULL;
	int r;

	if (linux_audit_skips(rec->event))
		return;
#if !HAVE_LIBAUDIT
	if (!log->linux_audit_send)
		return; /* not built in: reported once at open */
#endif
	r = audit_linux_message(rec, &message, &terminal);
	if (r >= 0 && log->group) {
		SinkItem *it = calloc(1, sizeof(*it));
		if (!it)
			return;
		it->kind = SINK_ITEM_LINUX_AUDIT;
		it->seq = log->seq;
		it->event = rec->event;
		it->result = rec->result;
		it->message = TAKE_PTR(message);
		it->terminal = TAKE_PTR(terminal);
		(void)sink_push(log, it);
		return;
	}
	if (r >= 0) {
		if (log->linux_audit_send)
			r = log->linux_audit_send(rec, message, terminal, log->userdata);
		else
#if HAVE_LIBAUDIT
			r = linux_audit_send_libaudit(
			        log, rec, message, terminal, log->linux_audit_down);
#else
			return; /* not built in: reported once at open */
#endif
	}
	if (r < 0) {
		sink_failed(log, AUDIT_SINK_LINUX_AUDIT, r);
		if (!log->linux_audit_down) {
			log->linux_audit_down = true;
			linux_audit_note(log, r);
		}
	} else if (log->linux_audit_down) {
		log->linux_audit_down = false;
		linux_audit_note(log, 0);
	}
}

/* After a seal is in the trail: make it durable, publish its anchor, and evolve the
 * key (k_e erased in memory and in the file) so that nobody who takes the machine later
 * can make another seal of this epoch. A crash before the key file is replaced leaves
 * the file at k_e: audit_log_open() sees the trail's last seal at that epoch and moves on.
 * Group commit: the anchor goes out and the key file is replaced by the sync threads once
 * the seal is durable; the key evolves in memory now (k_e is never used again). */
static int seal_done(AuditLog *log)
{
	AuditSealKey k = {};
	int r = 0;

	if (!log->group && !log->fsync_each && log->epoch != AUDIT_SEAL_EPOCH_NONE &&
	        fdatasync(log->fd) < 0)
		return -errno; /* the key must not move past a seal that is not on disk */
	if (log->to_syslog && !log->no_journal) {
		AuditAnchor a = {.epoch = log->epoch, .seq = log->seq, .file_seq = log->file_seq};
		memcpy(a.hash, log->head, sizeof(a.hash));
		snprintf(a.host, sizeof(a.host), "%s", log->host);
		snprintf(a.key_id, sizeof(a.key_id), "%s", log->key_id);
		if (log->group) {
			SinkItem *it = calloc(1, sizeof(*it));
			if (it) {
				it->kind = SINK_ITEM_ANCHOR;
				it->seq = log->seq;
				it->anchor = a;
				(void)sink_push(log, it);
			}
		} else {
			r = audit_anchor_send(&a);
			if (r < 0)
				sink_failed(log, AUDIT_SINK_JOURNAL, r);
			r = 0;
		}
	}
	if (log->epoch == AUDIT_SEAL_EPOCH_NONE)
		return 0;
	k.epoch = log->epoch;
	k.exported = log->key_exported;
	memcpy(k.key, log->key, sizeof(k.key));
	memcpy(k.key_id, log->key_id, sizeof(k.key_id));
	r = audit_seal_key_evolve(&k);
	if (r >= 0) {
		/* In memory first: even if the file cannot be replaced, k_e is never used again. */
		memcpy(log->key, k.key, sizeof(k.key));
		log->epoch = k.epoch;
		if (log->group) {
			pthread_mutex_lock(&log->lock);
			audit_seal_key_clear(&log->seal_key);
			log->seal_key = k;
			log->seal_seq = log->seq;
			log->seal_pending = true;
			pthread_mutex_unlock(&log->lock);
		} else
			r = audit_seal_key_write(log->seal_key_path, &k);
	}
	audit_seal_key_clear(&k);
	return r;
}

static int seal_with_detail(AuditLog *log, const char *reason, bool force, const char *detail)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	Extra x = {.seal = true};
	uint64_t size_before;
	int r, q;

	if (!log)
		return -EINVAL;
	if (!force && log->unsealed == 0)
		return 0;
	rec.event = AUDIT_EVENT_SEAL;
	rec.result = AUDIT_RESULT_INFO;
	rec.reason = reason ?: "interval";
	rec.detail = detail;
	size_before = log->size;
	r = append_internal(log, &rec, &x);
	if (log->size == size_before)
		return r; /* not written: this epoch's key is still unused */
	/* Written (even if fsync failed): its key is spent. */
	q = seal_done(log);
	return r < 0 ? r : q;
}

static void commit_request(AuditLog *log);

int audit_log_seal(AuditLog *log, const char *reason, bool force)
{
	int r = seal_with_detail(log, reason, force, NULL);

	if (log)
		commit_request(log); /* group commit: the seal and its key update go out */
	return r;
}

static int write_header(AuditLog *log, const char *reason, const char *prev_file)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	Extra x = {.file_seq = log->file_seq, .prev_file = prev_file};

	rec.event = AUDIT_EVENT_ROTATE;
	rec.result = AUDIT_RESULT_INFO;
	rec.reason = reason;
	log->file_started_ms = now_realtime_ms();
	return append_internal(log, &rec, &x);
}

static int open_trail_fd(const char *path, bool create_new, struct stat *ret_st)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	fd = open(path,
	        O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_CREAT |
	                (create_new ? O_EXCL : 0),
	        0640);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADFD;
	if (st.st_uid != geteuid())
		return -EPERM;
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return -EACCES;
	/* One writer: a second daemon must not interleave its chain with ours. */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	*ret_st = st;
	return TAKE_FD(fd);
}

/* ---- retention and free space ---- */

static int read_exact_at(int fd, void *buf, size_t len, uint64_t off);
static size_t line_start_before(const char *buf, size_t end);

static const char *const audit_space_action_table[_AUDIT_SPACE_ACTION_MAX] = {
        [AUDIT_SPACE_IGNORE] = "ignore",
        [AUDIT_SPACE_ALERT] = "alert",
        [AUDIT_SPACE_ROTATE] = "rotate",
        [AUDIT_SPACE_DENY] = "deny",
};

DEFINE_STRING_TABLE_LOOKUP(audit_space_action, AuditSpaceAction, audit_space_action_table)

/* Whether rotated FILE ends with a seal on a complete line: only such a file may be
 * removed (never data that no MAC protects). */
static bool rotated_file_sealed(const char *file)
{
	_cleanup_(audit_entry_freep) AuditEntry *e = NULL;
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	uint64_t start;
	size_t len, s1;

	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
		return false;
	start = (uint64_t)st.st_size > AUDIT_LINE_MAX + 1
	                ? (uint64_t)st.st_size - AUDIT_LINE_MAX - 1
	                : 0;
	len = (size_t)((uint64_t)st.st_size - start);
	buf = malloc(len + 1);
	if (!buf || read_exact_at(fd, buf, len, start) < 0 || buf[len - 1] != '\n')
		return false;
	s1 = line_start_before(buf, len - 1);
	if (!(s1 > 0 || start == 0))
		return false;
	if (audit_entry_parse(buf + s1, len - 1 - s1, &e, NULL) < 0)
		return false;
	return e->event == AUDIT_EVENT_SEAL;
}

/* Free bytes (for the daemon: available to unprivileged users is not the point, the
 * trail's writer is root) and the threshold in bytes on this file system. */
static uint64_t threshold_bytes(const AuditSpaceThreshold *t, const struct statvfs *sv)
{
	if (t->percent > 0)
		return (uint64_t)sv->f_blocks * sv->f_frsize / 100 * t->percent;
	return t->bytes;
}

static int space_free(AuditLog *log, struct statvfs *ret_sv, uint64_t *ret_free)
{
	if (fstatvfs(log->fd, ret_sv) < 0)
		return -errno;
	*ret_free = (uint64_t)ret_sv->f_bavail * ret_sv->f_frsize;
	return 0;
}

typedef enum RetentionWhy {
	RETENTION_LIMITS, /* keep_files, keep_age */
	RETENTION_ROOM,   /* free space below NEED: remove down to keep_min_files */
} RetentionWhy;

/* Removes rotated files, oldest first, while WHY asks for it; each must be sealed, and
 * the live file is never one of them. One retention record names what went. Returns
 * the number of files removed. */
static int retention_remove(AuditLog *log, RetentionWhy why, uint64_t need, const char *reason)
{
	_cleanup_strv_free_ char **files = NULL;
	JsonBuf names = {};
	size_t n_rotated, removed = 0;
	uint64_t now_s = now_realtime_ms() / 1000;
	int r;

	r = audit_trail_files(log->path, &files);
	if (r < 0)
		return r;
	n_rotated = strv_length(files);
	if (n_rotated > 0 && streq(files[n_rotated - 1], log->path))
		n_rotated--;
	for (size_t i = 0; i < n_rotated; i++) {
		size_t remaining = n_rotated - i;
		const char *base = strrchr(files[i], '/');
		bool go;

		if (why == RETENTION_LIMITS) {
			struct stat st;
			go = (log->limits.keep_files > 0 && remaining > log->limits.keep_files) ||
			     (log->limits.keep_age_s > 0 && stat(files[i], &st) >= 0 &&
			             (uint64_t)st.st_mtime + log->limits.keep_age_s <= now_s);
		} else {
			struct statvfs sv;
			uint64_t avail = 0;
			go = remaining > log->limits.keep_min_files &&
			     space_free(log, &sv, &avail) >= 0 && avail < need;
		}
		if (!go || !rotated_file_sealed(files[i]))
			break;
		if (unlink(files[i]) < 0) {
			r = -errno;
			break;
		}
		json_buf_printf(&names, "%s%s", removed ? "," : "", base ? base + 1 : files[i]);
		removed++;
	}
	if (removed > 0) {
		AuditRecord rec = AUDIT_RECORD_INIT;
		Extra x = {};
		char message[160];
		int k;

		(void)fsync_parent_dir(log->path);
		snprintf(message, sizeof(message),
		        "%zu rotated, sealed trail file(s) removed (%s); the chain goes on from "
		        "the "
		        "oldest file kept",
		        removed,
		        why == RETENTION_ROOM ? "to make room on the file system"
		                              : "beyond keep_files/keep_age");
		rec.event = AUDIT_EVENT_RETENTION;
		rec.result = AUDIT_RESULT_INFO;
		rec.reason = reason;
		rec.message = message;
		rec.detail = names.oom ? "?" : names.data;
		k = append_internal(log, &rec, &x);
		if (k < 0 && r >= 0)
			r = k;
	}
	json_buf_free(&names);
	return r < 0 ? r : (int)removed;
}

static int retention_apply(AuditLog *log)
{
	if (log->limits.keep_files == 0 && log->limits.keep_age_s == 0)
		return 0;
	return retention_remove(log, RETENTION_LIMITS, 0, "retention");
}

/* Compares free space with the thresholds; on crossing down into a level writes one
 * "space" record and applies the level's action; crossing back up writes "recovered". */
static int space_check(AuditLog *log)
{
	static const char *const level_name[] = {"ok", "space_left", "admin_space_left"};
	const AuditSpaceThreshold *th[] = {
	        NULL, &log->limits.space_left, &log->limits.admin_space_left};
	const AuditSpaceAction act[] = {AUDIT_SPACE_IGNORE, log->limits.space_left_action,
	        log->limits.admin_space_left_action};
	AuditRecord rec = AUDIT_RECORD_INIT;
	Extra x = {};
	struct statvfs sv;
	uint64_t avail = 0, limit = 0;
	char message[200];
	int level = 0, r;

	if (log->broken)
		return -EIO;
	r = space_free(log, &sv, &avail);
	if (r < 0)
		return r;
	for (int l = 1; l <= 2; l++) {
		uint64_t b = threshold_bytes(th[l], &sv);
		if (b > 0 && avail < b) {
			level = l;
			limit = b;
		}
	}
	if (level == log->space_level)
		return 0;
	if (level < log->space_level) {
		int was = log->space_level;
		log->space_level = level;
		if (was > 0 && was <= 2 && act[was] == AUDIT_SPACE_IGNORE)
			return 0;
		rec.reason = "recovered";
		snprintf(message, sizeof(message),
		        "%" PRIu64 " bytes free on the audit trail's file system: above %s again",
		        avail, level_name[was > 2 ? 2 : was]);
	} else {
		log->space_level = level;
		if (act[level] == AUDIT_SPACE_IGNORE)
			return 0;
		rec.reason = level_name[level];
		snprintf(message, sizeof(message),
		        "%" PRIu64
		        " bytes free on the audit trail's file system, below %s (%" PRIu64
		        " bytes); action: %s",
		        avail, level_name[level], limit, audit_space_action_to_string(act[level]));
	}
	rec.event = AUDIT_EVENT_SPACE;
	rec.result = AUDIT_RESULT_INFO;
	rec.message = message;
	rec.action = rec.reason && streq(rec.reason, "recovered")
	                     ? NULL
	                     : audit_space_action_to_string(act[level]);
	r = append_internal(log, &rec, &x);
	if (r < 0)
		return r;
	if (!streq(rec.reason, "recovered") && act[level] == AUDIT_SPACE_ROTATE) {
		r = retention_remove(log, RETENTION_ROOM, limit, level_name[level]);
		if (r > 0)
			return space_check(log); /* may be back above: "recovered" */
	}
	return r < 0 ? r : 0;
}

/* The record could not be written for want of space: with disk_full_action = rotate,
 * remove the oldest sealed rotated files (down to keep_min_files) and say so. Returns
 * > 0 when something was removed (worth one retry). */
static int disk_full(AuditLog *log)
{
	struct statvfs sv;
	uint64_t avail = 0;
	int r;

	log->space_level = 3;
	if (log->limits.disk_full_action != AUDIT_SPACE_ROTATE || log->broken)
		return 0;
	r = space_free(log, &sv, &avail);
	if (r < 0)
		return r;
	/* Room for this record, its seal and the retention record itself, and then some. */
	r = retention_remove(log, RETENTION_ROOM, avail + 4 * AUDIT_LINE_MAX, "disk_full");
	if (r > 0)
		log->space_level = 2; /* re-checked (and recorded) after the retry */
	return r;
}

static bool age_rotation_due(const AuditLog *log)
{
	return log->limits.rotate_age_s > 0 && log->file_started_ms > 0 &&
	       now_realtime_ms() >= log->file_started_ms + log->limits.rotate_age_s * 1000;
}

static int rotate(AuditLog *log);

/* A rotation whose new file got no header (the disk was full): write it now, before any
 * record, naming the file before it. */
static int header_resume(AuditLog *log)
{
	_cleanup_free_ char *prev = NULL;
	const char *base = strrchr(log->path, '/');
	int r;

	if (log->size > 0 || log->broken)
		return 0;
	if (asprintf(&prev, "%s.%06" PRIu64, base ? base + 1 : log->path, log->file_seq - 1) < 0)
		return -ENOMEM;
	r = write_header(log, "rotate", log->file_seq > 1 ? prev : NULL);
	if (r < 0)
		return r;
	return audit_log_seal(log, "rotate", true);
}

static int rotate(AuditLog *log)
{
	_cleanup_free_ char *rotated = NULL;
	const char *base;
	struct stat st;
	int r, fd;

	r = audit_log_seal(log, "rotate", true);
	if (r < 0)
		return r;
	/* Group commit: the file that goes away is durable and the sync thread is idle (it
	 * does not touch the descriptor swapped below). */
	r = audit_log_flush(log);
	if (r < 0)
		return r;
	if (log->before_rotate) {
		r = log->before_rotate(log->userdata);
		if (r < 0)
			return r;
	}
	if (asprintf(&rotated, "%s.%06" PRIu64, log->path, log->file_seq) < 0)
		return -ENOMEM;
	if (renameat2(AT_FDCWD, log->path, AT_FDCWD, rotated, RENAME_NOREPLACE) < 0)
		return -errno; /* nothing changed: we keep appending to the current file */
	/* From here on a failure leaves us without a file to write to: fail closed. */
	log->broken = true;
	r = fsync_parent_dir(log->path);
	if (r < 0)
		return r;
	fd = open_trail_fd(log->path, true, &st);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&log->lock);
	close(log->fd);
	log->fd = fd;
	pthread_mutex_unlock(&log->lock);
	log->size = 0;
	log->file_seq++;
	log->broken = false;
	base = strrchr(rotated, '/');
	base = base ? base + 1 : rotated;
	r = write_header(log, "rotate", base);
	if (r < 0)
		return r;
	r = audit_log_seal(log, "rotate", true);
	if (r < 0)
		return r;
	r = fsync_parent_dir(log->path);
	if (r < 0)
		return r;
	return retention_apply(log);
}

static int append_checked(AuditLog *log, const AuditRecord *rec)
{
	Extra x = {};
	int r;

	if (!log || !rec || rec->event < 0 || rec->event >= _AUDIT_EVENT_MAX ||
	        rec->event == AUDIT_EVENT_SEAL || rec->event == AUDIT_EVENT_ROTATE ||
	        rec->event == AUDIT_EVENT_TORN_TAIL || rec->result < 0 ||
	        rec->result >= _AUDIT_RESULT_MAX)
		return -EINVAL;
	r = append_internal(log, rec, &x);
	if (r < 0)
		return r;
	if (log->unsealed >= log->seal_every) {
		r = audit_log_seal(log, "interval", false);
		if (r < 0)
			return r;
	}
	if (log->limits.rotate_bytes > 0 && log->size >= log->limits.rotate_bytes)
		return rotate(log);
	return 0;
}

static int audit_log_append_nowait(AuditLog *log, const AuditRecord *rec)
{
	uint64_t seq_before;
	int r;

	if (!log)
		return -EINVAL;
	r = header_resume(log);
	if (r == -ENOSPC && disk_full(log) > 0)
		r = header_resume(log);
	if (r < 0)
		return r;
	seq_before = log->seq;
	r = append_checked(log, rec);
	if (r == -ENOSPC && disk_full(log) > 0) {
		/* Room was made: retry once — the record itself if it did not get in, else
		 * what failed after it went in (its fsync, the seal, the rotation). */
		if (log->seq == seq_before)
			r = append_checked(log, rec);
		else if (log->fsync_each && fdatasync(log->fd) < 0)
			r = -errno;
		else if (log->unsealed >= log->seal_every)
			r = audit_log_seal(log, "interval", false);
		else
			r = 0;
	}
	if (r < 0)
		return r;
	if (age_rotation_due(log)) {
		r = rotate(log);
		if (r < 0)
			return r;
	}
	/* Best effort: a failed check must not fail a record that is in the trail. */
	(void)space_check(log);
	return 0;
}

int audit_log_append(AuditLog *log, const AuditRecord *rec)
{
	int r;

	r = audit_log_append_nowait(log, rec);
	if (r < 0)
		return r;
	/* Group commit: joins the sync under way (blocks; the daemon's logins use
	 * audit_log_append_async() instead). */
	return audit_log_flush(log);
}

int audit_log_set_limits(AuditLog *log, const AuditLimits *limits)
{
	if (!log || !limits)
		return -EINVAL;
	log->limits = *limits;
	log->seal_every = limits->seal_every ?: AUDIT_SEAL_EVERY_DEFAULT;
	return audit_log_maintain(log);
}

int audit_log_maintain(AuditLog *log)
{
	int r;

	if (!log)
		return -EINVAL;
	if (log->broken)
		return -EIO;
	if (age_rotation_due(log) ||
	        (log->limits.rotate_bytes > 0 && log->size >= log->limits.rotate_bytes))
		r = rotate(log); /* applies retention */
	else
		r = retention_apply(log);
	if (r < 0)
		return r;
	r = space_check(log);
	if (r >= 0 && log->unsealed >= log->seal_every)
		r = audit_log_seal(log, "interval", false);
	commit_request(log); /* records written here are made durable too */
	return r;
}

int audit_log_space_level(const AuditLog *log)
{
	return log ? log->space_level : -EINVAL;
}

uint64_t audit_log_seq(const AuditLog *log)
{
	return log ? log->seq : 0;
}

uint64_t audit_log_seal_epoch(const AuditLog *log)
{
	return log ? log->epoch : AUDIT_SEAL_EPOCH_NONE;
}

bool audit_log_key_exported(const AuditLog *log)
{
	return log && log->key_exported;
}

uint64_t audit_log_key_recovered_from(const AuditLog *log)
{
	return log ? log->key_recovered_from : AUDIT_SEAL_EPOCH_NONE;
}

/* ---- group commit: the sync thread ---- */

static void sink_item_free(SinkItem *it)
{
	if (!it)
		return;
	for (size_t i = 0; i < it->n; i++)
		free(it->strs[i]);
	free(it->strs);
	free(it->msg);
	free(it->message);
	free(it->terminal);
	free(it);
}

static void commit_kick(AuditLog *log)
{
	uint64_t one = 1;

	while (write(log->commit_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* Queues a copy for the sync thread; a full queue drops it (counted: the loop writes an
 * audit-sink record about it in audit_log_commit_dispatch()). Takes IT in any case. */
static int sink_push(AuditLog *log, SinkItem *it)
{
	bool full;

	pthread_mutex_lock(&log->lock);
	full = log->n_sinks >= SINK_QUEUE_MAX;
	if (full)
		log->sinks_dropped++;
	else {
		if (log->sinks_tail)
			log->sinks_tail->next = it;
		else
			log->sinks = it;
		log->sinks_tail = it;
		log->n_sinks++;
		pthread_cond_signal(&log->work);
	}
	pthread_mutex_unlock(&log->lock);
	if (full) {
		sink_item_free(it);
		return -ENOBUFS;
	}
	return 0;
}

/* In the sync thread, without the lock: one copy. */
static void sink_send(
        AuditLog *log, const SinkItem *it, bool la_down, int *ret_journal_error, int *ret_la_result)
{
	int r;

	switch (it->kind) {
	case SINK_ITEM_JOURNAL:
		r = journal_sendv(it->strs, it->n, log->no_journal, it->msg, it->prio);
		if (r < 0 && *ret_journal_error == 0)
			*ret_journal_error = r;
		break;
	case SINK_ITEM_ANCHOR:
		r = audit_anchor_send(&it->anchor);
		if (r < 0 && *ret_journal_error == 0)
			*ret_journal_error = r;
		break;
	case SINK_ITEM_LINUX_AUDIT: {
		AuditRecord rec = AUDIT_RECORD_INIT;

		rec.event = it->event;
		rec.result = it->result;
		if (log->linux_audit_send)
			r = log->linux_audit_send(&rec, it->message, it->terminal, log->userdata);
		else
#if HAVE_LIBAUDIT
			r = linux_audit_send_libaudit(
			        log, &rec, it->message, it->terminal, la_down);
#else
			r = -ENOTSUP;
#endif
		*ret_la_result = r < 0 ? r : 1;
		break;
	}
	}
}

static void *commit_thread(void *p)
{
	AuditLog *log = p;

	pthread_mutex_lock(&log->lock);
	for (;;) {
		bool need_sync = !log->sync_error && log->requested > log->synced;
		bool have_sinks = log->sinks && log->sinks->seq <= log->synced;

		if (!need_sync && !have_sinks) {
			if (log->stopping)
				break;
			pthread_cond_wait(&log->work, &log->lock);
			continue;
		}
		if (need_sync) {
			uint64_t target = log->requested;
			int fd = log->fd, r;
			AuditSealKey k = {};
			bool key = log->seal_pending && log->seal_seq <= target;

			if (key) {
				k = log->seal_key;
				audit_seal_key_clear(&log->seal_key);
				log->seal_pending = false;
			}
			pthread_mutex_unlock(&log->lock);
			/* Everything up to TARGET was written before it was requested. */
			if (log->sync_fn)
				r = log->sync_fn(fd, log->userdata);
			else
				r = fdatasync(fd) < 0 ? -errno : 0;
			pthread_mutex_lock(&log->lock);
			if (r < 0)
				log->sync_error = r;
			else
				log->synced = target;
			pthread_cond_broadcast(&log->done);
			commit_kick(log);
			/* The seal is on disk: only now may the key file move past it. The key
			 * thread writes it while the next batch is synced (the newest key wins). */
			if (r >= 0 && key) {
				audit_seal_key_clear(&log->key_next);
				log->key_next = k;
				log->key_ready = true;
				pthread_cond_signal(&log->key_work);
			}
			audit_seal_key_clear(&k);
			continue;
		}
		/* Copies of durable records, in trail order. */
		{
			SinkItem *batch = NULL, **tail = &batch;
			bool la_down = log->thread_la_down;
			int journal_error = 0, la_result = 0;

			while (log->sinks && log->sinks->seq <= log->synced) {
				SinkItem *it = log->sinks;
				log->sinks = it->next;
				log->n_sinks--;
				it->next = NULL;
				*tail = it;
				tail = &it->next;
			}
			if (!log->sinks)
				log->sinks_tail = NULL;
			pthread_mutex_unlock(&log->lock);
			while (batch) {
				SinkItem *it = batch;
				int la = 0;

				batch = it->next;
				sink_send(log, it, la_down, &journal_error, &la);
				if (la != 0) {
					la_result = la;
					la_down = la < 0;
				}
				sink_item_free(it);
			}
			pthread_mutex_lock(&log->lock);
			if (journal_error < 0 && log->thread_journal_error == 0)
				log->thread_journal_error = journal_error;
			if (la_result != 0 && la_down != log->thread_la_down) {
				log->thread_la_down = la_down;
				log->thread_la_changed = true;
			}
			if (la_result < 0)
				log->thread_la_error = la_result;
			commit_kick(log);
		}
	}
	pthread_mutex_unlock(&log->lock);
	return NULL;
}

/* Replaces the key file with each key the sync thread hands over. A failure breaks the
 * trail (the key in memory is ahead of the file: the reopen catches up). */
static void *key_thread(void *p)
{
	AuditLog *log = p;

	pthread_mutex_lock(&log->lock);
	for (;;) {
		AuditSealKey k;
		int r;

		if (!log->key_ready) {
			if (log->stopping)
				break;
			pthread_cond_wait(&log->key_work, &log->lock);
			continue;
		}
		k = log->key_next;
		audit_seal_key_clear(&log->key_next);
		log->key_ready = false;
		pthread_mutex_unlock(&log->lock);
		r = audit_seal_key_write(log->seal_key_path, &k);
		audit_seal_key_clear(&k);
		pthread_mutex_lock(&log->lock);
		if (r < 0 && log->sync_error == 0) {
			log->sync_error = r;
			pthread_cond_broadcast(&log->done);
			commit_kick(log);
		}
	}
	pthread_mutex_unlock(&log->lock);
	return NULL;
}

static void commit_request(AuditLog *log)
{
	if (!log->group)
		return;
	pthread_mutex_lock(&log->lock);
	if (log->seq > log->requested) {
		log->requested = log->seq;
		pthread_cond_signal(&log->work);
	}
	pthread_mutex_unlock(&log->lock);
}

static int commit_start(AuditLog *log)
{
	int r;

	log->commit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (log->commit_fd < 0)
		return -errno;
	log->requested = log->synced = log->seq; /* open made everything durable */
	r = -pthread_create(&log->key_thread, NULL, key_thread, log);
	if (r < 0)
		return r;
	log->key_thread_started = true;
	r = -pthread_create(&log->thread, NULL, commit_thread, log);
	if (r < 0)
		return r;
	log->thread_started = true;
	log->group = true;
	return 0;
}

static void commit_stop(AuditLog *log)
{
	if (log->thread_started) {
		pthread_mutex_lock(&log->lock);
		log->stopping = true;
		pthread_cond_signal(&log->work);
		pthread_mutex_unlock(&log->lock);
		(void)pthread_join(log->thread, NULL);
		log->thread_started = false;
	}
	if (log->key_thread_started) {
		/* after the sync thread: it may hand over one more key */
		pthread_mutex_lock(&log->lock);
		log->stopping = true;
		pthread_cond_signal(&log->key_work);
		pthread_mutex_unlock(&log->lock);
		(void)pthread_join(log->key_thread, NULL);
		log->key_thread_started = false;
	}
	audit_seal_key_clear(&log->key_next);
	while (log->sinks) {
		SinkItem *it = log->sinks;
		log->sinks = it->next;
		sink_item_free(it);
	}
	log->sinks_tail = NULL;
	log->n_sinks = 0;
	audit_seal_key_clear(&log->seal_key);
	if (log->commit_fd >= 0)
		close(log->commit_fd);
	log->commit_fd = -EBADF;
}

int audit_log_sync_error(const AuditLog *log)
{
	int r;

	if (!log || !log->group)
		return 0;
	pthread_mutex_lock((pthread_mutex_t *)&log->lock);
	r = log->sync_error;
	pthread_mutex_unlock((pthread_mutex_t *)&log->lock);
	return r;
}

int audit_log_commit_fd(const AuditLog *log)
{
	return log && log->group ? log->commit_fd : -EBADF;
}

size_t audit_log_commit_waiting(const AuditLog *log)
{
	return log ? log->n_waiting : 0;
}

uint64_t audit_log_sink_dropped(const AuditLog *log)
{
	uint64_t n;

	if (!log || !log->group)
		return 0;
	pthread_mutex_lock((pthread_mutex_t *)&log->lock);
	n = log->sinks_dropped;
	pthread_mutex_unlock((pthread_mutex_t *)&log->lock);
	return n;
}

/* An overflow of the sink queue (or its end) as one audit-sink record: copies may be
 * dropped when journald or the audit daemon cannot keep up, never silently. */
static void sink_overflow_note(AuditLog *log, uint64_t dropped)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	Extra x = {};
	char detail[128];

	rec.event = AUDIT_EVENT_AUDIT_SINK;
	rec.result = AUDIT_RESULT_INFO;
	if (!log->sink_overflow) {
		rec.reason = "overflow";
		snprintf(detail, sizeof(detail),
		        "journal,linux-audit: queue full (%u copies waiting)", SINK_QUEUE_MAX);
		rec.message = "Copies for journald and Linux audit are dropped: they do not keep "
		              "up. The trail keeps every record. Another audit-sink record says "
		              "how many were dropped when they keep up again.";
		log->sink_overflow = true;
	} else {
		rec.reason = "recovered";
		snprintf(detail, sizeof(detail), "journal,linux-audit: %" PRIu64 " copies dropped",
		        dropped - log->dropped_noted);
		rec.message = "Copies reach journald and Linux audit again.";
		log->sink_overflow = false;
		log->dropped_noted = dropped;
	}
	rec.detail = detail;
	(void)append_internal(log, &rec, &x);
}

int audit_log_commit_dispatch(AuditLog *log)
{
	uint64_t synced, dropped, counter;
	int error, journal_error, la_error;
	bool la_changed, la_down;
	size_t n_sinks;

	if (!log || !log->group)
		return 0;
	while (read(log->commit_fd, &counter, sizeof(counter)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&log->lock);
	synced = log->synced;
	error = log->sync_error;
	journal_error = log->thread_journal_error;
	la_changed = log->thread_la_changed;
	la_down = log->thread_la_down;
	la_error = log->thread_la_error;
	log->thread_la_changed = false;
	dropped = log->sinks_dropped;
	n_sinks = log->n_sinks;
	pthread_mutex_unlock(&log->lock);

	if (error < 0)
		log->broken = true; /* what the disk holds is unknown: refuse until reopened */
	while (log->waiters && (log->waiters->seq <= synced || error < 0)) {
		CommitWaiter *w = log->waiters;

		log->waiters = w->next;
		if (!log->waiters)
			log->waiters_tail = NULL;
		log->n_waiting--;
		w->done(w->seq <= synced ? 0 : error, w->userdata);
		free(w);
	}
	if (error < 0)
		return error;
	if (journal_error < 0)
		sink_failed(log, AUDIT_SINK_JOURNAL, journal_error);
	if (la_changed && la_down != log->linux_audit_down) {
		log->linux_audit_down = la_down;
		if (la_down)
			sink_failed(log, AUDIT_SINK_LINUX_AUDIT, la_error);
		linux_audit_note(log, la_down ? la_error : 0);
	}
	if ((!log->sink_overflow && dropped > log->dropped_noted) ||
	        (log->sink_overflow && n_sinks < SINK_QUEUE_MAX / 2))
		sink_overflow_note(log, dropped);
	commit_request(log); /* the notes above */
	return 0;
}

int audit_log_flush(AuditLog *log)
{
	int r;

	if (!log)
		return -EINVAL;
	if (!log->group)
		return 0;
	pthread_mutex_lock(&log->lock);
	if (log->seq > log->requested) {
		log->requested = log->seq;
		pthread_cond_signal(&log->work);
	}
	while (!log->sync_error && log->synced < log->requested)
		pthread_cond_wait(&log->done, &log->lock);
	r = log->sync_error;
	pthread_mutex_unlock(&log->lock);
	return audit_log_commit_dispatch(log) ?: r;
}

int audit_log_append_async(
        AuditLog *log, const AuditRecord *rec, AuditCommitFn done, void *userdata)
{
	CommitWaiter *w;
	int r;

	if (!log || !done)
		return -EINVAL;
	if (!log->group) {
		r = audit_log_append(log, rec);
		if (r >= 0)
			done(0, userdata);
		return r;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	r = audit_log_append_nowait(log, rec);
	if (r < 0) {
		free(w);
		return r;
	}
	w->seq = log->seq;
	w->done = done;
	w->userdata = userdata;
	if (log->waiters_tail)
		log->waiters_tail->next = w;
	else
		log->waiters = w;
	log->waiters_tail = w;
	log->n_waiting++;
	commit_request(log);
	return 0;
}

/* ---- reading back what the writer needs ---- */

#define SCAN_CHUNK (1024 * 1024)

int audit_scan_file(const char *path, const char *needle, AuditEntryFn cb, void *userdata)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	size_t have = 0, nlen;
	uint64_t line = 0;
	int r = 0;

	if (!path || isempty(needle) || !cb)
		return -EINVAL;
	nlen = strlen(needle);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return -errno;
	/* A chunk plus the longest line a reader accepts: a line always fits. */
	buf = malloc(SCAN_CHUNK + AUDIT_LINE_MAX + 2);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, buf + have, SCAN_CHUNK);
		size_t start = 0;
		char *nl;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		have += (size_t)n;
		while ((nl = memchr(buf + start, '\n', have - start))) {
			size_t len = (size_t)(nl - (buf + start));

			line++;
			if (memmem(buf + start, len, needle, nlen)) {
				_cleanup_(audit_entry_freep) AuditEntry *e = NULL;

				if (audit_entry_parse(buf + start, len, &e, NULL) >= 0) {
					r = cb(e, path, line, userdata);
					if (r < 0)
						return r;
				}
			}
			start += len + 1;
		}
		/* Keep the unfinished line; one longer than any record is skipped. */
		memmove(buf, buf + start, have - start);
		have -= start;
		if (have > AUDIT_LINE_MAX)
			have = 0;
		if (n == 0)
			return 0; /* a torn last line is not a record */
	}
}

/* ---- opening and recovery ---- */

static int read_exact_at(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* BYTES [start, start+len) of the trail into a new NUL-terminated buffer (2 spare bytes). */
static int read_window(AuditLog *log, uint64_t start, size_t len, char **ret)
{
	_cleanup_free_ char *buf = malloc(len + 2);
	int r;

	if (!buf)
		return -ENOMEM;
	r = read_exact_at(log->fd, buf, len, start);
	if (r < 0)
		return r;
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	return 0;
}

/* Reads the file header (first line) for the file sequence number. */
static int read_header(AuditLog *log)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_(audit_entry_freep) AuditEntry *e = NULL;
	size_t len = log->size < AUDIT_LINE_MAX ? (size_t)log->size : AUDIT_LINE_MAX;
	char *nl;
	int r;

	buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	r = read_exact_at(log->fd, buf, len, 0);
	if (r < 0)
		return r;
	buf[len] = '\0';
	nl = memchr(buf, '\n', len);
	if (!nl)
		return -EBADMSG;
	r = audit_entry_parse(buf, (size_t)(nl - buf), &e, NULL);
	if (r < 0)
		return r;
	if (e->event != AUDIT_EVENT_ROTATE || e->file_seq == 0)
		return -EBADMSG;
	log->file_seq = e->file_seq;
	log->file_started_ms = e->time_ms;
	return 0;
}

/* Parses the line BUF[start, end) (END excludes the newline); on success sets the head. */
static bool take_head(AuditLog *log, const char *buf, size_t start, size_t end)
{
	_cleanup_(audit_entry_freep) AuditEntry *e = NULL;

	if (audit_entry_parse(buf + start, end - start, &e, NULL) < 0)
		return false;
	if (audit_line_hash(buf + start, end - start, log->head) < 0)
		return false;
	log->seq = e->seq;
	if (e->event == AUDIT_EVENT_SEAL)
		log->last_seal_epoch = e->epoch;
	return true;
}

/* Start of the line that ends just before END (END is a newline position or 0). */
static size_t line_start_before(const char *buf, size_t end)
{
	const char *nl = end > 0 ? memrchr(buf, '\n', end) : NULL;
	return nl ? (size_t)(nl - buf) + 1 : 0;
}

/* Finds the last complete, well-formed record; what follows it is a torn fragment. A
 * crash (one write() per record, O_APPEND) can leave only part of one line: anything
 * more is damage that we refuse to paper over (-EBADMSG). */
static int recover_tail(AuditLog *log, bool *ret_torn)
{
	_cleanup_free_ char *buf = NULL;
	uint64_t start = log->size > TAIL_WINDOW ? log->size - TAIL_WINDOW : 0;
	size_t len = (size_t)(log->size - start), good_end, last_nl, s1;
	char *nl;
	int r;

	r = read_window(log, start, len, &buf);
	if (r < 0)
		return r;

	nl = memrchr(buf, '\n', len);
	if (!nl)
		return -EBADMSG;
	last_nl = (size_t)(nl - buf);
	s1 = line_start_before(buf, last_nl);
	if ((s1 > 0 || start == 0) && take_head(log, buf, s1, last_nl))
		good_end = last_nl + 1; /* fragment: the partial line after it, if any */
	else if (last_nl + 1 == len && s1 > 0) {
		/* The last complete line is bad and nothing follows: it is the fragment. */
		size_t s2 = line_start_before(buf, s1 - 1);
		if (!(s2 > 0 || start == 0) || !take_head(log, buf, s2, s1 - 1))
			return -EBADMSG;
		good_end = s1;
	} else
		return -EBADMSG;

	if (good_end < len) {
		uint64_t frag_len = len - good_end;
		char sha[AUDIT_HASH_HEX_LEN + 1];
		AuditRecord rec = AUDIT_RECORD_INIT;
		Extra x = {.torn = true, .torn_offset = start + good_end, .torn_sha256 = sha};

		if (buf[len - 1] != '\n') {
			ssize_t n = write(log->fd, "\n", 1);
			if (n != 1)
				return n < 0 ? -errno : -EIO;
			buf[len] = '\n';
			frag_len++;
			log->size++;
		}
		r = audit_line_hash(buf + good_end, frag_len, sha);
		if (r < 0)
			return r;
		x.torn_length = frag_len;
		rec.event = AUDIT_EVENT_TORN_TAIL;
		rec.result = AUDIT_RESULT_INFO;
		rec.reason = "crash";
		rec.message = "the last line was incomplete (crash during a write); the chain "
		              "continues from the last complete record";
		r = append_internal(log, &rec, &x);
		if (r < 0)
			return r;
		if (ret_torn)
			*ret_torn = true;
	}
	return 0;
}

/* An empty trail next to rotated files: a rotation was interrupted after the rename (or
 * the live file was removed). Continue the chain from the newest rotated file instead of
 * starting a new genesis; sets *ret_prev_file when it did. */
static int chain_from_rotated(AuditLog *log, char **ret_prev_file)
{
	_cleanup_strv_free_ char **files = NULL;
	_cleanup_free_ char *buf = NULL, *base = NULL;
	_cleanup_close_ int fd = -EBADF;
	const char *last = NULL, *slash;
	uint64_t start, saved_size = log->size;
	int saved_fd = log->fd, r;
	struct stat st;
	size_t len, s1;

	r = audit_trail_files(log->path, &files);
	if (r < 0)
		return r;
	for (char **f = files; *f; f++)
		if (!streq(*f, log->path))
			last = *f;
	if (!last)
		return 0;
	fd = open(last, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADFD;

	log->fd = fd;
	log->size = (uint64_t)st.st_size;
	r = read_header(log);
	log->fd = saved_fd;
	log->size = saved_size;
	if (r < 0)
		return r;

	/* A rotated file ends with its closing seal, on a complete line. */
	start = (uint64_t)st.st_size > AUDIT_LINE_MAX + 1
	                ? (uint64_t)st.st_size - AUDIT_LINE_MAX - 1
	                : 0;
	len = (size_t)((uint64_t)st.st_size - start);
	buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	r = read_exact_at(fd, buf, len, start);
	if (r < 0)
		return r;
	buf[len] = '\0';
	if (len == 0 || buf[len - 1] != '\n')
		return -EBADMSG;
	s1 = line_start_before(buf, len - 1);
	if (!(s1 > 0 || start == 0) || !take_head(log, buf, s1, len - 1))
		return -EBADMSG;
	log->file_seq++;
	slash = strrchr(last, '/');
	base = strdup(slash ? slash + 1 : last);
	if (!base)
		return -ENOMEM;
	*ret_prev_file = TAKE_PTR(base);
	return 1;
}

/* The epoch of the last seal in the current file (when the last line is not one):
 * seals come at least every seal_every records, so it is near the end. */
static int scan_last_seal_epoch(AuditLog *log)
{
	_cleanup_free_ char *buf = NULL;
	uint64_t window = ((uint64_t)log->seal_every + 8) * (AUDIT_LINE_MAX + 1), start;
	size_t len, end;
	int r;

	if (window > 64u * 1024 * 1024)
		window = 64u * 1024 * 1024;
	start = log->size > window ? log->size - window : 0;
	len = (size_t)(log->size - start);
	r = read_window(log, start, len, &buf);
	if (r < 0)
		return r;
	end = len;
	while (end > 0) {
		_cleanup_(audit_entry_freep) AuditEntry *e = NULL;
		size_t lend = buf[end - 1] == '\n' ? end - 1 : end;
		size_t s = line_start_before(buf, lend);

		if ((s > 0 || start == 0) && memmem(buf + s, lend - s, "\"event\":\"seal\"", 14) &&
		        audit_entry_parse(buf + s, lend - s, &e, NULL) >= 0 &&
		        e->event == AUDIT_EVENT_SEAL) {
			log->last_seal_epoch = e->epoch;
			return 1;
		}
		end = s;
	}
	return 0;
}

/* The key file must be ahead of every seal in the trail: one that is not (a crash
 * between a seal and the key update, or a key file restored from an older copy) is
 * moved to the epoch after the trail's last seal, so no key ever makes two seals. */
static int seal_key_catch_up(AuditLog *log)
{
	AuditSealKey k = {};
	int r;

	if (log->epoch == AUDIT_SEAL_EPOCH_NONE)
		return 0;
	if (log->last_seal_epoch == AUDIT_SEAL_EPOCH_NONE && log->size > 0) {
		r = scan_last_seal_epoch(log);
		if (r < 0)
			return r;
	}
	if (log->last_seal_epoch == AUDIT_SEAL_EPOCH_NONE || log->epoch > log->last_seal_epoch)
		return 0;
	k.epoch = log->epoch;
	k.exported = log->key_exported;
	memcpy(k.key, log->key, sizeof(k.key));
	memcpy(k.key_id, log->key_id, sizeof(k.key_id));
	r = audit_seal_key_derive(&k, log->last_seal_epoch + 1, &k);
	if (r >= 0)
		r = audit_seal_key_write(log->seal_key_path, &k);
	if (r >= 0) {
		log->key_recovered_from = log->epoch;
		log->epoch = k.epoch;
		memcpy(log->key, k.key, sizeof(k.key));
	}
	audit_seal_key_clear(&k);
	return r;
}

AuditLog *audit_log_free(AuditLog *log)
{
	if (!log)
		return NULL;
	if (log->fd >= 0 && !log->broken)
		(void)audit_log_seal(log, "close", false);
	if (log->group)
		(void)audit_log_flush(log); /* runs every waiter's callback */
	commit_stop(log);
	pthread_mutex_destroy(&log->lock);
	pthread_cond_destroy(&log->work);
	pthread_cond_destroy(&log->done);
	pthread_cond_destroy(&log->key_work);
	if (log->fd >= 0)
		close(log->fd);
#if HAVE_LIBAUDIT
	if (log->audit_fd >= 0)
		audit_close(log->audit_fd);
#endif
	OPENSSL_cleanse(log->key, sizeof(log->key));
	json_buf_free(&log->buf);
	free(log->path);
	free(log->seal_key_path);
	free(log);
	return NULL;
}

int audit_log_open(const AuditOptions *opts, AuditLog **ret, bool *ret_torn)
{
	_cleanup_(audit_log_freep) AuditLog *log = NULL;
	struct stat st;
	bool torn = false;
	int r;

	if (!opts || isempty(opts->path) || isempty(opts->seal_key_path) || !ret)
		return -EINVAL;
	log = calloc(1, sizeof(*log));
	if (!log)
		return -ENOMEM;
	log->fd = -EBADF;
	log->audit_fd = -EBADF;
	log->commit_fd = -EBADF;
	pthread_mutex_init(&log->lock, NULL);
	pthread_cond_init(&log->work, NULL);
	pthread_cond_init(&log->done, NULL);
	pthread_cond_init(&log->key_work, NULL);
	log->broken = true; /* until recovered: audit_log_free() must not write */
	log->path = strdup(opts->path);
	log->seal_key_path = strdup(opts->seal_key_path);
	if (!log->path || !log->seal_key_path)
		return -ENOMEM;
	if (opts->has_limits)
		log->limits = opts->limits;
	else
		log->limits = (AuditLimits){.seal_every = opts->seal_every,
		        .rotate_bytes = opts->rotate_bytes,
		        .disk_full_action = AUDIT_SPACE_DENY};
	log->seal_every = log->limits.seal_every ?: AUDIT_SEAL_EVERY_DEFAULT;
	/* Group commit starts once open is done: until then every line is synced at once. */
	log->fsync_each = opts->fsync_each || opts->group_commit;
	log->sync_fn = opts->sync;
	log->before_rotate = opts->before_rotate;
	log->to_syslog = opts->to_syslog;
	log->to_linux_audit = opts->to_linux_audit;
	log->on_sink_error = opts->on_sink_error;
	log->userdata = opts->userdata;
	log->linux_audit_send = opts->linux_audit_send;
	if (gethostname(log->host, sizeof(log->host) - 1) < 0)
		strcpy(log->host, "localhost");
	memcpy(log->head, ZERO_HASH, sizeof(log->head));
	log->epoch = log->last_seal_epoch = log->key_recovered_from = AUDIT_SEAL_EPOCH_NONE;

	{
		_cleanup_free_ char *dir = strdup(log->path);
		char *slash;
		if (!dir)
			return -ENOMEM;
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			r = mkdir_parents(dir, 0750);
			if (r < 0)
				return r;
		}
	}
	r = open_trail_fd(log->path, false, &st);
	if (r < 0)
		return r;
	log->fd = r;
	log->size = (uint64_t)st.st_size;

	{
		AuditSealKey k = {};
		r = audit_seal_key_read(log->seal_key_path, geteuid() == 0, &k, NULL);
		if (r == -ENOENT) {
			/* A new key only for a new trail: otherwise the old seals could no longer
			 * be checked and a deleted key would silently restart the evidence. The
			 * writer's own key is forward-secure but not exported: k_0 is gone with
			 * the first seal (keywardctl audit setup-keys before the first start
			 * exports it). */
			_cleanup_strv_free_ char **files = NULL;
			if (log->size > 0 || (audit_trail_files(log->path, &files) >= 0 &&
			                             strv_length(files) > 1))
				return -ENOKEY;
			r = audit_seal_key_create(log->seal_key_path, false, &k);
		}
		if (r >= 0) {
			memcpy(log->key, k.key, sizeof(log->key));
			memcpy(log->key_id, k.key_id, sizeof(log->key_id));
			log->epoch = k.epoch;
			log->key_exported = k.exported;
		}
		audit_seal_key_clear(&k);
		if (r < 0)
			return r;
	}

	if (log->to_syslog &&
	        access(opts->journal_socket ?: "/run/systemd/journal/socket", F_OK) < 0) {
		/* sd_journal_send() succeeds silently without journald: notice it here, before
		 * the first record and anchor are sent. */
		log->no_journal = true;
		sink_failed(log, AUDIT_SINK_JOURNAL, -errno);
	}
	log->broken = false;
	if (log->size == 0) {
		_cleanup_free_ char *prev_file = NULL;

		log->file_seq = 1;
		r = chain_from_rotated(log, &prev_file);
		if (r > 0)
			r = write_header(log, "rotate-recovered", prev_file);
		else if (r == 0)
			r = write_header(log, "genesis", NULL);
	} else {
		r = read_header(log);
		if (r >= 0)
			r = recover_tail(log, &torn);
	}
	if (r >= 0)
		r = seal_key_catch_up(log);
	if (r < 0) {
		log->broken = true;
		return r;
	}
	/* Every open is sealed: it anchors what was recovered and marks the restart. */
	{
		_cleanup_free_ char *detail = NULL;
		if (log->key_recovered_from != AUDIT_SEAL_EPOCH_NONE &&
		        asprintf(&detail,
		                "seal key moved from epoch %" PRIu64 " to %" PRIu64
		                " at open: the key file was not ahead of the trail's last seal "
		                "(stopped between a seal and the key update, or restored)",
		                log->key_recovered_from, log->epoch) < 0)
			detail = NULL;
		else if (!detail && log->epoch != AUDIT_SEAL_EPOCH_NONE && !log->key_exported)
			detail = strdup("verification key not exported: seals cannot be proved off "
			                "this machine");
		r = seal_with_detail(log, "open", true, detail);
	}
	if (r < 0) {
		log->broken = true;
		return r;
	}
	(void)retention_apply(log); /* limits may have shrunk while keywardd was down */

#if HAVE_LIBAUDIT
	if (log->to_linux_audit && !log->linux_audit_send) {
		log->audit_fd = audit_open();
		if (log->audit_fd < 0)
			sink_failed(log, AUDIT_SINK_LINUX_AUDIT, -errno);
	}
#else
	if (log->to_linux_audit && !log->linux_audit_send)
		sink_failed(log, AUDIT_SINK_LINUX_AUDIT, -ENOTSUP);
#endif
	if (opts->group_commit) {
		r = commit_start(log);
		if (r < 0)
			return r;
		log->fsync_each = false;
	}
	if (ret_torn)
		*ret_torn = torn;
	*ret = TAKE_PTR(log);
	return 0;
}
