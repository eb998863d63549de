/* manager.c: keywardd's Manager, the state layer — policy (load, SIGHUP reload), audit
 * trail, the event loop, remote detection, policy evaluation, tokens and grants. The
 * wiring of the layers above (bus API, removal) is daemon.c's. */
#include "manager.h"

#include <inttypes.h>

#include <signal.h>
#include <sys/random.h>

#include <libudev.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-login.h>

#include "accounts.h"
#include "audit-spool.h"
#include "coverage-publish.h"
#include "directory-source.h"
#include "creds.h"
#include "log.h"
#include "logind.h"
#include "plugged.h"
#include "util.h"

static void log_diagnostics(const PolicyDiagnostics *d, int level_errors)
{
	for (size_t i = 0; i < d->n; i++) {
		const PolicyDiagnostic *x = &d->items[i];
		int level = x->severity == POLICY_SEVERITY_ERROR ? level_errors : LOG_WARNING;

		log_internal(level, 0, "%s:%u: %s: %s", strna(x->file), x->line,
		        x->severity == POLICY_SEVERITY_ERROR ? "error" : "warning",
		        strna(x->message));
	}
}

/* First error as "file:line: message" (for the audit record). */
static char *diagnostics_first_error(const PolicyDiagnostics *d)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->items[i].severity == POLICY_SEVERITY_ERROR) {
			char *s;
			if (asprintf(&s, "%s:%u: %s", strna(d->items[i].file), d->items[i].line,
			            strna(d->items[i].message)) < 0)
				return NULL;
			return s;
		}
	return NULL;
}

/* Reads and parses PATH (root-owned, not writable by others, not a symlink). On success
 * *ret_text (if given) gets the exact text that was parsed. */
static int load_policy(const char *path, Policy **ret, char **ret_why, char **ret_text)
{
	PolicyDiagnostics diags = {};
	_cleanup_free_ char *text = NULL;
	const char *problem = NULL;
	Policy *p = NULL;
	size_t len = 0;
	int r;

	r = read_full_file_safe(path, SAFE_FILE_DEFAULT, POLICY_FILE_MAX, &text, &len, &problem);
	if (r >= 0 && strlen(text) != len) {
		r = -EBADMSG;
		problem = "contains a NUL byte";
	}
	if (r < 0) {
		log_error_errno(r, "%s %s", path, strna(problem));
		if (ret_why && asprintf(ret_why, "%s %s", path, strna(problem)) < 0)
			*ret_why = NULL;
		return r;
	}
	r = policy_load_string(text, path, &diags, &p);
	log_diagnostics(&diags, LOG_ERR);
	if (r < 0) {
		if (ret_why) {
			*ret_why = diagnostics_first_error(&diags);
			if (!*ret_why && asprintf(ret_why, "%s: cannot be loaded: %s", path,
			                         strerror(-r)) < 0)
				*ret_why = NULL;
		}
		policy_diagnostics_clear(&diags);
		return r;
	}
	policy_diagnostics_clear(&diags);
	*ret = p;
	if (ret_text)
		*ret_text = TAKE_PTR(text);
	return 0;
}

/* Keeps TEXT (a policy that just loaded from the configured file) as the last good copy,
 * replaced atomically. A failure is logged: it only weakens the next broken restart. */
static void save_last_good(Manager *m, const char *text)
{
	_cleanup_free_ char *path = NULL;
	int r;

	r = policy_last_good_path(m->config_path, &path);
	if (r >= 0) {
		_cleanup_free_ char *dir = strdup(path);
		char *slash = dir ? strrchr(dir, '/') : NULL;

		if (slash && slash != dir) {
			*slash = '\0';
			(void)mkdir_parents(dir, 0700);
		}
		r = write_file_atomic(path, text, strlen(text), 0644);
	}
	if (r < 0)
		log_warning_errno(
		        r, "Cannot keep a copy of the good policy in %s: %m", strna(path));

	/* coverage snapshot (daemon/coverage-publish.c): published with every policy that
	 * loads, for pam_keyward's fallback. Keep this call when restructuring. */
	(void)coverage_publish(m->policy, m->config_path);
}

/* At start, with the configured file rejected: the last good copy, if there is one. */
static int load_last_good(Manager *m, const char *why)
{
	_cleanup_free_ char *path = NULL, *why_copy = NULL;
	int r;

	r = policy_last_good_path(m->config_path, &path);
	if (r < 0)
		return r;
	if (access(path, F_OK) < 0)
		return log_error_errno(-ENOENT,
		        "No last good policy (%s) to fall back on: keywardd cannot start until "
		        "%s is fixed (%s).",
		        path, m->config_path, strna(why));
	r = load_policy(path, &m->policy, &why_copy, NULL);
	if (r < 0)
		return log_error_errno(r, "The last good policy %s cannot be used either (%s).",
		        path, strna(why_copy));
	m->policy_rejected = strdup(strempty(why));
	if (!m->policy_rejected)
		return -ENOMEM;
	log_error("POLICY REJECTED: %s cannot be used (%s). Running the last good policy from "
	          "%s (sha256 %s) until it is fixed; check it with: keywardctl policy check %s",
	        m->config_path, strna(why), path, policy_digest(m->policy), m->config_path);
	return 0;
}

/* Says once per open what the seals can prove off this machine (docs/audit.md). */
static void log_audit_key_state(const AuditLog *log, const char *key_path)
{
	if (audit_log_seal_epoch(log) == AUDIT_SEAL_EPOCH_NONE)
		log_notice("The audit seal key %s is a legacy static key: whoever holds it can "
		           "re-seal the trail. For forward-secure sealing see keywardctl audit "
		           "setup-keys.",
		        key_path);
	else if (!audit_log_key_exported(log))
		log_warning(
		        "The audit verification key has not been exported: keywardd created the "
		        "forward-secure seal key %s itself, so the trail's seals cannot be proved "
		        "off this machine (keywardctl audit verify says NOT PROVEN). Run "
		        "keywardctl audit setup-keys before keywardd first starts.",
		        key_path);
	if (audit_log_key_recovered_from(log) != AUDIT_SEAL_EPOCH_NONE)
		log_notice("The audit seal key was behind the trail (epoch %" PRIu64
		           "); moved on to epoch %" PRIu64 " so that no key seals twice.",
		        audit_log_key_recovered_from(log), audit_log_seal_epoch(log));
}

/* The policy's `audit` settings as the library's limits. */
static AuditLimits audit_limits_from_policy(const PolicyAuditSettings *a)
{
	/* PolicyAuditSpaceAction and AuditSpaceAction list the same actions in the same order. */
	static const AuditSpaceAction action[_POLICY_AUDIT_SPACE_MAX] = {
	        [POLICY_AUDIT_SPACE_IGNORE] = AUDIT_SPACE_IGNORE,
	        [POLICY_AUDIT_SPACE_ALERT] = AUDIT_SPACE_ALERT,
	        [POLICY_AUDIT_SPACE_ROTATE] = AUDIT_SPACE_ROTATE,
	        [POLICY_AUDIT_SPACE_DENY] = AUDIT_SPACE_DENY,
	};

	return (AuditLimits){
	        .seal_every = a->seal_every,
	        .rotate_bytes = a->rotate_size,
	        .rotate_age_s = a->rotate_age_s,
	        .keep_files = a->keep_files,
	        .keep_age_s = a->keep_age_s,
	        .keep_min_files = a->keep_min_files,
	        .space_left = {.bytes = a->space_left.bytes, .percent = a->space_left.percent},
	        .space_left_action = action[a->space_left_action],
	        .admin_space_left = {.bytes = a->admin_space_left.bytes,
	                .percent = a->admin_space_left.percent},
	        .admin_space_left_action = action[a->admin_space_left_action],
	        .disk_full_action = action[a->disk_full_action],
	};
}

/* Sign counters ride on the trail (docs/audit.md, "Group commit"): before a rotation moves
 * the live file (the one the recovery at start reads) away, they are made durable. */
static int audit_before_rotate(void *userdata)
{
	Manager *m = userdata;

	return creds_counters_sync(policy_settings(m->policy)->state_dir);
}

typedef struct CounterRecovery {
	const char *state_dir;
	unsigned recovered;
	int error;
} CounterRecovery;

static int counter_from_record(const AuditEntry *e, const char *file, uint64_t line, void *userdata)
{
	CounterRecovery *c = userdata;
	const size_t plen = strlen(AUDIT_SIGN_COUNTER_DETAIL);
	char *end;
	unsigned long v;
	uint32_t stored = 0;
	bool found = false;
	int r;

	if ((e->event != AUDIT_EVENT_AUTH && e->event != AUDIT_EVENT_ACCOUNT) || !e->user ||
	        !e->cred_id || !e->detail)
		return 0;
	if (!strneq(e->detail, AUDIT_SIGN_COUNTER_DETAIL, plen))
		return 0;
	errno = 0;
	v = strtoul(e->detail + plen, &end, 10);
	/* (an SSH login's detail goes on after a space: "sign-counter=N method=ssh-agent ...") */
	if (errno != 0 || end == e->detail + plen || (*end != '\0' && *end != ' ') ||
	        v > UINT32_MAX)
		return 0;
	r = creds_counter_load(c->state_dir, e->user, e->cred_id, &stored, &found);
	if (r == -EINVAL || (r >= 0 && found && stored >= v))
		return 0; /* not a name keywardd keeps counters for; or not behind */
	if (r >= 0)
		r = creds_counter_store(c->state_dir, e->user, e->cred_id, (uint32_t)v);
	if (r < 0) {
		c->error = r;
		return r;
	}
	c->recovered++;
	return 0;
}

/* A sign counter is written without its own sync: the trail's auth record (detail
 * "sign-counter=N") is its durable copy. After a crash a counter file may be behind the
 * trail: take the trail's value, so a replayed lower counter is still refused. Counters
 * are made durable before a rotation, so the live file is all there is to read. */
int manager_counters_recover(Manager *m)
{
	const char *state_dir = policy_settings(m->policy)->state_dir;
	CounterRecovery c = {.state_dir = state_dir};
	int r;

	if (!m->audit_path)
		return 0;
	r = audit_scan_file(
	        m->audit_path, "\"detail\":\"" AUDIT_SIGN_COUNTER_DETAIL, counter_from_record, &c);
	if (r < 0 && r != -ENOENT)
		return log_error_errno(c.error < 0 ? c.error : r,
		        "Cannot recover the sign counters in %s/counters from the audit trail %s: "
		        "%m. Logins that check them are refused until it works.",
		        state_dir, m->audit_path);
	if (c.recovered > 0)
		log_warning("%u sign counter(s) in %s/counters were behind the audit trail (a "
		            "crash before they reached the disk); taken from the trail.",
		        c.recovered, state_dir);
	return 0;
}

static void audit_close(Manager *m)
{
	m->audit_commit = sd_event_source_disable_unref(m->audit_commit);
	m->audit = audit_log_free(m->audit);
}

/* The sync thread finished a commit: the requests it covered are answered now. A failed
 * sync fails them (their logins are refused) and closes the trail: what the disk holds is
 * unknown, so the next record reopens it, which checks and chains over the tail. */
static int on_audit_commit(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Manager *m = userdata;
	int r;

	/* Said before the refusals it causes go out. */
	r = audit_log_sync_error(m->audit);
	if (r < 0)
		log_error_errno(r,
		        "audit: the trail %s could not be made durable (%m): the records waiting "
		        "for it failed, and the logins among them are refused. It is reopened "
		        "with the next record.",
		        strna(m->audit_path));
	r = audit_log_commit_dispatch(m->audit);
	if (r < 0)
		audit_close(m);
	return 0;
}

static int open_audit(Manager *m)
{
	const PolicySettings *s = policy_settings(m->policy);
	_cleanup_free_ char *seal = NULL, *logdir = NULL;
	AuditOptions o = {
	        .path = s->audit_log,
	        .fsync_each = true,
	        .group_commit = true,
	        .before_rotate = audit_before_rotate,
	        .userdata = m,
	        .to_syslog = true,
	        .to_linux_audit = true,
	        .has_limits = true,
	        .limits = audit_limits_from_policy(&s->audit),
	};
	AuditLog *log = NULL;
	bool torn = false;
	int r;

	if (m->audit && m->audit_path && streq(m->audit_path, s->audit_log)) {
		/* Same trail (reload): new limits, the chain goes on in the same file. */
		r = audit_log_set_limits(m->audit, &o.limits);
		if (r < 0)
			log_warning_errno(
			        r, "Cannot apply the audit settings to %s now: %m", s->audit_log);
		return 0;
	}
	if (asprintf(&seal, "%s/audit-seal.key", s->state_dir) < 0)
		return -ENOMEM;
	o.seal_key_path = seal;
	if (m->audit) {
		/* The trail moves: the counters it holds must not depend on it any more. */
		r = creds_counters_sync(s->state_dir);
		if (r < 0)
			return log_error_errno(
			        r, "Cannot make the sign counters in %s durable: %m", s->state_dir);
	}
	(void)mkdir_parents(s->state_dir, 0700);
	logdir = strdup(s->audit_log);
	if (!logdir)
		return -ENOMEM;
	if (strrchr(logdir, '/') && strrchr(logdir, '/') != logdir) {
		*strrchr(logdir, '/') = '\0';
		(void)mkdir_parents(logdir, 0750);
	}
	r = audit_log_open(&o, &log, &torn);
	if (r < 0)
		return log_error_errno(r,
		        "Cannot open the audit trail %s: %m. Decisions %s until it is writable.",
		        s->audit_log,
		        manager_audit_failure_denies(m) ? "that need it are denied"
		                                        : "continue (audit_failure = alert)");
	if (torn)
		log_warning("The audit trail %s ended with a torn record; it was chained over.",
		        s->audit_log);
	log_audit_key_state(log, seal);
	audit_close(m);
	m->audit = log;
	r = sd_event_add_io(
	        m->event, &m->audit_commit, audit_log_commit_fd(log), EPOLLIN, on_audit_commit, m);
	if (r < 0) {
		audit_close(m);
		return log_error_errno(r, "Cannot watch the audit trail's commits: %m");
	}
	free(m->audit_path);
	m->audit_path = strdup(s->audit_log);
	r = manager_counters_recover(m);
	if (r < 0) {
		audit_close(m);
		return r;
	}
	return 0;
}

/* --- when the trail cannot take a record -------------------------------------------- */

static bool audit_record_is_refusal(const AuditRecord *rec)
{
	return ((rec->event == AUDIT_EVENT_AUTH || rec->event == AUDIT_EVENT_ACCOUNT) &&
	               rec->result == AUDIT_RESULT_FAILURE) ||
	       rec->event == AUDIT_EVENT_LOCKOUT || rec->event == AUDIT_EVENT_CLONE_ALERT;
}

static char *spool_path(Manager *m)
{
	char *p = NULL;

	if (!m->policy ||
	        asprintf(&p, "%s/" AUDIT_SPOOL_FILENAME, policy_settings(m->policy)->state_dir) < 0)
		return NULL;
	return p;
}

void manager_audit_outage(Manager *m, const AuditRecord *rec)
{
	_cleanup_free_ char *path = NULL;
	int r;

	if (!audit_record_is_refusal(rec))
		return;
	r = audit_journal_send(rec, NULL);
	if (r < 0)
		log_error_errno(r,
		        "audit: cannot send the %s record of %s to the journal either: %m",
		        strna(rec->reason), strna(rec->user));
	path = spool_path(m);
	r = path ? audit_spool_append(path, rec, AUDIT_SPOOL_MAX_BYTES) : -ENOMEM;
	if (r < 0)
		log_error_errno(r,
		        "audit: cannot spool the %s record of %s in %s (%m); it is in the journal "
		        "only.",
		        strna(rec->reason), strna(rec->user), strna(path));
	else
		m->spool_clean = false;
}

/* The trail took a record: it takes what was spooled during an outage, once. */
static void audit_take_spool(Manager *m)
{
	_cleanup_free_ char *path = NULL;
	int r;

	if (m->spool_clean || !m->audit || !m->audit_path)
		return;
	path = spool_path(m);
	if (!path)
		return;
	m->spool_clean = true; /* the intake's own records come through here too */
	if (!audit_spool_pending(path))
		return;
	r = audit_spool_take(m->audit, path, m->audit_path);
	if (r < 0) {
		m->spool_clean = false;
		log_error_errno(r,
		        "audit: cannot take the spooled records of %s into the trail: "
		        "%m; trying again with the next record.",
		        path);
	} else if (r > 0)
		log_notice("audit: %d record(s) spooled while the trail could not be written were "
		           "taken into %s.",
		        r, m->audit_path);
}

int manager_audit(Manager *m, const AuditRecord *rec)
{
	int r;

	if (!m->audit) {
		/* Try again: the trail may have become writable. */
		r = m->policy ? open_audit(m) : -ENOTCONN;
		if (r < 0 || !m->audit) {
			log_error("audit: cannot record %s (%s): no audit trail open",
			        strna(audit_event_to_string(rec->event)), strna(rec->reason));
			manager_audit_outage(m, rec);
			return r < 0 ? r : -ENOTCONN;
		}
	}
	r = audit_log_append(m->audit, rec);
	manager_audit_failed(m, rec, r);
	return r;
}

/* Logs why REC is not in the trail (R < 0) and keeps it where it can (outage); on success
 * the trail takes what was spooled. */
void manager_audit_failed(Manager *m, const AuditRecord *rec, int r)
{
	if (r < 0 && m->audit && audit_log_sync_error(m->audit) < 0) {
		log_error_errno(r,
		        "audit: the trail %s could not be made durable (%m); it is reopened with "
		        "the next record.",
		        strna(m->audit_path));
		audit_close(m);
	}
	if (r < 0) {
		if (r == -ENOSPC)
			log_error("audit: cannot record %s (%s) in %s: the file system is full "
			          "(disk_full_action = %s%s). %s",
			        strna(audit_event_to_string(rec->event)), strna(rec->reason),
			        strna(m->audit_path),
			        policy_audit_space_action_to_string(
			                policy_settings(m->policy)->audit.disk_full_action),
			        policy_settings(m->policy)->audit.disk_full_action ==
			                        POLICY_AUDIT_SPACE_ROTATE
			                ? ", and no rotated file could be removed"
			                : "",
			        manager_audit_failure_denies(m)
			                ? "Covered logins are refused until space is freed."
			                : "Logins continue unrecorded (audit_failure = alert).");
		else
			log_error_errno(r, "audit: cannot record %s (%s) in %s: %m",
			        strna(audit_event_to_string(rec->event)), strna(rec->reason),
			        strna(m->audit_path));
		manager_audit_outage(m, rec);
	} else
		audit_take_spool(m);
}

int manager_audit_async(Manager *m, const AuditRecord *rec, AuditCommitFn done, void *userdata)
{
	int r;

	if (!m->audit) {
		r = m->policy ? open_audit(m) : -ENOTCONN;
		if (r >= 0 && !m->audit)
			r = -ENOTCONN;
	}
	if (m->audit)
		r = audit_log_append_async(m->audit, rec, done, userdata);
	/* a failure is logged and kept; a success takes in the spool (nothing to do when it
	 * is known clean) */
	manager_audit_failed(m, rec, r);
	return r;
}

/* --- non-root callers' calls answered without a key ------------------------------------ */

#define SELF_CALL_KINDS 8

typedef struct SelfCallTally {
	uid_t uid;
	char *user;
	unsigned written; /* records written one by one in this window */
	struct {
		AuditEvent event;
		AuditResult result;
		char reason[32];
		uint64_t n;
	} kinds[SELF_CALL_KINDS];
	unsigned n_kinds;
	uint64_t n_other; /* outcomes beyond SELF_CALL_KINDS kinds */
	struct SelfCallTally *next;
} SelfCallTally;

void manager_flush_self_calls(Manager *m)
{
	while (m->self_calls) {
		SelfCallTally *t = m->self_calls;
		char message[200], detail[32];

		m->self_calls = t->next;
		for (unsigned i = 0; i < t->n_kinds; i++) {
			AuditRecord rec = AUDIT_RECORD_INIT;

			rec.event = t->kinds[i].event;
			rec.result = t->kinds[i].result;
			rec.reason = t->kinds[i].reason;
			rec.user = t->user;
			rec.uid = t->uid;
			snprintf(message, sizeof(message),
			        "%" PRIu64
			        " calls of uid %u for itself answered \"%s\" within %u s, "
			        "recorded as this one record",
			        t->kinds[i].n, (unsigned)t->uid, t->kinds[i].reason,
			        AUDIT_SELF_CALL_WINDOW_MS / 1000);
			snprintf(detail, sizeof(detail), "count=%" PRIu64, t->kinds[i].n);
			rec.message = message;
			rec.detail = detail;
			(void)manager_audit(m, &rec);
		}
		uint64_t total = t->n_other;
		for (unsigned i = 0; i < t->n_kinds; i++)
			total += t->kinds[i].n;
		if (total > 0)
			log_warning("uid %u (%s) made %" PRIu64
			            " calls for itself in %u s that were "
			            "answered without a key; recorded as %u summary record(s).",
			        (unsigned)t->uid, strna(t->user), total,
			        AUDIT_SELF_CALL_WINDOW_MS / 1000, t->n_kinds);
		free(t->user);
		free(t);
	}
	(void)sd_event_source_set_enabled(m->self_call_flush, SD_EVENT_OFF);
}

static int on_self_call_flush(sd_event_source *s, uint64_t usec, void *userdata)
{
	manager_flush_self_calls(userdata);
	return 0;
}

/* Every AUDIT_MAINTAIN_USEC: rotation by age, retention and the free-space check also
 * happen when no record is written. */
static int on_audit_maintain(sd_event_source *s, uint64_t usec, void *userdata)
{
	Manager *m = userdata;
	int r;

	if (m->audit) {
		r = audit_log_maintain(m->audit);
		if (r < 0)
			log_warning_errno(
			        r, "audit: housekeeping of %s failed: %m", strna(m->audit_path));
	}
	(void)sd_event_source_set_time(s, usec + AUDIT_MAINTAIN_USEC);
	return 0;
}

static SelfCallTally *self_call_tally(Manager *m, uid_t uid, const char *user)
{
	SelfCallTally *t;
	uint64_t now;

	for (t = m->self_calls; t; t = t->next)
		if (t->uid == uid)
			return t;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->uid = uid;
	t->user = user ? strdup(user) : NULL;
	t->next = m->self_calls;
	m->self_calls = t;
	/* The window starts with the first call of anyone counted in it. */
	if (m->self_call_flush && sd_event_source_get_enabled(m->self_call_flush, NULL) == 0 &&
	        sd_event_now(m->event, CLOCK_MONOTONIC, &now) >= 0 &&
	        sd_event_source_set_time(
	                m->self_call_flush, now + (uint64_t)AUDIT_SELF_CALL_WINDOW_MS * 1000) >= 0)
		(void)sd_event_source_set_enabled(m->self_call_flush, SD_EVENT_ONESHOT);
	return t;
}

bool manager_audit_self_call(Manager *m, const AuditRecord *rec, uid_t caller_uid)
{
	bool not_covered = rec->reason && streq(rec->reason, "not-covered");
	SelfCallTally *t;

	if (caller_uid == 0)
		return manager_audit(m, rec), true;
	t = self_call_tally(m, caller_uid, rec->user);
	if (!t) /* out of memory: the record is written */
		return manager_audit(m, rec), true;
	if (!not_covered && t->written < AUDIT_SELF_CALL_BURST) {
		t->written++;
		(void)manager_audit(m, rec);
		return true;
	}
	for (unsigned i = 0; i < t->n_kinds; i++)
		if (t->kinds[i].event == rec->event && t->kinds[i].result == rec->result &&
		        streq(t->kinds[i].reason, strempty(rec->reason))) {
			t->kinds[i].n++;
			return false;
		}
	if (t->n_kinds < SELF_CALL_KINDS) {
		unsigned i = t->n_kinds++;

		t->kinds[i].event = rec->event;
		t->kinds[i].result = rec->result;
		snprintf(t->kinds[i].reason, sizeof(t->kinds[i].reason), "%s",
		        strempty(rec->reason));
		t->kinds[i].n = 1;
	} else
		t->n_other++;
	return false;
}

bool manager_audit_failure_denies(Manager *m)
{
	if (!m->policy)
		return true;
	return policy_settings(m->policy)->audit_failure != POLICY_AUDIT_FAILURE_ALERT;
}

static char *mfree_str(char *p)
{
	free(p);
	return NULL;
}

int manager_reload(Manager *m, const char *trigger)
{
	return manager_reload_by(m, trigger, NULL);
}

int manager_reload_by(Manager *m, const char *trigger, const AuditActor *actor)
{
	_cleanup_free_ char *why = NULL, *text = NULL;
	AuditRecord rec = AUDIT_RECORD_INIT;
	Policy *p = NULL;
	int r;

	(void)sd_notifyf(false, "RELOADING=1\nSTATUS=Reloading %s", m->config_path);
	rec.event = AUDIT_EVENT_POLICY_LOAD;
	rec.action = trigger;
	rec.actor = actor;
	r = load_policy(m->config_path, &p, &why, &text);
	if (r < 0) {
		log_error("Policy %s rejected (%s); keeping the policy loaded before (%s).",
		        m->config_path, strna(why), policy_digest(m->policy));
		rec.reason = "rejected";
		rec.message = why;
		rec.detail = policy_digest(m->policy);
		(void)manager_audit(m, &rec);
		free(m->policy_rejected);
		m->policy_rejected = strdup(strempty(why));
		(void)sd_notify(false, "READY=1\nSTATUS=Running (last reload rejected)");
		return r;
	}
	policy_free(m->policy);
	m->policy = p;
	m->policy_rejected = mfree_str(m->policy_rejected);
	save_last_good(m, text);
	(void)open_audit(m);
	if (directory_service_apply(m->directory, policy_settings(m->policy)) < 0)
		log_warning("The directory refresh cannot be set up; logins still ask it.");
	log_info("Policy %s loaded (sha256 %s).", m->config_path, policy_digest(m->policy));
	rec.reason = "reloaded";
	rec.detail = policy_digest(m->policy);
	rec.result = AUDIT_RESULT_SUCCESS;
	(void)manager_audit(m, &rec);
	(void)sd_notify(false, "READY=1\nSTATUS=Running");
	return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	Manager *m = userdata;

	log_info("SIGHUP: reloading the policy.");
	/* A reload also closes the window of the non-root callers' counted calls. */
	manager_flush_self_calls(m);
	(void)manager_reload(m, "sighup");
	return 0;
}

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	Manager *m = userdata;

	log_info("%s: shutting down.", si->ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
	m->shutting_down = true;
	(void)sd_notify(false, "STOPPING=1\nSTATUS=Shutting down");
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

int manager_new(const ManagerOptions *opts, Manager **ret)
{
	_cleanup_(manager_freep) Manager *m = NULL;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return log_error_errno(-ENOMEM, "Out of memory.");
	m->config_path = strdup(opts->config_path);
	if (!m->config_path)
		return log_error_errno(-ENOMEM, "Out of memory.");
	m->started_ms = now_realtime_ms();
	r = sd_event_default(&m->event);
	if (r < 0)
		return log_error_errno(r, "Cannot create the event loop: %m");
	m->ops.event = m->event;
	*ret = TAKE_PTR(m);
	return 0;
}

int manager_startup(Manager *m)
{
	_cleanup_free_ char *why = NULL, *text = NULL;
	sigset_t mask;
	int r;

	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return log_error_errno(-errno, "Cannot block signals: %m");
	/* Writing to a client that went away must not kill us. */
	signal(SIGPIPE, SIG_IGN);

	r = load_policy(m->config_path, &m->policy, &why, &text);
	if (r >= 0) {
		log_info("Policy %s loaded (sha256 %s).", m->config_path, policy_digest(m->policy));
		save_last_good(m, text);
	} else {
		/* A broken file on disk must not take keyward down with it: uncovered users
		 * would then wait on D-Bus activation and covered ones get the fail mode. */
		r = load_last_good(m, why);
		if (r < 0)
			return log_error_errno(
			        r, "Cannot start without a valid policy: %s", strna(why));
	}
	(void)open_audit(m);

	m->udev = udev_new();
	if (!m->udev)
		log_warning("libudev is not available: device sysfs paths will not be recorded.");
	else {
		/* The plugged keys, kept from uevents: a login does not enumerate hidraw. */
		r = plugged_start(m->event, m->udev, &m->plugged);
		if (r < 0)
			log_warning_errno(r, "Cannot follow the plugged keys; every login will "
			                     "enumerate them: %m");
	}

	r = sd_event_add_time(m->event, &m->self_call_flush, CLOCK_MONOTONIC, UINT64_MAX, 0,
	        on_self_call_flush, m);
	if (r >= 0)
		r = sd_event_source_set_enabled(m->self_call_flush, SD_EVENT_OFF);
	if (r < 0)
		return log_error_errno(r, "Cannot set up the self-call summary timer: %m");
	r = sd_event_add_time_relative(m->event, &m->audit_maintain, CLOCK_MONOTONIC,
	        AUDIT_MAINTAIN_USEC, 0, on_audit_maintain, m);
	if (r >= 0)
		r = sd_event_source_set_enabled(m->audit_maintain, SD_EVENT_ON);
	if (r < 0)
		return log_error_errno(r, "Cannot set up the audit housekeeping timer: %m");
	r = directory_service_new(m->event, &m->directory);
	if (r >= 0)
		r = directory_service_apply(m->directory, policy_settings(m->policy));
	if (r < 0)
		return log_error_errno(r, "Cannot set up the directory refresh: %m");
	r = sd_event_add_signal(m->event, &m->sighup_source, SIGHUP, on_sighup, m);
	if (r >= 0)
		r = sd_event_add_signal(m->event, &m->sigterm_source, SIGTERM, on_terminate, m);
	if (r >= 0)
		r = sd_event_add_signal(m->event, &m->sigint_source, SIGINT, on_terminate, m);
	if (r < 0)
		return log_error_errno(r, "Cannot watch signals: %m");
	return 0;
}

void manager_announce_ready(Manager *m)
{
	AuditRecord rec = AUDIT_RECORD_INIT;

	rec.event = AUDIT_EVENT_POLICY_LOAD;
	rec.action = "start";
	if (m->policy_rejected) {
		rec.result = AUDIT_RESULT_FAILURE;
		rec.reason = "rejected";
		rec.message = m->policy_rejected;
		rec.detail = policy_digest(m->policy);
		(void)manager_audit(m, &rec);
		rec.reason = "last-good";
	} else
		rec.reason = "loaded";
	rec.result = AUDIT_RESULT_SUCCESS;
	rec.detail = policy_digest(m->policy);
	rec.message = policy_path(m->policy);
	(void)manager_audit(m, &rec);

	rec = (AuditRecord)AUDIT_RECORD_INIT;
	rec.event = AUDIT_EVENT_DAEMON_START;
	rec.result = AUDIT_RESULT_SUCCESS;
	rec.detail = policy_digest(m->policy);
	rec.message = "keywardd " KEYWARD_VERSION " started";
	(void)manager_audit(m, &rec);
	if (m->policy_rejected)
		(void)sd_notifyf(false,
		        "READY=1\nSTATUS=Running the last good policy: %s is rejected (%s)",
		        m->config_path, m->policy_rejected);
	else
		(void)sd_notify(false, "READY=1\nSTATUS=Running");
	log_info("keywardd %s ready on the system bus as %s.", KEYWARD_VERSION, KEYWARD_BUS_NAME);
}

int manager_run(Manager *m)
{
	int r;

	r = sd_event_loop(m->event);
	if (r < 0)
		log_error_errno(r, "Event loop failed: %m");
	m->shutting_down = true;
	return r;
}

void manager_record_stop(Manager *m, int r)
{
	AuditRecord rec = AUDIT_RECORD_INIT;

	manager_flush_self_calls(m);
	rec.event = AUDIT_EVENT_DAEMON_STOP;
	rec.result = r != 0 ? AUDIT_RESULT_FAILURE : AUDIT_RESULT_SUCCESS;
	rec.reason = r < 0 ? "error" : r > 0 ? "bus-lost" : "stopped";
	(void)manager_audit(m, &rec);
}

static void grants_unlink(Manager *m, AuthGrant **link);

void breakglass_session_free_all(BreakglassSession *s)
{
	while (s) {
		BreakglassSession *next = s->next;

		free(s->user);
		free(s->service);
		free(s->session);
		free(s);
		s = next;
	}
}

Manager *manager_free(Manager *m)
{
	if (!m)
		return NULL;
	/* The layers above (daemon.c) have freed what they hung off the manager: pending
	 * device operations, removal state, the bindings. */
	while (m->tokens) {
		AuthToken *t = m->tokens;
		m->tokens = t->next;
		auth_token_free(t);
	}
	decision_table_clear(&m->decisions);
	breakglass_session_free_all(TAKE_PTR(m->breakglass_sessions));
	ssh_challenge_table_clear(&m->ssh_challenges);
	manager_flush_self_calls(m);
	sd_event_source_disable_unref(m->self_call_flush);
	m->directory = directory_service_free(m->directory);
	sd_event_source_disable_unref(m->audit_maintain);
	while (m->grants)
		grants_unlink(m, &m->grants);
	sd_event_source_unref(m->sighup_source);
	sd_event_source_unref(m->sigterm_source);
	sd_event_source_unref(m->sigint_source);
	if (m->audit)
		(void)audit_log_flush(m->audit); /* answers what waits for it, bus still open */
	m->plugged = plugged_free(m->plugged);
	if (m->udev)
		udev_unref(m->udev);
	sd_bus_slot_unref(m->vtable_slot);
	if (m->bus)
		sd_bus_flush_close_unref(m->bus);
	sd_event_unref(m->event);
	policy_free(m->policy);
	audit_close(m);
	free(m->audit_path);
	free(m->config_path);
	free(m->policy_rejected);
	free(m);
	return NULL;
}

bool manager_is_remote(Manager *m, const char *rhost, const char *tty, pid_t caller_pid)
{
	bool remote = false;
	int r;

	if (policy_is_remote(isempty(rhost) ? NULL : rhost, isempty(tty) ? NULL : tty))
		return true;
	/* From logind's session records, no bus call. A failed look-up is "not known to be
	 * remote", as the RHOST/TTY check stands. */
	r = logind_session_is_remote(caller_pid, &remote);
	if (r < 0 && r != -ENXIO)
		log_debug_errno(r, "logind: no Remote property for the session of pid %d: %m",
		        (int)caller_pid);
	return r >= 0 && remote;
}

int manager_evaluate(Manager *m, const char *user, const char *service, const char *tty,
        const char *rhost, pid_t caller_pid, PolicyDecision *ret_decision, bool *ret_remote,
        uid_t *ret_uid)
{
	_cleanup_strv_free_ char **groups = NULL;
	uid_t uid;
	gid_t gid;
	PolicyRequest req = {
	        .user = user,
	        .uid = (uid_t)-1,
	        .service = service,
	        .tty = isempty(tty) ? NULL : tty,
	        .rhost = isempty(rhost) ? NULL : rhost,
	};
	int r;

	/* Fail closed: only "NSS says there is no such user" means no uid and no groups; any
	 * other lookup failure is an error, and the caller denies. */
	r = account_lookup(user, &uid, &gid);
	if (r >= 0) {
		req.uid = uid;
		r = account_group_names(user, gid, &groups);
		if (r < 0)
			return log_error_errno(r, "Cannot resolve the groups of %s: %m", user);
	} else if (r == -ESRCH) {
		groups = calloc(1, sizeof(char *));
		if (!groups)
			return -ENOMEM;
	} else
		return log_error_errno(r, "Cannot look up the account %s: %m", user);
	req.groups = groups;
	req.remote = manager_is_remote(m, rhost, tty, caller_pid);
	r = policy_evaluate(m->policy, &req, ret_decision);
	if (r < 0)
		return r;
	if (ret_remote)
		*ret_remote = req.remote;
	if (ret_uid)
		*ret_uid = req.uid;
	return 0;
}

int decision_rule_label(const PolicyDecision *d, char **ret)
{
	char *rule;

	if (d->is_default)
		rule = strdup("default");
	else if (asprintf(&rule, "%s:%u", strna(d->file), d->line) < 0)
		rule = NULL;
	if (!rule)
		return -ENOMEM;
	*ret = rule;
	return 0;
}

void auth_token_free(AuthToken *t)
{
	if (!t)
		return;
	explicit_bzero(t->token, sizeof(t->token));
	free(t->user);
	free(t->service);
	free(t->tty);
	free(t->cred_id);
	free(t->cred_label);
	free(t->hidraw_path);
	free(t->sysfs_path);
	free(t->rule);
	decision_unref(t->decision);
	free(t);
}

static void tokens_expire(Manager *m)
{
	uint64_t now = now_monotonic_ms();

	for (AuthToken **p = &m->tokens; *p;) {
		AuthToken *t = *p;
		if (now - t->created_ms > AUTH_TOKEN_LIFETIME_MS) {
			*p = t->next;
			auth_token_free(t);
			m->n_tokens--;
		} else
			p = &t->next;
	}
}

static char *strdup_or_null(const char *s, bool *oom)
{
	char *c;

	if (!s)
		return NULL;
	c = strdup(s);
	if (!c)
		*oom = true;
	return c;
}

int manager_token_add(Manager *m, const AuthToken *tmpl, const AuthToken **ret)
{
	uint8_t rnd[KEYWARD_TOKEN_BYTES];
	_cleanup_free_ char *hex = NULL;
	AuthToken *t;
	bool oom = false;
	int r;

	tokens_expire(m);
	if (m->n_tokens >= AUTH_TOKEN_MAX) {
		/* Drop the oldest (the list is newest first). */
		AuthToken **p = &m->tokens;
		while (*p && (*p)->next)
			p = &(*p)->next;
		if (*p) {
			auth_token_free(*p);
			*p = NULL;
			m->n_tokens--;
		}
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -EIO;
	r = hex_encode(rnd, sizeof(rnd), &hex);
	explicit_bzero(rnd, sizeof(rnd));
	if (r < 0)
		return r;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	*t = *tmpl;
	memcpy(t->token, hex, KEYWARD_TOKEN_CHARS);
	t->token[KEYWARD_TOKEN_CHARS] = '\0';
	explicit_bzero(hex, strlen(hex));
	t->user = strdup_or_null(tmpl->user, &oom);
	t->service = strdup_or_null(tmpl->service, &oom);
	t->tty = strdup_or_null(tmpl->tty, &oom);
	t->cred_id = strdup_or_null(tmpl->cred_id, &oom);
	t->cred_label = strdup_or_null(tmpl->cred_label, &oom);
	t->hidraw_path = strdup_or_null(tmpl->hidraw_path, &oom);
	t->sysfs_path = strdup_or_null(tmpl->sysfs_path, &oom);
	t->rule = strdup_or_null(tmpl->rule, &oom);
	t->decision = decision_ref(tmpl->decision);
	t->created_ms = now_monotonic_ms();
	t->realtime_ms = now_realtime_ms();
	t->next = NULL;
	if (oom || !t->user || !t->service) {
		auth_token_free(t);
		return -ENOMEM;
	}
	t->next = m->tokens;
	m->tokens = t;
	m->n_tokens++;
	if (ret)
		*ret = t;
	return 0;
}

static void auth_grant_free(AuthGrant *g)
{
	if (!g)
		return;
	free(g->cred_id);
	free(g->hidraw_path);
	free(g->sysfs_path);
	free(g);
}

static void grants_unlink(Manager *m, AuthGrant **link)
{
	AuthGrant *g = *link;

	*link = g->next;
	auth_grant_free(g);
	m->n_grants--;
}

int manager_grant_set(
        Manager *m, uid_t uid, const char *cred_id, const char *hidraw_path, const char *sysfs_path)
{
	AuthGrant *g;
	bool oom = false;

	for (AuthGrant **p = &m->grants; *p; p = &(*p)->next)
		if ((*p)->uid == uid) {
			grants_unlink(m, p);
			break;
		}
	if (m->n_grants >= AUTH_TOKEN_MAX) {
		/* Forget the oldest (the list is newest first): it then needs a touch. */
		AuthGrant **p = &m->grants;
		while (*p && (*p)->next)
			p = &(*p)->next;
		if (*p)
			grants_unlink(m, p);
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->uid = uid;
	g->cred_id = strdup_or_null(cred_id, &oom);
	g->hidraw_path = strdup_or_null(hidraw_path, &oom);
	g->sysfs_path = strdup_or_null(sysfs_path, &oom);
	g->realtime_ms = now_realtime_ms();
	if (oom || !g->cred_id || !g->hidraw_path) {
		auth_grant_free(g);
		return -ENOMEM;
	}
	g->next = m->grants;
	m->grants = g;
	m->n_grants++;
	return 0;
}

const AuthGrant *manager_grant_find(Manager *m, uid_t uid)
{
	for (AuthGrant *g = m->grants; g; g = g->next)
		if (g->uid == uid)
			return g;
	return NULL;
}

size_t manager_grants_forget_device(Manager *m, const char *syspath, const char *devnode)
{
	size_t n = 0;

	for (AuthGrant **p = &m->grants; *p;) {
		AuthGrant *g = *p;
		bool match = g->sysfs_path ? (syspath && streq(g->sysfs_path, syspath))
		                           : (devnode && streq(g->hidraw_path, devnode));

		if (match) {
			grants_unlink(m, p);
			n++;
		} else
			p = &g->next;
	}
	return n;
}

AuthToken *manager_token_take(Manager *m, const char *token)
{
	AuthToken *found = NULL, **found_link = NULL;

	if (!token || strlen(token) != KEYWARD_TOKEN_CHARS)
		return NULL;
	tokens_expire(m);
	for (AuthToken **p = &m->tokens; *p; p = &(*p)->next)
		if (memcmp_const((*p)->token, token, KEYWARD_TOKEN_CHARS) == 0 && !found) {
			found = *p;
			found_link = p;
		}
	if (!found)
		return NULL;
	*found_link = found->next;
	found->next = NULL;
	m->n_tokens--;
	return found;
}

int manager_hidraw_to_syspath(Manager *m, const char *devnode, char **ret)
{
	struct udev_enumerate *e;
	struct udev_list_entry *item;
	int r = -ENODEV;

	if (!m->udev || isempty(devnode))
		return -ENODEV;
	if (m->plugged) {
		const char *syspath = plugged_syspath(m->plugged, devnode);

		if (syspath) {
			char *p = strdup(syspath);

			if (!p)
				return -ENOMEM;
			*ret = p;
			return 0;
		}
	}
	e = udev_enumerate_new(m->udev);
	if (!e)
		return -ENOMEM;
	if (udev_enumerate_add_match_subsystem(e, "hidraw") < 0 ||
	        udev_enumerate_scan_devices(e) < 0) {
		udev_enumerate_unref(e);
		return -EIO;
	}
	udev_list_entry_foreach(item, udev_enumerate_get_list_entry(e))
	{
		struct udev_device *d =
		        udev_device_new_from_syspath(m->udev, udev_list_entry_get_name(item));
		const char *node = d ? udev_device_get_devnode(d) : NULL;

		if (node && streq(node, devnode)) {
			char *p = strdup(udev_device_get_syspath(d));
			udev_device_unref(d);
			if (!p)
				r = -ENOMEM;
			else {
				*ret = p;
				r = 0;
			}
			break;
		}
		if (d)
			udev_device_unref(d);
	}
	udev_enumerate_unref(e);
	return r;
}

int manager_decide(Manager *m, const char *user, const char *service, const char *tty,
        const char *rhost, pid_t caller_pid, uid_t caller_uid, Decision **ret)
{
	_cleanup_free_ char *client_host = NULL;
	PolicyDecision pd;
	uid_t uid = (uid_t)-1;
	bool remote = false;
	int r;

	r = manager_evaluate(m, user, service, tty, rhost, caller_pid, &pd, &remote, &uid);
	if (r < 0)
		return r;
	pd.remote = remote;
	/* The decision carries "break-glass allowed here", not only the rule's opt-in. */
	pd.breakglass = policy_breakglass_allows(m->policy, &pd, service);
	/* sudo inside SSH has no PAM_RHOST: the records name the client logind knows. */
	if (remote && isempty(rhost) && logind_session_remote_host(caller_pid, &client_host) < 0)
		client_host = NULL;
	return decision_new(&(DecisionRequest){.user = user,
	                            .uid = uid,
	                            .service = service,
	                            .tty = tty,
	                            .rhost = rhost,
	                            .client_host = client_host,
	                            .caller_pid = caller_pid,
	                            .caller_uid = caller_uid,
	                            .policy_digest = policy_digest(m->policy)},
	        &pd, ret);
}
