/* testbed.h: internals of keyward-testbed — emulated FIDO2 keys on a umockdev testbed
 * (testbed-keys.c), the live control socket (testbed-ctl.c) and the private bus. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <umockdev.h>

#include "virtkey.h"

#define TESTBED_MAX_KEYS     16
#define TESTBED_CTL_LINE_MAX 512

typedef struct TestbedKeyNode TestbedKeyNode;

typedef struct TestbedKey {
	unsigned index;
	GMutex lock; /* guards vk and node state: HID I/O runs in umockdev's worker thread */
	VirtKey *vk;
	VirtKeyTouch touch;
	uint32_t touch_delay_ms;
	VirtKeyCounter counter;
	uint8_t aaguid[16];
	char serial[16];
	char *state_path;
	TestbedKeyNode *node; /* current plug instance, NULL while unplugged */
	GPtrArray *old_nodes; /* earlier plug instances, kept for clients still holding them open */
	char *last_devnode;   /* for `list` while unplugged */
	char *last_syspath;
} TestbedKey;

typedef struct Testbed {
	UMockdevTestbed *tb;
	/* umockdev's worker thread, which runs our HID handlers (so it uses OpenSSL and
	 * libcbor through the keys). umockdev only asks it to quit when the testbed object
	 * is finalized and never joins it: we hold a reference and join it ourselves
	 * (testbed_worker_join), before the keys are freed and before exit handlers run. */
	GThread *worker;
	GMutex worker_lock;
	GCond worker_cond;
	char *tmpdir;    /* ours, removed at exit */
	char *state_dir; /* --state or tmpdir/state */
	char *ca_path;
	char *ctl_path;
	TestbedKey *keys[TESTBED_MAX_KEYS];
	unsigned n_keys;
	unsigned next_hidraw; /* hidrawN names are never reused (umockdev asserts) */
	unsigned next_hid_seq;
	/* defaults for new keys */
	const char *initial_pin;
	uint8_t aaguid[16];
	VirtKeyTouch touch;
	uint32_t touch_delay_ms;
	int ctl_fd;
	guint ctl_watch;
} Testbed;

/* testbed-keys.c */
int testbed_key_add(Testbed *t, const uint8_t aaguid[16], TestbedKey **ret);
int testbed_key_plug(Testbed *t, TestbedKey *k);
/* ret_emitted_ns (may be NULL): CLOCK_MONOTONIC just before the hidraw "remove" uevent. */
int testbed_key_unplug(Testbed *t, TestbedKey *k, uint64_t *ret_emitted_ns);
void testbed_key_set_touch(TestbedKey *k, VirtKeyTouch touch, uint32_t delay_ms);
void testbed_key_set_counter(TestbedKey *k, VirtKeyCounter mode);
void testbed_key_free(TestbedKey *k);
/* Finds umockdev's worker thread (a handshake on a private ioctl socket) and keeps a
 * reference to it. Call right after umockdev_testbed_new(). */
int testbed_worker_grab(Testbed *t);
/* Finalizes t->tb (umockdev quits its worker loop) and joins the worker thread: when this
 * returns no HID handler runs or will run, and the worker's thread-local OpenSSL state has
 * been freed. */
void testbed_worker_join(Testbed *t);
/* Prints one `list` line for K into S. */
void testbed_key_describe(TestbedKey *k, GString *s);

/* testbed-ctl.c */
int testbed_ctl_start(Testbed *t);
void testbed_ctl_stop(Testbed *t);
int testbed_ctl_client(int argc, char *argv[]);

int parse_aaguid(const char *s, uint8_t ret[16]);
void format_aaguid(const uint8_t a[16], char buf[static 37]);
