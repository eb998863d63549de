/* testbed.c: keyward-testbed — runs a command in a umockdev testbed with emulated FIDO2
 * keys (virtkey), optionally a private system bus with a mocked logind; live control. */
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testbed.h"
#include "util.h"

#define PRELOAD_LIB          "libumockdev-preload.so.0"
#define REEXEC_GUARD         "KEYWARD_TESTBED_REEXECED"
#define BUS_READY_TIMEOUT_MS 10000
#define CHILD_KILL_GRACE_MS  5000

#ifndef KEYWARD_TESTBED_LOGIND_TEMPLATE
#define KEYWARD_TESTBED_LOGIND_TEMPLATE "logind_extra.py"
#endif

/* "keyward virtkey" in ASCII, version 1 */
static const uint8_t default_aaguid[16] = {0x6b, 0x65, 0x79, 0x77, 0x61, 0x72, 0x64, 0x20, 0x76,
        0x69, 0x72, 0x74, 0x6b, 0x65, 0x79, 0x01};

typedef struct Options {
	unsigned keys;
	const char *pin;
	const char *state;
	bool bus;
	const char *ctl;
	char **bus_policies;
	const char *logind_template;
	char **command;
} Options;

static Testbed T = {.ctl_fd = -EBADF};
static Options O = {.keys = 1};
static GMainLoop *loop;
static GPid command_pid;
static int command_status = -1;
static GPid bus_pid, mock_pid;
static char *bus_address, *bus_dir, *logind_log;

static void usage(FILE *f)
{
	fputs("usage: keyward-testbed [--keys N] [--pin PIN] [--aaguid UUID] [--state DIR]\n"
	      "                       [--touch auto|never|deny] [--touch-delay MS] [--bus]\n"
	      "                       [--bus-policy FILE.conf]... [--ctl SOCKET] -- CMD [ARGS...]\n"
	      "       keyward-testbed ctl SOCKET|- unplug KEY | plug KEY | plug-new [AAGUID] |\n"
	      "                       touch-mode KEY auto|never|deny [DELAY_MS] |\n"
	      "                       counter-mode KEY normal|zero|rewound | list\n"
	      "See docs/testbed.md.\n",
	        f);
}

static bool preload_has_umockdev(const char *v)
{
	return v && strstr(v, "libumockdev-preload.so");
}

static char *ld_preload_with_umockdev(const char *v)
{
	if (preload_has_umockdev(v))
		return g_strdup(v);
	if (isempty(v))
		return g_strdup(PRELOAD_LIB);
	return g_strconcat(v, ":", PRELOAD_LIB, NULL);
}

/* LD_PRELOAD without umockdev's library, for the bus daemons. */
static char *ld_preload_without_umockdev(const char *v)
{
	g_auto(GStrv) parts = NULL;
	g_autoptr(GString) s = g_string_new(NULL);

	if (isempty(v))
		return NULL;
	parts = g_strsplit_set(v, ": ", -1);
	for (char **p = parts; *p; p++) {
		if (!**p || strstr(*p, "libumockdev-preload.so"))
			continue;
		g_string_append_printf(s, "%s%s", s->len ? ":" : "", *p);
	}
	return s->len ? g_strdup(s->str) : NULL;
}

/* The owner of the testbed must itself run with umockdev's preload (uevents). */
/* In a sanitizer build the preload comes before the ASan runtime: tell ASan that is fine.
 * NULL when OPTS already says something about it. */
static char *asan_options_with_link_order(const char *opts)
{
	if (opts && strstr(opts, "verify_asan_link_order"))
		return NULL;
	return g_strconcat(
	        strempty(opts), isempty(opts) ? "" : ":", "verify_asan_link_order=0", NULL);
}

static void reexec_with_preload(char *argv[])
{
	g_autofree char *v = NULL, *asan = NULL;

	if (preload_has_umockdev(getenv("LD_PRELOAD"))) {
		unsetenv(REEXEC_GUARD);
		return;
	}
	if (getenv(REEXEC_GUARD)) {
		fprintf(stderr, "keyward-testbed: %s did not load; is umockdev installed?\n",
		        PRELOAD_LIB);
		exit(EXIT_FAILURE);
	}
	v = ld_preload_with_umockdev(getenv("LD_PRELOAD"));
	setenv("LD_PRELOAD", v, 1);
	setenv(REEXEC_GUARD, "1", 1);
	asan = asan_options_with_link_order(getenv("ASAN_OPTIONS"));
	if (asan)
		setenv("ASAN_OPTIONS", asan, 1);
	execv("/proc/self/exe", argv);
	fprintf(stderr, "keyward-testbed: cannot re-execute itself with %s: %m\n", PRELOAD_LIB);
	exit(EXIT_FAILURE);
}

static int parse_args(int argc, char *argv[])
{
	enum {
		ARG_PIN = 0x100,
		ARG_AAGUID,
		ARG_STATE,
		ARG_TOUCH,
		ARG_TOUCH_DELAY,
		ARG_BUS,
		ARG_CTL,
		ARG_BUS_POLICY,
		ARG_LOGIND_TEMPLATE,
		ARG_KEYS
	};
	static const struct option options[] = {
	        {"help", no_argument, NULL, 'h'},
	        {"keys", required_argument, NULL, ARG_KEYS},
	        {"pin", required_argument, NULL, ARG_PIN},
	        {"aaguid", required_argument, NULL, ARG_AAGUID},
	        {"state", required_argument, NULL, ARG_STATE},
	        {"touch", required_argument, NULL, ARG_TOUCH},
	        {"touch-delay", required_argument, NULL, ARG_TOUCH_DELAY},
	        {"bus", no_argument, NULL, ARG_BUS},
	        {"bus-policy", required_argument, NULL, ARG_BUS_POLICY},
	        {"logind-template", required_argument, NULL, ARG_LOGIND_TEMPLATE},
	        {"ctl", required_argument, NULL, ARG_CTL},
	        {},
	};
	guint64 v;
	int c;

	T.touch = VIRTKEY_TOUCH_AUTO;
	T.touch_delay_ms = 5;
	memcpy(T.aaguid, default_aaguid, 16);
	O.logind_template = KEYWARD_TESTBED_LOGIND_TEMPLATE;

	while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			usage(stdout);
			exit(EXIT_SUCCESS);
		case ARG_KEYS:
			if (!g_ascii_string_to_unsigned(
			            optarg, 10, 0, TESTBED_MAX_KEYS, &v, NULL)) {
				fprintf(stderr, "keyward-testbed: --keys takes 0..%d\n",
				        TESTBED_MAX_KEYS);
				return -EINVAL;
			}
			O.keys = (unsigned)v;
			break;
		case ARG_PIN:
			if (strlen(optarg) < 4 || strlen(optarg) > 63) {
				fprintf(stderr, "keyward-testbed: --pin must have 4..63 bytes\n");
				return -EINVAL;
			}
			O.pin = optarg;
			break;
		case ARG_AAGUID:
			if (parse_aaguid(optarg, T.aaguid) < 0) {
				fprintf(stderr, "keyward-testbed: invalid --aaguid '%s'\n", optarg);
				return -EINVAL;
			}
			break;
		case ARG_STATE:
			O.state = optarg;
			break;
		case ARG_TOUCH:
			T.touch = virtkey_touch_from_string(optarg);
			if (T.touch < 0) {
				fprintf(stderr,
				        "keyward-testbed: --touch takes auto, never or deny\n");
				return -EINVAL;
			}
			break;
		case ARG_TOUCH_DELAY:
			if (!g_ascii_string_to_unsigned(optarg, 10, 0, 600000, &v, NULL)) {
				fprintf(stderr,
				        "keyward-testbed: --touch-delay takes 0..600000 (ms)\n");
				return -EINVAL;
			}
			T.touch_delay_ms = (uint32_t)v;
			break;
		case ARG_BUS:
			O.bus = true;
			break;
		case ARG_BUS_POLICY:
			if (!g_str_has_suffix(optarg, ".conf")) {
				fprintf(stderr,
				        "keyward-testbed: --bus-policy %s: dbus-daemon only "
				        "includes *.conf\n",
				        optarg);
				return -EINVAL;
			}
			if (strv_extend(&O.bus_policies, optarg) < 0)
				return -ENOMEM;
			break;
		case ARG_LOGIND_TEMPLATE:
			O.logind_template = optarg;
			break;
		case ARG_CTL:
			O.ctl = optarg;
			break;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "keyward-testbed: no command given\n");
		usage(stderr);
		return -EINVAL;
	}
	if (O.bus_policies && !O.bus) {
		fprintf(stderr, "keyward-testbed: --bus-policy needs --bus\n");
		return -EINVAL;
	}
	O.command = argv + optind;
	T.initial_pin = O.pin;
	return 0;
}

static void child_setup_die_with_parent(gpointer data)
{
	(void)prctl(PR_SET_PDEATHSIG, GPOINTER_TO_INT(data));
}

static char **bus_child_env(void)
{
	char **env = g_get_environ();
	g_autofree char *pre = ld_preload_without_umockdev(g_environ_getenv(env, "LD_PRELOAD"));

	env = g_environ_unsetenv(env, "UMOCKDEV_DIR");
	env = pre ? g_environ_setenv(env, "LD_PRELOAD", pre, TRUE)
	          : g_environ_unsetenv(env, "LD_PRELOAD");
	if (bus_address)
		env = g_environ_setenv(env, "DBUS_SYSTEM_BUS_ADDRESS", bus_address, TRUE);
	return env;
}

static int write_bus_config(const char *conf, const char *sock, const char *policydir)
{
	g_autofree char *text = NULL;
	g_autoptr(GError) err = NULL;

	text = g_strdup_printf(
	        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration "
	        "1.0//EN\"\n"
	        " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
	        "<!-- keyward-testbed private system bus: the default policy of Debian's "
	        "system.conf,\n"
	        "     a policy for the mocked logind, and the policies given with bus-policy "
	        "options -->\n"
	        "<busconfig>\n"
	        "  <type>system</type>\n"
	        "  <auth>EXTERNAL</auth>\n"
	        "  <listen>unix:path=%s</listen>\n"
	        "  <policy context=\"default\">\n"
	        "    <allow user=\"*\"/>\n"
	        "    <deny own=\"*\"/>\n"
	        "    <deny send_type=\"method_call\"/>\n"
	        "    <allow send_type=\"signal\"/>\n"
	        "    <allow send_requested_reply=\"true\" send_type=\"method_return\"/>\n"
	        "    <allow send_requested_reply=\"true\" send_type=\"error\"/>\n"
	        "    <allow receive_type=\"method_call\"/>\n"
	        "    <allow receive_type=\"method_return\"/>\n"
	        "    <allow receive_type=\"error\"/>\n"
	        "    <allow receive_type=\"signal\"/>\n"
	        "    <allow send_destination=\"org.freedesktop.DBus\" "
	        "send_interface=\"org.freedesktop.DBus\"/>\n"
	        "    <allow send_destination=\"org.freedesktop.DBus\" "
	        "send_interface=\"org.freedesktop.DBus.Introspectable\"/>\n"
	        "    <allow send_destination=\"org.freedesktop.DBus\" "
	        "send_interface=\"org.freedesktop.DBus.Properties\"/>\n"
	        "    <deny send_destination=\"org.freedesktop.DBus\" "
	        "send_interface=\"org.freedesktop.DBus\" "
	        "send_member=\"UpdateActivationEnvironment\"/>\n"
	        "  </policy>\n"
	        "  <policy user=\"root\">\n"
	        "    <allow send_destination=\"org.freedesktop.DBus\" "
	        "send_interface=\"org.freedesktop.DBus.Monitoring\"/>\n"
	        "  </policy>\n"
	        "  <!-- the mocked logind (python-dbusmock, run as the testbed's user) -->\n"
	        "  <policy user=\"%s\">\n"
	        "    <allow own=\"org.freedesktop.login1\"/>\n"
	        "  </policy>\n"
	        "  <policy context=\"default\">\n"
	        "    <allow send_destination=\"org.freedesktop.login1\"/>\n"
	        "  </policy>\n"
	        "  <includedir>%s</includedir>\n"
	        "</busconfig>\n",
	        sock, g_get_user_name(), policydir);
	if (!g_file_set_contents(conf, text, -1, &err)) {
		fprintf(stderr, "keyward-testbed: cannot write %s: %s\n", conf, err->message);
		return -EIO;
	}
	return 0;
}

static void print_file(const char *path)
{
	g_autofree char *s = NULL;

	if (g_file_get_contents(path, &s, NULL, NULL))
		fputs(s, stderr);
}

static bool pid_alive(GPid pid, int *ret_status)
{
	int st;
	pid_t r = waitpid(pid, &st, WNOHANG);

	if (r == pid) {
		if (ret_status)
			*ret_status = st;
		return false;
	}
	return r == 0;
}

static int start_bus(void)
{
	g_autofree char *conf = NULL, *sock = NULL, *policydir = NULL, *config_arg = NULL,
	                *address_arg = NULL;
	g_autoptr(GError) err = NULL;
	g_auto(GStrv) env = NULL;
	g_autofree char *bus_log = NULL, *mock_log = NULL;
	g_autoptr(GDBusConnection) conn = NULL;
	_cleanup_close_ int log_fd = -EBADF;
	char line[512];
	size_t len = 0;
	int out_fd = -EBADF, r;
	uint64_t deadline;

	bus_dir = g_build_filename(T.tmpdir, "bus", NULL);
	policydir = g_build_filename(bus_dir, "policy.d", NULL);
	if (g_mkdir_with_parents(policydir, 0755) < 0) {
		r = -errno;
		fprintf(stderr, "keyward-testbed: cannot create %s: %m\n", policydir);
		return r;
	}
	for (char **p = O.bus_policies; p && *p; p++) {
		g_autofree char *contents = NULL, *base = g_path_get_basename(*p), *dest = NULL;
		gsize n;

		if (!g_file_get_contents(*p, &contents, &n, &err)) {
			fprintf(stderr, "keyward-testbed: cannot read bus policy %s: %s\n", *p,
			        err->message);
			return -ENOENT;
		}
		dest = g_build_filename(policydir, base, NULL);
		if (!g_file_set_contents(dest, contents, (gssize)n, &err)) {
			fprintf(stderr, "keyward-testbed: cannot copy bus policy to %s: %s\n", dest,
			        err->message);
			return -EIO;
		}
	}
	conf = g_build_filename(bus_dir, "system-bus.conf", NULL);
	sock = g_build_filename(bus_dir, "system_bus_socket", NULL);
	r = write_bus_config(conf, sock, policydir);
	if (r < 0)
		return r;

	config_arg = g_strconcat("--config-file=", conf, NULL);
	address_arg = g_strconcat("--address=unix:path=", sock, NULL);
	{
		char *argv[] = {"dbus-daemon", config_arg, address_arg, "--nofork", "--nopidfile",
		        "--print-address=1", NULL};

		env = bus_child_env();
		/* dbus-daemon complains about fd limits it may not raise: keep that in its log */
		bus_log = g_build_filename(bus_dir, "dbus-daemon.log", NULL);
		log_fd = open(bus_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (log_fd < 0) {
			r = -errno;
			fprintf(stderr, "keyward-testbed: cannot create %s: %m\n", bus_log);
			return r;
		}
		if (!g_spawn_async_with_pipes_and_fds(bus_dir, (const char *const *)argv,
		            (const char *const *)env,
		            G_SPAWN_SEARCH_PATH_FROM_ENVP | G_SPAWN_DO_NOT_REAP_CHILD,
		            child_setup_die_with_parent, GINT_TO_POINTER(SIGTERM), -1, -1, log_fd,
		            NULL, NULL, 0, &bus_pid, NULL, &out_fd, NULL, &err)) {
			fprintf(stderr, "keyward-testbed: cannot start dbus-daemon: %s\n",
			        err->message);
			return -ENOENT;
		}
	}
	/* Ready when it prints its address. */
	deadline = now_monotonic_ms() + BUS_READY_TIMEOUT_MS;
	while (!memchr(line, '\n', len)) {
		struct pollfd p = {.fd = out_fd, .events = POLLIN};
		uint64_t now = now_monotonic_ms();
		ssize_t n;

		if (now >= deadline || len >= sizeof(line) - 1 ||
		        poll(&p, 1, (int)(deadline - now)) <= 0)
			break;
		n = read(out_fd, line + len, sizeof(line) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(out_fd);
	line[len] = 0;
	if (!strchr(line, '\n')) {
		fprintf(stderr, "keyward-testbed: dbus-daemon did not start (config %s):\n", conf);
		print_file(bus_log);
		return -ETIMEDOUT;
	}
	*strchr(line, '\n') = 0;
	bus_address = g_strdup(line);

	logind_log = g_build_filename(bus_dir, "logind.log", NULL);
	{
		char *argv[] = {"/usr/bin/python3", "-m", "dbusmock", "--system", "-t",
		        (char *)O.logind_template, "-l", logind_log, NULL};

		if (!g_file_test(O.logind_template, G_FILE_TEST_IS_REGULAR)) {
			fprintf(stderr, "keyward-testbed: logind template %s not found\n",
			        O.logind_template);
			return -ENOENT;
		}
		g_strfreev(env);
		env = bus_child_env();
		mock_log = g_build_filename(bus_dir, "dbusmock.log", NULL);
		close(log_fd);
		log_fd = open(mock_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (log_fd < 0) {
			r = -errno;
			fprintf(stderr, "keyward-testbed: cannot create %s: %m\n", mock_log);
			return r;
		}
		if (!g_spawn_async_with_pipes_and_fds(bus_dir, (const char *const *)argv,
		            (const char *const *)env, G_SPAWN_DO_NOT_REAP_CHILD,
		            child_setup_die_with_parent, GINT_TO_POINTER(SIGTERM), -1, log_fd,
		            log_fd, NULL, NULL, 0, &mock_pid, NULL, NULL, NULL, &err)) {
			fprintf(stderr, "keyward-testbed: cannot start python-dbusmock: %s\n",
			        err->message);
			return -ENOENT;
		}
	}

	conn = g_dbus_connection_new_for_address_sync(bus_address,
	        G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
	                G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
	        NULL, NULL, &err);
	if (!conn) {
		fprintf(stderr, "keyward-testbed: cannot connect to the private bus: %s\n",
		        err->message);
		return -ECONNREFUSED;
	}
	for (;;) {
		g_autoptr(GVariant) reply = NULL;
		gboolean has = FALSE;
		int st = 0;

		reply = g_dbus_connection_call_sync(conn, "org.freedesktop.DBus",
		        "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner",
		        g_variant_new("(s)", "org.freedesktop.login1"), G_VARIANT_TYPE("(b)"),
		        G_DBUS_CALL_FLAGS_NONE, 1000, NULL, NULL);
		if (reply)
			g_variant_get(reply, "(b)", &has);
		if (has)
			break;
		if (!pid_alive(mock_pid, &st)) {
			mock_pid = 0;
			fprintf(stderr,
			        "keyward-testbed: python-dbusmock (logind) exited early (status "
			        "%d):\n",
			        st);
			print_file(mock_log);
			return -ESRCH;
		}
		if (now_monotonic_ms() >= deadline) {
			fprintf(stderr,
			        "keyward-testbed: logind mock not on the bus after %d ms:\n",
			        BUS_READY_TIMEOUT_MS);
			print_file(mock_log);
			return -ETIMEDOUT;
		}
		g_usleep(5000);
	}
	(void)g_dbus_connection_close_sync(conn, NULL, NULL);
	return 0;
}

static void stop_pid(GPid *pid)
{
	uint64_t deadline;

	if (*pid <= 0)
		return;
	(void)kill(*pid, SIGTERM);
	deadline = now_monotonic_ms() + CHILD_KILL_GRACE_MS;
	while (pid_alive(*pid, NULL)) {
		if (now_monotonic_ms() >= deadline) {
			(void)kill(*pid, SIGKILL);
			(void)waitpid(*pid, NULL, 0);
			break;
		}
		g_usleep(2000);
	}
	*pid = 0;
}

/* Orphans of the command were re-parented to us (child subreaper): end them. */
static void reap_orphans(void)
{
	uint64_t deadline = now_monotonic_ms() + CHILD_KILL_GRACE_MS;
	bool killed = false;

	for (;;) {
		g_autoptr(GDir) d = g_dir_open("/proc/self/task", 0, NULL);
		const char *tid;
		bool any = false;

		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		for (tid = d ? g_dir_read_name(d) : NULL; tid; tid = g_dir_read_name(d)) {
			g_autofree char *path = g_strdup_printf("/proc/self/task/%s/children", tid),
			                *s = NULL;
			g_auto(GStrv) pids = NULL;

			if (!g_file_get_contents(path, &s, NULL, NULL))
				continue;
			pids = g_strsplit_set(g_strstrip(s), " ", -1);
			for (char **p = pids; *p; p++) {
				guint64 pid;

				if (!g_ascii_string_to_unsigned(*p, 10, 1, INT32_MAX, &pid, NULL))
					continue;
				any = true;
				(void)kill((pid_t)pid,
				        now_monotonic_ms() >= deadline ? SIGKILL : SIGTERM);
			}
		}
		if (!any)
			return;
		if (killed && now_monotonic_ms() >= deadline + 1000)
			return;
		killed = true;
		g_usleep(10000);
	}
}

static int rm_rf(const char *path)
{
	g_autoptr(GDir) d = NULL;
	const char *name;
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(st.st_mode)) {
		d = g_dir_open(path, 0, NULL);
		while (d && (name = g_dir_read_name(d))) {
			g_autofree char *p = g_build_filename(path, name, NULL);

			(void)rm_rf(p);
		}
		return rmdir(path) < 0 ? -errno : 0;
	}
	return unlink(path) < 0 ? -errno : 0;
}

/* Start time of PID (clock ticks since boot, /proc/PID/stat field 22), 0 if gone. */
static unsigned long long process_start_time(pid_t pid)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid), *s = NULL;
	unsigned long long t = 0;
	const char *p;

	if (!g_file_get_contents(path, &s, NULL, NULL))
		return 0;
	p = strrchr(s, ')'); /* the command name may contain spaces */
	if (!p || sscanf(p + 1,
	                  " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
	                  "%*d %*d %llu",
	                  &t) != 1)
		return 0;
	return t;
}

/* Records who owns our temporary directories, so that a later testbed can remove them
 * should this one be killed with SIGKILL (no clean-up possible then). */
static void write_owner_file(void)
{
	g_autofree char *path = g_build_filename(T.tmpdir, "owner", NULL), *root = NULL,
	                *text = NULL;

	root = umockdev_testbed_get_root_dir(T.tb);
	text = g_strdup_printf("%d %llu %s\n", (int)getpid(), process_start_time(getpid()), root);
	(void)g_file_set_contents(path, text, -1, NULL);
}

/* Removes keyward-testbed.* temporary directories (and their umockdev directories) of
 * testbeds of our user that died without cleaning up. */
static void sweep_stale_dirs(void)
{
	const char *tmp = g_get_tmp_dir(), *name;
	g_autoptr(GDir) d = g_dir_open(tmp, 0, NULL);

	while (d && (name = g_dir_read_name(d))) {
		g_autofree char *dir = NULL, *owner = NULL, *text = NULL, *umockdev = NULL;
		unsigned long long start;
		struct stat st;
		int pid;

		if (!g_str_has_prefix(name, "keyward-testbed."))
			continue;
		dir = g_build_filename(tmp, name, NULL);
		if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
			continue;
		owner = g_build_filename(dir, "owner", NULL);
		if (!g_file_get_contents(owner, &text, NULL, NULL))
			continue; /* being set up, or from an older testbed: leave it */
		umockdev = g_malloc0(strlen(text) + 1);
		if (sscanf(text, "%d %llu %s", &pid, &start, umockdev) != 3 || pid <= 0)
			continue;
		if (start != 0 && process_start_time(pid) == start)
			continue; /* still running */
		if (g_str_has_prefix(umockdev, tmp) && strstr(umockdev, "/umockdev.") &&
		        !strstr(umockdev, ".."))
			(void)rm_rf(umockdev);
		(void)rm_rf(dir);
	}
}

static void on_command_exit(GPid pid, gint status, gpointer userdata)
{
	command_status = status;
	g_spawn_close_pid(pid);
	command_pid = 0;
	g_main_loop_quit(loop);
}

static gboolean on_signal(gpointer userdata)
{
	int sig = GPOINTER_TO_INT(userdata);

	if (command_pid > 0)
		(void)kill(command_pid, sig);
	else
		g_main_loop_quit(loop);
	return G_SOURCE_CONTINUE;
}

static char **command_env(void)
{
	char **env = g_get_environ();
	g_autofree char *pre = ld_preload_with_umockdev(g_environ_getenv(env, "LD_PRELOAD"));
	g_autofree char *asan = asan_options_with_link_order(g_environ_getenv(env, "ASAN_OPTIONS"));
	g_autofree char *root = umockdev_testbed_get_root_dir(T.tb);

	env = g_environ_setenv(env, "LD_PRELOAD", pre, TRUE);
	env = g_environ_setenv(env, "UMOCKDEV_DIR", root, TRUE);
	env = g_environ_setenv(env, "KEYWARD_TESTBED_CTL", T.ctl_path, TRUE);
	env = g_environ_setenv(env, "KEYWARD_TESTBED_STATE", T.state_dir, TRUE);
	env = g_environ_setenv(env, "KEYWARD_TESTBED_CA", T.ca_path, TRUE);
	if (asan)
		env = g_environ_setenv(env, "ASAN_OPTIONS", asan, TRUE);
	if (bus_address) {
		env = g_environ_setenv(env, "DBUS_SYSTEM_BUS_ADDRESS", bus_address, TRUE);
		env = g_environ_setenv(env, "KEYWARD_TESTBED_LOGIND_LOG", logind_log, TRUE);
	}
	return env;
}

static int setup(void)
{
	g_autoptr(GError) err = NULL;
	int r;

	sweep_stale_dirs();
	T.tmpdir = g_dir_make_tmp("keyward-testbed.XXXXXX", &err);
	if (!T.tmpdir) {
		fprintf(stderr, "keyward-testbed: cannot create a temporary directory: %s\n",
		        err->message);
		return -EIO;
	}
	if (O.state) {
		T.state_dir = g_canonicalize_filename(O.state, NULL);
		if (g_mkdir_with_parents(T.state_dir, 0700) < 0) {
			r = -errno;
			fprintf(stderr, "keyward-testbed: cannot create state directory %s: %m\n",
			        T.state_dir);
			return r;
		}
	} else {
		T.state_dir = g_build_filename(T.tmpdir, "state", NULL);
		if (mkdir(T.state_dir, 0700) < 0) {
			r = -errno;
			fprintf(stderr, "keyward-testbed: cannot create %s: %s\n", T.state_dir,
			        strerror(-r));
			return r;
		}
	}
	T.ca_path = g_build_filename(T.state_dir, "ca.pem", NULL);
	T.ctl_path = O.ctl ? g_canonicalize_filename(O.ctl, NULL)
	                   : g_build_filename(T.tmpdir, "ctl.sock", NULL);

	T.tb = umockdev_testbed_new();
	if (!T.tb) {
		fprintf(stderr, "keyward-testbed: cannot create the umockdev testbed\n");
		return -EIO;
	}
	r = testbed_worker_grab(&T);
	if (r < 0)
		return r;
	write_owner_file();
	for (unsigned i = 0; i < O.keys; i++) {
		TestbedKey *k;

		r = testbed_key_add(&T, T.aaguid, &k);
		if (r < 0) {
			fprintf(stderr,
			        "keyward-testbed: cannot create emulated key %u (state %s): %s\n",
			        i, T.state_dir, strerror(-r));
			return r;
		}
		r = testbed_key_plug(&T, k);
		if (r < 0)
			return r;
	}
	if (O.keys == 0) {
		/* still provide the CA for tests that plug keys in later */
		r = virtkey_attestation_ensure(T.state_dir, T.aaguid);
		if (r < 0) {
			fprintf(stderr,
			        "keyward-testbed: cannot create the attestation CA in %s: %s\n",
			        T.state_dir, strerror(-r));
			return r;
		}
	}
	r = testbed_ctl_start(&T);
	if (r < 0) {
		fprintf(stderr, "keyward-testbed: cannot listen on %s: %s\n", T.ctl_path,
		        strerror(-r));
		return r;
	}
	if (O.bus) {
		r = start_bus();
		if (r < 0)
			return r;
	}
	return 0;
}

static void teardown(void)
{
	/* never hang here: a stuck teardown ends by SIGALRM (default action) */
	(void)signal(SIGALRM, SIG_DFL);
	(void)alarm(3 * CHILD_KILL_GRACE_MS / 1000);

	testbed_ctl_stop(&T);
	stop_pid(&mock_pid);
	stop_pid(&bus_pid);
	reap_orphans();
	if (T.tmpdir)
		(void)rm_rf(T.tmpdir);
	/* No client is left (reap_orphans). Finalize the umockdev testbed and join its worker
	 * thread, which runs the keys' HID handlers: only then may the keys (OpenSSL and
	 * libcbor objects) go, and only then may main() return to the exit handlers
	 * (OpenSSL's atexit clean-up must not race the worker's thread-exit clean-up). */
	testbed_worker_join(&T);
	for (unsigned i = 0; i < T.n_keys; i++)
		testbed_key_free(T.keys[i]);
	g_free(T.tmpdir);
	g_free(T.state_dir);
	g_free(T.ca_path);
	g_free(T.ctl_path);
	g_free(bus_address);
	g_free(bus_dir);
	g_free(logind_log);
	strv_free(O.bus_policies);
}

int main(int argc, char *argv[])
{
	g_autoptr(GError) err = NULL;
	g_auto(GStrv) env = NULL;
	int r, ret = EXIT_FAILURE;

	if (argc >= 2 && streq(argv[1], "ctl"))
		return testbed_ctl_client(argc - 2, argv + 2);

	if (parse_args(argc, argv) < 0)
		return 2;
	reexec_with_preload(argv);

	(void)prctl(PR_SET_CHILD_SUBREAPER, 1);
	loop = g_main_loop_new(NULL, FALSE);
	g_unix_signal_add(SIGTERM, on_signal, GINT_TO_POINTER(SIGTERM));
	g_unix_signal_add(SIGINT, on_signal, GINT_TO_POINTER(SIGINT));
	g_unix_signal_add(SIGHUP, on_signal, GINT_TO_POINTER(SIGHUP));

	r = setup();
	if (r < 0)
		goto out;

	env = command_env();
	if (!g_spawn_async(NULL, O.command, env,
	            G_SPAWN_SEARCH_PATH_FROM_ENVP | G_SPAWN_DO_NOT_REAP_CHILD |
	                    G_SPAWN_CHILD_INHERITS_STDIN,
	            child_setup_die_with_parent, GINT_TO_POINTER(SIGTERM), &command_pid, &err)) {
		fprintf(stderr, "keyward-testbed: cannot run %s: %s\n", O.command[0], err->message);
		ret = 127;
		goto out;
	}
	g_child_watch_add(command_pid, on_command_exit, NULL);
	g_main_loop_run(loop);

	if (command_pid > 0) {
		/* quit by a signal before the command ended */
		stop_pid(&command_pid);
		ret = 128 + SIGTERM;
	} else if (WIFEXITED(command_status))
		ret = WEXITSTATUS(command_status);
	else if (WIFSIGNALED(command_status))
		ret = 128 + WTERMSIG(command_status);
out:
	teardown();
	g_clear_pointer(&loop, g_main_loop_unref);
	return ret;
}
