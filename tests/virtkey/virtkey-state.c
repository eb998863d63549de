/* virtkey-state.c: the canonical CBOR writer, the strict CBOR pre-check for untrusted
 * input, helpers to read libcbor items, and the persistent state file (CBOR). */
#include <openssl/crypto.h>

#include "util.h"
#include "virtkey-internal.h"

/* ---- CBOR writer ---- */

void vk_buf_append(VkBuf *b, const void *p, size_t n)
{
	if (b->failed || n == 0)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *d;
		while (cap < b->len + n)
			cap *= 2;
		if (cap > CTAPHID_MAX_MSG * 256) { /* nothing we write is this large */
			b->failed = true;
			return;
		}
		d = realloc(b->data, cap);
		if (!d) {
			b->failed = true;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void vk_buf_done(VkBuf *b)
{
	if (b->data)
		OPENSSL_cleanse(b->data, b->cap);
	free(b->data);
	*b = (VkBuf){};
}

void vk_cbor_head(VkBuf *b, uint8_t major, uint64_t v)
{
	uint8_t h[9];
	size_t n;

	major <<= 5;
	if (v < 24) {
		h[0] = major | (uint8_t)v;
		n = 1;
	} else if (v <= 0xff) {
		h[0] = major | 24;
		h[1] = (uint8_t)v;
		n = 2;
	} else if (v <= 0xffff) {
		h[0] = major | 25;
		h[1] = v >> 8;
		h[2] = v & 0xff;
		n = 3;
	} else if (v <= 0xffffffffu) {
		h[0] = major | 26;
		for (int i = 0; i < 4; i++)
			h[1 + i] = (v >> (24 - 8 * i)) & 0xff;
		n = 5;
	} else {
		h[0] = major | 27;
		for (int i = 0; i < 8; i++)
			h[1 + i] = (v >> (56 - 8 * i)) & 0xff;
		n = 9;
	}
	vk_buf_append(b, h, n);
}

void vk_cbor_uint(VkBuf *b, uint64_t v)
{
	vk_cbor_head(b, 0, v);
}

void vk_cbor_int(VkBuf *b, int64_t v)
{
	if (v >= 0)
		vk_cbor_head(b, 0, (uint64_t)v);
	else
		vk_cbor_head(b, 1, (uint64_t)(-1 - v));
}

void vk_cbor_bytes(VkBuf *b, const void *p, size_t n)
{
	vk_cbor_head(b, 2, n);
	vk_buf_append(b, p, n);
}

void vk_cbor_text(VkBuf *b, const char *s)
{
	size_t n = strlen(s);

	vk_cbor_head(b, 3, n);
	vk_buf_append(b, s, n);
}

void vk_cbor_bool(VkBuf *b, bool v)
{
	uint8_t c = v ? 0xf5 : 0xf4;

	vk_buf_append(b, &c, 1);
}

/* ---- strict pre-check ---- */

#define VK_CBOR_MAX_DEPTH 8

static int scan(const uint8_t *p, size_t len, size_t *pos, unsigned depth)
{
	uint8_t ib, major, ai;
	uint64_t v = 0;

	if (depth > VK_CBOR_MAX_DEPTH || *pos >= len)
		return -EBADMSG;
	ib = p[(*pos)++];
	major = ib >> 5;
	ai = ib & 0x1f;
	if (ai < 24)
		v = ai;
	else if (ai <= 27) {
		size_t n = (size_t)1 << (ai - 24);
		if (n > len - *pos)
			return -EBADMSG;
		for (size_t i = 0; i < n; i++)
			v = v << 8 | p[(*pos)++];
	} else
		return -EBADMSG; /* indefinite lengths and reserved values */

	switch (major) {
	case 0:
	case 1:
		return 0;
	case 2:
	case 3:
		if (v > len - *pos)
			return -EBADMSG;
		*pos += (size_t)v;
		return 0;
	case 4:
		if (v > len - *pos)
			return -EBADMSG;
		for (uint64_t i = 0; i < v; i++)
			if (scan(p, len, pos, depth + 1) < 0)
				return -EBADMSG;
		return 0;
	case 5:
		if (v > (len - *pos) / 2)
			return -EBADMSG;
		for (uint64_t i = 0; i < 2 * v; i++)
			if (scan(p, len, pos, depth + 1) < 0)
				return -EBADMSG;
		return 0;
	case 6:
		return -EBADMSG; /* CTAP2 uses no tags */
	default:
		if (ai < 20 || (ai == 24 && v < 32))
			return -EBADMSG; /* unassigned or badly encoded simple value */
		return 0;
	}
}

int vk_cbor_check(const uint8_t *p, size_t len)
{
	size_t pos = 0;

	if (!p || len == 0)
		return -EBADMSG;
	if (scan(p, len, &pos, 0) < 0 || pos != len)
		return -EBADMSG;
	return 0;
}

int vk_cbor_map_value(
        const uint8_t *p, size_t len, uint64_t key, const uint8_t **ret, size_t *ret_len)
{
	size_t pos = 0, start;
	uint64_t n = 0;
	uint8_t ai;

	if (vk_cbor_check(p, len) < 0 || p[0] >> 5 != 5)
		return -EBADMSG;
	ai = p[pos++] & 0x1f;
	if (ai < 24)
		n = ai;
	else
		for (size_t i = 0; i < (size_t)1 << (ai - 24); i++)
			n = n << 8 | p[pos++];
	for (uint64_t i = 0; i < n; i++) {
		bool match = p[pos] == key && key < 24; /* small unsigned keys, as CTAP uses */

		if (scan(p, len, &pos, 0) < 0)
			return -EBADMSG;
		start = pos;
		if (scan(p, len, &pos, 0) < 0)
			return -EBADMSG;
		if (match) {
			*ret = p + start;
			*ret_len = pos - start;
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- reading libcbor items ---- */

int vk_item_uint(const cbor_item_t *it, uint64_t *ret)
{
	if (!cbor_isa_uint(it))
		return -EBADMSG;
	*ret = cbor_get_int(it);
	return 0;
}

int vk_item_int(const cbor_item_t *it, int64_t *ret)
{
	uint64_t v;

	if (cbor_isa_uint(it)) {
		v = cbor_get_int(it);
		if (v > INT64_MAX)
			return -ERANGE;
		*ret = (int64_t)v;
		return 0;
	}
	if (cbor_isa_negint(it)) {
		v = cbor_get_int(it);
		if (v > INT64_MAX)
			return -ERANGE;
		*ret = -1 - (int64_t)v;
		return 0;
	}
	return -EBADMSG;
}

int vk_item_bytes(const cbor_item_t *it, const uint8_t **ret, size_t *ret_len)
{
	if (!cbor_isa_bytestring(it) || !cbor_bytestring_is_definite(it))
		return -EBADMSG;
	*ret = cbor_bytestring_handle(it);
	*ret_len = cbor_bytestring_length(it);
	return 0;
}

/* A text string without NUL bytes, at most max bytes, copied into a C string. */
int vk_item_text(const cbor_item_t *it, size_t max, char **ret)
{
	const uint8_t *p;
	size_t n;
	char *s;

	if (!cbor_isa_string(it) || !cbor_string_is_definite(it))
		return -EBADMSG;
	p = cbor_string_handle(it);
	n = cbor_string_length(it);
	if (n > max || (n > 0 && memchr(p, 0, n)))
		return -EMSGSIZE;
	s = malloc(n + 1);
	if (!s)
		return -ENOMEM;
	if (n > 0)
		memcpy(s, p, n);
	s[n] = 0;
	*ret = s;
	return 0;
}

bool vk_item_text_eq(const cbor_item_t *it, const char *s)
{
	size_t n = strlen(s);

	return cbor_isa_string(it) && cbor_string_is_definite(it) && cbor_string_length(it) == n &&
	       memcmp(cbor_string_handle(it), s, n) == 0;
}

int vk_item_bool(const cbor_item_t *it, bool *ret)
{
	if (!cbor_is_bool(it))
		return -EBADMSG;
	*ret = cbor_get_bool(it);
	return 0;
}

/* ---- persistent state ---- */

void vk_cred_clear(VkCred *c)
{
	free(c->rp_id);
	free(c->user_name);
	free(c->user_display_name);
	OPENSSL_cleanse(c, sizeof(*c));
}

void vk_state_wipe(VirtKey *k)
{
	for (size_t i = 0; i < k->n_creds; i++)
		vk_cred_clear(&k->creds[i]);
	free(k->creds);
	k->creds = NULL;
	k->n_creds = 0;
	k->pin_set = false;
	OPENSSL_cleanse(k->pin_hash, sizeof(k->pin_hash));
	k->pin_retries = VK_PIN_RETRIES_MAX;
	k->cred_seq = 0;
	(void)vk_random(k->master_key, sizeof(k->master_key));
}

int vk_state_save(VirtKey *k)
{
	VkBuf b = {};
	int r;

	if (!k->state_path)
		return 0;
	vk_cbor_map(&b, k->pin_set ? 6 : 5);
	vk_cbor_uint(&b, 1);
	vk_cbor_uint(&b, 1); /* format version */
	vk_cbor_uint(&b, 2);
	vk_cbor_bytes(&b, k->master_key, sizeof(k->master_key));
	if (k->pin_set) {
		vk_cbor_uint(&b, 3);
		vk_cbor_bytes(&b, k->pin_hash, sizeof(k->pin_hash));
	}
	vk_cbor_uint(&b, 4);
	vk_cbor_uint(&b, k->pin_retries);
	vk_cbor_uint(&b, 5);
	vk_cbor_uint(&b, k->cred_seq);
	vk_cbor_uint(&b, 6);
	vk_cbor_array(&b, k->n_creds);
	for (size_t i = 0; i < k->n_creds; i++) {
		const VkCred *c = &k->creds[i];
		unsigned n = 6 + (c->user_id_len > 0) + !!c->user_name + !!c->user_display_name;

		vk_cbor_map(&b, n);
		vk_cbor_uint(&b, 1);
		vk_cbor_bytes(&b, c->id, sizeof(c->id));
		vk_cbor_uint(&b, 2);
		vk_cbor_text(&b, c->rp_id);
		vk_cbor_uint(&b, 3);
		vk_cbor_bool(&b, c->resident);
		vk_cbor_uint(&b, 4);
		vk_cbor_uint(&b, c->counter);
		vk_cbor_uint(&b, 5);
		vk_cbor_int(&b, c->alg);
		vk_cbor_uint(&b, 6);
		vk_cbor_uint(&b, c->created);
		if (c->user_id_len > 0) {
			vk_cbor_uint(&b, 7);
			vk_cbor_bytes(&b, c->user_id, c->user_id_len);
		}
		if (c->user_name) {
			vk_cbor_uint(&b, 8);
			vk_cbor_text(&b, c->user_name);
		}
		if (c->user_display_name) {
			vk_cbor_uint(&b, 9);
			vk_cbor_text(&b, c->user_display_name);
		}
	}
	if (b.failed)
		r = -ENOMEM;
	else
		r = write_file_atomic(k->state_path, b.data, b.len, 0600);
	vk_buf_done(&b);
	return r;
}

static int load_cred(const cbor_item_t *m, VkCred *c)
{
	struct cbor_pair *pairs;
	unsigned seen = 0;

	if (!cbor_isa_map(m) || !cbor_map_is_definite(m))
		return -EBADMSG;
	pairs = cbor_map_handle(m);
	for (size_t i = 0; i < cbor_map_size(m); i++) {
		const cbor_item_t *v = pairs[i].value;
		const uint8_t *p;
		uint64_t key, u;
		int64_t s;
		size_t n;

		if (vk_item_uint(pairs[i].key, &key) < 0 || key > 9 || key == 0 ||
		        (seen & (1u << key)))
			return -EBADMSG;
		seen |= 1u << key;
		switch (key) {
		case 1:
			if (vk_item_bytes(v, &p, &n) < 0 || n != VK_CRED_ID_LEN)
				return -EBADMSG;
			memcpy(c->id, p, n);
			break;
		case 2:
			if (vk_item_text(v, VK_MAX_RP_ID, &c->rp_id) < 0)
				return -EBADMSG;
			break;
		case 3:
			if (vk_item_bool(v, &c->resident) < 0)
				return -EBADMSG;
			break;
		case 4:
			if (vk_item_uint(v, &u) < 0 || u > UINT32_MAX)
				return -EBADMSG;
			c->counter = (uint32_t)u;
			break;
		case 5:
			if (vk_item_int(v, &s) < 0 || (s != COSE_ES256 && s != COSE_EDDSA))
				return -EBADMSG;
			c->alg = (int)s;
			break;
		case 6:
			if (vk_item_uint(v, &c->created) < 0)
				return -EBADMSG;
			break;
		case 7:
			if (vk_item_bytes(v, &p, &n) < 0 || n == 0 || n > VK_MAX_USER_ID)
				return -EBADMSG;
			memcpy(c->user_id, p, n);
			c->user_id_len = n;
			break;
		case 8:
			if (vk_item_text(v, VK_MAX_NAME, &c->user_name) < 0)
				return -EBADMSG;
			break;
		case 9:
			if (vk_item_text(v, VK_MAX_NAME, &c->user_display_name) < 0)
				return -EBADMSG;
			break;
		}
	}
	if ((seen & 0x7e) != 0x7e) /* keys 1..6 are required */
		return -EBADMSG;
	if (c->resident && c->user_id_len == 0)
		return -EBADMSG;
	/* an ID made resident belongs to a resident record (IDs from before the resident bit
	 * existed have it clear and stay valid either way) */
	if ((c->id[0] & VK_ID_RESIDENT) && !c->resident)
		return -EBADMSG;
	return vk_sha256(c->rp_id, strlen(c->rp_id), c->rp_id_hash);
}

static int load_state(VirtKey *k, const cbor_item_t *root)
{
	struct cbor_pair *pairs;
	unsigned seen = 0;

	if (!cbor_isa_map(root) || !cbor_map_is_definite(root))
		return -EBADMSG;
	pairs = cbor_map_handle(root);
	for (size_t i = 0; i < cbor_map_size(root); i++) {
		const cbor_item_t *v = pairs[i].value;
		const uint8_t *p;
		uint64_t key, u;
		size_t n;
		int r;

		if (vk_item_uint(pairs[i].key, &key) < 0 || key == 0 || key > 6 ||
		        (seen & (1u << key)))
			return -EBADMSG;
		seen |= 1u << key;
		switch (key) {
		case 1:
			if (vk_item_uint(v, &u) < 0 || u != 1)
				return -EPROTONOSUPPORT;
			break;
		case 2:
			if (vk_item_bytes(v, &p, &n) < 0 || n != sizeof(k->master_key))
				return -EBADMSG;
			memcpy(k->master_key, p, n);
			break;
		case 3:
			if (vk_item_bytes(v, &p, &n) < 0 || n != sizeof(k->pin_hash))
				return -EBADMSG;
			memcpy(k->pin_hash, p, n);
			k->pin_set = true;
			break;
		case 4:
			if (vk_item_uint(v, &u) < 0 || u > VK_PIN_RETRIES_MAX)
				return -EBADMSG;
			k->pin_retries = (unsigned)u;
			break;
		case 5:
			if (vk_item_uint(v, &k->cred_seq) < 0)
				return -EBADMSG;
			break;
		case 6:
			if (!cbor_isa_array(v) || !cbor_array_is_definite(v) ||
			        cbor_array_size(v) > VK_MAX_CREDENTIALS)
				return -EBADMSG;
			n = cbor_array_size(v);
			if (n == 0)
				break;
			k->creds = calloc(n, sizeof(VkCred));
			if (!k->creds)
				return -ENOMEM;
			for (size_t j = 0; j < n; j++) {
				k->n_creds++;
				r = load_cred(cbor_array_handle(v)[j], &k->creds[j]);
				if (r < 0)
					return r;
			}
			break;
		}
	}
	if ((seen & 0x76) != 0x76) /* 1, 2, 4, 5, 6 required; 3 only with a PIN */
		return -EBADMSG;
	return 0;
}

int vk_state_load(VirtKey *k)
{
	_cleanup_free_ char *data = NULL;
	struct cbor_load_result res;
	cbor_item_t *root;
	size_t len;
	int r;

	if (!k->state_path)
		return -ENOENT;
	r = read_full_file_safe(k->state_path, SAFE_FILE_NO_WORLD_WRITE | SAFE_FILE_NO_WORLD_READ,
	        VK_STATE_MAX, &data, &len, NULL);
	if (r < 0)
		return r;
	if (vk_cbor_check((const uint8_t *)data, len) < 0)
		return -EBADMSG;
	root = cbor_load((const uint8_t *)data, len, &res);
	if (!root)
		return -EBADMSG;
	r = load_state(k, root);
	cbor_decref(&root);
	OPENSSL_cleanse(data, len);
	if (r < 0) {
		for (size_t i = 0; i < k->n_creds; i++)
			vk_cred_clear(&k->creds[i]);
		free(k->creds);
		k->creds = NULL;
		k->n_creds = 0;
		k->pin_set = false;
		return r == -ENOENT ? -EBADMSG : r;
	}
	return 0;
}
