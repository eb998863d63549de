/* keyward-locked-hint.c: runs a screen locker and tells logind while it runs that the
 * session is locked (Session.SetLockedHint), for lockers that lock on logind's Lock
 * signal but never report it (i3lock under xss-lock). keywardd verifies a lock by
 * LockedHint; without this, such a lock cannot be told from no lock at all.
 *   xss-lock -- keyward-locked-hint i3lock -n */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-login.h>

#define LOGIND_NAME      "org.freedesktop.login1"
#define BUS_TIMEOUT_USEC (5 * 1000 * 1000ULL)

static volatile sig_atomic_t forwarded_signal;

static void on_signal(int sig)
{
	forwarded_signal = sig;
}

static int set_locked_hint(sd_bus *bus, const char *path, int locked)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL, *reply = NULL;
	int r;

	r = sd_bus_message_new_method_call(
	        bus, &m, LOGIND_NAME, path, "org.freedesktop.login1.Session", "SetLockedHint");
	if (r >= 0)
		r = sd_bus_message_append(m, "b", locked);
	if (r >= 0)
		r = sd_bus_call(bus, m, BUS_TIMEOUT_USEC, &error, &reply);
	if (r < 0)
		fprintf(stderr, "keyward-locked-hint: cannot set LockedHint=%s on %s: %s\n",
		        locked ? "yes" : "no", path, error.message ? error.message : strerror(-r));
	sd_bus_error_free(&error);
	sd_bus_message_unref(reply);
	sd_bus_message_unref(m);
	return r;
}

/* The object path of the logind session this process runs in. */
static int session_path(sd_bus *bus, char **ret)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	char *session = NULL;
	const char *path;
	int r;

	r = sd_pid_get_session(0, &session);
	if (r < 0) {
		fprintf(stderr, "keyward-locked-hint: not in a logind session: %s\n", strerror(-r));
		return r;
	}
	r = sd_bus_call_method(bus, LOGIND_NAME, "/org/freedesktop/login1",
	        "org.freedesktop.login1.Manager", "GetSession", &error, &reply, "s", session);
	if (r >= 0)
		r = sd_bus_message_read(reply, "o", &path);
	if (r >= 0) {
		*ret = strdup(path);
		if (!*ret)
			r = -ENOMEM;
	}
	if (r < 0)
		fprintf(stderr, "keyward-locked-hint: cannot find session %s: %s\n", session,
		        error.message ? error.message : strerror(-r));
	free(session);
	sd_bus_error_free(&error);
	sd_bus_message_unref(reply);
	return r;
}

int main(int argc, char *argv[])
{
	struct sigaction sa = {.sa_handler = on_signal};
	sd_bus *bus = NULL;
	char *path = NULL;
	int status = 0, r;
	pid_t child;

	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr,
		        "Usage: keyward-locked-hint LOCKER [ARGS...]\n"
		        "Runs LOCKER (which must stay in the foreground until unlocked, e.g. "
		        "i3lock -n)\nand sets logind's LockedHint of this session while it "
		        "runs.\n");
		return 2;
	}
	r = sd_bus_open_system(&bus);
	if (r < 0) {
		fprintf(stderr, "keyward-locked-hint: cannot connect to the system bus: %s\n",
		        strerror(-r));
		return 1;
	}
	if (session_path(bus, &path) < 0) {
		sd_bus_flush_close_unref(bus);
		return 1;
	}
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGHUP, &sa, NULL);
	child = fork();
	if (child < 0) {
		perror("keyward-locked-hint: fork");
		return 1;
	}
	if (child == 0) {
		execvp(argv[1], argv + 1);
		fprintf(stderr, "keyward-locked-hint: cannot run %s: %s\n", argv[1],
		        strerror(errno));
		_exit(127);
	}
	/* The locker is up: from now on the session counts as locked until it exits. */
	(void)set_locked_hint(bus, path, 1);
	for (;;) {
		pid_t w = waitpid(child, &status, 0);

		if (w == child)
			break;
		if (w < 0 && errno != EINTR) {
			perror("keyward-locked-hint: waitpid");
			break;
		}
		if (forwarded_signal) {
			(void)kill(child, forwarded_signal);
			forwarded_signal = 0;
		}
	}
	(void)set_locked_hint(bus, path, 0);
	free(path);
	sd_bus_flush_close_unref(bus);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
