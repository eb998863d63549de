/* breakglass.c: break-glass recovery in keywardd — the Breakglass* methods (issue, list,
 * revoke, approve with the approver's own key) and the login path Authenticate hands over
 * to: a recovery code or a pending approval in place of a key, rate-limited, the code
 * burnt durably before the answer, every step in the audit trail (never a code or hash). */
#include "bus-api.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accounts.h"
#include "breakglass.h"
#include "creds.h"
#include "lockout.h"
#include "log.h"
#include "util.h"

/* Break-glass work (Argon2id) runs on a worker through the device-op queue; its deadline
 * is this, not the touch timeout. */
#define BREAKGLASS_OP_TIMEOUT_MS 120000

static const PolicyBreakglass *bg_settings(Manager *m)
{
	return &policy_settings(m->policy)->breakglass;
}

static const char *bg_state_dir(Manager *m)
{
	return policy_settings(m->policy)->state_dir;
}

static uint64_t now_s(void)
{
	return now_realtime_ms() / 1000;
}

static void format_time_s(uint64_t s, char buf[static 32])
{
	if (format_rfc3339_ms(s * 1000, buf, 32) < 0)
		snprintf(buf, 32, "%" PRIu64, s);
}

/* --- expiry --------------------------------------------------------------------------- */

/* Marks USER's codes past expiry, drops an expired approval, and records each
 * (breakglass-expire, info). */
static void bg_expire_user(Manager *m, const char *user)
{
	_cleanup_(breakglass_set_freep) BreakglassSet *s = NULL;
	BreakglassApproval ap;
	uint64_t now = now_s();
	char detail[96], when[32];
	size_t n;
	int r;

	r = breakglass_load(bg_state_dir(m), user, &s);
	if (r < 0)
		log_warning_errno(r, "Cannot read the break-glass codes of %s: %m", user);
	else if ((n = breakglass_expire(s, now)) > 0) {
		AuditRecord rec = AUDIT_RECORD_INIT;

		r = breakglass_save(bg_state_dir(m), s);
		if (r < 0)
			log_warning_errno(
			        r, "Cannot mark the expired break-glass codes of %s: %m", user);
		format_time_s(s->codes[0].expires_s, when);
		snprintf(detail, sizeof(detail), "codes=%zu expired=%s", n, when);
		rec.event = AUDIT_EVENT_BREAKGLASS_EXPIRE;
		rec.result = AUDIT_RESULT_INFO;
		rec.reason = "expired";
		rec.user = user;
		rec.detail = detail;
		rec.message = "Unused break-glass recovery codes passed their expiry.";
		(void)manager_audit(m, &rec);
	}
	r = breakglass_approval_load(bg_state_dir(m), user, &ap);
	if (r >= 0 && now >= ap.expires_s) {
		AuditRecord rec = AUDIT_RECORD_INIT;

		r = breakglass_approval_remove(bg_state_dir(m), user);
		if (r < 0)
			log_warning_errno(r, "Cannot remove the expired approval of %s: %m", user);
		snprintf(detail, sizeof(detail), "approval=%s", ap.approver);
		rec.event = AUDIT_EVENT_BREAKGLASS_EXPIRE;
		rec.result = AUDIT_RESULT_INFO;
		rec.reason = "expired";
		rec.user = user;
		rec.detail = detail;
		rec.message = "A break-glass approval passed its expiry unused.";
		(void)manager_audit(m, &rec);
	} else if (r < 0 && r != -ENOENT)
		log_warning_errno(r, "Cannot read the break-glass approval of %s: %m", user);
}

/* Whether DE (in D) is a user's file: a regular file with a user name, not a temp file. */
static bool bg_is_user_file(DIR *d, const struct dirent *de)
{
	struct stat st;

	if (!valid_user_name(de->d_name) || strstr(de->d_name, ".tmp-"))
		return false;
	if (de->d_type != DT_UNKNOWN)
		return de->d_type == DT_REG;
	return fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static void bg_expire_dir(Manager *m, const char *sub)
{
	_cleanup_free_ char *dir = NULL;
	DIR *d;
	struct dirent *de;

	if (asprintf(&dir, "%s/%s", bg_state_dir(m), sub) < 0)
		return;
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d)))
		if (bg_is_user_file(d, de))
			bg_expire_user(m, de->d_name);
	closedir(d);
}

void breakglass_startup(Manager *m)
{
	bg_expire_dir(m, "breakglass");
	bg_expire_dir(m, "breakglass/approvals");
}

int breakglass_status_append(Manager *m, sd_bus_message *reply)
{
	int r;

	r = sd_bus_message_open_container(reply, 'e', "sv");
	if (r >= 0)
		r = sd_bus_message_append(reply, "s", "breakglass_sessions");
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'v', "a(sssst)");
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'a', "(sssst)");
	for (const BreakglassSession *bs = m->breakglass_sessions; bs && r >= 0; bs = bs->next)
		r = sd_bus_message_append(reply, "(sssst)", bs->user, bs->service, bs->session,
		        bs->via, bs->realtime_ms * 1000);
	for (int i = 0; i < 3 && r >= 0; i++)
		r = sd_bus_message_close_container(reply);
	return r;
}

/* --- require_enroll --------------------------------------------------------------------- */

/* Whether USER came in with break-glass and has enrolled no credential since: 1 yes, 0 no,
 * -errno (fail closed: the caller refuses). */
static int bg_enroll_required(Manager *m, const char *user)
{
	_cleanup_credential_set_ CredentialSet *set = NULL;
	uint64_t last = 0;
	int r;

	if (!bg_settings(m)->require_enroll)
		return 0;
	r = breakglass_last_use_load(bg_state_dir(m), user, &last);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = creds_load_user(policy_settings(m->policy)->credentials_dir, user, &set, NULL);
	if (r < 0)
		return r;
	for (size_t i = 0; i < set->n; i++)
		if (set->items[i].created_ms / 1000 >= last)
			return 0;
	return 1;
}

/* --- the login ------------------------------------------------------------------------- */

/* One attempt: read in the loop, verified on a worker, burnt and answered in the loop. */
typedef struct BgAttempt {
	Decision *decision;        /* the login's: user, service, tty, rhost */
	int fd;                    /* the pipe with the code (read by the worker) */
	BreakglassSet *set;        /* a copy the worker verifies against */
	BreakglassVerdict verdict; /* worker's result */
	size_t index;              /* the code that matched */
	int error;                 /* -errno from the worker */
} BgAttempt;

static void bg_attempt_free(BgAttempt *t)
{
	if (!t)
		return;
	decision_unref(t->decision);
	if (t->fd >= 0)
		close(t->fd);
	breakglass_set_free(t->set);
	free(t);
}

/* Reads what the module wrote: at most BREAKGLASS_INPUT_MAX + 1 bytes (more is overlong,
 * which verifies as malformed). NUL-terminated in BUF. */
static int bg_read_code(int fd, char buf[static BREAKGLASS_INPUT_MAX + 2])
{
	size_t len = 0;

	for (;;) {
		ssize_t n;

		if (len > BREAKGLASS_INPUT_MAX)
			break;
		n = read(fd, buf + len, BREAKGLASS_INPUT_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = fd, .events = POLLIN};

			if (poll(&p, 1, 1000) > 0)
				continue;
			break;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (memchr(buf, '\0', len))
		buf[0] = '\x01'; /* an embedded NUL: malformed, whatever follows */
	return 0;
}

static void bg_attempt_work(DeviceOp *op)
{
	BgAttempt *t = op->data;
	char code[BREAKGLASS_INPUT_MAX + 2];

	t->error = bg_read_code(t->fd, code);
	if (t->error < 0)
		return;
	t->error = breakglass_verify(t->set, code, now_s(), &t->verdict, &t->index);
	explicit_bzero(code, sizeof(code));
}

/* Records one refused attempt and answers it. */
static void bg_refuse(Manager *m, sd_bus_message *request, const Decision *d, const char *reason,
        const char *message, const char *detail)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	int r;

	rec.event = AUDIT_EVENT_BREAKGLASS_FAIL;
	rec.result = AUDIT_RESULT_FAILURE;
	rec.reason = reason;
	rec.message = message;
	rec.user = d->user;
	rec.uid = d->uid;
	rec.service = d->service;
	rec.tty = d->tty;
	rec.rhost = d->rhost;
	rec.detail = detail;
	audit_record_set_decision(&rec, d);
	(void)manager_audit(m, &rec);
	m->n_auth_failed++;
	log_notice("Break-glass for %s/%s refused (%s).", d->user, d->service, reason);
	if (!request)
		return;
	/* The reply says lockout for a rate limit (the module's word for "wait"). */
	r = sd_bus_reply_method_return(request, "bsssss", false,
	        streq(reason, "rate-limited") ? "lockout" : reason, message, "", "", "");
	if (r < 0)
		log_warning_errno(r, "Cannot answer a break-glass attempt: %m");
}

/* A failed attempt also counts as a failed authentication for the login's lockout. */
static void bg_count_failure(Manager *m, const char *user, const Decision *d)
{
	bool locked = false;
	int r;

	r = lockout_record_failure(bg_state_dir(m), user, d->lockout_max_failures,
	        d->lockout_window_s, d->lockout_unlock_after_s, &locked);
	if (r < 0)
		log_error_errno(r, "Cannot count a failed break-glass attempt of %s: %m", user);
	if (locked) {
		AuditRecord rec = AUDIT_RECORD_INIT;

		rec.event = AUDIT_EVENT_LOCKOUT;
		rec.result = AUDIT_RESULT_INFO;
		rec.reason = "lockout";
		rec.user = user;
		rec.service = d->service;
		audit_record_set_decision(&rec, d);
		rec.message = "Too many failed authentications (break-glass): locked out.";
		(void)manager_audit(m, &rec);
	}
}

/* The grant: a token like a key login's, marked break-glass (VIA says how), the
 * breakglass-use record, and the last-use mark require_enroll goes by. */
static void bg_grant(Manager *m, sd_bus_message *request, Decision *d, const char *via)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	const AuthToken *token = NULL;
	AuthToken tmpl = {
	        .user = d->user,
	        .uid = d->uid,
	        .service = d->service,
	        .tty = d->tty,
	        .rule = d->rule,
	        .decision = d,
	        .removal = POLICY_REMOVAL_NONE,
	        .caller_pid = d->caller_pid,
	        .caller_start = d->caller_start,
	        .breakglass = true,
	};
	int r;

	snprintf(tmpl.breakglass_via, sizeof(tmpl.breakglass_via), "%s", via);
	r = breakglass_last_use_save(bg_state_dir(m), d->user, now_s());
	if (r < 0)
		log_error_errno(
		        r, "Cannot record the break-glass use of %s (require_enroll): %m", d->user);
	if (r >= 0)
		r = manager_token_add(m, &tmpl, &token);
	rec.event = AUDIT_EVENT_BREAKGLASS_USE;
	rec.user = d->user;
	rec.uid = d->uid;
	rec.service = d->service;
	rec.tty = d->tty;
	rec.rhost = d->rhost;
	rec.detail = via;
	audit_record_set_decision(&rec, d);
	if (r >= 0) {
		rec.result = AUDIT_RESULT_SUCCESS;
		rec.reason = "ok";
		rec.message = "Logged in with break-glass recovery, without a security key.";
		r = manager_audit(m, &rec);
		if (r < 0 && !manager_audit_failure_denies(m))
			r = 0;
	} else {
		rec.reason = "error";
		rec.message = "The break-glass login could not be completed.";
		(void)manager_audit(m, &rec);
	}
	if (r < 0) {
		if (token)
			auth_token_free(manager_token_take(m, token->token));
		m->n_auth_failed++;
		if (request)
			(void)sd_bus_reply_method_return(request, "bsssss", false, "error",
			        "The break-glass login could not be recorded; access denied.", "",
			        "", "");
		return;
	}
	d->spent = true;
	m->n_auth_ok++;
	log_warning("BREAK-GLASS: %s logged in on %s without a security key (%s).", d->user,
	        d->service, via);
	if (request)
		(void)sd_bus_reply_method_return(request, "bsssss", true, "breakglass",
		        "You logged in with break-glass recovery. Enroll a new security key now: "
		        "keywardctl enroll",
		        token->token, "breakglass", "");
}

static const char *verdict_message(BreakglassVerdict v)
{
	switch (v) {
	case BREAKGLASS_USED_CODE:
		return "This recovery code was used already; each code works once.";
	case BREAKGLASS_EXPIRED_CODE:
		return "This recovery code has expired; ask an administrator for new codes.";
	case BREAKGLASS_MALFORMED_CODE:
		return "That is not a recovery code (4 groups of 5 letters and digits).";
	case BREAKGLASS_NO_CODES:
		return "No recovery codes are issued for this account; ask an administrator.";
	default:
		return "Wrong recovery code.";
	}
}

static void bg_attempt_complete(DeviceOp *op)
{
	Manager *m = op->manager;
	BgAttempt *t = op->data;
	_cleanup_(breakglass_set_freep) BreakglassSet *cur = NULL;
	const char *id = NULL;
	char detail[64];
	int r;

	if (t->error < 0) {
		log_error_errno(
		        t->error, "Break-glass attempt of %s failed: %m", t->decision->user);
		bg_refuse(m, op->request, t->decision, "error",
		        "The recovery code could not be checked.", NULL);
		return;
	}
	if (t->verdict == BREAKGLASS_OK) {
		/* Burn it in the file as it is now (another attempt may have used it while this
		 * one was verifying), durably, before anything is answered. */
		id = t->set->codes[t->index].id;
		r = breakglass_load(bg_state_dir(m), t->decision->user, &cur);
		if (r >= 0) {
			size_t i;

			for (i = 0; i < cur->n && !streq(cur->codes[i].id, id); i++)
				;
			if (i == cur->n || cur->codes[i].state != BREAKGLASS_STATE_UNUSED)
				t->verdict =
				        i == cur->n ? BREAKGLASS_WRONG_CODE : BREAKGLASS_USED_CODE;
			else {
				cur->codes[i].state = BREAKGLASS_STATE_USED;
				cur->codes[i].used_s = now_s() ?: 1;
				r = breakglass_save(bg_state_dir(m), cur);
			}
		}
		if (r < 0) {
			log_error_errno(r, "Cannot burn break-glass code %s of %s: %m", id,
			        t->decision->user);
			bg_refuse(m, op->request, t->decision, "error",
			        "The recovery code could not be marked used; access denied.", NULL);
			return;
		}
	}
	if (t->verdict == BREAKGLASS_OK) {
		snprintf(detail, sizeof(detail), "code=%s", id);
		bg_grant(m, op->request, t->decision, detail);
		bg_expire_user(m, t->decision->user);
		return;
	}
	if (t->verdict == BREAKGLASS_USED_CODE || t->verdict == BREAKGLASS_EXPIRED_CODE) {
		snprintf(detail, sizeof(detail), "code=%s", t->set->codes[t->index].id);
		id = detail;
	}
	bg_count_failure(m, t->decision->user, t->decision);
	bg_refuse(m, op->request, t->decision, breakglass_verdict_to_string(t->verdict),
	        verdict_message(t->verdict), id);
	bg_expire_user(m, t->decision->user);
}

static void bg_attempt_abort(DeviceOp *op, const char *reason)
{
	BgAttempt *t = op->data;

	bg_refuse(op->manager, op->request, t->decision, reason,
	        "The break-glass attempt was not completed.", NULL);
}

static void bg_attempt_done(DeviceOp *op)
{
	bg_attempt_free(op->data);
	op->data = NULL;
}

static const DeviceOpVTable bg_attempt_vtable = {
        .work = bg_attempt_work,
        .complete = bg_attempt_complete,
        .abort = bg_attempt_abort,
        .done = bg_attempt_done,
};

/* The one attempt per call: counted for the rate limit before anything is checked. */
static int bg_attempt(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, Decision *d, int pin_fd)
{
	const PolicyBreakglass *bg = bg_settings(m);
	_cleanup_free_ char *rate_dir = NULL;
	BreakglassApproval ap;
	BgAttempt *t;
	DeviceOp *op = NULL;
	uint64_t until = 0;
	bool locked = false;
	char detail[64];
	int r;

	/* Rate limit: max_attempts per window, in their own counter beside the lockout's. */
	if (asprintf(&rate_dir, "%s/breakglass/rate", bg_state_dir(m)) < 0)
		return -ENOMEM;
	r = lockout_check(rate_dir, d->user, &until);
	if (r >= 0 && until == 0)
		r = lockout_record_failure(
		        rate_dir, d->user, bg->max_attempts, bg->window_s, bg->window_s, &locked);
	if (r < 0) {
		log_error_errno(r, "Cannot count the break-glass attempts of %s: %m", d->user);
		bg_refuse(m, msg, d, "error",
		        "The break-glass attempts cannot be counted; tell an administrator.", NULL);
		return 1;
	}
	if (until > 0) {
		bg_count_failure(m, d->user, d);
		bg_refuse(m, msg, d, "rate-limited",
		        "Too many break-glass attempts: wait and try again later.", NULL);
		return 1;
	}

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->fd = -1;
	t->decision = decision_ref(d);

	/* Two-person: a pending approval is used by this call (once), whatever was typed. */
	if (bg->two_person) {
		r = breakglass_approval_load(bg_state_dir(m), d->user, &ap);
		if (r >= 0 && now_s() < ap.expires_s) {
			r = breakglass_approval_remove(bg_state_dir(m), d->user);
			if (r < 0) {
				log_error_errno(r, "Cannot use the approval of %s: %m", d->user);
				bg_refuse(m, msg, d, "error",
				        "The approval could not be used; access denied.", NULL);
			} else {
				snprintf(detail, sizeof(detail), "approval=%s", ap.approver);
				bg_grant(m, msg, d, detail);
			}
			bg_attempt_free(t);
			return 1;
		}
		if (r != -ENOENT)
			bg_expire_user(m, d->user);
	}

	r = breakglass_load(bg_state_dir(m), d->user, &t->set);
	if (r < 0) {
		log_error_errno(r, "Cannot read the break-glass codes of %s: %m", d->user);
		bg_refuse(m, msg, d, "error",
		        "The recovery codes cannot be read; tell an administrator.", NULL);
		bg_attempt_free(t);
		return 1;
	}
	if (t->set->n == 0) {
		bg_count_failure(m, d->user, d);
		bg_refuse(m, msg, d, "no-codes", verdict_message(BREAKGLASS_NO_CODES), NULL);
		bg_attempt_free(t);
		return 1;
	}
	/* Our own copy of the pipe, non-blocking (the worker reads it). */
	t->fd = pin_fd >= 0 ? fcntl(pin_fd, F_DUPFD_CLOEXEC, 3) : -1;
	if (t->fd >= 0)
		(void)fcntl(t->fd, F_SETFL, O_NONBLOCK);
	r = device_op_new(&m->ops, m, DEVICE_OP_AUTHENTICATE, &bg_attempt_vtable, msg, caller->uid,
	        BREAKGLASS_OP_TIMEOUT_MS, t, &op);
	if (r < 0) {
		if (r == -EBUSY) {
			bg_refuse(m, msg, d, "error",
			        "keywardd is busy with too many requests; try again.", NULL);
			return 1;
		}
		return r;
	}
	r = device_op_start(op);
	if (r < 0)
		return log_error_errno(r, "Cannot start the break-glass check: %m");
	return 1;
}

/* Whether USER has a credential to use (any registered one): 1, 0 none, -errno. */
static int bg_has_credentials(Manager *m, const char *user)
{
	_cleanup_credential_set_ CredentialSet *set = NULL;
	int r;

	r = creds_load_user(policy_settings(m->policy)->credentials_dir, user, &set, NULL);
	if (r < 0)
		return r;
	return set->n > 0;
}

/* Answers the Authenticate call at once with a refusal (REASON, TEXT), recorded in REC. */
static int bg_answer_now(Manager *m, sd_bus_message *msg, const Decision *d, AuditRecord *rec,
        const char *reason, const char *text)
{
	rec->reason = reason;
	rec->message = text;
	rec->result = AUDIT_RESULT_FAILURE;
	(void)manager_audit(m, rec);
	if (!streq(reason, "breakglass-available"))
		m->n_auth_failed++;
	log_info("Authenticate %s/%s: %s", d->user, d->service, reason);
	return sd_bus_reply_method_return(msg, "bsssss", false, reason, text, "", "", "");
}

int breakglass_on_authenticate(Manager *m, sd_bus_message *msg, const BusCaller *caller,
        Decision *d, int pin_fd, bool requested, bool cached, AuditRecord *rec)
{
	char text[256];
	int r;

	/* After a break-glass login, nothing but another break-glass login (where the
	 * policy allows one) until a new key is enrolled. */
	r = d->breakglass ? 0 : bg_enroll_required(m, d->user);
	if (r < 0) {
		/* Fail closed, and say it is keyward's fault, not the user's. */
		log_error_errno(r, "Cannot tell whether %s must enroll first: %m", d->user);
		snprintf(text, sizeof(text),
		        "The break-glass state of %s (%s/breakglass) cannot be read; tell an "
		        "administrator.",
		        d->user, bg_state_dir(m));
		return bg_answer_now(m, msg, d, rec, "error", text);
	}
	if (r > 0) {
		snprintf(text, sizeof(text),
		        "%s logged in with break-glass recovery and has enrolled no security key "
		        "since: run 'keywardctl enroll %s' first.",
		        d->user, d->user);
		return bg_answer_now(m, msg, d, rec, "enroll-required", text);
	}
	if (requested) {
		if (!d->breakglass || cached) {
			bg_refuse(m, msg, d, "service-not-allowed",
			        "Break-glass recovery is not allowed for this login.", NULL);
			return 1;
		}
		return bg_attempt(m, msg, caller, d, pin_fd);
	}
	if (!d->breakglass || cached)
		return 0;
	/* Offered at once to a user with no key registered (none enrolled, all revoked); a
	 * user with keys is offered it when none of them is plugged (authenticate.c). */
	r = bg_has_credentials(m, d->user);
	if (r != 0)
		return 0; /* (a read error: the key path reports it) */
	snprintf(text, sizeof(text), BREAKGLASS_OFFER_MESSAGE, d->user);
	return bg_answer_now(m, msg, d, rec, "breakglass-available", text);
}

/* --- administration ------------------------------------------------------------------- */

/* A caller-named target user: a valid name NSS knows (a lookup error is an error). */
static int bg_check_target(const char *user, sd_bus_error *error)
{
	uid_t uid;
	gid_t gid;
	int r;

	r = bus_check_user(user, error);
	if (r < 0)
		return r;
	r = account_lookup(user, &uid, &gid);
	if (r == -ENOENT || r == -ESRCH)
		return sd_bus_error_setf(
		        error, KEYWARD_BUS_ERROR_NOT_FOUND, "There is no user %s.", user);
	if (r < 0)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_FAILED,
		        "The account %s cannot be looked up: %s", user, strerror(-r));
	return 0;
}

typedef struct BgIssue {
	char user[33];
	AuditActor actor;
	bool has_actor;
	unsigned n;
	uint64_t now_s, validity_s, opslimit, memlimit;
	BreakglassSet *set;
	char **codes;
	int error;
} BgIssue;

static void bg_issue_free(BgIssue *t)
{
	if (!t)
		return;
	breakglass_set_free(t->set);
	breakglass_codes_free(t->codes);
	if (t->has_actor)
		bus_actor_done(&t->actor);
	free(t);
}

static void bg_issue_work(DeviceOp *op)
{
	BgIssue *t = op->data;

	t->error = breakglass_generate(t->user, t->n, t->now_s, t->validity_s, t->opslimit,
	        t->memlimit, &t->set, &t->codes);
}

static void bg_issue_complete(DeviceOp *op)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	Manager *m = op->manager;
	BgIssue *t = op->data;
	AuditRecord rec = AUDIT_RECORD_INIT;
	char detail[96], when[32];
	uint64_t until = t->now_s + t->validity_s;
	int r = t->error;

	rec.event = AUDIT_EVENT_BREAKGLASS_ISSUE;
	rec.user = t->user;
	rec.actor = t->has_actor ? &t->actor : NULL;
	format_time_s(until, when);
	snprintf(detail, sizeof(detail), "codes=%u valid-until=%s", t->n, when);
	rec.detail = detail;
	if (r >= 0)
		r = breakglass_save(bg_state_dir(m), t->set);
	if (r >= 0)
		r = sd_bus_message_new_method_return(op->request, &reply);
	if (r >= 0)
		r = sd_bus_message_append_strv(reply, t->codes);
	if (r >= 0)
		r = sd_bus_message_append(reply, "t", until * 1000000);
	if (r < 0) {
		rec.reason = "error";
		rec.message = "The recovery codes could not be issued.";
		(void)manager_audit(m, &rec);
		log_error_errno(r, "Cannot issue break-glass codes for %s: %m", t->user);
		(void)sd_bus_reply_method_errorf(op->request, KEYWARD_BUS_ERROR_FAILED,
		        "Cannot issue recovery codes for %s: %s", t->user, strerror(-r));
		return;
	}
	rec.result = AUDIT_RESULT_SUCCESS;
	rec.reason = "ok";
	rec.message = "Break-glass recovery codes issued (any earlier set replaced).";
	(void)manager_audit(m, &rec);
	log_notice("Issued %u break-glass codes for %s (valid until %s).", t->n, t->user, when);
	r = sd_bus_send(NULL, reply, NULL);
	if (r < 0)
		log_warning_errno(r, "Cannot send the recovery codes: %m");
}

static void bg_issue_abort(DeviceOp *op, const char *reason)
{
	(void)sd_bus_reply_method_errorf(op->request, KEYWARD_BUS_ERROR_FAILED,
	        "Issuing recovery codes did not complete (%s).", reason);
}

static void bg_issue_done(DeviceOp *op)
{
	bg_issue_free(op->data);
	op->data = NULL;
}

static const DeviceOpVTable bg_issue_vtable = {
        .work = bg_issue_work,
        .complete = bg_issue_complete,
        .abort = bg_issue_abort,
        .done = bg_issue_done,
};

int bus_method_breakglass_issue(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error)
{
	const PolicyBreakglass *bg = bg_settings(m);
	const char *user;
	DeviceOp *op = NULL;
	BgIssue *t;
	int r;

	r = sd_bus_message_read(msg, "s", &user);
	if (r < 0)
		return r;
	r = bg_check_target(user, error);
	if (r < 0)
		return r;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	snprintf(t->user, sizeof(t->user), "%s", user);
	t->n = bg->codes;
	t->now_s = now_s();
	t->validity_s = bg->validity_s;
	t->opslimit = bg->argon2_opslimit;
	t->memlimit = bg->argon2_memlimit;
	r = bus_actor_get(msg, caller, &t->actor);
	if (r < 0) {
		bg_issue_free(t);
		return r;
	}
	t->has_actor = true;
	r = device_op_new(&m->ops, m, DEVICE_OP_AUTHENTICATE, &bg_issue_vtable, msg, caller->uid,
	        BREAKGLASS_OP_TIMEOUT_MS, t, &op);
	if (r < 0)
		return r == -EBUSY ? sd_bus_error_setf(error, KEYWARD_BUS_ERROR_BUSY,
		                             "keywardd is busy; try again.")
		                   : r;
	r = device_op_start(op);
	if (r < 0)
		return r;
	return 1;
}

int bus_method_breakglass_revoke(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error)
{
	_cleanup_(bus_actor_done) AuditActor actor = {};
	_cleanup_(breakglass_set_freep) BreakglassSet *s = NULL, *empty = NULL;
	AuditRecord rec = AUDIT_RECORD_INIT;
	BreakglassApproval ap;
	const char *user;
	bool had_approval;
	char detail[64];
	int r;

	r = sd_bus_message_read(msg, "s", &user);
	if (r < 0)
		return r;
	r = bg_check_target(user, error);
	if (r < 0)
		return r;
	r = bus_actor_get(msg, caller, &actor);
	if (r < 0)
		return r;
	rec.event = AUDIT_EVENT_BREAKGLASS_REVOKE;
	rec.user = user;
	rec.actor = &actor;
	r = breakglass_load(bg_state_dir(m), user, &s);
	had_approval = breakglass_approval_load(bg_state_dir(m), user, &ap) >= 0;
	if (r >= 0)
		r = breakglass_set_new(user, &empty);
	if (r >= 0)
		r = breakglass_save(bg_state_dir(m), empty);
	if (r >= 0)
		r = breakglass_approval_remove(bg_state_dir(m), user);
	snprintf(detail, sizeof(detail), "codes=%zu unused=%zu approval=%s", s ? s->n : 0,
	        breakglass_usable(s, now_s()), had_approval ? "yes" : "no");
	rec.detail = detail;
	if (r < 0) {
		rec.reason = "error";
		(void)manager_audit(m, &rec);
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_FAILED,
		        "Cannot revoke the recovery codes of %s: %s", user, strerror(-r));
	}
	rec.result = AUDIT_RESULT_SUCCESS;
	rec.reason = "ok";
	rec.message = "Break-glass recovery codes and approvals withdrawn.";
	(void)manager_audit(m, &rec);
	log_notice("Revoked the break-glass codes of %s (%s).", user, detail);
	return sd_bus_reply_method_return(msg, "");
}

static int bg_list_user(Manager *m, sd_bus_message *reply, const char *user, bool prefix)
{
	_cleanup_(breakglass_set_freep) BreakglassSet *s = NULL;
	int r;

	r = breakglass_load(bg_state_dir(m), user, &s);
	if (r < 0)
		return r;
	for (size_t i = 0; i < s->n; i++) {
		const BreakglassCode *c = &s->codes[i];
		_cleanup_free_ char *id = NULL;

		if (asprintf(&id, "%s%s%s", prefix ? user : "", prefix ? "/" : "", c->id) < 0)
			return -ENOMEM;
		r = sd_bus_message_append(reply, "(sttb)", id, c->issued_s * 1000000,
		        c->expires_s * 1000000, c->state == BREAKGLASS_STATE_USED);
		if (r < 0)
			return r;
	}
	return 0;
}

int bus_method_breakglass_list(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	_cleanup_free_ char *dir = NULL;
	const char *user;
	int r;

	r = sd_bus_message_read(msg, "s", &user);
	if (r < 0)
		return r;
	if (!isempty(user) && (r = bg_check_target(user, error)) < 0)
		return r;
	r = sd_bus_message_new_method_return(msg, &reply);
	if (r < 0)
		return r;
	r = sd_bus_message_open_container(reply, 'a', "(sttb)");
	if (r < 0)
		return r;
	if (!isempty(user))
		r = bg_list_user(m, reply, user, false);
	else {
		DIR *d;
		struct dirent *de;

		if (asprintf(&dir, "%s/breakglass", bg_state_dir(m)) < 0)
			return -ENOMEM;
		d = opendir(dir);
		while (d && r >= 0 && (de = readdir(d)))
			if (bg_is_user_file(d, de))
				r = bg_list_user(m, reply, de->d_name, true);
		if (d)
			closedir(d);
	}
	if (r < 0)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_FAILED,
		        "Cannot read the recovery codes: %s", strerror(-r));
	r = sd_bus_message_close_container(reply);
	if (r < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

/* --- two-person approval ---------------------------------------------------------------- */

typedef struct BgApprove {
	char target[33], approver[33];
	uid_t approver_uid;
	AuditActor actor; /* strings copied into the block below */
	char actor_user[33], actor_login[33], actor_session[24], actor_tty[64];
	bool pin_asked;
} BgApprove;

static void bg_approve_done(Manager *m, sd_bus_message *request, bool verified, const char *reason,
        const char *message, const char *cred_label, void *done_data)
{
	BgApprove *t = done_data;
	AuditRecord rec = AUDIT_RECORD_INIT;
	BreakglassApproval ap = {};
	char detail[96], when[32];
	int r = 0;

	rec.event = AUDIT_EVENT_BREAKGLASS_APPROVE;
	rec.user = t->target;
	rec.actor = &t->actor;
	rec.cred_label = cred_label;
	if (verified) {
		snprintf(ap.user, sizeof(ap.user), "%s", t->target);
		snprintf(ap.approver, sizeof(ap.approver), "%s", t->approver);
		ap.issued_s = now_s();
		ap.expires_s = ap.issued_s + bg_settings(m)->approval_validity_s;
		r = breakglass_approval_save(bg_state_dir(m), &ap);
		format_time_s(ap.expires_s, when);
		snprintf(detail, sizeof(detail), "valid-until=%s", when);
		rec.detail = detail;
	}
	if (!verified || r < 0) {
		bool pin_prompt = !verified && !t->pin_asked && streq(reason, "pin-required");

		rec.reason = r < 0 ? "error" : reason;
		rec.message = r < 0 ? "The approval could not be stored." : message;
		if (!pin_prompt)
			(void)manager_audit(m, &rec);
		log_notice("Break-glass approval of %s by %s: refused (%s).", t->target,
		        t->approver, rec.reason);
		if (request)
			(void)sd_bus_reply_method_errorf(request,
			        pin_prompt ? KEYWARD_BUS_ERROR_PIN_REQUIRED
			                   : KEYWARD_BUS_ERROR_FAILED,
			        "%s", rec.message ? rec.message : "The approval failed.");
		free(t);
		return;
	}
	rec.result = AUDIT_RESULT_SUCCESS;
	rec.message = "Another administrator's key approved one break-glass login.";
	rec.reason = "ok";
	(void)manager_audit(m, &rec);
	log_warning("BREAK-GLASS: %s approved one login of %s (until %s).", t->approver, t->target,
	        when);
	if (request)
		(void)sd_bus_reply_method_return(request, "t", ap.expires_s * 1000000);
	free(t);
}

static int approve_option(const char *key, sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	int *pin_asked = userdata, v = 0, r;

	if (!streq(key, "pin-asked"))
		return 0;
	r = sd_bus_message_read(msg, "b", &v);
	*pin_asked = v;
	return r;
}

int bus_method_breakglass_approve(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error)
{
	static const char *const known[] = {"pin-asked:b", NULL};
	_cleanup_(bus_actor_done) AuditActor actor = {};
	_cleanup_decision_ Decision *d = NULL;
	AuditRecord rec = AUDIT_RECORD_INIT;
	const char *user;
	uint64_t locked_until = 0;
	BgApprove *t;
	int pin_fd, pin_asked = 0, r;

	r = sd_bus_message_read(msg, "sh", &user, &pin_fd);
	if (r < 0)
		return r;
	r = bus_read_options(msg, known, approve_option, &pin_asked, error);
	if (r < 0)
		return r;
	r = bg_check_target(user, error);
	if (r < 0)
		return r;
	if (!bg_settings(m)->two_person)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_POLICY_REFUSED,
		        "The policy does not allow two-person approval (settings.breakglass."
		        "two_person = false).");
	if (!caller->user || streq(caller->user, user))
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_POLICY_REFUSED,
		        "An approval must come from another administrator than %s.", user);
	r = lockout_check(bg_state_dir(m), caller->user, &locked_until);
	if (r < 0 || locked_until > 0)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_POLICY_REFUSED,
		        "%s is locked out after failed authentications (or the lockout state "
		        "cannot be read): no approval now.",
		        caller->user);
	r = bus_actor_get(msg, caller, &actor);
	if (r < 0)
		return r;
	/* The approver proves their own registered key, as in a login to the service
	 * "keyward-approve" (the policy's rule for it decides PIN and touch). */
	r = manager_decide(
	        m, caller->user, "keyward-approve", "", "", caller->pid, caller->uid, &d);
	if (r < 0)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_FAILED,
		        "The policy could not be evaluated for %s.", caller->user);
	if (d->require != POLICY_REQUIRE_KEY) {
		/* No rule asks the approver for a key there: still a touch of their key. */
		PolicyDecision pd = {
		        .require = POLICY_REQUIRE_KEY,
		        .rule_name = "keyward-approve",
		        .is_default = false,
		        .file = "(built in)",
		        .user_verification = POLICY_UV_PREFERRED,
		        .user_presence = true,
		        .counter = POLICY_COUNTER_STRICT,
		};
		Decision *nd = NULL;

		r = decision_new(&(DecisionRequest){.user = caller->user,
		                         .uid = caller->uid,
		                         .service = "keyward-approve",
		                         .caller_pid = caller->pid,
		                         .caller_uid = caller->uid,
		                         .policy_digest = policy_digest(m->policy)},
		        &pd, &nd);
		if (r < 0)
			return r;
		decision_unref(d);
		d = nd;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	snprintf(t->target, sizeof(t->target), "%s", user);
	snprintf(t->approver, sizeof(t->approver), "%s", caller->user);
	t->approver_uid = caller->uid;
	t->pin_asked = pin_asked;
	t->actor = (AuditActor){.uid = actor.uid, .loginuid = actor.loginuid};
	if (actor.user) {
		snprintf(t->actor_user, sizeof(t->actor_user), "%s", actor.user);
		t->actor.user = t->actor_user;
	}
	if (actor.login) {
		snprintf(t->actor_login, sizeof(t->actor_login), "%s", actor.login);
		t->actor.login = t->actor_login;
	}
	if (actor.session) {
		snprintf(t->actor_session, sizeof(t->actor_session), "%s", actor.session);
		t->actor.session = t->actor_session;
	}
	if (actor.tty) {
		snprintf(t->actor_tty, sizeof(t->actor_tty), "%s", actor.tty);
		t->actor.tty = t->actor_tty;
	}
	rec.event = AUDIT_EVENT_AUTH;
	rec.user = caller->user;
	rec.uid = caller->uid;
	rec.service = "keyward-approve";
	audit_record_set_decision(&rec, d);
	return authenticate_own_key(m, msg, caller, d, pin_fd, pin_asked, &rec, bg_approve_done, t);
}
