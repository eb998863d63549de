/* binding-index.c: the binding table in memory — the list of all bindings and the index of
 * bindings by key (m->by_device), so that a removal looks only at the bindings of the key
 * that went away, whichever binding is oldest or newest. */
#include "binding.h"

#include <stdint.h>

#include "intern.h"
#include "util.h"

#define INDEX_MIN_SIZE 8

/* The string a binding is filed under: the sysfs path, else the device node (as
 * removal.c's binding_matches() decides). NULL: it names no key. */
static const char *binding_key(const Binding *b)
{
	return b->sysfs_path ?: b->hidraw_path;
}

static size_t ptr_hash(const void *p)
{
	uint64_t x = (uint64_t)(uintptr_t)p;

	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	return (size_t)x;
}

/* The slot of interned KEY: its entry, or the empty slot where it would go. */
static size_t index_slot(Manager *m, const char *key)
{
	size_t mask = m->by_device.size - 1, i = ptr_hash(key) & mask;

	while (m->by_device.keys[i] && m->by_device.keys[i] != key)
		i = (i + 1) & mask;
	return i;
}

static int index_resize(Manager *m, size_t size)
{
	const char **keys = calloc(size, sizeof(*keys));
	Binding **heads = calloc(size, sizeof(*heads));

	if (!keys || !heads) {
		free(keys);
		free(heads);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->by_device.size; i++)
		if (m->by_device.keys[i]) {
			size_t j = ptr_hash(m->by_device.keys[i]) & (size - 1);

			while (keys[j])
				j = (j + 1) & (size - 1);
			keys[j] = m->by_device.keys[i];
			heads[j] = m->by_device.heads[i];
		}
	free(m->by_device.keys);
	free(m->by_device.heads);
	m->by_device.keys = keys;
	m->by_device.heads = heads;
	m->by_device.size = size;
	return 0;
}

/* The head of KEY's chain (interned), made if missing; NULL: out of memory. */
static Binding **index_head(Manager *m, const char *key, bool create)
{
	size_t i;

	if (m->by_device.size == 0) {
		if (!create || index_resize(m, INDEX_MIN_SIZE) < 0)
			return NULL;
	} else if (create && (m->by_device.n + 1) * 4 > m->by_device.size * 3 &&
	           index_resize(m, m->by_device.size * 2) < 0)
		return NULL;
	i = index_slot(m, key);
	if (!m->by_device.keys[i]) {
		if (!create)
			return NULL;
		m->by_device.keys[i] = key;
		m->by_device.heads[i] = NULL;
		m->by_device.n++;
	}
	return &m->by_device.heads[i];
}

/* Removes the (empty) entry of KEY: backward-shift deletion. */
static void index_delete(Manager *m, const char *key)
{
	size_t mask = m->by_device.size - 1, i = index_slot(m, key), j;

	for (j = (i + 1) & mask; m->by_device.keys[j]; j = (j + 1) & mask) {
		size_t home = ptr_hash(m->by_device.keys[j]) & mask;

		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->by_device.keys[i] = m->by_device.keys[j];
			m->by_device.heads[i] = m->by_device.heads[j];
			i = j;
		}
	}
	m->by_device.keys[i] = NULL;
	m->by_device.heads[i] = NULL;
	if (--m->by_device.n == 0)
		binding_index_free(m);
}

static void index_add(Manager *m, Binding *b)
{
	const char *key = binding_key(b);
	Binding **head;

	if (!key)
		return; /* names no key: no removal can match it */
	/* No room for a new key (out of memory): filed where every removal looks. */
	head = index_head(m, key, true) ?: &m->by_device.overflow;
	b->dev_prev = NULL;
	b->dev_next = *head;
	if (*head)
		(*head)->dev_prev = b;
	*head = b;
}

static void index_remove(Manager *m, Binding *b)
{
	const char *key = binding_key(b);

	if (b->dev_next)
		b->dev_next->dev_prev = b->dev_prev;
	if (b->dev_prev)
		b->dev_prev->dev_next = b->dev_next;
	else if (m->by_device.overflow == b)
		m->by_device.overflow = b->dev_next;
	else if (key) {
		Binding **head = index_head(m, key, false);

		if (head && *head == b) {
			*head = b->dev_next;
			if (!*head)
				index_delete(m, key);
		}
	}
	b->dev_next = b->dev_prev = NULL;
}

Binding *bindings_of_device(Manager *m, const char *key)
{
	const char *k = intern_lookup(key);
	Binding **head = k ? index_head(m, k, false) : NULL;

	return head ? *head : NULL;
}

Binding *bindings_overflow(Manager *m)
{
	return m->by_device.overflow;
}

void binding_index_free(Manager *m)
{
	free(m->by_device.keys);
	free(m->by_device.heads);
	m->by_device.keys = NULL;
	m->by_device.heads = NULL;
	m->by_device.size = m->by_device.n = 0;
}

int binding_set_device(Binding *b, const char *sysfs_path, const char *hidraw_path)
{
	const char *s = intern_str(sysfs_path), *h = intern_str(hidraw_path);
	Manager *m = b->manager;
	bool linked = m && (m->bindings == b || b->prev);

	if ((sysfs_path && !s) || (hidraw_path && !h)) {
		intern_unref(s);
		intern_unref(h);
		return -ENOMEM;
	}
	if (linked)
		index_remove(m, b);
	intern_unref(b->sysfs_path);
	intern_unref(b->hidraw_path);
	b->sysfs_path = s;
	b->hidraw_path = h;
	if (linked)
		index_add(m, b);
	return 0;
}

void binding_link(Manager *m, Binding *b)
{
	b->prev = NULL;
	b->next = m->bindings;
	if (m->bindings)
		m->bindings->prev = b;
	m->bindings = b;
	m->n_bindings++;
	index_add(m, b);
}

void binding_unlink(Manager *m, Binding *b)
{
	index_remove(m, b);
	if (b->prev)
		b->prev->next = b->next;
	else if (m->bindings == b)
		m->bindings = b->next;
	if (b->next)
		b->next->prev = b->prev;
	b->next = b->prev = NULL;
	m->n_bindings--;
}

Binding *manager_binding_find(Manager *m, const char *id)
{
	for (Binding *b = m->bindings; b; b = b->next)
		if (streq(b->id, id))
			return b;
	return NULL;
}
