/* ctl-report.c: `keywardctl report` — turns the policy, the credential store and the
 * audit trail into compliance evidence (text, JSON, CSV, or one self-contained HTML). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "audit-json.h"
#include "audit-scan.h"
#include "audit.h"
#include "creds.h"
#include "ctl-report.h"
#include "ctl-report-hosts.h"
#include "ctl.h"
#include "keyward-config.h"
#include "policy.h"
#include "service-coverage.h"
#include "util.h"

#define REPORT_MAX_ROWS    10000u /* user/service pairs, alerts, ... each */
#define REPORT_MAX_REASONS 16u    /* distinct failure reasons kept per row */
#define REPORT_MAX_BUCKETS 60u
#define REPORT_MAX_USERS   65536u
#define REPORT_GROUPS_MAX  4096

/* Chart colours: distinctive, so that the rendering test can find the bars. */
#define COLOR_SUCCESS   "#1f9e5a"
#define COLOR_FAILURE   "#e0452b"
#define COLOR_ISSUED    "#3a6fd8"
#define COLOR_VERIFIED  "#1f9e5a"
#define COLOR_ESCALATED "#e8a317"
#define COLOR_LFAILED   "#e0452b"

typedef enum ReportFormat {
	FORMAT_TEXT,
	FORMAT_JSON,
	FORMAT_CSV,
	FORMAT_HTML,
	_FORMAT_MAX,
	_FORMAT_INVALID = -EINVAL,
} ReportFormat;

static const char *const format_table[_FORMAT_MAX] = {
        [FORMAT_TEXT] = "text",
        [FORMAT_JSON] = "json",
        [FORMAT_CSV] = "csv",
        [FORMAT_HTML] = "html",
};

static DEFINE_STRING_TABLE_LOOKUP_FROM_STRING(format, ReportFormat, format_table)

        typedef struct ReasonCount {
	char *reason;
	uint64_t n;
} ReasonCount;

typedef struct AuthRow {
	char *user, *service;
	uint64_t success, failure;
	ReasonCount reasons[REPORT_MAX_REASONS];
	size_t n_reasons;
	uint64_t other_reasons;
	uint64_t first_ms, last_ms; /* the first and the last record counted */
} AuthRow;

/* Removal actions and what came of them: ISSUED counts actions, DONE..MISSING how each
 * ended (exactly one per action), GRACE the removals the key came back from in time. */
typedef enum Outcome {
	OUTCOME_ISSUED,
	OUTCOME_DONE,
	OUTCOME_VERIFIED,
	OUTCOME_ESCALATED,
	OUTCOME_FAILED,
	OUTCOME_GONE,
	OUTCOME_INTERRUPTED,
	OUTCOME_MISSING,
	OUTCOME_GRACE,
	_OUTCOME_MAX,
} Outcome;

static const char *const outcome_names[_OUTCOME_MAX] = {
        "issued",
        "done",
        "verified",
        "escalated",
        "failed",
        "gone",
        "interrupted",
        "missing",
        "grace_cancelled",
};

/* One removal action: its first record, and how it ended (OUTCOME_MISSING until a record
 * says). RECORDED: an `outcome` record said so (it beats what older records imply). */
typedef struct ActionInst {
	uint64_t seq;
	char *time, *user, *session, *action, *why;
	Outcome outcome;
	bool recorded;
} ActionInst;

/* One bound session or elevation (session-bind) and how it ended. */
typedef struct ElevRow {
	char *time, *user, *service, *key, *from, *session;
	/* How it was approved: "key" (a security key here), "ssh-agent" (a signature through
	 * the forwarded SSH agent), "ssh-login" (sshd's login with a security-key SSH key:
	 * not bound, listed for where it came from); docs/ssh.md. */
	char *method;
	uint64_t time_ms;
	size_t inst;      /* 1 + index of its removal action in Report.inst; 0: none */
	bool ended;       /* session-unbind seen */
	size_t prev_same; /* 1 + index of the elevation before it with the same session */
} ElevRow;

typedef struct ActionRow {
	char *action;
	uint64_t n[_OUTCOME_MAX];
} ActionRow;

/* One listed event: clone alert, lockout, policy change, key management. */
typedef struct EventRow {
	char *time, *user, *result, *reason, *cred, *detail;
	AuditEvent event;
} EventRow;

typedef struct CoverageRow {
	char *user;
	int64_t uid;
	char *services; /* where the policy requires a key; "" when none */
	char *rule;
	int64_t keys; /* -1: cannot read */
	char *status; /* "gap", "ok", "enrolled-not-covered", "unknown-user", "unreadable" */
} CoverageRow;

typedef struct Bucket {
	uint64_t start;
	uint64_t success, failure;
} Bucket;

/* An open-addressing hash index of rows: each slot holds a key's hash and 1 + the row's
 * index; what "same key" means is the caller's (a match function on the row). It turns
 * the report's per-record searches (user x service pairs, sessions, actions by seq) from
 * a scan of every row into O(1). */
typedef struct RowIndex {
	uint64_t *hash;
	size_t *row; /* 1 + row index; 0: empty */
	size_t cap, n;
} RowIndex;

typedef struct Report {
	uint64_t since, until;
	AuthRow *auth;
	size_t n_auth;
	ActionRow *actions;
	size_t n_actions;
	uint64_t removals, key_added;
	ActionInst *inst;
	size_t n_inst;
	ElevRow *elev;
	size_t n_elev;
	char *last_rhost; /* rhost of the last successful authentication (for ElevRow.from) */
	/* The detail and logind session of that authentication (an SSH proof's method, key
	 * fingerprint and the sshd session), for the session-bind after it. */
	char *last_detail, *last_session;
	char *last_who; /* "user\nservice" of that authentication */
	EventRow *clones, *lockouts, *policy, *keymgmt;
	size_t n_clones, n_lockouts, n_policy, n_keymgmt;
	uint64_t auth_success, auth_failure;
	uint64_t t_min, t_max;
	uint64_t *auth_times; /* (time << 1) | success, for the timeline */
	size_t n_auth_times, alloc_auth_times;
	bool truncated; /* a cap was hit */

	CoverageRow *coverage;
	size_t n_coverage;
	char *coverage_note;
	char *policy_path;
	const char *root; /* --root: the tree read as / ("" for this system) */

	Bucket buckets[REPORT_MAX_BUCKETS];
	size_t n_buckets;
	uint64_t bucket_ms;

	/* trail status */
	char **files;
	AuditVerifyResult verify;
	int verify_error;
	bool verify_keyed;
	char *verify_note;
	uint64_t malformed;

	RowIndex auth_index;   /* AuthRow by cleaned (user, service) */
	RowIndex action_index; /* ActionRow by cleaned action */
	RowIndex inst_by_seq;  /* the newest ActionInst of an action seq */
	RowIndex inst_by_sess; /* the newest ActionInst of a (cleaned) session */
	RowIndex elev_by_sess; /* the newest ElevRow of a (cleaned) session (chained) */

	BreakglassReport *bg; /* the first section (ctl-report-breakglass.c) */
} Report;

/* The bytes of the control character S starts with, 0 if none: C0 controls, DEL, and the
 * C1 controls U+0080..U+009F (0xC2 0x80..0x9F; U+009B is CSI, an escape sequence for
 * terminals that honour C1). */
static size_t control_len(const char *s)
{
	unsigned char c = (unsigned char)s[0];

	if (c < 0x20 || c == 0x7f)
		return 1;
	if (c == 0xc2 && (unsigned char)s[1] >= 0x80 && (unsigned char)s[1] <= 0x9f)
		return 2;
	return 0;
}

/* Copies a string from the trail for the report: control characters (a user name or
 * rhost is attacker-chosen) become '?' (one per byte), so no format can be broken or a
 * terminal driven. */
static char *xstrdup0(const char *s)
{
	char *c;

	if (!s)
		return NULL;
	c = strdup(s);
	if (c)
		for (char *p = c; *p;) {
			size_t k = control_len(p);

			if (k == 0)
				p++;
			else
				for (; k > 0; k--)
					*p++ = '?';
		}
	return c;
}

char *report_clean_strdup(const char *s)
{
	return xstrdup0(s);
}

/* CLEAN (made by xstrdup0()) equals RAW once RAW is cleaned the same way. */
static bool clean_streq(const char *clean, const char *raw)
{
	while (*clean && *raw) {
		size_t k = control_len(raw);

		if (k == 0) {
			if (*clean++ != *raw++)
				return false;
			continue;
		}
		for (; k > 0; k--, raw++)
			if (*clean++ != '?' || (k > 1 && !*clean))
				return false;
	}
	return !*clean && !*raw;
}

/* FNV-1a of S as xstrdup0() cleans it, so that a raw string and its cleaned copy hash
 * the same; continues from H. */
static uint64_t clean_hash(uint64_t h, const char *s)
{
	while (*s) {
		size_t k = control_len(s);

		if (k == 0)
			h = (h ^ (unsigned char)*s++) * UINT64_C(1099511628211);
		else
			for (; k > 0; k--, s++)
				h = (h ^ (unsigned char)'?') * UINT64_C(1099511628211);
	}
	return (h ^ 0xff) * UINT64_C(1099511628211); /* the end: "ab","c" is not "a","bc" */
}

#define HASH_INIT UINT64_C(14695981039346656037)

typedef bool (*RowMatch)(const Report *r, size_t row, const void *key);

static void row_index_done(RowIndex *x)
{
	free(x->hash);
	free(x->row);
	*x = (RowIndex){};
}

/* The first slot to probe for H: FNV's low bits follow the keys' low bits (user0001,
 * user0002, ...), so they are mixed with the high ones first (murmur3's finalizer). */
static size_t row_index_home(const RowIndex *x, uint64_t h)
{
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	return (size_t)h & (x->cap - 1);
}

/* The slot of the row with hash H that MATCH accepts, or the empty slot where it goes. */
static size_t row_index_slot(
        const RowIndex *x, uint64_t h, RowMatch match, const Report *r, const void *key)
{
	size_t i = row_index_home(x, h);

	for (; x->row[i]; i = (i + 1) & (x->cap - 1))
		if (x->hash[i] == h && match(r, x->row[i] - 1, key))
			break;
	return i;
}

/* 1 + the index of the row for KEY, 0 when none. */
static size_t row_index_get(
        const RowIndex *x, uint64_t h, RowMatch match, const Report *r, const void *key)
{
	return x->cap ? x->row[row_index_slot(x, h, match, r, key)] : 0;
}

static int row_index_grow(RowIndex *x)
{
	RowIndex n = {.cap = x->cap ? x->cap * 2 : 64};

	n.hash = calloc(n.cap, sizeof(uint64_t));
	n.row = calloc(n.cap, sizeof(size_t));
	if (!n.hash || !n.row) {
		row_index_done(&n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < x->cap; i++)
		if (x->row[i]) {
			size_t j = row_index_home(&n, x->hash[i]);
			while (n.row[j])
				j = (j + 1) & (n.cap - 1);
			n.hash[j] = x->hash[i];
			n.row[j] = x->row[i];
		}
	n.n = x->n;
	row_index_done(x);
	*x = n;
	return 0;
}

/* Makes ROW (an index) the row for KEY, in place of any earlier one. */
static int row_index_put(
        RowIndex *x, uint64_t h, size_t row, RowMatch match, const Report *r, const void *key)
{
	size_t i;

	if (2 * (x->n + 1) > x->cap && row_index_grow(x) < 0)
		return -ENOMEM;
	i = row_index_slot(x, h, match, r, key);
	if (!x->row[i]) {
		x->hash[i] = h;
		x->n++;
	}
	x->row[i] = row + 1;
	return 0;
}

static void event_row_done(EventRow *r)
{
	free(r->time);
	free(r->user);
	free(r->result);
	free(r->reason);
	free(r->cred);
	free(r->detail);
}

static void report_done(Report *r)
{
	for (size_t i = 0; i < r->n_auth; i++) {
		free(r->auth[i].user);
		free(r->auth[i].service);
		for (size_t j = 0; j < r->auth[i].n_reasons; j++)
			free(r->auth[i].reasons[j].reason);
	}
	free(r->auth);
	for (size_t i = 0; i < r->n_actions; i++)
		free(r->actions[i].action);
	free(r->actions);
	for (size_t i = 0; i < r->n_inst; i++) {
		ActionInst *a = &r->inst[i];
		free(a->time), free(a->user), free(a->session), free(a->action), free(a->why);
	}
	free(r->inst);
	for (size_t i = 0; i < r->n_elev; i++) {
		ElevRow *v = &r->elev[i];
		free(v->time), free(v->user), free(v->service), free(v->key), free(v->from);
		free(v->session);
		free(v->method);
	}
	free(r->elev);
	free(r->last_rhost);
	free(r->last_detail);
	free(r->last_session);
	free(r->last_who);
	EventRow *lists[] = {r->clones, r->lockouts, r->policy, r->keymgmt};
	size_t ns[] = {r->n_clones, r->n_lockouts, r->n_policy, r->n_keymgmt};
	for (size_t l = 0; l < ELEMENTSOF(lists); l++) {
		for (size_t i = 0; i < ns[l]; i++)
			event_row_done(&lists[l][i]);
		free(lists[l]);
	}
	for (size_t i = 0; i < r->n_coverage; i++) {
		free(r->coverage[i].user);
		free(r->coverage[i].services);
		free(r->coverage[i].rule);
		free(r->coverage[i].status);
	}
	free(r->coverage);
	free(r->coverage_note);
	free(r->policy_path);
	free(r->auth_times);
	strv_free(r->files);
	audit_verify_result_clear(&r->verify);
	free(r->verify_note);
	row_index_done(&r->auth_index);
	row_index_done(&r->action_index);
	row_index_done(&r->inst_by_seq);
	row_index_done(&r->inst_by_sess);
	row_index_done(&r->elev_by_sess);
	breakglass_report_free(r->bg);
}

/* Grows *arr (of *n elements of SIZE) by one zeroed element; NULL at the cap or OOM. */
static void *grow(void *arr_p, size_t *n, size_t size, bool *truncated)
{
	void **arr = arr_p;
	char *na;

	if (*n >= REPORT_MAX_ROWS) {
		*truncated = true;
		return NULL;
	}
	na = realloc(*arr, (*n + 1) * size);
	if (!na)
		return NULL;
	*arr = na;
	memset(na + *n * size, 0, size);
	return na + (*n)++ * size;
}

void *report_grow(void *arr_p, size_t *n, size_t size, bool *truncated)
{
	return grow(arr_p, n, size, truncated);
}

static int add_event_row(Report *r, EventRow **list, size_t *n, const AuditEntry *e)
{
	EventRow *row = grow(list, n, sizeof(EventRow), &r->truncated);

	if (!row)
		return r->truncated ? 0 : -ENOMEM;
	row->event = e->event;
	row->time = xstrdup0(e->time);
	row->user = xstrdup0(e->user);
	row->result = xstrdup0(audit_result_to_string(e->result));
	row->reason = xstrdup0(e->reason);
	row->cred = xstrdup0(e->cred_label ?: e->cred_id);
	row->detail = xstrdup0(e->detail ?: e->message);
	return 0;
}

typedef struct AuthKey {
	const char *user, *service; /* raw, from the trail */
} AuthKey;

static bool auth_match(const Report *r, size_t row, const void *key)
{
	const AuthKey *k = key;

	return clean_streq(r->auth[row].user, k->user) &&
	       clean_streq(r->auth[row].service, k->service);
}

static int count_auth(Report *r, const AuditEntry *e)
{
	const AuthKey key = {e->user ?: "(unknown)", e->service ?: "(unknown)"};
	uint64_t h = clean_hash(clean_hash(HASH_INIT, key.user), key.service);
	size_t found = row_index_get(&r->auth_index, h, auth_match, r, &key);
	AuthRow *row = found ? &r->auth[found - 1] : NULL;
	bool ok = e->result == AUDIT_RESULT_SUCCESS;

	if (!row) {
		row = grow(&r->auth, &r->n_auth, sizeof(AuthRow), &r->truncated);
		if (!row)
			return r->truncated ? 0 : -ENOMEM;
		row->user = xstrdup0(key.user);
		row->service = xstrdup0(key.service);
		if (!row->user || !row->service ||
		        row_index_put(&r->auth_index, h, r->n_auth - 1, auth_match, r, &key) < 0)
			return -ENOMEM;
	}
	if (row->first_ms == 0 || e->time_ms < row->first_ms)
		row->first_ms = e->time_ms;
	if (e->time_ms > row->last_ms)
		row->last_ms = e->time_ms;
	if (ok) {
		row->success++;
		r->auth_success++;
	} else {
		const char *reason = e->reason ?: "(none)";
		size_t j;

		row->failure++;
		r->auth_failure++;
		for (j = 0; j < row->n_reasons; j++)
			if (clean_streq(row->reasons[j].reason, reason))
				break;
		if (j < row->n_reasons)
			row->reasons[j].n++;
		else if (row->n_reasons < REPORT_MAX_REASONS) {
			row->reasons[j].reason = xstrdup0(reason);
			if (!row->reasons[j].reason)
				return -ENOMEM;
			row->reasons[j].n = 1;
			row->n_reasons++;
		} else
			row->other_reasons++;
	}
	if (r->n_auth_times < REPORT_MAX_ROWS * 100) {
		if (r->n_auth_times == r->alloc_auth_times) {
			size_t na = r->alloc_auth_times ? r->alloc_auth_times * 2 : 256;
			uint64_t *t = realloc(r->auth_times, na * sizeof(uint64_t));
			if (!t)
				return -ENOMEM;
			r->auth_times = t;
			r->alloc_auth_times = na;
		}
		r->auth_times[r->n_auth_times++] = (e->time_ms << 1) | (ok ? 1 : 0);
	} else
		r->truncated = true;
	if (r->t_min == 0 || e->time_ms < r->t_min)
		r->t_min = e->time_ms;
	if (e->time_ms > r->t_max)
		r->t_max = e->time_ms;
	return 0;
}

static bool action_match(const Report *r, size_t row, const void *key)
{
	return clean_streq(r->actions[row].action, key);
}

/* The ActionRow of ACTION (raw or cleaned), NULL when none. */
static ActionRow *action_row(const Report *r, const char *action)
{
	size_t found = row_index_get(
	        &r->action_index, clean_hash(HASH_INIT, action), action_match, r, action);

	return found ? &r->actions[found - 1] : NULL;
}

static int count_action(Report *r, const char *action, Outcome o)
{
	ActionRow *row;

	action = action ?: "(unknown)";
	row = action_row(r, action);
	if (!row) {
		row = grow(&r->actions, &r->n_actions, sizeof(ActionRow), &r->truncated);
		if (!row)
			return r->truncated ? 0 : -ENOMEM;
		row->action = xstrdup0(action);
		if (!row->action || row_index_put(&r->action_index, clean_hash(HASH_INIT, action),
		                            r->n_actions - 1, action_match, r, action) < 0)
			return -ENOMEM;
	}
	row->n[o]++;
	return 0;
}

static Outcome outcome_from_string(const char *s)
{
	for (Outcome o = OUTCOME_DONE; o < OUTCOME_GRACE; o++)
		if (s && streq(s, outcome_names[o]))
			return o;
	return OUTCOME_FAILED; /* an outcome nobody knows is not a success */
}

/* Rows keep sessions cleaned (xstrdup0()); a raw session matches only when equal to
 * that (one with a control character never does, as with streq()). */
static bool inst_session_match(const Report *r, size_t row, const void *key)
{
	return r->inst[row].session && streq(r->inst[row].session, key);
}

static bool elev_session_match(const Report *r, size_t row, const void *key)
{
	return r->elev[row].session && streq(r->elev[row].session, key);
}

static bool inst_seq_match(const Report *r, size_t row, const void *key)
{
	return r->inst[row].seq == *(const uint64_t *)key;
}

static uint64_t seq_hash(uint64_t seq)
{
	return seq * UINT64_C(0x9e3779b97f4a7c15);
}

/* The newest action about SESSION (NULL if none). */
static ActionInst *inst_latest(Report *r, const char *session)
{
	size_t found = session ? row_index_get(&r->inst_by_sess, clean_hash(HASH_INIT, session),
	                                 inst_session_match, r, session)
	                       : 0;

	return found ? &r->inst[found - 1] : NULL;
}

/* The newest elevation of SESSION that has not ended (NULL if none). The index holds the
 * newest of each session; older ones are chained behind it. Only the newest open one is
 * ever ended, so ended ones gather at the chain's head and are dropped from it here. */
static ElevRow *elev_open(Report *r, const char *session)
{
	uint64_t h;
	size_t slot, i;

	if (!session || r->elev_by_sess.cap == 0)
		return NULL;
	h = clean_hash(HASH_INIT, session);
	slot = row_index_slot(&r->elev_by_sess, h, elev_session_match, r, session);
	i = r->elev_by_sess.row[slot];
	while (i && r->elev[i - 1].ended)
		i = r->elev[i - 1].prev_same;
	if (i)
		r->elev_by_sess.row[slot] = i; /* the slot stays taken: the key is the same */
	return i ? &r->elev[i - 1] : NULL;
}

static ActionInst *inst_new(Report *r, const AuditEntry *e, const char *action)
{
	ActionInst *a;
	ElevRow *v;

	if (count_action(r, action, OUTCOME_ISSUED) < 0)
		return NULL;
	a = grow(&r->inst, &r->n_inst, sizeof(ActionInst), &r->truncated);
	if (!a)
		return NULL;
	a->seq = e->event == AUDIT_EVENT_OUTCOME ? e->action_seq : e->seq;
	a->outcome = OUTCOME_MISSING;
	a->time = xstrdup0(e->time);
	a->user = xstrdup0(e->user);
	a->session = xstrdup0(e->session);
	a->action = xstrdup0(action);
	if (row_index_put(&r->inst_by_seq, seq_hash(a->seq), r->n_inst - 1, inst_seq_match, r,
	            &a->seq) < 0 ||
	        (a->session && row_index_put(&r->inst_by_sess, clean_hash(HASH_INIT, a->session),
	                               r->n_inst - 1, inst_session_match, r, a->session) < 0))
		return NULL;
	v = elev_open(r, e->session);
	if (v && !v->inst)
		v->inst = r->n_inst;
	return a;
}

static void inst_set(ActionInst *a, Outcome o, const char *why, bool recorded)
{
	if (a->recorded && !recorded)
		return;
	a->outcome = o;
	a->recorded = recorded;
	free(a->why);
	a->why = xstrdup0(why);
}

/* What a trail written before `outcome` records existed implies: the lock-* events
 * conclude a lock; the action record that reports an end concludes the others. */
static Outcome implied_outcome(const AuditEntry *e)
{
	const char *why = e->reason ?: "";

	switch (e->event) {
	case AUDIT_EVENT_LOCK_VERIFIED:
		return OUTCOME_VERIFIED;
	case AUDIT_EVENT_LOCK_ESCALATED:
		return e->result == AUDIT_RESULT_SUCCESS
		               ? (streq(why, "session-ended") ? OUTCOME_GONE : OUTCOME_ESCALATED)
		               : OUTCOME_FAILED;
	case AUDIT_EVENT_LOCK_FAILED:
		return OUTCOME_FAILED;
	default:
		break;
	}
	if (streq(why, "session-ended") || streq(why, "already-ended"))
		return OUTCOME_GONE;
	if (e->action && streq(e->action, "lock"))
		return _OUTCOME_MAX; /* lock-requested, lock-call-failed: a later record ends it */
	if (e->result == AUDIT_RESULT_SUCCESS &&
	        (streq(why, "terminated") || streq(why, "ended") || streq(why, "killed") ||
	                streq(why, "record-only")))
		return OUTCOME_DONE;
	if (e->result != AUDIT_RESULT_SUCCESS)
		return OUTCOME_FAILED; /* survived, terminate-failed, unknown-process, killed
		                        * without watching the exit */
	return _OUTCOME_MAX;
}

static int collect_removal(Report *r, const AuditEntry *e)
{
	ActionInst *a = NULL;
	Outcome o;

	if (e->event == AUDIT_EVENT_OUTCOME) {
		size_t found = e->action_seq
		                       ? row_index_get(&r->inst_by_seq, seq_hash(e->action_seq),
		                                 inst_seq_match, r, &e->action_seq)
		                       : 0;

		if (found)
			a = &r->inst[found - 1];
		/* Its action is outside the period (or lost): the outcome still counts. */
		if (!a)
			a = inst_new(r, e, e->action ?: "(unknown)");
		if (!a)
			return r->truncated ? 0 : -ENOMEM;
		inst_set(a, outcome_from_string(e->reason), e->detail ?: e->message, true);
		return 0;
	}
	a = inst_latest(r, e->session);
	if (e->event == AUDIT_EVENT_ACTION) {
		/* The first record of an action, or one more step of the open one. */
		if (!a || a->outcome != OUTCOME_MISSING)
			a = inst_new(r, e, e->action ?: "(unknown)");
	} else if (!a)
		a = inst_new(r, e, e->action ?: "lock");
	if (!a)
		return r->truncated ? 0 : -ENOMEM;
	o = implied_outcome(e);
	if (o != _OUTCOME_MAX)
		inst_set(a, o, e->reason, false);
	return 0;
}

/* The rhost of the authentication right before the session-bind E, if it was the same
 * user's for the same service. */
static const char *elev_rhost(const Report *r, const AuditEntry *e)
{
	const char *p = r->last_rhost, *nl;
	size_t ul = strlen(strempty(e->user)), sl = strlen(strempty(e->service));

	if (!p || strncmp(p, strempty(e->user), ul) != 0 || p[ul] != '\n')
		return NULL;
	p += ul + 1;
	nl = strchr(p, '\n');
	if (!nl || (size_t)(nl - p) != sl || strncmp(p, strempty(e->service), sl) != 0)
		return NULL;
	return nl + 1;
}

/* The value of WORD ("method=", "key=") in an auth record's DETAIL, malloc()ed; NULL if
 * absent. */
static char *detail_value(const char *detail, const char *word)
{
	size_t wl = strlen(word);

	for (const char *p = detail; p && *p;) {
		const char *end = strchr(p, ' ');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len > wl && strneq(p, word, wl))
			return strndup(p + wl, len - wl);
		p = end ? end + 1 : NULL;
	}
	return NULL;
}

/* KEY (a label) with the SSH key's fingerprint from DETAIL, for an SSH proof. */
static char *ssh_key_text(const char *label, const char *detail)
{
	_cleanup_free_ char *fp = detail_value(detail, "key=");
	char *out = NULL;

	if (!fp)
		return xstrdup0(label);
	if (asprintf(&out, "%s %s", label ?: "-", fp) < 0)
		return NULL;
	return out;
}

/* A remote login through sshd with a security-key SSH key (auth detail method=ssh-login):
 * a row of its own, never bound. */
static int collect_ssh_login(Report *r, const AuditEntry *e)
{
	ElevRow *v = grow(&r->elev, &r->n_elev, sizeof(ElevRow), &r->truncated);

	if (!v)
		return r->truncated ? 0 : -ENOMEM;
	v->time = xstrdup0(e->time);
	v->user = xstrdup0(e->user);
	v->service = xstrdup0(e->service);
	v->key = ssh_key_text(e->cred_label, e->detail);
	v->from = xstrdup0(e->rhost);
	v->session = xstrdup0(e->session);
	v->method = xstrdup0("ssh-login");
	v->ended = true;
	return 0;
}

static int collect_elevation(Report *r, const AuditEntry *e)
{
	_cleanup_free_ char *method = NULL;
	const char *rhost;
	ElevRow *v;

	if (e->event == AUDIT_EVENT_SESSION_UNBIND) {
		v = elev_open(r, e->session);
		if (v)
			v->ended = true;
		return 0;
	}
	v = grow(&r->elev, &r->n_elev, sizeof(ElevRow), &r->truncated);
	if (!v)
		return r->truncated ? 0 : -ENOMEM;
	v->time = xstrdup0(e->time);
	v->time_ms = e->time_ms;
	v->user = xstrdup0(e->user);
	v->service = xstrdup0(e->service);
	rhost = elev_rhost(r, e);
	/* the authentication right before it (same user and service) tells how */
	if (r->last_who && r->last_detail) {
		_cleanup_free_ char *who = NULL;

		if (asprintf(&who, "%s\n%s", strempty(e->user), strempty(e->service)) < 0)
			return -ENOMEM;
		if (streq(who, r->last_who))
			method = detail_value(r->last_detail, "method=");
	}
	if (method && streq(method, "ssh-agent")) {
		v->key = ssh_key_text(e->cred_label ?: e->cred_id, r->last_detail);
		v->method = xstrdup0("ssh-agent");
		/* the sshd session it ran in, beside the elevation's own */
		if (r->last_session && e->session && !streq(r->last_session, e->session) &&
		        asprintf(&v->session, "%s (sshd session %s)", e->session, r->last_session) <
		                0)
			v->session = NULL;
	} else if (!e->cred_label && !e->cred_id && e->reason && streq(e->reason, "breakglass")) {
		v->key = strdup("(break-glass, no key)"); /* the break-glass section lists it */
		v->method = xstrdup0("breakglass");
	} else {
		v->key = xstrdup0(e->cred_label ?: e->cred_id);
		v->method = xstrdup0("key");
	}
	v->from = xstrdup0(e->rhost ?: rhost ?: e->tty);
	if (!v->session)
		v->session = xstrdup0(e->session);
	if (v->session) {
		uint64_t h = clean_hash(HASH_INIT, v->session);
		RowIndex *x = &r->elev_by_sess;

		v->prev_same = row_index_get(x, h, elev_session_match, r, v->session);
		if (row_index_put(x, h, r->n_elev - 1, elev_session_match, r, v->session) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* After the walk: every action's outcome in its row's counts. */
static void count_outcomes(Report *r)
{
	for (size_t i = 0; i < r->n_inst; i++) {
		ActionRow *row = action_row(r, strna(r->inst[i].action));

		if (row)
			row->n[r->inst[i].outcome]++;
	}
}

/* Needs attention: no outcome, failed, or interrupted. */
static bool inst_attention(const ActionInst *a)
{
	return a->outcome == OUTCOME_MISSING || a->outcome == OUTCOME_FAILED ||
	       a->outcome == OUTCOME_INTERRUPTED;
}

static size_t attention_count(const Report *r)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n_inst; i++)
		n += inst_attention(&r->inst[i]);
	return n;
}

/* How the elevation V ended, as the report says it. */
static const char *elev_end(const Report *r, const ElevRow *v)
{
	if (v->method && streq(v->method, "ssh-login"))
		return "remote login (not bound)";
	if (v->inst)
		return outcome_names[r->inst[v->inst - 1].outcome];
	return v->ended ? "session ended" : "still open";
}

static int collect(const AuditEntry *e, const char *file, uint64_t line, void *userdata)
{
	Report *r = userdata;

	if (r->since && e->time_ms < r->since)
		return 0;
	if (r->until && e->time_ms >= r->until)
		return 0;
	/* (the many-hosts report, ctl-report-hosts.c, has no break-glass section: no r->bg) */
	if (r->bg && breakglass_report_collect(r->bg, e) < 0)
		return -ENOMEM;
	switch (e->event) {
	case AUDIT_EVENT_AUTH:
		if (e->result == AUDIT_RESULT_SUCCESS) {
			/* "user service rhost": a session-bind of the same user and service
			 * right after it came from there. */
			free(r->last_rhost);
			r->last_rhost = NULL;
			if (e->rhost && asprintf(&r->last_rhost, "%s\n%s\n%s", strempty(e->user),
			                        strempty(e->service), e->rhost) < 0)
				return -ENOMEM;
			free(r->last_detail);
			free(r->last_session);
			free(r->last_who);
			if (asprintf(&r->last_who, "%s\n%s", strempty(e->user),
			            strempty(e->service)) < 0)
				r->last_who = NULL;
			r->last_detail = e->detail ? strdup(e->detail) : NULL;
			r->last_session = e->session ? strdup(e->session) : NULL;
			if ((e->detail && !r->last_detail) || (e->session && !r->last_session) ||
			        !r->last_who)
				return -ENOMEM;
			if (e->detail && strstr(e->detail, "method=ssh-login")) {
				int q = collect_ssh_login(r, e);
				if (q < 0)
					return q;
			}
		}
		return count_auth(r, e);
	case AUDIT_EVENT_KEY_REMOVED:
		r->removals++;
		return 0;
	case AUDIT_EVENT_KEY_ADDED:
		r->key_added++;
		return 0;
	case AUDIT_EVENT_ACTION:
	case AUDIT_EVENT_OUTCOME:
	case AUDIT_EVENT_LOCK_VERIFIED:
	case AUDIT_EVENT_LOCK_ESCALATED:
	case AUDIT_EVENT_LOCK_FAILED:
		return collect_removal(r, e);
	case AUDIT_EVENT_SESSION_BIND:
	case AUDIT_EVENT_SESSION_UNBIND:
		return collect_elevation(r, e);
	case AUDIT_EVENT_GRACE_CANCELLED:
		return count_action(r, e->action, OUTCOME_GRACE);
	case AUDIT_EVENT_CLONE_ALERT:
		return add_event_row(r, &r->clones, &r->n_clones, e);
	case AUDIT_EVENT_LOCKOUT:
		return add_event_row(r, &r->lockouts, &r->n_lockouts, e);
	case AUDIT_EVENT_POLICY_LOAD:
		return add_event_row(r, &r->policy, &r->n_policy, e);
	case AUDIT_EVENT_ENROLL:
	case AUDIT_EVENT_REVOKE:
	case AUDIT_EVENT_IMPORT:
		return add_event_row(r, &r->keymgmt, &r->n_keymgmt, e);
	default:
		return 0;
	}
}

static void make_buckets(Report *r)
{
	static const uint64_t sizes[] = {60000ULL * 5, 60000ULL * 15, 3600000ULL, 3600000ULL * 6,
	        86400000ULL, 86400000ULL * 7, 86400000ULL * 30};
	uint64_t lo, hi, size = sizes[ELEMENTSOF(sizes) - 1];

	if (r->n_auth_times == 0)
		return;
	lo = r->since ?: r->t_min;
	hi = r->until ? r->until - 1 : r->t_max;
	if (hi < lo)
		hi = lo;
	for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
		if ((hi / sizes[i] - lo / sizes[i]) + 1 <= REPORT_MAX_BUCKETS) {
			size = sizes[i];
			break;
		}
	lo = lo / size * size;
	r->bucket_ms = size;
	r->n_buckets = (size_t)((hi - lo) / size + 1);
	if (r->n_buckets > REPORT_MAX_BUCKETS)
		r->n_buckets = REPORT_MAX_BUCKETS;
	for (size_t i = 0; i < r->n_buckets; i++)
		r->buckets[i].start = lo + i * size;
	for (size_t i = 0; i < r->n_auth_times; i++) {
		uint64_t t = r->auth_times[i] >> 1;
		size_t b;
		if (t < lo)
			continue;
		b = (size_t)((t - lo) / size);
		if (b >= r->n_buckets)
			continue;
		if (r->auth_times[i] & 1)
			r->buckets[b].success++;
		else
			r->buckets[b].failure++;
	}
}

/* ---- coverage: the policy's privileged accounts against the credential store ---- */

static int add_coverage(Report *r, const char *user, int64_t uid, const char *services,
        const char *rule, int64_t keys, const char *status)
{
	CoverageRow *row = grow(&r->coverage, &r->n_coverage, sizeof(CoverageRow), &r->truncated);

	if (!row)
		return r->truncated ? 0 : -ENOMEM;
	row->user = strdup(user);
	row->uid = uid;
	row->services = xstrdup0(services); /* PAM file names (--root: any tree) */
	row->rule = xstrdup0(rule);
	row->keys = keys;
	row->status = strdup(status);
	if (!row->user || !row->services || !row->status || (rule && !row->rule))
		return -ENOMEM;
	return 0;
}

static int coverage_rank(const char *status)
{
	static const char *const order[] = {
	        "gap", "unreadable", "unknown-user", "enrolled-not-covered", "ok"};
	for (size_t i = 0; i < ELEMENTSOF(order); i++)
		if (streq(order[i], status))
			return (int)i;
	return (int)ELEMENTSOF(order);
}

static int cmp_coverage(const void *a, const void *b)
{
	const CoverageRow *x = a, *y = b;
	int d = coverage_rank(x->status) - coverage_rank(y->status);
	return d ? d : strcmp(x->user, y->user);
}

/* A path of the target system under --root. */
static char *rooted(const Report *r, const char *path)
{
	char *s = NULL;

	if (asprintf(&s, "%s%s", r->root, path) < 0)
		return NULL;
	return s;
}

/* Who must use a key where: the services come from the PAM stacks present
 * (service_coverage_load()), the same answer keywardctl doctor and keywardd's Enroll use. */
static int compute_coverage(Report *r)
{
	PolicyDiagnostics diags = {};
	_cleanup_(policy_freep) Policy *p = NULL;
	_cleanup_(service_coverage_freep) ServiceCoverage *cov = NULL;
	_cleanup_strv_free_ char **enrolled = NULL;
	_cleanup_free_ char *config = NULL, *dir = NULL;
	struct passwd *pw;
	size_t n_users = 0;
	int q;

	config = rooted(r, ctl_global.config_path);
	if (!config)
		return -ENOMEM;
	q = policy_load_file(config, &diags, &p);
	policy_diagnostics_clear(&diags);
	if (q < 0) {
		if (asprintf(&r->coverage_note,
		            "not evaluated: the policy %s cannot be loaded (%s); run keywardctl "
		            "policy check",
		            config, strerror(-q)) < 0)
			return -ENOMEM;
		return 0;
	}
	q = service_coverage_load(p, r->root, &cov);
	if (q < 0) {
		if (asprintf(&r->coverage_note,
		            "not evaluated: the PAM services under %s/etc/pam.d and "
		            "%s/usr/lib/pam.d cannot be listed (%s)",
		            r->root, r->root, strerror(-q)) < 0)
			return -ENOMEM;
		return 0;
	}
	r->policy_path = strdup(ctl_global.config_path);
	dir = rooted(r, policy_settings(p)->credentials_dir ?: KEYWARD_DEFAULT_CREDENTIALS_DIR);
	if (!r->policy_path || !dir)
		return -ENOMEM;
	q = creds_list_users(dir, &enrolled);
	if (q < 0) {
		if (asprintf(&r->coverage_note, "credential store %s cannot be listed (%s)", dir,
		            strerror(-q)) < 0)
			return -ENOMEM;
		enrolled = NULL;
	}

	setpwent();
	while ((pw = getpwent()) && n_users++ < REPORT_MAX_USERS) {
		_cleanup_strv_free_ char **groups = NULL;
		_cleanup_free_ ServiceCoverageHit *hits = NULL;
		_cleanup_free_ char *services = NULL;
		const char *rule = NULL;
		char rulebuf[512];
		size_t keys = 0, n_hits = 0;
		int k;

		if (!valid_user_name(pw->pw_name))
			continue;
		k = ctl_user_groups(pw->pw_name, pw->pw_gid, REPORT_GROUPS_MAX, &groups);
		if (k < 0)
			continue;
		q = service_coverage_user(cov, p,
		        &(ServiceCoverageQuery){
		                .user = pw->pw_name, .uid = pw->pw_uid, .groups = groups},
		        &hits, &n_hits);
		if (q >= 0)
			q = service_coverage_hits_join(hits, n_hits, &services);
		if (q < 0) {
			endpwent();
			return q;
		}
		if (n_hits > 0) {
			snprintf(rulebuf, sizeof(rulebuf), "%s (%s:%u)",
			        strna(hits[0].decision.rule_name), ctl_global.config_path,
			        hits[0].decision.line);
			rule = rulebuf;
		}
		k = creds_count_user(dir, pw->pw_name, &keys);
		if (k < 0) {
			if (services[0] || strv_contains(enrolled, pw->pw_name))
				q = add_coverage(r, pw->pw_name, pw->pw_uid, services, rule, -1,
				        "unreadable");
			else
				q = 0;
		} else if (services[0])
			q = add_coverage(r, pw->pw_name, pw->pw_uid, services, rule, (int64_t)keys,
			        keys > 0 ? "ok" : "gap");
		else if (keys > 0)
			q = add_coverage(r, pw->pw_name, pw->pw_uid, "", NULL, (int64_t)keys,
			        "enrolled-not-covered");
		else
			q = 0;
		if (q < 0) {
			endpwent();
			return q;
		}
	}
	endpwent();
	/* Credential files of names NSS does not know. */
	for (char **u = enrolled; u && *u; u++) {
		bool seen = false;
		size_t keys = 0;
		for (size_t i = 0; i < r->n_coverage && !seen; i++)
			seen = streq(r->coverage[i].user, *u);
		if (seen || getpwnam(*u))
			continue;
		(void)creds_count_user(dir, *u, &keys);
		q = add_coverage(r, *u, -1, "", NULL, (int64_t)keys, "unknown-user");
		if (q < 0)
			return q;
	}
	if (r->coverage)
		qsort(r->coverage, r->n_coverage, sizeof(CoverageRow), cmp_coverage);
	return 0;
}

static size_t coverage_count(const Report *r, const char *status)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_coverage; i++)
		n += streq(r->coverage[i].status, status);
	return n;
}

/* ---- output helpers ---- */

/* The integrity line is exactly `audit verify`'s verdict (ctl_audit_verdict()). */
static const char *verify_summary(const Report *r, char *buf, size_t size)
{
	(void)ctl_audit_verdict(r->verify_error, &r->verify, buf, size);
	return buf;
}

static bool verify_intact(const Report *r)
{
	char buf[8];
	return ctl_audit_verdict(r->verify_error, &r->verify, buf, sizeof(buf)) == CTL_AUDIT_INTACT;
}

static void fmt_time(uint64_t ms, char *buf, size_t size)
{
	if (format_rfc3339_ms(ms, buf, size) < 0)
		snprintf(buf, size, "?");
}

static void reasons_string(const AuthRow *a, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (size_t j = 0; j < a->n_reasons; j++) {
		int n = snprintf(buf + len, size - len, "%s%s=%" PRIu64, j ? " " : "",
		        a->reasons[j].reason, a->reasons[j].n);
		if (n < 0 || (size_t)n >= size - len)
			return;
		len += (size_t)n;
	}
	if (a->other_reasons)
		snprintf(buf + len, size - len, " other=%" PRIu64, a->other_reasons);
}

/* "day", "6 hours", "15 minutes": the width of one timeline bucket. */
static const char *bucket_name(uint64_t ms, char *buf, size_t size)
{
	static const struct {
		uint64_t ms;
		const char *one, *many;
	} units[] = {
	        {86400000, "day", "days"},
	        {3600000, "hour", "hours"},
	        {60000, "minute", "minutes"},
	};

	for (size_t i = 0; i < ELEMENTSOF(units); i++)
		if (ms % units[i].ms == 0) {
			if (ms == units[i].ms)
				snprintf(buf, size, "%s", units[i].one);
			else
				snprintf(buf, size, "%" PRIu64 " %s", ms / units[i].ms,
				        units[i].many);
			return buf;
		}
	snprintf(buf, size, "%" PRIu64 " ms", ms);
	return buf;
}

/* Sections: id, title, controls. The same list drives every format. */
typedef enum Section {
	SEC_BREAKGLASS, /* first of all: every way in around the keys */
	SEC_ATTENTION,  /* then what went wrong, before any summary */
	SEC_COVERAGE,
	SEC_AUTH,
	SEC_REMOVAL,
	SEC_ELEVATION,
	SEC_CLONE,
	SEC_LOCKOUT,
	SEC_POLICY,
	SEC_KEYMGMT,
	SEC_TRAIL,
	_SEC_MAX,
} Section;

static const struct {
	const char *id, *title, *controls;
} sections[_SEC_MAX] = {
        [SEC_BREAKGLASS] = {BREAKGLASS_REPORT_ID, BREAKGLASS_REPORT_TITLE,
                BREAKGLASS_REPORT_CONTROLS},
        [SEC_ATTENTION] = {"attention", "Removal actions that failed or have no outcome",
                "NIST SP 800-53 AC-11, AC-12, AU-5 (response to failures)"},
        [SEC_COVERAGE] = {"coverage", "Privileged accounts and enrolled keys",
                "NIST SP 800-53 IA-2(1), IA-2(2); CIS Control 6.5 (MFA for administrative access)"},
        [SEC_AUTH] = {"authentications", "Authentications per user and service",
                "NIST SP 800-53 IA-2(1), IA-2(2), AU-10 (who used which key when); CIS Control "
                "8.5"},
        [SEC_REMOVAL] = {"removals", "Key removals and their outcomes",
                "NIST SP 800-53 AC-11 (device lock), AC-12 (session termination)"},
        [SEC_ELEVATION] = {"elevations",
                "Elevations and sessions: who, when, with which key, from where, how it ended",
                "NIST SP 800-53 AC-6(9) (log use of privileged functions), AU-3, AU-10"},
        [SEC_CLONE] = {"clone_alerts", "Clone alerts (sign counter did not increase)",
                "NIST SP 800-53 IA-5, SI-4"},
        [SEC_LOCKOUT] = {"lockouts", "Lockouts after failed attempts", "NIST SP 800-53 AC-7"},
        [SEC_POLICY] = {"policy_changes", "Policy loads and changes", "NIST SP 800-53 CM-3, AU-12"},
        [SEC_KEYMGMT] = {"key_management", "Enrolments, revocations and imports",
                "NIST SP 800-53 IA-5, AC-2"},
        [SEC_TRAIL] = {"trail", "Audit trail integrity",
                "NIST SP 800-53 AU-9, AU-9(3) (cryptographic protection), AU-10; CIS Control 8.3"},
};

static EventRow *section_events(const Report *r, Section s, size_t *n)
{
	switch (s) {
	case SEC_CLONE:
		*n = r->n_clones;
		return r->clones;
	case SEC_LOCKOUT:
		*n = r->n_lockouts;
		return r->lockouts;
	case SEC_POLICY:
		*n = r->n_policy;
		return r->policy;
	case SEC_KEYMGMT:
		*n = r->n_keymgmt;
		return r->keymgmt;
	default:
		*n = 0;
		return NULL;
	}
}

/* ---- text ---- */

static void emit_text(const Report *r, FILE *f)
{
	char buf[1024], t1[40], t2[40];

	fprintf(f, "keyward compliance report\n=========================\n");
	fmt_time(now_realtime_ms(), t1, sizeof(t1));
	fprintf(f, "Generated: %s\n", t1);
	if (r->since)
		fmt_time(r->since, t1, sizeof(t1));
	if (r->until)
		fmt_time(r->until, t2, sizeof(t2));
	fprintf(f, "Period:    %s .. %s\n", r->since ? t1 : "(start of trail)",
	        r->until ? t2 : "(end of trail)");
	fprintf(f, "Trail:     %s\n", verify_summary(r, buf, sizeof(buf)));
	if (r->truncated || breakglass_report_truncated(r->bg))
		fprintf(f, "NOTE: some tables were cut at %u rows.\n", REPORT_MAX_ROWS);

	for (Section s = 0; s < _SEC_MAX; s++) {
		fprintf(f, "\n%s\n", sections[s].title);
		for (size_t i = 0; sections[s].title[i]; i++)
			fputc('-', f);
		fprintf(f, "\nEvidence for: %s\n", sections[s].controls);
		switch (s) {
		case SEC_BREAKGLASS:
			breakglass_report_text(r->bg, f);
			break;
		case SEC_ATTENTION:
			fprintf(f, "Count: %zu\n", attention_count(r));
			fprintf(f, "%-24s %-12s %-14s %-14s %-12s %s\n", "TIME", "USER", "SESSION",
			        "ACTION", "OUTCOME", "WHY");
			for (size_t i = 0; i < r->n_inst; i++) {
				const ActionInst *a = &r->inst[i];
				if (inst_attention(a))
					fprintf(f, "%-24s %-12s %-14s %-14s %-12s %s\n",
					        a->time ?: "-", a->user ?: "-", a->session ?: "-",
					        a->action ?: "-", outcome_names[a->outcome],
					        a->why ?: "-");
			}
			break;
		case SEC_ELEVATION:
			fprintf(f, "Count: %zu\n", r->n_elev);
			fprintf(f, "%-24s %-12s %-10s %-16s %-16s %-12s %-24s %s\n", "TIME", "USER",
			        "SERVICE", "KEY", "FROM", "SESSION", "ENDED", "METHOD");
			for (size_t i = 0; i < r->n_elev; i++) {
				const ElevRow *v = &r->elev[i];
				fprintf(f, "%-24s %-12s %-10s %-16s %-16s %-12s %-24s %s\n",
				        v->time ?: "-", v->user ?: "-", v->service ?: "-",
				        v->key ?: "-", v->from ?: "-", v->session ?: "-",
				        elev_end(r, v), v->method ?: "-");
			}
			break;
		case SEC_COVERAGE:
			if (r->coverage_note)
				fprintf(f, "%s\n", r->coverage_note);
			if (!r->policy_path)
				break;
			fprintf(f,
			        "Policy %s: %zu account(s) need a key, %zu without one (gap), %zu "
			        "enrolled but not covered.\n",
			        r->policy_path,
			        coverage_count(r, "gap") + coverage_count(r, "ok") +
			                coverage_count(r, "unreadable"),
			        coverage_count(r, "gap"),
			        coverage_count(r, "enrolled-not-covered"));
			fprintf(f, "%-22s %-16s %-5s %-22s %s\n", "STATUS", "USER", "KEYS",
			        "REQUIRED FOR", "RULE");
			for (size_t i = 0; i < r->n_coverage; i++) {
				const CoverageRow *c = &r->coverage[i];
				char keys[24];
				snprintf(keys, sizeof(keys), c->keys < 0 ? "?" : "%" PRId64,
				        c->keys);
				fprintf(f, "%-22s %-16s %-5s %-22s %s\n", c->status, c->user, keys,
				        c->services[0] ? c->services : "-", c->rule ?: "-");
			}
			break;
		case SEC_AUTH:
			fprintf(f, "Total: %" PRIu64 " successful, %" PRIu64 " failed.\n",
			        r->auth_success, r->auth_failure);
			fprintf(f, "%-16s %-16s %8s %8s  %s\n", "USER", "SERVICE", "SUCCESS",
			        "FAILURE", "FAILURE REASONS");
			for (size_t i = 0; i < r->n_auth; i++) {
				reasons_string(&r->auth[i], buf, sizeof(buf));
				fprintf(f, "%-16s %-16s %8" PRIu64 " %8" PRIu64 "  %s\n",
				        r->auth[i].user, r->auth[i].service, r->auth[i].success,
				        r->auth[i].failure, buf[0] ? buf : "-");
			}
			if (r->n_buckets) {
				fprintf(f, "Over time (one line per %s with authentications):\n",
				        bucket_name(r->bucket_ms, t2, sizeof(t2)));
				for (size_t i = 0; i < r->n_buckets; i++) {
					if (!r->buckets[i].success && !r->buckets[i].failure)
						continue;
					fmt_time(r->buckets[i].start, t1, sizeof(t1));
					fprintf(f,
					        "  %s  success %" PRIu64 "  failure %" PRIu64 "\n",
					        t1, r->buckets[i].success, r->buckets[i].failure);
				}
			}
			break;
		case SEC_REMOVAL:
			fprintf(f, "Key removals: %" PRIu64 "; key insertions: %" PRIu64 ".\n",
			        r->removals, r->key_added);
			fprintf(f, "%-14s", "ACTION");
			for (Outcome o = 0; o < _OUTCOME_MAX; o++)
				fprintf(f, " %s", outcome_names[o]);
			fputc('\n', f);
			for (size_t i = 0; i < r->n_actions; i++) {
				fprintf(f, "%-14s", r->actions[i].action);
				for (Outcome o = 0; o < _OUTCOME_MAX; o++)
					fprintf(f, " %*" PRIu64, (int)strlen(outcome_names[o]),
					        r->actions[i].n[o]);
				fputc('\n', f);
			}
			break;
		case SEC_CLONE:
		case SEC_LOCKOUT:
		case SEC_POLICY:
		case SEC_KEYMGMT: {
			size_t n;
			EventRow *rows = section_events(r, s, &n);
			fprintf(f, "Count: %zu\n", n);
			for (size_t i = 0; i < n; i++)
				fprintf(f, "  %s  %-14s %-8s %-12s %-16s %-16s %s\n",
				        strna(rows[i].time), audit_event_to_string(rows[i].event),
				        strna(rows[i].result), rows[i].user ?: "-",
				        rows[i].reason ?: "-", rows[i].cred ?: "-",
				        rows[i].detail ?: "");
			break;
		}
		case SEC_TRAIL:
			fprintf(f, "%s\n", verify_summary(r, buf, sizeof(buf)));
			for (size_t i = 0; r->files && r->files[i]; i++)
				fprintf(f, "  file: %s\n", r->files[i]);
			if (r->verify_note)
				fprintf(f, "%s\n", r->verify_note);
			if (r->malformed)
				fprintf(f, "Malformed lines skipped while counting: %" PRIu64 "\n",
				        r->malformed);
			break;
		default:
			break;
		}
	}
}

/* ---- JSON ---- */

static void j_str(JsonBuf *b, const char *key, const char *v, bool comma)
{
	json_buf_printf(b, "%s\"%s\":", comma ? "," : "", key);
	if (v)
		json_buf_put_string(b, v, SIZE_MAX);
	else
		json_buf_puts(b, "null");
}

void report_json_str(JsonBuf *b, const char *key, const char *v, bool comma)
{
	j_str(b, key, v, comma);
}

static int emit_json(const Report *r, FILE *f)
{
	JsonBuf b = {};
	char buf[1024], t[40];

	fmt_time(now_realtime_ms(), t, sizeof(t));
	json_buf_puts(&b, "{");
	j_str(&b, "generated", t, false);
	if (r->since)
		fmt_time(r->since, t, sizeof(t));
	j_str(&b, "since", r->since ? t : NULL, true);
	if (r->until)
		fmt_time(r->until, t, sizeof(t));
	j_str(&b, "until", r->until ? t : NULL, true);
	json_buf_printf(&b, ",\"truncated\":%s",
	        r->truncated || breakglass_report_truncated(r->bg) ? "true" : "false");

	json_buf_puts(&b, ",\"sections\":[");
	for (Section s = 0; s < _SEC_MAX; s++) {
		json_buf_printf(&b, "%s{", s ? "," : "");
		j_str(&b, "id", sections[s].id, false);
		j_str(&b, "title", sections[s].title, true);
		j_str(&b, "controls", sections[s].controls, true);
		json_buf_puts(&b, "}");
	}
	json_buf_puts(&b, "],");
	breakglass_report_json(r->bg, &b);

	json_buf_puts(&b, ",\"attention\":[");
	for (size_t i = 0, k = 0; i < r->n_inst; i++) {
		const ActionInst *a = &r->inst[i];
		if (!inst_attention(a))
			continue;
		json_buf_printf(&b, "%s{", k++ ? "," : "");
		j_str(&b, "time", a->time, false);
		j_str(&b, "user", a->user, true);
		j_str(&b, "session", a->session, true);
		j_str(&b, "action", a->action, true);
		j_str(&b, "outcome", outcome_names[a->outcome], true);
		j_str(&b, "reason", a->why, true);
		json_buf_printf(&b, ",\"action_seq\":%" PRIu64 "}", a->seq);
	}
	json_buf_puts(&b, "]");

	json_buf_puts(&b, ",\"coverage\":{");
	j_str(&b, "policy", r->policy_path, false);
	j_str(&b, "note", r->coverage_note, true);
	json_buf_printf(&b, ",\"gaps\":%zu,\"ok\":%zu,\"enrolled_not_covered\":%zu,\"accounts\":[",
	        coverage_count(r, "gap"), coverage_count(r, "ok"),
	        coverage_count(r, "enrolled-not-covered"));
	for (size_t i = 0; i < r->n_coverage; i++) {
		const CoverageRow *c = &r->coverage[i];
		json_buf_printf(&b, "%s{", i ? "," : "");
		j_str(&b, "user", c->user, false);
		if (c->uid >= 0)
			json_buf_printf(&b, ",\"uid\":%" PRId64, c->uid);
		j_str(&b, "status", c->status, true);
		j_str(&b, "required_for", c->services, true);
		j_str(&b, "rule", c->rule, true);
		if (c->keys >= 0)
			json_buf_printf(&b, ",\"keys\":%" PRId64, c->keys);
		else
			json_buf_puts(&b, ",\"keys\":null");
		json_buf_puts(&b, "}");
	}
	json_buf_puts(&b, "]}");

	json_buf_printf(&b,
	        ",\"authentications\":{\"success\":%" PRIu64 ",\"failure\":%" PRIu64
	        ",\"by_user_service\":[",
	        r->auth_success, r->auth_failure);
	for (size_t i = 0; i < r->n_auth; i++) {
		const AuthRow *a = &r->auth[i];
		json_buf_printf(&b, "%s{", i ? "," : "");
		j_str(&b, "user", a->user, false);
		j_str(&b, "service", a->service, true);
		json_buf_printf(&b,
		        ",\"success\":%" PRIu64 ",\"failure\":%" PRIu64 ",\"failure_reasons\":{",
		        a->success, a->failure);
		for (size_t j = 0; j < a->n_reasons; j++) {
			json_buf_printf(&b, "%s", j ? "," : "");
			json_buf_put_string(&b, a->reasons[j].reason, SIZE_MAX);
			json_buf_printf(&b, ":%" PRIu64, a->reasons[j].n);
		}
		if (a->other_reasons)
			json_buf_printf(&b, "%s\"(other)\":%" PRIu64, a->n_reasons ? "," : "",
			        a->other_reasons);
		json_buf_puts(&b, "}}");
	}
	json_buf_printf(&b, "],\"timeline\":{\"bucket_seconds\":%" PRIu64 ",\"buckets\":[",
	        r->bucket_ms / 1000);
	for (size_t i = 0; i < r->n_buckets; i++) {
		fmt_time(r->buckets[i].start, t, sizeof(t));
		json_buf_printf(&b,
		        "%s{\"start\":\"%s\",\"success\":%" PRIu64 ",\"failure\":%" PRIu64 "}",
		        i ? "," : "", t, r->buckets[i].success, r->buckets[i].failure);
	}
	json_buf_puts(&b, "]}}");

	json_buf_printf(&b,
	        ",\"removals\":{\"key_removed\":%" PRIu64 ",\"key_added\":%" PRIu64
	        ",\"actions\":[",
	        r->removals, r->key_added);
	for (size_t i = 0; i < r->n_actions; i++) {
		json_buf_printf(&b, "%s{", i ? "," : "");
		j_str(&b, "action", r->actions[i].action, false);
		for (int o = 0; o < _OUTCOME_MAX; o++)
			json_buf_printf(
			        &b, ",\"%s\":%" PRIu64, outcome_names[o], r->actions[i].n[o]);
		json_buf_puts(&b, "}");
	}
	json_buf_puts(&b, "]}");

	json_buf_puts(&b, ",\"elevations\":[");
	for (size_t i = 0; i < r->n_elev; i++) {
		const ElevRow *v = &r->elev[i];
		json_buf_printf(&b, "%s{", i ? "," : "");
		j_str(&b, "time", v->time, false);
		j_str(&b, "user", v->user, true);
		j_str(&b, "service", v->service, true);
		j_str(&b, "key", v->key, true);
		j_str(&b, "method", v->method, true);
		j_str(&b, "from", v->from, true);
		j_str(&b, "session", v->session, true);
		j_str(&b, "ended", elev_end(r, v), true);
		json_buf_puts(&b, "}");
	}
	json_buf_puts(&b, "]");

	for (Section s = SEC_CLONE; s <= SEC_KEYMGMT; s++) {
		size_t n;
		EventRow *rows = section_events(r, s, &n);
		json_buf_printf(&b, ",\"%s\":[", sections[s].id);
		for (size_t i = 0; i < n; i++) {
			json_buf_printf(&b, "%s{", i ? "," : "");
			j_str(&b, "time", rows[i].time, false);
			j_str(&b, "event", audit_event_to_string(rows[i].event), true);
			j_str(&b, "result", rows[i].result, true);
			j_str(&b, "user", rows[i].user, true);
			j_str(&b, "reason", rows[i].reason, true);
			j_str(&b, "credential", rows[i].cred, true);
			j_str(&b, "detail", rows[i].detail, true);
			json_buf_puts(&b, "}");
		}
		json_buf_puts(&b, "]");
	}

	json_buf_puts(&b, ",\"trail\":{");
	j_str(&b, "status", ctl_audit_verdict_status(r->verify_error, &r->verify), false);
	json_buf_printf(&b, ",\"seals_verified\":%s", verify_intact(r) ? "true" : "false");
	j_str(&b, "summary", verify_summary(r, buf, sizeof(buf)), true);
	json_buf_printf(&b,
	        ",\"records\":%" PRIu64 ",\"seals\":%" PRIu64 ",\"unsealed_tail\":%" PRIu64
	        ",\"malformed_skipped\":%" PRIu64,
	        r->verify.records, r->verify.seals, r->verify.unsealed_tail, r->malformed);
	json_buf_puts(&b, ",\"files\":[");
	for (size_t i = 0; r->files && r->files[i]; i++) {
		if (i)
			json_buf_puts(&b, ",");
		json_buf_put_string(&b, r->files[i], SIZE_MAX);
	}
	json_buf_puts(&b, "]}}\n");
	if (b.oom) {
		json_buf_free(&b);
		return -ENOMEM;
	}
	fputs(b.data, f);
	json_buf_free(&b);
	return 0;
}

/* ---- CSV (RFC 4180): one table per section, a blank line between them ---- */

static void csv_field(FILE *f, const char *s, bool last)
{
	csv_write_field(f, s, last);
}

static void emit_csv(const Report *r, FILE *f)
{
	char buf[1024], n1[24], n2[24], n3[24];

	breakglass_report_csv(r->bg, f);
	fputs("section,time,user,session,action,outcome,reason,action_seq\r\n", f);
	for (size_t i = 0; i < r->n_inst; i++) {
		const ActionInst *a = &r->inst[i];
		if (!inst_attention(a))
			continue;
		snprintf(n1, sizeof(n1), "%" PRIu64, a->seq);
		csv_field(f, "attention", false);
		csv_field(f, a->time, false);
		csv_field(f, a->user, false);
		csv_field(f, a->session, false);
		csv_field(f, a->action, false);
		csv_field(f, outcome_names[a->outcome], false);
		csv_field(f, a->why, false);
		csv_field(f, n1, true);
	}
	fputs("\r\nsection,user,uid,status,keys,required_for,rule\r\n", f);
	for (size_t i = 0; i < r->n_coverage; i++) {
		const CoverageRow *c = &r->coverage[i];
		snprintf(n1, sizeof(n1), "%" PRId64, c->uid);
		snprintf(n2, sizeof(n2), "%" PRId64, c->keys);
		csv_field(f, "coverage", false);
		csv_field(f, c->user, false);
		csv_field(f, c->uid >= 0 ? n1 : "", false);
		csv_field(f, c->status, false);
		csv_field(f, c->keys >= 0 ? n2 : "", false);
		csv_field(f, c->services, false);
		csv_field(f, c->rule, true);
	}
	fputs("\r\nsection,user,service,success,failure,failure_reasons\r\n", f);
	for (size_t i = 0; i < r->n_auth; i++) {
		const AuthRow *a = &r->auth[i];
		snprintf(n1, sizeof(n1), "%" PRIu64, a->success);
		snprintf(n2, sizeof(n2), "%" PRIu64, a->failure);
		reasons_string(a, buf, sizeof(buf));
		csv_field(f, "authentications", false);
		csv_field(f, a->user, false);
		csv_field(f, a->service, false);
		csv_field(f, n1, false);
		csv_field(f, n2, false);
		csv_field(f, buf, true);
	}
	fputs("\r\nsection,action", f);
	for (Outcome o = 0; o < _OUTCOME_MAX; o++)
		fprintf(f, ",%s", outcome_names[o]);
	fputs("\r\n", f);
	for (size_t i = 0; i < r->n_actions; i++) {
		const ActionRow *a = &r->actions[i];
		csv_field(f, "removals", false);
		csv_field(f, a->action, false);
		for (Outcome o = 0; o < _OUTCOME_MAX; o++) {
			snprintf(n1, sizeof(n1), "%" PRIu64, a->n[o]);
			csv_field(f, n1, o == _OUTCOME_MAX - 1);
		}
	}
	fputs("\r\nsection,time,user,service,key,from,session,ended,method\r\n", f);
	for (size_t i = 0; i < r->n_elev; i++) {
		const ElevRow *v = &r->elev[i];
		csv_field(f, "elevations", false);
		csv_field(f, v->time, false);
		csv_field(f, v->user, false);
		csv_field(f, v->service, false);
		csv_field(f, v->key, false);
		csv_field(f, v->from, false);
		csv_field(f, v->session, false);
		csv_field(f, elev_end(r, v), false);
		csv_field(f, v->method, true);
	}
	fputs("\r\nsection,time,event,result,user,reason,credential,detail\r\n", f);
	for (Section s = SEC_CLONE; s <= SEC_KEYMGMT; s++) {
		size_t n;
		EventRow *rows = section_events(r, s, &n);
		for (size_t i = 0; i < n; i++) {
			csv_field(f, sections[s].id, false);
			csv_field(f, rows[i].time, false);
			csv_field(f, audit_event_to_string(rows[i].event), false);
			csv_field(f, rows[i].result, false);
			csv_field(f, rows[i].user, false);
			csv_field(f, rows[i].reason, false);
			csv_field(f, rows[i].cred, false);
			csv_field(f, rows[i].detail, true);
		}
	}
	fputs("\r\nsection,status,records,seals,unsealed_tail,seals_verified,summary\r\n", f);
	snprintf(n1, sizeof(n1), "%" PRIu64, r->verify.records);
	snprintf(n2, sizeof(n2), "%" PRIu64, r->verify.seals);
	snprintf(n3, sizeof(n3), "%" PRIu64, r->verify.unsealed_tail);
	csv_field(f, "trail", false);
	csv_field(f, ctl_audit_verdict_status(r->verify_error, &r->verify), false);
	csv_field(f, n1, false);
	csv_field(f, n2, false);
	csv_field(f, n3, false);
	csv_field(f, verify_intact(r) ? "yes" : "no", false);
	csv_field(f, verify_summary(r, buf, sizeof(buf)), true);
}

/* ---- HTML: one file, inline CSS and SVG, no script, no external resource ---- */

static void h(FILE *f, const char *s)
{
	for (s = strempty(s); *s; s++)
		switch (*s) {
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		case '\'':
			fputs("&#39;", f);
			break;
		default:
			fputc(*s, f);
		}
}

void report_html_escape(FILE *f, const char *s)
{
	h(f, s);
}

static void svg_timeline(const Report *r, FILE *f)
{
	const int W = 720, H = 220, L = 48, B = 36, T = 14;
	uint64_t max = 1;
	double bw;
	char t[40];

	for (size_t i = 0; i < r->n_buckets; i++)
		if (r->buckets[i].success + r->buckets[i].failure > max)
			max = r->buckets[i].success + r->buckets[i].failure;
	fprintf(f,
	        "<svg class=\"chart\" id=\"chart-auth\" width=\"%d\" height=\"%d\" viewBox=\"0 0 "
	        "%d %d\" role=\"img\" "
	        "aria-label=\"Authentications over time\" xmlns=\"http://www.w3.org/2000/svg\">\n",
	        W, H, W, H);
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#555\"/>\n", L, H - B,
	        W - 8, H - B);
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#555\"/>\n", L, T, L,
	        H - B);
	fprintf(f,
	        "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%" PRIu64 "</text>\n",
	        L - 4, T + 4, max);
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">0</text>\n", L - 4,
	        H - B);
	if (r->n_buckets == 0) {
		fprintf(f,
		        "<text x=\"%d\" y=\"%d\" font-size=\"13\">No authentications in this "
		        "period.</text>\n",
		        L + 10, H / 2);
		fputs("</svg>\n", f);
		return;
	}
	bw = (double)(W - 8 - L) / (double)r->n_buckets;
	for (size_t i = 0; i < r->n_buckets; i++) {
		double x = L + bw * (double)i + bw * 0.15, w = bw * 0.7;
		double hs = (double)(H - B - T) * (double)r->buckets[i].success / (double)max;
		double hf = (double)(H - B - T) * (double)r->buckets[i].failure / (double)max;
		if (r->buckets[i].success)
			fprintf(f,
			        "<rect class=\"bar-success\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			        "height=\"%.1f\" fill=\"" COLOR_SUCCESS "\"><title>%" PRIu64
			        " successful</title></rect>\n",
			        x, H - B - hs, w, hs, r->buckets[i].success);
		if (r->buckets[i].failure)
			fprintf(f,
			        "<rect class=\"bar-failure\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			        "height=\"%.1f\" fill=\"" COLOR_FAILURE "\"><title>%" PRIu64
			        " failed</title></rect>\n",
			        x, H - B - hs - hf, w, hf, r->buckets[i].failure);
	}
	fmt_time(r->buckets[0].start, t, sizeof(t));
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">%.16s</text>\n", L, H - B + 16, t);
	fmt_time(r->buckets[r->n_buckets - 1].start, t, sizeof(t));
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%.16s</text>\n",
	        W - 8, H - B + 16, t);
	fprintf(f,
	        "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"" COLOR_SUCCESS
	        "\"/><text x=\"%d\" y=\"%d\" font-size=\"11\">success</text>\n",
	        L + 220, H - 12, L + 234, H - 3);
	fprintf(f,
	        "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"" COLOR_FAILURE
	        "\"/><text x=\"%d\" y=\"%d\" font-size=\"11\">failure</text>\n",
	        L + 300, H - 12, L + 314, H - 3);
	fputs("</svg>\n", f);
}

static void svg_outcomes(const Report *r, FILE *f)
{
	static const char *const colors[_OUTCOME_MAX] = {COLOR_ISSUED, "#2c7f8a", COLOR_VERIFIED,
	        COLOR_ESCALATED, COLOR_LFAILED, "#9a9a9a", "#b05a1e", "#6b0f1a", "#8e6bbf"};
	static const char *const labels[_OUTCOME_MAX] = {"issued", "done", "lock verified",
	        "escalated", "failed", "target gone", "interrupted", "no outcome",
	        "grace cancelled"};
	const int W = 720, L = 110, row = 26, T = 10;
	int H = T + (int)(r->n_actions ? r->n_actions : 1) * row * 1 + 54;
	uint64_t max = 1;

	for (size_t i = 0; i < r->n_actions; i++)
		for (int o = 0; o < _OUTCOME_MAX; o++)
			if (r->actions[i].n[o] > max)
				max = r->actions[i].n[o];
	fprintf(f,
	        "<svg class=\"chart\" id=\"chart-outcomes\" width=\"%d\" height=\"%d\" viewBox=\"0 "
	        "0 %d %d\" role=\"img\" "
	        "aria-label=\"Outcomes per removal action\" "
	        "xmlns=\"http://www.w3.org/2000/svg\">\n",
	        W, H, W, H);
	if (r->n_actions == 0)
		fprintf(f, "<text x=\"10\" y=\"24\" font-size=\"13\">No removal actions in this "
		           "period.</text>\n");
	for (size_t i = 0; i < r->n_actions; i++) {
		int y = T + (int)i * row;
		double x = L;
		fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\">", L - 6,
		        y + 15);
		h(f, r->actions[i].action);
		fputs("</text>\n", f);
		for (int o = 0; o < _OUTCOME_MAX; o++) {
			double w = (double)(W - L - 20) / (double)_OUTCOME_MAX *
			           (double)r->actions[i].n[o] / (double)max;
			if (r->actions[i].n[o] == 0)
				continue;
			fprintf(f,
			        "<rect class=\"bar-%s\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" "
			        "height=\"18\" fill=\"%s\"><title>%s: %" PRIu64 "</title></rect>\n",
			        outcome_names[o], x, y + 2, w, colors[o], labels[o],
			        r->actions[i].n[o]);
			x += w + 2;
		}
	}
	for (int o = 0; o < _OUTCOME_MAX; o++)
		fprintf(f,
		        "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text "
		        "x=\"%d\" y=\"%d\" font-size=\"11\">%s</text>\n",
		        L + (o % 5) * 110, H - 30 + (o / 5) * 14, colors[o], L + (o % 5) * 110 + 14,
		        H - 21 + (o / 5) * 14, labels[o]);
	fputs("</svg>\n", f);
}

static void emit_html(const Report *r, FILE *f)
{
	char buf[1024], t1[40], t2[40];

	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	      "<title>keyward compliance report</title>\n"
	      "<style>\n"
	      "body{font-family:DejaVu "
	      "Sans,Helvetica,Arial,sans-serif;margin:2em;color:#222;max-width:62em}\n"
	      "h1{font-size:1.6em;border-bottom:2px solid #333;padding-bottom:.2em}\n"
	      "h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #bbb}\n"
	      ".controls{font-size:.85em;color:#555;margin:.2em 0 .6em}\n"
	      "table{border-collapse:collapse;margin:.4em 0;font-size:.9em}\n"
	      "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\n"
	      "th{background:#f0f0f0}td.num{text-align:right}td.nw{white-space:nowrap}\n"
	      ".gap{background:#fde2de;font-weight:bold}.ok{color:#14663a}\n"
	      ".intact{color:#14663a;font-weight:bold}.tampered{color:#b3261e;font-weight:bold}\n"
	      ".chart{display:block;margin:.6em 0}\n"
	      "@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}"
	      "table,svg{page-break-inside:avoid}a{color:inherit}}\n"
	      "</style></head><body>\n<h1>keyward compliance report</h1>\n",
	        f);
	fmt_time(now_realtime_ms(), t1, sizeof(t1));
	fprintf(f, "<p>Generated %s on ", t1);
	{
		char host[256] = "";
		(void)gethostname(host, sizeof(host) - 1);
		h(f, host);
	}
	if (r->since)
		fmt_time(r->since, t1, sizeof(t1));
	if (r->until)
		fmt_time(r->until, t2, sizeof(t2));
	fprintf(f, ". Period: %s &ndash; %s.</p>\n", r->since ? t1 : "start of trail",
	        r->until ? t2 : "end of trail");
	fprintf(f, "<p>Trail: <span class=\"%s\">", verify_intact(r) ? "intact" : "tampered");
	h(f, verify_summary(r, buf, sizeof(buf)));
	fputs("</span></p>\n", f);

	for (Section s = 0; s < _SEC_MAX; s++) {
		fprintf(f, "<section id=\"%s\"><h2>", sections[s].id);
		h(f, sections[s].title);
		fputs("</h2>\n<p class=\"controls\">Evidence for: ", f);
		h(f, sections[s].controls);
		fputs("</p>\n", f);
		switch (s) {
		case SEC_BREAKGLASS:
			breakglass_report_html(r->bg, f);
			break;
		case SEC_ATTENTION:
			fprintf(f,
			        "<p><b>%zu</b> removal action(s) failed or have no outcome.</p>\n",
			        attention_count(r));
			if (attention_count(r) == 0)
				break;
			fputs("<table><tr><th>Time "
			      "(UTC)</th><th>User</th><th>Session</th><th>Action"
			      "</th><th>Outcome</th><th>Why</th></tr>\n",
			        f);
			for (size_t i = 0; i < r->n_inst; i++) {
				const ActionInst *a = &r->inst[i];
				const char *cells[] = {a->time, a->user, a->session, a->action,
				        outcome_names[a->outcome], a->why};
				if (!inst_attention(a))
					continue;
				fputs("<tr class=\"gap\">", f);
				for (size_t c = 0; c < ELEMENTSOF(cells); c++) {
					fputs("<td>", f);
					h(f, cells[c]);
					fputs("</td>", f);
				}
				fputs("</tr>\n", f);
			}
			fputs("</table>\n", f);
			break;
		case SEC_ELEVATION:
			fprintf(f, "<p>%zu bound session(s) and elevation(s).</p>\n", r->n_elev);
			if (r->n_elev == 0)
				break;
			fputs("<table><tr><th>Time (UTC)</th><th>User</th><th>Service</th><th>Key"
			      "</th><th>From</th><th>Session</th><th>Ended</th><th>Method</th></"
			      "tr>\n",
			        f);
			for (size_t i = 0; i < r->n_elev; i++) {
				const ElevRow *v = &r->elev[i];
				const char *cells[] = {v->time, v->user, v->service, v->key,
				        v->from, v->session, elev_end(r, v), v->method};
				fputs("<tr>", f);
				for (size_t c = 0; c < ELEMENTSOF(cells); c++) {
					fputs(c == 0 ? "<td class=\"nw\">" : "<td>", f);
					h(f, cells[c]);
					fputs("</td>", f);
				}
				fputs("</tr>\n", f);
			}
			fputs("</table>\n", f);
			break;
		case SEC_COVERAGE:
			if (r->coverage_note) {
				fputs("<p>", f);
				h(f, r->coverage_note);
				fputs("</p>\n", f);
			}
			if (!r->policy_path)
				break;
			fprintf(f,
			        "<p><b>%zu</b> account(s) without a key although the policy "
			        "requires one; %zu covered with keys; %zu enrolled but not "
			        "covered.</p>\n",
			        coverage_count(r, "gap"), coverage_count(r, "ok"),
			        coverage_count(r, "enrolled-not-covered"));
			fputs("<table><tr><th>Status</th><th>User</th><th>UID</th><th>Keys</"
			      "th><th>Key required for</th><th>Rule</th></tr>\n",
			        f);
			for (size_t i = 0; i < r->n_coverage; i++) {
				const CoverageRow *c = &r->coverage[i];
				fprintf(f, "<tr class=\"%s\"><td>",
				        streq(c->status, "gap")  ? "gap"
				        : streq(c->status, "ok") ? "ok"
				                                 : "");
				h(f, c->status);
				fputs("</td><td>", f);
				h(f, c->user);
				fprintf(f, "</td><td class=\"num\">%s", "");
				if (c->uid >= 0)
					fprintf(f, "%" PRId64, c->uid);
				fputs("</td><td class=\"num\">", f);
				if (c->keys >= 0)
					fprintf(f, "%" PRId64, c->keys);
				else
					fputs("?", f);
				fputs("</td><td>", f);
				h(f, c->services);
				fputs("</td><td>", f);
				h(f, c->rule);
				fputs("</td></tr>\n", f);
			}
			fputs("</table>\n", f);
			break;
		case SEC_AUTH:
			fprintf(f,
			        "<p>%" PRIu64 " successful and %" PRIu64
			        " failed authentications.</p>\n",
			        r->auth_success, r->auth_failure);
			if (r->n_buckets)
				fprintf(f,
				        "<p class=\"controls\">One bar per %s: successful (green) "
				        "and failed (red) authentications.</p>\n",
				        bucket_name(r->bucket_ms, buf, sizeof(buf)));
			svg_timeline(r, f);
			fputs("<table><tr><th>User</th><th>Service</th><th>Success</"
			      "th><th>Failure</th><th>Failure reasons</th></tr>\n",
			        f);
			for (size_t i = 0; i < r->n_auth; i++) {
				fputs("<tr><td>", f);
				h(f, r->auth[i].user);
				fputs("</td><td>", f);
				h(f, r->auth[i].service);
				fprintf(f,
				        "</td><td class=\"num\">%" PRIu64
				        "</td><td class=\"num\">%" PRIu64 "</td><td>",
				        r->auth[i].success, r->auth[i].failure);
				reasons_string(&r->auth[i], buf, sizeof(buf));
				h(f, buf);
				fputs("</td></tr>\n", f);
			}
			fputs("</table>\n", f);
			break;
		case SEC_REMOVAL:
			fprintf(f, "<p>%" PRIu64 " key removal(s), %" PRIu64 " insertion(s).</p>\n",
			        r->removals, r->key_added);
			svg_outcomes(r, f);
			fputs("<table><tr><th>Action</th>", f);
			for (Outcome o = 0; o < _OUTCOME_MAX; o++)
				fprintf(f, "<th>%s</th>", outcome_names[o]);
			fputs("</tr>\n", f);
			for (size_t i = 0; i < r->n_actions; i++) {
				fputs("<tr><td>", f);
				h(f, r->actions[i].action);
				fputs("</td>", f);
				for (int o = 0; o < _OUTCOME_MAX; o++)
					fprintf(f, "<td class=\"num\">%" PRIu64 "</td>",
					        r->actions[i].n[o]);
				fputs("</tr>\n", f);
			}
			fputs("</table>\n", f);
			break;
		case SEC_CLONE:
		case SEC_LOCKOUT:
		case SEC_POLICY:
		case SEC_KEYMGMT: {
			size_t n;
			EventRow *rows = section_events(r, s, &n);
			fprintf(f, "<p>%zu event(s).</p>\n", n);
			if (n == 0)
				break;
			fputs("<table><tr><th>Time "
			      "(UTC)</th><th>Event</th><th>Result</th><th>User</th><th>Reason</"
			      "th><th>Credential</th><th>Detail</th></tr>\n",
			        f);
			for (size_t i = 0; i < n; i++) {
				const char *cells[] = {rows[i].time,
				        audit_event_to_string(rows[i].event), rows[i].result,
				        rows[i].user, rows[i].reason, rows[i].cred, rows[i].detail};
				fputs("<tr>", f);
				for (size_t c = 0; c < ELEMENTSOF(cells); c++) {
					fputs(c < 2 ? "<td class=\"nw\">" : "<td>", f);
					h(f, cells[c]);
					fputs("</td>", f);
				}
				fputs("</tr>\n", f);
			}
			fputs("</table>\n", f);
			break;
		}
		case SEC_TRAIL:
			fprintf(f, "<p class=\"%s\">", verify_intact(r) ? "intact" : "tampered");
			h(f, verify_summary(r, buf, sizeof(buf)));
			fputs("</p>\n<ul>\n", f);
			for (size_t i = 0; r->files && r->files[i]; i++) {
				fputs("<li>", f);
				h(f, r->files[i]);
				fputs("</li>\n", f);
			}
			fputs("</ul>\n", f);
			if (r->verify_note) {
				fputs("<p>", f);
				h(f, r->verify_note);
				fputs("</p>\n", f);
			}
			break;
		default:
			break;
		}
		fputs("</section>\n", f);
	}
	fputs("</body></html>\n", f);
}

/* ---- the multi-host report's view of one host (ctl-report-hosts.h) ---- */

ReportScan *report_scan_new(uint64_t since, uint64_t until)
{
	Report *r = calloc(1, sizeof(Report));

	if (r)
		*r = (Report){.since = since, .until = until, .root = ""};
	return r;
}

void report_scan_free(ReportScan *s)
{
	if (s) {
		report_done(s);
		free(s);
	}
}

int report_scan_collect(const AuditEntry *e, const char *file, uint64_t line, void *scan)
{
	return collect(e, file, line, scan);
}

int report_scan_rows(ReportScan *r, const ReportScanSink *sink, void *userdata)
{
	char buf[1024];
	int q;

	count_outcomes(r);
	for (size_t i = 0; i < r->n_auth; i++) {
		const AuthRow *a = &r->auth[i];

		reasons_string(a, buf, sizeof(buf));
		q = sink->auth(&(ReportAuthOut){a->user, a->service, buf, a->success, a->failure,
		                       a->first_ms, a->last_ms},
		        userdata);
		if (q < 0)
			return q;
	}
	for (size_t i = 0; i < r->n_elev; i++) {
		const ElevRow *v = &r->elev[i];

		q = sink->elev(&(ReportElevOut){v->time_ms, v->time, v->user, v->service, v->key,
		                       v->from, v->session, elev_end(r, v)},
		        userdata);
		if (q < 0)
			return q;
	}
	return r->truncated ? 1 : 0;
}

int report_write_output(const char *out, int (*emit)(FILE *f, void *userdata), void *userdata)
{
	_cleanup_free_ char *tmp = NULL;
	FILE *f = stdout;
	int ret;

	if (out && !streq(out, "-")) {
		if (asprintf(&tmp, "%s.tmp.XXXXXX", out) < 0)
			return CTL_EXIT_ERROR;
		int fd = mkostemp(tmp, O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "keywardctl report: cannot create %s: %m\n", tmp);
			return CTL_EXIT_ERROR;
		}
		f = fdopen(fd, "w");
		if (!f) {
			close(fd);
			(void)unlink(tmp);
			return CTL_EXIT_ERROR;
		}
	}
	ret = emit(f, userdata);
	if (f != stdout) {
		bool bad = ferror(f) != 0 || fflush(f) != 0 || fsync(fileno(f)) < 0;
		if (fclose(f) != 0 || bad || rename(tmp, out) < 0) {
			fprintf(stderr, "keywardctl report: cannot write %s: %m\n", out);
			(void)unlink(tmp);
			return CTL_EXIT_ERROR;
		}
	} else if (fflush(stdout) != 0)
		return CTL_EXIT_ERROR;
	return ret;
}

typedef struct ReportEmit {
	const Report *r;
	ReportFormat fmt;
	int ret;
} ReportEmit;

static int report_emit(FILE *f, void *userdata)
{
	ReportEmit *e = userdata;

	switch (e->fmt) {
	case FORMAT_TEXT:
		emit_text(e->r, f);
		break;
	case FORMAT_JSON:
		if (emit_json(e->r, f) < 0)
			return CTL_EXIT_ERROR;
		break;
	case FORMAT_CSV:
		emit_csv(e->r, f);
		break;
	case FORMAT_HTML:
		emit_html(e->r, f);
		break;
	default:
		break;
	}
	return e->ret;
}

static void report_help(FILE *f)
{
	fprintf(f,
	        "Usage: keywardctl report [--since T] [--until T] [--format text|json|csv|html]\n"
	        "                         [-o FILE] [--verification-key FILE | --key FILE]\n"
	        "                         [--root DIR] [--audit FILE...]\n"
	        "       keywardctl report [...] --host NAME=DIR|FILE... [--journal DIR...]\n\n"
	        "Compliance evidence from the policy, the credential store and the audit trail:\n"
	        "break-glass recovery first (codes issued, used, refused, approvals, expiries,\n"
	        "revocations, the sessions it opened), then removal actions that failed or have\n"
	        "no outcome, then coverage gaps,\n"
	        "authentications, removals and their outcomes, elevations (who, when, key, from\n"
	        "where, how it ended), clone alerts, lockouts, policy changes, key management\n"
	        "and the trail's integrity.\n"
	        "--audit FILE... names the trail files, in chain order (default: the policy's).\n"
	        "Covered services are the PAM services present (/etc/pam.d, /usr/lib/pam.d).\n"
	        "--root DIR reads the policy (-c, as on the target), its credential store and\n"
	        "the PAM stacks under DIR; the trail is then given with --audit.\n"
	        "The integrity line is `keywardctl audit verify`'s verdict.\n"
	        "--host NAME=DIR (repeated): one report over many hosts; DIR holds the host's\n"
	        "audit.log and rotated files, and its verification.key (or audit-seal.key) and\n"
	        "anchors file when it has them. --journal DIR: records forwarded to a\n"
	        "systemd-journal-remote collector, one host per _HOSTNAME.\n"
	        "Exit: 0 written, trail INTACT; 1 written but the trail failed verification; 2 "
	        "usage;\n3 error; 4 written, trail NOT PROVEN (no key for its seals).\n");
}

int verb_report(int argc, char *argv[])
{
	static const struct option options[] = {{"since", required_argument, NULL, 'S'},
	        {"until", required_argument, NULL, 'U'}, {"format", required_argument, NULL, 'f'},
	        {"output", required_argument, NULL, 'o'}, {"key", required_argument, NULL, 'k'},
	        {"verification-key", required_argument, NULL, 'k'},
	        {"audit", required_argument, NULL, 'a'}, {"root", required_argument, NULL, 'R'},
	        {"host", required_argument, NULL, 'H'}, {"journal", required_argument, NULL, 'J'},
	        {"help", no_argument, NULL, 'h'}, {}};
	_cleanup_(report_done) Report r = {.root = ""};
	_cleanup_free_ char *default_key = NULL, *root = NULL;
	ReportFormat fmt = FORMAT_TEXT;
	const char *out = NULL, *key_path = NULL;
	AuditSealKey key = {};
	AuditVerifyOptions vo = {};
	_cleanup_strv_free_ char **audit_files = NULL, **hosts = NULL, **journals = NULL;
	int c, q, ret = CTL_EXIT_OK;

	while ((c = getopt_long(argc, argv, "o:h", options, NULL)) >= 0) {
		switch (c) {
		case 'S':
		case 'U':
			if (parse_rfc3339_ms(optarg, c == 'S' ? &r.since : &r.until) < 0) {
				fprintf(stderr,
				        "keywardctl report: '%s' is not a date or RFC 3339 time\n",
				        optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		case 'f':
			fmt = format_from_string(optarg);
			if (fmt < 0) {
				fprintf(stderr,
				        "keywardctl report: unknown format '%s' (text, json, csv, "
				        "html)\n",
				        optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		case 'o':
			out = optarg;
			break;
		case 'k':
			key_path = optarg;
			break;
		case 'a':
			if (strv_extend(&audit_files, optarg) < 0)
				return CTL_EXIT_ERROR;
			break;
		case 'R':
			free(root);
			root = realpath(optarg, NULL);
			if (!root) {
				fprintf(stderr, "keywardctl report: --root %s: %m\n", optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		case 'H':
			if (strv_extend(&hosts, optarg) < 0)
				return CTL_EXIT_ERROR;
			break;
		case 'J':
			if (strv_extend(&journals, optarg) < 0)
				return CTL_EXIT_ERROR;
			break;
		case 'h':
			report_help(stdout);
			return CTL_EXIT_OK;
		default:
			report_help(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	/* --audit A B C: getopt moved B and C to the end; they are trail files too. */
	if (optind < argc && !audit_files) {
		fprintf(stderr,
		        "keywardctl report: unexpected argument '%s' (trail files go after "
		        "--audit)\n",
		        argv[optind]);
		return CTL_EXIT_USAGE;
	}
	for (int i = optind; i < argc; i++)
		if (strv_extend(&audit_files, argv[i]) < 0)
			return CTL_EXIT_ERROR;
	if (breakglass_report_new(&r.bg) < 0)
		return CTL_EXIT_ERROR;
	if (r.since && r.until && r.until <= r.since) {
		fprintf(stderr, "keywardctl report: --until must be later than --since\n");
		return CTL_EXIT_USAGE;
	}
	if (hosts || journals) {
		/* Many hosts (ctl-report-hosts.c): each host's trail and key come with it. */
		if (audit_files || key_path || root) {
			fprintf(stderr,
			        "keywardctl report: --host/--journal exclude --audit, --key "
			        "and --root (each host's trail and key come with it)\n");
			return CTL_EXIT_USAGE;
		}
		return report_hosts_main(&(ReportHostsArgs){
		        r.since, r.until, format_table[fmt], out, hosts, journals});
	}
	if (root && !streq(root, "/")) {
		/* The policy, its credential store and the PAM stacks are read under the tree;
		 * the trail is named on this system (--audit). */
		if (ctl_global.config_path[0] != '/' || !audit_files) {
			fprintf(stderr, "keywardctl report: --root needs the policy as seen on the "
			                "target (-c /etc/keyward/keyward.conf) and the trail files "
			                "(--audit FILE...)\n");
			return CTL_EXIT_USAGE;
		}
		r.root = root;
	}

	q = ctl_audit_files(audit_files, strv_length(audit_files), &r.files);
	if (q < 0)
		return CTL_EXIT_ERROR;
	/* Under --root the host's seal key is not the tree's: only --key says which. */
	if (!key_path && isempty(r.root) && ctl_audit_paths(NULL, &default_key) >= 0)
		key_path = default_key;
	if (key_path) {
		q = ctl_audit_load_key(
		        "keywardctl report", key_path, false, &key, &vo, &r.verify_note);
		if (q < 0)
			return CTL_EXIT_ERROR;
		r.verify_keyed = q > 0;
	} else if (asprintf(&r.verify_note, "Seals were not verified: with --root, pass the "
	                                    "tree's verification key with --verification-key "
	                                    "FILE.") < 0)
		return CTL_EXIT_ERROR;
	/* One pass: the records for the report and the chain for its integrity verdict. */
	q = audit_verify_read_files(r.files, &vo, &r.verify, collect, &r, &r.malformed);
	audit_seal_key_clear(&key);
	if (q < 0) {
		fprintf(stderr, "keywardctl report: cannot read the audit trail: %s\n",
		        strerror(-q));
		return CTL_EXIT_ERROR;
	}
	r.verify_error = 0;
	make_buckets(&r);
	count_outcomes(&r);
	{
		char buf[8];
		ret = ctl_audit_verdict_exit(
		        ctl_audit_verdict(r.verify_error, &r.verify, buf, sizeof(buf)));
		if (ret == CTL_EXIT_ERROR)
			ret = CTL_EXIT_FAILURE; /* the report is written and says why */
	}

	q = compute_coverage(&r);
	if (q < 0) {
		fprintf(stderr, "keywardctl report: %s\n", strerror(-q));
		return CTL_EXIT_ERROR;
	}

	return report_write_output(out, report_emit, &(ReportEmit){&r, fmt, ret});
}
