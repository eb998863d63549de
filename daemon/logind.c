/* logind.c: sd-bus calls to org.freedesktop.login1 with explicit timeouts (asynchronous,
 * except the bounded Remote look-up a login decision waits for), and the signal matches of
 * the removal path (LockedHint, SessionRemoved). */
#include "logind.h"

#include <systemd/sd-login.h>

#include "util.h"

static int logind_call(sd_bus *bus, const char *path, const char *interface, const char *member,
        sd_bus_message_handler_t cb, void *userdata, sd_bus_slot **ret_slot, const char *types, ...)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
	va_list ap;
	int r;

	if (!bus)
		return -ENOTCONN;
	r = sd_bus_message_new_method_call(bus, &call, LOGIND_SERVICE, path, interface, member);
	if (r < 0)
		return r;
	if (types) {
		va_start(ap, types);
		r = sd_bus_message_appendv(call, types, ap);
		va_end(ap);
		if (r < 0)
			return r;
	}
	return sd_bus_call_async(bus, ret_slot, call, cb, userdata, LOGIND_ASYNC_TIMEOUT_USEC);
}

int logind_get_session(sd_bus *bus, const char *session_id, sd_bus_message_handler_t cb,
        void *userdata, sd_bus_slot **ret_slot)
{
	return logind_call(bus, LOGIND_PATH, LOGIND_MANAGER_INTERFACE, "GetSession", cb, userdata,
	        ret_slot, "s", session_id);
}

int logind_get_session_by_pid(
        sd_bus *bus, pid_t pid, sd_bus_message_handler_t cb, void *userdata, sd_bus_slot **ret_slot)
{
	return logind_call(bus, LOGIND_PATH, LOGIND_MANAGER_INTERFACE, "GetSessionByPID", cb,
	        userdata, ret_slot, "u", (uint32_t)pid);
}

int logind_session_id_from_path(const char *path, char **ret)
{
	char *id = NULL;
	int r;

	r = sd_bus_path_decode(path, LOGIND_PATH "/session", &id);
	if (r < 0)
		return r;
	if (r == 0 || isempty(id)) {
		free(id);
		return -EBADMSG;
	}
	*ret = id;
	return 0;
}

int logind_get_session_property(sd_bus *bus, const char *path, const char *name,
        sd_bus_message_handler_t cb, void *userdata, sd_bus_slot **ret_slot)
{
	return logind_call(bus, path, "org.freedesktop.DBus.Properties", "Get", cb, userdata,
	        ret_slot, "ss", LOGIND_SESSION_INTERFACE, name);
}

int logind_lock_session(sd_bus *bus, const char *path, sd_bus_message_handler_t cb, void *userdata,
        sd_bus_slot **ret_slot)
{
	return logind_call(
	        bus, path, LOGIND_SESSION_INTERFACE, "Lock", cb, userdata, ret_slot, NULL);
}

int logind_terminate_session(sd_bus *bus, const char *session_id, sd_bus_message_handler_t cb,
        void *userdata, sd_bus_slot **ret_slot)
{
	return logind_call(bus, LOGIND_PATH, LOGIND_MANAGER_INTERFACE, "TerminateSession", cb,
	        userdata, ret_slot, "s", session_id);
}

int logind_watch_session_properties(sd_bus *bus, const char *path, sd_bus_message_handler_t cb,
        void *userdata, sd_bus_slot **ret_slot)
{
	_cleanup_free_ char *rule = NULL;

	if (!bus)
		return -ENOTCONN;
	/* The object path comes from logind (GetSession); keep quotes out of the rule. */
	if (strchr(path, '\'') || strchr(path, '\\'))
		return -EINVAL;
	if (asprintf(&rule,
	            "type='signal',sender='" LOGIND_SERVICE "',path='%s',"
	            "interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
	            "arg0='" LOGIND_SESSION_INTERFACE "'",
	            path) < 0)
		return -ENOMEM;
	/* Asynchronous: no round trip. The bus applies it in the order it was sent, so it
	 * holds for whatever is routed after it. */
	return sd_bus_add_match_async(bus, ret_slot, rule, cb, NULL, userdata);
}

int logind_watch_session_removed(
        sd_bus *bus, sd_bus_message_handler_t cb, void *userdata, sd_bus_slot **ret_slot)
{
	if (!bus)
		return -ENOTCONN;
	return sd_bus_match_signal_async(bus, ret_slot, LOGIND_SERVICE, LOGIND_PATH,
	        LOGIND_MANAGER_INTERFACE, "SessionRemoved", cb, NULL, userdata);
}

int logind_session_is_remote(pid_t pid, bool *ret)
{
	_cleanup_free_ char *session = NULL;
	int r;

	if (pid <= 0)
		return -ENXIO;
	if (sd_pid_get_session(pid, &session) < 0)
		return -ENXIO; /* not in a logind session */
	/* logind's own record of the session (/run/systemd/sessions/ID): no bus call, so
	 * the event loop never waits for logind. */
	r = sd_session_is_remote(session);
	if (r < 0)
		return r;
	*ret = r > 0;
	return 0;
}

int logind_session_remote_host(pid_t pid, char **ret)
{
	_cleanup_free_ char *session = NULL;
	int r;

	if (pid <= 0)
		return -ENXIO;
	if (sd_pid_get_session(pid, &session) < 0)
		return -ENXIO;
	r = sd_session_get_remote_host(session, ret);
	return r < 0 ? r : 0;
}

bool logind_reply_failed(
        sd_bus_message *reply, const char **ret_error_name, const char **ret_message)
{
	const sd_bus_error *e = sd_bus_message_get_error(reply);

	if (!e)
		return false;
	if (ret_error_name)
		*ret_error_name = e->name;
	if (ret_message)
		*ret_message = e->message;
	return true;
}

bool logind_error_is_gone(const char *error_name)
{
	/* Not UnknownMethod: that is a failure to lock, which escalates (fail closed). */
	return error_name && (streq(error_name, LOGIND_ERROR_NO_SUCH_SESSION) ||
	                             streq(error_name, "org.freedesktop.DBus.Error.UnknownObject"));
}

int logind_properties_changed_bool(sd_bus_message *msg, const char *name)
{
	const char *iface;
	int r, found = -ENOENT;

	r = sd_bus_message_read(msg, "s", &iface);
	if (r < 0)
		return r;
	r = sd_bus_message_enter_container(msg, 'a', "{sv}");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
		const char *key;

		r = sd_bus_message_read(msg, "s", &key);
		if (r < 0)
			return r;
		if (streq(key, name)) {
			int v;
			r = sd_bus_message_read(msg, "v", "b", &v);
			if (r < 0)
				return r;
			found = !!v;
		} else {
			r = sd_bus_message_skip(msg, "v");
			if (r < 0)
				return r;
		}
		r = sd_bus_message_exit_container(msg);
		if (r < 0)
			return r;
	}
	return r < 0 ? r : found;
}
