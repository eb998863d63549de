/* plugged.h: the set of plugged FIDO keys (hidraw devnode + syspath), kept from udev
 * uevents instead of enumerated per login: filled once at start, updated by add/remove,
 * filled again when the monitor lost events. Lives on the event loop only; a worker thread
 * gets a copy of the device nodes (plugged_devnodes). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libudev.h>
#include <systemd/sd-event.h>

#define PLUGGED_MAX       64 /* hidraw FIDO devices kept (an outsider plugging more: ignored) */
#define PLUGGED_KNOWN_MAX 8  /* remembered (user, credential) pairs per key */

/* A credential of USER that this very key (this entry: no remove since) answered with in a
 * fully verified assertion. In memory only: never trusted across restarts. */
typedef struct PluggedKnown {
	char *user;
	char *cred_id; /* base64, as in the user's credential file */
	uint64_t seq;  /* when it was remembered (the newest wins) */
} PluggedKnown;

typedef struct PluggedKey {
	char *syspath; /* /sys/devices/.../hidraw/hidrawN */
	char *devnode; /* /dev/hidrawN */
	/* New on every add (and every refill): an entry with the same syspath and devnode
	 * but another generation is another plugging, maybe another key. */
	uint64_t generation;
	PluggedKnown known[PLUGGED_KNOWN_MAX]; /* newest first */
	size_t n_known;
} PluggedKey;

typedef struct PluggedSet PluggedSet;

/* Whether a HID report descriptor's first usage page is FIDO's (0xf1d0), as libfido2 asks
 * before it lists a hidraw device. */
bool plugged_descriptor_is_fido(const uint8_t *desc, size_t size);

/* An empty set without a monitor (tests, or no libudev: then plugged_start is not called). */
PluggedSet *plugged_new(struct udev *udev);
/* Starts the monitor on EVENT, then fills the set from udev's list of hidraw devices. */
int plugged_start(sd_event *event, struct udev *udev, PluggedSet **ret);
PluggedSet *plugged_free(PluggedSet *s);
/* Forgets the set and fills it again from udev (start; lost events). Every entry gets a new
 * generation and loses its known-key memory: a refill cannot tell a swapped key. */
int plugged_refill(PluggedSet *s);

/* A hidraw device appeared / went away. IS_FIDO: its descriptor says FIDO (the uevent path
 * asks plugged_devnode_is_fido once). Returns 1 if the set changed, 0 if not, -errno. */
int plugged_add(PluggedSet *s, const char *syspath, const char *devnode, bool is_fido);
int plugged_remove(PluggedSet *s, const char *syspath);
/* Opens DEVNODE read-only and reads its report descriptor: 1 FIDO, 0 not, -errno. */
int plugged_devnode_is_fido(const char *devnode);

size_t plugged_count(const PluggedSet *s);
const PluggedKey *plugged_get(const PluggedSet *s, size_t i);
/* The syspath of DEVNODE if it is a plugged FIDO key, else NULL. */
const char *plugged_syspath(const PluggedSet *s, const char *devnode);
/* A copy of the device nodes, sorted by syspath (NULL-terminated; for a worker thread).
 * Without a set (no libudev) *RET is NULL: plugged_enumerate() in the thread then. */
int plugged_devnodes(const PluggedSet *s, char ***ret);
/* The newest generation handed out so far: an entry whose generation is not above the
 * value taken when a request started was plugged (and not removed) all along since. */
uint64_t plugged_serial(const PluggedSet *s);
/* The known-key memory (the login's fast path, authenticate.c). Remembers that DEVNODE's
 * key answered USER's credential CRED_ID in a verified assertion, if DEVNODE's entry is
 * still the one that was plugged at SERIAL (generation <= SERIAL): 1 remembered, 0 not
 * (removed, replugged or swapped since), -ENOMEM. */
int plugged_remember(
        PluggedSet *s, const char *devnode, uint64_t serial, const char *user, const char *cred_id);
/* The key that most recently answered one of USER's credentials for which USABLE(cred_id,
 * USERDATA) holds (still registered): its entry, *RET_CRED_ID that credential; NULL if none
 * (then nothing is known: the normal search). */
const PluggedKey *plugged_known(const PluggedSet *s, const char *user,
        bool (*usable)(const char *cred_id, void *userdata), void *userdata,
        const char **ret_cred_id);

/* In a worker thread, for an op whose loop had no set: libfido2 lists the FIDO devices
 * (at most MAX). */
int plugged_enumerate(size_t max, char ***ret);
