/* main.c: keywardd entry point — options, then run(): manager_new → daemon_startup →
 * daemon_run. daemon.c wires the layers; the state lives in manager.c. */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <openssl/crypto.h>

#include "daemon.h"
#include "directory.h"
#include "keyward-config.h"
#include "log.h"
#include "util.h"

#define KEYWARD_FD_LIMIT 16384

static void help(void)
{
	printf("Usage: keywardd [OPTIONS]\n\n"
	       "The keyward daemon: FIDO2 security keys for privileged accounts, on the system "
	       "bus\n"
	       "as %s.\n\n"
	       "  -c, --config FILE  policy file (default %s)\n"
	       "      --foreground   stay in the foreground (the default; for symmetry with unit "
	       "files)\n"
	       "  -v, --verbose      debug logging\n"
	       "  -h, --help         show this help\n"
	       "  -V, --version      show the version\n\n"
	       "SIGHUP reloads the policy (a rejected file keeps the old policy). See "
	       "keywardd(8).\n",
	        KEYWARD_BUS_NAME, KEYWARD_DEFAULT_CONFIG);
}

static int parse_argv(int argc, char *argv[], ManagerOptions *o)
{
	enum { ARG_FOREGROUND = 0x100 };
	static const struct option options[] = {{"config", required_argument, NULL, 'c'},
	        {"foreground", no_argument, NULL, ARG_FOREGROUND},
	        {"verbose", no_argument, NULL, 'v'}, {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'}, {}};
	int c;

	while ((c = getopt_long(argc, argv, "c:vhV", options, NULL)) >= 0) {
		switch (c) {
		case 'c':
			o->config_path = optarg;
			break;
		case ARG_FOREGROUND:
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			help();
			return 0;
		case 'V':
			printf("keywardd %s\n", KEYWARD_VERSION_STRING);
			return 0;
		default:
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "keywardd: unexpected argument '%s' (see --help)\n", argv[optind]);
		return -EINVAL;
	}
	return 1;
}

/* Calls set aside for their turn or their Busy answer (bus-fair.h) hold the file
 * descriptors they carry: the soft limit goes up to what the hard limit allows (keywardd
 * uses poll/epoll only, never select). */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= KEYWARD_FD_LIMIT ||
	        rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max < KEYWARD_FD_LIMIT ? rl.rlim_max : KEYWARD_FD_LIMIT;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warning_errno(errno, "Cannot raise the file descriptor limit: %m");
}

/* What an idle keywardd needs of its memory (docs/PERFORMANCE.md has the breakdown): one
 * malloc arena for all threads (the workers' own arenas kept what they had freed), and
 * OpenSSL without its error strings (keyward never formats an OpenSSL error; the tables
 * are ~450 KiB of pages touched at the first digest). */
static void memory_setup(void)
{
	(void)mallopt(M_ARENA_MAX, 1);
	(void)OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, NULL);
}

static int run(int argc, char *argv[])
{
	_cleanup_(daemon_freep) Manager *m = NULL;
	ManagerOptions o = {.config_path = KEYWARD_DEFAULT_CONFIG};
	int r;

	r = parse_argv(argc, argv, &o);
	if (r <= 0)
		return r;
	if (o.verbose)
		log_set_max_level(LOG_DEBUG);
	raise_fd_limit();
	memory_setup();
	directory_library_init(); /* before any thread: libldap reads no rc file or LDAP* variable
	                           */
	r = manager_new(&o, &m);
	if (r < 0)
		return r;
	r = daemon_startup(m);
	if (r < 0)
		return r;
	return daemon_run(m);
}

int main(int argc, char *argv[])
{
	int r = run(argc, argv);

	/* A positive r is the loop's exit code (EXIT_FAILURE after losing the bus). */
	return r < 0 ? EXIT_FAILURE : r > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
