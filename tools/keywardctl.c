/* keywardctl.c: the admin CLI's entry point — global options and one table that
 * dispatches to the verbs (policy, enroll, list, revoke, import-pam-u2f, audit, ...). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "directory.h"
#include "keyward-config.h"
#include "util.h"

CtlGlobal ctl_global = {
        .config_path = KEYWARD_DEFAULT_CONFIG,
};

typedef struct Verb {
	const char *name;
	int (*run)(int argc, char *argv[]);
	const char *summary;
} Verb;

/* Verbs are declared here as their files land. */
static const Verb verbs[] = {
        {"policy", verb_policy, "check the policy file, explain a decision"},
        {"doctor", verb_doctor, "check the installation and the live system"},
        {"status", verb_status, "the daemon's status: policy in force (or rejected), trail"},
        {"audit", verb_audit, "verify the audit trail, show its records"},
        {"report", verb_report, "compliance report (text, JSON, CSV, HTML)"},
        {"enroll", verb_enroll, "register a security key for a user (through keywardd)"},
        {"list", verb_list, "list registered security keys"},
        {"revoke", verb_revoke, "remove a registered security key"},
        {"import-pam-u2f", verb_import_pam_u2f, "import a pam_u2f authfile"},
        {"ssh", verb_ssh, "security-key SSH keys: import, list, sshd configuration"},
        {"breakglass", verb_breakglass, "recovery codes and approvals for a lost key"},
        {"directory", verb_directory, "the credential directory: cache status, refresh, show"},
        {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: keywardctl [-c FILE] VERB [ARGS...]\n\n"
	        "Manage keyward: FIDO2 security keys for privileged accounts.\n\n"
	        "Options:\n"
	        "  -c, --config FILE  policy file (default %s)\n"
	        "  -q, --quiet        print only errors\n"
	        "  -h, --help         show this help\n"
	        "  -V, --version      show the version\n\nVerbs:\n",
	        KEYWARD_DEFAULT_CONFIG);
	for (const Verb *v = verbs; v->name; v++)
		fprintf(f, "  %-16s %s\n", v->name, v->summary);
	fprintf(f, "\nSee keywardctl(8).\n");
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {{"config", required_argument, NULL, 'c'},
	        {"quiet", no_argument, NULL, 'q'}, {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'}, {}};
	int c;

	directory_library_init(); /* libldap reads no ldaprc or LDAP* variable of the caller */
	/* '+': stop at the verb; verbs parse their own options. */
	while ((c = getopt_long(argc, argv, "+c:qhV", options, NULL)) >= 0) {
		switch (c) {
		case 'c':
			ctl_global.config_path = optarg;
			break;
		case 'q':
			ctl_global.quiet = true;
			break;
		case 'h':
			usage(stdout);
			return CTL_EXIT_OK;
		case 'V':
			printf("keywardctl %s\n", KEYWARD_VERSION_STRING);
			return CTL_EXIT_OK;
		default:
			usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	for (const Verb *v = verbs; v->name; v++)
		if (streq(v->name, argv[optind])) {
			int first = optind;

			optind = 0; /* full getopt re-initialisation (glibc) for the verb */
			return v->run(argc - first, argv + first);
		}
	fprintf(stderr, "keywardctl: unknown verb '%s' (see keywardctl --help)\n", argv[optind]);
	return CTL_EXIT_USAGE;
}
