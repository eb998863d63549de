/* fuzz-creds.c: libFuzzer target for the credential-file parser (and its formatter: a
 * parsed file must format and re-parse to the same text) and the pam_u2f authfile parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "creds.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *text = NULL, *err = NULL, *out = NULL, *out2 = NULL;
	CredentialSet *s = NULL, *t = NULL;
	PamU2fEntry *e = NULL;
	size_t n = 0;

	if (size > CREDS_MAX_FILE_SIZE)
		return 0;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	if (creds_parse(text, "fuzz", "fuzz", &s, &err) >= 0) {
		if (creds_format(s, &out) < 0 || creds_parse(out, "fuzz2", "fuzz", &t, NULL) < 0 ||
		        creds_format(t, &out2) < 0 || strcmp(out, out2) != 0)
			abort(); /* the formatter must produce what the parser reads back */
	}
	credential_set_free(s);
	credential_set_free(t);
	free(err);
	err = NULL;

	if (creds_parse_pam_u2f(text, "fuzz", "pam://fuzz", NULL, &e, &n, &err) >= 0)
		pam_u2f_entries_free(e, n);
	return 0;
}
