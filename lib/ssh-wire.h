/* ssh-wire.h: the SSH wire format (RFC 4251) shared by ssh-sk.c and ssh-agent.c: a
 * bounds-checked reader over a buffer and a growing writer. Header-only, libc only. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct Wire {
	const uint8_t *p;
	size_t n;
} Wire;

static inline int wire_u8(Wire *w, uint8_t *ret)
{
	if (w->n < 1)
		return -EBADMSG;
	*ret = w->p[0];
	w->p++;
	w->n--;
	return 0;
}

static inline int wire_u32(Wire *w, uint32_t *ret)
{
	if (w->n < 4)
		return -EBADMSG;
	*ret = (uint32_t)w->p[0] << 24 | (uint32_t)w->p[1] << 16 | (uint32_t)w->p[2] << 8 | w->p[3];
	w->p += 4;
	w->n -= 4;
	return 0;
}

static inline int wire_string(Wire *w, const uint8_t **ret, size_t *ret_len)
{
	uint32_t len;

	if (wire_u32(w, &len) < 0 || len > w->n)
		return -EBADMSG;
	*ret = w->p;
	*ret_len = len;
	w->p += len;
	w->n -= len;
	return 0;
}

/* A string that must be text: no NUL, printable ASCII, 1..MAX characters. */
static inline bool text_ok(const uint8_t *s, size_t n, size_t max)
{
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

static inline bool str_is(const uint8_t *s, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

typedef struct Buf {
	uint8_t *p;
	size_t n, size;
	bool oom;
} Buf;

static inline void buf_put(Buf *b, const void *data, size_t len)
{
	if (b->oom)
		return;
	if (b->n + len > b->size) {
		size_t size = (b->n + len) * 2 + 64;
		uint8_t *p = realloc(b->p, size);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->size = size;
	}
	memcpy(b->p + b->n, data, len);
	b->n += len;
}

static inline void buf_put_u32(Buf *b, uint32_t v)
{
	uint8_t be[4] = {v >> 24, v >> 16, v >> 8, v};
	buf_put(b, be, 4);
}

static inline void buf_put_string(Buf *b, const void *data, size_t len)
{
	buf_put_u32(b, (uint32_t)len);
	buf_put(b, data, len);
}

static inline int buf_take(Buf *b, uint8_t **ret, size_t *ret_len)
{
	if (b->oom) {
		free(b->p);
		*b = (Buf){};
		return -ENOMEM;
	}
	*ret = b->p;
	*ret_len = b->n;
	*b = (Buf){};
	return 0;
}
