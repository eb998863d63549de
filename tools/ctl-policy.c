/* ctl-policy.c: `keywardctl policy check|explain` — validate keyward.conf with
 * file:line diagnostics, and show which rule decides a given login and what it requires. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "accounts.h"
#include "ctl.h"
#include "policy.h"
#include "service-coverage.h"
#include "util.h"

#define CTL_GROUPS_MAX 1024

static void policy_usage(FILE *f)
{
	fprintf(f, "Usage: keywardctl policy check [-c FILE]\n"
	           "       keywardctl policy explain [-c FILE] --user USER --service SERVICE\n"
	           "                 [--rhost HOST] [--tty TTY] [--groups G1,G2,...] [--uid UID] "
	           "[--remote]\n"
	           "       keywardctl policy explain [-c FILE] --user USER [--root DIR]\n"
	           "                 [--groups G1,G2,...] [--uid UID]\n"
	           "       keywardctl policy explain [-c FILE] --audit\n\n"
	           "check    validate the policy file; exit 0 when valid, 1 when not, 3 when "
	           "unreadable\n"
	           "explain  show the rule that decides a login and what it requires; without\n"
	           "         --service, the PAM services present (under DIR) where the user must\n"
	           "         use a key: the services whose rules keywardd's Enroll applies;\n"
	           "         with --audit, the effective audit trail settings (rotation,\n"
	           "         retention, free space, disk full)\n");
}

static void print_diagnostics(const PolicyDiagnostics *d, bool quiet)
{
	for (size_t i = 0; i < d->n; i++) {
		const PolicyDiagnostic *x = &d->items[i];

		if (quiet && x->severity == POLICY_SEVERITY_WARNING)
			continue;
		if (x->line > 0)
			fprintf(stderr, "%s:%u: %s: %s\n", x->file, x->line,
			        x->severity == POLICY_SEVERITY_ERROR ? "error" : "warning",
			        x->message);
		else
			fprintf(stderr, "%s: %s: %s\n", x->file,
			        x->severity == POLICY_SEVERITY_ERROR ? "error" : "warning",
			        x->message);
	}
}

/* Loads the policy, printing diagnostics. Returns an exit code; *ret set on CTL_EXIT_OK. */
static int load(
        const char *path, bool names, Policy **ret, size_t *ret_warnings, size_t *ret_errors)
{
	_cleanup_(policy_freep) Policy *p = NULL;
	PolicyDiagnostics d = {};
	size_t errors;
	int r;

	r = policy_load_file(path, &d, &p);
	if (r >= 0 && names) {
		int k = policy_check_names(p, NULL, &d);
		if (k >= 0)
			k = ctl_directory_check(p, &d);
		if (k < 0)
			r = k;
	}
	errors = policy_diagnostics_errors(&d);
	print_diagnostics(&d, ctl_global.quiet);
	*ret_warnings = d.n - errors;
	*ret_errors = errors;
	policy_diagnostics_clear(&d);

	if (r == -EINVAL || r == -EFBIG || (r >= 0 && errors > 0))
		return CTL_EXIT_FAILURE; /* the content is wrong */
	if (r < 0) {
		/* could not read it at all (the reason was printed above), or out of memory */
		if (r == -ENOMEM)
			fprintf(stderr, "keywardctl: out of memory\n");
		return CTL_EXIT_ERROR;
	}
	*ret = TAKE_PTR(p);
	return CTL_EXIT_OK;
}

static int verb_policy_check(int argc, char *argv[])
{
	static const struct option options[] = {
	        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'}, {}};
	_cleanup_(policy_freep) Policy *p = NULL;
	const char *path = ctl_global.config_path;
	size_t warnings = 0, errors = 0;
	int c, code;

	while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			policy_usage(stdout);
			return CTL_EXIT_OK;
		default:
			policy_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	if (optind < argc) {
		fprintf(stderr, "keywardctl policy check: unexpected argument '%s'\n",
		        argv[optind]);
		return CTL_EXIT_USAGE;
	}

	code = load(path, true, &p, &warnings, &errors);
	if (code == CTL_EXIT_OK) {
		_cleanup_close_ int fd = -EBADF;
		const char *problem = NULL;

		/* keywardd reads the policy as root: it should be root's alone to change. */
		fd = safe_open(path, SAFE_FILE_DEFAULT, NULL, &problem);
		if (fd < 0 && problem) {
			if (!ctl_global.quiet)
				fprintf(stderr, "%s: warning: %s\n", path, problem);
			warnings++;
		}
	}
	if (code == CTL_EXIT_OK) {
		if (!ctl_global.quiet)
			printf("%s: valid (%zu warning%s)\n", path, warnings,
			        warnings == 1 ? "" : "s");
	} else if (code == CTL_EXIT_FAILURE)
		fprintf(stderr,
		        "%s: NOT valid: %zu error%s, %zu warning%s; keyward will not apply it\n",
		        path, errors, errors == 1 ? "" : "s", warnings, warnings == 1 ? "" : "s");
	else
		fprintf(stderr, "%s: could not be checked\n", path);
	return code;
}

static int split_groups(const char *s, char ***ret)
{
	_cleanup_strv_free_ char **l = NULL;
	_cleanup_free_ char *copy = strdup(s);
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int r;

		if (!valid_user_name(t))
			return -EINVAL;
		if (strv_length(l) >= CTL_GROUPS_MAX)
			return -E2BIG;
		r = strv_extend(&l, t);
		if (r < 0)
			return r;
	}
	if (!l) {
		l = calloc(1, sizeof(char *));
		if (!l)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(l);
	return 0;
}

static void print_user(const PolicyRequest *req)
{
	printf("User: %s (uid %u), groups: ", req->user, (unsigned)req->uid);
	if (!req->groups || !req->groups[0])
		printf("(none)");
	for (char *const *g = req->groups; g && *g; g++)
		printf("%s%s", g == req->groups ? "" : ",", *g);
	putchar('\n');
}

/* Where the policy asks REQ's user for a key, over the PAM services present under ROOT and
 * those a rule names without a PAM file: the services keywardd's Enroll collects rules for. */
static int explain_coverage(const Policy *p, const char *root, const PolicyRequest *req)
{
	_cleanup_(service_coverage_freep) ServiceCoverage *cov = NULL;
	_cleanup_free_ ServiceCoverageHit *hits = NULL;
	size_t n_hits = 0, n_present = 0, n_absent = 0;
	int r;

	r = service_coverage_load(p, root, &cov);
	if (r < 0) {
		fprintf(stderr,
		        "keywardctl policy explain: cannot list the PAM services under %s: %s\n",
		        root ?: "/", strerror(-r));
		return CTL_EXIT_ERROR;
	}
	r = service_coverage_user(cov, p,
	        &(ServiceCoverageQuery){
	                .user = req->user,
	                .uid = req->uid,
	                .groups = req->groups,
	                .include_absent = true,
	        },
	        &hits, &n_hits);
	if (r < 0) {
		fprintf(stderr, "keywardctl policy explain: cannot evaluate: %s\n", strerror(-r));
		return CTL_EXIT_ERROR;
	}
	print_user(req);
	printf("Key required for (PAM services present): ");
	for (size_t i = 0; i < n_hits; i++)
		if (hits[i].entry->present)
			printf("%s%s", n_present++ ? ", " : "", hits[i].entry->name);
	printf("%s\n", n_present ? "" : "(none)");
	for (size_t i = 0; i < n_hits; i++)
		if (!hits[i].entry->present)
			printf("%s%s (rule '%s')",
			        n_absent++ ? ", "
			                   : "Not installed, named by a rule (enrollment applies "
			                     "its AAGUID and attestation limits): ",
			        hits[i].entry->name, strna(hits[i].decision.rule_name));
	if (n_absent)
		putchar('\n');
	for (size_t i = 0; i < n_hits; i++)
		printf("  %s: rule '%s' (%s:%u)%s\n", hits[i].entry->name,
		        strna(hits[i].decision.rule_name), strna(hits[i].decision.file),
		        hits[i].decision.line,
		        !hits[i].entry->present ? ", not installed"
		        : !hits[i].entry->keyward_auth
		                ? ", but pam_keyward.so is not in its auth stack"
		                : "");
	return CTL_EXIT_OK;
}

static int explain_audit(const char *path, const PolicyRequest *req, const char *root)
{
	_cleanup_(policy_freep) Policy *p = NULL;
	_cleanup_free_ char *text = NULL;
	size_t warnings, errors;
	int code, r;

	if (req->user || req->service || req->rhost || req->tty || req->remote || root) {
		fprintf(stderr, "keywardctl policy explain: --audit takes only -c FILE\n");
		return CTL_EXIT_USAGE;
	}
	code = load(path, false, &p, &warnings, &errors);
	if (code != CTL_EXIT_OK) {
		fprintf(stderr, "%s: NOT valid; nothing to explain\n", path);
		return code;
	}
	r = policy_audit_explain(&policy_settings(p)->audit, &text);
	if (r < 0) {
		fprintf(stderr, "keywardctl policy explain: %s\n", strerror(-r));
		return CTL_EXIT_ERROR;
	}
	printf("Audit trail: %s\n", policy_settings(p)->audit_log);
	fputs(text, stdout);
	return CTL_EXIT_OK;
}

static int verb_policy_explain(int argc, char *argv[])
{
	enum { ARG_RHOST = 0x100, ARG_TTY, ARG_GROUPS, ARG_REMOTE, ARG_UID, ARG_ROOT, ARG_AUDIT };
	static const struct option options[] = {{"config", required_argument, NULL, 'c'},
	        {"user", required_argument, NULL, 'u'}, {"service", required_argument, NULL, 's'},
	        {"rhost", required_argument, NULL, ARG_RHOST},
	        {"tty", required_argument, NULL, ARG_TTY},
	        {"groups", required_argument, NULL, ARG_GROUPS},
	        {"uid", required_argument, NULL, ARG_UID},
	        {"remote", no_argument, NULL, ARG_REMOTE},
	        {"root", required_argument, NULL, ARG_ROOT},
	        {"audit", no_argument, NULL, ARG_AUDIT}, {"help", no_argument, NULL, 'h'}, {}};
	_cleanup_(policy_freep) Policy *p = NULL;
	_cleanup_strv_free_ char **groups = NULL;
	_cleanup_free_ char *text = NULL;
	const char *path = ctl_global.config_path, *groups_arg = NULL, *uid_arg = NULL;
	const char *root = NULL;
	PolicyRequest req = {};
	PolicyDecision d;
	size_t warnings, errors;
	bool have_uid = false, audit = false;
	int c, r, code;

	while ((c = getopt_long(argc, argv, "c:u:s:h", options, NULL)) >= 0)
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'u':
			req.user = optarg;
			break;
		case 's':
			req.service = optarg;
			break;
		case ARG_RHOST:
			req.rhost = optarg;
			break;
		case ARG_TTY:
			req.tty = optarg;
			break;
		case ARG_GROUPS:
			groups_arg = optarg;
			break;
		case ARG_UID:
			uid_arg = optarg;
			break;
		case ARG_REMOTE:
			req.remote = true;
			break;
		case ARG_ROOT:
			root = optarg;
			break;
		case ARG_AUDIT:
			audit = true;
			break;
		case 'h':
			policy_usage(stdout);
			return CTL_EXIT_OK;
		default:
			policy_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	if (optind < argc) {
		fprintf(stderr, "keywardctl policy explain: unexpected argument '%s'\n",
		        argv[optind]);
		return CTL_EXIT_USAGE;
	}
	if (audit)
		return explain_audit(path, &req, root);
	if (!req.user) {
		fprintf(stderr, "keywardctl policy explain: --user is required\n");
		return CTL_EXIT_USAGE;
	}
	if (req.service ? !!root : req.rhost || req.tty || req.remote) {
		fprintf(stderr,
		        "keywardctl policy explain: --root goes without --service; --rhost, "
		        "--tty and --remote with it\n");
		return CTL_EXIT_USAGE;
	}
	if (!valid_user_name(req.user)) {
		fprintf(stderr, "keywardctl policy explain: '%s' is not a valid user name\n",
		        req.user);
		return CTL_EXIT_USAGE;
	}
	if (uid_arg) {
		char *end = NULL;
		unsigned long v;

		errno = 0;
		v = strtoul(uid_arg, &end, 10);
		if (errno || !end || *end || end == uid_arg || uid_arg[0] == '-' ||
		        v >= UINT32_MAX) {
			fprintf(stderr, "keywardctl policy explain: --uid '%s' is not a uid\n",
			        uid_arg);
			return CTL_EXIT_USAGE;
		}
		req.uid = (uid_t)v;
		have_uid = true;
	}
	if (groups_arg) {
		r = split_groups(groups_arg, &groups);
		if (r < 0) {
			fprintf(stderr,
			        "keywardctl policy explain: --groups '%s' is not a comma-separated "
			        "list of group names\n",
			        groups_arg);
			return CTL_EXIT_USAGE;
		}
	}
	if (!have_uid || !groups) {
		uid_t uid;
		gid_t gid;

		r = account_lookup(req.user, &uid, &gid);
		if (r < 0) {
			fprintf(stderr,
			        "keywardctl policy explain: user '%s' %s; pass --uid and --groups "
			        "to explain a hypothetical user\n",
			        req.user,
			        r == -ESRCH ? "is unknown to NSS" : "cannot be looked up");
			if (r != -ESRCH)
				fprintf(stderr, "keywardctl policy explain: %s\n", strerror(-r));
			return CTL_EXIT_ERROR;
		}
		if (!have_uid)
			req.uid = uid;
		if (!groups) {
			r = account_group_names(req.user, gid, &groups);
			if (r < 0) {
				fprintf(stderr,
				        "keywardctl policy explain: cannot list the groups of "
				        "'%s': %s\n",
				        req.user, strerror(-r));
				return CTL_EXIT_ERROR;
			}
		}
	}
	req.groups = groups;

	code = load(path, false, &p, &warnings, &errors);
	if (code != CTL_EXIT_OK) {
		fprintf(stderr, "%s: NOT valid; nothing to explain\n", path);
		return code;
	}
	if (!req.service)
		return explain_coverage(p, root, &req);
	r = policy_evaluate(p, &req, &d);
	if (r < 0) {
		fprintf(stderr, "keywardctl policy explain: cannot evaluate: %s\n", strerror(-r));
		return CTL_EXIT_ERROR;
	}
	r = policy_decision_explain(&d, &text);
	if (r < 0) {
		fprintf(stderr, "keywardctl policy explain: %s\n", strerror(-r));
		return CTL_EXIT_ERROR;
	}
	print_user(&req);
	printf("Service: %s, tty: %s, rhost: %s\n", req.service, req.tty ?: "(none)",
	        req.rhost ?: "(none)");
	fputs(text, stdout);
	return CTL_EXIT_OK;
}

int verb_policy(int argc, char *argv[])
{
	if (argc < 2) {
		policy_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (streq(argv[1], "check"))
		return verb_policy_check(argc - 1, argv + 1);
	if (streq(argv[1], "explain"))
		return verb_policy_explain(argc - 1, argv + 1);
	if (streq(argv[1], "-h") || streq(argv[1], "--help")) {
		policy_usage(stdout);
		return CTL_EXIT_OK;
	}
	fprintf(stderr, "keywardctl policy: unknown command '%s' (check, explain)\n", argv[1]);
	return CTL_EXIT_USAGE;
}
