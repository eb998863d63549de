/* flood.c: the attacker of bench/flood. An unprivileged user opens many connections to the
 * system bus and keeps keywardd busy with Check and Authenticate calls for itself (the only
 * account an unprivileged caller may name), as fast as the answers come back.
 *
 *   keyward-bench-flood [--uid UID --gid GID] --user NAME [--connections N] [--inflight K]
 *                       [--method check|authenticate|both] [--service S]
 *
 * Run as root, drops to UID/GID (no supplementary groups, both needed) before it connects;
 * run as the unprivileged user itself, needs neither. Prints "ready" once every
 * connection is up, floods until stdin closes, then prints one line:
 *   "flood: sent=N replies=N errors=N busy=N seconds=S"
 * Runs inside keyward-testbed --bus (DBUS_SYSTEM_BUS_ADDRESS). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define BUS_NAME  "org.keyward.Keyward1"
#define BUS_PATH  "/org/keyward/Keyward1"
#define BUS_IFACE "org.keyward.Keyward1.Manager"

typedef enum Method { METHOD_CHECK, METHOD_AUTHENTICATE, METHOD_BOTH } Method;

typedef struct Flood {
	const char *user, *service;
	Method method;
	int null_fd;
	uint64_t sent, replies, errors, busy;
	unsigned turn;
} Flood;

typedef struct Conn {
	Flood *f;
	sd_bus *bus;
} Conn;

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int send_one(Conn *c);

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	Conn *c = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(reply);

	c->f->replies++;
	if (e) {
		c->f->errors++;
		if (e->name && strstr(e->name, "Busy"))
			c->f->busy++;
	}
	(void)send_one(c);
	return 0;
}

static int send_one(Conn *c)
{
	sd_bus_message *m = NULL;
	Flood *f = c->f;
	bool check = f->method == METHOD_CHECK || (f->method == METHOD_BOTH && (f->turn++ & 1));
	int r;

	r = sd_bus_message_new_method_call(
	        c->bus, &m, BUS_NAME, BUS_PATH, BUS_IFACE, check ? "Check" : "Authenticate");
	if (r >= 0)
		r = check ? sd_bus_message_append(m, "ssss", f->user, f->service, "", "")
		          : sd_bus_message_append(
		                    m, "ssssha{sv}", f->user, f->service, "", "", f->null_fd, 0);
	if (r >= 0)
		r = sd_bus_call_async(c->bus, NULL, m, on_reply, c, 30 * 1000000u);
	sd_bus_message_unref(m);
	if (r >= 0)
		f->sent++;
	return r;
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n <= 0)
		return sd_event_exit(sd_event_source_get_event(s), 0);
	return 0;
}

int main(int argc, char **argv)
{
	Flood f = {.service = "flood", .method = METHOD_BOTH, .null_fd = -1};
	unsigned n_conn = 200, inflight = 4;
	long uid = -1, gid = -1;
	sd_event *event = NULL;
	Conn *conns;
	uint64_t t0;
	int r;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v) {
			fprintf(stderr, "flood: %s needs a value\n", a);
			return 2;
		}
		if (!strcmp(a, "--uid"))
			uid = strtol(v, NULL, 10);
		else if (!strcmp(a, "--gid"))
			gid = strtol(v, NULL, 10);
		else if (!strcmp(a, "--user"))
			f.user = v;
		else if (!strcmp(a, "--service"))
			f.service = v;
		else if (!strcmp(a, "--connections"))
			n_conn = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--inflight"))
			inflight = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--method"))
			f.method = !strcmp(v, "check")          ? METHOD_CHECK
			           : !strcmp(v, "authenticate") ? METHOD_AUTHENTICATE
			                                        : METHOD_BOTH;
		else {
			fprintf(stderr, "flood: unknown option %s\n", a);
			return 2;
		}
		i++;
	}
	if (!f.user || n_conn == 0 || inflight == 0 || (getuid() == 0 && (uid <= 0 || gid <= 0))) {
		fprintf(stderr,
		        "flood: --user is needed, and as root --uid and --gid (not root)\n");
		return 2;
	}
	if (getuid() == 0 &&
	        (setgroups(0, NULL) < 0 || setgid((gid_t)gid) < 0 || setuid((uid_t)uid) < 0)) {
		fprintf(stderr, "flood: cannot drop to uid %ld: %s\n", uid, strerror(errno));
		return 1;
	}
	f.null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	conns = calloc(n_conn, sizeof(*conns));
	if (f.null_fd < 0 || !conns || sd_event_default(&event) < 0)
		return 1;
	for (unsigned i = 0; i < n_conn; i++) {
		sd_bus_message *id = NULL;

		conns[i].f = &f;
		r = sd_bus_open_system(&conns[i].bus);
		/* Hello done and fd passing negotiated before the first call. */
		if (r >= 0)
			r = sd_bus_call_method(conns[i].bus, "org.freedesktop.DBus",
			        "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId", NULL, &id,
			        "");
		sd_bus_message_unref(id);
		if (r >= 0)
			r = sd_bus_attach_event(conns[i].bus, event, 0);
		if (r < 0) {
			fprintf(stderr, "flood: connection %u: %s\n", i, strerror(-r));
			return 1;
		}
	}
	r = sd_event_add_io(event, NULL, STDIN_FILENO, EPOLLIN, on_stdin, NULL);
	if (r < 0)
		return 1;
	printf("ready\n");
	fflush(stdout);
	t0 = now_us();
	for (unsigned i = 0; i < n_conn; i++)
		for (unsigned k = 0; k < inflight; k++)
			if ((r = send_one(&conns[i])) < 0) {
				fprintf(stderr, "flood: cannot send: %s\n", strerror(-r));
				return 1;
			}
	(void)sd_event_loop(event);
	printf("flood: sent=%llu replies=%llu errors=%llu busy=%llu seconds=%.1f\n",
	        (unsigned long long)f.sent, (unsigned long long)f.replies,
	        (unsigned long long)f.errors, (unsigned long long)f.busy,
	        (double)(now_us() - t0) / 1e6);
	fflush(stdout);
	_exit(0); /* the connections' pending calls need no goodbye */
}
