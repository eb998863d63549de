/* virtkey.h: a software CTAP2/CTAPHID authenticator for tests — a pure core: HID reports
 * in, HID reports out, state that persists to a file. It sits behind umockdev
 * (keyward-testbed) and behind libfido2's fido_dev_set_io_functions() (unit tests). */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VIRTKEY_REPORT_SIZE 64

typedef struct VirtKey VirtKey;

typedef enum VirtKeyTouch {
	VIRTKEY_TOUCH_AUTO,  /* user presence given touch_delay_ms after it is requested */
	VIRTKEY_TOUCH_NEVER, /* never touched: the client times out / cancels */
	VIRTKEY_TOUCH_DENY,  /* the user refuses: CTAP2_ERR_OPERATION_DENIED */
	_VIRTKEY_TOUCH_MAX,
	_VIRTKEY_TOUCH_INVALID = -EINVAL,
} VirtKeyTouch;

typedef enum VirtKeyCounter {
	VIRTKEY_COUNTER_NORMAL,  /* per-credential counter, +1 per assertion */
	VIRTKEY_COUNTER_ZERO,    /* always reports 0 */
	VIRTKEY_COUNTER_REWOUND, /* reports a value below the last one (a cloned key) */
	_VIRTKEY_COUNTER_MAX,
	_VIRTKEY_COUNTER_INVALID = -EINVAL,
} VirtKeyCounter;

typedef struct VirtKeyOptions {
	uint8_t aaguid[16];
	/* NULL: in memory only; else loaded if present, saved atomically on every change */
	const char *state_path;
	/* CA + batch cert/key (created by virtkey_attestation_ensure); NULL: "none" only */
	const char *attestation_dir;
	/* set this PIN when the state is new (NULL: no PIN) */
	const char *initial_pin;
	VirtKeyTouch touch;
	uint32_t touch_delay_ms; /* default 5 */
	VirtKeyCounter counter;

	/* Additions (zero = default, so designated initialisers stay valid): */
	/* bit mask of VIRTKEY_PIN_PROTOCOL_1 | _2; 0: both, advertised as [2, 1] */
	uint8_t pin_protocols;
	/* a CTAP 2.0 key: versions FIDO_2_0 only, no pinUvAuthToken option (so clients use
	 * getPinToken, subcommand 5) */
	bool ctap20_only;
	/* every CBOR request takes this long, with PROCESSING keepalives */
	uint32_t processing_delay_ms;
	/* authenticatorReset only within 10 s of power-up (the first report after
	 * virtkey_new or virtkey_power_cycle), else CTAP2_ERR_NOT_ALLOWED, as CTAP 2.1 asks */
	bool reset_window;
} VirtKeyOptions;

#define VIRTKEY_PIN_PROTOCOL_1 (1u << 1)
#define VIRTKEY_PIN_PROTOCOL_2 (1u << 2)
/* Largest CTAP2 message advertised in GetInfo (maxMsgSize); CTAPHID itself takes 7609. */
#define VIRTKEY_MAX_CBOR_MSG 1200

/* Creates the test CA (DIR/ca.pem, DIR/ca.key) if absent, and a batch attestation
 * certificate for AAGUID (DIR/batch-<aaguid-hex>.pem/.key) signed by it, carrying the
 * id-fido-gen-ce-aaguid extension. Idempotent. */
int virtkey_attestation_ensure(const char *dir, const uint8_t aaguid[16]);

int virtkey_new(const VirtKeyOptions *opts, VirtKey **ret);
VirtKey *virtkey_free(VirtKey *k);

/* Host → device: one 64-byte HID output report (without the report id byte). */
int virtkey_hid_write(VirtKey *k, const uint8_t report[VIRTKEY_REPORT_SIZE], uint64_t now_ms);
/* Device → host: returns 1 and fills report when one is ready at now_ms, 0 if none. */
int virtkey_hid_read(VirtKey *k, uint8_t report[VIRTKEY_REPORT_SIZE], uint64_t now_ms);
/* Absolute time (ms, same clock as now_ms) at which a report will next become ready
 * (a keepalive, or the reply after touch), or UINT64_MAX when nothing is pending. A
 * report that is ready now gives a value <= now_ms. Advances the key's timers to now_ms
 * (like read and write do), so the answer is exact. */
uint64_t virtkey_next_event_ms(VirtKey *k, uint64_t now_ms);
/* Forget per-client transport state (channels, partial messages): a new client opened
 * the device. */
void virtkey_reset_transport(VirtKey *k);

/* Unplug and re-plug: transport reset, new key-agreement key and pinUvAuthToken, and the
 * consecutive-wrong-PIN block (PIN_AUTH_BLOCKED) lifts. Persistent state is kept. */
void virtkey_power_cycle(VirtKey *k);

/* Live settings: apply to a request already waiting for touch, too. */
void virtkey_set_touch(VirtKey *k, VirtKeyTouch touch, uint32_t delay_ms);
void virtkey_set_counter(VirtKey *k, VirtKeyCounter mode);

const char *virtkey_touch_to_string(VirtKeyTouch t);
VirtKeyTouch virtkey_touch_from_string(const char *s);
const char *virtkey_counter_to_string(VirtKeyCounter c);
VirtKeyCounter virtkey_counter_from_string(const char *s);

/* Observations for tests: CTAPHID_WINK requests seen; credentials stored (resident and
 * not); whether a PIN is set and its retries left. */
unsigned virtkey_wink_count(const VirtKey *k);
size_t virtkey_credential_count(const VirtKey *k, bool resident_only);
int virtkey_pin_retries(const VirtKey *k); /* -ENOENT: no PIN set */
