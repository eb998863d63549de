/* test-virtkey-hid.c: hand-made CTAPHID reports and CBOR requests against the virtkey
 * core, on a simulated clock — framing, channels, error codes, keepalives, timeouts.
 * Usage: test-virtkey-hid CASE (one ctest test per case). */
#include <string.h>

#include "util.h"
#include "virtkey-bench.h"

#define BCAST 0xffffffffu
#define ERR   0xbf /* 0x80 | CTAPHID_ERROR */
#define KA    0xbb /* 0x80 | CTAPHID_KEEPALIVE */
#define CBOR  0x90 /* 0x80 | CTAPHID_CBOR */

static VirtKey *key_new(VirtKeyOptions *o)
{
	VirtKey *k = NULL;

	memcpy(o->aaguid, bench_aaguid, 16);
	CHECK_EQ(virtkey_new(o, &k), 0);
	return k;
}

static VirtKey *key_default(void)
{
	VirtKeyOptions o = {.touch = VIRTKEY_TOUCH_AUTO, .touch_delay_ms = 0};
	return key_new(&o);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One init report: cmd (without 0x80), a declared length, and up to 57 bytes. */
static void send_init(VirtKey *k, uint32_t cid, uint8_t cmd, size_t bcnt, const void *data,
        size_t n, uint64_t now)
{
	uint8_t r[VIRTKEY_REPORT_SIZE] = {};

	put32(r, cid);
	r[4] = 0x80 | cmd;
	r[5] = bcnt >> 8;
	r[6] = bcnt & 0xff;
	CHECK(n <= 57);
	if (n)
		memcpy(r + 7, data, n);
	CHECK_EQ(virtkey_hid_write(k, r, now), 0);
}

static void send_cont(
        VirtKey *k, uint32_t cid, uint8_t seq, const void *data, size_t n, uint64_t now)
{
	uint8_t r[VIRTKEY_REPORT_SIZE] = {};

	put32(r, cid);
	r[4] = seq;
	CHECK(n <= 59);
	if (n)
		memcpy(r + 5, data, n);
	CHECK_EQ(virtkey_hid_write(k, r, now), 0);
}

static void send_msg(
        VirtKey *k, uint32_t cid, uint8_t cmd, const uint8_t *data, size_t len, uint64_t now)
{
	size_t off = len < 57 ? len : 57;

	send_init(k, cid, cmd, len, data, off, now);
	for (uint8_t seq = 0; off < len; seq++) {
		size_t n = len - off < 59 ? len - off : 59;
		send_cont(k, cid, seq, data + off, n, now);
		off += n;
	}
}

static bool rd(VirtKey *k, uint64_t now, uint8_t r[VIRTKEY_REPORT_SIZE])
{
	int n = virtkey_hid_read(k, r, now);
	CHECK(n == 0 || n == 1);
	return n == 1;
}

static void expect_nothing(VirtKey *k, uint64_t now)
{
	uint8_t r[VIRTKEY_REPORT_SIZE];
	CHECK(!rd(k, now, r));
}

static void expect_error(VirtKey *k, uint64_t now, uint32_t cid, uint8_t code)
{
	uint8_t r[VIRTKEY_REPORT_SIZE];

	CHECK(rd(k, now, r));
	CHECK_EQ(get32(r), cid);
	CHECK_EQ(r[4], ERR);
	CHECK_EQ(r[5] << 8 | r[6], 1);
	CHECK_EQ(r[7], code);
}

static void expect_keepalive(VirtKey *k, uint64_t now, uint32_t cid, uint8_t status)
{
	uint8_t r[VIRTKEY_REPORT_SIZE];

	CHECK(rd(k, now, r));
	CHECK_EQ(get32(r), cid);
	CHECK_EQ(r[4], KA);
	CHECK_EQ(r[7], status);
}

/* Reads one whole message for cid; returns its cmd (with 0x80). */
static uint8_t recv_msg(
        VirtKey *k, uint64_t now, uint32_t cid, uint8_t *buf, size_t max, size_t *ret_len)
{
	uint8_t r[VIRTKEY_REPORT_SIZE];
	size_t len, off;
	uint8_t cmd;

	CHECK(rd(k, now, r));
	CHECK_EQ(get32(r), cid);
	CHECK(r[4] & 0x80);
	cmd = r[4];
	len = (size_t)r[5] << 8 | r[6];
	CHECK(len <= max);
	off = len < 57 ? len : 57;
	memcpy(buf, r + 7, off);
	for (uint8_t seq = 0; off < len; seq++) {
		size_t n = len - off < 59 ? len - off : 59;
		CHECK(rd(k, now, r));
		CHECK_EQ(get32(r), cid);
		CHECK_EQ(r[4], seq);
		memcpy(buf + off, r + 5, n);
		off += n;
	}
	*ret_len = len;
	return cmd;
}

static uint32_t do_init(VirtKey *k, uint64_t now)
{
	const uint8_t nonce[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	uint8_t buf[64];
	size_t len;
	uint32_t cid;

	send_init(k, BCAST, 0x06, 8, nonce, 8, now);
	CHECK_EQ(recv_msg(k, now, BCAST, buf, sizeof(buf), &len), 0x86);
	CHECK_EQ(len, 17);
	CHECK(memcmp(buf, nonce, 8) == 0);
	cid = get32(buf + 8);
	CHECK(cid != 0 && cid != BCAST);
	CHECK_EQ(buf[12], 2);                  /* CTAPHID protocol version */
	CHECK_EQ(buf[16], 0x01 | 0x04 | 0x08); /* WINK, CBOR, NMSG */
	return cid;
}

/* One CBOR request; returns the status byte, the body in resp. */
static int cbor(VirtKey *k, uint64_t now, uint32_t cid, const uint8_t *req, size_t len,
        uint8_t *resp, size_t *resp_len)
{
	uint8_t buf[8192];
	size_t n;

	send_msg(k, cid, 0x10, req, len, now);
	CHECK_EQ(recv_msg(k, now, cid, buf, sizeof(buf), &n), CBOR);
	CHECK(n >= 1);
	if (resp) {
		memcpy(resp, buf + 1, n - 1);
		*resp_len = n - 1;
	}
	return buf[0];
}

static int cbor_status(VirtKey *k, uint64_t now, uint32_t cid, const uint8_t *req, size_t len)
{
	return cbor(k, now, cid, req, len, NULL, NULL);
}

/* ---- cases ---- */

static void test_init(void)
{
	VirtKey *k = key_default();
	uint8_t buf[64];
	size_t len;
	uint32_t a = do_init(k, 0), b = do_init(k, 0);

	CHECK(a != b);
	/* INIT on an allocated channel resynchronises it and keeps the id */
	send_init(k, a, 0x06, 8, "abcdefgh", 8, 0);
	CHECK_EQ(recv_msg(k, 0, a, buf, sizeof(buf), &len), 0x86);
	CHECK_EQ(len, 17);
	CHECK(memcmp(buf, "abcdefgh", 8) == 0);
	CHECK_EQ(get32(buf + 8), a);
	/* INIT with a wrong length */
	send_init(k, BCAST, 0x06, 7, "abcdefg", 7, 0);
	expect_error(k, 0, BCAST, 0x03);
	/* INIT on a channel never allocated */
	send_init(k, 0x12345678, 0x06, 8, "abcdefgh", 8, 0);
	expect_error(k, 0, 0x12345678, 0x0b);
	expect_nothing(k, 0);
	/* a new client: old channels are gone */
	virtkey_reset_transport(k);
	send_init(k, a, 0x01, 1, "x", 1, 0);
	expect_error(k, 0, a, 0x0b);
	virtkey_free(k);
}

static void test_bad_channel(void)
{
	VirtKey *k = key_default();
	uint32_t cid = do_init(k, 0);

	send_init(k, BCAST, 0x01, 1, "x", 1, 0); /* only INIT on the broadcast channel */
	expect_error(k, 0, BCAST, 0x0b);
	send_init(k, 0, 0x01, 1, "x", 1, 0);
	expect_error(k, 0, 0, 0x0b);
	send_init(k, cid + 1000, 0x01, 1, "x", 1, 0);
	expect_error(k, 0, cid + 1000, 0x0b);
	send_init(k, BCAST, 0x10, 1, "\x04", 1, 0);
	expect_error(k, 0, BCAST, 0x0b);
	expect_nothing(k, 0);
	virtkey_free(k);
}

static void test_ping(void)
{
	static uint8_t data[7609], buf[7609];
	const size_t sizes[] = {0, 1, 57, 58, 116, 117, 300, 7609};
	VirtKey *k = key_default();
	uint32_t cid = do_init(k, 0);
	size_t len;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
		send_msg(k, cid, 0x01, data, sizes[i], 0);
		CHECK_EQ(recv_msg(k, 0, cid, buf, sizeof(buf), &len), 0x81);
		CHECK_EQ(len, sizes[i]);
		CHECK(memcmp(buf, data, len) == 0);
		expect_nothing(k, 0);
	}
	virtkey_free(k);
}

static void test_bad_seq(void)
{
	uint8_t data[200] = {1}, buf[200];
	VirtKey *k = key_default();
	uint32_t cid = do_init(k, 0);
	size_t len;

	send_init(k, cid, 0x01, 100, data, 57, 0);
	send_cont(k, cid, 1, data, 43, 0); /* seq 0 expected */
	expect_error(k, 0, cid, 0x04);
	expect_nothing(k, 0);
	/* a new init packet on the same channel in the middle of a message */
	send_init(k, cid, 0x01, 100, data, 57, 0);
	send_init(k, cid, 0x01, 1, data, 1, 0);
	expect_error(k, 0, cid, 0x04);
	/* spurious continuation packets are ignored */
	send_cont(k, cid, 0, data, 59, 0);
	expect_nothing(k, 0);
	/* and the channel still works */
	send_msg(k, cid, 0x01, data, sizeof(data), 0);
	CHECK_EQ(recv_msg(k, 0, cid, buf, sizeof(buf), &len), 0x81);
	CHECK_EQ(len, sizeof(data));
	virtkey_free(k);
}

static void test_oversized(void)
{
	static uint8_t big[1300];
	VirtKey *k = key_default();
	uint32_t cid = do_init(k, 0);

	send_init(k, cid, 0x01, 7610, big, 57, 0);
	expect_error(k, 0, cid, 0x03);
	send_init(k, cid, 0x10, 0xffff, big, 57, 0);
	expect_error(k, 0, cid, 0x03);
	expect_nothing(k, 0);
	/* larger than the advertised maxMsgSize: CTAP2_ERR_REQUEST_TOO_LARGE */
	big[0] = 0x01;
	CHECK_EQ(cbor_status(k, 0, cid, big, VIRTKEY_MAX_CBOR_MSG + 1), 0x39);
	/* empty CBOR message */
	send_init(k, cid, 0x10, 0, NULL, 0, 0);
	expect_error(k, 0, cid, 0x03);
	virtkey_free(k);
}

static void test_cbor_errors(void)
{
	static const struct {
		const char *what;
		const char *req;
		size_t len;
		int status;
	} t[] = {
	        {"unknown CTAP command", "\x55", 1, 0x01},
	        {"getInfo with parameters", "\x04\xa0", 2, 0x03},
	        {"makeCredential without parameters", "\x01", 1, 0x14},
	        {"garbage", "\x01\xff\xff", 3, 0x12},
	        {"truncated map", "\x01\xa2\x01", 3, 0x12},
	        {"trailing bytes", "\x01\xa0\x00", 3, 0x12},
	        {"indefinite map", "\x01\xbf\xff", 3, 0x12},
	        {"array claims 2^32 items", "\x01\x9b\xff\xff\xff\xff\xff\xff\xff\xff", 10, 0x12},
	        {"bytes claim 4 GiB", "\x02\xa1\x01\x5a\xff\xff\xff\xff", 8, 0x12},
	        {"tagged item", "\x01\xc1\x00", 3, 0x12},
	        {"deep nesting", "\x01\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x80", 12, 0x12},
	        {"not a map", "\x01\x01", 2, 0x11},
	        {"text map key", "\x01\xa1\x61\x61\x01", 5, 0x11},
	        {"duplicate map key", "\x06\xa2\x02\x01\x02\x01", 6, 0x12},
	        {"makeCredential missing rp/user/params",
	                "\x01\xa1\x01\x58\x20"
	                "0123456789abcdef0123456789abcdef",
	                37, 0x14},
	        {"makeCredential short clientDataHash", "\x01\xa1\x01\x41\x00", 5, 0x03},
	        {"makeCredential clientDataHash of the wrong type", "\x01\xa1\x01\x01", 4, 0x11},
	        {"getAssertion without rpId", "\x02\xa0", 2, 0x14},
	        {"getAssertion rpId not text", "\x02\xa2\x01\x01\x02\x41\x00", 7, 0x11},
	        {"clientPIN without subCommand", "\x06\xa1\x01\x02", 4, 0x14},
	        {"clientPIN unknown subCommand", "\x06\xa2\x01\x02\x02\x18\x42", 7, 0x3e},
	        {"clientPIN unsupported protocol", "\x06\xa2\x01\x03\x02\x02", 6, 0x02},
	        {"clientPIN getPinToken no PIN args", "\x06\xa2\x01\x02\x02\x05", 6, 0x14},
	        {"getNextAssertion without getAssertion", "\x08", 1, 0x30},
	        {"reset with parameters", "\x07\xa0", 2, 0x03},
	};
	VirtKey *k = key_default();
	uint32_t cid = do_init(k, 0);

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		int s = cbor_status(k, 0, cid, (const uint8_t *)t[i].req, t[i].len);
		if (s != t[i].status) {
			fprintf(stderr, "%s: status 0x%02x, want 0x%02x\n", t[i].what, s,
			        t[i].status);
			CHECK(false);
		}
		expect_nothing(k, 0);
	}
	virtkey_free(k);
}

/* makeCredential for rp "keyward.test", user "uid", one pubKeyCredParam with ALG (CBOR
 * bytes), plus NEXTRA more map entries already encoded in EXTRA. */
static size_t mc_req(uint8_t *out, const char *alg, size_t alg_len, const void *extra,
        size_t extra_len, unsigned nextra)
{
	static const uint8_t head1[] = "\x01\x58\x20"
	                               "0123456789abcdef0123456789abcdef"
	                               "\x02\xa1\x62id\x6ckeyward.test"
	                               "\x03\xa1\x62id\x43uid"
	                               "\x04\x81\xa2\x63"
	                               "alg";
	static const uint8_t head2[] = "\x64type\x6apublic-key";
	size_t n = 0;

	out[n++] = 0x01;
	out[n++] = 0xa0 | (4 + nextra);
	memcpy(out + n, head1, sizeof(head1) - 1);
	n += sizeof(head1) - 1;
	memcpy(out + n, alg, alg_len);
	n += alg_len;
	memcpy(out + n, head2, sizeof(head2) - 1);
	n += sizeof(head2) - 1;
	memcpy(out + n, extra, extra_len);
	return n + extra_len;
}

static void test_makecred_errors(void)
{
	static const struct {
		const char *what;
		const char *alg;
		const char *extra;
		size_t extra_len;
		unsigned nextra;
		int status;
	} t[] = {
	        {"plain ES256", "\x26", "", 0, 0, 0x00},
	        {"plain EdDSA", "\x27", "", 0, 0, 0x00},
	        {"only ES384", "\x38\x22", "", 0, 0, 0x26},
	        {"up=false", "\x26", "\x07\xa1\x62up\xf4", 6, 1, 0x2c},
	        {"uv=true without built-in UV or PIN", "\x26", "\x07\xa1\x62uv\xf5", 6, 1, 0x2c},
	        {"options not a map", "\x26", "\x07\x01", 2, 1, 0x11},
	        {"option value not bool", "\x26", "\x07\xa1\x62rk\x01", 6, 1, 0x11},
	        {"pinUvAuthParam without protocol", "\x26",
	                "\x08\x50"
	                "0123456789abcdef",
	                18, 1, 0x14},
	        {"pinUvAuthParam, protocol 3", "\x26",
	                "\x08\x50"
	                "0123456789abcdef"
	                "\x09\x03",
	                20, 2, 0x02},
	        {"pinUvAuthParam, no token issued", "\x26",
	                "\x08\x58\x20"
	                "0123456789abcdef0123456789abcdef"
	                "\x09\x02",
	                37, 2, 0x33},
	        {"enterprise attestation", "\x26", "\x0a\x01", 2, 1, 0x02},
	        {"excludeList not an array", "\x26", "\x05\xa0", 2, 1, 0x11},
	        {"excludeList of 17", "\x26",
	                "\x05\x91\xa0\xa0\xa0\xa0\xa0\xa0\xa0\xa0\xa0\xa0"
	                "\xa0\xa0\xa0\xa0\xa0\xa0\xa0",
	                19, 1, 0x15},
	        {"excludeList entry without id", "\x26", "\x05\x81\xa1\x64type\x6apublic-key", 19,
	                1, 0x14},
	        {"foreign excludeList entry", "\x26",
	                "\x05\x81\xa2\x62id\x41\x00\x64type\x6apublic-key", 24, 1, 0x00},
	};
	uint8_t req[512];
	VirtKey *k = key_default();
	uint32_t cid = do_init(k, 0);

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		size_t n = mc_req(
		        req, t[i].alg, strlen(t[i].alg), t[i].extra, t[i].extra_len, t[i].nextra);
		int s = cbor_status(k, 0, cid, req, n);
		if (s != t[i].status) {
			fprintf(stderr, "%s: status 0x%02x, want 0x%02x\n", t[i].what, s,
			        t[i].status);
			CHECK(false);
		}
		expect_nothing(k, 0);
	}
	virtkey_free(k);

	/* a PIN is set: no pinUvAuthParam is PIN_REQUIRED, an empty one is "touch, then
	 * PIN_INVALID" (libfido2's device selection) */
	{
		VirtKeyOptions o = {.touch = VIRTKEY_TOUCH_AUTO, .initial_pin = "1234"};
		size_t n;

		k = key_new(&o);
		cid = do_init(k, 0);
		n = mc_req(req, "\x26", 1, "", 0, 0);
		CHECK_EQ(cbor_status(k, 0, cid, req, n), 0x36);
		n = mc_req(req, "\x26", 1, "\x08\x40\x09\x02", 4, 2);
		CHECK_EQ(cbor_status(k, 0, cid, req, n), 0x31);
		n = mc_req(req, "\x26", 1, "\x08\x40", 2, 1); /* even without a protocol */
		CHECK_EQ(cbor_status(k, 0, cid, req, n), 0x31);
		/* getAssertion: "rk" is not an option there */
		CHECK_EQ(cbor_status(k, 0, cid,
		                 (const uint8_t *)"\x02\xa3\x01\x61x\x02\x58\x20"
		                                  "0123456789abcdef0123456789abcdef"
		                                  "\x05\xa1\x62rk\xf5",
		                 46),
		        0x2b);
		virtkey_free(k);
	}
}

static void test_get_next(void)
{
	uint8_t req[512], resp[1024];
	const uint8_t ga[] = "\x02\xa2\x01\x6ckeyward.test\x02\x58\x20"
	                     "0123456789abcdef0123456789abcdef";
	VirtKey *k = key_default();
	uint32_t cid = do_init(k, 0);
	size_t n, len;

	/* two resident credentials for different users of the same RP */
	for (int i = 0; i < 2; i++) {
		uint8_t *u;
		n = mc_req(req, "\x26", 1, "\x07\xa1\x62rk\xf5", 6, 1);
		u = memmem(req, n, "\x43uid", 4);
		CHECK(u);
		u[3] = (uint8_t)('0' + i);
		CHECK_EQ(cbor_status(k, 0, cid, req, n), 0x00);
	}
	CHECK_EQ(virtkey_credential_count(k, true), 2);

	/* numberOfCredentials (key 5) = 2 comes last; then one GetNextAssertion */
	CHECK_EQ(cbor(k, 0, cid, ga, sizeof(ga) - 1, resp, &len), 0x00);
	CHECK_EQ(resp[0], 0xa5);
	CHECK(resp[len - 2] == 0x05 && resp[len - 1] == 0x02);
	CHECK_EQ(cbor(k, 10, cid, (const uint8_t *)"\x08", 1, resp, &len), 0x00);
	CHECK_EQ(resp[0], 0xa4); /* no numberOfCredentials in the next ones */
	CHECK_EQ(cbor_status(k, 20, cid, (const uint8_t *)"\x08", 1), 0x30);

	/* any other command in between ends the sequence */
	CHECK_EQ(cbor_status(k, 30, cid, ga, sizeof(ga) - 1), 0x00);
	CHECK_EQ(cbor_status(k, 40, cid, (const uint8_t *)"\x04", 1), 0x00);
	CHECK_EQ(cbor_status(k, 50, cid, (const uint8_t *)"\x08", 1), 0x30);

	/* and so does the 30 s timer */
	CHECK_EQ(cbor_status(k, 100, cid, ga, sizeof(ga) - 1), 0x00);
	CHECK_EQ(cbor_status(k, 30101, cid, (const uint8_t *)"\x08", 1), 0x30);
	virtkey_free(k);
}

static void write_state(const char *path, const void *data, size_t len, mode_t mode)
{
	(void)unlink(path);
	CHECK_EQ(write_file_atomic(path, data, len, mode), 0);
}

static void test_state_validation(void)
{
	static const struct {
		const char *what;
		const char *data;
		size_t len;
		int error;
	} t[] = {
	        {"empty", "", 0, -EBADMSG},
	        {"not CBOR", "hello", 5, -EBADMSG},
	        {"not a map", "\x80", 1, -EBADMSG},
	        {"version 2", "\xa1\x01\x02", 3, -EPROTONOSUPPORT},
	        {"master key missing", "\xa4\x01\x01\x04\x08\x05\x00\x06\x80", 9, -EBADMSG},
	        {"short master key", "\xa5\x01\x01\x02\x41\x00\x04\x08\x05\x00\x06\x80", 12,
	                -EBADMSG},
	        {"unknown key", "\xa1\x07\x00", 3, -EBADMSG},
	        {"trailing bytes", "\xa0\x00", 2, -EBADMSG},
	};
	char dir[PATH_MAX], path[PATH_MAX + 16];
	const char *tmp = getenv("TMPDIR");
	VirtKeyOptions o = {.state_path = path};
	VirtKey *k = NULL;
	uint8_t good[200];
	size_t n = 0;

	snprintf(dir, sizeof(dir), "%s/virtkey-state.XXXXXX", tmp ? tmp : "/tmp");
	CHECK(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state", dir);
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		int r;
		write_state(path, t[i].data, t[i].len, 0600);
		r = virtkey_new(&o, &k);
		if (r != t[i].error) {
			fprintf(stderr, "%s: %d, want %d\n", t[i].what, r, t[i].error);
			CHECK(false);
		}
		CHECK(!k);
	}
	/* a minimal valid state loads; the same bytes readable by others do not */
	memcpy(good, "\xa5\x01\x01\x02\x58\x20", 6);
	n = 6;
	memset(good + n, 0x42, 32);
	n += 32;
	memcpy(good + n, "\x04\x03\x05\x00\x06\x80", 6);
	n += 6;
	write_state(path, good, n, 0600);
	CHECK_EQ(virtkey_new(&o, &k), 0);
	CHECK_EQ(virtkey_pin_retries(k), -ENOENT);
	k = virtkey_free(k);
	write_state(path, good, n, 0644);
	CHECK_EQ(virtkey_new(&o, &k), -EACCES);
	/* a new device writes its state at once, mode 0600 */
	(void)unlink(path);
	o.initial_pin = "4321";
	CHECK_EQ(virtkey_new(&o, &k), 0);
	k = virtkey_free(k);
	o.initial_pin = NULL;
	CHECK_EQ(virtkey_new(&o, &k), 0);
	CHECK_EQ(virtkey_pin_retries(k), 8);
	k = virtkey_free(k);
	if (!getenv("VIRTKEY_KEEP_TMP"))
		bench_rm_tree(dir);
}

static void test_getinfo_raw(void)
{
	VirtKey *k = key_default();
	uint32_t cid = do_init(k, 0);
	uint8_t resp[2048];
	size_t len;

	CHECK_EQ(cbor(k, 0, cid, (const uint8_t *)"\x04", 1, resp, &len), 0);
	CHECK(len > 16);
	CHECK_EQ(resp[0], 0xac); /* a map of 12 entries */
	CHECK_EQ(resp[1], 0x01); /* key 1 first: canonical order */
	virtkey_free(k);
}

static void test_unknown_cmd(void)
{
	VirtKey *k = key_default();
	uint32_t cid = do_init(k, 0);

	send_init(k, cid, 0x33, 0, NULL, 0, 0);
	expect_error(k, 0, cid, 0x01);
	send_init(k, cid, 0x03, 1, "\x00", 1, 0); /* U2F MSG: we advertise NMSG */
	expect_error(k, 0, cid, 0x01);
	send_init(k, cid, 0x3b, 1, "\x01", 1, 0); /* KEEPALIVE is device to host */
	expect_error(k, 0, cid, 0x01);
	expect_nothing(k, 0);
	virtkey_free(k);
}

static void test_msg_timeout(void)
{
	uint8_t data[100] = {};
	VirtKey *k = key_default();
	uint32_t cid = do_init(k, 1000);

	send_init(k, cid, 0x01, sizeof(data), data, 57, 1000);
	CHECK_EQ(virtkey_next_event_ms(k, 1000), 1500);
	expect_nothing(k, 1499);
	expect_error(k, 1500, cid, 0x05);
	CHECK_EQ(virtkey_next_event_ms(k, 1500), UINT64_MAX);
	/* a continuation after the timeout is ignored */
	send_cont(k, cid, 0, data, 43, 1600);
	expect_nothing(k, 1600);
	virtkey_free(k);
}

static void test_busy(void)
{
	uint8_t data[100] = {}, buf[128];
	VirtKeyOptions o = {.touch = VIRTKEY_TOUCH_NEVER};
	VirtKey *k = key_new(&o);
	uint32_t a = do_init(k, 0), b = do_init(k, 0);
	size_t len;

	/* A is in the middle of a message: B is told the device is busy */
	send_init(k, a, 0x01, sizeof(data), data, 57, 0);
	send_init(k, b, 0x01, 1, "x", 1, 0);
	expect_error(k, 0, b, 0x06);
	send_cont(k, b, 0, data, 10, 0);
	expect_error(k, 0, b, 0x06);
	send_cont(k, a, 0, data + 57, 43, 0);
	CHECK_EQ(recv_msg(k, 0, a, buf, sizeof(buf), &len), 0x81);
	CHECK_EQ(len, sizeof(data));

	/* A waits for a touch that never comes (authenticatorReset needs one) */
	send_msg(k, a, 0x10, (const uint8_t *)"\x07", 1, 10);
	expect_keepalive(k, 10, a, 2);
	send_init(k, b, 0x01, 1, "x", 1, 20);
	expect_error(k, 20, b, 0x06);
	send_init(k, a, 0x01, 1, "x", 1, 20);
	expect_error(k, 20, a, 0x06);
	/* CANCEL from another channel does nothing */
	send_init(k, b, 0x11, 0, NULL, 0, 30);
	expect_nothing(k, 30);
	expect_keepalive(k, 110, a, 2);
	/* CANCEL from A ends it with KEEPALIVE_CANCEL */
	send_init(k, a, 0x11, 0, NULL, 0, 150);
	CHECK_EQ(recv_msg(k, 150, a, buf, sizeof(buf), &len), CBOR);
	CHECK_EQ(len, 1);
	CHECK_EQ(buf[0], 0x2d);
	expect_nothing(k, 1000);
	CHECK_EQ(virtkey_next_event_ms(k, 1000), UINT64_MAX);
	/* CANCEL with nothing pending: no reply */
	send_init(k, a, 0x11, 0, NULL, 0, 1000);
	expect_nothing(k, 1000);
	virtkey_free(k);
}

static void test_keepalive(void)
{
	VirtKeyOptions o = {.touch = VIRTKEY_TOUCH_AUTO, .touch_delay_ms = 250};
	VirtKey *k = key_new(&o);
	uint32_t cid = do_init(k, 0);
	uint8_t buf[16];
	size_t len;

	send_msg(k, cid, 0x10, (const uint8_t *)"\x07", 1, 1000);
	CHECK(virtkey_next_event_ms(k, 1000) <= 1000);
	expect_keepalive(k, 1000, cid, 2); /* UPNEEDED */
	expect_nothing(k, 1000);
	CHECK_EQ(virtkey_next_event_ms(k, 1000), 1100);
	expect_nothing(k, 1099);
	expect_keepalive(k, 1100, cid, 2);
	expect_keepalive(k, 1200, cid, 2);
	CHECK_EQ(virtkey_next_event_ms(k, 1200), 1250);
	expect_nothing(k, 1249);
	CHECK_EQ(recv_msg(k, 1250, cid, buf, sizeof(buf), &len), CBOR);
	CHECK_EQ(len, 1);
	CHECK_EQ(buf[0], 0x00);
	CHECK_EQ(virtkey_next_event_ms(k, 1250), UINT64_MAX);

	/* the touch setting is live: NEVER, then touched 30 ms after the change */
	virtkey_set_touch(k, VIRTKEY_TOUCH_NEVER, 0);
	send_msg(k, cid, 0x10, (const uint8_t *)"\x07", 1, 2000);
	expect_keepalive(k, 2000, cid, 2);
	expect_keepalive(k, 2100, cid, 2);
	virtkey_set_touch(k, VIRTKEY_TOUCH_AUTO, 30);
	CHECK_EQ(virtkey_next_event_ms(k, 2150), 2180);
	expect_nothing(k, 2150);
	CHECK_EQ(recv_msg(k, 2180, cid, buf, sizeof(buf), &len), CBOR);
	CHECK_EQ(buf[0], 0x00);
	virtkey_free(k);
}

static void test_processing(void)
{
	VirtKeyOptions o = {.touch = VIRTKEY_TOUCH_AUTO, .processing_delay_ms = 150};
	VirtKey *k = key_new(&o);
	uint32_t cid = do_init(k, 0);
	uint8_t buf[2048];
	size_t len;

	send_msg(k, cid, 0x10, (const uint8_t *)"\x04", 1, 0);
	expect_keepalive(k, 0, cid, 1); /* PROCESSING */
	expect_keepalive(k, 100, cid, 1);
	expect_nothing(k, 149);
	CHECK_EQ(recv_msg(k, 150, cid, buf, sizeof(buf), &len), CBOR);
	CHECK_EQ(buf[0], 0x00);
	virtkey_free(k);
}

static void test_deny_and_timeout(void)
{
	VirtKeyOptions o = {.touch = VIRTKEY_TOUCH_DENY, .touch_delay_ms = 40};
	VirtKey *k = key_new(&o);
	uint32_t cid = do_init(k, 0);
	uint8_t buf[16];
	size_t len;

	send_msg(k, cid, 0x10, (const uint8_t *)"\x07", 1, 0);
	expect_keepalive(k, 0, cid, 2);
	CHECK_EQ(recv_msg(k, 40, cid, buf, sizeof(buf), &len), CBOR);
	CHECK_EQ(buf[0], 0x27); /* OPERATION_DENIED */

	/* nobody touches: the key gives up after 30 s (USER_ACTION_TIMEOUT) */
	virtkey_set_touch(k, VIRTKEY_TOUCH_NEVER, 0);
	send_msg(k, cid, 0x10, (const uint8_t *)"\x07", 1, 1000);
	for (uint64_t t = 1000; t < 31000; t += 100)
		expect_keepalive(k, t, cid, 2);
	CHECK_EQ(virtkey_next_event_ms(k, 30999), 31000);
	CHECK_EQ(recv_msg(k, 31000, cid, buf, sizeof(buf), &len), CBOR);
	CHECK_EQ(buf[0], 0x2f);
	virtkey_free(k);
}

static void test_reset_window(void)
{
	VirtKeyOptions o = {.touch = VIRTKEY_TOUCH_AUTO, .reset_window = true};
	VirtKey *k = key_new(&o);
	uint32_t cid = do_init(k, 5000); /* power-up: the first report */

	CHECK_EQ(cbor_status(k, 15000, cid, (const uint8_t *)"\x07", 1), 0x00);
	CHECK_EQ(cbor_status(k, 15001, cid, (const uint8_t *)"\x07", 1), 0x30); /* NOT_ALLOWED */
	virtkey_power_cycle(k);
	cid = do_init(k, 20000);
	CHECK_EQ(cbor_status(k, 20100, cid, (const uint8_t *)"\x07", 1), 0x00);
	virtkey_free(k);
	/* without the option, reset works at any time */
	k = key_default();
	cid = do_init(k, 0);
	CHECK_EQ(cbor_status(k, 3600000, cid, (const uint8_t *)"\x07", 1), 0x00);
	virtkey_free(k);
}

static void test_lock(void)
{
	VirtKey *k = key_default();
	uint32_t a = do_init(k, 0), b = do_init(k, 0);
	uint8_t buf[8];
	size_t len;

	send_init(k, a, 0x04, 1, "\x0b", 1, 0); /* 11 s: more than the 10 allowed */
	expect_error(k, 0, a, 0x02);
	send_init(k, a, 0x04, 2, "\x01\x01", 2, 0);
	expect_error(k, 0, a, 0x03);
	send_init(k, a, 0x04, 1, "\x02", 1, 1000);
	CHECK_EQ(recv_msg(k, 1000, a, buf, sizeof(buf), &len), 0x84);
	CHECK_EQ(len, 0);
	send_init(k, b, 0x01, 1, "x", 1, 1500); /* locked by A */
	expect_error(k, 1500, b, 0x06);
	send_init(k, a, 0x01, 1, "x", 1, 1500);
	CHECK_EQ(recv_msg(k, 1500, a, buf, sizeof(buf), &len), 0x81);
	send_init(k, b, 0x01, 1, "x", 1, 3000); /* the lock ran out */
	CHECK_EQ(recv_msg(k, 3000, b, buf, sizeof(buf), &len), 0x81);
	send_init(k, a, 0x04, 1, "\x0a", 1, 4000);
	CHECK_EQ(recv_msg(k, 4000, a, buf, sizeof(buf), &len), 0x84);
	send_init(k, a, 0x04, 1, "\x00", 1, 4100); /* released */
	CHECK_EQ(recv_msg(k, 4100, a, buf, sizeof(buf), &len), 0x84);
	send_init(k, b, 0x01, 1, "x", 1, 4200);
	CHECK_EQ(recv_msg(k, 4200, b, buf, sizeof(buf), &len), 0x81);
	virtkey_free(k);
}

static void test_wink(void)
{
	VirtKey *k = key_default();
	uint32_t cid = do_init(k, 0);
	uint8_t buf[8];
	size_t len;

	CHECK_EQ(virtkey_wink_count(k), 0);
	send_init(k, cid, 0x08, 0, NULL, 0, 0);
	CHECK_EQ(recv_msg(k, 0, cid, buf, sizeof(buf), &len), 0x88);
	CHECK_EQ(len, 0);
	CHECK_EQ(virtkey_wink_count(k), 1);
	send_init(k, cid, 0x08, 1, "x", 1, 0);
	expect_error(k, 0, cid, 0x03);
	virtkey_free(k);
}

static void test_names(void)
{
	for (int i = 0; i < _VIRTKEY_TOUCH_MAX; i++)
		CHECK_EQ(virtkey_touch_from_string(virtkey_touch_to_string(i)), i);
	for (int i = 0; i < _VIRTKEY_COUNTER_MAX; i++)
		CHECK_EQ(virtkey_counter_from_string(virtkey_counter_to_string(i)), i);
	CHECK_EQ(virtkey_touch_from_string("sometimes"), _VIRTKEY_TOUCH_INVALID);
	CHECK_EQ(virtkey_counter_from_string(NULL), _VIRTKEY_COUNTER_INVALID);
	CHECK(!virtkey_touch_to_string(_VIRTKEY_TOUCH_MAX));
	CHECK(streq(virtkey_touch_to_string(VIRTKEY_TOUCH_DENY), "deny"));
	CHECK(streq(virtkey_counter_to_string(VIRTKEY_COUNTER_REWOUND), "rewound"));
}

static void test_options(void)
{
	VirtKeyOptions o = {.touch = 7};
	VirtKey *k = NULL;

	CHECK_EQ(virtkey_new(&o, &k), -EINVAL);
	o = (VirtKeyOptions){.pin_protocols = 0x08};
	CHECK_EQ(virtkey_new(&o, &k), -EINVAL);
	o = (VirtKeyOptions){.initial_pin = "123"}; /* shorter than minPINLength */
	CHECK_EQ(virtkey_new(&o, &k), -EINVAL);
	CHECK(!k);
	o = (VirtKeyOptions){.initial_pin = "1234"};
	k = key_new(&o);
	CHECK_EQ(virtkey_pin_retries(k), 8);
	virtkey_free(k);
	k = key_default();
	CHECK_EQ(virtkey_pin_retries(k), -ENOENT);
	virtkey_free(k);
}

static void test_attestation_ensure(void)
{
	char dir[PATH_MAX], ca[PATH_MAX + 64], ca2[PATH_MAX + 64];
	_cleanup_free_ char *d1 = NULL, *d2 = NULL;
	const char *tmp = getenv("TMPDIR");
	size_t l1, l2;

	snprintf(dir, sizeof(dir), "%s/virtkey-att.XXXXXX", tmp ? tmp : "/tmp");

	CHECK(mkdtemp(dir));
	CHECK_EQ(virtkey_attestation_ensure(dir, bench_aaguid), 0);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	CHECK_EQ(read_full_file_safe(ca, 0, 65536, &d1, &l1, NULL), 0);
	CHECK_EQ(virtkey_attestation_ensure(dir, bench_aaguid), 0); /* idempotent */
	CHECK_EQ(read_full_file_safe(ca, 0, 65536, &d2, &l2, NULL), 0);
	CHECK(l1 == l2 && memcmp(d1, d2, l1) == 0);
	{
		/* a second AAGUID gets its own batch certificate under the same CA */
		uint8_t other[16] = {0xaa};
		_cleanup_free_ char *hex = NULL;
		CHECK_EQ(virtkey_attestation_ensure(dir, other), 0);
		CHECK(hex_encode(other, 16, &hex) >= 0);
		snprintf(ca2, sizeof(ca2), "%s/batch-%.32s.pem", dir, hex);
		CHECK(access(ca2, F_OK) == 0);
	}
	if (!getenv("VIRTKEY_KEEP_TMP"))
		bench_rm_tree(dir);
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
        {"init", test_init},
        {"bad-channel", test_bad_channel},
        {"ping", test_ping},
        {"bad-seq", test_bad_seq},
        {"oversized", test_oversized},
        {"cbor-errors", test_cbor_errors},
        {"makecred-errors", test_makecred_errors},
        {"get-next", test_get_next},
        {"state-validation", test_state_validation},
        {"getinfo-raw", test_getinfo_raw},
        {"unknown-cmd", test_unknown_cmd},
        {"msg-timeout", test_msg_timeout},
        {"busy", test_busy},
        {"keepalive", test_keepalive},
        {"processing", test_processing},
        {"deny-timeout", test_deny_and_timeout},
        {"reset-window", test_reset_window},
        {"lock", test_lock},
        {"wink", test_wink},
        {"names", test_names},
        {"options", test_options},
        {"attestation-ensure", test_attestation_ensure},
};

int main(int argc, char *argv[])
{
	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		if (argc < 2 || streq(argv[1], cases[i].name)) {
			fprintf(stderr, "== %s\n", cases[i].name);
			cases[i].fn();
			if (argc >= 2)
				return EXIT_SUCCESS;
		}
	if (argc >= 2) {
		fprintf(stderr, "unknown case %s\n", argv[1]);
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}
