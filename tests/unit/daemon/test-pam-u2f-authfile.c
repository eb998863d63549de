/* test-pam-u2f-authfile.c: the pam_u2f authfile importer — the new (pamu2fcfg 1.3,
 * base64) and old (libu2f-host: websafe base64 + hex point) formats, resident "*",
 * options, and exact error messages. argv[1]: the fixtures directory. */
#include <fcntl.h>
#include <unistd.h>

#include <fido/param.h>

#include "check.h"
#include "creds.h"
#include "fido-util.h"
#include "util.h"

static const char *fixtures;

static char *load(const char *name)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -EBADF;
	char *text = NULL;

	CHECK(asprintf(&path, "%s/%s", fixtures, name) > 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_INT(read_full_fd(fd, 1 << 20, &text, NULL), 0);
	return text;
}

static void check_pubkey(const Credential *c, size_t expected_len)
{
	_cleanup_free_ uint8_t *pk = NULL;
	size_t len;

	CHECK_INT(base64_decode(c->public_key, &pk, &len), 0);
	CHECK_INT(len, expected_len);
	CHECK(fido_pubkey_valid(c->cose_alg, pk, len));
}

static void test_new_format(void)
{
	_cleanup_free_ char *text = load("new-format.authfile");
	PamU2fEntry *e = NULL;
	size_t n = 0;

	CHECK_INT(creds_parse_pam_u2f(text, "new", "pam://host", NULL, &e, &n, NULL), 0);
	CHECK_INT(n, 3);
	CHECK_STR(e[0].user, "alice");
	CHECK_STR(e[0].cred.label, "alice-u2f-1");
	CHECK_STR(e[0].cred.rp_id, "pam://host");
	CHECK_INT(e[0].cred.cose_alg, COSE_ES256);
	CHECK(e[0].cred.up && !e[0].cred.uv && !e[0].cred.resident);
	CHECK_INT(e[0].cred.attestation, CRED_ATTESTATION_IMPORTED);
	CHECK(creds_id_valid(e[0].cred.id));
	check_pubkey(&e[0].cred, 64);
	CHECK_STR(e[1].cred.label, "alice-u2f-2");
	CHECK(e[1].cred.up && e[1].cred.uv);
	CHECK_STR(e[2].user, "carol");
	CHECK_STR(e[2].cred.id, "*");
	CHECK(e[2].cred.resident && e[2].cred.up && e[2].cred.uv);
	pam_u2f_entries_free(e, n);
}

static void test_old_format(void)
{
	_cleanup_free_ char *text = load("old-format.authfile");
	_cleanup_free_ uint8_t *kh = NULL, *pk = NULL, *hex = NULL;
	size_t khlen, pklen, hexlen;
	PamU2fEntry *e = NULL;
	size_t n = 0;
	char *comma, *line;

	CHECK_INT(creds_parse_pam_u2f(text, "old", "pam://host", "pam://appid", &e, &n, NULL), 0);
	CHECK_INT(n, 1);
	CHECK_STR(e[0].user, "bob");
	CHECK_STR(e[0].cred.rp_id, "pam://appid"); /* old entries use pam_u2f's appid */
	CHECK_INT(e[0].cred.cose_alg, COSE_ES256);
	CHECK(e[0].cred.up && !e[0].cred.uv);
	/* the websafe handle became standard base64 of the same bytes */
	CHECK(!strchr(e[0].cred.id, '-') && !strchr(e[0].cred.id, '_'));
	CHECK_INT(base64_decode(e[0].cred.id, &kh, &khlen), 0);
	CHECK_INT(khlen, 64);
	/* the 65-byte hex point became the 64-byte x||y libfido2 takes */
	line = strchr(text, ':') + 1;
	comma = strchr(line, ',');
	*strchrnul(comma, '\n') = '\0';
	CHECK_INT(hex_decode(comma + 1, &hex, &hexlen), 0);
	CHECK_INT(hexlen, 65);
	CHECK_INT(base64_decode(e[0].cred.public_key, &pk, &pklen), 0);
	CHECK_INT(pklen, 64);
	CHECK_INT(memcmp(pk, hex + 1, 64), 0);
	check_pubkey(&e[0].cred, 64);
	pam_u2f_entries_free(e, n);
	e = NULL;
	/* without appid, origin */
	CHECK_INT(creds_parse_pam_u2f(text, "old", "pam://host", NULL, &e, &n, NULL), 0);
	CHECK_STR(e[0].cred.rp_id, "pam://host");
	pam_u2f_entries_free(e, n);
}

static void test_eddsa_crlf(void)
{
	_cleanup_free_ char *text = load("eddsa-crlf.authfile");
	PamU2fEntry *e = NULL;
	size_t n = 0;

	CHECK_INT(creds_parse_pam_u2f(text, "ed", "pam://host", NULL, &e, &n, NULL), 0);
	CHECK_INT(n, 1);
	CHECK_INT(e[0].cred.cose_alg, COSE_EDDSA);
	CHECK(!e[0].cred.up && !e[0].cred.uv);
	check_pubkey(&e[0].cred, 32);
	pam_u2f_entries_free(e, n);
}

static void expect_error(const char *text, const char *message)
{
	_cleanup_free_ char *err = NULL;
	PamU2fEntry *e = NULL;
	size_t n = 0;

	CHECK(creds_parse_pam_u2f(text, "af", "pam://host", NULL, &e, &n, &err) < 0);
	CHECK(!e);
	CHECK_STR(err, message);
}

#define PK                                                                                         \
	"k3gWIBJld1m48EpOJI9fgmdWC62s4zBpX3jxv5geXrhcgiJSwmrLwuKef6saM+SzVXl6urCqHq8VLXzmhi5zjg=="

static void test_errors(void)
{
	expect_error("alice\n", "af:1: user alice has no credentials after ':'");
	expect_error("al/ice:x,y\n", "af:1: invalid user name before ':'");
	expect_error("alice:AAAA\n",
	        "af:1: user alice, credential 1: expected at least KeyHandle,UserKey");
	expect_error("alice:AAAA," PK ",es384,+presence\n",
	        "af:1: user alice, credential 1: unknown COSE type (es256, eddsa or rs256 "
	        "expected)");
	expect_error("alice:AAAA," PK ",es256,+touch\n",
	        "af:1: user alice, credential 1: unknown "
	        "option (only +presence, +pin, +verification)");
	expect_error("alice:AAAA," PK ",es256,+presence:BBBB,@@@,es256,\n",
	        "af:1: user alice, credential 2: invalid public key (base64 expected)");
	expect_error("# ok\nbob:AAAA,04abcd\n",
	        "af:2: user bob, credential 1: invalid public key (hex of a 65-byte uncompressed "
	        "P-256 point expected in the old format)");
	expect_error("bob:!!!!,04abcd\n", "af:1: user bob, credential 1: invalid key handle "
	                                  "(websafe base64 expected in the old format)");
	/* key material that cannot fit its algorithm: an import error, not a lockout */
	expect_error("alice:AAAA," PK ",eddsa,+presence\n",
	        "af:1: user alice, credential 1: the public key does not fit its COSE type "
	        "(es256: 64 bytes, eddsa: 32, rs256: 259)");
	expect_error("bob:AAAA," PK ",es256,+presence,extra\n",
	        "af:1: user bob, credential 1: too many comma-separated fields (expected "
	        "KeyHandle,UserKey,CoseType,Options)");
}

int main(int argc, char *argv[])
{
	if (argc != 2) {
		fprintf(stderr, "usage: test-pam-u2f-authfile FIXTURES_DIR\n");
		return EXIT_FAILURE;
	}
	fixtures = argv[1];
	test_new_format();
	test_old_format();
	test_eddsa_crlf();
	test_errors();
	printf("test-pam-u2f-authfile: all passed\n");
	return EXIT_SUCCESS;
}
