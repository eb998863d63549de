/* fuzz-binding.c: libFuzzer target over keywardd's session binding file parser
 * (daemon/binding-file.c): whatever it accepts must format and parse back to the same
 * text (the daemon rewrites these files on every state change). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *id = "0123456789abcdef0123456789abcdef", *why = NULL;
	char *text, *out = NULL, *again = NULL;
	size_t out_len = 0, again_len = 0;
	Binding *b = NULL, *c = NULL;

	if (size > BINDING_FILE_MAX)
		return 0;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (binding_parse(NULL, id, text, &b, &why) >= 0) {
		if (binding_format(b, &out, &out_len) < 0)
			abort();
		if (binding_parse(NULL, id, out, &c, &why) < 0)
			abort();
		/* out was parsed in place: format both again and compare */
		free(out);
		out = NULL;
		if (binding_format(b, &out, &out_len) < 0 ||
		        binding_format(c, &again, &again_len) < 0 || out_len != again_len ||
		        memcmp(out, again, out_len) != 0)
			abort();
	}
	binding_free(b);
	binding_free(c);
	free(out);
	free(again);
	free(text);
	return 0;
}
