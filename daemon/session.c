/* session.c: BindSession / UnbindSession — turn the token of a successful Authenticate
 * into a binding of the session (or elevated process) to the physical key (the table and
 * its files are binding.c's), once logind places the caller in the session it names, and
 * resolve the bound session's logind object and type. */
#include "session.h"

#include <signal.h>
#include <sys/random.h>

#include "intern.h"
#include "log.h"
#include "logind.h"
#include "process.h"
#include "removal.h"
#include "util.h"

/* --- bus methods ------------------------------------------------------------------- */

static int on_resolve_type(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	Binding *b = userdata;
	const char *type = NULL;

	b->run->resolve_slot = sd_bus_slot_unref(b->run->resolve_slot);
	binding_run_release(b);
	if (logind_reply_failed(reply, NULL, NULL) ||
	        sd_bus_message_read(reply, "v", "s", &type) < 0)
		return 0;
	if (!binding_value_ok(type) || strlen(type) > 32 ||
	        intern_replace(&b->session_type, type) < 0)
		return 0;
	if (binding_save(b) < 0)
		log_warning("Cannot record the session type of binding %s.", b->id);
	return 0;
}

static int on_resolve_session(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	Binding *b = userdata;
	const char *path = NULL, *name = NULL, *message = NULL;
	int r;

	b->run->resolve_slot = sd_bus_slot_unref(b->run->resolve_slot);
	binding_run_release(b);
	if (logind_reply_failed(reply, &name, &message)) {
		log_warning("logind does not know session %s of binding %s (%s): %s", b->session_id,
		        b->id, strna(name), strna(message));
		return 0;
	}
	if (sd_bus_message_read(reply, "o", &path) < 0 || !binding_value_ok(path))
		return 0;
	if (!b->session_path && intern_replace(&b->session_path, path) < 0)
		return 0;
	r = binding_run(b) ? logind_get_session_property(b->manager->bus, b->session_path, "Type",
	                             on_resolve_type, b, &b->run->resolve_slot)
	                   : -ENOMEM;
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
	audit_record_set_decision(&rec, t->decision);
	rec.session = subject;
	rec.reason = reason;
	rec.message = message;
	(void)manager_audit(m, &rec);
	log_notice("BindSession for %s/%s refused (%s): %s", t->user, t->service, reason, message);
	auth_token_free(t);
	return sd_bus_error_setf(error, name, "%s", message);
}

/* At most max_bindings bindings: refuses (and spends) the token when there is no room. */
static int bind_check_room(Manager *m, AuthToken *t, pid_t caller_pid, sd_bus_error *error)
{
	char why[96];

	if (m->n_bindings < policy_settings(m->policy)->max_bindings)
		return 0;
	snprintf(why, sizeof(why), "Too many session bindings (max_bindings = %u).",
	        policy_settings(m->policy)->max_bindings);
	return bind_refused(
	        m, t, caller_pid, "too-many-bindings", error, KEYWARD_BUS_ERROR_BUSY, why);
}

/* Makes the binding the token T (consumed) was checked for, writes its file and answers
 * MSG with its id; or sets ERROR and returns -errno. */
static int bind_complete(Manager *m, sd_bus_message *msg, AuthToken *t, pid_t caller_pid,
        const char *session_id, uint32_t pid, const char *service, const char *tty,
        sd_bus_error *error)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	Binding *b;
	uint8_t rnd[KEYWARD_TOKEN_BYTES];
	_cleanup_free_ char *hex = NULL;
	char subject[32];
	bool ssh_agent = false;
	int r;

	/* (again: other calls may have bound meanwhile, while logind was asked) */
	r = bind_check_room(m, t, caller_pid, error);
	if (r < 0)
		return r;
	b = binding_new(m);
	if (!b || getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd) ||
	        hex_encode(rnd, sizeof(rnd), &hex) < 0) {
		binding_free(b);
		auth_token_free(t);
		return -ENOMEM;
	}
	memcpy(b->id, hex, KEYWARD_TOKEN_CHARS);
	b->uid = t->uid;
	b->pid = (pid_t)pid;
	/* (the rule: the removal behaviour of the rule that decided the authentication; a
	 * reload or different arguments in between do not change it) */
	if (intern_replace(&b->user, t->user) < 0 ||
	        intern_replace(&b->session_id, isempty(session_id) ? NULL : session_id) < 0 ||
	        intern_replace(&b->service, service) < 0 || intern_replace(&b->tty, tty) < 0 ||
	        intern_replace(&b->cred_id, t->cred_id) < 0 ||
	        intern_replace(&b->cred_label, t->cred_label) < 0 ||
	        intern_replace(&b->hidraw_path, t->hidraw_path) < 0 ||
	        intern_replace(&b->sysfs_path, t->sysfs_path) < 0 ||
	        intern_replace(&b->rule, t->rule) < 0 ||
	        (t->decision && (intern_replace(&b->rule_name, t->decision->rule_name) < 0 ||
	                                intern_replace(&b->policy, t->decision->policy) < 0))) {
		binding_free(b);
		auth_token_free(t);
		return -ENOMEM;
	}
	b->removal = t->removal;
	b->grace_ms = t->grace_ms;
	b->lock_verify_ms = t->lock_verify_ms;
	b->on_lock_failure = t->on_lock_failure;
	b->created_ms = now_realtime_ms();
	if (t->ssh_agent) {
		/* Approved through the forwarded SSH agent: no key here to remove, so the
		 * elevation ends after the rule's remote_lifetime instead (removal.c). */
		ssh_agent = true;
		b->removal = POLICY_REMOVAL_END_ELEVATION;
		b->expires_ms = b->created_ms + (uint64_t)(t->lifetime_s ?: 1) * 1000;
	}
	auth_token_free(t);
	if (!b->rule) {
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
	if (!b->sysfs_path && !b->hidraw_path && (!ssh_agent || b->pid <= 1 || !b->pid_start))
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
		int q = binding_run(b) ? logind_get_session(m->bus, b->session_id,
		                                 on_resolve_session, b, &b->run->resolve_slot)
		                       : -ENOMEM;
		if (q < 0)
			log_warning_errno(
			        q, "Cannot ask logind about session %s: %m", b->session_id);
	}
	/* The key may have gone between Authenticate and BindSession. */
	removal_check_binding(m, b);
	return r;
}

/* A BindSession call that names a session, waiting for logind to say which session its
 * caller is in. */
typedef struct BindRequest {
	Manager *manager;
	sd_bus_message *msg; /* the call; its strings stay valid while it is referenced */
	AuthToken *token;
	pid_t caller_pid;
	const char *session_id, *service, *tty;
	uint32_t pid;
	sd_bus_slot *slot;            /* GetSessionByPID(caller) */
	sd_event_source *exit_source; /* the daemon stops first: answered, not leaked */
} BindRequest;

static void bind_request_free(BindRequest *q)
{
	sd_bus_slot_unref(q->slot);
	sd_event_source_disable_unref(q->exit_source);
	auth_token_free(q->token);
	sd_bus_message_unref(q->msg);
	free(q);
}

/* Answers the deferred call with R (with ERROR when set) unless R is a success, which
 * bind_complete() has answered; frees Q. */
static void bind_request_done(BindRequest *q, int r, const sd_bus_error *error)
{
	if (r < 0) {
		r = sd_bus_error_is_set(error) ? sd_bus_reply_method_error(q->msg, error)
		                               : sd_bus_reply_method_errno(q->msg, r, NULL);
		if (r < 0)
			log_debug_errno(r, "Cannot answer BindSession: %m");
	}
	bind_request_free(q);
}

/* The session a caller names cannot be checked with logind (CAUSE): refused, fail closed. */
static int bind_unverified(Manager *m, AuthToken *t, pid_t caller_pid, const char *session_id,
        const char *cause, sd_bus_error *error)
{
	char why[256];

	snprintf(why, sizeof(why),
	        "logind cannot tell which session the calling process is in (%s), so session %s "
	        "cannot be verified.",
	        cause, session_id);
	return bind_refused(
	        m, t, caller_pid, "session-unverified", error, KEYWARD_BUS_ERROR_FAILED, why);
}

/* logind's answer to GetSessionByPID(caller): the caller (the PAM application: login and
 * sshd after pam_systemd moved them into the new session, su and sudo in the session they
 * were started in) must be in the session it names. No answer is no binding. */
static int on_caller_session(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_free_ char *id = NULL;
	BindRequest *q = userdata;
	AuthToken *t = TAKE_PTR(q->token);
	const char *name = NULL, *message = NULL, *path = NULL;
	char why[256];
	int r;

	if (logind_reply_failed(reply, &name, &message) &&
	        !streq(strempty(name), LOGIND_ERROR_NO_SESSION_FOR_PID))
		r = bind_unverified(
		        q->manager, t, q->caller_pid, q->session_id, strna(message), &error);
	else if (!name && (sd_bus_message_read(reply, "o", &path) < 0 ||
	                          logind_session_id_from_path(path, &id) < 0))
		r = bind_unverified(q->manager, t, q->caller_pid, q->session_id,
		        "its answer is not a session", &error);
	else if (!id || !streq(id, q->session_id)) {
		snprintf(why, sizeof(why),
		        "The calling process (pid %d) is not in logind session %s; logind places "
		        "it "
		        "in %s.",
		        (int)q->caller_pid, q->session_id, id ? id : "no session");
		r = bind_refused(q->manager, t, q->caller_pid, "session-mismatch", &error,
		        KEYWARD_BUS_ERROR_ACCESS_DENIED, why);
	} else
		r = bind_complete(q->manager, q->msg, t, q->caller_pid, q->session_id, q->pid,
		        q->service, q->tty, &error);
	bind_request_done(q, r, &error);
	return 0;
}

static int on_bind_exit(sd_event_source *s, void *userdata)
{
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	BindRequest *q = userdata;
	int r;

	r = bind_refused(q->manager, TAKE_PTR(q->token), q->caller_pid, "error", &error,
	        KEYWARD_BUS_ERROR_FAILED,
	        "keywardd stopped before logind answered; the session is not bound.");
	bind_request_done(q, r, &error);
	return 0;
}

/* Asks logind (asynchronously, bounded) which session the caller is in before binding
 * SESSION_ID; the reply to MSG is deferred until it answers. */
static int bind_check_session(Manager *m, sd_bus_message *msg, AuthToken *t,
        const BusCaller *caller, const char *session_id, uint32_t pid, const char *service,
        const char *tty, sd_bus_error *error)
{
	BindRequest *q;
	int r;

	if (caller->pid <= 0)
		return bind_unverified(m, t, caller->pid, session_id,
		        "keywardd does not know the caller's pid", error);
	q = calloc(1, sizeof(*q));
	if (!q) {
		auth_token_free(t);
		return -ENOMEM;
	}
	*q = (BindRequest){
	        .manager = m,
	        .msg = sd_bus_message_ref(msg),
	        .caller_pid = caller->pid,
	        .session_id = session_id,
	        .service = service,
	        .tty = tty,
	        .pid = pid,
	};
	r = sd_event_add_exit(m->event, &q->exit_source, on_bind_exit, q);
	if (r >= 0) /* before sd-bus flushes and closes the connection on exit */
		r = sd_event_source_set_priority(q->exit_source, SD_EVENT_PRIORITY_IMPORTANT);
	if (r >= 0)
		r = logind_get_session_by_pid(m->bus, caller->pid, on_caller_session, q, &q->slot);
	if (r < 0) {
		bind_request_free(q);
		return bind_unverified(m, t, caller->pid, session_id, strerror(-r), error);
	}
	q->token = t;
	return 1; /* the reply is deferred */
}

int bus_method_bind_session(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error)
{
	const char *token, *session_id, *service, *tty, *user;
	uint32_t pid;
	AuthToken *t;
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
	r = bind_check_room(m, t, caller->pid, error);
	if (r < 0)
		return r;
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
	/* A session is bound only for a caller logind places in it. */
	if (!isempty(session_id))
		return bind_check_session(m, msg, t, caller, session_id, pid, service, tty, error);
	return bind_complete(m, msg, t, caller->pid, session_id, pid, service, tty, error);
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
	if (b->state == BINDING_ACTING && b->run && b->run->tree) {
		/* sudo and su close their PAM session when the SIGTERM of end-elevation reaches
		 * them: the binding stays until the whole tree is gone, so that the outcome is
		 * still recorded. */
		b->run->unbind_requested = true;
		log_debug("Binding %s: unbind deferred until its elevation has ended.", b->id);
		return sd_bus_reply_method_return(msg, "");
	}
	binding_drop(b, "unbound");
	return sd_bus_reply_method_return(msg, "");
}
