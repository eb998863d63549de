/* udev-watch.h: the libudev monitor for hidraw add/remove on the sd-event loop (no
 * polling), and the list of hidraw devices present now. Adapter layer: it reports upward
 * only through the callbacks its owner registers. */
#pragma once

#include <stdbool.h>

#include <libudev.h>
#include <systemd/sd-event.h>

typedef struct UdevWatchCallbacks {
	/* A hidraw device went away / appeared (DEVNODE may be NULL). */
	void (*removed)(const char *syspath, const char *devnode, void *userdata);
	void (*added)(const char *syspath, const char *devnode, void *userdata);
	/* Events may have been lost (receive buffer overrun): the owner rescans. */
	void (*lost)(void *userdata);
} UdevWatchCallbacks;

typedef struct UdevWatch UdevWatch;

/* Subscribes to hidraw uevents ("udev" source) on EVENT and calls CB with USERDATA. */
int udev_watch_start(sd_event *event, struct udev *udev, const UdevWatchCallbacks *cb,
        void *userdata, UdevWatch **ret);
UdevWatch *udev_watch_free(UdevWatch *w);
/* Syspaths of the hidraw devices present now (sorted, NULL-terminated). */
int udev_watch_present(struct udev *udev, char ***ret_syspaths);
/* Whether SYSPATH is a device udev knows now. */
bool udev_watch_device_exists(struct udev *udev, const char *syspath);
/* The device node (/dev/hidrawN) of SYSPATH; -ENODEV if udev does not know it. */
int udev_watch_devnode(struct udev *udev, const char *syspath, char **ret);
