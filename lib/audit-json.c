/* audit-json.c: JSON string escaping and a strict one-pass scanner for the flat objects
 * of the audit trail. Only what the trail needs: objects of strings and unsigned integers. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit-json.h"
#include "util.h"

void json_buf_free(JsonBuf *b)
{
	free(b->data);
	*b = (JsonBuf){};
}

void json_buf_reset(JsonBuf *b)
{
	b->len = 0;
	b->oom = false;
	if (b->data)
		b->data[0] = '\0';
}

static bool json_buf_reserve(JsonBuf *b, size_t n)
{
	size_t need, na;
	char *nd;

	if (b->oom)
		return false;
	if (n > SIZE_MAX / 2 - b->len - 1) {
		b->oom = true;
		return false;
	}
	need = b->len + n + 1;
	if (need <= b->alloc)
		return true;
	na = b->alloc ? b->alloc : 256;
	while (na < need)
		na *= 2;
	nd = realloc(b->data, na);
	if (!nd) {
		b->oom = true;
		return false;
	}
	b->data = nd;
	b->alloc = na;
	return true;
}

void json_buf_append(JsonBuf *b, const char *s, size_t n)
{
	if (!json_buf_reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void json_buf_puts(JsonBuf *b, const char *s)
{
	json_buf_append(b, s, strlen(s));
}

void json_buf_printf(JsonBuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !json_buf_reserve(b, (size_t)n)) {
		b->oom = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at S (at most AVAIL bytes), 0 if invalid. Rejects
 * overlong forms, surrogates and code points above U+10FFFF. */
static size_t utf8_valid_len(const unsigned char *s, size_t avail)
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

void json_buf_put_string(JsonBuf *b, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), i = 0;

	if (len > max)
		len = max;
	json_buf_append(b, "\"", 1);
	while (i < len) {
		unsigned char c = p[i];
		char esc[8];
		size_t n;

		switch (c) {
		case '"':
			json_buf_append(b, "\\\"", 2);
			i++;
			continue;
		case '\\':
			json_buf_append(b, "\\\\", 2);
			i++;
			continue;
		case '\n':
			json_buf_append(b, "\\n", 2);
			i++;
			continue;
		case '\r':
			json_buf_append(b, "\\r", 2);
			i++;
			continue;
		case '\t':
			json_buf_append(b, "\\t", 2);
			i++;
			continue;
		default:
			break;
		}
		if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			json_buf_append(b, esc, 6);
			i++;
			continue;
		}
		n = utf8_valid_len(p + i, len - i);
		if (n == 0) {
			/* Invalid byte, or a sequence cut by MAX: never emit broken UTF-8. */
			json_buf_append(b, "\\ufffd", 6);
			i++;
			continue;
		}
		json_buf_append(b, (const char *)p + i, n);
		i += n;
	}
	json_buf_append(b, "\"", 1);
}

void json_fields_free(JsonField *f, size_t n)
{
	if (!f)
		return;
	for (size_t i = 0; i < n; i++) {
		free(f[i].key);
		free(f[i].str);
	}
	free(f);
}

enum {
	SCAN_START,  /* before the '{' */
	SCAN_KEY,    /* a key comes next */
	SCAN_CLOSED, /* the '}' was read */
	SCAN_DONE,
};

/* Bytes that stand for themselves inside a string: printable ASCII but '"' and '\'. */
static bool plain_byte(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

#define ONES (UINT64_C(0x0101010101010101))
#define HIGH (UINT64_C(0x8080808080808080))

/* The end of the run of plain bytes at P, eight at a time: a string is mostly plain. */
static const char *plain_run(const char *p, const char *end)
{
	while (end - p >= 8) {
		uint64_t x, q, b, m;

		memcpy(&x, p, 8);
		q = x ^ (ONES * '"');
		b = x ^ (ONES * '\\');
		/* A high bit where a byte is '"', '\\', below 0x20, or not ASCII. Borrows can
		 * mark bytes after the first such byte too, never before it. */
		m = ((q - ONES) & ~q & HIGH) | ((b - ONES) & ~b & HIGH) |
		    ((x - ONES * 0x20) & ~x & HIGH) | (x & HIGH);
		if (m) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			return p + __builtin_ctzll(m) / 8;
#else
			break;
#endif
		}
		p += 8;
	}
	while (p < end && plain_byte((unsigned char)*p))
		p++;
	return p;
}

void json_scan_init(JsonScan *s, const char *line, size_t len, char *arena)
{
	*s = (JsonScan){.p = line, .end = line + len, .arena = arena, .state = SCAN_START};
}

static int scan_fail(JsonScan *s, const char *why)
{
	s->why = why;
	s->state = SCAN_DONE;
	return -EBADMSG;
}

static int scan_u4(JsonScan *s, uint32_t *ret)
{
	uint32_t v = 0;

	if (s->end - s->p < 4)
		return -EBADMSG;
	for (int i = 0; i < 4; i++) {
		int h = hex_digit_value(s->p[i]);
		if (h < 0)
			return -EBADMSG;
		v = (v << 4) | (uint32_t)h;
	}
	s->p += 4;
	*ret = v;
	return 0;
}

static size_t utf8_encode(uint32_t cp, char u[static 4])
{
	if (cp < 0x80) {
		u[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	u[0] = (char)(0xf0 | (cp >> 18));
	u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	u[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* One escape after the backslash at s->p: its UTF-8 bytes into U. Returns the byte count
 * or -EBADMSG with s->why. */
static int scan_escape(JsonScan *s, char u[static 4])
{
	uint32_t cp;
	char c;

	if (s->end - s->p < 2) {
		s->why = "truncated escape";
		return -EBADMSG;
	}
	c = s->p[1];
	s->p += 2;
	switch (c) {
	case '"':
	case '\\':
	case '/':
		u[0] = c;
		return 1;
	case 'b':
		u[0] = '\b';
		return 1;
	case 'f':
		u[0] = '\f';
		return 1;
	case 'n':
		u[0] = '\n';
		return 1;
	case 'r':
		u[0] = '\r';
		return 1;
	case 't':
		u[0] = '\t';
		return 1;
	case 'u':
		break;
	default:
		s->why = "unknown escape";
		return -EBADMSG;
	}
	if (scan_u4(s, &cp) < 0) {
		s->why = "bad \\u escape";
		return -EBADMSG;
	}
	if (cp >= 0xd800 && cp <= 0xdbff) {
		uint32_t lo;

		if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u') {
			s->why = "unpaired surrogate";
			return -EBADMSG;
		}
		s->p += 2;
		if (scan_u4(s, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
			s->why = "unpaired surrogate";
			return -EBADMSG;
		}
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	} else if (cp >= 0xdc00 && cp <= 0xdfff) {
		s->why = "unpaired surrogate";
		return -EBADMSG;
	}
	if (cp == 0) {
		s->why = "NUL character in string";
		return -EBADMSG;
	}
	return (int)utf8_encode(cp, u);
}

/* A string literal at s->p (the opening quote). Without escapes it is a slice of the line;
 * from the first escape on it is written unescaped into the arena. */
static int scan_string(JsonScan *s, JsonSlice *ret)
{
	const char *start = ++s->p;
	char *out = NULL; /* into the arena once an escape was seen */
	size_t n_out = 0;

	for (;;) {
		const char *run = s->p;
		unsigned char c;
		size_t n;

		s->p = plain_run(s->p, s->end);
		if (out && s->p > run) {
			memcpy(out + n_out, run, (size_t)(s->p - run));
			n_out += (size_t)(s->p - run);
		}
		if (s->p >= s->end)
			return scan_fail(s, "unterminated string");
		c = (unsigned char)*s->p;
		if (c == '"')
			break;
		if (c < 0x20)
			return scan_fail(s, "raw control character in string");
		if (c == '\\') {
			char u[4];
			int k;

			if (!out) {
				out = s->arena + s->arena_used;
				n_out = (size_t)(s->p - start);
				memcpy(out, start, n_out);
			}
			k = scan_escape(s, u);
			if (k < 0) {
				s->state = SCAN_DONE;
				return k;
			}
			memcpy(out + n_out, u, (size_t)k);
			n_out += (size_t)k;
			continue;
		}
		n = utf8_valid_len((const unsigned char *)s->p, (size_t)(s->end - s->p));
		if (n == 0)
			return scan_fail(s, "invalid UTF-8");
		if (out) {
			memcpy(out + n_out, s->p, n);
			n_out += n;
		}
		s->p += n;
	}
	if (out) {
		s->arena_used += n_out;
		*ret = (JsonSlice){out, n_out};
	} else
		*ret = (JsonSlice){start, (size_t)(s->p - start)};
	s->p++; /* the closing quote */
	return 0;
}

static void scan_ws(JsonScan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

int json_scan_key(JsonScan *s, JsonSlice *ret)
{
	switch (s->state) {
	case SCAN_START:
		scan_ws(s);
		if (s->p >= s->end || *s->p != '{')
			return scan_fail(s, "not a JSON object");
		s->p++;
		scan_ws(s);
		if (s->p < s->end && *s->p == '}') {
			s->p++; /* empty object */
			break;
		}
		s->state = SCAN_KEY;
		__attribute__((fallthrough));
	case SCAN_KEY:
		scan_ws(s);
		if (s->p >= s->end || *s->p != '"')
			return scan_fail(s, "expected a key");
		if (s->n >= JSON_FIELDS_MAX)
			return scan_fail(s, "too many fields");
		if (scan_string(s, ret) < 0)
			return -EBADMSG;
		s->n++;
		return 1;
	case SCAN_CLOSED:
		break;
	default:
		return scan_fail(s, s->why ?: "scan already ended");
	}
	scan_ws(s);
	if (s->p != s->end)
		return scan_fail(s, "trailing bytes after the object");
	s->state = SCAN_DONE;
	return 0;
}

int json_scan_value(JsonScan *s, JsonValue *ret)
{
	if (s->state != SCAN_KEY)
		return scan_fail(s, s->why ?: "no key before the value");
	scan_ws(s);
	if (s->p >= s->end || *s->p != ':')
		return scan_fail(s, "expected ':'");
	s->p++;
	scan_ws(s);
	if (s->p < s->end && *s->p == '"') {
		ret->type = JSON_STRING;
		if (scan_string(s, &ret->str) < 0)
			return -EBADMSG;
	} else if (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
		uint64_t v = 0;

		if (*s->p == '0' && s->p + 1 < s->end && s->p[1] >= '0' && s->p[1] <= '9')
			return scan_fail(s, "number with leading zero");
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
			if (v > (UINT64_C(1) << 63) / 10)
				return scan_fail(s, "number too large");
			v = v * 10 + (uint64_t)(*s->p - '0');
			s->p++;
		}
		if (v >= (UINT64_C(1) << 63))
			return scan_fail(s, "number too large");
		if (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E'))
			return scan_fail(s, "not an integer");
		ret->type = JSON_UINT;
		ret->num = v;
	} else
		return scan_fail(s, "value is not a string or unsigned integer");
	scan_ws(s);
	if (s->p < s->end && *s->p == ',') {
		s->p++;
		return 0;
	}
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		s->state = SCAN_CLOSED;
		return 0;
	}
	return scan_fail(s, "expected ',' or '}'");
}

static uint32_t slice_hash(JsonSlice k)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < k.len; i++)
		h = (h ^ (unsigned char)k.p[i]) * 16777619u;
	return h;
}

static bool slice_eq(JsonSlice a, JsonSlice b)
{
	return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

/* The keys seen so far, hashed: a duplicate is found in O(1) per key. */
#define KEY_SLOTS (2 * JSON_FIELDS_MAX)

typedef struct KeySet {
	JsonSlice keys[JSON_FIELDS_MAX];
	uint8_t slot[KEY_SLOTS]; /* 1 + index into keys; 0: empty */
	size_t n;
} KeySet;

/* Adds K; false when it is already there. */
static bool keyset_add(KeySet *ks, JsonSlice k)
{
	size_t i = slice_hash(k) % KEY_SLOTS;

	for (; ks->slot[i]; i = (i + 1) % KEY_SLOTS)
		if (slice_eq(ks->keys[ks->slot[i] - 1], k))
			return false;
	ks->keys[ks->n] = k;
	ks->slot[i] = (uint8_t)++ks->n;
	return true;
}

int json_parse_flat(
        const char *line, size_t len, JsonField **ret, size_t *ret_n, const char **ret_why)
{
	_cleanup_free_ char *arena = NULL;
	JsonField *f = NULL;
	KeySet ks = {};
	JsonScan s;
	const char *why = NULL;
	size_t n = 0;
	int r;

	f = calloc(JSON_FIELDS_MAX, sizeof(*f));
	arena = malloc(len + 1);
	if (!f || !arena) {
		r = -ENOMEM;
		goto fail;
	}
	json_scan_init(&s, line, len, arena);
	while ((r = json_scan_key(&s, &ks.keys[ks.n])) > 0) {
		JsonSlice key = ks.keys[ks.n];
		JsonValue v;

		if (!keyset_add(&ks, key)) {
			why = "duplicate key";
			r = -EBADMSG;
			goto fail;
		}
		r = json_scan_value(&s, &v);
		if (r < 0)
			break;
		f[n].key = strndup(key.p, key.len);
		f[n].type = v.type;
		f[n].num = v.type == JSON_UINT ? v.num : 0;
		if (v.type == JSON_STRING)
			f[n].str = strndup(v.str.p, v.str.len);
		n++;
		if (!f[n - 1].key || (v.type == JSON_STRING && !f[n - 1].str)) {
			r = -ENOMEM;
			goto fail;
		}
	}
	if (r < 0) {
		why = s.why;
		goto fail;
	}
	*ret = f;
	*ret_n = n;
	return 0;
fail:
	json_fields_free(f, JSON_FIELDS_MAX);
	if (ret_why)
		*ret_why = r == -ENOMEM ? "out of memory" : why;
	return r;
}
