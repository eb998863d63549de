/* ctl-creds.c: keywardctl enroll / list / revoke / import-pam-u2f — credential
 * management through keywardd on the system bus (the daemon does the key I/O, checks
 * the policy and writes the files). */
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "bus-names.h"
#include "creds.h"
#include "ctl.h"
#include "util.h"

#define CTL_BUS_TIMEOUT_USEC    (10ULL * 1000 * 1000)
#define CTL_ENROLL_TIMEOUT_USEC (180ULL * 1000 * 1000)
#define PAM_U2F_MAX_FILE        (1024 * 1024)

int ctl_bus_connect(sd_bus **ret)
{
	int r = sd_bus_open_system(ret);

	if (r < 0)
		fprintf(stderr, "keywardctl: cannot connect to the system bus: %s\n", strerror(-r));
	return r;
}

/* Exit code for a failed call; prints the daemon's message. */
int ctl_report_bus_error(const char *what, const sd_bus_error *e, int r)
{
	const char *name = e && e->name ? e->name : NULL;

	fprintf(stderr, "keywardctl: %s: %s\n", what, e && e->message ? e->message : strerror(-r));
	if (name && (streq(name, KEYWARD_BUS_ERROR_ACCESS_DENIED) ||
	                    streq(name, KEYWARD_BUS_ERROR_POLICY_REFUSED) ||
	                    streq(name, KEYWARD_BUS_ERROR_EXISTS) ||
	                    streq(name, KEYWARD_BUS_ERROR_NOT_FOUND) ||
	                    streq(name, KEYWARD_BUS_ERROR_INVALID_ARGS) ||
	                    streq(name, KEYWARD_BUS_ERROR_PIN_REQUIRED)))
		return CTL_EXIT_FAILURE;
	if (name && (streq(name, SD_BUS_ERROR_SERVICE_UNKNOWN) ||
	                    streq(name, SD_BUS_ERROR_NAME_HAS_NO_OWNER)))
		fprintf(stderr, "keywardctl: is keywardd running? (systemctl status keywardd)\n");
	return CTL_EXIT_ERROR;
}

/* Reads a PIN from /dev/tty with echo off (never from the environment or argv). */
int read_pin_tty(const char *prompt, char **ret)
{
	_cleanup_close_ int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	struct termios old, noecho;
	char buf[KEYWARD_MAX_PIN + 2];
	size_t len = 0;
	int r = 0;

	if (fd < 0) {
		fprintf(stderr, "keywardctl: no terminal to ask the PIN on (use --pin-stdin): %s\n",
		        strerror(errno));
		return -errno;
	}
	if (tcgetattr(fd, &old) < 0)
		return -errno;
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	noecho.c_lflag |= ICANON;
	/* Echo off first, then the prompt: what is typed after the prompt is never flushed. */
	if (tcsetattr(fd, TCSAFLUSH, &noecho) < 0)
		return -errno;
	if (write(fd, prompt, strlen(prompt)) < 0) {
		int r2 = -errno;
		(void)tcsetattr(fd, TCSAFLUSH, &old);
		return r2;
	}
	for (;;) {
		char ch;
		ssize_t n = read(fd, &ch, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || ch == '\n')
			break;
		if (len >= sizeof(buf) - 1) {
			r = -EMSGSIZE;
			continue; /* drain the line */
		}
		buf[len++] = ch;
	}
	(void)tcsetattr(fd, TCSAFLUSH, &old);
	(void)!write(fd, "\n", 1);
	buf[len] = '\0';
	if (r == 0) {
		*ret = strdup(buf);
		if (!*ret)
			r = -ENOMEM;
	}
	explicit_bzero(buf, sizeof(buf));
	return r;
}

int read_pin_stdin(char **ret)
{
	char buf[KEYWARD_MAX_PIN + 2];
	size_t len;

	if (!fgets(buf, sizeof(buf), stdin)) {
		*ret = NULL;
		return 0;
	}
	len = strcspn(buf, "\r\n");
	buf[len] = '\0';
	*ret = len > 0 ? strdup(buf) : NULL;
	explicit_bzero(buf, sizeof(buf));
	return len > 0 && !*ret ? -ENOMEM : 0;
}

/* A pipe holding PIN (or nothing), write end closed: the read end goes into the call. */
int pin_pipe(const char *pin, int *ret_read_fd)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if (pin && write(p[1], pin, strlen(pin)) != (ssize_t)strlen(pin)) {
		int r = -errno;
		close(p[0]);
		close(p[1]);
		return r ? r : -EIO;
	}
	close(p[1]);
	*ret_read_fd = p[0];
	return 0;
}

static int call_enroll(sd_bus *bus, const char *user, const char *label, const char *pin,
        bool resident, int uv, const char *device, bool directory, sd_bus_error *error,
        sd_bus_message **reply)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	r = pin_pipe(pin, &fd);
	if (r < 0)
		return r;
	r = sd_bus_message_new_method_call(
	        bus, &m, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH, KEYWARD_BUS_INTERFACE, "Enroll");
	if (r < 0)
		return r;
	r = sd_bus_message_append(m, "ssh", user, strempty(label), fd);
	if (r < 0)
		return r;
	r = sd_bus_message_open_container(m, 'a', "{sv}");
	if (r >= 0 && resident)
		r = sd_bus_message_append(m, "{sv}", "resident", "b", 1);
	if (r >= 0 && uv >= 0)
		r = sd_bus_message_append(m, "{sv}", "uv", "b", uv);
	if (r >= 0 && device)
		r = sd_bus_message_append(m, "{sv}", "device", "s", device);
	if (r >= 0 && directory)
		r = sd_bus_message_append(m, "{sv}", "directory", "b", 1);
	if (r >= 0)
		r = sd_bus_message_close_container(m);
	if (r < 0)
		return r;
	return sd_bus_call(bus, m, CTL_ENROLL_TIMEOUT_USEC, error, reply);
}

int verb_enroll(int argc, char *argv[])
{
	enum { ARG_PIN_STDIN = 0x100, ARG_UV, ARG_NO_UV, ARG_DIRECTORY };
	static const struct option options[] = {{"label", required_argument, NULL, 'l'},
	        {"resident", no_argument, NULL, 'r'}, {"device", required_argument, NULL, 'd'},
	        {"pin-stdin", no_argument, NULL, ARG_PIN_STDIN}, {"uv", no_argument, NULL, ARG_UV},
	        {"no-uv", no_argument, NULL, ARG_NO_UV},
	        {"directory", no_argument, NULL, ARG_DIRECTORY}, {"help", no_argument, NULL, 'h'},
	        {}};
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	sd_bus_error error = SD_BUS_ERROR_NULL;
	const char *label = NULL, *device = NULL, *user, *id, *aaguid, *att;
	_cleanup_erase_ char *pin = NULL;
	bool resident = false, pin_stdin = false, directory = false;
	int uv = -1, c, r;

	while ((c = getopt_long(argc, argv, "l:rd:h", options, NULL)) >= 0) {
		switch (c) {
		case 'l':
			label = optarg;
			break;
		case 'r':
			resident = true;
			break;
		case 'd':
			device = optarg;
			break;
		case ARG_PIN_STDIN:
			pin_stdin = true;
			break;
		case ARG_UV:
			uv = 1;
			break;
		case ARG_NO_UV:
			uv = 0;
			break;
		case ARG_DIRECTORY:
			directory = true;
			break;
		case 'h':
			printf("Usage: keywardctl enroll USER [--label L] [--resident] [--device "
			       "/dev/hidrawN]\n"
			       "                        [--uv|--no-uv] [--pin-stdin] "
			       "[--directory]\n"
			       "Registers the plugged-in security key for USER (asks the key's PIN "
			       "when it has one).\n");
			return CTL_EXIT_OK;
		default:
			return CTL_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "keywardctl enroll: expected exactly one USER (see --help)\n");
		return CTL_EXIT_USAGE;
	}
	user = argv[optind];
	if (!valid_user_name(user)) {
		fprintf(stderr, "keywardctl enroll: invalid user name '%s'\n", user);
		return CTL_EXIT_USAGE;
	}
	if (pin_stdin && read_pin_stdin(&pin) < 0)
		return CTL_EXIT_ERROR;
	if (ctl_bus_connect(&bus) < 0)
		return CTL_EXIT_ERROR;
	if (!ctl_global.quiet)
		fprintf(stderr, "Registering a security key for %s: touch it when it blinks...\n",
		        user);
	r = call_enroll(bus, user, label, pin, resident, uv, device, directory, &error, &reply);
	if (r < 0 && sd_bus_error_has_name(&error, KEYWARD_BUS_ERROR_PIN_REQUIRED) && !pin &&
	        !pin_stdin) {
		sd_bus_error_free(&error);
		r = read_pin_tty("Security key PIN: ", &pin);
		if (r < 0)
			return CTL_EXIT_ERROR;
		if (!ctl_global.quiet)
			fprintf(stderr, "Touch your security key now to register it for %s...\n",
			        user);
		r = call_enroll(
		        bus, user, label, pin, resident, uv, device, directory, &error, &reply);
	}
	if (r < 0) {
		int code = ctl_report_bus_error("enroll", &error, r);
		sd_bus_error_free(&error);
		return code;
	}
	r = sd_bus_message_read(reply, "sss", &id, &aaguid, &att);
	if (r < 0) {
		fprintf(stderr, "keywardctl: enroll: bad reply: %s\n", strerror(-r));
		return CTL_EXIT_ERROR;
	}
	if (!ctl_global.quiet)
		printf("Enrolled a security key for %s.\n  id: %s\n  aaguid: %s\n  attestation: "
		       "%s\n",
		        user, id, aaguid, att);
	return CTL_EXIT_OK;
}

int ctl_list_credentials(const char *prog, const char *what, int argc, char *argv[],
        const char *usage, CtlCredentialRowFn row, void *userdata)
{
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	sd_bus_error error = SD_BUS_ERROR_NULL;
	const char *user = argc > 1 ? argv[1] : "";
	CtlCredentialRow c;
	unsigned n = 0;
	int r;

	if (argc > 2 || (argc == 2 && (streq(argv[1], "-h") || streq(argv[1], "--help")))) {
		fputs(usage, stdout);
		return argc > 2 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
	}
	if (ctl_bus_connect(&bus) < 0)
		return CTL_EXIT_ERROR;
	r = sd_bus_call_method(bus, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH, KEYWARD_BUS_INTERFACE,
	        "ListCredentials", &error, &reply, "s", user);
	if (r < 0 && !*user && sd_bus_error_has_name(&error, KEYWARD_BUS_ERROR_ACCESS_DENIED)) {
		/* Not an administrator: "everyone" is just yourself. */
		struct passwd *pw = getpwuid(getuid());

		if (pw && valid_user_name(pw->pw_name)) {
			sd_bus_error_free(&error);
			user = pw->pw_name;
			r = sd_bus_call_method(bus, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH,
			        KEYWARD_BUS_INTERFACE, "ListCredentials", &error, &reply, "s",
			        user);
		}
	}
	if (r < 0) {
		int code = ctl_report_bus_error(prog, &error, r);
		sd_bus_error_free(&error);
		return code;
	}
	r = sd_bus_message_enter_container(reply, 'a', "(sssssst)");
	if (r < 0)
		return CTL_EXIT_ERROR;
	while ((r = sd_bus_message_read(reply, "(sssssst)", &c.user, &c.label, &c.id, &c.aaguid,
	                &c.flags, &c.attestation, &c.created_us)) > 0) {
		/* keywardd puts "ssh-sk," in front of an SSH key's flags (docs/ssh.md). */
		c.ssh = strneq(c.flags, "ssh-sk,", 7);
		if (c.ssh)
			c.flags += 7;
		n += row(&c, n, userdata);
	}
	if (r < 0)
		return CTL_EXIT_ERROR;
	if (n == 0 && !ctl_global.quiet)
		printf("No %s registered%s%s.\n", what, *user ? " for " : "", user);
	return CTL_EXIT_OK;
}

static unsigned list_row(const CtlCredentialRow *c, unsigned n, void *userdata)
{
	char when[32] = "-";

	if (n == 0)
		printf("%-16s %-20s %-6s %-22s %-36s %-10s %-24s %s\n", "USER", "LABEL", "TYPE",
		        "FLAGS", "AAGUID", "ATTEST", "CREATED", "ID");
	if (c->created_us > 0)
		(void)format_rfc3339_ms(c->created_us / 1000, when, sizeof(when));
	/* The whole id: it is what `revoke` takes (and labels may repeat). */
	printf("%-16s %-20s %-6s %-22s %-36s %-10s %-24s %s\n", c->user, c->label,
	        c->ssh ? "ssh-sk" : "fido2", c->flags, isempty(c->aaguid) ? "-" : c->aaguid,
	        c->attestation, when, c->id);
	return 1;
}

int verb_list(int argc, char *argv[])
{
	return ctl_list_credentials("list", "security keys", argc, argv,
	        "Usage: keywardctl list [USER]\nLists the registered security keys (of USER, or "
	        "of everyone).\n",
	        list_row, NULL);
}

int verb_revoke(int argc, char *argv[])
{
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	sd_bus_error error = SD_BUS_ERROR_NULL;
	int r;

	if (argc == 4 && (streq(argv[1], "--directory") || streq(argv[3], "--directory")))
		return streq(argv[1], "--directory") ? ctl_directory_revoke(argv[2], argv[3])
		                                     : ctl_directory_revoke(argv[1], argv[2]);
	if (argc != 3) {
		fprintf(argc == 2 && (streq(argv[1], "-h") || streq(argv[1], "--help")) ? stdout
		                                                                        : stderr,
		        "Usage: keywardctl revoke USER LABEL|ID [--directory]\nRemoves one "
		        "registered security key of USER (--directory: from the directory).\n");
		return argc == 2 && (streq(argv[1], "-h") || streq(argv[1], "--help"))
		               ? CTL_EXIT_OK
		               : CTL_EXIT_USAGE;
	}
	if (ctl_bus_connect(&bus) < 0)
		return CTL_EXIT_ERROR;
	r = sd_bus_call_method(bus, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH, KEYWARD_BUS_INTERFACE,
	        "Revoke", &error, NULL, "ss", argv[1], argv[2]);
	if (r < 0) {
		int code = ctl_report_bus_error("revoke", &error, r);
		sd_bus_error_free(&error);
		return code;
	}
	if (!ctl_global.quiet)
		printf("Revoked %s of %s.\n", argv[2], argv[1]);
	return CTL_EXIT_OK;
}

int ctl_read_input(const char *path, size_t max, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	if (streq(path, "-"))
		return read_full_fd(STDIN_FILENO, max, ret, ret_len);
	/* Input, not configuration: any owner, but never a symlink or a device, and
	 * size-capped. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADFD;
	return read_full_fd(fd, max, ret, ret_len);
}

int verb_import_pam_u2f(int argc, char *argv[])
{
	enum { ARG_ORIGIN = 0x100, ARG_APPID, ARG_USER, ARG_DRY_RUN };
	static const struct option options[] = {{"origin", required_argument, NULL, ARG_ORIGIN},
	        {"appid", required_argument, NULL, ARG_APPID},
	        {"user", required_argument, NULL, ARG_USER},
	        {"dry-run", no_argument, NULL, ARG_DRY_RUN}, {"help", no_argument, NULL, 'h'}, {}};
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_free_ char *text = NULL, *err = NULL, *default_origin = NULL;
	const char *origin = NULL, *appid = NULL, *only_user = NULL;
	PamU2fEntry *entries = NULL;
	size_t n = 0;
	unsigned imported = 0, failed = 0;
	bool dry_run = false;
	int c, r, code = CTL_EXIT_OK;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case ARG_ORIGIN:
			origin = optarg;
			break;
		case ARG_APPID:
			appid = optarg;
			break;
		case ARG_USER:
			only_user = optarg;
			break;
		case ARG_DRY_RUN:
			dry_run = true;
			break;
		case 'h':
			printf("Usage: keywardctl import-pam-u2f FILE [--origin pam://HOST] "
			       "[--appid ID] [--user U] [--dry-run]\n"
			       "Imports a pam_u2f authfile (u2f_keys / u2f_mappings) so its keys "
			       "keep working without\n"
			       "registering them again. --origin/--appid are pam_u2f's options of "
			       "the same name\n"
			       "(default pam://<this host name>, appid = origin).\n");
			return CTL_EXIT_OK;
		default:
			return CTL_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "keywardctl import-pam-u2f: expected one FILE (see --help)\n");
		return CTL_EXIT_USAGE;
	}
	if (!origin) {
		char host[256] = "";
		if (gethostname(host, sizeof(host) - 1) < 0 ||
		        asprintf(&default_origin, "pam://%s", host) < 0) {
			fprintf(stderr,
			        "keywardctl: cannot determine the host name; give --origin\n");
			return CTL_EXIT_ERROR;
		}
		origin = default_origin;
	}
	r = ctl_read_input(argv[optind], PAM_U2F_MAX_FILE, &text, NULL);
	if (r < 0) {
		fprintf(stderr, "keywardctl: cannot read %s: %s\n", argv[optind],
		        r == -ELOOP   ? "is a symbolic link"
		        : r == -EFBIG ? "too large"
		                      : strerror(-r));
		return CTL_EXIT_ERROR;
	}
	r = creds_parse_pam_u2f(text, argv[optind], origin, appid, &entries, &n, &err);
	if (r < 0) {
		fprintf(stderr, "keywardctl: %s\n", err ? err : strerror(-r));
		return CTL_EXIT_FAILURE;
	}
	if (!dry_run && ctl_bus_connect(&bus) < 0) {
		pam_u2f_entries_free(entries, n);
		return CTL_EXIT_ERROR;
	}
	for (size_t i = 0; i < n; i++) {
		const Credential *cr = &entries[i].cred;
		sd_bus_error error = SD_BUS_ERROR_NULL;
		char flags[64];
		const char *cose = cr->cose_alg == -7   ? "es256"
		                   : cr->cose_alg == -8 ? "eddsa"
		                                        : "rs256";

		if (only_user && !streq(only_user, entries[i].user))
			continue;
		snprintf(flags, sizeof(flags), "%s%s", cr->up ? "+presence" : "",
		        cr->uv ? "+pin" : "");
		if (dry_run) {
			printf("%s: %s (%s, %s, rp %s%s)\n", entries[i].user, cr->label, cose,
			        *flags ? flags : "no flags", cr->rp_id,
			        cr->resident ? ", discoverable" : "");
			imported++;
			continue;
		}
		r = sd_bus_call_method(bus, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH,
		        KEYWARD_BUS_INTERFACE, "ImportCredential", &error, NULL, "sssssss",
		        entries[i].user, cr->label, cr->id, cr->public_key, cose, flags, cr->rp_id);
		if (r < 0) {
			int e = ctl_report_bus_error(cr->label, &error, r);
			if (e > code)
				code = e;
			failed++;
		} else {
			imported++;
			if (!ctl_global.quiet)
				printf("Imported %s for %s.\n", cr->label, entries[i].user);
		}
		sd_bus_error_free(&error);
	}
	pam_u2f_entries_free(entries, n);
	if (!ctl_global.quiet)
		printf("%u credential(s) %s, %u failed.\n", imported,
		        dry_run ? "would be imported" : "imported", failed);
	return code;
}
