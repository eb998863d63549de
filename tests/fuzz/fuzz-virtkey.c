/* fuzz-virtkey.c: libFuzzer target for the virtkey request parsers — CTAPHID framing
 * and CTAP2 CBOR. The first input byte picks the mode:
 *   bit 0 clear: the rest is a stream of 64-byte HID output reports (raw framing);
 *   bit 0 set:   the rest is one CTAP2 request (command byte + CBOR), framed by us on
 *                a freshly allocated channel, so the fuzzer reaches the CBOR handlers;
 *   bit 1:       the key has a PIN ("1234"); bit 2: nobody touches it (keepalives,
 *                user action timeout); bit 3: CTAP 2.0 behaviour, PIN protocol 1 only;
 *   bit 4 with bit 0: several requests, each a 16-bit big-endian length + bytes;
 *   bit 5 with bit 0: a signed platform — the key has PIN "1234", resident credentials
 *                for two RPs (credProtect 1, 2, 3) and a non-resident one, made before the
 *                input; a request starting with 0x0a or 0x41 is CMD, SUB, then the encoded
 *                subCommandParams (may be empty), and the harness adds a valid
 *                pinUvAuthProtocol 2 / pinUvAuthParam from a cm token, so the fuzzer
 *                reaches the credential management handlers behind the auth check. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtkey-client.h"
#include "virtkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (16 * 1024)

static void die(const char *what)
{
	fprintf(stderr, "fuzz-virtkey: invariant broken: %s\n", what);
	abort();
}

static bool verbose;

/* Reads every report that is ready; checks each one's framing. */
static void drain(VirtKey *k, uint64_t now)
{
	uint8_t r[VIRTKEY_REPORT_SIZE];

	for (unsigned n = 0;; n++) {
		int ret = virtkey_hid_read(k, r, now);
		if (ret == 0)
			return;
		if (ret != 1)
			die("virtkey_hid_read returned neither 0 nor 1");
		if (n > 4096)
			die("endless output");
		if ((r[4] & 0x80) && ((size_t)r[5] << 8 | r[6]) > 7609)
			die("reply longer than CTAPHID allows");
		if (verbose && (r[4] & 0x80))
			fprintf(stderr,
			        "  t=%llu cid=%02x%02x%02x%02x cmd=0x%02x len=%u first=0x%02x\n",
			        (unsigned long long)now, r[0], r[1], r[2], r[3], r[4],
			        r[5] << 8 | r[6], r[7]);
	}
}

static void write_report(VirtKey *k, const uint8_t *p, size_t n, uint64_t now)
{
	uint8_t r[VIRTKEY_REPORT_SIZE] = {};

	memcpy(r, p, n < sizeof(r) ? n : sizeof(r));
	if (virtkey_hid_write(k, r, now) != 0)
		die("virtkey_hid_write failed");
}

static void frame_request(VirtKey *k, const uint8_t *req, size_t len, uint64_t *now)
{
	static const uint8_t init[] = {
	        0xff, 0xff, 0xff, 0xff, 0x86, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8};
	uint8_t r[VIRTKEY_REPORT_SIZE] = {};
	size_t off;

	/* channel 1 is the first one a new key hands out */
	write_report(k, init, sizeof(init), *now);
	drain(k, *now);
	r[0] = r[1] = r[2] = 0;
	r[3] = 1;
	r[4] = 0x90;
	r[5] = len >> 8;
	r[6] = len & 0xff;
	off = len < 57 ? len : 57;
	memcpy(r + 7, req, off);
	write_report(k, r, sizeof(r), *now);
	for (uint8_t seq = 0; off < len && seq < 0x80; seq++) {
		size_t n = len - off < 59 ? len - off : 59;
		memset(r + 4, 0, sizeof(r) - 4);
		r[4] = seq;
		memcpy(r + 5, req + off, n);
		write_report(k, r, sizeof(r), *now);
		off += n;
	}
}

typedef struct Platform {
	bool on;
	uint8_t token[VK_TOKEN_LEN];
} Platform;

/* Credentials and a cm token, through the handlers themselves (before any HID traffic). */
static void platform_setup(VirtKey *k, Platform *pf)
{
	static const struct {
		const char *rp, *user;
		bool rk;
		unsigned level;
	} creds[] = {
	        {"fuzz.example", "a", true, 1},
	        {"fuzz.example", "b", true, 2},
	        {"ssh:fuzz", "c", true, 3},
	        {"ssh:fuzz", "d", false, 3},
	};

	for (size_t i = 0; i < sizeof(creds) / sizeof(creds[0]); i++) {
		cbor_item_t *reply = NULL;
		if (vkc_make_credential(k, creds[i].rp, creds[i].user, creds[i].rk, creds[i].level,
		            "1234", NULL, &reply) != CTAP2_OK)
			die("platform: makeCredential");
		cbor_decref(&reply);
	}
	if (vkc_get_token(k, 2, "1234", PERM_CM, NULL, pf->token) != CTAP2_OK)
		die("platform: cm token");
	pf->on = true;
}

/* A request as the fuzzer gave it, or signed credential management (see the top). */
static void send_request(
        VirtKey *k, const Platform *pf, const uint8_t *req, size_t len, uint64_t *now)
{
	VkBuf params = {}, signed_req = {};

	if (!pf->on || len < 2 ||
	        (req[0] != CTAP_CMD_CRED_MGMT && req[0] != CTAP_CMD_CRED_MGMT_PRE)) {
		frame_request(k, req, len, now);
		return;
	}
	vk_buf_append(&params, req + 2, len - 2);
	if (vkc_credman_request(
	            req[0], req[1], len > 2 ? &params : NULL, 2, pf->token, &signed_req) < 0)
		die("platform: credman request");
	frame_request(k, signed_req.data, signed_req.len < 7609 ? signed_req.len : 7609, now);
	vk_buf_done(&params);
	vk_buf_done(&signed_req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Platform pf = {};
	VirtKeyOptions o = {
	        .aaguid = {0x66, 0x75, 0x7a, 0x7a},
	        .touch = VIRTKEY_TOUCH_AUTO,
	        .touch_delay_ms = 0,
	};
	VirtKey *k = NULL;
	uint64_t now = 1000;
	uint8_t mode;

	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	verbose = getenv("FUZZ_VIRTKEY_VERBOSE");
	mode = data[0];
	data++;
	size--;
	if (mode & 0x22)
		o.initial_pin = "1234";
	if (mode & 0x04)
		o.touch = VIRTKEY_TOUCH_NEVER;
	if ((mode & 0x08) && !(mode & 0x20)) {
		o.ctap20_only = true;
		o.pin_protocols = VIRTKEY_PIN_PROTOCOL_1;
	}
	if (virtkey_new(&o, &k) < 0)
		die("virtkey_new failed");
	if ((mode & 0x21) == 0x21)
		platform_setup(k, &pf);

	if ((mode & 0x11) == 0x11)
		/* several requests, each as a 16-bit big-endian length and the bytes */
		for (size_t off = 0; off + 2 <= size;) {
			size_t n = (size_t)data[off] << 8 | data[off + 1];
			off += 2;
			if (n > size - off)
				n = size - off;
			send_request(k, &pf, data + off, n, &now);
			drain(k, now);
			off += n;
			now += 50;
		}
	else if (mode & 0x01)
		send_request(k, &pf, data, size, &now);
	else
		for (size_t off = 0; off < size; off += VIRTKEY_REPORT_SIZE) {
			write_report(k, data + off, size - off, now);
			drain(k, now);
			now += 37;
		}
	drain(k, now);
	/* let every timer run out: keepalives, message and user action timeouts */
	for (int i = 0; i < 8; i++) {
		uint64_t next = virtkey_next_event_ms(k, now);
		if (next == UINT64_MAX)
			break;
		now = next > now + 40000 ? now + 40000 : (next > now ? next : now);
		drain(k, now);
		now += 5000;
	}
	drain(k, now + 60000);
	if (virtkey_next_event_ms(k, now + 60000) != UINT64_MAX)
		die("work still pending after a minute");
	virtkey_free(k);
	return 0;
}
