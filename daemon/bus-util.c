/* bus-util.c: what every bus method handler needs, whichever layer it lives in: argument
 * checks (lengths, control characters, user names, a{sv} options) and the caller's rights. */
#include "bus-util.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

bool bus_caller_may_act_for(const BusCaller *c, const char *user)
{
	if ((c->allowed & BUS_ACCESS_ROOT) && c->is_root)
		return true;
	if ((c->allowed & BUS_ACCESS_ADMIN) && c->is_admin)
		return true;
	if ((c->allowed & BUS_ACCESS_SELF) && c->user && user && streq(c->user, user))
		return true;
	return false;
}

int bus_check_string(
        const char *s, size_t max, bool may_be_empty, const char *what, sd_bus_error *error)
{
	if (!s || (!may_be_empty && !*s))
		return sd_bus_error_setf(
		        error, KEYWARD_BUS_ERROR_INVALID_ARGS, "Missing %s.", what);
	if (strlen(s) > max)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
		        "%s is too long (at most %zu characters).", what, max);
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
			        "%s contains a control character.", what);
	return 0;
}

int bus_check_user(const char *user, sd_bus_error *error)
{
	int r = bus_check_string(user, KEYWARD_MAX_USER, false, "user name", error);

	if (r < 0)
		return r;
	if (!valid_user_name(user))
		return sd_bus_error_setf(
		        error, KEYWARD_BUS_ERROR_INVALID_ARGS, "Invalid user name.");
	return 0;
}

int bus_check_login(const char *user, const char *service, const char *tty, const char *rhost,
        sd_bus_error *error)
{
	int r;

	if ((r = bus_check_user(user, error)) < 0 ||
	        (r = bus_check_string(service, KEYWARD_MAX_SERVICE, false, "service", error)) < 0 ||
	        (r = bus_check_string(tty, KEYWARD_MAX_TTY, true, "tty", error)) < 0 ||
	        (r = bus_check_string(rhost, KEYWARD_MAX_RHOST, true, "rhost", error)) < 0)
		return r;
	return 0;
}

int bus_read_options(sd_bus_message *msg, const char *const *known, bus_option_cb cb,
        void *userdata, sd_bus_error *error)
{
	unsigned n = 0;
	int r;

	r = sd_bus_message_enter_container(msg, 'a', "{sv}");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
		const char *key, *contents;
		bool ok = false;

		if (++n > KEYWARD_MAX_OPTIONS)
			return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
			        "Too many options (at most %d).", KEYWARD_MAX_OPTIONS);
		r = sd_bus_message_read(msg, "s", &key);
		if (r < 0)
			return r;
		r = sd_bus_message_peek_type(msg, NULL, &contents);
		if (r < 0)
			return r;
		for (const char *const *k = known; k && *k; k++) {
			const char *colon = strchr(*k, ':');
			if (colon && strlen(key) == (size_t)(colon - *k) &&
			        strneq(*k, key, strlen(key)) && streq(colon + 1, contents))
				ok = true;
		}
		/* The quoted key stays valid UTF-8, or sd-bus cannot send the error back. */
		if (!ok)
			return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
			        "Unknown option '%.*s' or wrong type '%.8s'.",
			        (int)utf8_prefix_len(key, 64), key, contents);
		r = sd_bus_message_enter_container(msg, 'v', contents);
		if (r < 0)
			return r;
		r = cb(key, msg, userdata, error);
		if (r < 0)
			return r;
		r = sd_bus_message_exit_container(msg);
		if (r < 0)
			return r;
		r = sd_bus_message_exit_container(msg);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(msg);
}

static char *user_name_of(uid_t uid)
{
	struct passwd pwbuf, *pw = NULL;
	char buf[4096];

	if (uid == (uid_t)-1 || getpwuid_r(uid, &pwbuf, buf, sizeof(buf), &pw) != 0 || !pw)
		return NULL;
	return strdup(pw->pw_name);
}

void bus_actor_done(AuditActor *a)
{
	if (!a)
		return;
	free((char *)a->user);
	free((char *)a->login);
	free((char *)a->session);
	free((char *)a->tty);
	*a = (AuditActor){.uid = (uid_t)-1, .loginuid = (uid_t)-1};
}

int bus_actor_get(sd_bus_message *msg, const BusCaller *caller, AuditActor *ret)
{
	_cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
	AuditActor a = {.uid = caller->uid, .loginuid = (uid_t)-1};
	uint32_t ses;
	const char *tty;
	uid_t luid;

	if (caller->user && !(a.user = strdup(caller->user)))
		return -ENOMEM;
	if (sd_bus_query_sender_creds(msg,
	            SD_BUS_CREDS_AUDIT_LOGIN_UID | SD_BUS_CREDS_AUDIT_SESSION_ID |
	                    SD_BUS_CREDS_TTY | SD_BUS_CREDS_AUGMENT,
	            &creds) >= 0) {
		/* (uid_t)-1 is "not set" (a daemon started by systemd, not by a login) */
		if (sd_bus_creds_get_audit_login_uid(creds, &luid) >= 0 && luid != (uid_t)-1) {
			a.loginuid = luid;
			a.login = user_name_of(luid);
		}
		if (sd_bus_creds_get_audit_session_id(creds, &ses) >= 0 && ses != UINT32_MAX &&
		        asprintf((char **)&a.session, "%u", ses) < 0)
			a.session = NULL;
		if (sd_bus_creds_get_tty(creds, &tty) >= 0 && !isempty(tty))
			a.tty = strdup(tty);
	}
	*ret = a;
	return 0;
}
