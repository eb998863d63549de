/* removal.c: a bound key went away — grace period, proof of return by a silent assertion
 * (worker thread), the removal action (lock + LockedHint verification + escalation,
 * terminate, end-elevation, none) and one audit record per step (failure until done). */
#include "removal.h"

#include <signal.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <time.h>

#include <fido.h>

#include "creds.h"
#include "fido-util.h"
#include "intern.h"
#include "directory-source.h"
#include "log.h"
#include "logind.h"
#include "process.h"
#include "util.h"
#include "worker.h"

static void binding_act(Binding *b, const char *why);

/* How late a grace timer may fire and still find its binding in grace (removal.h). */
#define GRACE_SLACK_MS (60 * 1000)

static RemovalContext *ctx(Manager *m)
{
	return m->removal;
}

/* One audit record about B. RESULT/REASON/MESSAGE/DETAIL as given. */
static void audit_binding(Binding *b, AuditEvent event, AuditResult result, const char *reason,
        const char *message, const char *detail)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	char subject[32];

	rec.event = event;
	binding_audit_fill(b, &rec, subject, sizeof(subject));
	rec.reason = reason;
	rec.message = message;
	rec.detail = detail;
	rec.result = result;
	if (manager_audit(b->manager, &rec) < 0 || event != AUDIT_EVENT_ACTION || b->action_seq)
		return;
	/* The removal's first action record: its outcome record names it. Persisted, so a
	 * restart can conclude it. */
	b->action_seq = audit_log_seq(b->manager->audit);
	if (binding_save(b) < 0)
		log_warning("Cannot record the pending action of binding %s.", b->id);
}

static void binding_cancel_pending(Binding *b)
{
	if (!b->run)
		return;
	b->run->grace_timer = sd_event_source_disable_unref(b->run->grace_timer);
	b->run->verify_timer = sd_event_source_disable_unref(b->run->verify_timer);
	b->run->kill_timer = sd_event_source_disable_unref(b->run->kill_timer);
	free(b->run->tree);
	b->run->tree = NULL;
	b->run->n_tree = 0;
	b->run->call_slot = sd_bus_slot_unref(b->run->call_slot);
	b->run->match_slot = sd_bus_slot_unref(b->run->match_slot);
	binding_run_release(b);
}

/* The action has run its course; the binding stays (inert) until unbound. */
static void binding_done(Binding *b)
{
	int r;

	binding_cancel_pending(b);
	b->state = BINDING_DONE;
	r = binding_save(b);
	if (r < 0)
		log_error_errno(r, "Cannot record that binding %s has acted: %m", b->id);
}

/* --- terminate ------------------------------------------------------------------------ */

static int on_terminate_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	Binding *b = userdata;
	bool escalation = b->run->lock_requested || b->removal == POLICY_REMOVAL_LOCK;
	AuditEvent ev = escalation ? AUDIT_EVENT_LOCK_ESCALATED : AUDIT_EVENT_ACTION;
	const char *name = NULL, *message = NULL;

	b->run->call_slot = sd_bus_slot_unref(b->run->call_slot);
	if (logind_reply_failed(reply, &name, &message) && !logind_error_is_gone(name)) {
		log_error(
		        "SECURITY: cannot terminate session %s of %s after its key was removed: %s",
		        b->session_id, strna(b->user), strna(message));
		audit_binding(b, ev, AUDIT_RESULT_FAILURE, "terminate-failed", message, name);
		if (escalation)
			audit_binding(b, AUDIT_EVENT_LOCK_FAILED, AUDIT_RESULT_FAILURE,
			        "terminate-failed", "The session is neither locked nor terminated.",
			        NULL);
		binding_outcome(b, "failed", "terminate-failed", message);
		binding_done(b);
		return 0;
	}
	audit_binding(b, ev, AUDIT_RESULT_SUCCESS, name ? "session-ended" : "terminated",
	        !escalation         ? NULL
	        : b->run->lock_hint ? "The lock did not hold (LockedHint was set, then cleared "
	                              "within lock_verify): the session was terminated."
	                            : "The lock was not confirmed: the session was terminated.",
	        "terminate");
	log_notice("Session %s of %s %s after its key was removed.", b->session_id, strna(b->user),
	        name ? "had already ended" : "terminated");
	binding_outcome(b,
	        name         ? "gone"
	        : escalation ? "escalated"
	                     : "done",
	        name ? "session-ended" : "terminated", NULL);
	binding_drop(b, "session-terminated");
	return 0;
}

static void terminate_start(Binding *b)
{
	bool escalation = b->removal == POLICY_REMOVAL_LOCK;
	int r;

	b->state = BINDING_ACTING;
	r = logind_terminate_session(
	        b->manager->bus, b->session_id, on_terminate_reply, b, &b->run->call_slot);
	if (r < 0) {
		log_error_errno(r, "SECURITY: cannot ask logind to terminate session %s: %m",
		        b->session_id);
		audit_binding(b, escalation ? AUDIT_EVENT_LOCK_ESCALATED : AUDIT_EVENT_ACTION,
		        AUDIT_RESULT_FAILURE, "terminate-failed", strerror(-r), "terminate");
		if (escalation)
			audit_binding(b, AUDIT_EVENT_LOCK_FAILED, AUDIT_RESULT_FAILURE,
			        "terminate-failed", "The session is neither locked nor terminated.",
			        NULL);
		binding_outcome(b, "failed", "terminate-failed", strerror(-r));
		binding_done(b);
	}
}

/* --- lock ----------------------------------------------------------------------------- */

static void lock_failed(Binding *b, const char *reason, const char *message)
{
	b->run->verify_timer = sd_event_source_disable_unref(b->run->verify_timer);
	b->run->match_slot = sd_bus_slot_unref(b->run->match_slot);
	b->run->call_slot = sd_bus_slot_unref(b->run->call_slot);
	if (b->on_lock_failure == POLICY_LOCK_FAILURE_TERMINATE) {
		log_warning("Session %s of %s: %s; terminating it (on_lock_failure = terminate).",
		        b->session_id, strna(b->user), message);
		terminate_start(b);
		return;
	}
	log_error("SECURITY: session %s of %s is NOT locked after its key was removed: %s "
	          "(on_lock_failure = alert).",
	        b->session_id, strna(b->user), message);
	audit_binding(b, AUDIT_EVENT_LOCK_FAILED, AUDIT_RESULT_FAILURE, reason, message, "alert");
	binding_outcome(b, "failed", reason, message);
	binding_done(b);
}

static void lock_verified(Binding *b)
{
	b->run->verify_timer = sd_event_source_disable_unref(b->run->verify_timer);
	/* The locker may report before logind's reply to Lock has arrived. */
	if (!b->run->lock_requested) {
		b->run->lock_requested = true;
		audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_SUCCESS, "lock-requested",
		        "logind was asked to lock the session.", NULL);
	}
	audit_binding(b, AUDIT_EVENT_LOCK_VERIFIED, AUDIT_RESULT_SUCCESS, "locked",
	        "logind reports the session locked (LockedHint).", NULL);
	log_info("Session %s of %s is locked (LockedHint).", b->session_id, strna(b->user));
	binding_outcome(b, "verified", "locked", NULL);
	binding_done(b);
}

/* The end of lock_verify: the lock counts only if LockedHint is true NOW. A locker that
 * set it and went away (crashed, failed to grab the screen: xss-lock sets it even when
 * its locker cannot start, then clears it) is not a lock. */
static int on_final_locked_hint(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	Binding *b = userdata;
	char message[160];
	int locked = 0;

	b->run->call_slot = sd_bus_slot_unref(b->run->call_slot);
	if (b->state != BINDING_ACTING)
		return 0;
	if (!logind_reply_failed(reply, NULL, NULL) &&
	        sd_bus_message_read(reply, "v", "b", &locked) >= 0 && locked) {
		lock_verified(b);
		return 0;
	}
	snprintf(message, sizeof(message),
	        b->run->lock_hint ? "LockedHint was set but did not stay true for %u ms"
	                          : "LockedHint is not true %u ms after the lock request",
	        b->lock_verify_ms);
	lock_failed(b, "not-locked", message);
	return 0;
}

static int on_verify_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	Binding *b = userdata;
	char message[128];
	int r;

	b->run->verify_timer = sd_event_source_disable_unref(b->run->verify_timer);
	if (!b->run->lock_requested) {
		snprintf(message, sizeof(message),
		        "logind did not answer the Lock call within %u ms", b->lock_verify_ms);
		audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_FAILURE, "lock-call-failed",
		        "logind did not answer the Lock call in time.", NULL);
		lock_failed(b, "not-locked", message);
		return 0;
	}
	b->run->call_slot = sd_bus_slot_unref(b->run->call_slot);
	r = logind_get_session_property(b->manager->bus, b->session_path, "LockedHint",
	        on_final_locked_hint, b, &b->run->call_slot);
	if (r < 0) {
		snprintf(message, sizeof(message), "cannot read LockedHint: %s", strerror(-r));
		lock_failed(b, "not-locked", message);
	}
	return 0;
}

static int on_properties_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error)
{
	Binding *b = userdata;
	int hint;

	if (b->state != BINDING_ACTING || b->removal != POLICY_REMOVAL_LOCK)
		return 0;
	hint = logind_properties_changed_bool(msg, "LockedHint");
	if (hint >= 0) {
		b->run->lock_hint = b->run->lock_hint || hint;
		log_debug("Session %s of %s: LockedHint=%s.", b->session_id, strna(b->user),
		        hint ? "yes" : "no");
	}
	return 0;
}

static int on_locked_hint(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	Binding *b = userdata;
	int locked = 0;

	b->run->call_slot = sd_bus_slot_unref(b->run->call_slot);
	if (!logind_reply_failed(reply, NULL, NULL) &&
	        sd_bus_message_read(reply, "v", "b", &locked) >= 0)
		b->run->lock_hint = b->run->lock_hint || locked;
	return 0;
}

/* A failed reply to a lock step: a session that is gone has ended (nothing to lock), any
 * other error is a failed lock. Returns true when REPLY failed and was handled. */
static bool lock_call_failed(Binding *b, sd_bus_message *reply)
{
	const char *name = NULL, *message = NULL;

	if (!logind_reply_failed(reply, &name, &message))
		return false;
	if (logind_error_is_gone(name)) {
		audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_SUCCESS, "session-ended",
		        "The session had already ended.", name);
		binding_drop(b, "session-ended");
		return true;
	}
	audit_binding(
	        b, AUDIT_EVENT_ACTION, AUDIT_RESULT_FAILURE, "lock-call-failed", message, name);
	lock_failed(b, "lock-call-failed", strna(message));
	return true;
}

static int on_lock_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	Binding *b = userdata;
	int r;

	b->run->call_slot = sd_bus_slot_unref(b->run->call_slot);
	if (lock_call_failed(b, reply))
		return 0;
	b->run->lock_requested = true;
	audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_SUCCESS, "lock-requested",
	        "logind was asked to lock the session; waiting for LockedHint.", NULL);
	/* A session that was locked already sends no PropertiesChanged: ask once. */
	r = logind_get_session_property(b->manager->bus, b->session_path, "LockedHint",
	        on_locked_hint, b, &b->run->call_slot);
	if (r < 0)
		log_debug_errno(r, "Cannot read LockedHint of %s: %m", b->session_id);
	return 0;
}

static void lock_send(Binding *b)
{
	Manager *m = b->manager;
	int r;

	/* The Lock first, then the watch of LockedHint: the locker's answer takes a round trip
	 * through logind and the locker, so the bus has the match long before it. The verdict
	 * does not hang on the signal anyway: on_lock_reply() and the end of lock_verify read
	 * LockedHint (the signal only tells "set, then cleared" apart). */
	r = logind_lock_session(m->bus, b->session_path, on_lock_reply, b, &b->run->call_slot);
	if (r >= 0)
		r = logind_watch_session_properties(
		        m->bus, b->session_path, on_properties_changed, b, &b->run->match_slot);
	if (r >= 0)
		r = sd_event_add_time_relative(m->event, &b->run->verify_timer, CLOCK_MONOTONIC,
		        (uint64_t)b->lock_verify_ms * 1000, 0, on_verify_timeout, b);
	if (r < 0) {
		audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_FAILURE, "lock-call-failed",
		        strerror(-r), NULL);
		lock_failed(b, "lock-call-failed", strerror(-r));
	}
}

static int on_lock_resolved(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	Binding *b = userdata;
	const char *path = NULL;

	b->run->call_slot = sd_bus_slot_unref(b->run->call_slot);
	if (lock_call_failed(b, reply))
		return 0;
	if (sd_bus_message_read(reply, "o", &path) < 0 ||
	        intern_replace(&b->session_path, path) < 0 || !b->session_path) {
		audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_FAILURE, "lock-call-failed",
		        "logind's answer to GetSession was not understood.", NULL);
		lock_failed(b, "lock-call-failed", "no session object path");
		return 0;
	}
	lock_send(b);
	return 0;
}

static void lock_start(Binding *b)
{
	int r;

	/* A text console has no screen locker: Lock would be a no-op. */
	if (b->session_type && streq(b->session_type, "tty")) {
		audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_FAILURE, "cannot-lock",
		        "A text console (logind Type=tty) cannot be locked.", "Type=tty");
		lock_failed(b, "cannot-lock", "a text console (Type=tty) cannot be locked");
		return;
	}
	if (b->session_path) {
		lock_send(b);
		return;
	}
	r = logind_get_session(
	        b->manager->bus, b->session_id, on_lock_resolved, b, &b->run->call_slot);
	if (r < 0) {
		audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_FAILURE, "lock-call-failed",
		        strerror(-r), NULL);
		lock_failed(b, "lock-call-failed", strerror(-r));
	}
}

/* --- end-elevation ------------------------------------------------------------------ */

/* The elevation is the process sudo/su opened the session in and every descendant of it,
 * found through /proc ancestry (start times guard against reused pids). Never the
 * process group: without job control that is the caller's own shell. The tree is
 * rescanned on every poll, so children forked meanwhile, or reparented after their
 * parent died, are still ended. Daemons that double-forked away before the removal are
 * out of reach (docs/removal.md). */
#define END_ELEVATION_POLL_MS 50

static void elevation_scan(Binding *b)
{
	int r;

	r = process_tree_collect(&(ProcessId){b->pid, b->pid_start}, b->run->tree, &b->run->n_tree);
	if (r < 0)
		log_warning_errno(r, "Cannot list the processes of elevation %d: %m", (int)b->pid);
}

/* Drops members that are gone; returns how many live. */
static size_t elevation_prune(Binding *b)
{
	size_t k = 0;

	for (size_t i = 0; i < b->run->n_tree; i++)
		if (process_alive(&b->run->tree[i]))
			b->run->tree[k++] = b->run->tree[i];
	b->run->n_tree = k;
	return k;
}

static void elevation_signal(Binding *b, int sig)
{
	for (size_t i = 0; i < b->run->n_tree; i++) {
		ProcessId *p = &b->run->tree[i];
		_cleanup_close_ int fd = pidfd_open(p->pid, 0);
		uint64_t start;

		/* The pidfd pins the process; its start time proves it is the member. */
		if (fd < 0 || pid_start_time(p->pid, &start) < 0 || start != p->start)
			continue;
		if (pidfd_send_signal(fd, sig, NULL, 0) < 0 && errno != ESRCH)
			log_warning_errno(
			        -errno, "Cannot send signal %d to pid %d: %m", sig, (int)p->pid);
	}
}

static int on_elevation_poll(sd_event_source *s, uint64_t usec, void *userdata)
{
	Binding *b = userdata;
	uint64_t now = now_monotonic_ms();
	char detail[64];
	int r;

	elevation_scan(b);
	if (elevation_prune(b) == 0) {
		bool killed = b->run->kill_sent;

		audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_SUCCESS,
		        killed ? "killed" : "ended",
		        killed ? "The elevated processes did not end on SIGHUP/SIGTERM and were "
		                 "killed."
		               : "The elevated processes ended on SIGHUP/SIGTERM.",
		        "end-elevation");
		log_notice("Elevation pid %d of %s ended after its key was removed%s.", (int)b->pid,
		        strna(b->user), killed ? " (SIGKILL)" : "");
		binding_outcome(b, "done", killed ? "killed" : "ended", NULL);
		binding_drop(b, "process-ended");
		return 0;
	}
	if (now - b->run->signal_ms >= END_ELEVATION_KILL_MS) {
		if (b->run->kill_sent) {
			snprintf(detail, sizeof(detail), "end-elevation: %zu process(es) left",
			        b->run->n_tree);
			log_error("SECURITY: %zu process(es) of elevation pid %d of %s survive "
			          "SIGKILL.",
			        b->run->n_tree, (int)b->pid, strna(b->user));
			audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_FAILURE, "survived",
			        "Elevated processes survived SIGKILL.", detail);
			binding_outcome(b, "failed", "survived", detail);
			binding_done(b);
			if (b->run && b->run->unbind_requested)
				binding_drop(b, "unbound");
			return 0;
		}
		b->run->kill_sent = true;
		log_warning("%zu process(es) of elevation pid %d of %s still run %d ms after "
		            "SIGTERM: SIGKILL.",
		        b->run->n_tree, (int)b->pid, strna(b->user), END_ELEVATION_KILL_MS);
		elevation_signal(b, SIGKILL);
		b->run->signal_ms = now;
	} else
		/* Children forked since the last look get the same signal. */
		elevation_signal(b, b->run->kill_sent ? SIGKILL : SIGTERM);
	r = sd_event_source_set_time_relative(s, END_ELEVATION_POLL_MS * 1000ULL);
	if (r >= 0)
		r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	if (r < 0) {
		log_error_errno(r, "Cannot keep watching elevation pid %d: %m", (int)b->pid);
		elevation_signal(b, SIGKILL);
		audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_INFO, "killed",
		        "SIGKILL sent; the exit could not be watched.", "end-elevation");
		binding_outcome(b, "failed", "unwatched",
		        "SIGKILL was sent but the processes' exit could not be watched.");
		binding_done(b);
	}
	return 0;
}

static void end_elevation(Binding *b)
{
	Manager *m = b->manager;
	char detail[64];
	int r;

	b->state = BINDING_ACTING;
	b->run->kill_sent = false;
	/* Without a start time a pid could name anybody: it is never signalled. */
	if (b->pid <= 1 || !b->pid_start) {
		log_error("SECURITY: elevation binding %s names no verifiable process (pid %d).",
		        b->id, (int)b->pid);
		audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_FAILURE, "unknown-process",
		        "The elevated process cannot be identified; nothing was signalled.",
		        "end-elevation");
		binding_outcome(b, "failed", "unknown-process", NULL);
		binding_done(b);
		return;
	}
	free(b->run->tree);
	b->run->n_tree = 0;
	b->run->tree = calloc(PROCESS_TREE_MAX, sizeof(ProcessId));
	if (!b->run->tree) {
		audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_FAILURE, "error",
		        "Out of memory: the elevated processes were not signalled.",
		        "end-elevation");
		binding_outcome(b, "failed", "error", NULL);
		binding_done(b);
		return;
	}
	elevation_scan(b);
	if (b->run->n_tree == 0) {
		audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_SUCCESS, "already-ended",
		        "The elevated process had already ended.", "end-elevation");
		binding_drop(b, "process-ended");
		return;
	}
	snprintf(detail, sizeof(detail), "%zu process(es)", b->run->n_tree);
	log_info("Ending elevation pid %d of %s: SIGHUP and SIGTERM to %s.", (int)b->pid,
	        strna(b->user), detail);
	/* SIGHUP as when a terminal goes away: an interactive shell (su -, sudo -i) ignores
	 * SIGTERM but ends on SIGHUP. */
	elevation_signal(b, SIGHUP);
	elevation_signal(b, SIGTERM);
	b->run->signal_ms = now_monotonic_ms();
	r = sd_event_add_time_relative(m->event, &b->run->kill_timer, CLOCK_MONOTONIC,
	        END_ELEVATION_POLL_MS * 1000ULL, 0, on_elevation_poll, b);
	if (r < 0) {
		elevation_signal(b, SIGKILL);
		audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_INFO, "killed",
		        "SIGKILL sent at once.", "end-elevation");
		binding_outcome(b, "failed", "unwatched",
		        "SIGKILL was sent but the processes' exit could not be watched.");
		binding_done(b);
	}
}

/* --- the action ------------------------------------------------------------------- */

/* The action on B, whose key is gone (WHY). B must have its run-time state. */
static void binding_act(Binding *b, const char *why)
{
	b->run->grace_timer = sd_event_source_disable_unref(b->run->grace_timer);
	b->state = BINDING_ACTING;
	log_info("Key of binding %s (%s) gone (%s): action %s.", b->id, strna(b->user), why,
	        policy_removal_to_string(b->removal));
	if (b->removal == POLICY_REMOVAL_NONE) {
		audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_SUCCESS, "record-only",
		        "The policy asks for no action on removal.", why);
		binding_outcome(b, "done", "record-only", NULL);
		binding_done(b);
		return;
	}
	/* An elevation is the process tree it names: whatever the rule says, ending it is
	 * the only action that applies (there is no screen to lock). */
	if (!b->session_id ||
	        (b->removal == POLICY_REMOVAL_END_ELEVATION && b->pid > 1 && b->pid_start)) {
		end_elevation(b);
		return;
	}
	if (b->removal == POLICY_REMOVAL_LOCK)
		lock_start(b);
	else
		terminate_start(b);
}

static int on_grace_expired(sd_event_source *s, uint64_t usec, void *userdata)
{
	Binding *b = userdata;

	b->run->grace_timer = sd_event_source_disable_unref(b->run->grace_timer);
	if (b->state == BINDING_GRACE)
		binding_act(b, "grace-expired");
	return 0;
}

static bool binding_matches(const Binding *b, const char *syspath, const char *devnode)
{
	if (b->sysfs_path)
		return syspath && streq(b->sysfs_path, syspath);
	/* No sysfs path was known at authentication: the device node decides. */
	return b->hidraw_path && devnode && streq(b->hidraw_path, devnode);
}

/* Whether removal_key_removed() sends B's Lock at once, before any per-binding work: a
 * lock with no grace period, of a session whose object path is known. */
static bool binding_lock_now(const Binding *b)
{
	return b->grace_ms == 0 && b->removal == POLICY_REMOVAL_LOCK && b->session_id &&
	       b->session_path && !(b->session_type && streq(b->session_type, "tty"));
}

/* The bound bindings of the key that went away (SYSPATH, DEVNODE), from the index: a NULL
 * terminated array in *RET (NULL when there are none). */
static int bindings_removed(Manager *m, const char *syspath, const char *devnode, Binding ***ret)
{
	/* (a binding is filed under one key: the chains are disjoint unless both name one) */
	Binding *chains[3] = {
	        syspath ? bindings_of_device(m, syspath) : NULL,
	        devnode && !(syspath && streq(syspath, devnode)) ? bindings_of_device(m, devnode)
	                                                         : NULL,
	        bindings_overflow(m),
	};
	Binding **l = NULL;
	size_t n = 0, cap = 0;

	for (size_t c = 0; c < ELEMENTSOF(chains); c++)
		for (Binding *b = chains[c]; b; b = b->dev_next) {
			if (b->state != BINDING_BOUND || !binding_matches(b, syspath, devnode))
				continue;
			if (n + 2 > cap) {
				Binding **t = reallocarray(l, cap ? cap * 2 : 8, sizeof(*l));

				if (!t) {
					free(l);
					return -ENOMEM;
				}
				l = t;
				cap = cap ? cap * 2 : 8;
			}
			l[n++] = b;
			l[n] = NULL;
		}
	*ret = l;
	return (int)n;
}

void removal_key_removed(Manager *m, const char *syspath, const char *devnode, const char *why)
{
	_cleanup_free_ Binding **removed = NULL;
	AuditRecord rec = AUDIT_RECORD_INIT;
	char detail[64];
	size_t n, n_grace = 0, n_grants;
	int r;

	r = bindings_removed(m, syspath, devnode, &removed);
	if (r < 0) {
		/* Fail closed: every binding of the key is still looked at, one by one. */
		log_error_errno(r, "SECURITY: cannot list the bindings of %s: %m",
		        strna(syspath ?: devnode));
		for (Binding *b = m->bindings, *next; b; b = next) {
			next = b->next;
			if (b->state == BINDING_BOUND && binding_matches(b, syspath, devnode) &&
			        binding_run(b))
				binding_act(b, why);
		}
		return;
	}
	n = (size_t)r;
	/* The Lock calls go out first: nothing else (records, logs, files, other bindings'
	 * timers) stands between the uevent and them. */
	for (size_t i = 0; i < n; i++) {
		Binding *b = removed[i];

		if (!binding_lock_now(b) || !binding_run(b))
			continue;
		b->state = BINDING_ACTING;
		lock_send(b); /* (a failure is handled and recorded at once) */
	}
	/* Then the rest, and the records. */
	for (size_t i = 0; i < n; i++) {
		Binding *b = removed[i];

		if (b->state != BINDING_BOUND) {
			/* its Lock is out */
			log_info("Key of binding %s (%s) gone (%s): action lock.", b->id,
			        strna(b->user), why);
			continue;
		}
		if (!binding_run(b)) {
			log_error("SECURITY: out of memory: binding %s is not acted on.", b->id);
			continue;
		}
		(void)intern_replace(
		        &b->run->removed_device, syspath ? syspath : strempty(devnode));
		if (b->grace_ms > 0 && b->removal != POLICY_REMOVAL_NONE) {
			b->state = BINDING_GRACE;
			r = sd_event_add_time_relative(m->event, &b->run->grace_timer,
			        CLOCK_MONOTONIC, (uint64_t)b->grace_ms * 1000, 0, on_grace_expired,
			        b);
			if (r >= 0) {
				uint64_t until = now_monotonic_ms() + b->grace_ms + GRACE_SLACK_MS;

				if (until > ctx(m)->grace_until_ms)
					ctx(m)->grace_until_ms = until;
				n_grace++;
				continue;
			}
			log_error_errno(r,
			        "Cannot start the grace period of binding %s; acting now: %m",
			        b->id);
		}
		binding_act(b, why);
	}
	/* Cached elevations of this key's users need a touch again. */
	n_grants = manager_grants_forget_device(m, syspath, devnode);
	if (n_grants > 0)
		log_info("hidraw %s %s: cached elevations of %zu user(s) revoked.", strna(syspath),
		        why, n_grants);
	if (n == 0) {
		log_debug("hidraw %s (%s) %s: no binding.", strna(syspath), strna(devnode), why);
		return;
	}
	snprintf(detail, sizeof(detail), "%zu binding(s), %zu in grace", n, n_grace);
	rec.event = AUDIT_EVENT_KEY_REMOVED;
	rec.device = syspath ? syspath : devnode;
	rec.reason = why;
	rec.detail = detail;
	rec.result = AUDIT_RESULT_SUCCESS;
	(void)manager_audit(m, &rec);
	log_notice("Bound key %s %s: %s.", strna(rec.device), why, detail);
}

/* --- proof of return (silent assertion in a worker thread) ------------------------ */

typedef struct ProofItem {
	char *user, *cred_id, *rp_id, *public_key;
	int cose;
	const char *result; /* "ok", "not-the-bound-key", "bad-signature", "no-answer",
	                       "no-credential" */
} ProofItem;

struct ProofOp {
	Manager *manager;
	char *devnode, *syspath;
	ProofItem items[PROOF_MAX_CREDENTIALS];
	size_t n;
	Worker *worker; /* the silent assertion runs in it (worker.h) */
	ProofOp *next;
};

static void proof_free(ProofOp *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		free(p->items[i].user);
		free(p->items[i].cred_id);
		free(p->items[i].rp_id);
		free(p->items[i].public_key);
	}
	free(p->devnode);
	free(p->syspath);
	free(p);
}

static const char *proof_one(fido_dev_t *dev, ProofItem *it)
{
	_cleanup_free_ uint8_t *id = NULL, *pk = NULL;
	size_t idlen, pklen;
	uint8_t cdh[32];
	fido_assert_t *as;
	const char *result = "no-answer";
	int r;

	if (base64_decode(it->cred_id, &id, &idlen) < 0 ||
	        base64_decode(it->public_key, &pk, &pklen) < 0)
		return "no-credential";
	as = fido_assert_new();
	if (!as)
		return "no-answer";
	if (getrandom(cdh, sizeof(cdh), 0) != (ssize_t)sizeof(cdh))
		goto out;
	/* Silent: no touch, no PIN; only the bound credential is allowed. */
	if (fido_assert_set_rp(as, it->rp_id) != FIDO_OK ||
	        fido_assert_set_clientdata_hash(as, cdh, sizeof(cdh)) != FIDO_OK ||
	        fido_assert_allow_cred(as, id, idlen) != FIDO_OK ||
	        fido_assert_set_up(as, FIDO_OPT_FALSE) != FIDO_OK)
		goto out;
	r = fido_dev_get_assert(dev, as, NULL);
	if (r == FIDO_ERR_NO_CREDENTIALS) {
		result = "not-the-bound-key";
		goto out;
	}
	if (r != FIDO_OK || fido_assert_count(as) != 1)
		goto out;
	r = fido_assert_verify_raw(as, 0, it->cose, pk, pklen);
	result = r == FIDO_OK ? "ok" : "bad-signature";
out:
	explicit_bzero(cdh, sizeof(cdh));
	fido_assert_free(&as);
	return result;
}

static void proof_work(void *userdata)
{
	ProofOp *p = userdata;
	fido_dev_t *dev = fido_dev_new();
	int r = FIDO_ERR_INTERNAL;

	if (dev) {
		(void)fido_dev_set_timeout(dev, PROOF_TIMEOUT_MS);
		/* The node may take a moment to become usable after its "add" uevent. */
		for (int attempt = 0; attempt < 10; attempt++) {
			r = fido_dev_open(dev, p->devnode);
			if (r == FIDO_OK)
				break;
			nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
		}
	}
	for (size_t i = 0; i < p->n; i++)
		if (!p->items[i].result)
			p->items[i].result =
			        r == FIDO_OK ? proof_one(dev, &p->items[i]) : "no-answer";
	if (dev) {
		if (r == FIDO_OK)
			(void)fido_dev_close(dev);
		fido_dev_free(&dev);
	}
}

static void proof_unlink(Manager *m, ProofOp *p)
{
	for (ProofOp **q = &ctx(m)->proofs; *q; q = &(*q)->next)
		if (*q == p) {
			*q = p->next;
			ctx(m)->n_proofs--;
			return;
		}
}

static void on_proof_done(void *userdata)
{
	ProofOp *p = userdata;
	Manager *m = p->manager;

	for (size_t i = 0; i < p->n; i++) {
		ProofItem *it = &p->items[i];
		bool ok = streq(it->result, "ok");

		for (Binding *b = m->bindings; b; b = b->next) {
			char detail[128];

			if (b->state != BINDING_GRACE || !streq(b->user, it->user) || !b->cred_id ||
			        !streq(b->cred_id, it->cred_id))
				continue;
			if (!ok) {
				AuditRecord rec = AUDIT_RECORD_INIT;
				char subject[32];

				rec.event = AUDIT_EVENT_KEY_ADDED;
				binding_audit_fill(b, &rec, subject, sizeof(subject));
				rec.device = p->syspath;
				rec.reason = it->result;
				rec.message = "The key plugged in during the grace period did not "
				              "prove to be the bound key; the action runs when the "
				              "grace period ends.";
				(void)manager_audit(m, &rec);
				log_notice("Key %s is not the bound key of binding %s (%s).",
				        p->syspath, b->id, it->result);
				continue;
			}
			b->run->grace_timer = sd_event_source_disable_unref(b->run->grace_timer);
			b->state = BINDING_BOUND;
			snprintf(detail, sizeof(detail), "was %s", strna(b->run->removed_device));
			binding_run_release(b);
			if (binding_set_device(b, p->syspath, p->devnode) < 0 ||
			        binding_save(b) < 0)
				log_error("Cannot record the new device of binding %s.", b->id);
			audit_binding(b, AUDIT_EVENT_GRACE_CANCELLED, AUDIT_RESULT_SUCCESS,
			        "same-key",
			        "The bound key came back within the grace period (proved by a "
			        "silent assertion).",
			        detail);
			log_info("Binding %s: the same key is back (%s); no action.", b->id,
			        p->syspath);
		}
	}
	proof_unlink(m, p);
	(void)worker_free(p->worker); /* joined already */
	proof_free(p);
}

static bool proof_has(const ProofOp *p, const char *user, const char *cred_id)
{
	for (size_t i = 0; i < p->n; i++)
		if (streq(p->items[i].user, user) && streq(p->items[i].cred_id, cred_id))
			return true;
	return false;
}

void removal_key_added(Manager *m, const char *syspath, const char *devnode)
{
	const char *creds_dir = policy_settings(m->policy)->credentials_dir;
	ProofOp *p;
	int r;

	if (!devnode || now_monotonic_ms() > ctx(m)->grace_until_ms)
		return; /* no grace period can be running */
	for (Binding *b = m->bindings; b; b = b->next)
		if (b->state == BINDING_GRACE)
			goto prove;
	return;
prove:
	if (ctx(m)->n_proofs >= PROOF_MAX_PENDING) {
		log_warning("Too many proofs running; key %s is not checked (the grace periods run "
		            "out).",
		        syspath);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return;
	p->manager = m;
	p->devnode = strdup(devnode);
	p->syspath = strdup(syspath);
	if (!p->devnode || !p->syspath) {
		proof_free(p);
		return;
	}
	for (Binding *b = m->bindings; b && p->n < PROOF_MAX_CREDENTIALS; b = b->next) {
		_cleanup_credential_set_ CredentialSet *s = NULL, *ds = NULL;
		ProofItem *it;
		const Credential *c;

		if (b->state != BINDING_GRACE || !b->cred_id || proof_has(p, b->user, b->cred_id))
			continue;
		it = &p->items[p->n++];
		it->user = strdup(b->user);
		it->cred_id = strdup(b->cred_id);
		if (!it->user || !it->cred_id) {
			it->result = "no-credential";
			continue;
		}
		/* The credential as registered now: a revoked one cannot prove anything. */
		r = creds_load_user(creds_dir, b->user, &s, NULL);
		c = r >= 0 ? creds_find_id(s, b->cred_id) : NULL;
		if (!c && r >= 0 && b->cred_label)
			c = creds_find_label(s, b->cred_label);
		/* A directory credential: as the cache has it (revocations arrive within
		 * the policy's refresh). */
		if (!c && directory_cached_set(policy_settings(m->policy), b->user, &ds) >= 0)
			c = creds_find_id(ds, b->cred_id);
		if (!c || credential_is_ssh(c) || !c->public_key || !c->rp_id) {
			it->result = "no-credential";
			continue;
		}
		it->rp_id = strdup(c->rp_id);
		it->public_key = strdup(c->public_key);
		it->cose = c->cose_alg;
		if (!it->rp_id || !it->public_key)
			it->result = "no-credential";
	}
	if (worker_start(m->event, proof_work, on_proof_done, p, &p->worker) < 0) {
		log_error("Cannot start the proof of key %s; the grace periods run out.", syspath);
		proof_free(p);
		return;
	}
	p->next = ctx(m)->proofs;
	ctx(m)->proofs = p;
	ctx(m)->n_proofs++;
	log_info("Key %s plugged in during a grace period: proving %zu credential(s) silently.",
	        syspath, p->n);
}

/* --- reconcile, start, stop --------------------------------------------------------- */

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int removal_reconcile(Manager *m, const char *why)
{
	_cleanup_strv_free_ char **present = NULL, **missing = NULL;
	size_t n_present;
	int r = 0;

	r = udev_watch_present(m->udev, &present);
	if (r < 0)
		return log_error_errno(r, "Cannot list the hidraw devices: %m");
	n_present = strv_length(present);
	missing = calloc(1, sizeof(char *));
	if (!missing)
		return -ENOMEM;
	for (Binding *b = m->bindings; b; b = b->next) {
		const char *key = b->sysfs_path;

		if (b->state != BINDING_BOUND)
			continue;
		if (!key) {
			/* Only a device node is known: it must still exist as a hidraw device. */
			if (b->hidraw_path && access(b->hidraw_path, F_OK) < 0 &&
			        !strv_contains(missing, b->hidraw_path))
				r = strv_extend(&missing, b->hidraw_path);
			if (r < 0)
				return r;
			continue;
		}
		if (bsearch(&key, present, n_present, sizeof(char *), cmp_strp) ||
		        strv_contains(missing, key))
			continue;
		r = strv_extend(&missing, key);
		if (r < 0)
			return r;
	}
	for (char **k = missing; *k; k++) {
		bool node = strneq(*k, "/dev/", 5);
		removal_key_removed(m, node ? NULL : *k, node ? *k : NULL, why);
	}
	/* A missing key may be back under a new device that appeared while nobody watched
	 * (daemon down, events lost): offer the present keys no binding uses to the proof. */
	if (missing[0]) {
		unsigned offered = 0;

		for (char **p = present; *p && offered < PROOF_MAX_PENDING; p++) {
			_cleanup_free_ char *devnode = NULL;
			bool used = false;

			for (Binding *b = m->bindings; b && !used; b = b->next)
				used = b->state == BINDING_BOUND && b->sysfs_path &&
				       streq(b->sysfs_path, *p);
			if (used || udev_watch_devnode(m->udev, *p, &devnode) < 0)
				continue;
			removal_key_added(m, *p, devnode);
			offered++;
		}
	}
	return (int)strv_length(missing);
}

/* An SSH agent's elevation reached its lifetime (remote_lifetime): ended like a removal. */
static int on_lifetime_expired(sd_event_source *s, uint64_t usec, void *userdata)
{
	Binding *b = userdata;

	b->expiry_timer = sd_event_source_disable_unref(b->expiry_timer);
	if (b->state != BINDING_BOUND)
		return 0;
	if (!binding_run(b)) {
		log_error("SECURITY: out of memory: binding %s outlives its lifetime.", b->id);
		return 0;
	}
	log_info("Elevation of %s (binding %s) approved through the SSH agent reached its "
	         "lifetime.",
	        strna(b->user), b->id);
	audit_binding(b, AUDIT_EVENT_ACTION, AUDIT_RESULT_INFO, "lifetime",
	        "The elevation approved through the SSH agent reached its lifetime "
	        "(remote_lifetime) and is ended.",
	        "end-elevation");
	binding_act(b, "lifetime");
	return 0;
}

static void binding_arm_expiry(Manager *m, Binding *b)
{
	int r;

	if (b->expiry_timer)
		return;
	r = sd_event_add_time(m->event, &b->expiry_timer, CLOCK_REALTIME, b->expires_ms * 1000ULL,
	        0, on_lifetime_expired, b);
	if (r >= 0)
		return;
	log_error_errno(r, "Cannot time the lifetime of binding %s; ending it now: %m", b->id);
	(void)on_lifetime_expired(NULL, 0, b);
}

void removal_check_binding(Manager *m, Binding *b)
{
	if (b->state != BINDING_BOUND)
		return;
	if (b->expires_ms) {
		binding_arm_expiry(m, b);
		return;
	}
	if (b->sysfs_path ? udev_watch_device_exists(m->udev, b->sysfs_path)
	                  : (b->hidraw_path && access(b->hidraw_path, F_OK) >= 0))
		return;
	removal_key_removed(m, b->sysfs_path, b->hidraw_path, "missing-at-bind");
}

static int on_session_removed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error)
{
	Manager *m = userdata;
	const char *id, *path;

	if (sd_bus_message_read(msg, "so", &id, &path) < 0)
		return 0;
	/* Bindings hold interned ids (NULL: none has it); held, as the last binding dropped
	 * would free it. */
	id = intern_ref(intern_lookup(id));
	for (Binding *b = m->bindings, *next; b && id; b = next) {
		next = b->next;
		/* An action in flight finishes (and records) on its own. */
		if (b->session_id == id && b->state != BINDING_ACTING)
			binding_drop(b, "session-ended");
	}
	intern_unref(id);
	return 0;
}

static void on_key_removed(const char *syspath, const char *devnode, void *userdata)
{
	removal_key_removed(userdata, syspath, devnode, "removed");
}

static void on_key_added(const char *syspath, const char *devnode, void *userdata)
{
	removal_key_added(userdata, syspath, devnode);
}

static void on_events_lost(void *userdata)
{
	(void)removal_reconcile(userdata, "rescan");
}

static const UdevWatchCallbacks udev_callbacks = {
        .removed = on_key_removed,
        .added = on_key_added,
        .lost = on_events_lost,
};

int removal_startup(Manager *m)
{
	int r;

	m->removal = calloc(1, sizeof(RemovalContext));
	if (!m->removal)
		return log_error_errno(-ENOMEM, "Out of memory.");
	/* The watch first, so that nothing removed from now on is missed. */
	r = udev_watch_start(m->event, m->udev, &udev_callbacks, m, &ctx(m)->udev_watch);
	if (r < 0)
		return r;
	r = logind_watch_session_removed(
	        m->bus, on_session_removed, m, &ctx(m)->session_removed_slot);
	if (r < 0)
		log_warning_errno(r, "Cannot follow logind's SessionRemoved: %m");
	r = bindings_load(m);
	if (r < 0)
		return r;
	/* A binding file that could not be read as written names no key to wait for: what it
	 * identifies gets its action now (binding.c has recorded the alert). */
	for (Binding *b = m->bindings, *next; b; b = next) {
		next = b->next;
		if (b->corrupt && b->state == BINDING_BOUND && binding_run(b))
			binding_act(b, "binding-corrupt");
	}
	/* SSH agents' elevations keep their lifetime across a restart (one that ran out
	 * meanwhile is ended at once). */
	for (Binding *b = m->bindings, *next; b; b = next) {
		next = b->next;
		if (b->expires_ms && !b->corrupt && b->state == BINDING_BOUND)
			binding_arm_expiry(m, b);
	}
	r = removal_reconcile(m, "missing-at-start");
	if (r < 0)
		return r;
	return 0;
}

void removal_shutdown(Manager *m)
{
	RemovalContext *c = m->removal;

	if (!c)
		return;
	for (Binding *b = m->bindings; b; b = b->next)
		binding_cancel_pending(b);
	while (c->proofs) {
		ProofOp *p = c->proofs;

		c->proofs = p->next;
		if (!worker_free(p->worker)) {
			log_warning("A key proof does not finish; leaving it behind.");
			continue; /* its memory goes with the process */
		}
		proof_free(p);
	}
	udev_watch_free(c->udev_watch);
	sd_bus_slot_unref(c->session_removed_slot);
	free(c);
	m->removal = NULL;
}
