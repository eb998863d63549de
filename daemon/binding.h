/* binding.h: the binding table (state layer) — bindings of logind sessions / elevated
 * processes to the physical key that authenticated them, kept on disk under runtime_dir so
 * that they survive a daemon restart, and pruned of sessions/processes that ended
 * meanwhile. BindSession (session.c) adds to it, removal.c acts on it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "manager.h"

typedef enum BindingState {
	BINDING_BOUND,  /* the key is plugged in (as far as we know) */
	BINDING_GRACE,  /* the key is gone; waiting up to grace_ms for it to be proved back */
	BINDING_ACTING, /* the removal action is under way (lock verification, process exit) */
	BINDING_DONE,   /* the removal action has finished: the binding is inert until unbound */
	_BINDING_STATE_MAX,
	_BINDING_STATE_INVALID = -EINVAL,
} BindingState;

/* Caps on what a binding file may hold (the files are ours, but never trusted blindly). */
#define BINDING_FILE_MAX  8192
#define BINDING_VALUE_MAX 1024
#define BINDINGS_SUBDIR   "bindings"

struct Binding {
	Manager *manager;
	char id[KEYWARD_TOKEN_CHARS + 1]; /* binding id (random hex), also the file name */
	/* (small enums in a byte each, and grace_ms: they fill the padding after id) */
	uint8_t removal;         /* PolicyRemoval: what the rule says about removal */
	uint8_t on_lock_failure; /* PolicyLockFailure */
	uint8_t state : 7;       /* BindingState */
	/* Salvaged from a file binding_parse() refused (binding_salvage()): acted on at
	 * start; its file is left as it was found, for an administrator to inspect. */
	bool corrupt : 1;
	uint32_t grace_ms;
	/* The strings are interned (intern.h): shared with the other bindings that hold the
	 * same value, set with intern_replace() and never freed directly. */
	const char *user;
	const char *session_id;   /* logind session id, or NULL for an elevation */
	const char *session_path; /* logind object path (from GetSession), NULL until resolved */
	const char *session_type; /* logind Type ("x11", "wayland", "tty", ...), NULL if unknown */
	const char *service, *tty;
	const char *cred_id, *cred_label;
	/* The physical key (from the AuthToken); the device index (binding-index.c) files the
	 * binding under sysfs_path, else hidraw_path: change them with binding_set_device(). */
	const char *hidraw_path, *sysfs_path;
	/* What the policy rule that matched at bind time says about removal. */
	const char *rule;      /* "file:line" or "default" */
	const char *rule_name; /* the rule's name (NULL in a binding file of an older keywardd) */
	const char *policy;    /* digest of the policy the login's decision came from (or NULL) */
	uint64_t pid_start;    /* start time of pid (/proc/PID/stat field 22), 0 if unknown */
	uint64_t created_ms;   /* realtime */
	/* An elevation approved through the forwarded SSH agent (no device): it is ended at
	 * this realtime (remote_lifetime), by expiry_timer (removal.c); 0: no lifetime. */
	uint64_t expires_ms;
	sd_event_source *expiry_timer;
	/* Seq of the first audit record of a removal action that has no outcome record yet
	 * (0: none pending). Persisted: a keywardd that dies mid-action leaves it in the file
	 * and the next start records the outcome "interrupted" (binding_outcome()). */
	uint64_t action_seq;
	uid_t uid;
	pid_t pid;  /* elevated process (it and its descendants are ended), or the PAM caller */
	pid_t pgid; /* process group of pid at bind time: recorded, never signalled */
	uint32_t lock_verify_ms;

	/* Run time only (daemon/removal.c, session.c): NULL while the binding is idle. */
	struct BindingRun *run;

	struct Binding *next, *prev;         /* m->bindings */
	struct Binding *dev_next, *dev_prev; /* the bindings of the same key (binding-index.c) */
};

/* What a binding holds only while something is under way (removal action, resolving its
 * session at bind time): binding_run() makes it, binding_run_release() frees it when idle. */
typedef struct BindingRun {
	const char *removed_device;    /* sysfs path the key had when it went away (interned) */
	sd_event_source *grace_timer;  /* grace_ms after removal */
	sd_event_source *verify_timer; /* lock_verify_ms after Session.Lock */
	sd_event_source *kill_timer;   /* end-elevation: polls the tree, SIGKILL after SIGTERM */
	struct ProcessId *tree;        /* end-elevation: the processes signalled so far */
	size_t n_tree;
	uint64_t signal_ms;        /* CLOCK_MONOTONIC of the last signal sent to the tree */
	sd_bus_slot *call_slot;    /* pending logind call of the action */
	sd_bus_slot *match_slot;   /* PropertiesChanged of the session (LockedHint) */
	sd_bus_slot *resolve_slot; /* GetSession / Get Type at bind time */
	bool lock_requested;       /* Session.Lock answered */
	bool lock_hint;            /* LockedHint was seen true while verifying */
	bool kill_sent;            /* end-elevation: SIGKILL was sent */
	bool unbind_requested;     /* UnbindSession while ending the elevation: drop when done */
} BindingRun;

/* The outcome record of B's pending removal action (OUTCOME: done, verified, escalated,
 * failed, gone, interrupted; DETAIL the machine cause) and clears b->action_seq. A no-op
 * when no action is pending. Does not save the file (the caller saves or drops). */
void binding_outcome(Binding *b, const char *outcome, const char *detail, const char *message);

const char *binding_state_to_string(BindingState s);
BindingState binding_state_from_string(const char *s);

/* binding-file.c: a new binding (M may be NULL outside the daemon), freeing it (with its
 * pending timers/calls), and the file format. */
Binding *binding_new(Manager *m);
void binding_free(Binding *b);
/* B's run-time state, made if missing (NULL: out of memory). */
BindingRun *binding_run(Binding *b);
/* Frees B's run-time state if nothing is pending in it any more. */
void binding_run_release(Binding *b);
/* Whether V may be stored (no control characters, at most BINDING_VALUE_MAX). */
bool binding_value_ok(const char *v);
/* B as the text of its file; -EINVAL if a value cannot be stored. */
int binding_format(const Binding *b, char **ret, size_t *ret_len);
/* Parses the text of file ID (modified in place); -EBADMSG with *ret_why (static) for a
 * file that is not exactly what binding_format() writes (unknown, repeated or missing
 * keys, bad numbers, control characters). */
int binding_parse(Manager *m, const char *id, char *text, Binding **ret, const char **ret_why);
/* What can still be acted on in the text of file ID that binding_parse() refused (LEN
 * bytes, NULs included): the lines with a known key and a valid value, but not a key
 * given twice with different values, nor an unterminated last line (it may be cut short).
 * A session id, or a pid with its start time, identifies something; nothing else does.
 * Returns 0 (nothing identified), 1 or 2, with that many corrupt bindings (->corrupt, state
 * bound) in RET, each with the removal action to apply at once: the rule's where it can be
 * read and applies to what is identified; else the strictest — terminate for a session,
 * end-elevation for a process, two bindings when both are named; *ret_rule_action tells
 * whether that is the rule's action as read. */
int binding_salvage(Manager *m, const char *id, const char *text, size_t len,
        Binding *ret[static 2], bool *ret_rule_action);
/* Finds a binding by id (NULL if none). */
Binding *manager_binding_find(Manager *m, const char *id);
/* "pid:N" for elevations, the session id otherwise (static buffer per call site). */
const char *binding_subject(const Binding *b, char *buf, size_t size);
/* Fills the common fields of an audit record for B. */
void binding_audit_fill(const Binding *b, AuditRecord *rec, char *subject_buf, size_t size);

/* Writes B's file (atomically) in the bindings directory. */
int binding_save(Binding *b);
/* Unlinks B from the manager, removes its file, audits session-unbind with REASON
 * (result success) and frees it. */
void binding_drop(Binding *b, const char *reason);

/* Directory of the binding files (runtime_dir/bindings), made 0700 if missing. */
int bindings_dir(Manager *m, char **ret);
/* Loads the binding files (at start); prunes elevations whose process is gone (or
 * whose pid was reused) at once, and asks logind about every session (NoSuchSession →
 * pruned) asynchronously. A file that cannot be used raises an alert (session-bind
 * record, error log) and stays; what a root-written corrupt one identifies is linked as
 * corrupt bindings (binding_salvage()) for removal.c to act on at once. Returns the number
 * loaded or -errno. */
int bindings_load(Manager *m);

/* binding-index.c: links B (new) into the manager's table and its key's index entry. */
void binding_link(Manager *m, Binding *b);
/* Takes B out of the table and the index (B is not freed). */
void binding_unlink(Manager *m, Binding *b);
/* Sets B's key (copies of SYSFS_PATH and HIDRAW_PATH, NULL allowed) and files it under
 * it: 0 or -ENOMEM (B unchanged). */
int binding_set_device(Binding *b, const char *sysfs_path, const char *hidraw_path);
/* The first binding filed under KEY (a sysfs path, or the device node of a binding with no
 * sysfs path), NULL if none; the others follow through ->dev_next. In no given order, and
 * in any state: the caller checks. */
Binding *bindings_of_device(Manager *m, const char *key);
/* Bindings the index had no room for (out of memory), through ->dev_next: every removal
 * looks at them too. */
Binding *bindings_overflow(Manager *m);
/* Frees the index table (when the last binding has gone, or at shutdown). */
void binding_index_free(Manager *m);
/* Frees every binding (shutdown: the files stay) and the start-up check. */
void bindings_free_all(Manager *m);

/* Cancels the start-up check of the bound sessions (shutdown). */
typedef struct PruneJob PruneJob;
void prune_job_free(PruneJob *j);
