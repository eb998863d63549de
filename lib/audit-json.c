/* audit-json.c: JSON string escaping and a strict parser for the flat objects of the
 * audit trail. Only what the trail needs: objects of strings and unsigned integers. */
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
		n = utf8_valid_len((const unsigned char *)ps->p, (size_t)(ps->end - ps->p));
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

int json_parse_flat(
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
	json_fields_free(f, JSON_FIELDS_MAX);
	if (ret_why)
		*ret_why = r == -ENOMEM ? "out of memory" : ps.why;
	return r;
}
