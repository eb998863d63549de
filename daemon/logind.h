/* logind.h: keywardd's calls to systemd-logind (org.freedesktop.login1): session look-up,
 * Session.Lock, Manager.TerminateSession, LockedHint, Type and Remote, and the signals
 * keywardd follows. Adapter layer: it knows only the bus connection it is given and
 * reports through the caller's reply handlers. Every call has an explicit timeout. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>

#define LOGIND_SERVICE                  "org.freedesktop.login1"
#define LOGIND_PATH                     "/org/freedesktop/login1"
#define LOGIND_MANAGER_INTERFACE        "org.freedesktop.login1.Manager"
#define LOGIND_SESSION_INTERFACE        "org.freedesktop.login1.Session"
#define LOGIND_ERROR_NO_SUCH_SESSION    "org.freedesktop.login1.NoSuchSession"
#define LOGIND_ERROR_NO_SESSION_FOR_PID "org.freedesktop.login1.NoSessionForPID"
/* Every logind call of the removal path gives up after this long. */
#define LOGIND_ASYNC_TIMEOUT_USEC (2 * 1000 * 1000ULL)

/* The callbacks are sd-bus reply handlers: REPLY is the method return or the error
 * (sd_bus_message_get_error()); a timeout arrives as an error reply too. */

/* Manager.GetSession(id) → o */
int logind_get_session(sd_bus *bus, const char *session_id, sd_bus_message_handler_t cb,
        void *userdata, sd_bus_slot **ret_slot);
/* Manager.GetSessionByPID(pid) → o; NoSessionForPID when PID is in no session */
int logind_get_session_by_pid(sd_bus *bus, pid_t pid, sd_bus_message_handler_t cb, void *userdata,
        sd_bus_slot **ret_slot);
/* The session id in a session object PATH logind gave (it escapes the id into the last
 * element); -EBADMSG for a path that is no session's. */
int logind_session_id_from_path(const char *path, char **ret);
/* Properties.Get(Session, NAME) → v */
int logind_get_session_property(sd_bus *bus, const char *path, const char *name,
        sd_bus_message_handler_t cb, void *userdata, sd_bus_slot **ret_slot);
/* Session.Lock() on PATH */
int logind_lock_session(sd_bus *bus, const char *path, sd_bus_message_handler_t cb, void *userdata,
        sd_bus_slot **ret_slot);
/* Manager.TerminateSession(id) */
int logind_terminate_session(sd_bus *bus, const char *session_id, sd_bus_message_handler_t cb,
        void *userdata, sd_bus_slot **ret_slot);
/* Matches PropertiesChanged of the Session interface on PATH (installed before the Lock
 * call is sent, so no change can be missed). */
int logind_watch_session_properties(sd_bus *bus, const char *path, sd_bus_message_handler_t cb,
        void *userdata, sd_bus_slot **ret_slot);
/* Matches Manager.SessionRemoved(s id, o path). */
int logind_watch_session_removed(
        sd_bus *bus, sd_bus_message_handler_t cb, void *userdata, sd_bus_slot **ret_slot);

/* Whether the logind session PID belongs to is remote, from logind's session records
 * (sd-login: sd_pid_get_session, sd_session_is_remote): no bus call, so the decision of
 * a login never waits for logind. -ENXIO without a pid or a session of the pid, else
 * -errno (the caller treats every failure as "not known to be remote"). */
int logind_session_is_remote(pid_t pid, bool *ret);
/* The RemoteHost logind records for PID's session (malloc'ed; NULL when it has none), from
 * /run/systemd/sessions like logind_session_is_remote(); -ENXIO: PID is in no session. */
int logind_session_remote_host(pid_t pid, char **ret);

/* Whether REPLY is an error; *ret_error_name (if given) gets its name. */
bool logind_reply_failed(
        sd_bus_message *reply, const char **ret_error_name, const char **ret_message);
/* Whether the error means the session no longer exists (NoSuchSession, UnknownObject). */
bool logind_error_is_gone(const char *error_name);
/* Reads a b-typed value out of a PropertiesChanged message for NAME: 1 true, 0 false,
 * -ENOENT not in the message. */
int logind_properties_changed_bool(sd_bus_message *msg, const char *name);
