/* audit-parse-ref.c: the trail parsers as they were before the one-pass scanner (a
 * malloc per field, a quadratic duplicate check), kept verbatim as the reference that
 * test-audit-parse-diff.c holds the new parser to: same accept/reject, reason and values. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit-json.h"
#include "audit-parse-ref.h"
#include "audit.h"
#include "util.h"

void ref_fields_free(JsonField *f, size_t n)
{
	if (!f)
		return;
	for (size_t i = 0; i < n; i++) {
		free(f[i].key);
		free(f[i].str);
	}
	free(f);
}

/* Length of the valid UTF-8 sequence at S (at most AVAIL bytes), 0 if invalid. Rejects
 * overlong forms, surrogates and code points above U+10FFFF. */
static size_t ref_utf8_valid_len(const unsigned char *s, size_t avail)
{
	uint32_t cp;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (avail < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	        (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

typedef struct Parser {
	const char *p, *end;
	const char *why;
} Parser;

static int parse_u4(Parser *ps, uint32_t *ret)
{
	uint32_t v = 0;

	if (ps->end - ps->p < 4)
		return -EBADMSG;
	for (int i = 0; i < 4; i++) {
		int h = hex_digit_value(ps->p[i]);
		if (h < 0)
			return -EBADMSG;
		v = (v << 4) | (uint32_t)h;
	}
	ps->p += 4;
	*ret = v;
	return 0;
}

static void put_utf8(JsonBuf *b, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80)
		u[0] = (char)cp, n = 1;
	else if (cp < 0x800)
		u[0] = (char)(0xc0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
	else if (cp < 0x10000)
		u[0] = (char)(0xe0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
		u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
	else
		u[0] = (char)(0xf0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
	json_buf_append(b, u, n);
}

/* Parses a string literal at ps->p (which points at the opening quote). */
static int parse_string(Parser *ps, char **ret)
{
	JsonBuf b = {};
	int r;

	ps->p++;
	for (;;) {
		unsigned char c;
		size_t n;

		if (ps->p >= ps->end) {
			ps->why = "unterminated string";
			r = -EBADMSG;
			goto fail;
		}
		c = (unsigned char)*ps->p;
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			/* Fast path: a run of plain ASCII is copied at once. */
			const char *run = ps->p;
			while (ps->p < ps->end && (unsigned char)*ps->p >= 0x20 &&
			        (unsigned char)*ps->p < 0x80 && *ps->p != '"' && *ps->p != '\\')
				ps->p++;
			json_buf_append(&b, run, (size_t)(ps->p - run));
			continue;
		}
		if (c == '"') {
			ps->p++;
			break;
		}
		if (c < 0x20) {
			ps->why = "raw control character in string";
			r = -EBADMSG;
			goto fail;
		}
		if (c == '\\') {
			uint32_t cp;

			if (ps->end - ps->p < 2) {
				ps->why = "truncated escape";
				r = -EBADMSG;
				goto fail;
			}
			c = (unsigned char)ps->p[1];
			ps->p += 2;
			switch (c) {
			case '"':
				json_buf_append(&b, "\"", 1);
				break;
			case '\\':
				json_buf_append(&b, "\\", 1);
				break;
			case '/':
				json_buf_append(&b, "/", 1);
				break;
			case 'b':
				json_buf_append(&b, "\b", 1);
				break;
			case 'f':
				json_buf_append(&b, "\f", 1);
				break;
			case 'n':
				json_buf_append(&b, "\n", 1);
				break;
			case 'r':
				json_buf_append(&b, "\r", 1);
				break;
			case 't':
				json_buf_append(&b, "\t", 1);
				break;
			case 'u':
				if (parse_u4(ps, &cp) < 0) {
					ps->why = "bad \\u escape";
					r = -EBADMSG;
					goto fail;
				}
				if (cp >= 0xd800 && cp <= 0xdbff) {
					uint32_t lo;
					if (ps->end - ps->p < 6 || ps->p[0] != '\\' ||
					        ps->p[1] != 'u') {
						ps->why = "unpaired surrogate";
						r = -EBADMSG;
						goto fail;
					}
					ps->p += 2;
					if (parse_u4(ps, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
						ps->why = "unpaired surrogate";
						r = -EBADMSG;
						goto fail;
					}
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				} else if (cp >= 0xdc00 && cp <= 0xdfff) {
					ps->why = "unpaired surrogate";
					r = -EBADMSG;
					goto fail;
				}
				if (cp == 0) {
					ps->why = "NUL character in string";
					r = -EBADMSG;
					goto fail;
				}
				put_utf8(&b, cp);
				break;
			default:
				ps->why = "unknown escape";
				r = -EBADMSG;
				goto fail;
			}
			continue;
		}
		n = ref_utf8_valid_len((const unsigned char *)ps->p, (size_t)(ps->end - ps->p));
		if (n == 0) {
			ps->why = "invalid UTF-8";
			r = -EBADMSG;
			goto fail;
		}
		json_buf_append(&b, ps->p, n);
		ps->p += n;
	}
	if (b.oom) {
		r = -ENOMEM;
		goto fail;
	}
	if (!b.data) {
		b.data = strdup("");
		if (!b.data)
			return -ENOMEM;
	}
	*ret = b.data;
	return 0;
fail:
	json_buf_free(&b);
	return r;
}

static void skip_ws(Parser *ps)
{
	while (ps->p < ps->end &&
	        (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

int ref_json_parse_flat(
        const char *line, size_t len, JsonField **ret, size_t *ret_n, const char **ret_why)
{
	Parser ps = {.p = line, .end = line + len};
	JsonField *f = NULL;
	size_t n = 0;
	int r;

	f = calloc(JSON_FIELDS_MAX, sizeof(*f));
	if (!f)
		return -ENOMEM;
	skip_ws(&ps);
	if (ps.p >= ps.end || *ps.p != '{') {
		ps.why = "not a JSON object";
		r = -EBADMSG;
		goto fail;
	}
	ps.p++;
	skip_ws(&ps);
	if (ps.p < ps.end && *ps.p == '}')
		ps.p++; /* empty object */
	else
		for (;;) {
			JsonField *cur;

			skip_ws(&ps);
			if (ps.p >= ps.end || *ps.p != '"') {
				ps.why = "expected a key";
				r = -EBADMSG;
				goto fail;
			}
			if (n >= JSON_FIELDS_MAX) {
				ps.why = "too many fields";
				r = -EBADMSG;
				goto fail;
			}
			cur = &f[n];
			r = parse_string(&ps, &cur->key);
			if (r < 0)
				goto fail;
			n++;
			for (size_t i = 0; i + 1 < n; i++)
				if (streq(f[i].key, cur->key)) {
					ps.why = "duplicate key";
					r = -EBADMSG;
					goto fail;
				}
			skip_ws(&ps);
			if (ps.p >= ps.end || *ps.p != ':') {
				ps.why = "expected ':'";
				r = -EBADMSG;
				goto fail;
			}
			ps.p++;
			skip_ws(&ps);
			if (ps.p < ps.end && *ps.p == '"') {
				cur->type = JSON_STRING;
				r = parse_string(&ps, &cur->str);
				if (r < 0)
					goto fail;
			} else if (ps.p < ps.end && *ps.p >= '0' && *ps.p <= '9') {
				uint64_t v = 0;

				if (*ps.p == '0' && ps.p + 1 < ps.end && ps.p[1] >= '0' &&
				        ps.p[1] <= '9') {
					ps.why = "number with leading zero";
					r = -EBADMSG;
					goto fail;
				}
				while (ps.p < ps.end && *ps.p >= '0' && *ps.p <= '9') {
					if (v > (UINT64_C(1) << 63) / 10) {
						ps.why = "number too large";
						r = -EBADMSG;
						goto fail;
					}
					v = v * 10 + (uint64_t)(*ps.p - '0');
					ps.p++;
				}
				if (v >= (UINT64_C(1) << 63)) {
					ps.why = "number too large";
					r = -EBADMSG;
					goto fail;
				}
				if (ps.p < ps.end &&
				        (*ps.p == '.' || *ps.p == 'e' || *ps.p == 'E')) {
					ps.why = "not an integer";
					r = -EBADMSG;
					goto fail;
				}
				cur->type = JSON_UINT;
				cur->num = v;
			} else {
				ps.why = "value is not a string or unsigned integer";
				r = -EBADMSG;
				goto fail;
			}
			skip_ws(&ps);
			if (ps.p < ps.end && *ps.p == ',') {
				ps.p++;
				continue;
			}
			if (ps.p < ps.end && *ps.p == '}') {
				ps.p++;
				break;
			}
			ps.why = "expected ',' or '}'";
			r = -EBADMSG;
			goto fail;
		}
	skip_ws(&ps);
	if (ps.p != ps.end) {
		ps.why = "trailing bytes after the object";
		r = -EBADMSG;
		goto fail;
	}
	*ret = f;
	*ret_n = n;
	return 0;
fail:
	ref_fields_free(f, JSON_FIELDS_MAX);
	if (ret_why)
		*ret_why = r == -ENOMEM ? "out of memory" : ps.why;
	return r;
}

AuditEntry *ref_entry_free(AuditEntry *e)
{
	if (!e)
		return NULL;
	char **strs[] = {&e->time, &e->host, &e->reason, &e->message, &e->user, &e->service,
	        &e->tty, &e->rhost, &e->cred_label, &e->cred_id, &e->aaguid, &e->device, &e->rule,
	        &e->rule_name, &e->policy, &e->session, &e->action, &e->detail, &e->actor,
	        &e->actor_login, &e->actor_session, &e->actor_tty, &e->spooled, &e->spool_id,
	        &e->prev_file, &e->torn_sha256, &e->key_id, &e->mac, &e->prev};
	for (size_t i = 0; i < ELEMENTSOF(strs); i++)
		free(*strs[i]);
	free(e);
	return NULL;
}

static inline void ref_entry_freep(AuditEntry **e)
{
	if (*e)
		ref_entry_free(*e);
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

static const struct {
	const char *key;
	FieldKind kind;
	size_t offset;
	unsigned bit;
} entry_fields[] = {
        {"seq", F_U64, offsetof(AuditEntry, seq), HAS_SEQ},
        {"time", F_STR, offsetof(AuditEntry, time), HAS_TIME},
        {"host", F_STR, offsetof(AuditEntry, host), HAS_HOST},
        {"event", F_EVENT, offsetof(AuditEntry, event), HAS_EVENT},
        {"result", F_RESULT, offsetof(AuditEntry, result), HAS_RESULT},
        {"reason", F_STR, offsetof(AuditEntry, reason), HAS_OTHER},
        {"message", F_STR, offsetof(AuditEntry, message), HAS_OTHER},
        {"user", F_STR, offsetof(AuditEntry, user), HAS_OTHER},
        {"uid", F_UID, offsetof(AuditEntry, uid), HAS_OTHER},
        {"service", F_STR, offsetof(AuditEntry, service), HAS_OTHER},
        {"tty", F_STR, offsetof(AuditEntry, tty), HAS_OTHER},
        {"rhost", F_STR, offsetof(AuditEntry, rhost), HAS_OTHER},
        {"cred_label", F_STR, offsetof(AuditEntry, cred_label), HAS_OTHER},
        {"cred_id", F_STR, offsetof(AuditEntry, cred_id), HAS_OTHER},
        {"aaguid", F_STR, offsetof(AuditEntry, aaguid), HAS_OTHER},
        {"device", F_STR, offsetof(AuditEntry, device), HAS_OTHER},
        {"rule", F_STR, offsetof(AuditEntry, rule), HAS_OTHER},
        {"rule_name", F_STR, offsetof(AuditEntry, rule_name), HAS_OTHER},
        {"policy", F_STR, offsetof(AuditEntry, policy), HAS_OTHER},
        {"session", F_STR, offsetof(AuditEntry, session), HAS_OTHER},
        {"action", F_STR, offsetof(AuditEntry, action), HAS_OTHER},
        {"detail", F_STR, offsetof(AuditEntry, detail), HAS_OTHER},
        {"action_seq", F_U64, offsetof(AuditEntry, action_seq), HAS_OTHER},
        {"actor_uid", F_UID, offsetof(AuditEntry, actor_uid), HAS_OTHER},
        {"actor", F_STR, offsetof(AuditEntry, actor), HAS_OTHER},
        {"actor_loginuid", F_UID, offsetof(AuditEntry, actor_loginuid), HAS_OTHER},
        {"actor_login", F_STR, offsetof(AuditEntry, actor_login), HAS_OTHER},
        {"actor_session", F_STR, offsetof(AuditEntry, actor_session), HAS_OTHER},
        {"actor_tty", F_STR, offsetof(AuditEntry, actor_tty), HAS_OTHER},
        {"spooled", F_STR, offsetof(AuditEntry, spooled), HAS_OTHER},
        {"spool_id", F_STR, offsetof(AuditEntry, spool_id), HAS_OTHER},
        {"file_seq", F_U64, offsetof(AuditEntry, file_seq), HAS_FILE_SEQ},
        {"prev_file", F_STR, offsetof(AuditEntry, prev_file), HAS_PREV_FILE},
        {"torn_offset", F_U64, offsetof(AuditEntry, torn_offset), HAS_TORN},
        {"torn_length", F_U64, offsetof(AuditEntry, torn_length), HAS_TORN_LEN},
        {"torn_sha256", F_STR, offsetof(AuditEntry, torn_sha256), HAS_TORN_SHA},
        {"every", F_U64, offsetof(AuditEntry, every), HAS_EVERY},
        {"epoch", F_U64, offsetof(AuditEntry, epoch), HAS_EPOCH},
        {"key_id", F_STR, offsetof(AuditEntry, key_id), HAS_KEY_ID},
        {"mac", F_STR, offsetof(AuditEntry, mac), HAS_MAC},
        {"prev", F_STR, offsetof(AuditEntry, prev), HAS_PREV},
};

static bool is_lower_hex(const char *s, size_t len)
{
	if (!s || strlen(s) != len)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

int ref_audit_entry_parse(const char *line, size_t len, AuditEntry **ret, const char **ret_why)
{
	_cleanup_(ref_entry_freep) AuditEntry *e = NULL;
	JsonField *f = NULL;
	const char *why = NULL;
	unsigned have = 0;
	size_t n = 0;
	int r;

	if (len > AUDIT_LINE_MAX) {
		why = "line too long";
		r = -EBADMSG;
		goto out;
	}
	r = ref_json_parse_flat(line, len, &f, &n, &why);
	if (r < 0)
		goto out;
	e = calloc(1, sizeof(*e));
	if (!e) {
		r = -ENOMEM;
		goto out;
	}
	e->uid = e->actor_uid = e->actor_loginuid = -1;
	e->epoch = AUDIT_SEAL_EPOCH_NONE;
	e->event = _AUDIT_EVENT_INVALID;
	e->result = _AUDIT_RESULT_INVALID;
	for (size_t i = 0, hint = 0; i < n; i++) {
		size_t k = ELEMENTSOF(entry_fields);
		void *dst;

		/* Records list their fields in table order: start looking after the last hit. */
		for (size_t j = 0; j < ELEMENTSOF(entry_fields); j++) {
			size_t c = (hint + j) % ELEMENTSOF(entry_fields);
			if (streq(entry_fields[c].key, f[i].key)) {
				k = c;
				hint = c + 1;
				break;
			}
		}
		if (k == ELEMENTSOF(entry_fields)) {
			why = "unknown field";
			r = -EBADMSG;
			goto out;
		}
		dst = (char *)e + entry_fields[k].offset;
		have |= entry_fields[k].bit;
		if (entry_fields[k].kind == F_U64 || entry_fields[k].kind == F_UID) {
			if (f[i].type != JSON_UINT) {
				why = "field must be a number";
				r = -EBADMSG;
				goto out;
			}
			if (entry_fields[k].kind == F_UID) {
				if (f[i].num >= UINT32_MAX) {
					why = "uid out of range";
					r = -EBADMSG;
					goto out;
				}
				*(int64_t *)dst = (int64_t)f[i].num;
			} else
				*(uint64_t *)dst = f[i].num;
			continue;
		}
		if (f[i].type != JSON_STRING) {
			why = "field must be a string";
			r = -EBADMSG;
			goto out;
		}
		if (entry_fields[k].kind == F_EVENT) {
			e->event = audit_event_from_string(f[i].str);
			if (e->event < 0) {
				why = "unknown event";
				r = -EBADMSG;
				goto out;
			}
		} else if (entry_fields[k].kind == F_RESULT) {
			e->result = audit_result_from_string(f[i].str);
			if (e->result < 0) {
				why = "unknown result";
				r = -EBADMSG;
				goto out;
			}
		} else
			*(char **)dst = TAKE_PTR(f[i].str);
	}

	r = -EBADMSG;
	if ((have & (HAS_SEQ | HAS_TIME | HAS_HOST | HAS_EVENT | HAS_RESULT | HAS_PREV)) !=
	        (HAS_SEQ | HAS_TIME | HAS_HOST | HAS_EVENT | HAS_RESULT | HAS_PREV)) {
		why = "a required field (seq, time, host, event, result, prev) is missing";
		goto out;
	}
	if (e->seq == 0) {
		why = "seq must be positive";
		goto out;
	}
	if (parse_rfc3339_ms(e->time, &e->time_ms) < 0) {
		why = "time is not RFC 3339";
		goto out;
	}
	if (!is_lower_hex(e->prev, AUDIT_HASH_HEX_LEN)) {
		why = "prev is not a SHA-256 hex digest";
		goto out;
	}
	if ((e->event == AUDIT_EVENT_SEAL) != ((have & (HAS_EVERY | HAS_KEY_ID | HAS_MAC)) != 0)) {
		why = "seal fields on a record that is not a seal";
		goto out;
	}
	if (e->event == AUDIT_EVENT_SEAL && ((have & (HAS_EVERY | HAS_KEY_ID | HAS_MAC)) !=
	                                                    (HAS_EVERY | HAS_KEY_ID | HAS_MAC) ||
	                                            e->every == 0 || !is_lower_hex(e->key_id, 16) ||
	                                            !is_lower_hex(e->mac, AUDIT_HASH_HEX_LEN))) {
		why = "seal record lacks a valid every, key_id or mac";
		goto out;
	}
	if ((have & HAS_EPOCH) &&
	        (e->event != AUDIT_EVENT_SEAL || e->epoch == AUDIT_SEAL_EPOCH_NONE)) {
		why = "epoch on a record that is not a seal, or out of range";
		goto out;
	}
	if (e->event != AUDIT_EVENT_ROTATE && (have & (HAS_FILE_SEQ | HAS_PREV_FILE))) {
		why = "file header fields on a record that is not a file header";
		goto out;
	}
	if (e->event == AUDIT_EVENT_ROTATE && (!(have & HAS_FILE_SEQ) || e->file_seq == 0)) {
		why = "file header lacks file_seq";
		goto out;
	}
	if ((e->event == AUDIT_EVENT_TORN_TAIL) !=
	        ((have & (HAS_TORN | HAS_TORN_LEN | HAS_TORN_SHA)) != 0)) {
		why = "torn-tail fields on a record that is not a torn-tail";
		goto out;
	}
	if (e->event == AUDIT_EVENT_TORN_TAIL &&
	        ((have & (HAS_TORN | HAS_TORN_LEN | HAS_TORN_SHA)) !=
	                        (HAS_TORN | HAS_TORN_LEN | HAS_TORN_SHA) ||
	                e->torn_length == 0 || !is_lower_hex(e->torn_sha256, AUDIT_HASH_HEX_LEN))) {
		why = "torn-tail record lacks torn_offset, torn_length or torn_sha256";
		goto out;
	}
	r = 0;
	*ret = TAKE_PTR(e);
out:
	ref_fields_free(f, JSON_FIELDS_MAX);
	if (r < 0 && ret_why)
		*ret_why = why ?: "cannot parse";
	return r;
}
