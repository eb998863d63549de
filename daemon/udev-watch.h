/* udev-watch.h: the libudev monitor for hidraw add/remove on the sd-event loop (no
 * polling), and the list of hidraw devices present now. */
#pragma once

#include "manager.h"

/* Subscribes to hidraw uevents ("udev" source) and adds the monitor fd to m->event. */
int udev_watch_start(Manager *m);
/* Syspaths of the hidraw devices present now (sorted, NULL-terminated). */
int udev_watch_present(Manager *m, char ***ret_syspaths);
/* Whether SYSPATH is a device udev knows now. */
bool udev_watch_device_exists(Manager *m, const char *syspath);
/* The device node (/dev/hidrawN) of SYSPATH; -ENODEV if udev does not know it. */
int udev_watch_devnode(Manager *m, const char *syspath, char **ret);
