/* test-fido-util.c: the one FIDO_ERR_* → -errno/reason/message table, COSE names, AAGUID
 * text, and reading a PIN from a pipe (caps, newline, wiping paths). */
#include <fcntl.h>
#include <unistd.h>

#include "bus-names.h"
#include "check.h"
#include "fido-util.h"
#include "util.h"

static void test_errors(void)
{
	static const struct {
		int fido;
		int err;
		const char *reason;
	} cases[] = {
	        {FIDO_ERR_PIN_INVALID, -EACCES, "wrong-pin"},
	        {FIDO_ERR_PIN_BLOCKED, -EPERM, "pin-blocked"},
	        {FIDO_ERR_PIN_AUTH_BLOCKED, -EPERM, "pin-blocked"},
	        {FIDO_ERR_PIN_NOT_SET, -ENOKEY, "no-pin-set"},
	        {FIDO_ERR_PIN_REQUIRED, -ENOKEY, "pin-required"},
	        {FIDO_ERR_OPERATION_DENIED, -ECONNREFUSED, "touch-denied"},
	        {FIDO_ERR_USER_ACTION_TIMEOUT, -ETIMEDOUT, "no-touch"},
	        {FIDO_ERR_KEEPALIVE_CANCEL, -ECANCELED, "cancelled"},
	        {FIDO_ERR_NO_CREDENTIALS, -ENOENT, "unknown-credential"},
	        {FIDO_ERR_INVALID_SIG, -EBADMSG, "bad-signature"},
	        {FIDO_ERR_UNSUPPORTED_OPTION, -EOPNOTSUPP, "uv-missing"},
	        {FIDO_ERR_TX, -EIO, "error"},
	        {FIDO_ERR_RX, -EIO, "error"},
	        {FIDO_ERR_NOTFOUND, -ENODEV, "no-key"},
	        {FIDO_ERR_REQUEST_TOO_LARGE, -EMSGSIZE, "error"}, /* never "not registered" */
	        {FIDO_ERR_LIMIT_EXCEEDED, -E2BIG, "error"},
	        {0x7e, -EIO, "error"}, /* unknown CTAP status: a failure, never success */
	        {-99, -EIO, "error"},
	};

	CHECK_INT(fido_error_to_errno(FIDO_OK), 0);
	CHECK_STR(fido_error_reason(FIDO_OK), "ok");
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		CHECK_INT(fido_error_to_errno(cases[i].fido), cases[i].err);
		CHECK_STR(fido_error_reason(cases[i].fido), cases[i].reason);
		CHECK(!isempty(fido_error_message(cases[i].fido)));
	}
	CHECK_STR(fido_error_message(FIDO_ERR_PIN_NOT_SET),
	        "This key has no PIN set but the policy requires one: set a PIN with fido2-token "
	        "-S.");
	/* every non-OK status of the libfido2 range maps to a negative errno */
	for (int s = -12; s < 0xe0; s++)
		if (s != FIDO_OK)
			CHECK(fido_error_to_errno(s) < 0);
}

static void test_names(void)
{
	uint8_t a[16], b[16];
	char s[FIDO_AAGUID_STRING_MAX];

	CHECK_INT(fido_cose_from_string("ES256"), COSE_ES256);
	CHECK_INT(fido_cose_from_string("eddsa"), COSE_EDDSA);
	CHECK_INT(fido_cose_from_string("rs256"), COSE_RS256);
	CHECK_INT(fido_cose_from_string("es384"), COSE_UNSPEC);
	CHECK_STR(fido_cose_to_string(COSE_RS256), "rs256");
	CHECK(!fido_cose_to_string(COSE_ES384));
	for (int i = 0; i < 16; i++)
		a[i] = (uint8_t)(i * 17);
	fido_aaguid_to_string(a, s);
	CHECK_STR(s, "00112233-4455-6677-8899-aabbccddeeff");
	CHECK_INT(fido_aaguid_from_string("00112233-4455-6677-8899-AABBCCDDEEFF", b), 0);
	CHECK_INT(memcmp(a, b, 16), 0);
	CHECK(fido_aaguid_from_string("00112233-4455-6677-8899-aabbccddeef", b) < 0);
	CHECK(fido_aaguid_from_string("0011223344556677-8899-aabbccddeeff0", b) < 0);
	CHECK(fido_aaguid_from_string("g0112233-4455-6677-8899-aabbccddeeff", b) < 0);
}

static int pipe_with(const void *data, size_t len, bool close_writer, int *ret_writer)
{
	int p[2];

	CHECK(pipe2(p, O_CLOEXEC) == 0);
	if (len > 0)
		CHECK(write(p[1], data, len) == (ssize_t)len);
	if (close_writer)
		close(p[1]);
	else
		*ret_writer = p[1];
	CHECK(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0);
	return p[0];
}

static void test_pin(void)
{
	char big[KEYWARD_MAX_PIN + 10];
	char *pin = (char *)"x";
	int fd, w;

	fd = pipe_with("123456\n", 7, true, NULL);
	CHECK_INT(fido_pin_read_fd(fd, &pin), 0);
	CHECK_STR(pin, "123456");
	erase_string_and_free(pin);
	close(fd);

	fd = pipe_with("", 0, true, NULL);
	CHECK_INT(fido_pin_read_fd(fd, &pin), 0);
	CHECK(pin == NULL);
	close(fd);

	/* writer still open, nothing written: "no PIN" after the short wait, not a hang */
	fd = pipe_with("", 0, false, &w);
	CHECK_INT(fido_pin_read_fd(fd, &pin), 0);
	CHECK(pin == NULL);
	close(fd);
	close(w);

	memset(big, '7', sizeof(big));
	fd = pipe_with(big, sizeof(big), true, NULL);
	CHECK_INT(fido_pin_read_fd(fd, &pin), -EMSGSIZE);
	close(fd);

	fd = pipe_with("12\0"
	               "34",
	        5, true, NULL);
	CHECK_INT(fido_pin_read_fd(fd, &pin), -EINVAL);
	close(fd);

	CHECK_INT(fido_pin_read_fd(-1, &pin), -EBADF);
}

int main(void)
{
	test_errors();
	test_names();
	test_pin();
	printf("test-fido-util: all passed\n");
	return EXIT_SUCCESS;
}
