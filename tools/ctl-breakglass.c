/* ctl-breakglass.c: keywardctl breakglass issue / list / revoke / approve — break-glass
 * recovery through keywardd: codes are made and hashed by the daemon and shown here once;
 * an approval is given with a touch of the caller's own key. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "bus-names.h"
#include "ctl.h"
#include "util.h"

#define CTL_BREAKGLASS_TIMEOUT_USEC (180ULL * 1000 * 1000)

static void format_usec(uint64_t usec, char buf[static 32])
{
	if (format_rfc3339_ms(usec / 1000, buf, 32) < 0)
		snprintf(buf, 32, "%" PRIu64, usec);
}

static int usage(int code)
{
	fprintf(code == CTL_EXIT_OK ? stdout : stderr,
	        "Usage: keywardctl breakglass issue USER [--force]\n"
	        "       keywardctl breakglass list [USER]\n"
	        "       keywardctl breakglass revoke USER\n"
	        "       keywardctl breakglass approve USER [--pin-stdin]\n"
	        "Break-glass recovery for a covered user who lost their security key (see\n"
	        "keywardctl(8) and docs/breakglass.md). issue prints a new set of single-use\n"
	        "codes once (only to a terminal unless --force); approve lets USER in once,\n"
	        "proved by a touch of your own registered key (two_person in the policy).\n");
	return code;
}

/* "USER [--FLAG]" (FLAG: "force" or "pin-stdin"): -1 when parsed (*ret_user set), else
 * the exit code (help or usage). */
static int parse_user_flag(
        int argc, char *argv[], const char *flag, const char **ret_user, bool *ret_flag)
{
	static const struct option options[] = {{"force", no_argument, NULL, 'f'},
	        {"pin-stdin", no_argument, NULL, 'p'}, {"help", no_argument, NULL, 'h'}, {}};
	int c, index = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", options, &index)) >= 0) {
		if (c == 'h')
			return usage(CTL_EXIT_OK);
		if ((c == 'f' || c == 'p') && streq(options[index].name, flag))
			*ret_flag = true;
		else
			return usage(CTL_EXIT_USAGE);
	}
	if (optind != argc - 1)
		return usage(CTL_EXIT_USAGE);
	*ret_user = argv[optind];
	return -1;
}

static int bg_issue(int argc, char *argv[])
{
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	_cleanup_strv_free_ char **codes = NULL;
	sd_bus_error error = SD_BUS_ERROR_NULL;
	const char *user = NULL;
	bool force = false;
	uint64_t until = 0;
	char when[32];
	size_t n;
	int r;

	r = parse_user_flag(argc, argv, "force", &user, &force);
	if (r >= 0)
		return r;
	/* The codes are secrets shown once: not into a pipe, file or log by accident. */
	if (!force && !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "keywardctl: breakglass issue prints the recovery codes only to a "
		                "terminal; use --force to write them elsewhere.\n");
		return CTL_EXIT_USAGE;
	}
	if (bus_connect(&bus) < 0)
		return CTL_EXIT_ERROR;
	r = sd_bus_call_method(bus, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH, KEYWARD_BUS_INTERFACE,
	        "BreakglassIssue", &error, &reply, "s", user);
	if (r < 0) {
		int code = report_bus_error("breakglass issue", &error, r);
		sd_bus_error_free(&error);
		return code;
	}
	r = sd_bus_message_read_strv(reply, &codes);
	if (r >= 0)
		r = sd_bus_message_read(reply, "t", &until);
	if (r < 0) {
		fprintf(stderr, "keywardctl: breakglass issue: bad reply: %s\n", strerror(-r));
		return CTL_EXIT_ERROR;
	}
	n = strv_length(codes);
	format_usec(until, when);
	printf("Break-glass recovery codes for %s (any earlier set is void now).\n"
	       "Each works once, for a console login, until %s.\n\n",
	        user, when);
	for (size_t i = 0; i < n; i++)
		printf("  %2zu.  %s\n", i + 1, codes[i]);
	printf("\nThey are shown this once and stored only as hashes. Keep them offline: print\n"
	       "them for a sealed envelope in a safe, or put them in a password manager that\n"
	       "%s cannot reach without this machine. Every use is recorded in the audit trail.\n",
	        user);
	for (char **c = codes; c && *c; c++)
		explicit_bzero(*c, strlen(*c));
	return CTL_EXIT_OK;
}

static int bg_list(int argc, char *argv[])
{
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	sd_bus_error error = SD_BUS_ERROR_NULL;
	const char *user = argc > 1 ? argv[1] : "", *id;
	uint64_t issued, expires, now_usec = now_realtime_ms() * 1000;
	unsigned n = 0;
	int used, r;

	if (argc > 2 || (argc == 2 && argv[1][0] == '-'))
		return usage(argc == 2 && (streq(argv[1], "-h") || streq(argv[1], "--help"))
		                     ? CTL_EXIT_OK
		                     : CTL_EXIT_USAGE);
	if (bus_connect(&bus) < 0)
		return CTL_EXIT_ERROR;
	r = sd_bus_call_method(bus, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH, KEYWARD_BUS_INTERFACE,
	        "BreakglassList", &error, &reply, "s", user);
	if (r < 0) {
		int code = report_bus_error("breakglass list", &error, r);
		sd_bus_error_free(&error);
		return code;
	}
	r = sd_bus_message_enter_container(reply, 'a', "(sttb)");
	if (r < 0)
		return CTL_EXIT_ERROR;
	while ((r = sd_bus_message_read(reply, "(sttb)", &id, &issued, &expires, &used)) > 0) {
		char a[32], b[32];

		if (n++ == 0)
			printf("%-*s  %-24s  %-24s  %s\n", *user ? 9 : 30, "ID", "ISSUED",
			        "EXPIRES", "STATE");
		format_usec(issued, a);
		format_usec(expires, b);
		printf("%-*s  %-24s  %-24s  %s\n", *user ? 9 : 30, id, a, b,
		        used                  ? "used"
		        : now_usec >= expires ? "expired"
		                              : "unused");
	}
	if (r < 0)
		return CTL_EXIT_ERROR;
	if (n == 0)
		printf("No break-glass recovery codes%s%s.\n", *user ? " for " : "", user);
	return CTL_EXIT_OK;
}

static int bg_revoke(int argc, char *argv[])
{
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	sd_bus_error error = SD_BUS_ERROR_NULL;
	int r;

	if (argc != 2 || argv[1][0] == '-')
		return usage(CTL_EXIT_USAGE);
	if (bus_connect(&bus) < 0)
		return CTL_EXIT_ERROR;
	r = sd_bus_call_method(bus, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH, KEYWARD_BUS_INTERFACE,
	        "BreakglassRevoke", &error, NULL, "s", argv[1]);
	if (r < 0) {
		int code = report_bus_error("breakglass revoke", &error, r);
		sd_bus_error_free(&error);
		return code;
	}
	if (!ctl_global.quiet)
		printf("The break-glass recovery codes and any approval of %s are void.\n",
		        argv[1]);
	return CTL_EXIT_OK;
}

static int call_approve(
        sd_bus *bus, const char *user, const char *pin, sd_bus_error *error, sd_bus_message **reply)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	r = pin_pipe(pin, &fd);
	if (r < 0)
		return r;
	r = sd_bus_message_new_method_call(bus, &m, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH,
	        KEYWARD_BUS_INTERFACE, "BreakglassApprove");
	if (r >= 0)
		r = sd_bus_message_append(m, "sh", user, fd);
	if (r >= 0)
		r = sd_bus_message_open_container(m, 'a', "{sv}");
	if (r >= 0 && pin)
		r = sd_bus_message_append(m, "{sv}", "pin-asked", "b", 1);
	if (r >= 0)
		r = sd_bus_message_close_container(m);
	if (r < 0)
		return r;
	return sd_bus_call(bus, m, CTL_BREAKGLASS_TIMEOUT_USEC, error, reply);
}

static int bg_approve(int argc, char *argv[])
{
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	_cleanup_erase_ char *pin = NULL;
	sd_bus_error error = SD_BUS_ERROR_NULL;
	const char *user = NULL;
	bool pin_stdin = false;
	uint64_t until = 0;
	char when[32];
	int r;

	r = parse_user_flag(argc, argv, "pin-stdin", &user, &pin_stdin);
	if (r >= 0)
		return r;
	if (pin_stdin && read_pin_stdin(&pin) < 0)
		return CTL_EXIT_ERROR;
	if (bus_connect(&bus) < 0)
		return CTL_EXIT_ERROR;
	if (!ctl_global.quiet)
		fprintf(stderr,
		        "Approving one break-glass login of %s: touch your own security key...\n",
		        user);
	r = call_approve(bus, user, pin, &error, &reply);
	if (r < 0 && sd_bus_error_has_name(&error, KEYWARD_BUS_ERROR_PIN_REQUIRED) && !pin &&
	        !pin_stdin) {
		sd_bus_error_free(&error);
		r = read_pin_tty("Security key PIN: ", &pin);
		if (r < 0)
			return CTL_EXIT_ERROR;
		if (!ctl_global.quiet)
			fprintf(stderr, "Touch your security key now...\n");
		r = call_approve(bus, user, pin, &error, &reply);
	}
	if (r < 0) {
		int code = report_bus_error("breakglass approve", &error, r);
		sd_bus_error_free(&error);
		return code;
	}
	r = sd_bus_message_read(reply, "t", &until);
	if (r < 0) {
		fprintf(stderr, "keywardctl: breakglass approve: bad reply: %s\n", strerror(-r));
		return CTL_EXIT_ERROR;
	}
	format_usec(until, when);
	if (!ctl_global.quiet)
		printf("Approved: %s may log in once without a key (at a console login, pressing "
		       "Enter at the recovery code prompt) until %s.\n",
		        user, when);
	return CTL_EXIT_OK;
}

/* The users with unused, unexpired codes, from BreakglassList(""). */
static void status_unused_codes(sd_bus *bus)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	_cleanup_strv_free_ char **users = NULL;
	uint64_t issued, expires, now_usec = now_realtime_ms() * 1000;
	const char *id;
	int used;

	if (sd_bus_call_method(bus, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH, KEYWARD_BUS_INTERFACE,
	            "BreakglassList", NULL, &reply, "s", "") < 0 ||
	        sd_bus_message_enter_container(reply, 'a', "(sttb)") < 0)
		return;
	while (sd_bus_message_read(reply, "(sttb)", &id, &issued, &expires, &used) > 0) {
		_cleanup_free_ char *user = strndup(id, strcspn(id, "/"));

		if (!user || used || now_usec >= expires || strv_contains(users, user))
			continue;
		if (strv_extend(&users, user) < 0)
			return;
	}
	if (users) {
		printf("break-glass: unused recovery codes for:");
		for (char **u = users; *u; u++)
			printf(" %s", *u);
		printf(" (keywardctl breakglass list)\n");
	}
}

int ctl_breakglass_status(void)
{
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	const char *key, *contents = NULL;
	int n = 0, r;

	r = sd_bus_open_system(&bus);
	if (r >= 0)
		r = sd_bus_call_method(bus, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH,
		        KEYWARD_BUS_INTERFACE, "GetStatus", NULL, &reply, "");
	if (r >= 0)
		r = sd_bus_message_enter_container(reply, 'a', "{sv}");
	if (r < 0)
		return r;
	while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
		char type;

		if (sd_bus_message_read_basic(reply, 's', &key) < 0 ||
		        sd_bus_message_peek_type(reply, &type, &contents) < 0)
			break;
		if (!streq(key, "breakglass_sessions") || !streq(contents, "a(sssst)")) {
			(void)sd_bus_message_skip(reply, "v");
			(void)sd_bus_message_exit_container(reply);
			continue;
		}
		if (sd_bus_message_enter_container(reply, 'v', contents) < 0 ||
		        sd_bus_message_enter_container(reply, 'a', "(sssst)") < 0)
			break;
		for (;;) {
			const char *user, *service, *session, *via;
			uint64_t since;
			char when[32];

			r = sd_bus_message_read(
			        reply, "(sssst)", &user, &service, &session, &via, &since);
			if (r <= 0)
				break;
			if (n++ == 0)
				printf("BREAK-GLASS sessions open without a key (no removal acts "
				       "on "
				       "them):\n");
			format_usec(since, when);
			printf("  %s  %s  %s  %s  since %s\n", user, service, session, via, when);
		}
		break;
	}
	if (n == 0)
		printf("break-glass: no session open without a key\n");
	status_unused_codes(bus);
	return n;
}

int verb_breakglass(int argc, char *argv[])
{
	if (argc < 2)
		return usage(CTL_EXIT_USAGE);
	if (streq(argv[1], "-h") || streq(argv[1], "--help"))
		return usage(CTL_EXIT_OK);
	if (streq(argv[1], "issue"))
		return bg_issue(argc - 1, argv + 1);
	if (streq(argv[1], "list"))
		return bg_list(argc - 1, argv + 1);
	if (streq(argv[1], "revoke"))
		return bg_revoke(argc - 1, argv + 1);
	if (streq(argv[1], "approve"))
		return bg_approve(argc - 1, argv + 1);
	fprintf(stderr, "keywardctl: breakglass: unknown command '%s'\n", argv[1]);
	return usage(CTL_EXIT_USAGE);
}
