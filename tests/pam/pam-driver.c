/* pam-driver.c: drives a PAM service in-process through libpamtest (under pam_wrapper) for
 * the pam_keyward tests: runs the named operations, answers PIN prompts, prints every
 * conversation message and each operation's return code, one line each. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpamtest.h>
#include <security/pam_appl.h>

#define MAX_OPS  8
#define MAX_PINS 8
#define MAX_SETS 8

typedef struct Conversation {
	const char *pins[MAX_PINS];
	size_t n_pins, next_pin;
	bool quiet;
} Conversation;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static const struct {
	int code;
	const char *name;
} codes[] = {
        {PAM_SUCCESS, "PAM_SUCCESS"},
        {PAM_IGNORE, "PAM_IGNORE"},
        {PAM_AUTH_ERR, "PAM_AUTH_ERR"},
        {PAM_PERM_DENIED, "PAM_PERM_DENIED"},
        {PAM_MAXTRIES, "PAM_MAXTRIES"},
        {PAM_USER_UNKNOWN, "PAM_USER_UNKNOWN"},
        {PAM_CONV_ERR, "PAM_CONV_ERR"},
        {PAM_SESSION_ERR, "PAM_SESSION_ERR"},
        {PAM_CRED_UNAVAIL, "PAM_CRED_UNAVAIL"},
        {PAM_AUTHINFO_UNAVAIL, "PAM_AUTHINFO_UNAVAIL"},
        {PAM_SERVICE_ERR, "PAM_SERVICE_ERR"},
        {PAM_SYSTEM_ERR, "PAM_SYSTEM_ERR"},
        {PAM_BUF_ERR, "PAM_BUF_ERR"},
        {PAM_ABORT, "PAM_ABORT"},
        {PAM_MODULE_UNKNOWN, "PAM_MODULE_UNKNOWN"},
        {PAM_OPEN_ERR, "PAM_OPEN_ERR"},
        {PAM_SYMBOL_ERR, "PAM_SYMBOL_ERR"},
        {PAM_ACCT_EXPIRED, "PAM_ACCT_EXPIRED"},
        {PAM_CRED_ERR, "PAM_CRED_ERR"},
};

static const struct {
	const char *name;
	enum pamtest_ops op;
} ops[] = {
        {"auth", PAMTEST_AUTHENTICATE},
        {"setcred", PAMTEST_SETCRED},
        {"acct", PAMTEST_ACCOUNT},
        {"open", PAMTEST_OPEN_SESSION},
        {"close", PAMTEST_CLOSE_SESSION},
};

static const char *code_name(int code)
{
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].code == code)
			return codes[i].name;
	return "PAM_UNKNOWN_CODE";
}

static int code_from_name(const char *s)
{
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(codes[i].name, s) == 0)
			return codes[i].code;
	return -1;
}

static const char *op_name(enum pamtest_ops op)
{
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (ops[i].op == op)
			return ops[i].name;
	return "?";
}

static int conversation(
        int n, const struct pam_message **msg, struct pam_response **resp, void *userdata)
{
	Conversation *c = userdata;
	struct pam_response *r;

	if (n <= 0 || n > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	r = calloc((size_t)n, sizeof(*r));
	if (!r)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
			if (!c->quiet)
				printf("prompt-off: %s\n", msg[i]->msg);
			if (c->next_pin >= c->n_pins)
				goto fail; /* like a user who cancels the prompt */
			r[i].resp = strdup(c->pins[c->next_pin++]);
			if (!r[i].resp)
				goto fail;
			break;
		case PAM_PROMPT_ECHO_ON:
			if (!c->quiet)
				printf("prompt-on: %s\n", msg[i]->msg);
			goto fail;
		case PAM_ERROR_MSG:
			if (!c->quiet)
				printf("error: %s\n", msg[i]->msg);
			break;
		case PAM_TEXT_INFO:
			if (!c->quiet)
				printf("info: %s\n", msg[i]->msg);
			break;
		default:
			goto fail;
		}
	}
	fflush(stdout);
	*resp = r;
	return PAM_SUCCESS;
fail:
	for (int i = 0; i < n; i++)
		free(r[i].resp);
	free(r);
	return PAM_CONV_ERR;
}

static void usage(void)
{
	fprintf(stderr, "usage: pam-driver [--repeat N] [--quiet] [--timing] [--silent] [--pin "
	                "PIN]... [--item rhost|tty|ruser=VALUE]... [--env NAME=VALUE]... "
	                "[--hold SECONDS] [--unsetenv NAME] SERVICE USER "
	                "OP:EXPECTED...\n  OP: auth setcred acct open close\n");
}

/* With PAM items or environment to set first (an sshd-like or sudo-like caller):
 * libpamtest cannot, so the handle is driven here, with the same output. */
static int run_with_items(const char *service, const char *user, Conversation *conv,
        const struct pam_testcase *cases, size_t n_cases, char **items, size_t n_items, char **envs,
        size_t n_envs, int flags)
{
	struct pam_conv pc = {.conv = conversation, .appdata_ptr = conv};
	pam_handle_t *pamh = NULL;
	int r, failed = 0;

	r = pam_start(service, user, &pc, &pamh);
	if (r != PAM_SUCCESS) {
		printf("pamtest: pam_start failed: %d\n", r);
		return 1;
	}
	for (size_t i = 0; i < n_items; i++) {
		char *eq = strchr(items[i], '=');
		int item = strncmp(items[i], "rhost=", 6) == 0   ? PAM_RHOST
		           : strncmp(items[i], "tty=", 4) == 0   ? PAM_TTY
		           : strncmp(items[i], "ruser=", 6) == 0 ? PAM_RUSER
		                                                 : -1;
		if (!eq || item < 0 || pam_set_item(pamh, item, eq + 1) != PAM_SUCCESS) {
			printf("pamtest: cannot set item %s\n", items[i]);
			failed = 1;
		}
	}
	for (size_t i = 0; i < n_envs; i++)
		if (pam_putenv(pamh, envs[i]) != PAM_SUCCESS) {
			printf("pamtest: cannot set %s\n", envs[i]);
			failed = 1;
		}
	for (size_t k = 0; k < n_cases && !failed; k++) {
		switch (cases[k].pam_operation) {
		case PAMTEST_AUTHENTICATE:
			r = pam_authenticate(pamh, flags);
			break;
		case PAMTEST_SETCRED:
			r = pam_setcred(pamh, flags | PAM_ESTABLISH_CRED);
			break;
		case PAMTEST_ACCOUNT:
			r = pam_acct_mgmt(pamh, flags);
			break;
		case PAMTEST_OPEN_SESSION:
			r = pam_open_session(pamh, flags);
			break;
		case PAMTEST_CLOSE_SESSION:
			r = pam_close_session(pamh, flags);
			break;
		default:
			r = PAM_SYSTEM_ERR;
		}
		printf("result: %s %s\n", op_name(cases[k].pam_operation), code_name(r));
		if (r != cases[k].expected_rv) {
			printf("pamtest: Unexpected return value (%s returned %s, expected %s) in "
			       "round 1\n",
			        op_name(cases[k].pam_operation), code_name(r),
			        code_name(cases[k].expected_rv));
			failed = 1;
		}
		fflush(stdout);
	}
	pam_end(pamh, failed ? PAM_SYSTEM_ERR : PAM_SUCCESS);
	return failed;
}

int main(int argc, char *argv[])
{
	struct pam_testcase cases[MAX_OPS];
	Conversation conv = {};
	const char *service, *user;
	long repeat = 1, hold = 0;
	char *items[MAX_SETS], *envs[MAX_SETS];
	size_t n_items = 0, n_envs = 0;
	bool timing = false;
	int flags = 0;
	size_t n_cases = 0;
	int i = 1, failures = 0;

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--pin") == 0 && i + 1 < argc && conv.n_pins < MAX_PINS)
			conv.pins[conv.n_pins++] = argv[++i];
		else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
			repeat = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--quiet") == 0)
			conv.quiet = true;
		else if (strcmp(argv[i], "--silent") == 0)
			flags |= PAM_SILENT;
		else if (strcmp(argv[i], "--timing") == 0)
			timing = true;
		else if (strcmp(argv[i], "--item") == 0 && i + 1 < argc && n_items < MAX_SETS)
			items[n_items++] = argv[++i];
		else if (strcmp(argv[i], "--env") == 0 && i + 1 < argc && n_envs < MAX_SETS)
			envs[n_envs++] = argv[++i];
		else if (strcmp(argv[i], "--hold") == 0 && i + 1 < argc)
			hold = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--unsetenv") == 0 && i + 1 < argc)
			/* like sudo's env_reset before PAM: gone from getenv(), still in
			 * /proc/self/environ */
			(void)unsetenv(argv[++i]);
		else {
			usage();
			return 2;
		}
	}
	if (argc - i < 3 || repeat < 1) {
		usage();
		return 2;
	}
	service = argv[i++];
	user = argv[i++];
	for (; i < argc; i++) {
		char *colon = strchr(argv[i], ':');
		bool found = false;
		int code;

		if (!colon || n_cases >= MAX_OPS) {
			usage();
			return 2;
		}
		*colon = '\0';
		code = code_from_name(colon + 1);
		for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
			if (strcmp(ops[k].name, argv[i]) == 0) {
				cases[n_cases++] =
				        (struct pam_testcase)pam_test_flags(ops[k].op, code, flags);
				found = true;
			}
		if (!found || code < 0) {
			fprintf(stderr, "pam-driver: bad operation %s:%s\n", argv[i], colon + 1);
			return 2;
		}
	}

	if (n_items > 0 || n_envs > 0) {
		int rc = run_with_items(
		        service, user, &conv, cases, n_cases, items, n_items, envs, n_envs, flags);
		/* (an elevation the daemon may end: the test watches this process) */
		if (hold > 0) {
			printf("holding\n");
			fflush(stdout);
			sleep((unsigned)hold);
		}
		return rc;
	}
	for (long round = 0; round < repeat; round++) {
		enum pamtest_err perr;
		double start;

		conv.next_pin = 0;
		for (size_t k = 0; k < n_cases; k++)
			cases[k].op_rv = -1;
		start = now_ms();
		perr = _pamtest_conv(service, user, conversation, &conv, cases, n_cases, NULL);
		if (timing)
			printf("timing: round=%ld ms=%.3f\n", round + 1, now_ms() - start);
		if (!conv.quiet || perr != PAMTEST_ERR_OK)
			for (size_t k = 0; k < n_cases; k++)
				if (cases[k].op_rv >= 0)
					printf("result: %s %s\n", op_name(cases[k].pam_operation),
					        code_name(cases[k].op_rv));
		if (perr != PAMTEST_ERR_OK) {
			const struct pam_testcase *f = _pamtest_failed_case(cases, n_cases);

			printf("pamtest: %s", pamtest_strerror(perr));
			if (f)
				printf(" (%s returned %s, expected %s)", op_name(f->pam_operation),
				        code_name(f->op_rv), code_name(f->expected_rv));
			printf(" in round %ld\n", round + 1);
			failures++;
			break;
		}
		fflush(stdout);
	}
	return failures ? 1 : 0;
}
