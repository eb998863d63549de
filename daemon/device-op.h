/* device-op.h: one pending device operation (Authenticate, Enroll). libfido2 calls block,
 * so each operation runs in its own thread; the thread touches only the DeviceOp (copies
 * of everything it needs), signals completion through an eventfd watched by the event
 * loop, and the loop joins it and replies. Cancel, caller disconnect (NameOwnerChanged) and
 * the deadline reply at once and fido_dev_cancel() the key the thread is using. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <fido.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "creds.h"
#include "policy.h"
#include "worker.h"

/* The owner of an op, for its kind's callbacks (authenticate.c, enroll.c); device-op.c
 * never looks inside it. */
typedef struct Manager Manager;

#define DEVICE_OP_MAX          64
#define DEVICE_OP_MAX_PER_UID  2  /* non-root callers: one conversation, one spare */
#define DEVICE_OP_MAX_NON_ROOT 32 /* all non-root callers together */
#define DEVICE_OP_MAX_ACTIVE   16 /* keys one op uses at once (parallel probe) */

typedef enum DeviceOpKind {
	DEVICE_OP_AUTHENTICATE,
	DEVICE_OP_ENROLL,
	_DEVICE_OP_KIND_MAX,
} DeviceOpKind;

typedef struct DeviceOp DeviceOp;

/* The pending ops (doubly linked) and the loop their completions come in on. */
typedef struct DeviceOpSet {
	sd_event *event;
	DeviceOp *head;
	size_t n;
	sd_bus_slot *name_slot;  /* NameOwnerChanged: callers that disconnect */
	atomic_uint root_active; /* root's ops whose thread runs (device_op_yield_to_root) */
	_Atomic uint64_t root_expected_until_ms; /* a root login is about to use the keys */
} DeviceOpSet;

typedef struct DeviceOpVTable {
	void (*work)(DeviceOp *op);     /* in the thread: device I/O only */
	void (*complete)(DeviceOp *op); /* in the loop: verify, store, audit, reply */
	/* in the loop: reply now because of cancel/disconnect/deadline (REASON:
	 * "cancelled" or "timeout"); the thread may still run. */
	void (*abort)(DeviceOp *op, const char *reason);
	void (*done)(DeviceOp *op); /* frees kind-specific data */
} DeviceOpVTable;

struct DeviceOp {
	DeviceOpSet *set;
	Manager *manager; /* owner, for the vtable */
	DeviceOpKind kind;
	const DeviceOpVTable *vtable;
	sd_bus_message *request; /* ref'd: the reply is deferred */
	char *sender;            /* caller's unique bus name (Cancel matches on it) */
	uid_t caller_uid;
	sd_event_source *deadline_source;
	Worker *worker; /* the thread doing the device I/O (worker.h) */
	bool replied;

	pthread_mutex_t lock; /* guards the three fields below */
	/* The keys the op's threads have open (for fido_dev_cancel): one per key probed in
	 * parallel. */
	fido_dev_t *active_devs[DEVICE_OP_MAX_ACTIVE];
	size_t n_active;
	bool cancel_requested;

	/* Completion order: stamped by the thread while it still holds the key, so ops that
	 * finish together are completed in the order the key answered them (sign counters
	 * must be checked in that order). 0 = not stamped. */
	uint64_t seq;

	uint32_t timeout_ms; /* per device operation (fido_dev_set_timeout) */
	void *data;          /* kind-specific request/result (authenticate.c, enroll.c) */

	DeviceOp *next, *prev;
};

int device_op_init(void); /* fido_init(), once */

/* Creates an op for REQUEST (refs it, tracks its sender). Fails with -EBUSY past
 * DEVICE_OP_MAX pending ops. DATA is owned by the op from now on (vtable->done). */
int device_op_new(DeviceOpSet *set, Manager *owner, DeviceOpKind kind, const DeviceOpVTable *vt,
        sd_bus_message *request, uid_t caller_uid, uint32_t timeout_ms, void *data, DeviceOp **ret);
/* Starts the thread and the deadline (timeout_ms + grace). On failure the op is freed. */
int device_op_start(DeviceOp *op);

/* In the op's threads: register/unregister a key in use (so a cancel reaches it; a key
 * registered after the cancel is cancelled at once), and ask whether the op was cancelled.
 * Returns -EBUSY past DEVICE_OP_MAX_ACTIVE keys (the key must not be used then). */
int device_op_add_active(DeviceOp *op, fido_dev_t *dev);
void device_op_remove_active(DeviceOp *op, fido_dev_t *dev);
bool device_op_cancelled(DeviceOp *op);
/* In the thread of a non-root caller's op, before it opens a key: waits while root's ops
 * (the PAM applications') use the keys, so that a user's requests never keep a login's key
 * busy. Returns at once for root's ops, or when OP is cancelled (its deadline). */
void device_op_yield_to_root(DeviceOp *op);
/* In the loop: root's Check handed out a decision that asks for a key; its Authenticate
 * follows within moments, and non-root key searches yield for MS already. */
void device_op_expect_root(DeviceOpSet *set, uint32_t ms);
/* In the thread, right after the key answered (before closing it): orders completion. */
void device_op_stamp(DeviceOp *op);

/* Cancels OP (replies with REASON via vtable->abort if no reply was sent). */
void device_op_cancel(DeviceOp *op, const char *reason);
/* Cancels the pending ops whose caller is SENDER; returns how many. */
int device_op_cancel_sender(DeviceOpSet *set, const char *sender);
void device_op_cancel_all(DeviceOpSet *set);
/* Joins all threads and frees all ops (shutdown). */
void device_op_free_all(DeviceOpSet *set);
