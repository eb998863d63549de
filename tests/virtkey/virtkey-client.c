/* virtkey-client.c: a minimal CTAP2 platform over vk_ctap_handle for unit tests and the
 * fuzz target: PIN tokens, signed credential management requests, CBOR lookups. */
#include <openssl/crypto.h>

#include "util.h"
#include "virtkey-client.h"

int vkc_call(VirtKey *k, const uint8_t *req, size_t len, cbor_item_t **ret_reply)
{
	VkBuf out = {};
	int r;

	*ret_reply = NULL;
	r = vk_ctap_handle(k, req, len, true, &out);
	if (r == CTAP2_OK && out.len > 0) {
		struct cbor_load_result res;
		*ret_reply = cbor_load(out.data, out.len, &res);
		if (!*ret_reply)
			r = CTAP2_ERR_INVALID_CBOR;
	}
	vk_buf_done(&out);
	return r;
}

int vkc_call_buf(VirtKey *k, uint8_t cmd, const VkBuf *b, cbor_item_t **ret_reply)
{
	_cleanup_free_ uint8_t *req = malloc(1 + (b ? b->len : 0));

	if (!req || (b && b->failed))
		return CTAP1_ERR_OTHER;
	req[0] = cmd;
	if (b && b->len > 0)
		memcpy(req + 1, b->data, b->len);
	return vkc_call(k, req, 1 + (b ? b->len : 0), ret_reply);
}

const cbor_item_t *vkc_get(const cbor_item_t *map, uint64_t key)
{
	if (!map || !cbor_isa_map(map))
		return NULL;
	for (size_t i = 0; i < cbor_map_size(map); i++) {
		const cbor_item_t *kk = cbor_map_handle(map)[i].key;
		if (cbor_isa_uint(kk) && cbor_get_int(kk) == key)
			return cbor_map_handle(map)[i].value;
	}
	return NULL;
}

const cbor_item_t *vkc_get_text(const cbor_item_t *map, const char *key)
{
	if (!map || !cbor_isa_map(map))
		return NULL;
	return vk_map_get(map, key);
}

/* COSE key -2/-3 (x, y) of the authenticator's key agreement key. */
static int peer_xy(const cbor_item_t *cose, const uint8_t **x, const uint8_t **y)
{
	size_t n = 0;

	if (!cose || !cbor_isa_map(cose))
		return -EBADMSG;
	*x = *y = NULL;
	for (size_t i = 0; i < cbor_map_size(cose); i++) {
		const cbor_item_t *kk = cbor_map_handle(cose)[i].key;
		const uint8_t **slot;
		if (!cbor_isa_negint(kk) || (cbor_get_int(kk) != 1 && cbor_get_int(kk) != 2))
			continue;
		slot = cbor_get_int(kk) == 1 ? x : y;
		if (vk_item_bytes(cbor_map_handle(cose)[i].value, slot, &n) < 0 || n != 32)
			return -EBADMSG;
	}
	return *x && *y ? 0 : -EBADMSG;
}

int vkc_get_token(VirtKey *k, unsigned proto, const char *pin, uint8_t perms, const char *rp_id,
        uint8_t ret_token[VK_TOKEN_LEN])
{
	cbor_item_t *reply = NULL;
	EVP_PKEY *ours = NULL;
	VkBuf b = {};
	const uint8_t *x, *y, *ct;
	uint8_t z[32], secret[64], h[32], enc[32], tok[VK_TOKEN_LEN + 16];
	size_t slen, elen, ctn, tn;
	int r;

	vk_cbor_map(&b, 2);
	vk_cbor_uint(&b, 1);
	vk_cbor_uint(&b, proto);
	vk_cbor_uint(&b, 2);
	vk_cbor_uint(&b, 2); /* getKeyAgreement */
	r = vkc_call_buf(k, CTAP_CMD_CLIENT_PIN, &b, &reply);
	vk_buf_done(&b);
	if (r != CTAP2_OK)
		goto out;
	r = CTAP1_ERR_OTHER;
	if (peer_xy(vkc_get(reply, 1), &x, &y) < 0 || vk_ec_generate(&ours) < 0 ||
	        vk_ecdh(ours, x, y, z) < 0 || vk_pin_kdf(proto, z, secret, &slen) < 0 ||
	        vk_sha256(pin, strlen(pin), h) < 0 ||
	        vk_pin_encrypt(proto, secret, h, 16, enc, &elen) < 0)
		goto out;
	cbor_decref(&reply);

	vk_cbor_map(&b, perms ? (rp_id ? 6 : 5) : 4);
	vk_cbor_uint(&b, 1);
	vk_cbor_uint(&b, proto);
	vk_cbor_uint(&b, 2);
	vk_cbor_uint(&b, perms ? 9 : 5);
	vk_cbor_uint(&b, 3);
	if (vk_cose_pubkey(&b, ours, COSE_ECDH_ES_HKDF_256) < 0)
		goto out;
	vk_cbor_uint(&b, 6);
	vk_cbor_bytes(&b, enc, elen);
	if (perms) {
		vk_cbor_uint(&b, 9);
		vk_cbor_uint(&b, perms);
		if (rp_id) {
			vk_cbor_uint(&b, 10);
			vk_cbor_text(&b, rp_id);
		}
	}
	r = vkc_call_buf(k, CTAP_CMD_CLIENT_PIN, &b, &reply);
	if (r != CTAP2_OK)
		goto out;
	r = CTAP1_ERR_OTHER;
	if (vk_item_bytes(vkc_get(reply, 2), &ct, &ctn) < 0 || ctn > sizeof(tok) ||
	        vk_pin_decrypt(proto, secret, ct, ctn, tok, &tn) < 0 || tn != VK_TOKEN_LEN)
		goto out;
	memcpy(ret_token, tok, VK_TOKEN_LEN);
	r = CTAP2_OK;
out:
	if (reply)
		cbor_decref(&reply);
	vk_buf_done(&b);
	EVP_PKEY_free(ours);
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(tok, sizeof(tok));
	return r;
}

size_t vkc_auth(unsigned proto, const uint8_t token[VK_TOKEN_LEN], const uint8_t *msg, size_t n,
        uint8_t ret[32])
{
	if (vk_hmac_sha256(token, VK_TOKEN_LEN, msg, n, ret) < 0)
		return 0;
	return proto == 1 ? 16 : 32;
}

int vkc_credman_request(uint8_t cmd, uint8_t sub, const VkBuf *params, unsigned proto,
        const uint8_t *token, VkBuf *ret_req)
{
	_cleanup_free_ uint8_t *msg = NULL;
	size_t plen = params ? params->len : 0;
	uint8_t mac[32];
	VkBuf *b = ret_req;

	*b = (VkBuf){};
	vk_buf_append(b, &cmd, 1);
	vk_cbor_map(b, 1 + (params ? 1 : 0) + (token ? 2 : 0));
	vk_cbor_uint(b, 1);
	vk_cbor_uint(b, sub);
	if (params) {
		vk_cbor_uint(b, 2);
		vk_buf_append(b, params->data, params->len);
	}
	if (token) {
		msg = malloc(1 + plen);
		if (!msg)
			return -ENOMEM;
		msg[0] = sub;
		if (plen > 0)
			memcpy(msg + 1, params->data, plen);
		vk_cbor_uint(b, 3);
		vk_cbor_uint(b, proto);
		vk_cbor_uint(b, 4);
		vk_cbor_bytes(b, mac, vkc_auth(proto, token, msg, 1 + plen, mac));
	}
	return b->failed ? -ENOMEM : 0;
}

int vkc_credman(VirtKey *k, uint8_t cmd, uint8_t sub, const VkBuf *params, unsigned proto,
        const uint8_t *token, cbor_item_t **ret_reply)
{
	VkBuf req;
	int r;

	*ret_reply = NULL;
	if (vkc_credman_request(cmd, sub, params, proto, token, &req) < 0)
		r = CTAP1_ERR_OTHER;
	else
		r = vkc_call(k, req.data, req.len, ret_reply);
	vk_buf_done(&req);
	return r;
}

void vkc_id_list(VkBuf *b, uint64_t key, const uint8_t id[VK_CRED_ID_LEN])
{
	vk_cbor_uint(b, key);
	vk_cbor_array(b, 1);
	vk_cbor_map(b, 2);
	vk_cbor_text(b, "id");
	vk_cbor_bytes(b, id, VK_CRED_ID_LEN);
	vk_cbor_text(b, "type");
	vk_cbor_text(b, "public-key");
}

int vkc_make_credential(VirtKey *k, const char *rp, const char *user, bool rk, unsigned level,
        const char *pin, const uint8_t *exclude_id, cbor_item_t **ret_reply)
{
	uint8_t cdh[32], t[VK_TOKEN_LEN], mac[32];
	VkBuf b = {};
	int r;

	*ret_reply = NULL;
	if (vk_random(cdh, sizeof(cdh)) < 0)
		return CTAP1_ERR_OTHER;
	if (pin && (r = vkc_get_token(k, 2, pin, PERM_MC, rp, t)) != CTAP2_OK)
		return r;
	vk_cbor_map(&b, 4 + !!exclude_id + !!level + rk + (pin ? 2 : 0));
	vk_cbor_uint(&b, 1);
	vk_cbor_bytes(&b, cdh, 32);
	vk_cbor_uint(&b, 2);
	vk_cbor_map(&b, 1);
	vk_cbor_text(&b, "id");
	vk_cbor_text(&b, rp);
	vk_cbor_uint(&b, 3);
	vk_cbor_map(&b, 3);
	vk_cbor_text(&b, "id");
	vk_cbor_bytes(&b, user, strlen(user));
	vk_cbor_text(&b, "name");
	vk_cbor_text(&b, user);
	vk_cbor_text(&b, "displayName");
	vk_cbor_text(&b, "Display");
	vk_cbor_uint(&b, 4);
	vk_cbor_array(&b, 1);
	vk_cbor_map(&b, 2);
	vk_cbor_text(&b, "alg");
	vk_cbor_int(&b, COSE_ES256);
	vk_cbor_text(&b, "type");
	vk_cbor_text(&b, "public-key");
	if (exclude_id)
		vkc_id_list(&b, 5, exclude_id);
	if (level) {
		vk_cbor_uint(&b, 6);
		vk_cbor_map(&b, 1);
		vk_cbor_text(&b, "credProtect");
		vk_cbor_uint(&b, level);
	}
	if (rk) {
		vk_cbor_uint(&b, 7);
		vk_cbor_map(&b, 1);
		vk_cbor_text(&b, "rk");
		vk_cbor_bool(&b, true);
	}
	if (pin) {
		vk_cbor_uint(&b, 8);
		vk_cbor_bytes(&b, mac, vkc_auth(2, t, cdh, 32, mac));
		vk_cbor_uint(&b, 9);
		vk_cbor_uint(&b, 2);
	}
	r = vkc_call_buf(k, CTAP_CMD_MAKE_CREDENTIAL, &b, ret_reply);
	vk_buf_done(&b);
	OPENSSL_cleanse(t, sizeof(t));
	return r;
}
