/* daemon.h: keywardd's top layer — wires the layers together: the state (manager.h), the
 * bus API on top of it, removal and its udev and logind adapters, in start and stop order. */
#pragma once

#include "manager.h"

/* After manager_new(): the state, the bus API, bindings and the removal watch; then READY. */
int daemon_startup(Manager *m);
/* Runs the loop; on its exit cancels the pending requests and records the stop. */
int daemon_run(Manager *m);
/* Stops the layers above the state in reverse order, then frees the manager. */
Manager *daemon_free(Manager *m);
static inline void daemon_freep(Manager **m)
{
	if (*m)
		daemon_free(*m);
}
