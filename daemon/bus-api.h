/* bus-api.h: keywardd's D-Bus interface — the one dispatch table saying who may call
 * what, caller identity from the bus (never from arguments), argument caps. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>

#include "bus-util.h"
#include "manager.h"

/* Connects to the system bus, registers the object and the dispatch table, takes the name. */
int bus_api_setup(Manager *m);
/* Drops the calls still waiting (bus-fair.h); before the bus goes. */
void bus_api_shutdown(Manager *m);

/* The user holding credential ID among all users' files: 1 and *ret_user, 0 if none. */
int bus_find_credential_owner(Manager *m, const char *id, char **ret_user);

/* Method handlers living in their own files. */
typedef int (*bus_method_handler)(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);
int bus_method_authenticate(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);
int bus_method_enroll(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);
