/* test-binding-index.c: keywardd's interned strings (daemon/intern.c) and the index of
 * bindings by key (daemon/binding-index.c): link, unlink, a key that changes, many
 * bindings per key, and every reference given back when the bindings are gone. */
#include "../daemon/check.h"
#include "binding.h"
#include "intern.h"
#include "util.h"

#define KEY_A  "/sys/devices/usb1/1-1/0003:1050:0407.0001/hidraw/hidraw0"
#define KEY_B  "/sys/devices/usb1/1-2/0003:1050:0407.0002/hidraw/hidraw1"
#define NODE_A "/dev/hidraw0"
#define NODE_C "/dev/hidraw7"

static Binding *make(Manager *m, unsigned n, const char *sysfs, const char *node)
{
	Binding *b = binding_new(m);

	CHECK(b);
	snprintf(b->id, sizeof(b->id), "%032x", n);
	b->user = intern_str("alice");
	b->session_id = intern_str("c7");
	CHECK(b->user && b->session_id);
	CHECK(binding_set_device(b, sysfs, node) == 0);
	return b;
}

/* How many bindings the index files under KEY, and whether B is one of them. */
static size_t count(Manager *m, const char *key, const Binding *b, bool *ret_found)
{
	size_t n = 0;

	*ret_found = false;
	for (Binding *x = bindings_of_device(m, key); x; x = x->dev_next) {
		n++;
		*ret_found = *ret_found || x == b;
	}
	return n;
}

static void drop(Manager *m, Binding *b)
{
	binding_unlink(m, b);
	binding_free(b);
}

static void test_intern(void)
{
	char buf[32];
	const char *a, *b, *s[5000];

	CHECK(intern_count() == 0 && intern_str(NULL) == NULL);
	a = intern_str("alice");
	snprintf(buf, sizeof(buf), "ali%s", "ce");
	b = intern_str(buf);
	CHECK(a && a == b && strcmp(a, "alice") == 0 && intern_count() == 1);
	CHECK(intern_lookup("alice") == a && intern_lookup("bob") == NULL);
	CHECK(intern_ref(a) == a && intern_ref(NULL) == NULL);
	intern_unref(a);
	intern_unref(a);
	CHECK(intern_lookup("alice") == b); /* one reference left */
	intern_unref(b);
	CHECK(intern_lookup("alice") == NULL && intern_count() == 0);

	/* Many, freed in an order that moves entries in the table (backward shift). */
	for (size_t i = 0; i < ELEMENTSOF(s); i++) {
		snprintf(buf, sizeof(buf), "session-%zu", i);
		s[i] = intern_str(buf);
		CHECK(s[i]);
	}
	CHECK(intern_count() == ELEMENTSOF(s));
	for (size_t i = 0; i < ELEMENTSOF(s); i += 3)
		intern_unref(s[i]);
	for (size_t i = 0; i < ELEMENTSOF(s); i++) {
		snprintf(buf, sizeof(buf), "session-%zu", i);
		CHECK(intern_lookup(buf) == (i % 3 == 0 ? NULL : s[i]));
	}
	for (size_t i = 0; i < ELEMENTSOF(s); i++)
		if (i % 3 != 0)
			intern_unref(s[i]);
	CHECK(intern_count() == 0 && intern_bytes() == 0);

	/* intern_replace(): the old value is given back, the same value keeps its copy. */
	a = intern_str("x");
	CHECK(intern_replace(&a, "y") == 0 && strcmp(a, "y") == 0 && !intern_lookup("x"));
	CHECK(intern_replace(&a, a) == 0 && intern_count() == 1);
	CHECK(intern_replace(&a, NULL) == 0 && !a && intern_count() == 0);
}

static void test_index(void)
{
	Manager m = {};
	Binding *a1, *a2, *a3, *b1, *c1, *none;
	bool found;

	a1 = make(&m, 1, KEY_A, NODE_A);
	a2 = make(&m, 2, KEY_A, NODE_A);
	b1 = make(&m, 3, KEY_B, "/dev/hidraw1");
	c1 = make(&m, 4, NULL, NODE_C); /* no sysfs path: filed under its device node */
	none = make(&m, 5, NULL, NULL); /* a salvaged binding with no key */
	a3 = make(&m, 6, KEY_A, "/dev/hidraw9");
	binding_link(&m, a1);
	binding_link(&m, b1);
	binding_link(&m, a2);
	binding_link(&m, c1);
	binding_link(&m, none);
	binding_link(&m, a3);
	CHECK(m.n_bindings == 6);

	/* exactly the bindings of each key, whatever order they were linked in */
	CHECK(count(&m, KEY_A, a1, &found) == 3 && found);
	CHECK(count(&m, KEY_A, a2, &found) == 3 && found);
	CHECK(count(&m, KEY_A, a3, &found) == 3 && found);
	CHECK(count(&m, KEY_B, b1, &found) == 1 && found);
	CHECK(count(&m, NODE_C, c1, &found) == 1 && found);
	/* a node is a key only for a binding without a sysfs path */
	CHECK(count(&m, NODE_A, NULL, &found) == 0);
	CHECK(count(&m, "/sys/devices/other", NULL, &found) == 0);
	CHECK(count(&m, NULL, NULL, &found) == 0);
	CHECK(!bindings_overflow(&m));

	/* a state change does not move a binding: the index files it in every state */
	a2->state = BINDING_DONE;
	CHECK(count(&m, KEY_A, a2, &found) == 3 && found);

	/* unlink from the middle, the head and the tail of a chain */
	drop(&m, a2);
	CHECK(count(&m, KEY_A, a2, &found) == 2 && !found);
	CHECK(manager_binding_find(&m, "00000000000000000000000000000002") == NULL);
	CHECK(manager_binding_find(&m, "00000000000000000000000000000001") == a1);

	/* the key comes back under another device (proof of return): filed anew */
	CHECK(binding_set_device(a1, KEY_B, "/dev/hidraw1") == 0);
	CHECK(count(&m, KEY_A, a1, &found) == 1 && !found);
	CHECK(count(&m, KEY_B, a1, &found) == 2 && found);
	/* a sysfs path learnt later: no longer under the node */
	CHECK(binding_set_device(c1, KEY_A, NODE_C) == 0);
	CHECK(count(&m, NODE_C, c1, &found) == 0);
	CHECK(count(&m, KEY_A, c1, &found) == 2 && found);

	drop(&m, a3);
	drop(&m, c1);
	CHECK(count(&m, KEY_A, NULL, &found) == 0 && m.by_device.n == 1);
	drop(&m, b1);
	drop(&m, a1);
	drop(&m, none);
	CHECK(m.n_bindings == 0 && !m.bindings && m.by_device.n == 0 && !m.by_device.keys);
	/* every interned string was given back with the last binding that held it */
	CHECK(intern_count() == 0);
}

/* Many bindings on few keys, and many keys: the table grows, shrinks and stays exact. */
static void test_many(void)
{
	enum { N = 20000, KEYS = 100 };
	Manager m = {};
	static Binding *b[N];
	char key[64];
	size_t per_key[KEYS] = {};

	for (unsigned i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "/sys/devices/key%u", i % KEYS);
		b[i] = make(&m, i, key, NULL);
		binding_link(&m, b[i]);
		per_key[i % KEYS]++;
	}
	CHECK(m.by_device.n == KEYS);
	/* the oldest half goes, in link order */
	for (unsigned i = 0; i < N / 2; i++) {
		drop(&m, b[i]);
		per_key[i % KEYS]--;
	}
	for (unsigned k = 0; k < KEYS; k++) {
		bool found;

		snprintf(key, sizeof(key), "/sys/devices/key%u", k);
		CHECK(count(&m, key, NULL, &found) == per_key[k]);
	}
	for (unsigned i = N / 2; i < N; i++) {
		bool found;

		snprintf(key, sizeof(key), "/sys/devices/key%u", i % KEYS);
		CHECK(count(&m, key, b[i], &found) > 0 && found);
	}
	for (unsigned i = N; i-- > N / 2;)
		drop(&m, b[i]);
	CHECK(m.n_bindings == 0 && m.by_device.n == 0 && intern_count() == 0);
}

int main(void)
{
	test_intern();
	test_index();
	test_many();
	printf("test-binding-index: ok\n");
	return 0;
}
