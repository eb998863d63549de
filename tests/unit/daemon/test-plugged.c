/* test-plugged.c: daemon/plugged.c — the FIDO usage-page check of a HID report descriptor,
 * the set's add/remove (a non-FIDO device is never in it; "add" again replaces; sorted by
 * syspath), the known-key memory (per entry and generation: a remove, a replug or a swap
 * at the same node forgets it), and, under keyward-testbed, the fill from udev (start, lost
 * events; a refill forgets the memory). */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "plugged.h"
#include "util.h"

static const uint8_t fido_desc[] = {0x06, 0xd0, 0xf1, 0x09, 0x01, 0xa1, 0x01, 0x09, 0x20, 0x15,
        0x00, 0x26, 0xff, 0x00, 0x75, 0x08, 0x95, 0x40, 0x81, 0x02, 0xc0};
/* A boot keyboard: Generic Desktop (0x01), usage Keyboard. */
static const uint8_t keyboard_desc[] = {0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0x05, 0x07, 0x19, 0xe0,
        0x29, 0xe7, 0x15, 0x00, 0x25, 0x01, 0x75, 0x01, 0x95, 0x08, 0x81, 0x02, 0xc0};
/* A long item first, then the FIDO page. */
static const uint8_t long_then_fido[] = {
        0xfe, 0x02, 0x10, 0xaa, 0xbb, 0x06, 0xd0, 0xf1, 0x09, 0x01};
/* The FIDO page after another page: the first page decides (as libfido2). */
static const uint8_t other_then_fido[] = {0x05, 0x01, 0x06, 0xd0, 0xf1};

static void test_descriptor(void)
{
	CHECK(plugged_descriptor_is_fido(fido_desc, sizeof(fido_desc)));
	CHECK(!plugged_descriptor_is_fido(keyboard_desc, sizeof(keyboard_desc)));
	CHECK(plugged_descriptor_is_fido(long_then_fido, sizeof(long_then_fido)));
	CHECK(!plugged_descriptor_is_fido(other_then_fido, sizeof(other_then_fido)));
	/* truncated in the middle of the usage page's data, or of a long item */
	CHECK(!plugged_descriptor_is_fido(fido_desc, 2));
	CHECK(!plugged_descriptor_is_fido(long_then_fido, 2));
	CHECK(!plugged_descriptor_is_fido(fido_desc, 0));
	/* a 4-byte usage page (size code 3) */
	CHECK(plugged_descriptor_is_fido((const uint8_t[]){0x07, 0xd0, 0xf1, 0x00, 0x00}, 5));
	CHECK(!plugged_descriptor_is_fido((const uint8_t[]){0x07, 0xd0, 0xf1, 0x01, 0x00}, 5));
}

static void test_set(void)
{
	PluggedSet *s = plugged_new(NULL);
	_cleanup_strv_free_ char **nodes = NULL;
	char sys[64], node[32];

	CHECK(s);
	CHECK_INT(plugged_count(s), 0);
	CHECK_INT(plugged_add(s, "/sys/b/hidraw1", "/dev/hidraw1", true), 1);
	CHECK_INT(plugged_add(s, "/sys/a/hidraw0", "/dev/hidraw0", true), 1);
	/* a keyboard's hidraw: not in the set */
	CHECK_INT(plugged_add(s, "/sys/c/hidraw2", "/dev/hidraw2", false), 0);
	CHECK_INT(plugged_count(s), 2);
	CHECK(!plugged_syspath(s, "/dev/hidraw2"));
	/* sorted by syspath */
	CHECK_STR(plugged_get(s, 0)->devnode, "/dev/hidraw0");
	CHECK_STR(plugged_get(s, 1)->devnode, "/dev/hidraw1");
	CHECK_STR(plugged_syspath(s, "/dev/hidraw1"), "/sys/b/hidraw1");
	/* "add" again for a known syspath replaces (a rescan, a new node) */
	CHECK_INT(plugged_add(s, "/sys/b/hidraw1", "/dev/hidraw7", true), 1);
	CHECK_INT(plugged_count(s), 2);
	CHECK(!plugged_syspath(s, "/dev/hidraw1"));
	CHECK_STR(plugged_syspath(s, "/dev/hidraw7"), "/sys/b/hidraw1");
	/* ... and a FIDO device that turns out not to be one leaves */
	CHECK_INT(plugged_add(s, "/sys/b/hidraw1", "/dev/hidraw7", false), 1);
	CHECK_INT(plugged_count(s), 1);
	/* remove: by syspath; an unknown one changes nothing */
	CHECK_INT(plugged_remove(s, "/sys/x/hidraw9"), 0);
	CHECK_INT(plugged_remove(s, "/sys/a/hidraw0"), 1);
	CHECK_INT(plugged_count(s), 0);
	CHECK_INT(plugged_add(s, "", "/dev/hidraw0", true), -EINVAL);
	/* bounded */
	for (int i = 0; i < PLUGGED_MAX + 5; i++) {
		snprintf(sys, sizeof(sys), "/sys/k/%03d/hidraw", i);
		snprintf(node, sizeof(node), "/dev/hidraw%d", i);
		CHECK(plugged_add(s, sys, node, true) >= 0);
	}
	CHECK_INT(plugged_count(s), PLUGGED_MAX);
	CHECK_INT(plugged_devnodes(s, &nodes), 0);
	CHECK_INT(strv_length(nodes), PLUGGED_MAX);
	CHECK_STR(nodes[0], "/dev/hidraw0");
	plugged_free(s);
	/* no set (no libudev): the worker enumerates itself */
	nodes = strv_free(nodes);
	CHECK_INT(plugged_devnodes(NULL, &nodes), 0);
	CHECK(!nodes);
}

static bool not_revoked(const char *cred_id, void *userdata)
{
	return !streq(cred_id, userdata);
}

static void test_known(void)
{
	PluggedSet *s = plugged_new(NULL);
	const char *id = NULL;
	uint64_t serial;
	char cred[16];

	CHECK(s);
	CHECK(!plugged_known(s, "root", NULL, NULL, &id));
	CHECK_INT(plugged_add(s, "/sys/a/hidraw0", "/dev/hidraw0", true), 1);
	CHECK_INT(plugged_add(s, "/sys/b/hidraw1", "/dev/hidraw1", true), 1);
	serial = plugged_serial(s);
	CHECK(plugged_get(s, 0)->generation != plugged_get(s, 1)->generation);
	CHECK(plugged_get(s, 1)->generation <= serial);
	CHECK_INT(plugged_remember(s, "/dev/hidraw0", serial, "root", "C0"), 1);
	CHECK_INT(plugged_remember(s, "/dev/nope", serial, "root", "C0"), 0);
	CHECK_STR(plugged_known(s, "root", NULL, NULL, &id)->devnode, "/dev/hidraw0");
	CHECK_STR(id, "C0");
	CHECK(!plugged_known(s, "alice", NULL, NULL, &id));
	/* the newest verified login wins; a revoked credential is not used */
	CHECK_INT(plugged_remember(s, "/dev/hidraw1", serial, "root", "C1"), 1);
	CHECK_STR(plugged_known(s, "root", NULL, NULL, &id)->devnode, "/dev/hidraw1");
	CHECK_STR(plugged_known(s, "root", not_revoked, "C1", &id)->devnode, "/dev/hidraw0");
	CHECK_STR(id, "C0");
	CHECK_STR(plugged_known(s, "root", not_revoked, "C0", &id)->devnode, "/dev/hidraw1");
	/* a key swapped at the same syspath and node (remove + add, or a replayed add): a new
	 * generation; the old memory is gone and a request older than the add cannot write
	 * to it */
	CHECK_INT(plugged_remove(s, "/sys/a/hidraw0"), 1);
	CHECK_INT(plugged_add(s, "/sys/a/hidraw0", "/dev/hidraw0", true), 1);
	CHECK(plugged_get(s, 0)->generation > serial);
	CHECK_INT(plugged_get(s, 0)->n_known, 0);
	CHECK_INT(plugged_remember(s, "/dev/hidraw0", serial, "root", "C0"), 0);
	CHECK(!plugged_known(s, "root", not_revoked, "C1", &id));
	CHECK_INT(plugged_add(s, "/sys/b/hidraw1", "/dev/hidraw1", true), 1); /* replayed add */
	CHECK(!plugged_known(s, "root", NULL, NULL, &id));
	/* bounded per key, oldest dropped; the same pair again moves to the front */
	serial = plugged_serial(s);
	for (int i = 0; i < PLUGGED_KNOWN_MAX + 3; i++) {
		snprintf(cred, sizeof(cred), "C%d", i);
		CHECK_INT(plugged_remember(s, "/dev/hidraw0", serial, "root", cred), 1);
	}
	CHECK_INT(plugged_get(s, 0)->n_known, PLUGGED_KNOWN_MAX);
	CHECK_STR(plugged_get(s, 0)->known[PLUGGED_KNOWN_MAX - 1].cred_id, "C3");
	CHECK_INT(plugged_remember(s, "/dev/hidraw0", serial, "root", "C5"), 1);
	CHECK_INT(plugged_get(s, 0)->n_known, PLUGGED_KNOWN_MAX);
	CHECK_STR(plugged_get(s, 0)->known[0].cred_id, "C5");
	CHECK_STR(plugged_known(s, "root", NULL, NULL, &id)->devnode, "/dev/hidraw0");
	CHECK_STR(id, "C5");
	/* removed: forgotten */
	CHECK_INT(plugged_remove(s, "/sys/a/hidraw0"), 1);
	CHECK(!plugged_known(s, "root", NULL, NULL, &id));
	plugged_free(s);
}

/* Under keyward-testbed --keys 2: the fill from udev finds both emulated keys (their
 * descriptors say FIDO), and a fill after the set lost track (what a lost-events report
 * triggers) finds them again. */
static void test_testbed(void)
{
	struct udev *udev = udev_new();
	PluggedSet *s;

	CHECK(udev);
	s = plugged_new(udev);
	CHECK(s);
	CHECK_INT(plugged_refill(s), 0);
	CHECK_INT(plugged_count(s), 2);
	CHECK_STR(plugged_get(s, 0)->devnode, "/dev/hidraw0");
	CHECK_STR(plugged_get(s, 1)->devnode, "/dev/hidraw1");
	CHECK_INT(plugged_devnode_is_fido("/dev/hidraw0"), 1);
	CHECK(plugged_devnode_is_fido("/dev/null") < 0);
	/* a refill (lost events) forgets the known keys: it cannot tell a swap */
	CHECK_INT(plugged_remember(s, "/dev/hidraw0", plugged_serial(s), "root", "C0"), 1);
	CHECK_INT(plugged_refill(s), 0);
	CHECK(!plugged_known(s, "root", NULL, NULL, NULL));
	/* the set missed a remove and an add: a stale entry and a missing one */
	CHECK_INT(plugged_remove(s, plugged_get(s, 0)->syspath), 1);
	CHECK_INT(plugged_add(s, "/sys/gone/hidraw5", "/dev/hidraw5", true), 1);
	CHECK_INT(plugged_refill(s), 0);
	CHECK_INT(plugged_count(s), 2);
	CHECK(!plugged_syspath(s, "/dev/hidraw5"));
	CHECK(plugged_syspath(s, "/dev/hidraw0"));
	plugged_free(s);
	udev_unref(udev);
}

int main(int argc, char **argv)
{
	if (argc > 1 && streq(argv[1], "testbed"))
		test_testbed();
	else {
		test_descriptor();
		test_set();
		test_known();
	}
	printf("ok\n");
	return 0;
}
