/* udev-watch.c: hidraw uevents from a libudev monitor, dispatched to removal.c. A receive
 * error that may have lost events (ENOBUFS) triggers a rescan, so a missed "remove"
 * still acts: the watch never stops enforcing silently. */
#include "udev-watch.h"

#include <libudev.h>

#include "log.h"
#include "removal.h"
#include "util.h"

#define UDEV_RECEIVE_BUFFER (4 * 1024 * 1024)
#define UDEV_MAX_PER_WAKEUP 256

static int on_udev_event(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Manager *m = userdata;

	for (unsigned i = 0; i < UDEV_MAX_PER_WAKEUP; i++) {
		struct udev_device *d;
		const char *action, *syspath, *devnode;

		errno = 0;
		d = udev_monitor_receive_device(m->udev_monitor);
		if (!d) {
			if (errno == ENOBUFS) {
				log_warning("udev: events were lost (receive buffer overrun); "
				            "rescanning the keys.");
				(void)removal_reconcile(m, "rescan");
			}
			break;
		}
		action = udev_device_get_action(d);
		syspath = udev_device_get_syspath(d);
		devnode = udev_device_get_devnode(d);
		log_debug("udev: %s %s (%s)", strna(action), strna(syspath), strna(devnode));
		if (action && syspath && streq(action, "remove"))
			removal_key_removed(m, syspath, devnode, "removed");
		else if (action && syspath && streq(action, "add"))
			removal_key_added(m, syspath, devnode);
		udev_device_unref(d);
	}
	return 0;
}

int udev_watch_start(Manager *m)
{
	int r;

	if (!m->udev)
		return log_error_errno(
		        -ENOSYS, "libudev is not available: key removal cannot be watched.");
	m->udev_monitor = udev_monitor_new_from_netlink(m->udev, "udev");
	if (!m->udev_monitor)
		return log_error_errno(-errno ?: -EIO, "Cannot create a udev monitor: %m");
	r = udev_monitor_filter_add_match_subsystem_devtype(m->udev_monitor, "hidraw", NULL);
	if (r < 0)
		return log_error_errno(r, "Cannot filter the udev monitor on hidraw: %m");
	(void)udev_monitor_set_receive_buffer_size(m->udev_monitor, UDEV_RECEIVE_BUFFER);
	r = udev_monitor_enable_receiving(m->udev_monitor);
	if (r < 0)
		return log_error_errno(r, "Cannot start the udev monitor: %m");
	r = sd_event_add_io(m->event, &m->udev_source, udev_monitor_get_fd(m->udev_monitor),
	        EPOLLIN, on_udev_event, m);
	if (r < 0)
		return log_error_errno(r, "Cannot watch the udev monitor: %m");
	/* Removals before anything else that is ready at the same time. */
	(void)sd_event_source_set_priority(m->udev_source, SD_EVENT_PRIORITY_IMPORTANT);
	(void)sd_event_source_set_description(m->udev_source, "udev-hidraw");
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int udev_watch_present(Manager *m, char ***ret_syspaths)
{
	_cleanup_strv_free_ char **l = NULL;
	struct udev_enumerate *e;
	struct udev_list_entry *item;
	int r = 0;

	if (!m->udev)
		return -ENOSYS;
	l = calloc(1, sizeof(char *));
	if (!l)
		return -ENOMEM;
	e = udev_enumerate_new(m->udev);
	if (!e)
		return -ENOMEM;
	if (udev_enumerate_add_match_subsystem(e, "hidraw") < 0 ||
	        udev_enumerate_scan_devices(e) < 0) {
		udev_enumerate_unref(e);
		return -EIO;
	}
	udev_list_entry_foreach(item, udev_enumerate_get_list_entry(e))
	{
		r = strv_extend(&l, udev_list_entry_get_name(item));
		if (r < 0)
			break;
	}
	udev_enumerate_unref(e);
	if (r < 0)
		return r;
	qsort(l, strv_length(l), sizeof(char *), cmp_str);
	*ret_syspaths = TAKE_PTR(l);
	return 0;
}

bool udev_watch_device_exists(Manager *m, const char *syspath)
{
	struct udev_device *d;

	if (!m->udev || isempty(syspath))
		return false;
	d = udev_device_new_from_syspath(m->udev, syspath);
	if (!d)
		return false;
	udev_device_unref(d);
	return true;
}

int udev_watch_devnode(Manager *m, const char *syspath, char **ret)
{
	struct udev_device *d;
	const char *node;
	char *c;

	if (!m->udev || isempty(syspath))
		return -ENODEV;
	d = udev_device_new_from_syspath(m->udev, syspath);
	if (!d)
		return -ENODEV;
	node = udev_device_get_devnode(d);
	c = node ? strdup(node) : NULL;
	udev_device_unref(d);
	if (!node)
		return -ENODEV;
	if (!c)
		return -ENOMEM;
	*ret = c;
	return 0;
}
