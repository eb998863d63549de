/* test-pam-exports.c: dlopen()s the built pam_keyward.so with RTLD_NOW (every symbol must
 * resolve) and checks that it exports the pam_sm_* functions and none of its internals. */
#include <dlfcn.h>
#include <stdio.h>

static const char *const wanted[] = {
        "pam_sm_authenticate",
        "pam_sm_setcred",
        "pam_sm_acct_mgmt",
        "pam_sm_open_session",
        "pam_sm_close_session",
};
/* Functions of the module and of the static libraries linked into it. */
static const char *const hidden[] = {
        "outcome_to_pam",
        "options_parse",
        "bus_call_wait",
        "fallback",
        "policy_load_string",
        "policy_evaluate",
        "policy_free",
        "safe_open",
        "read_full_file_safe",
        "erase_and_free",
        "valid_user_name",
        "now_monotonic_ms",
        "pam_sm_chauthtok",
};

int main(int argc, char *argv[])
{
	void *h;
	int failures = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: test-pam-exports MODULE\n");
		return 2;
	}
	h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "FAIL: dlopen(%s, RTLD_NOW): %s\n", argv[1], dlerror());
		return 1;
	}
	for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
		if (!dlsym(h, wanted[i])) {
			fprintf(stderr, "FAIL: %s is not exported\n", wanted[i]);
			failures++;
		}
	for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++)
		if (dlsym(h, hidden[i])) {
			fprintf(stderr, "FAIL: %s is exported\n", hidden[i]);
			failures++;
		}
	dlclose(h);
	if (failures == 0)
		printf("PASS: exports exactly the pam_sm_* entry points\n");
	return failures ? 1 : 0;
}
