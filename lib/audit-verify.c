/* audit-verify.c: reading the audit trail — strict record parsing, finding the trail's
 * rotated files, walking records, and verifying the hash chain and the HMAC seals. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

/* Its own header first: the no-allocation parser and the one-pass walk (audit-scan.h,
 * which includes audit.h) are what this file adds below the trail's API. */
#include "audit-scan.h"

#include "audit-json.h"
#include "audit.h"
#include "util.h"

#define SEAL_MAC_SUFFIX_LEN (8 + AUDIT_HASH_HEX_LEN + 2)
#define ZERO_HASH           "0000000000000000000000000000000000000000000000000000000000000000"

/* ---- entries ---- */

AuditEntry *audit_entry_free(AuditEntry *e)
{
	/* audit_entry_parse() allocates the entry and its strings as one block. */
	free(e);
	return NULL;
}

typedef enum FieldKind {
	F_STR,
	F_U64,
	F_EVENT,
	F_RESULT,
	F_UID,
} FieldKind;

enum {
	HAS_SEQ = 1 << 0,
	HAS_TIME = 1 << 1,
	HAS_HOST = 1 << 2,
	HAS_EVENT = 1 << 3,
	HAS_RESULT = 1 << 4,
	HAS_PREV = 1 << 5,
	HAS_FILE_SEQ = 1 << 6,
	HAS_TORN = 1 << 7, /* each torn_* field sets its own bit below */
	HAS_TORN_LEN = 1 << 8,
	HAS_TORN_SHA = 1 << 9,
	HAS_EVERY = 1 << 10,
	HAS_KEY_ID = 1 << 11,
	HAS_MAC = 1 << 12,
	HAS_PREV_FILE = 1 << 13,
	HAS_OTHER = 1 << 14,
	HAS_EPOCH = 1 << 15,
};

#define FIELD(k, kind, member, bit)                                                                \
	{                                                                                          \
		k, sizeof(k) - 1, kind, offsetof(AuditEntry, member), bit                          \
	}

static const struct {
	const char *key;
	size_t key_len;
	FieldKind kind;
	size_t offset;
	unsigned bit;
} entry_fields[] = {
        FIELD("seq", F_U64, seq, HAS_SEQ),
        FIELD("time", F_STR, time, HAS_TIME),
        FIELD("host", F_STR, host, HAS_HOST),
        FIELD("event", F_EVENT, event, HAS_EVENT),
        FIELD("result", F_RESULT, result, HAS_RESULT),
        FIELD("reason", F_STR, reason, HAS_OTHER),
        FIELD("message", F_STR, message, HAS_OTHER),
        FIELD("user", F_STR, user, HAS_OTHER),
        FIELD("uid", F_UID, uid, HAS_OTHER),
        FIELD("service", F_STR, service, HAS_OTHER),
        FIELD("tty", F_STR, tty, HAS_OTHER),
        FIELD("rhost", F_STR, rhost, HAS_OTHER),
        FIELD("cred_label", F_STR, cred_label, HAS_OTHER),
        FIELD("cred_id", F_STR, cred_id, HAS_OTHER),
        FIELD("aaguid", F_STR, aaguid, HAS_OTHER),
        FIELD("device", F_STR, device, HAS_OTHER),
        FIELD("rule", F_STR, rule, HAS_OTHER),
        FIELD("rule_name", F_STR, rule_name, HAS_OTHER),
        FIELD("policy", F_STR, policy, HAS_OTHER),
        FIELD("session", F_STR, session, HAS_OTHER),
        FIELD("action", F_STR, action, HAS_OTHER),
        FIELD("detail", F_STR, detail, HAS_OTHER),
        FIELD("action_seq", F_U64, action_seq, HAS_OTHER),
        FIELD("actor_uid", F_UID, actor_uid, HAS_OTHER),
        FIELD("actor", F_STR, actor, HAS_OTHER),
        FIELD("actor_loginuid", F_UID, actor_loginuid, HAS_OTHER),
        FIELD("actor_login", F_STR, actor_login, HAS_OTHER),
        FIELD("actor_session", F_STR, actor_session, HAS_OTHER),
        FIELD("actor_tty", F_STR, actor_tty, HAS_OTHER),
        FIELD("spooled", F_STR, spooled, HAS_OTHER),
        FIELD("spool_id", F_STR, spool_id, HAS_OTHER),
        FIELD("file_seq", F_U64, file_seq, HAS_FILE_SEQ),
        FIELD("prev_file", F_STR, prev_file, HAS_PREV_FILE),
        FIELD("torn_offset", F_U64, torn_offset, HAS_TORN),
        FIELD("torn_length", F_U64, torn_length, HAS_TORN_LEN),
        FIELD("torn_sha256", F_STR, torn_sha256, HAS_TORN_SHA),
        FIELD("every", F_U64, every, HAS_EVERY),
        FIELD("epoch", F_U64, epoch, HAS_EPOCH),
        FIELD("key_id", F_STR, key_id, HAS_KEY_ID),
        FIELD("mac", F_STR, mac, HAS_MAC),
        FIELD("prev", F_STR, prev, HAS_PREV),
};

/* Without a branch per digit: a digest's digits are random, and a mispredicted branch per
 * digit cost more than the rest of the record's checks. */
static bool is_lower_hex(const char *s, size_t len)
{
	unsigned bad = 0;

	if (!s || strnlen(s, len + 1) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned c = (unsigned char)s[i];
		bad |= (c - '0' > 9u) & (c - 'a' > 5u);
	}
	return !bad;
}

static bool digits(const char *s, size_t n, unsigned *ret)
{
	unsigned v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*ret = v;
	return true;
}

/* parse_rfc3339_ms() for the form the writer uses, "YYYY-MM-DDTHH:MM:SS.mmmZ", without
 * strptime() and timegm(): the same value, -EINVAL for anything else (the caller then asks
 * parse_rfc3339_ms(), which decides). Days past a month's end count on (as timegm() does). */
static int time_fast(const char *s, uint64_t *ret)
{
	unsigned y, mo, d, h, mi, sec, ms;
	int64_t days;
	unsigned yy, era, yoe, doy;

	if (strlen(s) != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	        s[16] != ':' || s[19] != '.' || s[23] != 'Z' || !digits(s, 4, &y) ||
	        !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) || !digits(s + 11, 2, &h) ||
	        !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &sec) || !digits(s + 20, 3, &ms))
		return -EINVAL;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59)
		return -EINVAL;
	/* days from civil (H. Hinnant), linear in the day */
	yy = mo <= 2 ? y - 1 : y;
	era = yy / 400;
	yoe = yy - era * 400;
	doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1;
	days = (int64_t)era * 146097 + (int64_t)(yoe * 365 + yoe / 4 - yoe / 100 + doy) - 719468;
	*ret = ((uint64_t)days * 86400 + h * 3600u + mi * 60u + sec) * 1000 + ms;
	return 0;
}

/* The entry_fields index of KEY, trying HINT (the one after the last hit) first: records
 * list their fields in table order. ELEMENTSOF(entry_fields) when unknown. */
static size_t field_lookup(JsonSlice key, size_t hint)
{
	for (size_t j = 0; j < ELEMENTSOF(entry_fields); j++) {
		size_t c = (hint + j) % ELEMENTSOF(entry_fields);
		if (entry_fields[c].key_len == key.len && entry_fields[c].key[0] == key.p[0] &&
		        memcmp(entry_fields[c].key, key.p, key.len) == 0)
			return c;
	}
	return ELEMENTSOF(entry_fields);
}

/* The value of string table T (N entries) that equals S (NUL-terminated), or -EINVAL. */
static int table_index(const char *(*to_string)(int), int n, const char *s)
{
	for (int i = 0; i < n; i++) {
		const char *t = to_string(i);
		if (t && t[0] == s[0] && streq(t, s))
			return i;
	}
	return -EINVAL;
}

static const char *event_name(int i)
{
	return audit_event_to_string((AuditEvent)i);
}

static const char *result_name(int i)
{
	return audit_result_to_string((AuditResult)i);
}

/* The record checks after all fields were read (HAVE: which). */
static const char *entry_check(AuditEntry *e, unsigned have)
{
	if ((have & (HAS_SEQ | HAS_TIME | HAS_HOST | HAS_EVENT | HAS_RESULT | HAS_PREV)) !=
	        (HAS_SEQ | HAS_TIME | HAS_HOST | HAS_EVENT | HAS_RESULT | HAS_PREV))
		return "a required field (seq, time, host, event, result, prev) is missing";
	if (e->seq == 0)
		return "seq must be positive";
	if (time_fast(e->time, &e->time_ms) < 0 && parse_rfc3339_ms(e->time, &e->time_ms) < 0)
		return "time is not RFC 3339";
	if (!is_lower_hex(e->prev, AUDIT_HASH_HEX_LEN))
		return "prev is not a SHA-256 hex digest";
	if ((e->event == AUDIT_EVENT_SEAL) != ((have & (HAS_EVERY | HAS_KEY_ID | HAS_MAC)) != 0))
		return "seal fields on a record that is not a seal";
	if (e->event == AUDIT_EVENT_SEAL && ((have & (HAS_EVERY | HAS_KEY_ID | HAS_MAC)) !=
	                                                    (HAS_EVERY | HAS_KEY_ID | HAS_MAC) ||
	                                            e->every == 0 || !is_lower_hex(e->key_id, 16) ||
	                                            !is_lower_hex(e->mac, AUDIT_HASH_HEX_LEN)))
		return "seal record lacks a valid every, key_id or mac";
	if ((have & HAS_EPOCH) &&
	        (e->event != AUDIT_EVENT_SEAL || e->epoch == AUDIT_SEAL_EPOCH_NONE))
		return "epoch on a record that is not a seal, or out of range";
	if (e->event != AUDIT_EVENT_ROTATE && (have & (HAS_FILE_SEQ | HAS_PREV_FILE)))
		return "file header fields on a record that is not a file header";
	if (e->event == AUDIT_EVENT_ROTATE && (!(have & HAS_FILE_SEQ) || e->file_seq == 0))
		return "file header lacks file_seq";
	if ((e->event == AUDIT_EVENT_TORN_TAIL) !=
	        ((have & (HAS_TORN | HAS_TORN_LEN | HAS_TORN_SHA)) != 0))
		return "torn-tail fields on a record that is not a torn-tail";
	if (e->event == AUDIT_EVENT_TORN_TAIL &&
	        ((have & (HAS_TORN | HAS_TORN_LEN | HAS_TORN_SHA)) !=
	                        (HAS_TORN | HAS_TORN_LEN | HAS_TORN_SHA) ||
	                e->torn_length == 0 || !is_lower_hex(e->torn_sha256, AUDIT_HASH_HEX_LEN)))
		return "torn-tail record lacks torn_offset, torn_length or torn_sha256";
	return NULL;
}

/* One field into E. Returns NULL or why the record is not acceptable. */
static const char *entry_set(AuditEntry *e, size_t k, const JsonValue *v, char **strings)
{
	void *dst = (char *)e + entry_fields[k].offset;
	char *str;

	if (entry_fields[k].kind == F_U64 || entry_fields[k].kind == F_UID) {
		if (v->type != JSON_UINT)
			return "field must be a number";
		if (entry_fields[k].kind == F_UID) {
			if (v->num >= UINT32_MAX)
				return "uid out of range";
			*(int64_t *)dst = (int64_t)v->num;
		} else
			*(uint64_t *)dst = v->num;
		return NULL;
	}
	if (v->type != JSON_STRING)
		return "field must be a string";
	/* NUL-terminated copy: the bytes of a string value (and its quotes) on the line are
	 * at least its unescaped length + 1, so the arena never overflows. */
	str = *strings;
	memcpy(str, v->str.p, v->str.len);
	str[v->str.len] = '\0';
	*strings += v->str.len + 1;
	if (entry_fields[k].kind == F_EVENT) {
		e->event = table_index(event_name, _AUDIT_EVENT_MAX, str);
		if (e->event < 0)
			return "unknown event";
	} else if (entry_fields[k].kind == F_RESULT) {
		e->result = table_index(result_name, _AUDIT_RESULT_MAX, str);
		if (e->result < 0)
			return "unknown result";
	} else
		*(char **)dst = str;
	return NULL;
}

int audit_entry_parse_into(
        const char *line, size_t len, AuditEntry *e, char *arena, const char **ret_why)
{
	JsonSlice unknown[JSON_FIELDS_MAX]; /* unknown keys: rejected, but duplicates first */
	const char *why = NULL;             /* the first problem with a field (JSON first) */
	char *strings = arena + len;
	uint64_t seen = 0; /* entry_fields bits: duplicates in O(1) per key */
	size_t n_unknown = 0, hint = 0;
	unsigned have = 0;
	JsonScan s;
	JsonSlice key;
	int r;

	if (len > AUDIT_LINE_MAX) {
		why = "line too long";
		goto fail;
	}
	*e = (AuditEntry){
	        .uid = -1,
	        .actor_uid = -1,
	        .actor_loginuid = -1,
	        .epoch = AUDIT_SEAL_EPOCH_NONE,
	        .event = _AUDIT_EVENT_INVALID,
	        .result = _AUDIT_RESULT_INVALID,
	};
	json_scan_init(&s, line, len, arena);
	while ((r = json_scan_key(&s, &key)) > 0) {
		size_t k = field_lookup(key, hint);
		JsonValue v;

		if (k < ELEMENTSOF(entry_fields)) {
			if (seen & (UINT64_C(1) << k)) {
				why = "duplicate key";
				goto fail;
			}
			seen |= UINT64_C(1) << k;
			hint = k + 1;
		} else {
			for (size_t i = 0; i < n_unknown; i++)
				if (unknown[i].len == key.len &&
				        memcmp(unknown[i].p, key.p, key.len) == 0) {
					why = "duplicate key";
					goto fail;
				}
			unknown[n_unknown++] = key;
		}
		r = json_scan_value(&s, &v);
		if (r < 0)
			break;
		if (why)
			continue; /* already refused: only a JSON error could still come first */
		if (k == ELEMENTSOF(entry_fields)) {
			why = "unknown field";
			continue;
		}
		have |= entry_fields[k].bit;
		why = entry_set(e, k, &v, &strings);
	}
	if (r < 0) {
		why = s.why;
		goto fail;
	}
	if (why)
		goto fail;
	why = entry_check(e, have);
	if (why)
		goto fail;
	return 0;
fail:
	if (ret_why)
		*ret_why = why ?: "cannot parse";
	return -EBADMSG;
}

int audit_entry_parse(const char *line, size_t len, AuditEntry **ret, const char **ret_why)
{
	_cleanup_free_ AuditEntry *e = NULL;
	int r;

	if (len > AUDIT_LINE_MAX) {
		if (ret_why)
			*ret_why = "line too long";
		return -EBADMSG;
	}
	/* The entry and its strings in one block (audit_entry_free() frees it). */
	e = malloc(sizeof(*e) + AUDIT_ENTRY_ARENA(len));
	if (!e)
		return -ENOMEM;
	r = audit_entry_parse_into(line, len, e, (char *)(e + 1), ret_why);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(e);
	return 0;
}

/* ---- files ---- */

static int cmp_rotated(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	size_t lx = strlen(x), ly = strlen(y);
	/* Same prefix; longer numeric suffix is the larger number. */
	return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

int audit_trail_files(const char *path, char ***ret)
{
	_cleanup_strv_free_ char **l = NULL;
	_cleanup_free_ char *dir = NULL;
	const char *base, *slash;
	DIR *d;
	struct dirent *de;
	size_t blen;
	int r = 0;

	slash = strrchr(path, '/');
	base = slash ? slash + 1 : path;
	dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
	if (!dir)
		return -ENOMEM;
	blen = strlen(base);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((errno = 0, de = readdir(d))) {
		const char *s = de->d_name;
		_cleanup_free_ char *full = NULL;
		size_t digits = 0;

		if (!strneq(s, base, blen) || s[blen] != '.')
			continue;
		for (s += blen + 1; *s >= '0' && *s <= '9'; s++)
			digits++;
		if (*s != '\0' || digits < 6 || digits > 19)
			continue;
		if (asprintf(&full, "%s/%s", dir, de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		r = strv_extend(&l, full);
		if (r < 0)
			break;
	}
	if (r == 0 && errno != 0)
		r = -errno;
	closedir(d);
	if (r < 0)
		return r;
	if (l)
		qsort(l, strv_length(l), sizeof(char *), cmp_rotated);
	if (access(path, F_OK) == 0 || !l) {
		r = strv_extend(&l, path);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(l);
	return 0;
}

/* Bounded line reading with byte offsets. */
typedef struct LineReader {
	int fd;
	char *buf;
	size_t start, end, cap;
	uint64_t offset; /* file offset of buf[start] */
	bool eof;
} LineReader;

#define READER_CAP (256u * 1024u)

static int reader_open(LineReader *lr, const char *path)
{
	*lr = (LineReader){.fd = -EBADF};
	lr->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (lr->fd < 0)
		return -errno;
	lr->buf = malloc(READER_CAP);
	if (!lr->buf) {
		close(lr->fd);
		return -ENOMEM;
	}
	lr->cap = READER_CAP;
	return 0;
}

static void reader_close(LineReader *lr)
{
	if (lr->fd >= 0)
		close(lr->fd);
	free(lr->buf);
	*lr = (LineReader){.fd = -EBADF};
}

/* Returns 1 with a line (without newline), 0 at end of file, -errno on error. A line
 * longer than AUDIT_LINE_MAX is returned cut, with *ret_too_long set. */
static int reader_next(LineReader *lr, const char **ret, size_t *ret_len, bool *ret_nl,
        uint64_t *ret_off, bool *ret_too_long)
{
	bool too_long = false;
	uint64_t off = lr->offset;

	for (;;) {
		char *nl = memchr(lr->buf + lr->start, '\n', lr->end - lr->start);
		ssize_t n;

		if (nl) {
			size_t len = (size_t)(nl - (lr->buf + lr->start));
			*ret = lr->buf + lr->start;
			*ret_len = too_long ? AUDIT_LINE_MAX : len;
			*ret_nl = true;
			*ret_off = off;
			*ret_too_long = too_long || len > AUDIT_LINE_MAX;
			lr->start += len + 1;
			lr->offset += len + 1;
			return 1;
		}
		if (lr->end - lr->start > AUDIT_LINE_MAX + 1) {
			/* Drop the middle of an overlong line, keep looking for its end. */
			too_long = true;
			lr->offset += lr->end - lr->start;
			lr->start = lr->end;
		}
		if (lr->eof) {
			/* (an overlong last line without its newline is still a line: reported) */
			if (lr->start == lr->end && !too_long)
				return 0;
			*ret = lr->buf + lr->start;
			*ret_len = lr->end - lr->start;
			*ret_nl = false;
			*ret_off = off;
			*ret_too_long = too_long;
			lr->offset += lr->end - lr->start;
			lr->start = lr->end;
			return 1;
		}
		if (lr->start > 0) {
			memmove(lr->buf, lr->buf + lr->start, lr->end - lr->start);
			lr->end -= lr->start;
			lr->start = 0;
		}
		n = read(lr->fd, lr->buf + lr->end, lr->cap - lr->end);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			lr->eof = true;
		lr->end += (size_t)n;
	}
}

/* The records of a walk: one parse per line into a reused entry and arena. */
typedef struct Walk {
	AuditEntryFn cb;
	void *userdata;
	uint64_t bad;
	AuditEntry e;
	char *arena; /* AUDIT_ENTRY_ARENA(AUDIT_LINE_MAX) */
} Walk;

/* Parses LINE into w->e; calls the callback when it is a record. Returns 1 when parsed, 0
 * when not (*ret_why says why), or the callback's error. */
static int walk_line(Walk *w, const char *file, uint64_t lineno, const char *line, size_t len,
        bool too_long, const char **ret_why)
{
	int r;

	if (too_long || audit_entry_parse_into(line, len, &w->e, w->arena, ret_why) < 0) {
		w->bad++;
		return 0;
	}
	if (w->cb) {
		r = w->cb(&w->e, file, lineno, w->userdata);
		if (r < 0)
			return r;
	}
	return 1;
}

int audit_read_files(char *const *files, AuditEntryFn cb, void *userdata, uint64_t *ret_bad)
{
	_cleanup_free_ char *arena = malloc(AUDIT_ENTRY_ARENA(AUDIT_LINE_MAX));
	Walk w = {.cb = cb, .userdata = userdata, .arena = arena};
	int r = 0;

	if (!arena)
		return -ENOMEM;
	for (size_t i = 0; files && files[i]; i++) {
		LineReader lr;
		uint64_t lineno = 0;

		r = reader_open(&lr, files[i]);
		if (r < 0)
			return r;
		for (;;) {
			const char *line, *why;
			size_t len;
			bool nl, too_long;
			uint64_t off;

			r = reader_next(&lr, &line, &len, &nl, &off, &too_long);
			if (r <= 0)
				break;
			lineno++;
			r = walk_line(&w, files[i], lineno, line, len, too_long, &why);
			if (r < 0)
				break;
		}
		reader_close(&lr);
		if (r < 0)
			return r;
	}
	if (ret_bad)
		*ret_bad = w.bad;
	return 0;
}

/* ---- verification ---- */

static const char *const verify_status_table[_AUDIT_VERIFY_STATUS_MAX] = {
        [AUDIT_VERIFY_INTACT] = "intact",
        [AUDIT_VERIFY_MALFORMED] = "malformed",
        [AUDIT_VERIFY_EDITED] = "edited",
        [AUDIT_VERIFY_DELETED] = "deleted",
        [AUDIT_VERIFY_REORDERED] = "reordered",
        [AUDIT_VERIFY_TRUNCATED] = "truncated",
        [AUDIT_VERIFY_FORGED_SEAL] = "forged-seal",
        [AUDIT_VERIFY_WRONG_KEY] = "wrong-key",
        [AUDIT_VERIFY_MISSING_SEAL] = "missing-seal",
        [AUDIT_VERIFY_FILE_GAP] = "file-gap",
        [AUDIT_VERIFY_ROLLBACK] = "rollback",
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(audit_verify_status, AuditVerifyStatus, verify_status_table)

void audit_verify_result_clear(AuditVerifyResult *r)
{
	if (!r)
		return;
	free(r->file);
	free(r->message);
	*r = (AuditVerifyResult){};
}

/* Where we are in the chain. */
typedef struct ChainState {
	bool started;
	char hash[AUDIT_HASH_HEX_LEN + 1]; /* hash of the last accepted line */
	uint64_t seq;
	uint64_t unsealed;
	uint64_t every;      /* interval announced by the last seal (0: none yet) */
	uint64_t last_epoch; /* epoch of the last forward-secure seal (NONE: none yet) */
} ChainState;

typedef struct Verifier {
	const AuditVerifyOptions *opts;
	AuditVerifyResult *res;
	char key_id[17];
	ChainState st;
	/* The line just accepted, and the state before it (a torn-tail may rewind it). */
	ChainState before_last;
	const char *last_file;
	uint64_t last_line, last_off, last_len;
	char last_frag_sha[AUDIT_HASH_HEX_LEN + 1]; /* sha256 of that line + "\n" */
	uint64_t last_seal_line;
	bool last_is_seal;
	/* A line that did not parse, waiting for its torn-tail acknowledgement. */
	bool frag;
	uint64_t frag_line, frag_off, frag_len;
	char frag_sha[AUDIT_HASH_HEX_LEN + 1];
	const char *frag_why;
	/* A forward jump in seq, classified by the next line (deleted vs reordered). */
	bool jump;
	const char *jump_file;
	uint64_t jump_line, jump_from, jump_to;
	uint64_t file_seq;
	/* forward-secure seals: the key of the last epoch, derived from k_0 */
	AuditSealKey epoch_key;
	bool have_epoch_key;
	char chain_id[17];
	/* anchors sorted by seq; the next one not yet reached */
	AuditAnchor *anchors;
	size_t n_anchors, next_anchor;
	uint64_t anchor_epoch_floor; /* epoch of the last anchored seal passed (NONE: none) */
	uint64_t anchor_floor_seq;
	char *fragbuf;
	char *lastbuf; /* copy of the last accepted line */
	/* the file being read: seals in it, and whether its line 1 was a file header */
	uint64_t file_seals;
	bool file_header;
	/* the chain hash of the line being checked, computed by the pipeline's reading
	 * thread (NULL: check_entry() computes it) */
	const char *line_hash;
} Verifier;

static int fail(Verifier *v, AuditVerifyStatus status, const char *file, uint64_t line,
        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail(Verifier *v, AuditVerifyStatus status, const char *file, uint64_t line,
        const char *fmt, ...)
{
	va_list ap;
	char *m = NULL;

	if (v->res->status != AUDIT_VERIFY_INTACT)
		return 1; /* keep the first problem */
	va_start(ap, fmt);
	if (vasprintf(&m, fmt, ap) < 0)
		m = NULL;
	va_end(ap);
	v->res->status = status;
	v->res->file = file ? strdup(file) : NULL;
	v->res->line = line;
	v->res->message = m;
	return 1;
}

static int hash_with_newline(
        Verifier *v, const char *line, size_t len, char out[static AUDIT_HASH_HEX_LEN + 1])
{
	memcpy(v->fragbuf, line, len);
	v->fragbuf[len] = '\n';
	return audit_line_hash(v->fragbuf, len + 1, out);
}

/* The MAC at the end of a canonical seal line, checked with KEY. */
static int check_seal_mac(Verifier *v, const AuditEntry *e, const char *file, uint64_t line,
        const char *raw, size_t len, const uint8_t *key)
{
	char mac[AUDIT_HASH_HEX_LEN + 1];
	int r;

	if (len < SEAL_MAC_SUFFIX_LEN ||
	        !strneq(raw + len - SEAL_MAC_SUFFIX_LEN, ",\"mac\":\"", 8) ||
	        !strneq(raw + len - SEAL_MAC_SUFFIX_LEN + 8, e->mac, AUDIT_HASH_HEX_LEN))
		return fail(v, AUDIT_VERIFY_FORGED_SEAL, file, line,
		        "seal is not in canonical form (mac must be last)");
	r = audit_seal_mac(key, raw, len - SEAL_MAC_SUFFIX_LEN, mac);
	if (r < 0)
		return r;
	if (memcmp_const(mac, e->mac, AUDIT_HASH_HEX_LEN) != 0)
		return fail(v, AUDIT_VERIFY_FORGED_SEAL, file, line,
		        "seal of epoch %" PRIu64 " does not verify with the key derived from the "
		        "verification key: records before it (after the seal at line %" PRIu64
		        ") were edited and re-sealed, or this seal was forged (by someone "
		        "holding a later seal key)",
		        e->epoch, v->last_seal_line);
	return 0;
}

/* A forward-secure seal: epochs only go up; with k_0 its MAC is checked with k_epoch. */
static int check_epoch_seal(Verifier *v, const AuditEntry *e, const char *file, uint64_t line,
        const char *raw, size_t len)
{
	const AuditSealKey *k0 = v->opts->verification_key;
	int r;

	/* The writer evolves the key after every seal and catches up at open, so epochs
	 * count up by one. A jump is what someone holding a later key must make to re-seal
	 * earlier records; going back or repeating is a key used twice. */
	if (v->st.last_epoch != AUDIT_SEAL_EPOCH_NONE && e->epoch <= v->st.last_epoch)
		return fail(v, AUDIT_VERIFY_FORGED_SEAL, file, line,
		        "seal epoch %" PRIu64 " does not follow epoch %" PRIu64
		        ": each seal key is used once, so this seal was made again or forged",
		        e->epoch, v->st.last_epoch);
	if (v->st.last_epoch != AUDIT_SEAL_EPOCH_NONE && e->epoch != v->st.last_epoch + 1)
		return fail(v, AUDIT_VERIFY_FORGED_SEAL, file, line,
		        "seal epoch jumps from %" PRIu64 " to %" PRIu64
		        ": the records since the seal at line %" PRIu64
		        " were re-sealed with a later key (the one root holds now)",
		        v->st.last_epoch, e->epoch, v->last_seal_line);
	if (v->st.last_epoch == AUDIT_SEAL_EPOCH_NONE && v->res->first_file_seq == 1 &&
	        e->epoch != 0)
		return fail(v, AUDIT_VERIFY_FORGED_SEAL, file, line,
		        "the trail's first seal has epoch %" PRIu64
		        ", not 0: the trail was rewritten from its start with a later key",
		        e->epoch);
	v->st.last_epoch = e->epoch;
	v->res->epoch_seals++;
	if (!k0) {
		v->res->seals_unproven++;
		return 0;
	}
	if (!streq(e->key_id, k0->key_id))
		return fail(v, AUDIT_VERIFY_WRONG_KEY, file, line,
		        "seal made with the key chain %s, not with the given verification key %s "
		        "(wrong --verification-key, or seals forged with another key)",
		        e->key_id, k0->key_id);
	if (!v->have_epoch_key || v->epoch_key.epoch > e->epoch) {
		r = audit_seal_key_derive(k0, e->epoch, &v->epoch_key);
		v->have_epoch_key = true;
	} else
		r = audit_seal_key_derive(&v->epoch_key, e->epoch, &v->epoch_key);
	if (r < 0)
		return r;
	r = check_seal_mac(v, e, file, line, raw, len, v->epoch_key.key);
	if (r != 0)
		return r;
	v->res->seals_proven++;
	return 0;
}

/* The record continues the chain (seq, prev) and, if a seal, verifies. */
static int check_link_and_seal(Verifier *v, const AuditEntry *e, const char *file, uint64_t line,
        const char *raw, size_t len, bool first_in_file)
{
	int r;

	if (e->seq <= v->st.seq)
		return fail(v, AUDIT_VERIFY_REORDERED, file, line,
		        "sequence goes back from %" PRIu64 " to %" PRIu64
		        ": records reordered or duplicated",
		        v->st.seq, e->seq);
	if (!streq(e->prev, v->st.hash)) {
		if (first_in_file)
			return fail(v, AUDIT_VERIFY_FILE_GAP, file, line,
			        "this file does not continue the previous file (its prev is not "
			        "the hash of %s's last line)",
			        strna(v->last_file));
		return fail(v, AUDIT_VERIFY_EDITED, v->last_file, v->last_line,
		        "record changed after it was written (line %" PRIu64
		        " of %s holds a different hash for it)",
		        line, file);
	}

	if (e->event == AUDIT_EVENT_SEAL && e->epoch != AUDIT_SEAL_EPOCH_NONE) {
		r = check_epoch_seal(v, e, file, line, raw, len);
		if (r != 0)
			return r;
	} else if (e->event == AUDIT_EVENT_SEAL && v->st.last_epoch != AUDIT_SEAL_EPOCH_NONE) {
		return fail(v, AUDIT_VERIFY_FORGED_SEAL, file, line,
		        "a seal without an epoch after forward-secure seals: seals were rewritten "
		        "to escape the verification key");
	} else if (e->event == AUDIT_EVENT_SEAL && !v->opts->key)
		v->res->seals_unproven++;
	if (e->event == AUDIT_EVENT_SEAL) {
		if (v->opts->key && e->epoch == AUDIT_SEAL_EPOCH_NONE) {
			char mac[AUDIT_HASH_HEX_LEN + 1];

			if (!streq(e->key_id, v->key_id))
				return fail(v, AUDIT_VERIFY_WRONG_KEY, file, line,
				        "seal made with key %s, not with the given key %s (wrong "
				        "--key, or seals forged with another key)",
				        e->key_id, v->key_id);
			if (len < SEAL_MAC_SUFFIX_LEN ||
			        !strneq(raw + len - SEAL_MAC_SUFFIX_LEN, ",\"mac\":\"", 8) ||
			        !strneq(raw + len - SEAL_MAC_SUFFIX_LEN + 8, e->mac,
			                AUDIT_HASH_HEX_LEN))
				return fail(v, AUDIT_VERIFY_FORGED_SEAL, file, line,
				        "seal is not in canonical form (mac must be last)");
			r = audit_seal_mac(v->opts->key, raw, len - SEAL_MAC_SUFFIX_LEN, mac);
			if (r < 0)
				return r;
			if (memcmp_const(mac, e->mac, AUDIT_HASH_HEX_LEN) != 0) {
				if (v->last_seal_line > 0)
					return fail(v, AUDIT_VERIFY_FORGED_SEAL, file, line,
					        "seal does not verify: records after the seal at "
					        "line %" PRIu64
					        " of this trail were rewritten with recomputed "
					        "hashes, or this seal was forged",
					        v->last_seal_line);
				return fail(v, AUDIT_VERIFY_FORGED_SEAL, file, line,
				        "seal does not verify: the records before it were "
				        "rewritten with recomputed hashes, or this seal was "
				        "forged");
			}
			v->res->seals_proven++;
		}
		v->res->seals++;
		v->st.unsealed = 0;
		v->st.every = e->every;
		v->last_seal_line = line;
	} else {
		v->st.unsealed++;
		if (v->st.every > 0 && v->st.unsealed > v->st.every)
			return fail(v, AUDIT_VERIFY_MISSING_SEAL, file, line,
			        "%" PRIu64
			        " records without a seal, but the trail seals every %" PRIu64
			        ": a seal was removed",
			        v->st.unsealed, v->st.every);
	}

	return 0;
}

/* An anchor of another key chain (the same host's trail before setup-keys started it
 * over, say) proves nothing about this one. The chain is the verification key's (or the
 * legacy key's) when given, else that of the trail's first seal. */
static bool anchor_other_chain(const Verifier *v, const AuditAnchor *a)
{
	return a->key_id[0] && v->chain_id[0] && !streq(a->key_id, v->chain_id);
}

/* An anchored seq must be this very seal; epochs after an anchored seal stay above its. */
static int check_anchors(
        Verifier *v, const AuditEntry *e, const char *file, uint64_t line, const char *hash)
{
	if (e->event == AUDIT_EVENT_SEAL && !v->chain_id[0] && e->key_id)
		snprintf(v->chain_id, sizeof(v->chain_id), "%s", e->key_id);
	while (v->next_anchor < v->n_anchors) {
		const AuditAnchor *a = &v->anchors[v->next_anchor];

		if (a->seq > e->seq)
			break;
		v->next_anchor++;
		if (anchor_other_chain(v, a)) {
			v->res->anchors_other_chain++;
			continue;
		}
		if (a->seq < e->seq) {
			v->res->anchors_before++; /* before the first file given */
			continue;
		}
		if (e->event != AUDIT_EVENT_SEAL || !streq(a->hash, hash))
			return fail(v, AUDIT_VERIFY_ROLLBACK, file, line,
			        "the anchor of seal seq %" PRIu64 " (hash %.16s...) does not match "
			        "this record: the trail was replaced by another history (an older "
			        "copy restored and continued, or rewritten)",
			        a->seq, a->hash);
		v->res->anchors_matched++;
		if (a->epoch != AUDIT_SEAL_EPOCH_NONE) {
			v->anchor_epoch_floor = a->epoch;
			v->anchor_floor_seq = a->seq;
		}
	}
	if (e->event == AUDIT_EVENT_SEAL && e->epoch != AUDIT_SEAL_EPOCH_NONE &&
	        v->anchor_epoch_floor != AUDIT_SEAL_EPOCH_NONE && e->seq > v->anchor_floor_seq &&
	        e->epoch <= v->anchor_epoch_floor)
		return fail(v, AUDIT_VERIFY_ROLLBACK, file, line,
		        "seal epoch %" PRIu64 " comes after the anchored seal of epoch %" PRIu64
		        ": the epoch went back, the key file was restored from an older copy",
		        e->epoch, v->anchor_epoch_floor);
	return 0;
}

/* Checks one parsed record against the chain. Returns 1 when a problem was recorded. */
static int check_entry(Verifier *v, const AuditEntry *e, const char *file, uint64_t line,
        const char *raw, size_t len, bool first_in_file, bool first_file)
{
	char hash[AUDIT_HASH_HEX_LEN + 1];
	int r;

	/* A pending forward jump is classified by this line. */
	if (v->jump) {
		v->jump = false;
		if (e->seq < v->jump_to && e->seq > v->jump_from)
			return fail(v, AUDIT_VERIFY_REORDERED, v->jump_file, v->jump_line,
			        "record seq %" PRIu64 " appears before seq %" PRIu64
			        ": records were reordered",
			        v->jump_to, e->seq);
		return fail(v, AUDIT_VERIFY_DELETED, v->jump_file, v->jump_line,
		        "sequence jumps from %" PRIu64 " to %" PRIu64 ": %" PRIu64
		        " record(s) before this line were deleted",
		        v->jump_from, v->jump_to, v->jump_to - v->jump_from - 1);
	}

	if (first_in_file != (e->event == AUDIT_EVENT_ROTATE)) {
		if (first_in_file)
			return fail(v, first_file ? AUDIT_VERIFY_TRUNCATED : AUDIT_VERIFY_FILE_GAP,
			        file, line,
			        "the file does not start with its file header (rotate record): its "
			        "beginning was removed");
		return fail(v, AUDIT_VERIFY_MALFORMED, file, line,
		        "a file header (rotate record) in the middle of a file");
	}
	if (first_in_file) {
		if (!v->st.started) {
			v->res->first_seq = e->seq;
			v->res->first_file_seq = e->file_seq;
			if (e->file_seq == 1 && (e->seq != 1 || !streq(e->prev, ZERO_HASH)))
				return fail(v, AUDIT_VERIFY_FORGED_SEAL, file, line,
				        "the genesis file header must have seq 1 and an all-zero "
				        "prev");
			/* Not the genesis file: its prev anchors to files not given here. */
			memcpy(v->st.hash, e->prev, sizeof(v->st.hash));
			v->st.seq = e->seq - 1;
			v->st.started = true;
		} else if (e->file_seq != v->file_seq + 1)
			return fail(v, AUDIT_VERIFY_FILE_GAP, file, line,
			        "file sequence %" PRIu64 " follows %" PRIu64 ": %s", e->file_seq,
			        v->file_seq,
			        e->file_seq > v->file_seq + 1 ? "a rotated file is missing"
			                                      : "files out of order or repeated");
		v->file_seq = e->file_seq;
	}

	if (e->seq > v->st.seq + 1) {
		/* Decided by the next line (deleted or reordered); this line becomes the head. */
		v->jump = true;
		v->jump_file = file;
		v->jump_line = line;
		v->jump_from = v->st.seq;
		v->jump_to = e->seq;
	} else {
		r = check_link_and_seal(v, e, file, line, raw, len, first_in_file);
		if (r != 0)
			return r;
	}

	if (v->line_hash)
		memcpy(hash, v->line_hash, sizeof(hash));
	else {
		r = audit_line_hash(raw, len, hash);
		if (r < 0)
			return r;
	}
	memcpy(v->st.hash, hash, sizeof(hash));
	v->st.seq = e->seq;
	if (e->event == AUDIT_EVENT_SEAL) {
		v->res->last_seal_seq = e->seq;
		v->res->last_seal_epoch = e->epoch;
		v->res->last_seal_file_seq = v->file_seq;
		memcpy(v->res->last_seal_hash, hash, sizeof(hash));
		snprintf(v->res->last_seal_host, sizeof(v->res->last_seal_host), "%s",
		        strempty(e->host));
		snprintf(v->res->last_seal_key_id, sizeof(v->res->last_seal_key_id), "%s",
		        strempty(e->key_id));
	}
	return check_anchors(v, e, file, line, hash);
}

/* One line of FILE against the chain: E is its record (NULL when it did not parse, WHY
 * says why). Returns 0, 1 when a problem was recorded, or -errno. */
static int verify_line(Verifier *v, const AuditEntry *e, const char *why, const char *file,
        uint64_t lineno, const char *line, size_t len, bool nl, bool too_long, uint64_t off,
        bool first_file)
{
	ChainState saved;
	int r;

	v->res->records++;
	if (too_long)
		return fail(v, AUDIT_VERIFY_MALFORMED, file, lineno, "line longer than %u bytes",
		        AUDIT_LINE_MAX);
	if (!nl)
		return fail(v, AUDIT_VERIFY_TRUNCATED, file, lineno,
		        "the last record is incomplete: the file was cut, or the daemon crashed "
		        "while writing and has not restarted since (it records a torn-tail then)");
	if (!e) {
		if (v->frag || lineno == 1)
			return fail(v, AUDIT_VERIFY_MALFORMED, file,
			        v->frag ? v->frag_line : lineno, "not a valid record: %s",
			        v->frag ? v->frag_why : why);
		v->frag = true;
		v->frag_line = lineno;
		v->frag_off = off;
		v->frag_len = len + 1;
		v->frag_why = why;
		v->res->records--;
		return hash_with_newline(v, line, len, v->frag_sha);
	}

	if (e->event == AUDIT_EVENT_TORN_TAIL) {
		bool ok;
		if (v->frag)
			ok = e->torn_offset == v->frag_off && e->torn_length == v->frag_len &&
			     streq(e->torn_sha256, v->frag_sha);
		else {
			/* The torn line happened to parse: it is the line just accepted. */
			ok = lineno > 2 && e->torn_offset == v->last_off &&
			     e->torn_length == v->last_len &&
			     hash_with_newline(v, v->lastbuf, v->last_len - 1, v->last_frag_sha) >=
			             0 &&
			     streq(e->torn_sha256, v->last_frag_sha);
			if (ok) {
				v->st = v->before_last;
				v->res->records--;
				if (v->last_is_seal)
					v->res->seals--;
			}
		}
		if (!ok)
			return fail(v, AUDIT_VERIFY_MALFORMED, file,
			        v->frag ? v->frag_line : lineno,
			        v->frag ? "not a valid record, and the torn-tail record after it "
			                  "does not describe it"
			                : "torn-tail record does not describe the line before it");
		v->res->torn_acknowledged++;
		v->frag = false;
	} else if (v->frag)
		return fail(v, AUDIT_VERIFY_MALFORMED, file, v->frag_line, "not a valid record: %s",
		        v->frag_why);

	saved = v->st;
	r = check_entry(v, e, file, lineno, line, len, lineno == 1, first_file);
	if (r != 0)
		return r;
	if (lineno == 1)
		v->file_header = true;
	if (e->event == AUDIT_EVENT_SEAL)
		v->file_seals++;
	else if (v->file_header && lineno == 2)
		return fail(v, AUDIT_VERIFY_MISSING_SEAL, file, lineno,
		        "the record after the file header must be a seal: the file was rewritten "
		        "from its start");
	v->before_last = saved;
	v->last_file = file;
	v->last_line = lineno;
	v->last_off = off;
	v->last_len = len + 1;
	v->last_is_seal = e->event == AUDIT_EVENT_SEAL;
	/* Kept for a torn-tail that may describe this line (hashed only then). */
	memcpy(v->lastbuf, line, len);
	return 0;
}

/* ---- two threads: the reading thread hashes, the calling thread parses and checks ---- */

/* Verifying is the strict parse of every line and the SHA-256 of every line (the chain
 * hashes, which depend on the line's bytes only). From PIPE_MIN_BYTES on, a thread reads
 * the file with the same LineReader, copies the lines into chunks of about CHUNK_BYTES
 * and hashes each, while the calling thread parses and checks the chunk before: the checks,
 * their order and the read errors are those of reader_next() in one thread; only where a
 * line's chain hash comes from changes. */
static uint64_t pipe_min_bytes = 4u << 20;
static size_t pipe_chunk_bytes = 2u << 20;

void audit_verify_pipeline_tune(uint64_t min_bytes, size_t chunk_bytes)
{
	pipe_min_bytes = min_bytes;
	pipe_chunk_bytes = chunk_bytes > 0 ? chunk_bytes : 1;
}

#define PIPE_SLOTS 3
#define PIPE_LINES 8192u /* lines per chunk at most (empty lines take no bytes) */

typedef struct PipeLine {
	size_t pos; /* in Chunk.data */
	size_t len;
	uint64_t off;
	bool nl, too_long, hashed;
	char hash[AUDIT_HASH_HEX_LEN + 1];
} PipeLine;

typedef struct Chunk {
	char *data; /* chunk_bytes + READER_CAP: reader_next() lines are READER_CAP at most */
	PipeLine *lines;
	size_t used, n_lines;
	int end; /* after these lines: 0 more, 1 end of file, -errno reading failed */
} Chunk;

typedef struct Pipe {
	pthread_mutex_t lock;
	pthread_cond_t filled, freed;
	LineReader *lr; /* the reading thread's alone while it runs */
	size_t chunk_bytes;
	Chunk slots[PIPE_SLOTS];
	uint64_t n_filled, n_taken; /* chunks handed over, chunks given back */
	bool stop;
	/* the calling thread's: the chunk it reads and the next line in it */
	Chunk *cur;
	size_t next;
	pthread_t thread;
} Pipe;

/* Fills C from the reader: whole lines until the chunk is full or the file ends. */
static void pipe_fill(Pipe *p, Chunk *c)
{
	c->used = c->n_lines = 0;
	c->end = 0;
	while (c->used < p->chunk_bytes && c->n_lines < PIPE_LINES) {
		const char *line;
		size_t len;
		bool nl, too_long;
		uint64_t off;
		PipeLine *l;
		int r;

		r = reader_next(p->lr, &line, &len, &nl, &off, &too_long);
		if (r <= 0) {
			c->end = r < 0 ? r : 1;
			return;
		}
		l = &c->lines[c->n_lines++];
		*l = (PipeLine){
		        .pos = c->used, .len = len, .off = off, .nl = nl, .too_long = too_long};
		memcpy(c->data + c->used, line, len);
		c->used += len;
		/* Only a whole line can be accepted into the chain (verify_line()); when the
		 * hash fails, the checking thread computes it and gets the error itself. */
		if (nl && !too_long)
			l->hashed = audit_line_hash(c->data + l->pos, len, l->hash) >= 0;
	}
}

static void *pipe_thread(void *userdata)
{
	Pipe *p = userdata;

	for (uint64_t k = 0;; k++) {
		Chunk *c = &p->slots[k % PIPE_SLOTS];
		bool stop;

		pthread_mutex_lock(&p->lock);
		while (!p->stop && p->n_filled - p->n_taken == PIPE_SLOTS)
			pthread_cond_wait(&p->freed, &p->lock);
		stop = p->stop;
		pthread_mutex_unlock(&p->lock);
		if (stop)
			return NULL;
		pipe_fill(p, c);
		pthread_mutex_lock(&p->lock);
		p->n_filled++;
		pthread_cond_signal(&p->filled);
		pthread_mutex_unlock(&p->lock);
		if (c->end != 0)
			return NULL;
	}
}

static void pipe_free(Pipe *p)
{
	for (size_t i = 0; i < PIPE_SLOTS; i++) {
		free(p->slots[i].data);
		free(p->slots[i].lines);
	}
	free(p);
}

/* A pipe reading LR (opened, nothing read yet), or NULL: the file is small, or memory or
 * a thread is missing, and the caller reads LR itself. */
static Pipe *pipe_start(LineReader *lr)
{
	struct stat st;
	Pipe *p;

	if (pipe_min_bytes == UINT64_MAX || fstat(lr->fd, &st) < 0 ||
	        (uint64_t)st.st_size < pipe_min_bytes)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->lr = lr;
	p->chunk_bytes = pipe_chunk_bytes;
	for (size_t i = 0; i < PIPE_SLOTS; i++) {
		p->slots[i].data = malloc(p->chunk_bytes + READER_CAP);
		p->slots[i].lines = malloc(PIPE_LINES * sizeof(PipeLine));
		if (!p->slots[i].data || !p->slots[i].lines) {
			pipe_free(p);
			return NULL;
		}
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->filled, NULL);
	pthread_cond_init(&p->freed, NULL);
	if (pthread_create(&p->thread, NULL, pipe_thread, p) != 0) {
		pthread_cond_destroy(&p->freed);
		pthread_cond_destroy(&p->filled);
		pthread_mutex_destroy(&p->lock);
		pipe_free(p);
		return NULL;
	}
	return p;
}

/* Stops the reading thread (it may be ahead) and frees the pipe. */
static void pipe_stop(Pipe *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->freed);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->freed);
	pthread_cond_destroy(&p->filled);
	pthread_mutex_destroy(&p->lock);
	pipe_free(p);
}

/* reader_next() through the pipe, and the line's chain hash when the reading thread has
 * it (*RET_HASH NULL otherwise). */
static int pipe_next(Pipe *p, const char **ret, size_t *ret_len, bool *ret_nl, uint64_t *ret_off,
        bool *ret_too_long, const char **ret_hash)
{
	const PipeLine *l;

	while (!p->cur || p->next == p->cur->n_lines) {
		if (p->cur && p->cur->end != 0)
			return p->cur->end < 0 ? p->cur->end : 0;
		pthread_mutex_lock(&p->lock);
		if (p->cur) {
			p->n_taken++;
			pthread_cond_signal(&p->freed);
		}
		while (p->n_filled == p->n_taken)
			pthread_cond_wait(&p->filled, &p->lock);
		pthread_mutex_unlock(&p->lock);
		p->cur = &p->slots[p->n_taken % PIPE_SLOTS];
		p->next = 0;
	}
	l = &p->cur->lines[p->next++];
	*ret = p->cur->data + l->pos;
	*ret_len = l->len;
	*ret_nl = l->nl;
	*ret_off = l->off;
	*ret_too_long = l->too_long;
	*ret_hash = l->hashed ? l->hash : NULL;
	return 1;
}

/* Verifies FILE (while the trail is intact so far) and hands its records to the walk. */
static int verify_file(Verifier *v, Walk *w, const char *file, bool first_file, bool last_file)
{
	bool checking = v->res->status == AUDIT_VERIFY_INTACT;
	uint64_t lineno = 0;
	LineReader lr;
	Pipe *p;
	int r;

	r = reader_open(&lr, file);
	if (r < 0)
		return r;
	p = checking ? pipe_start(&lr) : NULL; /* without a verdict to make, no hashes */
	v->frag = false;
	v->last_is_seal = false;
	v->file_seals = 0;
	v->file_header = false;
	for (;;) {
		const char *line, *why = NULL, *hash = NULL;
		size_t len;
		bool nl, too_long;
		uint64_t off;
		int parsed;

		if (p)
			r = pipe_next(p, &line, &len, &nl, &off, &too_long, &hash);
		else
			r = reader_next(&lr, &line, &len, &nl, &off, &too_long);
		if (r < 0)
			goto out;
		if (r == 0)
			break;
		lineno++;
		parsed = walk_line(w, file, lineno, line, len, too_long, &why);
		if (parsed < 0) {
			r = parsed;
			goto out;
		}
		if (!checking)
			continue;
		v->line_hash = hash;
		r = verify_line(v, parsed ? &w->e : NULL, why, file, lineno, line, len, nl,
		        too_long, off, first_file);
		v->line_hash = NULL;
		if (r < 0)
			goto out;
		if (r > 0) {
			/* The verdict is made; the walk goes on for the callback only. */
			checking = false;
			if (!w->cb)
				break;
		}
	}
	r = 0;
	if (!checking)
		goto out;
	if (v->jump) {
		v->jump = false;
		r = fail(v, AUDIT_VERIFY_DELETED, v->jump_file, v->jump_line,
		        "sequence jumps from %" PRIu64 " to %" PRIu64 ": %" PRIu64
		        " record(s) before this line were deleted",
		        v->jump_from, v->jump_to, v->jump_to - v->jump_from - 1);
	} else if (v->frag)
		r = fail(v, AUDIT_VERIFY_MALFORMED, file, v->frag_line,
		        "not a valid record: %s (a crash-torn line is acknowledged by a torn-tail "
		        "record when the daemon restarts)",
		        v->frag_why);
	else if (lineno == 0)
		r = fail(v, AUDIT_VERIFY_TRUNCATED, file, 0, "the file is empty");
	else if (v->file_seals == 0)
		r = fail(v, AUDIT_VERIFY_MISSING_SEAL, file, lineno, "the file holds no seal");
	else if (!last_file && !v->last_is_seal)
		r = fail(v, AUDIT_VERIFY_TRUNCATED, file, lineno,
		        "a rotated file must end with its closing seal: records after line %" PRIu64
		        " were removed",
		        lineno);
	else if (last_file && v->opts->strict && !v->last_is_seal)
		r = fail(v, AUDIT_VERIFY_TRUNCATED, file, lineno,
		        "the trail does not end with a seal (strict): records after the last seal "
		        "are unprotected, the tail may have been cut");
out:
	pipe_stop(p);
	reader_close(&lr);
	if (r < 0 && !v->res->file)
		v->res->file = strdup(file);
	return r < 0 ? r : 0;
}

static int cmp_anchor(const void *a, const void *b)
{
	const AuditAnchor *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int audit_verify_read_files(char *const *files, const AuditVerifyOptions *opts,
        AuditVerifyResult *ret, AuditEntryFn cb, void *userdata, uint64_t *ret_bad)
{
	AuditVerifyOptions def = {};
	Verifier v = {};
	Walk w = {.cb = cb, .userdata = userdata};
	size_t n = strv_length(files);
	int r = 0;

	if (!ret || n == 0)
		return -EINVAL;
	*ret = (AuditVerifyResult){};
	v.opts = opts ?: &def;
	v.res = ret;
	v.st.last_epoch = v.anchor_epoch_floor = AUDIT_SEAL_EPOCH_NONE;
	if (v.opts->verification_key && v.opts->verification_key->epoch != 0)
		return -EINVAL; /* only k_0 proves every epoch */
	if (v.opts->n_anchors > 0) {
		v.anchors = malloc(v.opts->n_anchors * sizeof(AuditAnchor));
		if (!v.anchors)
			return -ENOMEM;
		memcpy(v.anchors, v.opts->anchors, v.opts->n_anchors * sizeof(AuditAnchor));
		v.n_anchors = v.opts->n_anchors;
		qsort(v.anchors, v.n_anchors, sizeof(AuditAnchor), cmp_anchor);
	}
	v.fragbuf = malloc(AUDIT_LINE_MAX + 2);
	v.lastbuf = malloc(AUDIT_LINE_MAX + 2);
	w.arena = malloc(AUDIT_ENTRY_ARENA(AUDIT_LINE_MAX));
	if (!v.fragbuf || !v.lastbuf || !w.arena) {
		r = -ENOMEM;
		goto out;
	}
	if (v.opts->key) {
		r = audit_seal_key_id(v.opts->key, v.key_id);
		if (r < 0)
			goto out;
	}
	if (v.opts->verification_key)
		snprintf(v.chain_id, sizeof(v.chain_id), "%s", v.opts->verification_key->key_id);
	else if (v.opts->key)
		memcpy(v.chain_id, v.key_id, sizeof(v.chain_id));
	for (size_t i = 0; i < n && (cb || ret->status == AUDIT_VERIFY_INTACT); i++) {
		if (ret->status == AUDIT_VERIFY_INTACT)
			ret->files++;
		r = verify_file(&v, &w, files[i], i == 0, i == n - 1);
		if (r < 0) {
			if (!ret->file)
				ret->file = strdup(files[i]);
			goto out;
		}
	}
	ret->last_seq = v.st.seq;
	ret->unsealed_tail = v.st.unsealed;
	/* The last anchor of this chain beyond the end of the trail, if any. */
	while (v.n_anchors > v.next_anchor && anchor_other_chain(&v, &v.anchors[v.n_anchors - 1])) {
		ret->anchors_other_chain++;
		v.n_anchors--;
	}
	for (size_t i = v.next_anchor; i + 1 < v.n_anchors; i++)
		if (anchor_other_chain(&v, &v.anchors[i]))
			ret->anchors_other_chain++;
	if (ret->status == AUDIT_VERIFY_INTACT && v.next_anchor < v.n_anchors) {
		const AuditAnchor *a = &v.anchors[v.n_anchors - 1];
		fail(&v, AUDIT_VERIFY_TRUNCATED, v.last_file, v.last_line,
		        "the trail ends at seq %" PRIu64
		        ", but an anchor proves that seal seq %" PRIu64 " (file %" PRIu64
		        ") was written: records were cut off, or an older copy of "
		        "the trail was restored",
		        v.st.seq, a->seq, a->file_seq);
	}
	if (ret_bad)
		*ret_bad = w.bad;
	r = 0;
out:
	audit_seal_key_clear(&v.epoch_key);
	free(v.anchors);
	free(v.fragbuf);
	free(v.lastbuf);
	free(w.arena);
	return r;
}

int audit_verify_files(char *const *files, const AuditVerifyOptions *opts, AuditVerifyResult *ret)
{
	return audit_verify_read_files(files, opts, ret, NULL, NULL, NULL);
}
