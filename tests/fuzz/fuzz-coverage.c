/* fuzz-coverage.c: libFuzzer target over the coverage snapshot reader (lib/coverage.c),
 * which pam_keyward.so runs inside sshd and sudo: whatever it accepts must format and
 * parse back to the same text, and evaluating it must not crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coverage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *const groups[] = {"wheel", NULL};
	CoverageSnapshot *s = NULL, *t = NULL;
	char *out = NULL, *again = NULL;
	size_t out_len = 0, again_len = 0;
	CoverageRequest req = {
	        .user = "alice",
	        .uid = 1000,
	        .groups = groups,
	        .service = "sudo",
	        .tty = "/dev/pts/0",
	};
	CoverageDecision d;

	if (coverage_snapshot_parse((const char *)data, size, &s) >= 0) {
		if (coverage_snapshot_format(s, &out, &out_len) < 0)
			abort();
		if (coverage_snapshot_parse(out, out_len, &t) < 0)
			abort();
		if (coverage_snapshot_format(t, &again, &again_len) < 0 || again_len != out_len ||
		        memcmp(out, again, out_len) != 0)
			abort();
		if (coverage_evaluate(s, &req, &d) < 0)
			abort();
		req.groups_unknown = true;
		req.remote = true;
		if (coverage_evaluate(s, &req, &d) < 0)
			abort();
	}
	coverage_snapshot_free(s);
	coverage_snapshot_free(t);
	free(out);
	free(again);
	return 0;
}
