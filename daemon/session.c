/* session.c: BindSession / UnbindSession — turn the token of a successful Authenticate
 * into a binding of the session (or elevated process) to the physical key; keep every
 * binding as one small file under runtime_dir/bindings, reload and prune them at start. */
#include "session.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>

#include "bus-api.h"
#include "log.h"
#include "logind.h"
#include "process.h"
#include "removal.h"
#include "util.h"

static void binding_link(Manager *m, Binding *b)
{
	b->prev = NULL;
	b->next = m->bindings;
	if (m->bindings)
		m->bindings->prev = b;
	m->bindings = b;
	m->n_bindings++;
}

static void binding_unlink(Manager *m, Binding *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else if (m->bindings == b)
		m->bindings = b->next;
	if (b->next)
		b->next->prev = b->prev;
	b->next = b->prev = NULL;
	m->n_bindings--;
}

Binding *manager_binding_find(Manager *m, const char *id)
{
	for (Binding *b = m->bindings; b; b = b->next)
		if (streq(b->id, id))
			return b;
	return NULL;
}

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
	rec->session = binding_subject(b, subject_buf, size);
	rec->action = policy_removal_to_string(b->removal);
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

	if (binding_path(b, &path) < 0)
		return;
	if (unlink(path) < 0 && errno != ENOENT)
		log_error_errno(-errno, "Cannot remove the binding file %s: %m", path);
}

void binding_drop(Binding *b, const char *reason)
{
	Manager *m = b->manager;
	AuditRecord rec = AUDIT_RECORD_INIT;
	char subject[32];

	binding_unlink(m, b);
	binding_remove_file(b);
	rec.event = AUDIT_EVENT_SESSION_UNBIND;
	binding_audit_fill(b, &rec, subject, sizeof(subject));
	rec.action = NULL;
	rec.reason = reason;
	rec.result = AUDIT_RESULT_SUCCESS;
	(void)manager_audit(m, &rec);
	log_info("Binding %s (%s of %s) removed: %s.", b->id, rec.session, b->user, reason);
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
	char **ids; /* sorted, distinct */
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
		int r = logind_get_session(m, q->session_id, on_prune_reply, q, &q->slot);

		if (r < 0) {
			log_warning_errno(r,
			        "Cannot ask logind about session %s; keeping its bindings: %m",
			        q->session_id);
			continue;
		}
		j->in_flight++;
	}
	if (j->in_flight == 0 && j->next >= j->n) {
		if (m->removal && m->removal->prune == j)
			m->removal->prune = NULL;
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
			for (Binding *b = j->manager->bindings, *next; b; b = next) {
				next = b->next;
				if (b->session_id && streq(b->session_id, q->session_id) &&
				        b->state != BINDING_ACTING)
					binding_drop(b, "session-ended");
			}
		} else
			/* logind did not answer: keep the bindings (fail closed). */
			log_warning("logind: cannot check session %s (%s); keeping its bindings.",
			        q->session_id, strna(message));
	}
	prune_job_pump(j);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int bindings_prune_sessions(Manager *m)
{
	PruneJob *j;
	size_t n = 0, k = 0;

	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->manager = m;
	j->ids = calloc(m->n_bindings + 1, sizeof(char *));
	if (!j->ids) {
		free(j);
		return -ENOMEM;
	}
	for (Binding *b = m->bindings; b; b = b->next)
		if (b->session_id) {
			j->ids[n] = strdup(b->session_id);
			if (!j->ids[n++]) {
				prune_job_free(j);
				return -ENOMEM;
			}
		}
	qsort(j->ids, n, sizeof(char *), cmp_str);
	/* keep the distinct ones */
	for (size_t i = 0; i < n; i++) {
		if (k > 0 && streq(j->ids[i], j->ids[k - 1])) {
			free(j->ids[i]);
			j->ids[i] = NULL;
			continue;
		}
		j->ids[k++] = j->ids[i];
		if (k - 1 != i)
			j->ids[i] = NULL;
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
	if (m->removal) {
		prune_job_free(m->removal->prune);
		m->removal->prune = j;
	}
	prune_job_pump(j);
	return 0;
}

int bindings_load(Manager *m)
{
	_cleanup_free_ char *dir = NULL;
	const PolicySettings *s = policy_settings(m->policy);
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
		_cleanup_free_ char *path = NULL, *text = NULL;
		const char *problem = NULL, *why = NULL;
		Binding *b = NULL;
		size_t len;
		bool hex = strlen(de->d_name) == KEYWARD_TOKEN_CHARS;

		for (const char *p = de->d_name; hex && *p; p++)
			hex = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f');
		if (!hex)
			continue; /* ".", "..", temp files of write_file_atomic */
		if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
			closedir(d);
			return -ENOMEM;
		}
		if ((size_t)n >= s->max_bindings) {
			log_error("More binding files in %s than max_bindings (%u); %s is not "
			          "loaded.",
			        dir, s->max_bindings, path);
			continue;
		}
		r = read_full_file_safe(path,
		        SAFE_FILE_DEFAULT | SAFE_FILE_NO_WORLD_READ | SAFE_FILE_NO_GROUP_READ,
		        BINDING_FILE_MAX, &text, &len, &problem);
		if (r >= 0 && strlen(text) != len)
			r = -EBADMSG, why = "a NUL byte";
		if (r >= 0)
			r = binding_parse(m, de->d_name, text, &b, &why);
		if (r < 0) {
			/* Left in place for an administrator to look at; never silently enforced
			 * less. */
			log_error_errno(r, "Binding file %s cannot be used (%s): %m", path,
			        problem ? problem : strna(why));
			continue;
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

/* --- bus methods ------------------------------------------------------------------- */

static int on_resolve_type(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	Binding *b = userdata;
	const char *type = NULL;

	b->resolve_slot = sd_bus_slot_unref(b->resolve_slot);
	if (logind_reply_failed(reply, NULL, NULL) ||
	        sd_bus_message_read(reply, "v", "s", &type) < 0)
		return 0;
	if (!binding_value_ok(type) || strlen(type) > 32)
		return 0;
	free(b->session_type);
	b->session_type = strdup(type);
	if (binding_save(b) < 0)
		log_warning("Cannot record the session type of binding %s.", b->id);
	return 0;
}

static int on_resolve_session(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	Binding *b = userdata;
	const char *path = NULL, *name = NULL, *message = NULL;
	int r;

	b->resolve_slot = sd_bus_slot_unref(b->resolve_slot);
	if (logind_reply_failed(reply, &name, &message)) {
		log_warning("logind does not know session %s of binding %s (%s): %s", b->session_id,
		        b->id, strna(name), strna(message));
		return 0;
	}
	if (sd_bus_message_read(reply, "o", &path) < 0 || !binding_value_ok(path))
		return 0;
	if (!b->session_path) {
		b->session_path = strdup(path);
		if (!b->session_path)
			return 0;
	}
	r = logind_get_session_property(
	        b->manager, b->session_path, "Type", on_resolve_type, b, &b->resolve_slot);
	if (r < 0)
		log_warning_errno(
		        r, "Cannot ask logind for the type of session %s: %m", b->session_id);
	return 0;
}

/* A token that cannot bind what it is presented for: one audit record (the session or
 * elevation does not start), the token is spent, the caller gets NAME and MESSAGE. */
static int bind_refused(Manager *m, AuthToken *t, pid_t pid, const char *reason,
        sd_bus_error *error, const char *name, const char *message)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	char subject[32];

	snprintf(subject, sizeof(subject), "pid:%d", (int)pid);
	rec.event = AUDIT_EVENT_SESSION_BIND;
	rec.result = AUDIT_RESULT_FAILURE;
	rec.user = t->user;
	rec.uid = t->uid;
	rec.service = t->service;
	rec.tty = t->tty;
	rec.cred_label = t->cred_label;
	rec.cred_id = t->cred_id;
	rec.rule = t->rule;
	rec.session = subject;
	rec.reason = reason;
	rec.message = message;
	(void)manager_audit(m, &rec);
	log_notice("BindSession for %s/%s refused (%s): %s", t->user, t->service, reason, message);
	auth_token_free(t);
	return sd_bus_error_setf(error, name, "%s", message);
}

int bus_method_bind_session(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error)
{
	const char *token, *session_id, *service, *tty, *user;
	AuditRecord rec = AUDIT_RECORD_INIT;
	uint32_t pid;
	AuthToken *t;
	Binding *b;
	uint8_t rnd[KEYWARD_TOKEN_BYTES];
	_cleanup_free_ char *hex = NULL;
	char subject[32];
	int r;

	r = sd_bus_message_read(msg, "ssusss", &token, &session_id, &pid, &service, &tty, &user);
	if (r < 0)
		return r;
	if ((r = bus_check_string(token, KEYWARD_TOKEN_CHARS, false, "token", error)) < 0 ||
	        (r = bus_check_string(
	                 session_id, KEYWARD_MAX_SESSION_ID, true, "session id", error)) < 0 ||
	        (r = bus_check_string(service, KEYWARD_MAX_SERVICE, false, "service", error)) < 0 ||
	        (r = bus_check_string(tty, KEYWARD_MAX_TTY, true, "tty", error)) < 0 ||
	        (r = bus_check_user(user, error)) < 0)
		return r;
	if (isempty(session_id) && pid == 0)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
		        "Give a logind session id or the pid of the elevated process.");
	if (pid > INT32_MAX || pid == 1)
		return sd_bus_error_setf(
		        error, KEYWARD_BUS_ERROR_INVALID_ARGS, "Invalid pid %u.", pid);
	t = manager_token_take(m, token);
	if (!t)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_NOT_FOUND,
		        "Unknown or expired authentication token.");
	if (m->n_bindings >= policy_settings(m->policy)->max_bindings) {
		char why[96];

		snprintf(why, sizeof(why), "Too many session bindings (max_bindings = %u).",
		        policy_settings(m->policy)->max_bindings);
		return bind_refused(
		        m, t, caller->pid, "too-many-bindings", error, KEYWARD_BUS_ERROR_BUSY, why);
	}
	/* The token binds what it was issued for: the authenticated user (sudo has set
	 * PAM_USER to the target by now, so the module sends the user it authenticated),
	 * the service, and the process that authenticated (or a child of it). */
	if (!streq(t->user, user) || !streq(t->service, service))
		return bind_refused(m, t, caller->pid, "token-mismatch", error,
		        KEYWARD_BUS_ERROR_ACCESS_DENIED,
		        "The token was issued for another user or service.");
	if (t->caller_pid > 0) {
		ProcessId issuer = {t->caller_pid, t->caller_start};
		ProcessId presenter = {caller->pid, 0};

		r = caller->pid > 0 ? pid_start_time(caller->pid, &presenter.start) : -ESRCH;
		if (r >= 0)
			r = process_in_tree(&presenter, &issuer);
		if (r <= 0)
			return bind_refused(m, t, caller->pid, "token-process", error,
			        KEYWARD_BUS_ERROR_ACCESS_DENIED,
			        "The token was issued to another process.");
	}
	if (pid > 0 && caller->pid > 0) {
		/* The elevation is the caller or a process it started, never a stranger. */
		ProcessId elevated = {(pid_t)pid, 0}, presenter = {caller->pid, 0};

		r = pid_start_time((pid_t)pid, &elevated.start);
		if (r >= 0)
			r = pid_start_time(caller->pid, &presenter.start);
		if (r >= 0)
			r = process_in_tree(&elevated, &presenter);
		if (r <= 0)
			return bind_refused(m, t, (pid_t)pid, "foreign-process", error,
			        KEYWARD_BUS_ERROR_INVALID_ARGS,
			        "The process to bind is not the caller or one of its children.");
	}
	b = binding_new(m);
	if (!b || getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd) ||
	        hex_encode(rnd, sizeof(rnd), &hex) < 0) {
		binding_free(b);
		auth_token_free(t);
		return -ENOMEM;
	}
	memcpy(b->id, hex, KEYWARD_TOKEN_CHARS);
	b->user = TAKE_PTR(t->user);
	b->uid = t->uid;
	b->session_id = isempty(session_id) ? NULL : strdup(session_id);
	b->pid = (pid_t)pid;
	b->service = strdup(service);
	b->tty = strdup(tty);
	b->cred_id = TAKE_PTR(t->cred_id);
	b->cred_label = TAKE_PTR(t->cred_label);
	b->hidraw_path = TAKE_PTR(t->hidraw_path);
	b->sysfs_path = TAKE_PTR(t->sysfs_path);
	/* The removal behaviour of the rule that decided the authentication: a reload or
	 * different arguments in between do not change it. */
	b->rule = TAKE_PTR(t->rule);
	b->removal = t->removal;
	b->grace_ms = t->grace_ms;
	b->lock_verify_ms = t->lock_verify_ms;
	b->on_lock_failure = t->on_lock_failure;
	b->created_ms = now_realtime_ms();
	auth_token_free(t);
	if (!b->service || !b->tty || !b->rule || (!isempty(session_id) && !b->session_id)) {
		binding_free(b);
		return -ENOMEM;
	}
	if (b->pid > 0) {
		/* The elevation is the process tree under pid; its start time tells a reused
		 * pid apart. The process group is recorded for the administrator only: it may
		 * be the caller's shell (sudo without job control), so it is never signalled. */
		pid_t pg = getpgid(b->pid);
		r = pid_start_time(b->pid, &b->pid_start);
		if (r < 0 && !b->session_id) {
			binding_free(b);
			return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
			        "Process %u does not exist; an elevation must name a running "
			        "process.",
			        pid);
		}
		b->pgid = pg > 1 ? pg : 0;
	}

	rec.event = AUDIT_EVENT_SESSION_BIND;
	r = 0;
	if (!b->sysfs_path && !b->hidraw_path)
		r = -ENODEV;
	if (r >= 0)
		r = binding_save(b);
	binding_audit_fill(b, &rec, subject, sizeof(subject));
	if (r < 0) {
		rec.reason = r == -ENODEV ? "no-device" : "error";
		rec.message = "The binding could not be made durable; the session is not bound.";
		(void)manager_audit(m, &rec);
		log_error_errno(r, "Cannot bind %s of %s: %m", rec.session, b->user);
		binding_free(b);
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_FAILED,
		        "The session cannot be bound to the key (%s).", strerror(-r));
	}
	binding_link(m, b);
	rec.result = AUDIT_RESULT_SUCCESS;
	rec.reason = "ok";
	(void)manager_audit(m, &rec);
	log_info("Bound %s of %s to key %s (binding %s, on removal: %s, grace %u ms).", rec.session,
	        b->user, strna(rec.device), b->id, policy_removal_to_string(b->removal),
	        b->grace_ms);
	r = sd_bus_reply_method_return(msg, "s", b->id);
	if (b->session_id) {
		int q = logind_get_session(
		        m, b->session_id, on_resolve_session, b, &b->resolve_slot);
		if (q < 0)
			log_warning_errno(
			        q, "Cannot ask logind about session %s: %m", b->session_id);
	}
	/* The key may have gone between Authenticate and BindSession. */
	removal_check_binding(m, b);
	return r;
}

int bus_method_unbind_session(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error)
{
	const char *id;
	Binding *b;
	int r;

	r = sd_bus_message_read(msg, "s", &id);
	if (r < 0)
		return r;
	r = bus_check_string(id, KEYWARD_TOKEN_CHARS, false, "binding id", error);
	if (r < 0)
		return r;
	b = manager_binding_find(m, id);
	if (!b)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_NOT_FOUND, "No binding %s.", id);
	if (b->state == BINDING_ACTING && b->tree) {
		/* sudo and su close their PAM session when the SIGTERM of end-elevation reaches
		 * them: the binding stays until the whole tree is gone, so that the outcome is
		 * still recorded. */
		b->unbind_requested = true;
		log_debug("Binding %s: unbind deferred until its elevation has ended.", b->id);
		return sd_bus_reply_method_return(msg, "");
	}
	binding_drop(b, "unbound");
	return sd_bus_reply_method_return(msg, "");
}
