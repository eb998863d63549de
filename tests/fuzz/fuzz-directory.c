/* fuzz-directory.c: libFuzzer target for the credential directory's value parsers (SSSD
 * passkey values, keywardCredential, keywardSignCount: one value per input line, "K "
 * and "C " prefixes for the last two) and the RFC 4515 filter escaping. An accepted
 * passkey value must format and parse back to the same credential; an escaped filter
 * value holds no '*', '(' or ')' and unescapes to the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "directory.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_escape(const char *s)
{
	_cleanup_free_ char *e = NULL, *back = NULL;
	size_t n = 0;

	if (directory_filter_escape(s, &e) < 0)
		return;
	if (strpbrk(e, "*()"))
		abort();
	back = malloc(strlen(e) + 1);
	if (!back)
		return;
	for (const char *p = e; *p; p++) {
		if (*p == '\\') {
			int hi = hex_digit_value(p[1]), lo = hi >= 0 ? hex_digit_value(p[2]) : -1;
			if (lo < 0)
				abort();
			back[n++] = (char)(hi * 16 + lo);
			p += 2;
		} else
			back[n++] = *p;
	}
	back[n] = 0;
	if (strcmp(back, s) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *text = NULL;
	DirectoryUser u = {.user = (char *)"fuzz"};
	char *save = NULL;

	if (size > 256 * 1024)
		return 0;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	check_escape(text);
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "K ", 2) == 0)
			(void)strv_extend(&u.keyward_values, line + 2);
		else if (strncmp(line, "C ", 2) == 0) {
			DirectoryCounter c = {};
			if (directory_counter_parse(line + 2, &c) >= 0) {
				free(c.id);
				free(c.raw);
			}
		} else
			(void)strv_extend(&u.values, line);
	}
	if (directory_user_parse(&u, "pam://fuzz") >= 0)
		for (size_t i = 0; i < u.set->n; i++) {
			_cleanup_free_ char *v = NULL, *k = NULL;
			Credential c = {};

			if (directory_passkey_format(&u.set->items[i], &v) < 0 ||
			        directory_passkey_parse(v, "pam://fuzz", "x", &c, NULL) < 0 ||
			        !streq(c.id, u.set->items[i].id) ||
			        !streq(c.public_key, u.set->items[i].public_key) ||
			        c.cose_alg != u.set->items[i].cose_alg)
				abort(); /* what the formatter writes, the parser reads back */
			credential_done(&c);
			if (directory_keyward_format(&u.set->items[i], &k) < 0)
				abort();
		}
	strv_free(u.values);
	strv_free(u.keyward_values);
	credential_set_free(u.set);
	strv_free(u.problems);
	return 0;
}
