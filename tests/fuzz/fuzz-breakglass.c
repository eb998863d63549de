/* fuzz-breakglass.c: libFuzzer target for the break-glass store's parsers (codes file and
 * approval file): nothing crashes, and an accepted codes file formats and re-parses to the
 * same text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "breakglass.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *out = NULL, *out2 = NULL;
	BreakglassSet *s = NULL, *t = NULL;
	BreakglassApproval a;
	const char *why = NULL;
	unsigned line = 0;

	if (size > BREAKGLASS_FILE_MAX + 16)
		return 0;
	if (breakglass_parse((const char *)data, size, "fuzz", &s, &why, &line) >= 0) {
		if (breakglass_format(s, &out) < 0 ||
		        breakglass_parse(out, strlen(out), "fuzz", &t, NULL, NULL) < 0 ||
		        breakglass_format(t, &out2) < 0 || strcmp(out, out2) != 0)
			abort(); /* the formatter must produce what the parser reads back */
	} else if (!why)
		abort(); /* every refusal says why */
	breakglass_set_free(s);
	breakglass_set_free(t);
	(void)breakglass_approval_parse((const char *)data, size, "fuzz", &a);
	return 0;
}
