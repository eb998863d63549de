/* fuzz-policy.c: libFuzzer target for the policy parser — any input must either load
 * (and then evaluate and explain without fault) or be refused with diagnostics; the
 * input also goes through policy_is_remote() as an rhost and as a tty. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *const groups[] = {"wheel", "sudo", "users", NULL};
	static const PolicyRequest requests[] = {
	        {.user = "root",
	                .uid = 0,
	                .groups = groups,
	                .service = "sudo",
	                .tty = "/dev/pts/0"},
	        {.user = "alice",
	                .uid = 1000,
	                .groups = groups,
	                .service = "sshd",
	                .rhost = "2001:db8::1"},
	        {.user = "bob", .uid = 1001, .groups = NULL, .service = "login", .tty = "tty1"},
	        {.user = "carol",
	                .uid = 500,
	                .groups = groups,
	                .service = "polkit-1",
	                .remote = true},
	};
	PolicyDiagnostics diags = {};
	Policy *p = NULL;
	char *text;

	if (size > 2 * 1024 * 1024)
		return 0;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	(void)policy_is_remote(text, NULL);
	(void)policy_is_remote(NULL, text);

	if (policy_load_string(text, "fuzz.conf", &diags, &p) >= 0) {
		if (policy_diagnostics_errors(&diags) != 0)
			abort(); /* a policy with errors must never load */
		for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
			PolicyDecision d;
			char *s = NULL;

			if (policy_evaluate(p, &requests[i], &d) < 0)
				abort();
			if (policy_decision_explain(&d, &s) < 0)
				abort();
			free(s);
		}
		(void)policy_digest(p);
		policy_free(p);
	} else if (p != NULL || policy_diagnostics_errors(&diags) == 0)
		abort(); /* a refusal always says why and leaves *ret untouched */
	policy_diagnostics_clear(&diags);
	free(text);
	return 0;
}
