/* virtkey-credman.c: authenticatorCredentialManagement (CTAP 2.1 §6.8, and 0x41 of
 * 2.1-PRE): metadata, RP and credential enumeration, deleteCredential, updateUserInformation. */
#include "util.h"
#include "virtkey-internal.h"

void vk_credman_forget(VirtKey *k)
{
	k->cm_n = k->cm_pos = 0;
	k->cm_next = 0;
}

static size_t resident_count(const VirtKey *k)
{
	size_t n = 0;

	for (size_t i = 0; i < k->n_creds; i++)
		n += k->creds[i].resident;
	return n;
}

/* pinUvAuthParam = authenticate(token, subCommand || subCommandParams as sent), a token
 * with the cm permission, bound to no RP or to RP_ID. */
static int credman_auth(VirtKey *k, const VkParams *p, uint8_t sub, const uint8_t *req, size_t len,
        const char *rp_id)
{
	_cleanup_free_ uint8_t *msg = NULL;
	const uint8_t *param, *sp = NULL;
	size_t plen, splen = 0;
	unsigned proto;
	int r;

	if (!p->v[4])
		return CTAP2_ERR_PIN_REQUIRED; /* CTAP2_ERR_PUAT_REQUIRED: the same code */
	r = vk_get_pin_uv(k, p->v[4], p->v[3], &param, &plen, &proto);
	if (r != CTAP2_OK)
		return r;
	r = vk_cbor_map_value(req, len, 2, &sp, &splen);
	if (r == -ENOENT)
		splen = 0;
	else if (r < 0)
		return CTAP2_ERR_INVALID_CBOR;
	msg = malloc(1 + splen);
	if (!msg)
		return CTAP1_ERR_OTHER;
	msg[0] = sub;
	if (splen > 0)
		memcpy(msg + 1, sp, splen);
	return vk_check_token(k, proto, param, plen, msg, 1 + splen, PERM_CM, rp_id);
}

/* The RP ID the token may be bound to, when it hashes to RP_ID_HASH (else NULL). */
static const char *token_rp_for(VirtKey *k, const uint8_t rp_id_hash[32])
{
	uint8_t h[32];

	if (!k->token_rp_id || vk_sha256(k->token_rp_id, strlen(k->token_rp_id), h) < 0)
		return NULL;
	return memcmp(h, rp_id_hash, 32) == 0 ? k->token_rp_id : NULL;
}

static const VkCred *resident_of_rp(const VirtKey *k, const uint8_t rp_id_hash[32])
{
	for (size_t i = 0; i < k->n_creds; i++)
		if (k->creds[i].resident && memcmp(k->creds[i].rp_id_hash, rp_id_hash, 32) == 0)
			return &k->creds[i];
	return NULL;
}

static void write_rp(VirtKey *k, const uint8_t rp_id_hash[32], size_t total, VkBuf *resp)
{
	const VkCred *c = resident_of_rp(k, rp_id_hash);

	vk_cbor_map(resp, total > 0 ? 3 : 2);
	vk_cbor_uint(resp, 3);
	vk_cbor_map(resp, 1);
	vk_cbor_text(resp, "id");
	vk_cbor_text(resp, c ? c->rp_id : "");
	vk_cbor_uint(resp, 4);
	vk_cbor_bytes(resp, rp_id_hash, 32);
	if (total > 0) {
		vk_cbor_uint(resp, 5);
		vk_cbor_uint(resp, total);
	}
}

static int write_cred(VirtKey *k, const VkCred *c, size_t total, VkBuf *resp)
{
	EVP_PKEY *pkey = NULL;
	int alg, r;

	if (vk_cred_key(k, c, &alg, &pkey) < 0)
		return CTAP1_ERR_OTHER;
	vk_cbor_map(resp, total > 0 ? 5 : 4);
	vk_cbor_uint(resp, 6);
	vk_write_user(resp, c, true);
	vk_cbor_uint(resp, 7);
	vk_cbor_map(resp, 2);
	vk_cbor_text(resp, "id");
	vk_cbor_bytes(resp, c->id, sizeof(c->id));
	vk_cbor_text(resp, "type");
	vk_cbor_text(resp, "public-key");
	vk_cbor_uint(resp, 8);
	r = vk_cose_pubkey(resp, pkey, alg);
	EVP_PKEY_free(pkey);
	if (r < 0)
		return CTAP1_ERR_OTHER;
	if (total > 0) {
		vk_cbor_uint(resp, 9);
		vk_cbor_uint(resp, total);
	}
	vk_cbor_uint(resp, 10);
	vk_cbor_uint(resp, vk_cred_protect(c));
	return CTAP2_OK;
}

static int enumerate_rps(VirtKey *k, VkBuf *resp)
{
	k->cm_n = 0;
	for (size_t i = 0; i < k->n_creds; i++) {
		const VkCred *c = &k->creds[i];
		bool seen = false;

		if (!c->resident)
			continue;
		for (size_t j = 0; j < k->cm_n && !seen; j++)
			seen = memcmp(k->cm_rps[j], c->rp_id_hash, 32) == 0;
		if (!seen && k->cm_n < VK_MAX_RESIDENT)
			memcpy(k->cm_rps[k->cm_n++], c->rp_id_hash, 32);
	}
	if (k->cm_n == 0)
		return CTAP2_ERR_NO_CREDENTIALS;
	write_rp(k, k->cm_rps[0], k->cm_n, resp);
	k->cm_pos = 1;
	k->cm_next = CM_ENUMERATE_RPS_NEXT;
	return CTAP2_OK;
}

static int enumerate_creds(VirtKey *k, const uint8_t rp_id_hash[32], VkBuf *resp)
{
	k->cm_n = 0;
	for (size_t i = 0; i < k->n_creds && k->cm_n < VK_MAX_RESIDENT; i++)
		if (k->creds[i].resident && memcmp(k->creds[i].rp_id_hash, rp_id_hash, 32) == 0)
			k->cm_creds[k->cm_n++] = i;
	if (k->cm_n == 0)
		return CTAP2_ERR_NO_CREDENTIALS;
	k->cm_pos = 1;
	k->cm_next = CM_ENUMERATE_CREDS_NEXT;
	return write_cred(k, &k->creds[k->cm_creds[0]], k->cm_n, resp);
}

static int get_next(VirtKey *k, uint8_t sub, VkBuf *resp)
{
	size_t i;

	if (k->cm_next != sub || k->cm_pos >= k->cm_n) {
		vk_credman_forget(k);
		return CTAP2_ERR_NOT_ALLOWED;
	}
	i = k->cm_pos++;
	if (sub == CM_ENUMERATE_RPS_NEXT) {
		write_rp(k, k->cm_rps[i], 0, resp);
		return CTAP2_OK;
	}
	return write_cred(k, &k->creds[k->cm_creds[i]], 0, resp);
}

/* subCommandParams credentialID: the resident credential it names. */
static int named_cred(VirtKey *k, const VkParams *sp, VkCred **ret)
{
	const uint8_t *id;
	size_t n;
	VkCred *c;
	int r;

	if (!sp->v[2])
		return CTAP2_ERR_MISSING_PARAMETER;
	if (!vk_descriptor_id(sp->v[2], &id, &n, &r))
		return r != CTAP2_OK ? r : CTAP1_ERR_INVALID_PARAMETER;
	c = vk_cred_find(k, id, n);
	if (!c || !c->resident)
		return CTAP2_ERR_NO_CREDENTIALS;
	*ret = c;
	return CTAP2_OK;
}

static int update_user(VirtKey *k, VkCred *c, const cbor_item_t *user)
{
	_cleanup_free_ char *name = NULL, *display = NULL;
	const uint8_t *id;
	size_t n;
	int r;

	if (!user)
		return CTAP2_ERR_MISSING_PARAMETER;
	r = vk_parse_user(user, &id, &n, &name, &display);
	if (r != CTAP2_OK)
		return r;
	if (n != c->user_id_len || memcmp(id, c->user_id, n) != 0)
		return CTAP1_ERR_INVALID_PARAMETER;
	/* absent fields are removed (CTAP 2.1 §6.8.6) */
	free(c->user_name);
	free(c->user_display_name);
	c->user_name = TAKE_PTR(name);
	c->user_display_name = TAKE_PTR(display);
	return vk_state_save(k) < 0 ? CTAP1_ERR_OTHER : CTAP2_OK;
}

int vk_credman(VirtKey *k, const VkParams *p, const uint8_t *req, size_t len, VkBuf *resp)
{
	VkParams sp = {};
	uint64_t sub;
	const uint8_t *h;
	size_t n;
	VkCred *c;
	int r;

	if (!p->v[1])
		return CTAP2_ERR_MISSING_PARAMETER;
	if (vk_item_uint(p->v[1], &sub) < 0)
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (sub == CM_ENUMERATE_RPS_NEXT || sub == CM_ENUMERATE_CREDS_NEXT)
		return get_next(k, (uint8_t)sub, resp);
	vk_credman_forget(k);
	if (sub < CM_GET_CREDS_METADATA || sub > CM_UPDATE_USER)
		return CTAP2_ERR_INVALID_SUBCOMMAND;
	if (p->v[2]) {
		r = vk_params_parse(p->v[2], &sp);
		if (r != CTAP2_OK)
			return r;
	}

	switch (sub) {
	case CM_GET_CREDS_METADATA:
		r = credman_auth(k, p, (uint8_t)sub, req, len, NULL);
		if (r != CTAP2_OK)
			return r;
		n = resident_count(k);
		vk_cbor_map(resp, 2);
		vk_cbor_uint(resp, 1);
		vk_cbor_uint(resp, n);
		vk_cbor_uint(resp, 2);
		vk_cbor_uint(resp, n < VK_MAX_RESIDENT ? VK_MAX_RESIDENT - n : 0);
		return CTAP2_OK;
	case CM_ENUMERATE_RPS_BEGIN:
		r = credman_auth(k, p, (uint8_t)sub, req, len, NULL);
		if (r != CTAP2_OK)
			return r;
		return enumerate_rps(k, resp);
	case CM_ENUMERATE_CREDS_BEGIN:
		if (!p->v[2] || !sp.v[1])
			return CTAP2_ERR_MISSING_PARAMETER;
		if (vk_item_bytes(sp.v[1], &h, &n) < 0)
			return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
		if (n != 32)
			return CTAP1_ERR_INVALID_LENGTH;
		r = credman_auth(k, p, (uint8_t)sub, req, len, token_rp_for(k, h));
		if (r != CTAP2_OK)
			return r;
		return enumerate_creds(k, h, resp);
	default: /* delete, update */
		if (!p->v[2])
			return CTAP2_ERR_MISSING_PARAMETER;
		r = named_cred(k, &sp, &c);
		if (r == CTAP2_ERR_NO_CREDENTIALS) {
			/* authenticate first: no answer about credentials without a token */
			r = credman_auth(k, p, (uint8_t)sub, req, len, NULL);
			return r != CTAP2_OK ? r : CTAP2_ERR_NO_CREDENTIALS;
		}
		if (r != CTAP2_OK)
			return r;
		r = credman_auth(k, p, (uint8_t)sub, req, len, c->rp_id);
		if (r != CTAP2_OK)
			return r;
		if (sub == CM_UPDATE_USER)
			return update_user(k, c, sp.v[3]);
		vk_cred_remove(k, (size_t)(c - k->creds));
		return vk_state_save(k) < 0 ? CTAP1_ERR_OTHER : CTAP2_OK;
	}
}
