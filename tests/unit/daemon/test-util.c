/* test-util.c: lib/util.c helpers that parse or emit outside data — the strict base64
 * decoder and the CSV cell writer (formula defusing). */
#include "check.h"
#include "util.h"

static void expect_b64(const char *s, const char *expected)
{
	_cleanup_free_ uint8_t *d = NULL;
	size_t n = 0;

	CHECK_INT(base64_decode(s, &d, &n), 0);
	CHECK_INT(n, strlen(expected));
	CHECK(memcmp(d, expected, n) == 0);
}

static void expect_b64_invalid(const char *s)
{
	uint8_t *d = NULL;
	size_t n = 0;

	if (base64_decode(s, &d, &n) != -EINVAL) {
		fprintf(stderr, "base64_decode(\"%s\") accepted invalid input\n", s);
		exit(EXIT_FAILURE);
	}
	CHECK(!d);
}

static void test_base64(void)
{
	expect_b64("", "");
	expect_b64("QQ==", "A");
	expect_b64("QUI=", "AB");
	expect_b64("QUJD", "ABC");
	expect_b64("Pz8/", "???");
	expect_b64("Pz8_", "???"); /* base64url */
	expect_b64("QQ", "A");     /* base64url may drop its padding */
	expect_b64("QUI", "AB");

	/* invalid characters, embedded whitespace */
	expect_b64_invalid("QU*D");
	expect_b64_invalid("QU D");
	expect_b64_invalid("QUJD\n");
	expect_b64_invalid(" QUJD");
	expect_b64_invalid("QU\tJD");
	expect_b64_invalid("QUJD\xc3\xa9");
	/* bad padding */
	expect_b64_invalid("Q");
	expect_b64_invalid("QQ=");
	expect_b64_invalid("QUI==");
	expect_b64_invalid("QUJD=");
	expect_b64_invalid("QUJD====");
	expect_b64_invalid("QQ==QQ==");
	expect_b64_invalid("=");
	expect_b64_invalid("==");
	/* non-canonical trailing bits */
	expect_b64_invalid("QR==");
	expect_b64_invalid("QUJ=");
	/* the standard alphabet is padded; alphabets do not mix */
	expect_b64_invalid("Pz8/Pw");
	expect_b64_invalid("Pz8/Pz8_");
	expect_b64_invalid("+-==");
}

static char *csv(const char *cell, bool last)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	CHECK(f);
	csv_write_field(f, cell, last);
	CHECK(fclose(f) == 0);
	return buf;
}

static void expect_csv(const char *cell, const char *expected)
{
	_cleanup_free_ char *got = csv(cell, false);

	CHECK_STR(got, expected);
}

static void test_csv(void)
{
	_cleanup_free_ char *last = csv("a", true);

	CHECK_STR(last, "a\r\n");
	expect_csv("alice", "alice,");
	expect_csv(NULL, ",");
	expect_csv("a,b", "\"a,b\",");
	expect_csv("say \"hi\"", "\"say \"\"hi\"\"\",");
	expect_csv("a\nb", "\"a\nb\",");
	expect_csv("=1+1", "\"'=1+1\",");
	expect_csv("+1", "\"'+1\",");
	expect_csv("-1", "\"'-1\",");
	expect_csv("@SUM(A1)", "\"'@SUM(A1)\",");
	/* TAB and CR also start formulas in some spreadsheets (OWASP CSV injection) */
	expect_csv("\t=cmd|' /C calc'!A0", "\"'\t=cmd|' /C calc'!A0\",");
	expect_csv("\r=1", "\"'\r=1\",");
	expect_csv("\tx", "\"'\tx\",");
	expect_csv("a\tb", "a\tb,");
}

static void test_utf8_prefix(void)
{
	/* "é" is 0xc3 0xa9, "€" 0xe2 0x82 0xac */
	CHECK_INT((int)utf8_prefix_len("abc", 3), 3);
	CHECK_INT((int)utf8_prefix_len("abc", 8), 3);
	CHECK_INT((int)utf8_prefix_len("abcd", 3), 3);
	CHECK_INT((int)utf8_prefix_len("ab\xc3\xa9", 3), 2); /* never half of "é" */
	CHECK_INT((int)utf8_prefix_len("ab\xc3\xa9", 4), 4);
	CHECK_INT((int)utf8_prefix_len("a\xe2\x82\xac"
	                               "b",
	                  2),
	        1); /* nor of "€" */
	CHECK_INT((int)utf8_prefix_len("a\xe2\x82\xac"
	                               "b",
	                  3),
	        1);
	CHECK_INT((int)utf8_prefix_len("a\xe2\x82\xac"
	                               "b",
	                  4),
	        4);
	CHECK_INT((int)utf8_prefix_len("\xe2\x82\xac", 2), 0);
	CHECK_INT((int)utf8_prefix_len("", 0), 0);
	CHECK_INT((int)utf8_prefix_len("x", 0), 0);
}

int main(int argc, char **argv)
{
	if (argc > 1 && streq(argv[1], "base64"))
		test_base64();
	else if (argc > 1 && streq(argv[1], "csv"))
		test_csv();
	else if (argc > 1 && streq(argv[1], "utf8"))
		test_utf8_prefix();
	else {
		fprintf(stderr, "usage: %s base64|csv|utf8\n", argv[0]);
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}
