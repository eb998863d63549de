/* audit-json.h: the small JSON pieces the audit trail needs — a growable buffer, a
 * careful string escaper (valid UTF-8 out, always) and a strict flat-object scanner. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct JsonBuf {
	char *data;
	size_t len, alloc;
	bool oom; /* an allocation failed: the content is incomplete */
} JsonBuf;

void json_buf_free(JsonBuf *b);
void json_buf_reset(JsonBuf *b);
void json_buf_append(JsonBuf *b, const char *s, size_t n);
void json_buf_puts(JsonBuf *b, const char *s);
void json_buf_printf(JsonBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends S as a JSON string literal (with quotes), at most MAX input bytes (a cut never
 * splits a UTF-8 sequence). Control characters are escaped, invalid UTF-8 becomes U+FFFD. */
void json_buf_put_string(JsonBuf *b, const char *s, size_t max);

typedef enum JsonType {
	JSON_STRING,
	JSON_UINT,
} JsonType;

typedef struct JsonField {
	char *key;
	JsonType type;
	char *str;    /* JSON_STRING, unescaped, NUL-terminated */
	uint64_t num; /* JSON_UINT */
} JsonField;

#define JSON_FIELDS_MAX 64u

/* The scanner under every parse: one pass over LINE, no allocation. Keys and string values
 * come back as slices into LINE, or into ARENA when they held escapes (ARENA must hold LEN
 * bytes: unescaped text is never longer). Strict: one flat object of strings and
 * non-negative integers (< 2^63), at most JSON_FIELDS_MAX fields, no trailing bytes,
 * valid UTF-8, no NUL, no unpaired surrogate. Duplicate keys are the caller's to find
 * (it knows its key set): check right after json_scan_key(), as json_parse_flat() does. */
typedef struct JsonSlice {
	const char *p;
	size_t len;
} JsonSlice;

typedef struct JsonScan {
	const char *p, *end;
	char *arena;
	size_t arena_used, n;
	int state; /* where in the object the scan is (audit-json.c) */
	const char *why;
} JsonScan;

typedef struct JsonValue {
	JsonType type;
	JsonSlice str; /* JSON_STRING, unescaped, not NUL-terminated */
	uint64_t num;  /* JSON_UINT */
} JsonValue;

void json_scan_init(JsonScan *s, const char *line, size_t len, char *arena);
/* Returns 1 with the next key, 0 when the object ended (and nothing follows it), or
 * -EBADMSG with s->why (static). */
int json_scan_key(JsonScan *s, JsonSlice *ret);
/* The value after the key just returned: 0, or -EBADMSG with s->why. */
int json_scan_value(JsonScan *s, JsonValue *ret);

/* Parses LINE as exactly one flat JSON object whose values are strings or non-negative
 * integers (< 2^63), no duplicate keys, no trailing bytes. Returns 0 or -EBADMSG (with
 * a static reason in *ret_why) or -ENOMEM. */
int json_parse_flat(
        const char *line, size_t len, JsonField **ret, size_t *ret_n, const char **ret_why);
void json_fields_free(JsonField *f, size_t n);
