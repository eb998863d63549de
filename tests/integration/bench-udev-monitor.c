/* bench-udev-monitor.c: bench acceptance test — a libudev monitor ("udev" source, hidraw
 * filter) must see the emulated key's remove and add when `keyward-testbed ctl` unplugs
 * and re-plugs it. Runs inside keyward-testbed: bench-udev-monitor TESTBED_BINARY. */
#include <errno.h>
#include <libudev.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EVENT_TIMEOUT_MS 5000

extern char **environ;

static int fail(const char *what)
{
	fprintf(stderr, "FAIL: %s\n", what);
	return EXIT_FAILURE;
}

static int run_ctl(const char *testbed, const char *verb, const char *key)
{
	const char *ctl = getenv("KEYWARD_TESTBED_CTL");
	char *argv[] = {(char *)testbed, "ctl", (char *)ctl, (char *)verb, (char *)key, NULL};
	pid_t pid;
	int st;

	if (!ctl || posix_spawn(&pid, testbed, NULL, NULL, argv, environ) != 0)
		return -1;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* How many hidraw devices are enumerated now; ret_node gets the last one's devnode. */
static int count_hidraw(struct udev *udev, char **ret_node)
{
	struct udev_enumerate *e = udev_enumerate_new(udev);
	struct udev_list_entry *l;
	char *node = NULL;
	int n = 0;

	udev_enumerate_add_match_subsystem(e, "hidraw");
	udev_enumerate_scan_devices(e);
	udev_list_entry_foreach(l, udev_enumerate_get_list_entry(e))
	{
		struct udev_device *d =
		        udev_device_new_from_syspath(udev, udev_list_entry_get_name(l));

		if (d && udev_device_get_devnode(d)) {
			free(node);
			node = strdup(udev_device_get_devnode(d));
			n++;
		}
		udev_device_unref(d);
	}
	udev_enumerate_unref(e);
	if (ret_node)
		*ret_node = node;
	else
		free(node);
	return n;
}

/* Waits for the next hidraw event; the monitor must not deliver other subsystems. */
static struct udev_device *next_event(struct udev_monitor *mon)
{
	struct pollfd p = {.fd = udev_monitor_get_fd(mon), .events = POLLIN};

	for (;;) {
		int r = poll(&p, 1, EVENT_TIMEOUT_MS);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return NULL;
		struct udev_device *d = udev_monitor_receive_device(mon);
		if (d)
			return d;
	}
}

static int expect_event(
        struct udev_monitor *mon, const char *action, const char *devnode, char **ret_node)
{
	struct udev_device *d = next_event(mon);
	const char *a, *n, *s;

	if (!d) {
		fprintf(stderr, "no '%s' event within %d ms\n", action, EVENT_TIMEOUT_MS);
		return -1;
	}
	a = udev_device_get_action(d);
	n = udev_device_get_devnode(d);
	s = udev_device_get_subsystem(d);
	printf("event: %s %s %s\n", a ? a : "?", n ? n : "?", udev_device_get_syspath(d));
	if (!a || strcmp(a, action) != 0 || !s || strcmp(s, "hidraw") != 0 || !n ||
	        (devnode && strcmp(n, devnode) != 0)) {
		fprintf(stderr, "expected %s of hidraw %s, got %s of %s %s\n", action,
		        devnode ? devnode : "(any)", a ? a : "?", s ? s : "?", n ? n : "?");
		udev_device_unref(d);
		return -1;
	}
	if (ret_node)
		*ret_node = strdup(n);
	udev_device_unref(d);
	return 0;
}

int main(int argc, char *argv[])
{
	struct udev *udev;
	struct udev_monitor *mon;
	char *before = NULL, *added = NULL, *after = NULL;

	if (argc != 2 || !getenv("KEYWARD_TESTBED_CTL"))
		return fail(
		        "usage: keyward-testbed -- bench-udev-monitor /path/to/keyward-testbed");

	udev = udev_new();
	if (!udev)
		return fail("udev_new");
	mon = udev_monitor_new_from_netlink(udev, "udev");
	if (!mon)
		return fail("udev_monitor_new_from_netlink(\"udev\")");
	if (udev_monitor_filter_add_match_subsystem_devtype(mon, "hidraw", NULL) < 0 ||
	        udev_monitor_enable_receiving(mon) < 0)
		return fail("cannot start the udev monitor");

	if (count_hidraw(udev, &before) != 1)
		return fail("expected exactly one emulated key");

	if (run_ctl(argv[1], "unplug", "0") != 0)
		return fail("keyward-testbed ctl unplug 0");
	if (expect_event(mon, "remove", before, NULL) < 0)
		return fail("remove event of the unplugged key");
	if (count_hidraw(udev, NULL) != 0)
		return fail("the unplugged key is still enumerated");

	if (run_ctl(argv[1], "plug", "0") != 0)
		return fail("keyward-testbed ctl plug 0");
	if (expect_event(mon, "add", NULL, &added) < 0)
		return fail("add event of the re-plugged key");
	if (strcmp(added, before) == 0)
		return fail("the re-plugged key reuses the old hidraw node name");
	if (count_hidraw(udev, &after) != 1 || strcmp(after, added) != 0)
		return fail("the re-plugged key is not enumerated under the node of its add event");

	/* nothing else (no usb/hid parents) may pass the hidraw filter */
	{
		struct pollfd p = {.fd = udev_monitor_get_fd(mon), .events = POLLIN};

		if (poll(&p, 1, 200) > 0) {
			struct udev_device *d = udev_monitor_receive_device(mon);

			if (d) {
				fprintf(stderr, "unexpected extra event: %s %s\n",
				        udev_device_get_action(d), udev_device_get_syspath(d));
				return fail("hidraw filter");
			}
		}
	}
	printf("ok: remove %s, add %s\n", before, added);
	free(before);
	free(added);
	free(after);
	udev_monitor_unref(mon);
	udev_unref(udev);
	return EXIT_SUCCESS;
}
