/* removal.h: what keywardd does when a bound key goes away — the grace period (ended
 * only by a silent assertion proving the same key is back), the policy's action (lock
 * with LockedHint verification and escalation, terminate, end-elevation, none) and the
 * audit trail of every step. */
#pragma once

#include <stdbool.h>

#include "binding.h"
#include "manager.h"
#include "udev-watch.h"

typedef struct ProofOp ProofOp;

/* Removal state hung off the Manager (m->removal). */
typedef struct RemovalContext {
	sd_bus_slot
	        *session_removed_slot; /* logind SessionRemoved: drop bindings of ended sessions */
	ProofOp *proofs;               /* silent assertions running in worker threads */
	size_t n_proofs;
	UdevWatch *udev_watch; /* hidraw add/remove, reported to removal_key_*() */
	/* CLOCK_MONOTONIC ms after which no binding can still be in its grace period (the
	 * latest end of one started, plus slack for a late timer): until then a key plugged
	 * in looks for bindings in grace, after it costs nothing however many are bound. */
	uint64_t grace_until_ms;
} RemovalContext;

/* After the loop, policy and bus exist: loads and prunes the bindings, starts the udev
 * watch, follows SessionRemoved and acts on bound keys that are already gone. A watch
 * that cannot be started fails the start (removal would silently not be enforced). */
int removal_startup(Manager *m);
/* Before the bindings are freed: cancels timers and joins the proof workers. */
void removal_shutdown(Manager *m);

/* A hidraw device went away (udev "remove", or found missing by a rescan). WHY is the
 * audit reason: "removed", "missing-at-start", "missing-at-bind", "rescan". */
void removal_key_removed(Manager *m, const char *syspath, const char *devnode, const char *why);
/* A hidraw device appeared: proves it against bindings in their grace period. */
void removal_key_added(Manager *m, const char *syspath, const char *devnode);
/* Compares the bound keys with the hidraw devices present now; acts on the missing. */
int removal_reconcile(Manager *m, const char *why);
/* A new binding: acts at once if its key is already gone; one with a lifetime (an SSH
 * agent's elevation, expires_ms) gets its timer instead: when it fires, the elevation is
 * ended (action record reason "lifetime"). */
void removal_check_binding(Manager *m, Binding *b);

#define PROOF_MAX_CREDENTIALS 16
#define PROOF_MAX_PENDING     8
#define PROOF_TIMEOUT_MS      2000
#define END_ELEVATION_KILL_MS 1500
