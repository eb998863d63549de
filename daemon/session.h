/* session.h: BindSession / UnbindSession — the bus methods that turn the token of a
 * successful Authenticate into a binding (binding.h) of the session or elevated process
 * to the physical key, and drop it again. The handlers are in bus-api.h's table. */
#pragma once

#include "binding.h"
#include "bus-util.h"
#include "manager.h"

/* The handlers bus-api.c's dispatch table calls (root only). */
int bus_method_bind_session(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);
int bus_method_unbind_session(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);
