/* bus-util.h: the caller of a bus method (identity from the bus, never from arguments) and
 * the argument checks every method handler uses (bus-api.c's table, session.c's binding
 * methods). Depends on sd-bus and lib/ only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>

#include "audit.h"
#include "bus-names.h"

typedef enum BusAccess {
	BUS_ACCESS_ROOT = 1 << 0,  /* uid 0 */
	BUS_ACCESS_ADMIN = 1 << 1, /* member of the policy's admin_group */
	BUS_ACCESS_SELF = 1 << 2,  /* any caller, but only for its own user name */
} BusAccess;

typedef struct BusCaller {
	uid_t uid;  /* effective uid from the bus credentials */
	pid_t pid;  /* 0 if unknown */
	char *user; /* name of uid (NSS), or NULL */
	bool is_root;
	bool is_admin;
	BusAccess allowed; /* what the dispatch table grants for this method */
	const char *sender;
} BusCaller;

/* Whether CALLER may act on USER for this method: root/admin when the table allows them,
 * else SELF with USER equal to the caller's own name. */
bool bus_caller_may_act_for(const BusCaller *c, const char *user);
/* Length/charset check of a string argument; sets InvalidArgs naming WHAT. */
int bus_check_string(
        const char *s, size_t max, bool may_be_empty, const char *what, sd_bus_error *error);
int bus_check_user(const char *user, sd_bus_error *error);
/* The four strings that describe a login (user, PAM service, tty, remote host), in
 * that order; sets InvalidArgs naming the first bad one. */
int bus_check_login(const char *user, const char *service, const char *tty, const char *rhost,
        sd_bus_error *error);
/* Reads an a{sv} options argument: only KNOWN keys of the given types (string of
 * "name:type" pairs like "resident:b"), at most KEYWARD_MAX_OPTIONS entries. Calls
 * CB for each. */
typedef int (*bus_option_cb)(
        const char *key, sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_read_options(sd_bus_message *msg, const char *const *known, bus_option_cb cb,
        void *userdata, sd_bus_error *error);

/* Who is behind the call MSG of CALLER, for the audit record of a change (enrol, revoke,
 * import, policy reload): its uid and name, and from its process (sd-bus reads /proc;
 * informative, not authorization) the audit login uid and its name, the audit session
 * and the controlling terminal. What cannot be learned stays unset. The strings are
 * owned: free with bus_actor_done(). */
int bus_actor_get(sd_bus_message *msg, const BusCaller *caller, AuditActor *ret);
void bus_actor_done(AuditActor *a);
