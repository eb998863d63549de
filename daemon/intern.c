/* intern.c: the interned strings of intern.h — an open-addressing table (linear probing,
 * backward-shift deletion) of reference-counted copies, freed with their last user. */
#include "intern.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct InternString {
	uint32_t refs;
	uint32_t hash;
	char s[];
} InternString;

static struct {
	InternString **slots; /* size a power of two, NULL when empty */
	size_t size, n, bytes;
} pool;

#define INTERN_MIN_SIZE 64

static InternString *intern_of(const char *s)
{
	return (InternString *)(void *)(s - offsetof(InternString, s));
}

static uint32_t intern_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* The slot of S (hash H): its entry, or the empty slot where it would go. */
static size_t intern_slot(const char *s, uint32_t h)
{
	size_t mask = pool.size - 1, i = h & mask;

	while (pool.slots[i] && (pool.slots[i]->hash != h || strcmp(pool.slots[i]->s, s) != 0))
		i = (i + 1) & mask;
	return i;
}

static int intern_resize(size_t size)
{
	InternString **old = pool.slots;
	size_t old_size = pool.size;

	pool.slots = calloc(size, sizeof(*pool.slots));
	if (!pool.slots) {
		pool.slots = old;
		return -ENOMEM;
	}
	pool.size = size;
	for (size_t i = 0; i < old_size; i++)
		if (old[i]) {
			size_t mask = size - 1, j = old[i]->hash & mask;

			while (pool.slots[j])
				j = (j + 1) & mask;
			pool.slots[j] = old[i];
		}
	free(old);
	return 0;
}

const char *intern_lookup(const char *s)
{
	size_t i;

	if (!s || pool.n == 0)
		return NULL;
	i = intern_slot(s, intern_hash(s));
	return pool.slots[i] ? pool.slots[i]->s : NULL;
}

const char *intern_str(const char *s)
{
	uint32_t h;
	size_t i, len;
	InternString *e;

	if (!s)
		return NULL;
	h = intern_hash(s);
	if (pool.n > 0) {
		i = intern_slot(s, h);
		if (pool.slots[i]) {
			pool.slots[i]->refs++;
			return pool.slots[i]->s;
		}
	}
	/* at most 3/4 full, so that a probe always ends */
	if ((pool.n + 1) * 4 > pool.size * 3 &&
	        intern_resize(pool.size ? pool.size * 2 : INTERN_MIN_SIZE) < 0) {
		errno = ENOMEM;
		return NULL;
	}
	i = intern_slot(s, h);
	len = strlen(s);
	e = malloc(sizeof(*e) + len + 1);
	if (!e) {
		errno = ENOMEM;
		return NULL;
	}
	e->refs = 1;
	e->hash = h;
	memcpy(e->s, s, len + 1);
	pool.slots[i] = e;
	pool.n++;
	pool.bytes += sizeof(*e) + len + 1;
	return e->s;
}

const char *intern_ref(const char *s)
{
	if (s)
		intern_of(s)->refs++;
	return s;
}

void intern_unref(const char *s)
{
	InternString *e;
	size_t mask, i, j;

	if (!s)
		return;
	e = intern_of(s);
	if (--e->refs > 0)
		return;
	mask = pool.size - 1;
	i = intern_slot(s, e->hash);
	/* backward-shift deletion: the entries after it that probed past it move up */
	for (j = (i + 1) & mask; pool.slots[j]; j = (j + 1) & mask) {
		size_t home = pool.slots[j]->hash & mask;

		if (((j - home) & mask) >= ((j - i) & mask)) {
			pool.slots[i] = pool.slots[j];
			i = j;
		}
	}
	pool.slots[i] = NULL;
	pool.n--;
	pool.bytes -= sizeof(*e) + strlen(e->s) + 1;
	free(e);
	if (pool.n == 0) {
		free(pool.slots);
		pool.slots = NULL;
		pool.size = 0;
	} else if (pool.size > INTERN_MIN_SIZE && pool.n * 8 < pool.size)
		(void)intern_resize(pool.size / 2); /* on failure it stays larger */
}

int intern_replace(const char **p, const char *s)
{
	const char *c = intern_str(s);

	if (s && !c)
		return -ENOMEM;
	intern_unref(*p);
	*p = c;
	return 0;
}

size_t intern_count(void)
{
	return pool.n;
}

size_t intern_bytes(void)
{
	return pool.bytes + pool.size * sizeof(*pool.slots);
}
