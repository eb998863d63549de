/* removal-probe.c: the stopwatch of bench/removal. Watches hidraw uevents (its own libudev
 * monitor) and, as a D-Bus monitor (BecomeMonitor), the Lock calls that reach logind; for
 * every "remove" uevent it prints the time until the next Session.Lock or
 * Manager.LockSessions call crossed the bus. With --spawn-lock-sessions it also plays the
 * common udev-rule recipe: a process spawned per event (as udev's RUN+= does) that runs
 * `busctl call ... LockSessions`.
 *
 *   keyward-bench-removal-probe [--spawn-lock-sessions]
 *
 * Prints "ready", then one line per measured removal: "latency_us=N member=M". A line
 * "spawn 1" / "spawn 0" on stdin switches the recipe on/off (answered "ok"). Runs inside
 * keyward-testbed (the uevents are umockdev's). Exits when stdin closes. */
#include <errno.h>
#include <libudev.h>
#include <poll.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

extern char **environ;

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int bus_monitor_open(sd_bus **ret)
{
	sd_bus *bus = NULL;
	const char *addr = getenv("DBUS_SYSTEM_BUS_ADDRESS");
	sd_bus_message *m = NULL;
	sd_bus_error error = SD_BUS_ERROR_NULL;
	int r;

	if (!addr) {
		fprintf(stderr, "probe: DBUS_SYSTEM_BUS_ADDRESS is not set (run inside "
		                "keyward-testbed --bus)\n");
		return -ENXIO;
	}
	r = sd_bus_new(&bus);
	if (r >= 0)
		r = sd_bus_set_monitor(bus, true);
	if (r >= 0)
		r = sd_bus_set_address(bus, addr);
	if (r >= 0)
		r = sd_bus_set_bus_client(bus, true);
	if (r >= 0)
		r = sd_bus_start(bus);
	if (r < 0) {
		fprintf(stderr, "probe: cannot connect to the bus: %s\n", strerror(-r));
		sd_bus_unref(bus);
		return r;
	}
	r = sd_bus_message_new_method_call(bus, &m, "org.freedesktop.DBus", "/org/freedesktop/DBus",
	        "org.freedesktop.DBus.Monitoring", "BecomeMonitor");
	if (r >= 0)
		r = sd_bus_message_append(m, "asu", 2,
		        "type='method_call',interface='org.freedesktop.login1.Session',member='"
		        "Lock'",
		        "type='method_call',interface='org.freedesktop.login1.Manager',member='"
		        "LockSessions'",
		        0);
	if (r >= 0)
		r = sd_bus_call(bus, m, 5 * 1000 * 1000, &error, NULL);
	sd_bus_message_unref(m);
	if (r < 0) {
		fprintf(stderr, "probe: BecomeMonitor failed: %s\n",
		        error.message ? error.message : strerror(-r));
		sd_bus_error_free(&error);
		sd_bus_unref(bus);
		return r;
	}
	*ret = bus;
	return 0;
}

static void spawn_lock_sessions(void)
{
	char *argv[] = {"busctl", "--system", "call", "org.freedesktop.login1",
	        "/org/freedesktop/login1", "org.freedesktop.login1.Manager", "LockSessions", NULL};
	pid_t pid;

	if (posix_spawnp(&pid, "busctl", NULL, NULL, argv, environ) != 0)
		fprintf(stderr, "probe: cannot spawn busctl\n");
}

int main(int argc, char *argv[])
{
	bool spawn = argc > 1 && strcmp(argv[1], "--spawn-lock-sessions") == 0;
	struct udev *udev = udev_new();
	struct udev_monitor *mon;
	sd_bus *bus = NULL;
	uint64_t t_remove = 0;
	int r;

	if (!udev)
		return fprintf(stderr, "probe: no libudev\n"), 1;
	mon = udev_monitor_new_from_netlink(udev, "udev");
	if (!mon || udev_monitor_filter_add_match_subsystem_devtype(mon, "hidraw", NULL) < 0 ||
	        udev_monitor_enable_receiving(mon) < 0)
		return fprintf(stderr, "probe: cannot monitor udev\n"), 1;
	if (bus_monitor_open(&bus) < 0)
		return 1;
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		struct pollfd p[3] = {
		        {.fd = udev_monitor_get_fd(mon), .events = POLLIN},
		        {.fd = sd_bus_get_fd(bus), .events = (short)sd_bus_get_events(bus)},
		        {.fd = STDIN_FILENO, .events = POLLIN},
		};
		sd_bus_message *m = NULL;

		/* Drain the bus first: messages may already be buffered. */
		while ((r = sd_bus_process(bus, &m)) > 0) {
			if (m) {
				uint64_t t = now_us();
				const char *member = sd_bus_message_get_member(m);

				uint8_t type = 0;

				if (t_remove && sd_bus_message_get_type(m, &type) >= 0 &&
				        type == SD_BUS_MESSAGE_METHOD_CALL) {
					printf("latency_us=%llu member=%s\n",
					        (unsigned long long)(t - t_remove),
					        member ? member : "?");
					fflush(stdout);
					t_remove = 0;
				}
				sd_bus_message_unref(m);
				m = NULL;
			}
		}
		if (r < 0) {
			fprintf(stderr, "probe: bus: %s\n", strerror(-r));
			return 1;
		}
		p[1].events = (short)sd_bus_get_events(bus);
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (p[0].revents & POLLIN) {
			struct udev_device *d;

			while ((d = udev_monitor_receive_device(mon))) {
				const char *action = udev_device_get_action(d);

				if (action && strcmp(action, "remove") == 0) {
					t_remove = now_us();
					if (spawn)
						spawn_lock_sessions();
				}
				udev_device_unref(d);
			}
		}
		if (p[2].revents & (POLLIN | POLLHUP)) {
			char buf[64];
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf) - 1);

			if (n <= 0)
				break;
			/* "spawn 1" / "spawn 0": switch the udev-rule recipe on or off. */
			buf[n] = '\0';
			if (strstr(buf, "spawn 1"))
				spawn = true;
			else if (strstr(buf, "spawn 0"))
				spawn = false;
			printf("ok\n");
			fflush(stdout);
		}
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
	sd_bus_unref(bus);
	udev_monitor_unref(mon);
	udev_unref(udev);
	return 0;
}
