/* daemon.c: keywardd's wiring, the top of the layers — bus API and main above the
 * services (session, removal), above the state (manager, bindings), above the adapters
 * (udev-watch, logind, device-op, process), which report up through callbacks. */
#include "daemon.h"

#include <malloc.h>

#include "binding.h"
#include "bus-api.h"
#include "device-op.h"
#include "removal.h"

int daemon_startup(Manager *m)
{
	int r;

	r = device_op_init();
	if (r < 0)
		return r;
	r = manager_startup(m);
	if (r < 0)
		return r;
	r = bus_api_setup(m);
	if (r < 0)
		return r;
	/* Bindings reload + prune, udev watch, keys gone at start. */
	r = removal_startup(m);
	if (r < 0)
		return r;
	manager_announce_ready(m);
	/* Break-glass codes and approvals that expired while keywardd was not running. */
	breakglass_startup(m);
	/* What start-up allocated and freed (binding files, the policy's parse, the start-up
	 * check's lists) goes back to the system instead of staying in the idle heap. */
	(void)malloc_trim(0);
	return 0;
}

int daemon_run(Manager *m)
{
	int r = manager_run(m);

	device_op_cancel_all(&m->ops);
	manager_record_stop(m, r);
	return r;
}

Manager *daemon_free(Manager *m)
{
	if (!m)
		return NULL;
	device_op_free_all(&m->ops);
	bus_api_shutdown(m);
	removal_shutdown(m); /* before the bindings are freed */
	bindings_free_all(m);
	return manager_free(m);
}
