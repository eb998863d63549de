/* removal-probe.c: the stopwatch of bench/removal, an independent listener beside keywardd.
 * Its own libudev monitor stamps the receipt of every hidraw "remove" uevent; as a D-Bus
 * monitor (BecomeMonitor) it stamps every Session.Lock / Manager.LockSessions call that
 * crosses the bus to logind. With "spawn 1" it also plays udevd running the real
 * `RUN+="/bin/sh -c 'loginctl lock-sessions'"` recipe: a shell exec'd per remove uevent.
 *
 *   keyward-bench-removal-probe
 *
 * Prints "ready fd=N path=P" (its uevent socket), then one line per event, every time
 * CLOCK_MONOTONIC in ns:
 *   recv syspath=S t_ns=T          a hidraw remove uevent was read
 *   call member=M path=P t_ns=T    a Lock/LockSessions method call was seen on the bus
 *   child status=N                 a spawned recipe shell ended (wait status)
 * stdin: "spawn 1" / "spawn 0" switch the recipe on/off (answered "ok"); EOF ends it.
 *
 * umockdev's preload gives each uevent listener a socket named after its fd number
 * ($UMOCKDEV_DIR/eventFD) and unlinks any old one of that name at bind: a second process
 * that binds a netlink socket with the same fd number silently deafens the first. The
 * probe therefore opens its monitor on a high fd that keywardd never reaches. */
#include <errno.h>
#include <fcntl.h>
#include <libudev.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#define ELEMENTSOF(a)    (sizeof(a) / sizeof((a)[0]))
#define PROBE_MONITOR_FD 900 /* far above any fd keywardd or a test client opens */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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

/* Opens the udev monitor with its netlink socket on fd PROBE_MONITOR_FD or above: the fds
 * below are taken by placeholders while libudev creates (and umockdev names) the socket. */
static struct udev_monitor *monitor_open_high(struct udev *udev)
{
	struct rlimit rl;
	struct udev_monitor *mon;
	int first = -1, last = -1, fd;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < PROBE_MONITOR_FD + 64) {
		rl.rlim_cur =
		        rl.rlim_max < PROBE_MONITOR_FD + 64 ? rl.rlim_max : PROBE_MONITOR_FD + 64;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	first = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (first < 0)
		return NULL;
	last = first;
	while (last < PROBE_MONITOR_FD - 1 && (fd = fcntl(first, F_DUPFD_CLOEXEC, 0)) >= 0)
		last = fd;
	mon = udev_monitor_new_from_netlink(udev, "udev");
	if (mon && (udev_monitor_filter_add_match_subsystem_devtype(mon, "hidraw", NULL) < 0 ||
	                   udev_monitor_enable_receiving(mon) < 0))
		mon = udev_monitor_unref(mon);
	for (fd = first; fd <= last; fd++)
		if (!mon || fd != udev_monitor_get_fd(mon))
			close(fd);
	if (mon && udev_monitor_get_fd(mon) < PROBE_MONITOR_FD - 1) {
		fprintf(stderr, "probe: the monitor got fd %d, not one above %d (fd limit?)\n",
		        udev_monitor_get_fd(mon), PROBE_MONITOR_FD - 1);
		mon = udev_monitor_unref(mon);
	}
	return mon;
}

static void on_sigchld(int sig)
{
	(void)sig;
}

/* What udevd runs for RUN+="/bin/sh -c 'loginctl lock-sessions'": the program with the
 * uevent's properties as its environment (no LD_PRELOAD of umockdev: a real udevd's
 * children do not carry it either), and the private system bus. */
static void spawn_recipe(struct udev_device *d)
{
	char *argv[] = {"/bin/sh", "-c", "loginctl lock-sessions", NULL};
	char *envp[16];
	size_t n = 0;
	const char *bus = getenv("DBUS_SYSTEM_BUS_ADDRESS");
	struct udev_list_entry *e;
	posix_spawnattr_t attr;
	sigset_t none;
	pid_t pid;

	envp[n++] = strdup("PATH=/usr/sbin:/usr/bin:/sbin:/bin");
	if (bus && asprintf(&envp[n], "DBUS_SYSTEM_BUS_ADDRESS=%s", bus) >= 0)
		n++;
	udev_list_entry_foreach(e, udev_device_get_properties_list_entry(d))
	{
		if (n >= ELEMENTSOF(envp) - 1)
			break;
		if (asprintf(&envp[n], "%s=%s", udev_list_entry_get_name(e),
		            udev_list_entry_get_value(e)) >= 0)
			n++;
	}
	envp[n] = NULL;
	/* the probe blocks SIGCHLD outside ppoll(); the shell starts with nothing blocked */
	sigemptyset(&none);
	if (posix_spawnattr_init(&attr) != 0 || posix_spawnattr_setsigmask(&attr, &none) != 0 ||
	        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK) != 0 ||
	        posix_spawn(&pid, "/bin/sh", NULL, &attr, argv, envp) != 0)
		printf("child status=-1\n");
	posix_spawnattr_destroy(&attr);
	while (n > 0)
		free(envp[--n]);
}

/* loginctl refuses to talk to the system bus unless sd_booted() (/run/systemd/system
 * exists), as on every systemd host. Here, where systemd is not PID 1, the probe gives
 * itself and the shells it spawns a mount namespace in which it does. */
static int booted_namespace(void)
{
	if (access("/run/systemd/system", F_OK) == 0)
		return 0;
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	        mount("tmpfs", "/run/systemd", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0 ||
	        mkdir("/run/systemd/system", 0755) < 0) {
		fprintf(stderr,
		        "probe: cannot make /run/systemd/system in a mount namespace "
		        "(loginctl needs it; run as root): %s\n",
		        strerror(errno));
		return -errno;
	}
	return 0;
}

/* Reads every pending uevent (the monitor's socket is non-blocking). */
static void drain_uevents(struct udev_monitor *mon, bool spawn)
{
	struct udev_device *d;

	while ((d = udev_monitor_receive_device(mon))) {
		const char *action = udev_device_get_action(d);
		uint64_t t = now_ns();

		if (action && strcmp(action, "remove") == 0) {
			if (spawn)
				spawn_recipe(d);
			printf("recv syspath=%s t_ns=%llu\n", udev_device_get_syspath(d) ?: "?",
			        (unsigned long long)t);
		}
		udev_device_unref(d);
	}
}

int main(void)
{
	struct udev *udev = udev_new();
	struct udev_monitor *mon;
	const char *dir = getenv("UMOCKDEV_DIR");
	char path[4096] = "";
	sd_bus *bus = NULL;
	bool spawn = false;
	int r, status;
	pid_t pid;

	struct sigaction sa = {.sa_handler = on_sigchld}; /* no SA_RESTART */
	sigset_t chld, waitmask;

	if (!udev)
		return fprintf(stderr, "probe: no libudev\n"), 1;
	if (booted_namespace() < 0)
		return 1;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigaction(SIGCHLD, &sa, NULL) < 0 || sigprocmask(SIG_BLOCK, &chld, &waitmask) < 0)
		return fprintf(stderr, "probe: sigaction: %s\n", strerror(errno)), 1;
	mon = monitor_open_high(udev);
	if (!mon)
		return fprintf(stderr, "probe: cannot monitor udev\n"), 1;
	if (dir) {
		struct stat st;

		/* the name umockdev gave our socket: it must exist now */
		snprintf(path, sizeof(path), "%s/event%d", dir, udev_monitor_get_fd(mon));
		if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
			return fprintf(stderr, "probe: no uevent socket %s\n", path), 1;
	}
	if (bus_monitor_open(&bus) < 0)
		return 1;
	printf("ready fd=%d path=%s\n", udev_monitor_get_fd(mon), path[0] ? path : "-");
	fflush(stdout);
	for (;;) {
		struct pollfd p[3] = {
		        {.fd = udev_monitor_get_fd(mon), .events = POLLIN},
		        {.fd = sd_bus_get_fd(bus), .events = (short)sd_bus_get_events(bus)},
		        {.fd = STDIN_FILENO, .events = POLLIN},
		};
		sd_bus_message *m = NULL;

		/* Uevents before bus messages: a uevent is always sent before the Lock call it
		 * causes, so its receipt is stamped (and printed) first even when both wait. */
		drain_uevents(mon, spawn);
		/* then the bus: messages may already be buffered */
		while ((r = sd_bus_process(bus, &m)) > 0) {
			uint8_t type = 0;

			if (!m)
				continue;
			if (sd_bus_message_get_type(m, &type) >= 0 &&
			        type == SD_BUS_MESSAGE_METHOD_CALL)
				printf("call member=%s path=%s t_ns=%llu\n",
				        sd_bus_message_get_member(m) ?: "?",
				        sd_bus_message_get_path(m) ?: "?",
				        (unsigned long long)now_ns());
			sd_bus_message_unref(m);
			m = NULL;
		}
		if (r < 0) {
			fprintf(stderr, "probe: bus: %s\n", strerror(-r));
			return 1;
		}
		/* after the bus: a shell's Lock call is read before its end is reported */
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			printf("child status=%d\n", status);
		fflush(stdout);
		p[1].events = (short)sd_bus_get_events(bus);
		/* SIGCHLD is blocked except inside ppoll(): a shell that ends at any moment
		 * interrupts the wait, so its end is reported at once */
		if (ppoll(p, 3, NULL, &waitmask) < 0 && errno != EINTR)
			return 1;
		if (p[2].revents & (POLLIN | POLLHUP)) {
			char buf[64];
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf) - 1);

			if (n <= 0)
				break;
			buf[n] = '\0';
			if (strstr(buf, "spawn 1"))
				spawn = true;
			else if (strstr(buf, "spawn 0"))
				spawn = false;
			printf("ok\n");
		}
	}
	sd_bus_unref(bus);
	udev_monitor_unref(mon);
	udev_unref(udev);
	return 0;
}
