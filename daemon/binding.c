/* binding.c: the binding table (binding.h) — link/find/drop, the binding files under
 * runtime_dir/bindings (save, remove, load at start) and the start-up check of the bound
 * sessions with logind. binding-file.c has the object and its file format. */
#include "binding.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "intern.h"
#include "log.h"
#include "logind.h"
#include "process.h"
#include "util.h"

const char *binding_subject(const Binding *b, char *buf, size_t size)
{
	if (b->session_id)
		return b->session_id;
	snprintf(buf, size, "pid:%d", (int)b->pid);
	return buf;
}

void binding_audit_fill(const Binding *b, AuditRecord *rec, char *subject_buf, size_t size)
{
	rec->user = b->user;
	rec->uid = b->uid;
	rec->service = b->service;
	rec->tty = b->tty;
	rec->cred_label = b->cred_label;
	rec->cred_id = b->cred_id;
	rec->device = b->sysfs_path ? b->sysfs_path : b->hidraw_path;
	rec->rule = b->rule;
	rec->rule_name = b->rule_name;
	rec->policy = b->policy;
	rec->session = binding_subject(b, subject_buf, size);
	rec->action = policy_removal_to_string(b->removal);
}

void binding_outcome(Binding *b, const char *outcome, const char *detail, const char *message)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	char subject[32];

	if (!b->action_seq)
		return;
	rec.event = AUDIT_EVENT_OUTCOME;
	binding_audit_fill(b, &rec, subject, sizeof(subject));
	rec.action_seq = b->action_seq;
	rec.reason = outcome;
	rec.detail = detail;
	rec.message = message;
	rec.result = streq(outcome, "failed") || streq(outcome, "interrupted")
	                     ? AUDIT_RESULT_FAILURE
	                     : AUDIT_RESULT_SUCCESS;
	(void)manager_audit(b->manager, &rec);
	b->action_seq = 0;
}

/* --- files ------------------------------------------------------------------------- */

int bindings_dir(Manager *m, char **ret)
{
	const char *runtime = policy_settings(m->policy)->runtime_dir;
	char *d;
	int r;

	if (isempty(runtime) || runtime[0] != '/')
		return -EINVAL;
	if (asprintf(&d, "%s/" BINDINGS_SUBDIR, runtime) < 0)
		return -ENOMEM;
	r = mkdir_parents(d, 0700);
	if (r < 0 && r != -EEXIST) {
		free(d);
		return r;
	}
	*ret = d;
	return 0;
}

static int binding_path(Binding *b, char **ret)
{
	_cleanup_free_ char *dir = NULL;
	int r;

	r = bindings_dir(b->manager, &dir);
	if (r < 0)
		return r;
	if (asprintf(ret, "%s/%s", dir, b->id) < 0)
		return -ENOMEM;
	return 0;
}

int binding_save(Binding *b)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	size_t len = 0;
	int r;

	if (b->corrupt)
		return 0; /* its file stays as it was found */
	r = binding_format(b, &text, &len);
	if (r < 0)
		return r;
	r = binding_path(b, &path);
	if (r < 0)
		return r;
	return write_file_atomic(path, text, len, 0600);
}

static void binding_remove_file(Binding *b)
{
	_cleanup_free_ char *path = NULL;

	if (b->corrupt || binding_path(b, &path) < 0)
		return; /* a corrupt binding's file stays for inspection */
	if (unlink(path) < 0 && errno != ENOENT)
		log_error_errno(-errno, "Cannot remove the binding file %s: %m", path);
}

void binding_drop(Binding *b, const char *reason)
{
	Manager *m = b->manager;
	AuditRecord rec = AUDIT_RECORD_INIT;
	char subject[32];

	/* An action still under way ends with its target. */
	binding_outcome(b, "gone", reason, "The session or process ended before the action did.");
	binding_unlink(m, b);
	binding_remove_file(b);
	rec.event = AUDIT_EVENT_SESSION_UNBIND;
	binding_audit_fill(b, &rec, subject, sizeof(subject));
	rec.action = NULL;
	rec.reason = reason;
	rec.result = AUDIT_RESULT_SUCCESS;
	(void)manager_audit(m, &rec);
	log_info("Binding %s (%s of %s) removed: %s.", b->id, rec.session, strna(b->user), reason);
	binding_free(b);
}

/* --- pruning ------------------------------------------------------------------------- */

/* Whether the elevated process of B is still the one that was bound. */
static bool binding_process_alive(const Binding *b)
{
	/* A different start time: the pid was reused by another process. */
	return process_alive(&(ProcessId){b->pid, b->pid_start});
}

/* The start-up check of the bound sessions: one GetSession per distinct session id, at
 * most PRUNE_IN_FLIGHT at a time (the bus limits pending replies per connection). */
#define PRUNE_IN_FLIGHT 16

typedef struct PruneQuery {
	PruneJob *job;
	const char *session_id; /* in job->ids */
	sd_bus_slot *slot;
} PruneQuery;

struct PruneJob {
	Manager *manager;
	char **ids; /* distinct */
	PruneQuery *queries;
	size_t n, next;
	unsigned in_flight;
};

void prune_job_free(PruneJob *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++)
		sd_bus_slot_unref(j->queries[i].slot);
	strv_free(j->ids);
	free(j->queries);
	free(j);
}

static int on_prune_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error);

/* Sends queries until PRUNE_IN_FLIGHT are pending; frees the job when all have answered. */
static void prune_job_pump(PruneJob *j)
{
	Manager *m = j->manager;

	while (j->next < j->n && j->in_flight < PRUNE_IN_FLIGHT) {
		PruneQuery *q = &j->queries[j->next++];
		int r = logind_get_session(m->bus, q->session_id, on_prune_reply, q, &q->slot);

		if (r < 0) {
			log_warning_errno(r,
			        "Cannot ask logind about session %s; keeping its bindings: %m",
			        q->session_id);
			continue;
		}
		j->in_flight++;
	}
	if (j->in_flight == 0 && j->next >= j->n) {
		if (m->prune == j)
			m->prune = NULL;
		prune_job_free(j);
	}
}

static int on_prune_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	PruneQuery *q = userdata;
	PruneJob *j = q->job;
	const char *name = NULL, *message = NULL;

	q->slot = sd_bus_slot_unref(q->slot);
	j->in_flight--;
	if (logind_reply_failed(reply, &name, &message)) {
		if (logind_error_is_gone(name)) {
			/* (held: the last binding dropped would free it) */
			const char *id = intern_ref(intern_lookup(q->session_id));

			for (Binding *b = j->manager->bindings, *next; b && id; b = next) {
				next = b->next;
				if (b->session_id == id && b->state != BINDING_ACTING)
					binding_drop(b, "session-ended");
			}
			intern_unref(id);
		} else
			/* logind did not answer: keep the bindings (fail closed). */
			log_warning("logind: cannot check session %s (%s); keeping its bindings.",
			        q->session_id, strna(message));
	}
	prune_job_pump(j);
	return 0;
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (const char *const *)a,
	          y = (uintptr_t) * (const char *const *)b;

	return x < y ? -1 : x > y;
}

static int bindings_prune_sessions(Manager *m)
{
	_cleanup_free_ const char **seen = NULL;
	PruneJob *j;
	size_t n = 0, k = 0;

	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->manager = m;
	seen = calloc(m->n_bindings + 1, sizeof(char *));
	j->ids = calloc(m->n_bindings + 1, sizeof(char *));
	if (!seen || !j->ids) {
		prune_job_free(j);
		return -ENOMEM;
	}
	/* Interned: one session id is one pointer, whatever the number of its bindings. */
	for (Binding *b = m->bindings; b; b = b->next)
		if (b->session_id)
			seen[n++] = b->session_id;
	qsort(seen, n, sizeof(char *), cmp_ptr);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && seen[i] == seen[i - 1])
			continue;
		j->ids[k] = strdup(seen[i]);
		if (!j->ids[k++]) {
			prune_job_free(j);
			return -ENOMEM;
		}
	}
	j->n = k;
	j->queries = calloc(k + 1, sizeof(PruneQuery));
	if (!j->queries) {
		prune_job_free(j);
		return -ENOMEM;
	}
	for (size_t i = 0; i < k; i++) {
		j->queries[i].job = j;
		j->queries[i].session_id = j->ids[i];
	}
	prune_job_free(m->prune);
	m->prune = j;
	prune_job_pump(j);
	return 0;
}

/* --- binding files that cannot be used ------------------------------------------------ */

/* A binding file nothing is done about: one alert record (session-bind, failure, REASON)
 * and an error an administrator can act on. The file stays where it is. */
static void binding_file_alert(Manager *m, const char *id, const char *path, const char *reason,
        const char *why, const char *message)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	char detail[192];

	snprintf(detail, sizeof(detail), "file %s: %s; nothing done, the file is kept", id, why);
	rec.event = AUDIT_EVENT_SESSION_BIND;
	rec.reason = reason;
	rec.message = message;
	rec.detail = detail;
	(void)manager_audit(m, &rec);
	log_error("SECURITY: binding file %s cannot be used (%s): %s The file is kept for "
	          "inspection; remove it once inspected.",
	        path, why, message);
}

/* A corrupt binding salvaged from PATH (binding_salvage()), about to be acted on: one alert
 * record saying what is done, and an error line. */
static void binding_corrupt_alert(Binding *b, const char *path, const char *why, bool rule_action)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	char subject[32], what[128], detail[256];

	binding_audit_fill(b, &rec, subject, sizeof(subject));
	snprintf(what, sizeof(what), "%s %s (%s)", rec.action, rec.session,
	        rule_action ? "the rule's removal action"
	                    : "the strictest action: the rule's cannot be read");
	snprintf(detail, sizeof(detail), "file %s: %s; %s now", b->id, why, what);
	rec.event = AUDIT_EVENT_SESSION_BIND;
	rec.reason = "binding-corrupt";
	rec.message = "The binding file cannot be read as keywardd wrote it and the key it was "
	              "bound to is not known: the removal action runs now. The file is kept for "
	              "inspection.";
	rec.detail = detail;
	(void)manager_audit(b->manager, &rec);
	log_error("SECURITY: binding file %s cannot be used (%s) and the key it was bound to is "
	          "not known, so it is acted on now: %s. The file is kept for inspection; remove "
	          "it once inspected.",
	        path, why, what);
}

/* File ID (TEXT, LEN bytes) that binding_parse() refused for WHY: what can be identified in
 * it is linked as corrupt bindings (removal.c acts on them at once), else only an alert.
 * Returns how many were linked, or -ENOMEM. */
static int bindings_load_corrupt(
        Manager *m, const char *id, const char *path, const char *text, size_t len, const char *why)
{
	Binding *salvaged[2];
	bool rule_action;
	int n;

	n = binding_salvage(m, id, text, len, salvaged, &rule_action);
	if (n < 0)
		return n;
	if (n == 0)
		binding_file_alert(m, id, path, "binding-corrupt", why,
		        "It names no session or process that can be identified: removal is not "
		        "enforced for whatever it bound.");
	for (int i = 0; i < n; i++) {
		binding_corrupt_alert(salvaged[i], path, why, rule_action);
		binding_link(m, salvaged[i]);
	}
	return n;
}

/* Errors of read_full_file_safe() that mean someone else than root could have written the
 * file, or it is no regular file: nothing it says may be acted on. */
static bool binding_file_untrusted(int r)
{
	return r == -EPERM || r == -EACCES || r == -ELOOP || r == -EBADFD;
}

/* Reads binding file PATH (as read_full_file_safe() with SAFE_FILE_DEFAULT) into BUF
 * (BINDING_FILE_MAX + 1 bytes), NUL-terminated, with no allocation. Start-up reads
 * thousands: one read each when the file is its stat size (binding files are replaced by
 * rename, never written in place), not a second one to see the end of the file. */
static int binding_file_read(const char *path, char *buf, size_t *ret_len, const char **ret_problem)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	size_t len = 0;

	fd = safe_open(path, SAFE_FILE_DEFAULT, &st, ret_problem);
	if (fd < 0)
		return fd;
	for (;;) {
		ssize_t k = read(fd, buf + len, BINDING_FILE_MAX + 1 - len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			*ret_problem = "cannot be read (I/O error)";
			return -errno;
		}
		len += (size_t)k;
		if (len > BINDING_FILE_MAX) {
			*ret_problem = "is larger than allowed";
			return -EFBIG;
		}
		if (k == 0 || len == (size_t)st.st_size)
			break;
	}
	buf[len] = '\0';
	*ret_len = len;
	return 0;
}

int bindings_load(Manager *m)
{
	_cleanup_free_ char *dir = NULL;
	const PolicySettings *s = policy_settings(m->policy);
	char text[BINDING_FILE_MAX + 1], copy[BINDING_FILE_MAX + 1];
	char path[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int n = 0, r;

	r = bindings_dir(m, &dir);
	if (r < 0)
		return log_error_errno(r, "Cannot create the bindings directory under %s: %m",
		        strna(s->runtime_dir));
	if (lstat(dir, &st) < 0)
		return log_error_errno(-errno, "Cannot inspect %s: %m", dir);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022))
		return log_error_errno(-EPERM,
		        "%s must be a directory owned by uid %u and writable only by it.", dir,
		        (unsigned)geteuid());
	d = opendir(dir);
	if (!d)
		return log_error_errno(-errno, "Cannot open %s: %m", dir);
	while ((de = readdir(d))) {
		const char *problem = NULL, *why = NULL;
		Binding *b = NULL;
		size_t len = 0;
		bool hex = strlen(de->d_name) == KEYWARD_TOKEN_CHARS;

		for (const char *p = de->d_name; hex && *p; p++)
			hex = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f');
		if (!hex)
			continue; /* ".", "..", temp files of write_file_atomic */
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if ((size_t)n >= s->max_bindings) {
			log_error("More binding files in %s than max_bindings (%u); %s is not "
			          "loaded.",
			        dir, s->max_bindings, path);
			continue;
		}
		/* Only root can have written a root-owned file nobody else may write in this
		 * root-only directory (readable by others or not): what it says is root's. */
		r = binding_file_read(path, text, &len, &problem);
		if (r < 0) {
			bool untrusted = binding_file_untrusted(r);

			binding_file_alert(m, de->d_name, path,
			        untrusted ? "binding-untrusted" : "binding-corrupt",
			        problem ?: strerror(-r),
			        untrusted
			                ? "Someone else than root could have written it (or it is "
			                  "not a regular file), so nothing it names is acted on: "
			                  "removal is not enforced for it."
			                : "It cannot be read: removal is not enforced for whatever "
			                  "it bound.");
			continue;
		}
		if (strlen(text) != len)
			r = -EBADMSG, why = "a NUL byte";
		else {
			memcpy(copy, text, len + 1);
			r = binding_parse(m, de->d_name, copy, &b, &why);
		}
		if (r == -EBADMSG)
			/* Never silently enforced less: acted on at once, or an alert. */
			r = bindings_load_corrupt(m, de->d_name, path, text, len, strna(why));
		if (r < 0) {
			closedir(d);
			return log_error_errno(r, "Cannot load the binding file %s: %m", path);
		}
		if (!b) {
			n += r;
			continue;
		}
		/* The keywardd before us stopped or died during a removal action: that action
		 * never got an outcome. Recorded now; the action itself runs again below if the
		 * key is still gone (removal_reconcile). */
		if (b->action_seq) {
			log_warning("Binding %s: the removal action (audit seq %" PRIu64
			            ") was interrupted by a stop of keywardd.",
			        b->id, b->action_seq);
			binding_outcome(b, "interrupted", "daemon-stopped",
			        "keywardd stopped before the action's outcome was known.");
			if (!b->corrupt && binding_save(b) < 0)
				log_warning("Cannot save binding %s.", b->id);
		}
		/* An elevation is its process: gone (or its pid reused) means the binding ended,
		 * whether or not pam_keyward also named the desktop session it ran in. */
		if ((!b->session_id || (b->removal == POLICY_REMOVAL_END_ELEVATION && b->pid > 1 &&
		                               b->pid_start)) &&
		        !binding_process_alive(b)) {
			binding_link(m, b);
			binding_drop(b, "process-ended");
			continue;
		}
		binding_link(m, b);
		n++;
	}
	closedir(d);
	log_info("Loaded %d session binding(s) from %s.", n, dir);
	r = bindings_prune_sessions(m);
	if (r < 0)
		return log_error_errno(r, "Cannot check the bound sessions with logind: %m");
	return n;
}

void bindings_free_all(Manager *m)
{
	prune_job_free(m->prune);
	m->prune = NULL;
	while (m->bindings) {
		Binding *b = m->bindings;
		m->bindings = b->next;
		binding_free(b);
	}
	m->n_bindings = 0;
	m->by_device.overflow = NULL;
	binding_index_free(m);
}
