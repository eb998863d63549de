/* fuzz-virtkey.c: libFuzzer target for the virtkey request parsers — CTAPHID framing
 * and CTAP2 CBOR. The first input byte picks the mode:
 *   bit 0 clear: the rest is a stream of 64-byte HID output reports (raw framing);
 *   bit 0 set:   the rest is one CTAP2 request (command byte + CBOR), framed by us on
 *                a freshly allocated channel, so the fuzzer reaches the CBOR handlers;
 *   bit 1:       the key has a PIN ("1234"); bit 2: nobody touches it (keepalives,
 *                user action timeout); bit 3: CTAP 2.0 behaviour, PIN protocol 1 only;
 *   bit 4 with bit 0: several requests, each a 16-bit big-endian length + bytes. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT (16 * 1024)

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	VirtKeyOptions o = {
	        .aaguid = {0x66, 0x75, 0x7a, 0x7a},
	        .touch = VIRTKEY_TOUCH_AUTO,
	        .touch_delay_ms = 0,
	};
	VirtKey *k = NULL;
	uint64_t now = 1000;
	uint8_t mode;

	if (size < 1 || size > MAX_INPUT)
		return 0;
	verbose = getenv("FUZZ_VIRTKEY_VERBOSE");
	mode = data[0];
	data++;
	size--;
	if (mode & 0x02)
		o.initial_pin = "1234";
	if (mode & 0x04)
		o.touch = VIRTKEY_TOUCH_NEVER;
	if (mode & 0x08) {
		o.ctap20_only = true;
		o.pin_protocols = VIRTKEY_PIN_PROTOCOL_1;
	}
	if (virtkey_new(&o, &k) < 0)
		die("virtkey_new failed");

	if ((mode & 0x11) == 0x11)
		/* several requests, each as a 16-bit big-endian length and the bytes */
		for (size_t off = 0; off + 2 <= size;) {
			size_t n = (size_t)data[off] << 8 | data[off + 1];
			off += 2;
			if (n > size - off)
				n = size - off;
			frame_request(k, data + off, n, &now);
			drain(k, now);
			off += n;
			now += 50;
		}
	else if (mode & 0x01)
		frame_request(k, data, size, &now);
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
