/* coverage-write.c: test helper — writes the coverage snapshot of a keyward.conf to each
 * PATH given, with the code keywardd uses (policy_coverage(), coverage_snapshot_write()),
 * for the PAM tests that run the module with no daemon at all.
 * usage: coverage-write CONFIG PATH... */
#include <stdio.h>

#include "coverage.h"
#include "policy.h"
#include "util.h"

int main(int argc, char **argv)
{
	_cleanup_(policy_diagnostics_clear) PolicyDiagnostics diags = {};
	_cleanup_(coverage_snapshot_freep) CoverageSnapshot *s = NULL;
	_cleanup_(policy_freep) Policy *p = NULL;
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: %s CONFIG PATH...\n", argv[0]);
		return 2;
	}
	r = policy_load_file(argv[1], &diags, &p);
	if (r < 0) {
		for (size_t i = 0; i < diags.n; i++)
			fprintf(stderr, "%s:%u: %s\n", diags.items[i].file, diags.items[i].line,
			        diags.items[i].message);
		return 1;
	}
	r = policy_coverage(p, &s);
	for (int i = 2; r >= 0 && i < argc; i++)
		r = coverage_snapshot_write(s, argv[i]);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", argv[0], strerror(-r));
		return 1;
	}
	return 0;
}
