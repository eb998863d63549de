/* fuzz-util.c: libFuzzer target for lib/util.c's decoders and the CSV cell writer: what
 * the strict base64 and hex decoders accept re-encodes to the same text; csv_write_field()
 * output parses back (RFC 4180) to its cells and no cell starts a spreadsheet formula. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT  (64 * 1024)
#define MAX_FIELDS 32

/* The input in the standard alphabet, padded: what base64_encode() makes of its bytes. */
static char *b64_canonical(const char *s)
{
	size_t n = strlen(s);
	char *c = malloc(n + 4);

	if (!c)
		abort();
	for (size_t i = 0; i < n; i++)
		c[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	while (n % 4 != 0)
		c[n++] = '=';
	c[n] = '\0';
	return c;
}

static void check_base64(const char *s, const uint8_t *data, size_t size)
{
	_cleanup_free_ uint8_t *d = NULL, *back = NULL;
	_cleanup_free_ char *enc = NULL, *canon = NULL;
	size_t n = 0, m = 0;

	if (base64_decode(s, &d, &n) >= 0) {
		if (base64_encode(d, n, &enc) < 0)
			abort();
		canon = b64_canonical(s);
		if (!streq(enc, canon))
			abort(); /* a second spelling of the same bytes was accepted */
	}
	/* Any bytes survive encoding and decoding. */
	free(enc);
	enc = NULL;
	if (base64_encode(data, size, &enc) < 0 || base64_decode(enc, &back, &m) < 0 || m != size ||
	        (size > 0 && memcmp(back, data, size) != 0))
		abort();
}

static void check_hex(const char *s)
{
	_cleanup_free_ uint8_t *d = NULL;
	_cleanup_free_ char *enc = NULL;
	size_t n = 0;

	if (hex_decode(s, &d, &n) < 0)
		return;
	if (hex_encode(d, n, &enc) < 0 || strlen(enc) != strlen(s))
		abort();
	for (size_t i = 0; enc[i]; i++)
		if (enc[i] != (s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]))
			abort();
}

static bool starts_formula(const char *s)
{
	return s[0] != '\0' && strchr("=+-@\t\r", s[0]);
}

/* Reads one RFC 4180 record of OUT (LEN bytes) into CELLS; all of OUT must be that record,
 * CRLF-terminated. Returns the number of cells. */
static size_t csv_parse_record(const char *out, size_t len, char **cells, size_t max)
{
	size_t i = 0, n = 0;

	for (;;) {
		char *cell = malloc(len + 1);
		size_t k = 0;

		if (!cell || n >= max)
			abort();
		if (i < len && out[i] == '"') {
			for (i++;; i++) {
				if (i >= len)
					abort(); /* unterminated quote */
				if (out[i] == '"') {
					if (i + 1 < len && out[i + 1] == '"') {
						cell[k++] = '"';
						i++;
						continue;
					}
					i++;
					break;
				}
				cell[k++] = out[i];
			}
		} else
			for (; i < len && out[i] != ',' && out[i] != '\r' && out[i] != '\n'; i++) {
				if (out[i] == '"')
					abort(); /* a quote in an unquoted cell */
				cell[k++] = out[i];
			}
		cell[k] = '\0';
		cells[n++] = cell;
		if (i < len && out[i] == ',') {
			i++;
			continue;
		}
		if (i + 2 != len || out[i] != '\r' || out[i + 1] != '\n')
			abort(); /* anything but one CRLF at the end */
		return n;
	}
}

static void check_csv(const uint8_t *data, size_t size)
{
	const char *fields[MAX_FIELDS];
	char *cells[MAX_FIELDS];
	size_t n = 0, out_len = 0, got;
	char *out = NULL;
	FILE *f;

	/* The input is up to MAX_FIELDS NUL-separated cells (the last one NUL-terminated by
	 * LLVMFuzzerTestOneInput's copy). */
	for (size_t i = 0; i <= size && n < MAX_FIELDS;) {
		fields[n++] = (const char *)data + i;
		i += strlen((const char *)data + i) + 1;
	}
	f = open_memstream(&out, &out_len);
	if (!f)
		abort();
	for (size_t i = 0; i < n; i++)
		csv_write_field(f, fields[i], i + 1 == n);
	if (fclose(f) != 0)
		abort();

	got = csv_parse_record(out, out_len, cells, MAX_FIELDS);
	if (got != n)
		abort();
	for (size_t i = 0; i < n; i++) {
		/* What a spreadsheet sees never starts a formula ... */
		if (starts_formula(cells[i]))
			abort();
		/* ... and is the cell, behind an apostrophe where it would have. */
		if (starts_formula(fields[i])
		                ? cells[i][0] != '\'' || !streq(cells[i] + 1, fields[i])
		                : !streq(cells[i], fields[i]))
			abort();
		free(cells[i]);
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *s = NULL;

	if (size > MAX_INPUT)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	check_base64(s, data, size);
	check_hex(s);
	check_csv((const uint8_t *)s, size);
	return 0;
}
