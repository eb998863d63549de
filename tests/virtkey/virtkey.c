/* virtkey.c: the CTAPHID transport of the software authenticator — channels, framing,
 * keepalives, user presence timing — and the object's life cycle. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "util.h"
#include "virtkey-internal.h"

static const char *const touch_table[_VIRTKEY_TOUCH_MAX] = {
        [VIRTKEY_TOUCH_AUTO] = "auto",
        [VIRTKEY_TOUCH_NEVER] = "never",
        [VIRTKEY_TOUCH_DENY] = "deny",
};

static const char *const counter_table[_VIRTKEY_COUNTER_MAX] = {
        [VIRTKEY_COUNTER_NORMAL] = "normal",
        [VIRTKEY_COUNTER_ZERO] = "zero",
        [VIRTKEY_COUNTER_REWOUND] = "rewound",
};

const char *virtkey_touch_to_string(VirtKeyTouch t)
{
	if (t < 0 || t >= _VIRTKEY_TOUCH_MAX)
		return NULL;
	return touch_table[t];
}

VirtKeyTouch virtkey_touch_from_string(const char *s)
{
	if (!s)
		return _VIRTKEY_TOUCH_INVALID;
	for (int i = 0; i < _VIRTKEY_TOUCH_MAX; i++)
		if (streq(s, touch_table[i]))
			return (VirtKeyTouch)i;
	return _VIRTKEY_TOUCH_INVALID;
}

const char *virtkey_counter_to_string(VirtKeyCounter c)
{
	if (c < 0 || c >= _VIRTKEY_COUNTER_MAX)
		return NULL;
	return counter_table[c];
}

VirtKeyCounter virtkey_counter_from_string(const char *s)
{
	if (!s)
		return _VIRTKEY_COUNTER_INVALID;
	for (int i = 0; i < _VIRTKEY_COUNTER_MAX; i++)
		if (streq(s, counter_table[i]))
			return (VirtKeyCounter)i;
	return _VIRTKEY_COUNTER_INVALID;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* ---- output queue ---- */

static void outq_push(VirtKey *k, const uint8_t report[VIRTKEY_REPORT_SIZE])
{
	if (k->outq_n >= VK_OUTQ_MAX)
		return; /* a host that never reads loses replies, like a full hidraw queue */
	memcpy(k->outq[(k->outq_head + k->outq_n) % VK_OUTQ_MAX], report, VIRTKEY_REPORT_SIZE);
	k->outq_n++;
}

/* Frames one reply (cmd without the 0x80 bit) into init + continuation reports. */
static void send_msg(VirtKey *k, uint32_t cid, uint8_t cmd, const uint8_t *data, size_t len)
{
	uint8_t r[VIRTKEY_REPORT_SIZE];
	size_t off, n;

	if (len > CTAPHID_MAX_MSG)
		return;
	memset(r, 0, sizeof(r));
	put_be32(r, cid);
	r[4] = 0x80 | cmd;
	r[5] = len >> 8;
	r[6] = len & 0xff;
	n = len < CTAPHID_INIT_DATA ? len : CTAPHID_INIT_DATA;
	if (n > 0)
		memcpy(r + 7, data, n);
	outq_push(k, r);
	off = n;
	for (uint8_t seq = 0; off < len; seq++) {
		memset(r, 0, sizeof(r));
		put_be32(r, cid);
		r[4] = seq;
		n = len - off < CTAPHID_CONT_DATA ? len - off : CTAPHID_CONT_DATA;
		memcpy(r + 5, data + off, n);
		outq_push(k, r);
		off += n;
	}
}

static void send_error(VirtKey *k, uint32_t cid, uint8_t code)
{
	send_msg(k, cid, CTAPHID_ERROR, &code, 1);
}

static void send_cbor_status(
        VirtKey *k, uint32_t cid, uint8_t status, const uint8_t *body, size_t len)
{
	uint8_t buf[1 + VIRTKEY_MAX_CBOR_MSG];

	if (len > VIRTKEY_MAX_CBOR_MSG) {
		status = CTAP1_ERR_OTHER;
		len = 0;
	}
	buf[0] = status;
	if (len > 0)
		memcpy(buf + 1, body, len);
	send_msg(k, cid, CTAPHID_CBOR, buf, 1 + len);
}

/* ---- channels ---- */

static bool channel_known(VirtKey *k, uint32_t cid)
{
	for (size_t i = 0; i < k->n_channels; i++)
		if (k->channels[i] == cid)
			return true;
	return false;
}

static uint32_t channel_allocate(VirtKey *k)
{
	uint32_t cid;

	do {
		cid = k->next_cid++;
	} while (cid == 0 || cid == CTAPHID_BROADCAST_CID || channel_known(k, cid));
	if (k->n_channels == VK_MAX_CHANNELS) {
		/* forget the oldest channel */
		memmove(k->channels, k->channels + 1,
		        sizeof(k->channels[0]) * (VK_MAX_CHANNELS - 1));
		k->n_channels--;
	}
	k->channels[k->n_channels++] = cid;
	return cid;
}

/* ---- CBOR operations and user presence ---- */

static void op_finish(VirtKey *k)
{
	k->phase = VK_PHASE_NONE;
	k->op_len = 0;
}

static uint64_t touch_deadline(VirtKey *k, uint64_t from)
{
	if (k->touch == VIRTKEY_TOUCH_NEVER)
		return UINT64_MAX;
	return from + k->touch_delay_ms;
}

static void op_execute(VirtKey *k, bool up, uint64_t now)
{
	VkBuf resp = {};
	int r;

	k->now = now;
	r = vk_ctap_handle(k, k->op_req, k->op_len, up, &resp);
	if (r == VK_NEED_TOUCH && !up) {
		if (k->touch == VIRTKEY_TOUCH_AUTO && k->touch_delay_ms == 0) {
			vk_buf_done(&resp);
			op_execute(k, true, now);
			return;
		}
		k->phase = VK_PHASE_WAIT_TOUCH;
		k->op_started = now;
		k->op_deadline = touch_deadline(k, now);
		k->op_keepalive = now; /* first keepalive right away */
		k->touch_changed = false;
		vk_buf_done(&resp);
		return;
	}
	if (r == VK_NEED_TOUCH || resp.failed)
		send_cbor_status(k, k->op_cid, CTAP1_ERR_OTHER, NULL, 0);
	else
		send_cbor_status(k, k->op_cid, (uint8_t)r, resp.data, resp.len);
	vk_buf_done(&resp);
	op_finish(k);
}

static void send_keepalive(VirtKey *k, uint8_t status)
{
	send_msg(k, k->op_cid, CTAPHID_KEEPALIVE, &status, 1);
}

/* Advances time: partial-message timeout, processing delay, touch, keepalives. */
static void tick(VirtKey *k, uint64_t now)
{
	if (k->asm_active && now >= k->asm_last_ms + CTAPHID_MSG_TIMEOUT_MS) {
		k->asm_active = false;
		send_error(k, k->asm_cid, CTAPHID_ERR_MSG_TIMEOUT);
	}
	if (k->phase == VK_PHASE_PROCESSING && now >= k->op_deadline)
		op_execute(k, false, now);
	if (k->phase == VK_PHASE_WAIT_TOUCH) {
		if (k->touch_changed) {
			k->touch_changed = false;
			k->op_deadline = touch_deadline(k, now);
		}
		if (now >= k->op_deadline) {
			if (k->touch == VIRTKEY_TOUCH_DENY) {
				send_cbor_status(k, k->op_cid, CTAP2_ERR_OPERATION_DENIED, NULL, 0);
				op_finish(k);
			} else
				op_execute(k, true, now);
		} else if (now >= k->op_started + VK_USER_ACTION_TIMEOUT_MS) {
			send_cbor_status(k, k->op_cid, CTAP2_ERR_USER_ACTION_TIMEOUT, NULL, 0);
			op_finish(k);
		}
	}
	if (k->phase != VK_PHASE_NONE && now >= k->op_keepalive) {
		send_keepalive(k, k->phase == VK_PHASE_WAIT_TOUCH ? 2 : 1);
		k->op_keepalive = now + CTAPHID_KEEPALIVE_MS;
	}
}

static void dispatch(
        VirtKey *k, uint32_t cid, uint8_t cmd, const uint8_t *data, size_t len, uint64_t now)
{
	switch (cmd) {
	case CTAPHID_PING:
		send_msg(k, cid, CTAPHID_PING, data, len);
		break;
	case CTAPHID_LOCK:
		if (len != 1) {
			send_error(k, cid, CTAPHID_ERR_INVALID_LEN);
			break;
		}
		if (data[0] > 10) {
			send_error(k, cid, CTAPHID_ERR_INVALID_PAR);
			break;
		}
		k->lock_cid = cid;
		k->lock_until = data[0] == 0 ? 0 : now + 1000 * (uint64_t)data[0];
		send_msg(k, cid, CTAPHID_LOCK, NULL, 0);
		break;
	case CTAPHID_WINK:
		if (len != 0) {
			send_error(k, cid, CTAPHID_ERR_INVALID_LEN);
			break;
		}
		k->winks++;
		send_msg(k, cid, CTAPHID_WINK, NULL, 0);
		break;
	case CTAPHID_CBOR:
		if (len == 0) {
			send_error(k, cid, CTAPHID_ERR_INVALID_LEN);
			break;
		}
		if (len > VIRTKEY_MAX_CBOR_MSG) {
			send_cbor_status(k, cid, CTAP2_ERR_REQUEST_TOO_LARGE, NULL, 0);
			break;
		}
		k->op_cid = cid;
		memcpy(k->op_req, data, len);
		k->op_len = len;
		if (k->processing_delay_ms > 0) {
			k->phase = VK_PHASE_PROCESSING;
			k->op_deadline = now + k->processing_delay_ms;
			k->op_keepalive = now;
			tick(k, now);
		} else
			op_execute(k, false, now);
		break;
	default: /* MSG (U2F; we advertise NMSG), KEEPALIVE, ERROR, unknown */
		send_error(k, cid, CTAPHID_ERR_INVALID_CMD);
		break;
	}
}

static void handle_init(VirtKey *k, uint32_t cid, const uint8_t *report, size_t bcnt)
{
	uint8_t resp[17];
	uint32_t newcid;

	if (bcnt != 8) {
		send_error(k, cid, CTAPHID_ERR_INVALID_LEN);
		return;
	}
	if (cid == CTAPHID_BROADCAST_CID)
		newcid = channel_allocate(k);
	else {
		/* resynchronise this channel: drop whatever it was doing */
		if (k->asm_active && k->asm_cid == cid)
			k->asm_active = false;
		if (k->phase != VK_PHASE_NONE && k->op_cid == cid)
			op_finish(k);
		newcid = cid;
	}
	memcpy(resp, report + 7, 8);
	put_be32(resp + 8, newcid);
	resp[12] = 2; /* CTAPHID protocol version */
	resp[13] = 1; /* device version major.minor.build */
	resp[14] = 0;
	resp[15] = 0;
	resp[16] = 0x01 | 0x04 | 0x08; /* WINK | CBOR | NMSG */
	send_msg(k, cid, CTAPHID_INIT, resp, sizeof(resp));
}

int virtkey_hid_write(VirtKey *k, const uint8_t report[VIRTKEY_REPORT_SIZE], uint64_t now_ms)
{
	uint32_t cid;

	if (!k || !report)
		return -EINVAL;
	if (k->powered_ms == UINT64_MAX)
		k->powered_ms = now_ms;
	tick(k, now_ms);
	cid = be32(report);

	if (report[4] & 0x80) {
		uint8_t cmd = report[4] & 0x7f;
		size_t bcnt = (size_t)report[5] << 8 | report[6];

		if (cid == 0) {
			send_error(k, cid, CTAPHID_ERR_INVALID_CHANNEL);
			return 0;
		}
		if (cmd == CTAPHID_INIT) {
			if (cid != CTAPHID_BROADCAST_CID && !channel_known(k, cid))
				send_error(k, cid, CTAPHID_ERR_INVALID_CHANNEL);
			else
				handle_init(k, cid, report, bcnt);
			return 0;
		}
		if (cid == CTAPHID_BROADCAST_CID || !channel_known(k, cid)) {
			send_error(k, cid, CTAPHID_ERR_INVALID_CHANNEL);
			return 0;
		}
		if (cmd == CTAPHID_CANCEL) {
			if (k->phase != VK_PHASE_NONE && k->op_cid == cid) {
				send_cbor_status(k, cid, CTAP2_ERR_KEEPALIVE_CANCEL, NULL, 0);
				op_finish(k);
			}
			return 0; /* CANCEL has no reply of its own */
		}
		if (now_ms < k->lock_until && k->lock_cid != cid) {
			send_error(k, cid,
			        CTAPHID_ERR_CHANNEL_BUSY); /* another channel holds the lock */
			return 0;
		}
		if (k->asm_active) {
			if (k->asm_cid != cid)
				send_error(k, cid, CTAPHID_ERR_CHANNEL_BUSY);
			else {
				k->asm_active = false;
				send_error(k, cid, CTAPHID_ERR_INVALID_SEQ);
			}
			return 0;
		}
		if (k->phase != VK_PHASE_NONE) {
			send_error(k, cid, CTAPHID_ERR_CHANNEL_BUSY);
			return 0;
		}
		if (bcnt > CTAPHID_MAX_MSG) {
			send_error(k, cid, CTAPHID_ERR_INVALID_LEN);
			return 0;
		}
		if (bcnt <= CTAPHID_INIT_DATA) {
			dispatch(k, cid, cmd, report + 7, bcnt, now_ms);
			return 0;
		}
		k->asm_active = true;
		k->asm_cid = cid;
		k->asm_cmd = cmd;
		k->asm_seq = 0;
		k->asm_len = bcnt;
		memcpy(k->asm_buf, report + 7, CTAPHID_INIT_DATA);
		k->asm_got = CTAPHID_INIT_DATA;
		k->asm_last_ms = now_ms;
		return 0;
	}

	/* continuation packet */
	if (!k->asm_active)
		return 0; /* spurious continuation packets are ignored */
	if (k->asm_cid != cid) {
		if (channel_known(k, cid))
			send_error(k, cid, CTAPHID_ERR_CHANNEL_BUSY);
		return 0;
	}
	if (report[4] != k->asm_seq) {
		k->asm_active = false;
		send_error(k, cid, CTAPHID_ERR_INVALID_SEQ);
		return 0;
	}
	{
		size_t n = k->asm_len - k->asm_got;
		if (n > CTAPHID_CONT_DATA)
			n = CTAPHID_CONT_DATA;
		memcpy(k->asm_buf + k->asm_got, report + 5, n);
		k->asm_got += n;
	}
	k->asm_seq++;
	k->asm_last_ms = now_ms;
	if (k->asm_got == k->asm_len) {
		k->asm_active = false;
		dispatch(k, cid, k->asm_cmd, k->asm_buf, k->asm_len, now_ms);
	}
	return 0;
}

int virtkey_hid_read(VirtKey *k, uint8_t report[VIRTKEY_REPORT_SIZE], uint64_t now_ms)
{
	if (!k || !report)
		return -EINVAL;
	tick(k, now_ms);
	if (k->outq_n == 0)
		return 0;
	memcpy(report, k->outq[k->outq_head], VIRTKEY_REPORT_SIZE);
	k->outq_head = (k->outq_head + 1) % VK_OUTQ_MAX;
	k->outq_n--;
	return 1;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

uint64_t virtkey_next_event_ms(VirtKey *k, uint64_t now_ms)
{
	uint64_t t = UINT64_MAX;

	if (!k)
		return UINT64_MAX;
	/* bring timers up to now first (a touch setting changed meanwhile, a keepalive due),
	 * so that the answer is exact */
	tick(k, now_ms);
	if (k->outq_n > 0)
		return now_ms;
	if (k->asm_active)
		t = min_u64(t, k->asm_last_ms + CTAPHID_MSG_TIMEOUT_MS);
	if (k->phase != VK_PHASE_NONE) {
		t = min_u64(t, k->op_keepalive);
		t = min_u64(t, k->op_deadline);
		if (k->phase == VK_PHASE_WAIT_TOUCH)
			t = min_u64(t, k->op_started + VK_USER_ACTION_TIMEOUT_MS);
	}
	return t;
}

void virtkey_reset_transport(VirtKey *k)
{
	if (!k)
		return;
	k->n_channels = 0;
	k->asm_active = false;
	k->lock_until = 0;
	op_finish(k);
	k->outq_head = k->outq_n = 0;
	k->next_n = k->next_pos = 0;
}

void virtkey_power_cycle(VirtKey *k)
{
	if (!k)
		return;
	virtkey_reset_transport(k);
	vk_ctap_power_up(k);
	k->powered_ms = UINT64_MAX;
}

void virtkey_set_touch(VirtKey *k, VirtKeyTouch touch, uint32_t delay_ms)
{
	if (!k || touch < 0 || touch >= _VIRTKEY_TOUCH_MAX)
		return;
	k->touch = touch;
	k->touch_delay_ms = delay_ms;
	k->touch_changed = true;
}

void virtkey_set_counter(VirtKey *k, VirtKeyCounter mode)
{
	if (!k || mode < 0 || mode >= _VIRTKEY_COUNTER_MAX)
		return;
	k->counter_mode = mode;
}

unsigned virtkey_wink_count(const VirtKey *k)
{
	return k ? k->winks : 0;
}

size_t virtkey_credential_count(const VirtKey *k, bool resident_only)
{
	size_t n = 0;

	if (!k)
		return 0;
	for (size_t i = 0; i < k->n_creds; i++)
		if (!resident_only || k->creds[i].resident)
			n++;
	return n;
}

int virtkey_pin_retries(const VirtKey *k)
{
	if (!k)
		return -EINVAL;
	if (!k->pin_set)
		return -ENOENT;
	return (int)k->pin_retries;
}

int virtkey_new(const VirtKeyOptions *opts, VirtKey **ret)
{
	VirtKey *k;
	int r;

	if (!opts || !ret)
		return -EINVAL;
	if (opts->touch < 0 || opts->touch >= _VIRTKEY_TOUCH_MAX || opts->counter < 0 ||
	        opts->counter >= _VIRTKEY_COUNTER_MAX)
		return -EINVAL;
	if (opts->pin_protocols & ~(VIRTKEY_PIN_PROTOCOL_1 | VIRTKEY_PIN_PROTOCOL_2))
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	memcpy(k->aaguid, opts->aaguid, 16);
	k->touch = opts->touch;
	k->touch_delay_ms = opts->touch_delay_ms;
	k->counter_mode = opts->counter;
	k->pin_protocols = opts->pin_protocols ? opts->pin_protocols
	                                       : (VIRTKEY_PIN_PROTOCOL_1 | VIRTKEY_PIN_PROTOCOL_2);
	k->ctap20_only = opts->ctap20_only;
	k->processing_delay_ms = opts->processing_delay_ms;
	k->reset_window = opts->reset_window;
	k->powered_ms = UINT64_MAX;
	k->next_cid = 1;
	k->pin_retries = VK_PIN_RETRIES_MAX;
	if (opts->state_path) {
		k->state_path = strdup(opts->state_path);
		if (!k->state_path) {
			r = -ENOMEM;
			goto fail;
		}
	}
	if (opts->attestation_dir) {
		r = virtkey_attestation_ensure(opts->attestation_dir, k->aaguid);
		if (r < 0)
			goto fail;
		r = vk_attestation_load(k, opts->attestation_dir);
		if (r < 0)
			goto fail;
	}
	r = vk_state_load(k);
	if (r < 0 && r != -ENOENT)
		goto fail;
	if (r == -ENOENT) {
		/* a new device */
		r = vk_random(k->master_key, sizeof(k->master_key));
		if (r < 0)
			goto fail;
		if (opts->initial_pin) {
			size_t n = strlen(opts->initial_pin);
			if (n < 4 || n > 63) {
				r = -EINVAL;
				goto fail;
			}
			uint8_t h[32];
			r = vk_sha256(opts->initial_pin, n, h);
			if (r < 0)
				goto fail;
			memcpy(k->pin_hash, h, sizeof(k->pin_hash));
			k->pin_set = true;
		}
		r = vk_state_save(k);
		if (r < 0)
			goto fail;
	}
	vk_ctap_power_up(k);
	if (!k->ka_key) {
		r = -ENOMEM;
		goto fail;
	}
	*ret = k;
	return 0;
fail:
	virtkey_free(k);
	return r;
}

VirtKey *virtkey_free(VirtKey *k)
{
	if (!k)
		return NULL;
	for (size_t i = 0; i < k->n_creds; i++)
		vk_cred_clear(&k->creds[i]);
	free(k->creds);
	free(k->state_path);
	free(k->token_rp_id);
	EVP_PKEY_free(k->att_key);
	EVP_PKEY_free(k->ka_key);
	free(k->att_cert);
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
	return NULL;
}
