/* udev-watch.c: hidraw uevents from a libudev monitor, reported to the owner's callbacks
 * (removal.c registers them). A receive
 * error that may have lost events (ENOBUFS) triggers a rescan, so a missed "remove"
 * still acts: the watch never stops enforcing silently. */
#include "udev-watch.h"

#include <stdlib.h>

#include "log.h"
#include "util.h"

#define UDEV_RECEIVE_BUFFER (4 * 1024 * 1024)
#define UDEV_MAX_PER_WAKEUP 256

struct UdevWatch {
	struct udev *udev;
	struct udev_monitor *monitor;
	sd_event_source *source;
	UdevWatchCallbacks cb;
	void *userdata;
};

UdevWatch *udev_watch_free(UdevWatch *w)
{
	if (!w)
		return NULL;
	sd_event_source_disable_unref(w->source);
	if (w->monitor)
		udev_monitor_unref(w->monitor);
	if (w->udev)
		udev_unref(w->udev);
	free(w);
	return NULL;
}

static int on_udev_event(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	UdevWatch *w = userdata;

	for (unsigned i = 0; i < UDEV_MAX_PER_WAKEUP; i++) {
		struct udev_device *d;
		const char *action, *syspath, *devnode;

		errno = 0;
		d = udev_monitor_receive_device(w->monitor);
		if (!d) {
			if (errno == ENOBUFS) {
				log_warning("udev: events were lost (receive buffer overrun); "
				            "rescanning the keys.");
				if (w->cb.lost)
					w->cb.lost(w->userdata);
			}
			break;
		}
		action = udev_device_get_action(d);
		syspath = udev_device_get_syspath(d);
		devnode = udev_device_get_devnode(d);
		log_debug("udev: %s %s (%s)", strna(action), strna(syspath), strna(devnode));
		if (action && syspath && streq(action, "remove") && w->cb.removed)
			w->cb.removed(syspath, devnode, w->userdata);
		else if (action && syspath && streq(action, "add") && w->cb.added)
			w->cb.added(syspath, devnode, w->userdata);
		udev_device_unref(d);
	}
	return 0;
}

static void udev_watch_freep(UdevWatch **w)
{
	udev_watch_free(*w);
}

int udev_watch_start(sd_event *event, struct udev *udev, const UdevWatchCallbacks *cb,
        void *userdata, UdevWatch **ret)
{
	_cleanup_(udev_watch_freep) UdevWatch *w = NULL;
	int r;

	if (!udev)
		return log_error_errno(
		        -ENOSYS, "libudev is not available: key removal cannot be watched.");
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->udev = udev_ref(udev);
	w->cb = *cb;
	w->userdata = userdata;
	w->monitor = udev_monitor_new_from_netlink(udev, "udev");
	if (!w->monitor)
		return log_error_errno(-errno ?: -EIO, "Cannot create a udev monitor: %m");
	r = udev_monitor_filter_add_match_subsystem_devtype(w->monitor, "hidraw", NULL);
	if (r < 0)
		return log_error_errno(r, "Cannot filter the udev monitor on hidraw: %m");
	(void)udev_monitor_set_receive_buffer_size(w->monitor, UDEV_RECEIVE_BUFFER);
	r = udev_monitor_enable_receiving(w->monitor);
	if (r < 0)
		return log_error_errno(r, "Cannot start the udev monitor: %m");
	r = sd_event_add_io(
	        event, &w->source, udev_monitor_get_fd(w->monitor), EPOLLIN, on_udev_event, w);
	if (r < 0)
		return log_error_errno(r, "Cannot watch the udev monitor: %m");
	/* Removals before anything else that is ready at the same time. */
	(void)sd_event_source_set_priority(w->source, SD_EVENT_PRIORITY_IMPORTANT);
	(void)sd_event_source_set_description(w->source, "udev-hidraw");
	*ret = TAKE_PTR(w);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int udev_watch_present(struct udev *udev, char ***ret_syspaths)
{
	_cleanup_strv_free_ char **l = NULL;
	struct udev_enumerate *e;
	struct udev_list_entry *item;
	int r = 0;

	if (!udev)
		return -ENOSYS;
	l = calloc(1, sizeof(char *));
	if (!l)
		return -ENOMEM;
	e = udev_enumerate_new(udev);
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

bool udev_watch_device_exists(struct udev *udev, const char *syspath)
{
	struct udev_device *d;

	if (!udev || isempty(syspath))
		return false;
	d = udev_device_new_from_syspath(udev, syspath);
	if (!d)
		return false;
	udev_device_unref(d);
	return true;
}

int udev_watch_devnode(struct udev *udev, const char *syspath, char **ret)
{
	struct udev_device *d;
	const char *node;
	char *c;

	if (!udev || isempty(syspath))
		return -ENODEV;
	d = udev_device_new_from_syspath(udev, syspath);
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
