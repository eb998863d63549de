/* virtkey-ctap.c: the CTAP2 commands of the software authenticator — GetInfo,
 * MakeCredential, GetAssertion/GetNextAssertion, ClientPIN, Reset (CTAP 2.1, §6). */
#include <openssl/crypto.h>

#include "util.h"
#include "virtkey-internal.h"

#define FLAG_UP 0x01
#define FLAG_UV 0x04
#define FLAG_AT 0x40
#define FLAG_ED 0x80

static inline void cbor_itemp(cbor_item_t **p)
{
	if (*p)
		cbor_decref(p);
}

/* ---- request parameters ---- */

int vk_params_parse(const cbor_item_t *root, VkParams *p)
{
	struct cbor_pair *pairs;

	*p = (VkParams){};
	if (!cbor_isa_map(root) || !cbor_map_is_definite(root))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	pairs = cbor_map_handle(root);
	for (size_t i = 0; i < cbor_map_size(root); i++) {
		uint64_t key;
		if (vk_item_uint(pairs[i].key, &key) < 0)
			return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
		if (key >= ELEMENTSOF(p->v))
			continue;
		if (p->v[key])
			return CTAP2_ERR_INVALID_CBOR; /* duplicate key */
		p->v[key] = pairs[i].value;
	}
	return CTAP2_OK;
}

/* The value for a text key in a map, or NULL. */
const cbor_item_t *vk_map_get(const cbor_item_t *m, const char *key)
{
	struct cbor_pair *pairs = cbor_map_handle(m);

	for (size_t i = 0; i < cbor_map_size(m); i++)
		if (vk_item_text_eq(pairs[i].key, key))
			return pairs[i].value;
	return NULL;
}

bool vk_is_map(const cbor_item_t *it)
{
	return it && cbor_isa_map(it) && cbor_map_is_definite(it);
}

static bool is_array(const cbor_item_t *it)
{
	return it && cbor_isa_array(it) && cbor_array_is_definite(it);
}

static int get_cdh(const cbor_item_t *it, const uint8_t **ret)
{
	size_t n;

	if (!it)
		return CTAP2_ERR_MISSING_PARAMETER;
	if (vk_item_bytes(it, ret, &n) < 0)
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (n != 32)
		return CTAP1_ERR_INVALID_LENGTH;
	return CTAP2_OK;
}

/* Text of at most max bytes; longer values are cut at a UTF-8 boundary (CTAP 2.1 lets
 * authenticators truncate user and RP names). */
int vk_get_name(const cbor_item_t *it, char **ret)
{
	const uint8_t *p;
	size_t n;
	char *s;

	if (!cbor_isa_string(it) || !cbor_string_is_definite(it))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	p = cbor_string_handle(it);
	n = cbor_string_length(it);
	if (n > 0 && memchr(p, 0, n))
		return CTAP1_ERR_INVALID_PARAMETER;
	if (n > 64) {
		n = 64;
		while (n > 0 && (p[n] & 0xc0) == 0x80)
			n--;
	}
	s = malloc(n + 1);
	if (!s)
		return CTAP1_ERR_OTHER;
	if (n > 0)
		memcpy(s, p, n);
	s[n] = 0;
	*ret = s;
	return CTAP2_OK;
}

static int get_options(const cbor_item_t *it, int *rk, int *up, int *uv)
{
	struct cbor_pair *pairs;

	if (!it)
		return CTAP2_OK;
	if (!vk_is_map(it))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	pairs = cbor_map_handle(it);
	for (size_t i = 0; i < cbor_map_size(it); i++) {
		int *slot = NULL;
		bool b;

		if (!cbor_isa_string(pairs[i].key))
			return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
		if (vk_item_text_eq(pairs[i].key, "rk"))
			slot = rk;
		else if (vk_item_text_eq(pairs[i].key, "up"))
			slot = up;
		else if (vk_item_text_eq(pairs[i].key, "uv"))
			slot = uv;
		if (vk_item_bool(pairs[i].value, &b) < 0)
			return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
		if (slot)
			*slot = b;
	}
	return CTAP2_OK;
}

static bool protocol_supported(VirtKey *k, uint64_t proto)
{
	return (proto == 1 || proto == 2) && (k->pin_protocols & (1u << proto));
}

/* pinUvAuthParam (present) and pinUvAuthProtocol: common checks. */
int vk_get_pin_uv(VirtKey *k, const cbor_item_t *param, const cbor_item_t *proto_it,
        const uint8_t **ret_param, size_t *ret_len, unsigned *ret_proto)
{
	uint64_t proto;

	if (vk_item_bytes(param, ret_param, ret_len) < 0)
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (!proto_it)
		return CTAP2_ERR_MISSING_PARAMETER;
	if (vk_item_uint(proto_it, &proto) < 0)
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (!protocol_supported(k, proto))
		return CTAP1_ERR_INVALID_PARAMETER;
	*ret_proto = (unsigned)proto;
	return CTAP2_OK;
}

/* pinUvAuthParam (present) and pinUvAuthProtocol. A zero-length pinUvAuthParam is a
 * platform asking for a touch (device selection): after the touch the answer tells the
 * PIN state, before any protocol check (CTAP 2.1 §6.1.2 step 1). */
static int pin_uv_param(VirtKey *k, const cbor_item_t *param, const cbor_item_t *proto_it, bool up,
        const uint8_t **ret_param, size_t *ret_len, unsigned *ret_proto)
{
	const uint8_t *p;
	size_t n;

	if (vk_item_bytes(param, &p, &n) < 0)
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (n == 0) {
		if (!up)
			return VK_NEED_TOUCH;
		return k->pin_set ? CTAP2_ERR_PIN_INVALID : CTAP2_ERR_PIN_NOT_SET;
	}
	return vk_get_pin_uv(k, param, proto_it, ret_param, ret_len, ret_proto);
}

int vk_check_token(VirtKey *k, unsigned proto, const uint8_t *param, size_t plen,
        const uint8_t *msg, size_t mlen, uint8_t perm, const char *rp_id)
{
	if (!k->token_valid ||
	        !vk_pin_verify(proto, k->token, sizeof(k->token), msg, mlen, param, plen))
		return CTAP2_ERR_PIN_AUTH_INVALID;
	if (!(k->token_perms & perm))
		return CTAP2_ERR_PIN_AUTH_INVALID;
	if (k->token_rp_id && (!rp_id || !streq(k->token_rp_id, rp_id)))
		return CTAP2_ERR_PIN_AUTH_INVALID;
	return CTAP2_OK;
}

/* uv option without a pinUvAuthParam: this key has no built-in user verification. */
static int uv_option_error(VirtKey *k)
{
	if (k->pin_set)
		return CTAP2_ERR_PIN_REQUIRED;
	return k->ctap20_only ? CTAP2_ERR_UNSUPPORTED_OPTION : CTAP2_ERR_INVALID_OPTION;
}

bool vk_descriptor_id(const cbor_item_t *d, const uint8_t **ret_id, size_t *ret_len, int *ret_err)
{
	const cbor_item_t *id, *type;

	*ret_err = CTAP2_OK;
	if (!vk_is_map(d)) {
		*ret_err = CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
		return false;
	}
	id = vk_map_get(d, "id");
	type = vk_map_get(d, "type");
	if (!id || !type) {
		*ret_err = CTAP2_ERR_MISSING_PARAMETER;
		return false;
	}
	if (vk_item_bytes(id, ret_id, ret_len) < 0 || !cbor_isa_string(type)) {
		*ret_err = CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
		return false;
	}
	return vk_item_text_eq(type, "public-key");
}

VkCred *vk_cred_find(VirtKey *k, const uint8_t *id, size_t len)
{
	if (len != VK_CRED_ID_LEN)
		return NULL;
	for (size_t i = 0; i < k->n_creds; i++)
		if (memcmp(k->creds[i].id, id, VK_CRED_ID_LEN) == 0)
			return &k->creds[i];
	return NULL;
}

/* credProtect level carried by a credential ID (vk_wrap): 0 when none was asked for */
static unsigned id_protect(const uint8_t *id)
{
	return id[0] >> 4;
}

/* A resident credential's ID works only while the key stores the credential. */
static bool id_alive(VirtKey *k, const uint8_t *id, size_t n)
{
	return !(id[0] & VK_ID_RESIDENT) || vk_cred_find(k, id, n);
}

unsigned vk_cred_protect(const VkCred *c)
{
	unsigned level = id_protect(c->id);

	return level == VK_CRED_PROTECT_NONE ? VK_CRED_PROTECT_UV_OPTIONAL : level;
}

/* Whether a credential may be used without user verification (CTAP 2.1 §12.1): level 3
 * never; level 2 only when the platform named it in an allow list. */
static bool protect_allows(unsigned level, bool uv, bool in_allow_list)
{
	if (uv || level <= VK_CRED_PROTECT_UV_OPTIONAL)
		return true;
	return level == VK_CRED_PROTECT_UV_OPTIONAL_WITH_LIST && in_allow_list;
}

void vk_write_user(VkBuf *b, const VkCred *c, bool details)
{
	vk_cbor_map(b, 1 + (details && c->user_name) + (details && c->user_display_name));
	vk_cbor_text(b, "id");
	vk_cbor_bytes(b, c->user_id, c->user_id_len);
	if (details && c->user_name) {
		vk_cbor_text(b, "name");
		vk_cbor_text(b, c->user_name);
	}
	if (details && c->user_display_name) {
		vk_cbor_text(b, "displayName");
		vk_cbor_text(b, c->user_display_name);
	}
}

void vk_cred_remove(VirtKey *k, size_t i)
{
	vk_cred_clear(&k->creds[i]);
	memmove(&k->creds[i], &k->creds[i + 1], (k->n_creds - i - 1) * sizeof(VkCred));
	k->n_creds--;
}

static VkCred *cred_add(VirtKey *k)
{
	VkCred *c;

	if (k->n_creds >= VK_MAX_CREDENTIALS) {
		/* forget the oldest non-resident credential (its counter restarts) */
		size_t oldest = SIZE_MAX;
		for (size_t i = 0; i < k->n_creds; i++)
			if (!k->creds[i].resident &&
			        (oldest == SIZE_MAX ||
			                k->creds[i].created < k->creds[oldest].created))
				oldest = i;
		if (oldest == SIZE_MAX)
			return NULL;
		vk_cred_remove(k, oldest);
	}
	c = realloc(k->creds, (k->n_creds + 1) * sizeof(VkCred));
	if (!c)
		return NULL;
	k->creds = c;
	c = &k->creds[k->n_creds++];
	memset(c, 0, sizeof(*c));
	c->created = ++k->cred_seq;
	return c;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* ---- authenticatorGetInfo ---- */

static int get_info(VirtKey *k, VkBuf *b)
{
	unsigned nproto = !!(k->pin_protocols & VIRTKEY_PIN_PROTOCOL_2) +
	                  !!(k->pin_protocols & VIRTKEY_PIN_PROTOCOL_1);

	vk_cbor_map(b, 12);
	vk_cbor_uint(b, 0x01);
	if (k->ctap20_only) {
		vk_cbor_array(b, 1);
		vk_cbor_text(b, "FIDO_2_0");
	} else {
		vk_cbor_array(b, 2);
		vk_cbor_text(b, "FIDO_2_0");
		vk_cbor_text(b, "FIDO_2_1");
	}
	vk_cbor_uint(b, 0x02);
	vk_cbor_array(b, 1);
	vk_cbor_text(b, "credProtect");
	vk_cbor_uint(b, 0x03);
	vk_cbor_bytes(b, k->aaguid, 16);
	/* canonical order: shorter keys first */
	vk_cbor_uint(b, 0x04);
	vk_cbor_map(b, k->ctap20_only ? 3 : 6);
	vk_cbor_text(b, "rk");
	vk_cbor_bool(b, true);
	vk_cbor_text(b, "up");
	vk_cbor_bool(b, true);
	if (!k->ctap20_only) {
		vk_cbor_text(b, "credMgmt");
		vk_cbor_bool(b, true);
	}
	vk_cbor_text(b, "clientPin");
	vk_cbor_bool(b, k->pin_set);
	if (!k->ctap20_only) {
		vk_cbor_text(b, "pinUvAuthToken");
		vk_cbor_bool(b, true);
		vk_cbor_text(b, "credentialMgmtPreview");
		vk_cbor_bool(b, true);
	}
	vk_cbor_uint(b, 0x05);
	vk_cbor_uint(b, VIRTKEY_MAX_CBOR_MSG);
	vk_cbor_uint(b, 0x06);
	vk_cbor_array(b, nproto);
	if (k->pin_protocols & VIRTKEY_PIN_PROTOCOL_2)
		vk_cbor_uint(b, 2);
	if (k->pin_protocols & VIRTKEY_PIN_PROTOCOL_1)
		vk_cbor_uint(b, 1);
	vk_cbor_uint(b, 0x07);
	vk_cbor_uint(b, VK_MAX_ALLOW_LIST);
	vk_cbor_uint(b, 0x08);
	vk_cbor_uint(b, VK_CRED_ID_LEN);
	vk_cbor_uint(b, 0x09);
	vk_cbor_array(b, 1);
	vk_cbor_text(b, "usb");
	vk_cbor_uint(b, 0x0a);
	vk_cbor_array(b, 2);
	vk_cbor_map(b, 2);
	vk_cbor_text(b, "alg");
	vk_cbor_int(b, COSE_ES256);
	vk_cbor_text(b, "type");
	vk_cbor_text(b, "public-key");
	vk_cbor_map(b, 2);
	vk_cbor_text(b, "alg");
	vk_cbor_int(b, COSE_EDDSA);
	vk_cbor_text(b, "type");
	vk_cbor_text(b, "public-key");
	vk_cbor_uint(b, 0x0d);
	vk_cbor_uint(b, 4); /* minPINLength */
	vk_cbor_uint(b, 0x0e);
	vk_cbor_uint(b, 1); /* firmwareVersion */
	return CTAP2_OK;
}

/* ---- authenticatorMakeCredential ---- */

typedef struct MakeCred {
	const uint8_t *cdh;
	char *rp_id;
	uint8_t rp_id_hash[32];
	const uint8_t *user_id;
	size_t user_id_len;
	char *user_name, *user_display_name;
	int alg;
	unsigned cred_protect; /* 0: not asked for */
} MakeCred;

static void make_cred_done(MakeCred *m)
{
	free(m->rp_id);
	free(m->user_name);
	free(m->user_display_name);
}

int vk_parse_user(const cbor_item_t *user, const uint8_t **ret_id, size_t *ret_id_len,
        char **ret_name, char **ret_display)
{
	const cbor_item_t *it;
	int r;

	if (!vk_is_map(user))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	it = vk_map_get(user, "id");
	if (!it)
		return CTAP2_ERR_MISSING_PARAMETER;
	if (vk_item_bytes(it, ret_id, ret_id_len) < 0)
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (*ret_id_len == 0 || *ret_id_len > VK_MAX_USER_ID)
		return CTAP1_ERR_INVALID_LENGTH;
	it = vk_map_get(user, "name");
	if (it && (r = vk_get_name(it, ret_name)) != CTAP2_OK)
		return r;
	it = vk_map_get(user, "displayName");
	if (it && (r = vk_get_name(it, ret_display)) != CTAP2_OK)
		return r;
	return CTAP2_OK;
}

static int parse_rp_user(const VkParams *p, MakeCred *m)
{
	const cbor_item_t *it;
	int r;

	if (!p->v[2] || !p->v[3] || !p->v[4])
		return CTAP2_ERR_MISSING_PARAMETER;
	if (!vk_is_map(p->v[2]) || !vk_is_map(p->v[3]) || !is_array(p->v[4]))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	it = vk_map_get(p->v[2], "id");
	if (!it)
		return CTAP2_ERR_MISSING_PARAMETER;
	r = vk_item_text(it, VK_MAX_RP_ID, &m->rp_id);
	if (r == -EMSGSIZE)
		return CTAP1_ERR_INVALID_LENGTH;
	if (r < 0)
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (vk_sha256(m->rp_id, strlen(m->rp_id), m->rp_id_hash) < 0)
		return CTAP1_ERR_OTHER;
	it = vk_map_get(p->v[2], "name");
	if (it && !cbor_isa_string(it))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;

	r = vk_parse_user(
	        p->v[3], &m->user_id, &m->user_id_len, &m->user_name, &m->user_display_name);
	if (r != CTAP2_OK)
		return r;

	/* pubKeyCredParams: the first supported one wins */
	m->alg = 0;
	for (size_t i = 0; i < cbor_array_size(p->v[4]) && i < 32; i++) {
		const cbor_item_t *e = cbor_array_handle(p->v[4])[i], *alg, *type;
		int64_t a;

		if (!vk_is_map(e))
			return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
		alg = vk_map_get(e, "alg");
		type = vk_map_get(e, "type");
		if (!alg || !type)
			return CTAP2_ERR_MISSING_PARAMETER;
		if (vk_item_int(alg, &a) < 0 || !cbor_isa_string(type))
			return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
		if (m->alg == 0 && vk_item_text_eq(type, "public-key") &&
		        (a == COSE_ES256 || a == COSE_EDDSA))
			m->alg = (int)a;
	}
	return CTAP2_OK;
}

/* extensions: credProtect is the one this key knows; others are ignored */
static int get_cred_protect(const cbor_item_t *ext, unsigned *ret)
{
	const cbor_item_t *it;
	uint64_t v;

	*ret = VK_CRED_PROTECT_NONE;
	if (!ext)
		return CTAP2_OK;
	if (!vk_is_map(ext))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	it = vk_map_get(ext, "credProtect");
	if (!it)
		return CTAP2_OK;
	if (vk_item_uint(it, &v) < 0)
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (v < VK_CRED_PROTECT_UV_OPTIONAL || v > VK_CRED_PROTECT_MAX)
		return CTAP1_ERR_INVALID_PARAMETER;
	*ret = (unsigned)v;
	return CTAP2_OK;
}

static int att_obj(
        VirtKey *k, const uint8_t *auth, size_t auth_len, const uint8_t cdh[32], VkBuf *resp)
{
	uint8_t sig[80];
	size_t sig_len = sizeof(sig);
	_cleanup_free_ uint8_t *msg = NULL;

	vk_cbor_map(resp, 3);
	vk_cbor_uint(resp, 1);
	if (!k->att_key) {
		vk_cbor_text(resp, "none");
		vk_cbor_uint(resp, 2);
		vk_cbor_bytes(resp, auth, auth_len);
		vk_cbor_uint(resp, 3);
		vk_cbor_map(resp, 0);
		return CTAP2_OK;
	}
	msg = malloc(auth_len + 32);
	if (!msg)
		return CTAP1_ERR_OTHER;
	memcpy(msg, auth, auth_len);
	memcpy(msg + auth_len, cdh, 32);
	if (vk_sign(k->att_key, COSE_ES256, msg, auth_len + 32, sig, &sig_len) < 0)
		return CTAP1_ERR_OTHER;
	vk_cbor_text(resp, "packed");
	vk_cbor_uint(resp, 2);
	vk_cbor_bytes(resp, auth, auth_len);
	vk_cbor_uint(resp, 3);
	vk_cbor_map(resp, 3);
	vk_cbor_text(resp, "alg");
	vk_cbor_int(resp, COSE_ES256);
	vk_cbor_text(resp, "sig");
	vk_cbor_bytes(resp, sig, sig_len);
	vk_cbor_text(resp, "x5c");
	vk_cbor_array(resp, 1);
	vk_cbor_bytes(resp, k->att_cert, k->att_cert_len);
	return CTAP2_OK;
}

static int make_credential(VirtKey *k, const VkParams *p, bool up, VkBuf *resp)
{
	_cleanup_(make_cred_done) MakeCred m = {};
	const uint8_t *param = NULL;
	size_t plen = 0;
	unsigned proto = 0;
	int rk = 0, opt_up = -1, opt_uv = 0, r;
	bool uv = false;

	r = get_cdh(p->v[1], &m.cdh);
	if (r != CTAP2_OK)
		return r;
	r = parse_rp_user(p, &m);
	if (r != CTAP2_OK)
		return r;
	if (p->v[5] && !is_array(p->v[5]))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (p->v[5] && cbor_array_size(p->v[5]) > VK_MAX_ALLOW_LIST)
		return CTAP2_ERR_LIMIT_EXCEEDED;
	r = get_cred_protect(p->v[6], &m.cred_protect);
	if (r != CTAP2_OK)
		return r;
	r = get_options(p->v[7], &rk, &opt_up, &opt_uv);
	if (r != CTAP2_OK)
		return r;
	if (p->v[10])
		return CTAP1_ERR_INVALID_PARAMETER; /* no enterprise attestation */

	if (p->v[8]) {
		r = pin_uv_param(k, p->v[8], p->v[9], up, &param, &plen, &proto);
		if (r != CTAP2_OK)
			return r;
	}
	if (m.alg == 0)
		return CTAP2_ERR_UNSUPPORTED_ALGORITHM;
	if (opt_up == 0)
		return CTAP2_ERR_INVALID_OPTION;
	if (opt_uv == 1 && !param)
		return uv_option_error(k);
	if (k->pin_set && !param)
		return CTAP2_ERR_PIN_REQUIRED;
	if (param) {
		r = vk_check_token(k, proto, param, plen, m.cdh, 32, PERM_MC, m.rp_id);
		if (r != CTAP2_OK)
			return r;
		uv = true;
	}
	if (p->v[5]) {
		for (size_t i = 0; i < cbor_array_size(p->v[5]); i++) {
			const uint8_t *id;
			size_t n;
			if (!vk_descriptor_id(cbor_array_handle(p->v[5])[i], &id, &n, &r)) {
				if (r != CTAP2_OK)
					return r;
				continue;
			}
			if (vk_unwrap(k->master_key, id, n, m.rp_id_hash, NULL, NULL) == 0) {
				/* a level-3 credential stays hidden from a platform without UV */
				if (!protect_allows(id_protect(id), uv, true) ||
				        !id_alive(k, id, n))
					continue;
				if (!up)
					return VK_NEED_TOUCH;
				return CTAP2_ERR_CREDENTIAL_EXCLUDED;
			}
		}
	}
	if (!up)
		return VK_NEED_TOUCH;

	/* create the credential */
	{
		uint8_t secret[32], auth[37 + 16 + 2 + VK_CRED_ID_LEN + 128 + 16];
		EVP_PKEY *pkey = NULL;
		VkBuf cose = {};
		size_t auth_len, resident_count = 0, replace = SIZE_MAX;
		VkCred *c;

		if (rk) {
			for (size_t i = 0; i < k->n_creds; i++) {
				VkCred *o = &k->creds[i];
				if (!o->resident)
					continue;
				if (memcmp(o->rp_id_hash, m.rp_id_hash, 32) == 0 &&
				        o->user_id_len == m.user_id_len &&
				        memcmp(o->user_id, m.user_id, m.user_id_len) == 0)
					replace = i;
				else
					resident_count++;
			}
			if (resident_count >= VK_MAX_RESIDENT)
				return CTAP2_ERR_KEY_STORE_FULL;
		}
		if (vk_key_generate(m.alg, secret) < 0 ||
		        vk_key_from_secret(m.alg, secret, &pkey) < 0) {
			OPENSSL_cleanse(secret, sizeof(secret));
			return CTAP1_ERR_OTHER;
		}
		if (replace != SIZE_MAX)
			vk_cred_remove(k, replace);
		c = cred_add(k);
		if (!c || vk_wrap(k->master_key, m.alg, m.cred_protect, rk, secret, m.rp_id_hash,
		                  c->id) < 0) {
			OPENSSL_cleanse(secret, sizeof(secret));
			EVP_PKEY_free(pkey);
			if (c)
				vk_cred_remove(k, (size_t)(c - k->creds));
			return CTAP1_ERR_OTHER;
		}
		OPENSSL_cleanse(secret, sizeof(secret));
		c->rp_id = TAKE_PTR(m.rp_id);
		memcpy(c->rp_id_hash, m.rp_id_hash, 32);
		c->alg = m.alg;
		c->resident = rk;
		c->counter = 0;
		if (rk) {
			memcpy(c->user_id, m.user_id, m.user_id_len);
			c->user_id_len = m.user_id_len;
			c->user_name = TAKE_PTR(m.user_name);
			c->user_display_name = TAKE_PTR(m.user_display_name);
		}

		r = vk_cose_pubkey(&cose, pkey, m.alg);
		EVP_PKEY_free(pkey);
		if (m.cred_protect != VK_CRED_PROTECT_NONE) {
			/* the extension output (authData ED): the level the credential got */
			vk_cbor_map(&cose, 1);
			vk_cbor_text(&cose, "credProtect");
			vk_cbor_uint(&cose, m.cred_protect);
		}
		if (r < 0 || cose.failed || cose.len > 128 + 16) {
			vk_buf_done(&cose);
			return CTAP1_ERR_OTHER;
		}
		memcpy(auth, c->rp_id_hash, 32);
		auth[32] = FLAG_UP | (uv ? FLAG_UV : 0) | FLAG_AT |
		           (m.cred_protect != VK_CRED_PROTECT_NONE ? FLAG_ED : 0);
		put_be32(auth + 33, c->counter);
		memcpy(auth + 37, k->aaguid, 16);
		auth[53] = 0;
		auth[54] = VK_CRED_ID_LEN;
		memcpy(auth + 55, c->id, VK_CRED_ID_LEN);
		memcpy(auth + 55 + VK_CRED_ID_LEN, cose.data, cose.len);
		auth_len = 55 + VK_CRED_ID_LEN + cose.len;
		vk_buf_done(&cose);

		r = att_obj(k, auth, auth_len, m.cdh, resp);
		if (r != CTAP2_OK)
			return r;
		if (vk_state_save(k) < 0)
			return CTAP1_ERR_OTHER;
		if (uv)
			k->token_perms = 0; /* a token serves one makeCredential */
	}
	return CTAP2_OK;
}

/* ---- authenticatorGetAssertion / GetNextAssertion ---- */

static uint32_t next_counter(VirtKey *k, VkCred *c)
{
	switch (k->counter_mode) {
	case VIRTKEY_COUNTER_ZERO:
		return 0;
	case VIRTKEY_COUNTER_REWOUND:
		return c->counter > 0 ? c->counter - 1 : 0;
	default:
		if (c->counter < UINT32_MAX)
			c->counter++;
		return c->counter;
	}
}

int vk_cred_key(VirtKey *k, const VkCred *c, int *ret_alg, EVP_PKEY **ret)
{
	uint8_t secret[32];
	int r;

	r = vk_unwrap(k->master_key, c->id, sizeof(c->id), c->rp_id_hash, ret_alg, secret);
	if (r >= 0)
		r = vk_key_from_secret(*ret_alg, secret, ret);
	OPENSSL_cleanse(secret, sizeof(secret));
	return r;
}

static int assertion(
        VirtKey *k, VkCred *c, const uint8_t cdh[32], uint8_t flags, size_t n_total, VkBuf *resp)
{
	uint8_t msg[37 + 32], sig[80];
	size_t sig_len = sizeof(sig);
	EVP_PKEY *pkey = NULL;
	int alg, r;
	uint32_t counter;

	if (vk_cred_key(k, c, &alg, &pkey) < 0)
		return CTAP1_ERR_OTHER;
	counter = next_counter(k, c);
	memcpy(msg, c->rp_id_hash, 32);
	msg[32] = flags;
	put_be32(msg + 33, counter);
	memcpy(msg + 37, cdh, 32);
	r = vk_sign(pkey, alg, msg, sizeof(msg), sig, &sig_len);
	EVP_PKEY_free(pkey);
	if (r < 0)
		return CTAP1_ERR_OTHER;
	if (vk_state_save(k) < 0)
		return CTAP1_ERR_OTHER;

	vk_cbor_map(resp, 3 + (c->resident ? 1 : 0) + (n_total > 1 ? 1 : 0));
	vk_cbor_uint(resp, 1);
	vk_cbor_map(resp, 2);
	vk_cbor_text(resp, "id");
	vk_cbor_bytes(resp, c->id, sizeof(c->id));
	vk_cbor_text(resp, "type");
	vk_cbor_text(resp, "public-key");
	vk_cbor_uint(resp, 2);
	vk_cbor_bytes(resp, msg, 37);
	vk_cbor_uint(resp, 3);
	vk_cbor_bytes(resp, sig, sig_len);
	if (c->resident) {
		/* name and displayName only after user verification */
		vk_cbor_uint(resp, 4);
		vk_write_user(resp, c, flags & FLAG_UV);
	}
	if (n_total > 1) {
		vk_cbor_uint(resp, 5);
		vk_cbor_uint(resp, n_total);
	}
	return CTAP2_OK;
}

static int get_assertion(VirtKey *k, const VkParams *p, bool up, VkBuf *resp)
{
	_cleanup_free_ char *rp_id = NULL;
	uint8_t rp_id_hash[32];
	const uint8_t *cdh, *param = NULL;
	size_t plen = 0, n_found = 0;
	size_t found[VK_MAX_RESIDENT];
	unsigned proto = 0;
	int rk = -1, opt_up = -1, opt_uv = 0, r;
	bool uv = false, want_up;
	uint8_t flags;

	if (!p->v[1])
		return CTAP2_ERR_MISSING_PARAMETER;
	r = vk_item_text(p->v[1], VK_MAX_RP_ID, &rp_id);
	if (r == -EMSGSIZE)
		return CTAP1_ERR_INVALID_LENGTH;
	if (r < 0)
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (vk_sha256(rp_id, strlen(rp_id), rp_id_hash) < 0)
		return CTAP1_ERR_OTHER;
	r = get_cdh(p->v[2], &cdh);
	if (r != CTAP2_OK)
		return r;
	if (p->v[3] && !is_array(p->v[3]))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (p->v[3] && cbor_array_size(p->v[3]) > VK_MAX_ALLOW_LIST)
		return CTAP2_ERR_LIMIT_EXCEEDED;
	if (p->v[4] && !vk_is_map(p->v[4]))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	r = get_options(p->v[5], &rk, &opt_up, &opt_uv);
	if (r != CTAP2_OK)
		return r;

	if (p->v[6]) {
		r = pin_uv_param(k, p->v[6], p->v[7], up, &param, &plen, &proto);
		if (r != CTAP2_OK)
			return r;
	}
	if (rk != -1)
		return CTAP2_ERR_UNSUPPORTED_OPTION; /* "rk" means nothing in getAssertion */
	if (opt_uv == 1 && !param)
		return uv_option_error(k);
	if (param) {
		r = vk_check_token(k, proto, param, plen, cdh, 32, PERM_GA, rp_id);
		if (r != CTAP2_OK)
			return r;
		uv = true;
	}
	want_up = opt_up != 0;

	if (p->v[3] && cbor_array_size(p->v[3]) > 0) {
		for (size_t i = 0; i < cbor_array_size(p->v[3]) && n_found == 0; i++) {
			const uint8_t *id;
			size_t n;
			VkCred *c;

			if (!vk_descriptor_id(cbor_array_handle(p->v[3])[i], &id, &n, &r)) {
				if (r != CTAP2_OK)
					return r;
				continue;
			}
			if (vk_unwrap(k->master_key, id, n, rp_id_hash, NULL, NULL) < 0)
				continue;
			if (!protect_allows(id_protect(id), uv, true) || !id_alive(k, id, n))
				continue;
			c = vk_cred_find(k, id, n);
			if (!c) {
				/* ours, but the state that knew it is gone: adopt it */
				int alg;
				if (vk_unwrap(k->master_key, id, n, rp_id_hash, &alg, NULL) < 0 ||
				        !(c = cred_add(k)))
					return CTAP1_ERR_OTHER;
				memcpy(c->id, id, VK_CRED_ID_LEN);
				memcpy(c->rp_id_hash, rp_id_hash, 32);
				c->rp_id = strdup(rp_id);
				c->alg = alg;
				if (!c->rp_id) {
					vk_cred_remove(k, (size_t)(c - k->creds));
					return CTAP1_ERR_OTHER;
				}
			}
			found[n_found++] = (size_t)(c - k->creds);
		}
	} else {
		for (size_t i = 0; i < k->n_creds && n_found < VK_MAX_RESIDENT; i++)
			if (k->creds[i].resident &&
			        memcmp(k->creds[i].rp_id_hash, rp_id_hash, 32) == 0 &&
			        protect_allows(vk_cred_protect(&k->creds[i]), uv, false))
				found[n_found++] = i;
		/* most recently created first */
		for (size_t i = 1; i < n_found; i++)
			for (size_t j = i; j > 0 && k->creds[found[j]].created >
			                                    k->creds[found[j - 1]].created;
			        j--) {
				size_t t = found[j];
				found[j] = found[j - 1];
				found[j - 1] = t;
			}
	}
	if (n_found == 0)
		return CTAP2_ERR_NO_CREDENTIALS;
	if (want_up && !up)
		return VK_NEED_TOUCH;

	flags = (want_up ? FLAG_UP : 0) | (uv ? FLAG_UV : 0);
	r = assertion(k, &k->creds[found[0]], cdh, flags, p->v[3] ? 1 : n_found, resp);
	if (r != CTAP2_OK)
		return r;
	if (n_found > 1 && !p->v[3]) {
		memcpy(k->next_idx, found, n_found * sizeof(found[0]));
		k->next_n = n_found;
		k->next_pos = 1;
		memcpy(k->next_cdh, cdh, 32);
		k->next_flags = flags;
		k->next_deadline = k->now + VK_GET_NEXT_TIMEOUT_MS;
	}
	return CTAP2_OK;
}

static int get_next_assertion(VirtKey *k, VkBuf *resp)
{
	size_t i;

	if (k->next_n == 0 || k->next_pos >= k->next_n || k->now > k->next_deadline) {
		k->next_n = k->next_pos = 0;
		return CTAP2_ERR_NOT_ALLOWED;
	}
	i = k->next_idx[k->next_pos++];
	return assertion(k, &k->creds[i], k->next_cdh, k->next_flags, 1, resp);
}

/* ---- authenticatorClientPIN ---- */

void vk_ctap_regen_ka(VirtKey *k)
{
	EVP_PKEY *n = NULL;

	if (vk_ec_generate(&n) < 0)
		return; /* keep the old one */
	EVP_PKEY_free(k->ka_key);
	k->ka_key = n;
}

static void token_reset(VirtKey *k)
{
	(void)vk_random(k->token, sizeof(k->token));
	k->token_valid = false;
	k->token_perms = 0;
	free(k->token_rp_id);
	k->token_rp_id = NULL;
}

void vk_ctap_power_up(VirtKey *k)
{
	vk_ctap_regen_ka(k);
	token_reset(k);
	k->pin_consecutive_fails = 0;
	k->next_n = k->next_pos = 0;
}

static int shared_secret(
        VirtKey *k, unsigned proto, const cbor_item_t *cose, uint8_t ret[64], size_t *ret_len)
{
	const cbor_item_t *x = NULL, *y = NULL;
	struct cbor_pair *pairs;
	const uint8_t *xp, *yp;
	size_t xn, yn;
	uint8_t z[32];
	int r;

	if (!cose)
		return CTAP2_ERR_MISSING_PARAMETER;
	if (!vk_is_map(cose))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	pairs = cbor_map_handle(cose);
	for (size_t i = 0; i < cbor_map_size(cose); i++) {
		int64_t key, v;
		if (vk_item_int(pairs[i].key, &key) < 0)
			return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
		if (key == 1 && (vk_item_int(pairs[i].value, &v) < 0 || v != 2))
			return CTAP1_ERR_INVALID_PARAMETER;
		if (key == -1 && (vk_item_int(pairs[i].value, &v) < 0 || v != 1))
			return CTAP1_ERR_INVALID_PARAMETER;
		if (key == -2)
			x = pairs[i].value;
		if (key == -3)
			y = pairs[i].value;
	}
	if (!x || !y)
		return CTAP2_ERR_MISSING_PARAMETER;
	if (vk_item_bytes(x, &xp, &xn) < 0 || vk_item_bytes(y, &yp, &yn) < 0)
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (xn != 32 || yn != 32)
		return CTAP1_ERR_INVALID_PARAMETER;
	r = vk_ecdh(k->ka_key, xp, yp, z);
	if (r < 0)
		return CTAP1_ERR_INVALID_PARAMETER;
	r = vk_pin_kdf(proto, z, ret, ret_len);
	OPENSSL_cleanse(z, sizeof(z));
	return r < 0 ? CTAP1_ERR_OTHER : CTAP2_OK;
}

/* Checks a decrypted, zero-padded 64-byte new PIN; sets it. */
static int set_new_pin(VirtKey *k, const uint8_t *padded, size_t n)
{
	size_t len = 0, cps = 0;
	uint8_t h[32];

	if (n != 64)
		return CTAP1_ERR_INVALID_PARAMETER;
	while (len < 64 && padded[len] != 0)
		len++;
	if (len > 63)
		return CTAP2_ERR_PIN_POLICY_VIOLATION;
	for (size_t i = 0; i < len; i++)
		if ((padded[i] & 0xc0) != 0x80)
			cps++;
	if (cps < 4)
		return CTAP2_ERR_PIN_POLICY_VIOLATION;
	if (vk_sha256(padded, len, h) < 0)
		return CTAP1_ERR_OTHER;
	memcpy(k->pin_hash, h, sizeof(k->pin_hash));
	OPENSSL_cleanse(h, sizeof(h));
	k->pin_set = true;
	k->pin_retries = VK_PIN_RETRIES_MAX;
	k->pin_consecutive_fails = 0;
	return vk_state_save(k) < 0 ? CTAP1_ERR_OTHER : CTAP2_OK;
}

/* Decrements the retries, then compares pinHashEnc with the stored PIN hash. */
static int check_pin_hash(VirtKey *k, unsigned proto, const uint8_t *secret, const cbor_item_t *enc)
{
	uint8_t pt[32];
	const uint8_t *ct;
	size_t n, ptn;
	bool ok;

	if (!enc)
		return CTAP2_ERR_MISSING_PARAMETER;
	if (vk_item_bytes(enc, &ct, &n) < 0)
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (n != (proto == 1 ? 16u : 32u))
		return CTAP1_ERR_INVALID_PARAMETER;
	if (k->pin_retries == 0)
		return CTAP2_ERR_PIN_BLOCKED;
	if (k->pin_consecutive_fails >= VK_PIN_AUTH_BLOCK)
		return CTAP2_ERR_PIN_AUTH_BLOCKED;
	k->pin_retries--;
	if (vk_state_save(k) < 0)
		return CTAP1_ERR_OTHER;
	if (vk_pin_decrypt(proto, secret, ct, n, pt, &ptn) < 0 || ptn != 16)
		return CTAP1_ERR_OTHER;
	ok = memcmp_const(pt, k->pin_hash, 16) == 0;
	OPENSSL_cleanse(pt, sizeof(pt));
	if (!ok) {
		vk_ctap_regen_ka(k);
		k->pin_consecutive_fails++;
		if (k->pin_retries == 0)
			return CTAP2_ERR_PIN_BLOCKED;
		if (k->pin_consecutive_fails >= VK_PIN_AUTH_BLOCK)
			return CTAP2_ERR_PIN_AUTH_BLOCKED;
		return CTAP2_ERR_PIN_INVALID;
	}
	k->pin_retries = VK_PIN_RETRIES_MAX;
	k->pin_consecutive_fails = 0;
	return vk_state_save(k) < 0 ? CTAP1_ERR_OTHER : CTAP2_OK;
}

static int client_pin(VirtKey *k, const VkParams *p, VkBuf *resp)
{
	uint8_t secret[64], pt[64 + 16];
	size_t slen = 0, ptn;
	const uint8_t *param, *enc;
	size_t plen, elen;
	uint64_t sub, proto = 0;
	int r;

	if (!p->v[2])
		return CTAP2_ERR_MISSING_PARAMETER;
	if (vk_item_uint(p->v[2], &sub) < 0)
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (sub == 1) { /* getPINRetries */
		vk_cbor_map(resp, k->ctap20_only ? 1 : 2);
		vk_cbor_uint(resp, 3);
		vk_cbor_uint(resp, k->pin_retries);
		if (!k->ctap20_only) {
			vk_cbor_uint(resp, 4);
			vk_cbor_bool(resp, k->pin_consecutive_fails >= VK_PIN_AUTH_BLOCK);
		}
		return CTAP2_OK;
	}
	if (sub < 2 || sub > 9 || sub == 6 || sub == 7 || sub == 8 || (sub == 9 && k->ctap20_only))
		return CTAP2_ERR_INVALID_SUBCOMMAND;
	if (!p->v[1])
		return CTAP2_ERR_MISSING_PARAMETER;
	if (vk_item_uint(p->v[1], &proto) < 0)
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (!protocol_supported(k, proto))
		return CTAP1_ERR_INVALID_PARAMETER;

	if (sub == 2) { /* getKeyAgreement */
		vk_cbor_map(resp, 1);
		vk_cbor_uint(resp, 1);
		return vk_cose_pubkey(resp, k->ka_key, COSE_ECDH_ES_HKDF_256) < 0 ? CTAP1_ERR_OTHER
		                                                                  : CTAP2_OK;
	}

	r = shared_secret(k, (unsigned)proto, p->v[3], secret, &slen);
	if (r != CTAP2_OK)
		goto out;

	if (sub == 3 || sub == 4) { /* setPIN, changePIN */
		_cleanup_free_ uint8_t *msg = NULL;
		const uint8_t *hash_enc = NULL;
		size_t hlen = 0, need = proto == 1 ? 64 : 80;

		if (!p->v[4] || !p->v[5] || (sub == 4 && !p->v[6])) {
			r = CTAP2_ERR_MISSING_PARAMETER;
			goto out;
		}
		if (vk_item_bytes(p->v[4], &param, &plen) < 0 ||
		        vk_item_bytes(p->v[5], &enc, &elen) < 0 ||
		        (sub == 4 && vk_item_bytes(p->v[6], &hash_enc, &hlen) < 0)) {
			r = CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
			goto out;
		}
		if (elen != need) {
			r = CTAP1_ERR_INVALID_PARAMETER;
			goto out;
		}
		if (sub == 3 && k->pin_set) {
			r = CTAP2_ERR_PIN_AUTH_INVALID;
			goto out;
		}
		if (sub == 4) {
			if (!k->pin_set) {
				r = CTAP2_ERR_PIN_NOT_SET;
				goto out;
			}
			if (k->pin_retries == 0) {
				r = CTAP2_ERR_PIN_BLOCKED;
				goto out;
			}
			if (k->pin_consecutive_fails >= VK_PIN_AUTH_BLOCK) {
				r = CTAP2_ERR_PIN_AUTH_BLOCKED;
				goto out;
			}
		}
		msg = malloc(elen + hlen);
		if (!msg) {
			r = CTAP1_ERR_OTHER;
			goto out;
		}
		memcpy(msg, enc, elen);
		if (hlen > 0)
			memcpy(msg + elen, hash_enc, hlen);
		if (!vk_pin_verify((unsigned)proto, secret, 32, msg, elen + hlen, param, plen)) {
			r = CTAP2_ERR_PIN_AUTH_INVALID;
			goto out;
		}
		if (sub == 4) {
			r = check_pin_hash(k, (unsigned)proto, secret, p->v[6]);
			if (r != CTAP2_OK)
				goto out;
		}
		if (vk_pin_decrypt((unsigned)proto, secret, enc, elen, pt, &ptn) < 0) {
			r = CTAP1_ERR_OTHER;
			goto out;
		}
		r = set_new_pin(k, pt, ptn);
		if (r == CTAP2_OK)
			token_reset(k);
		goto out;
	}

	/* 5: getPinToken, 9: getPinUvAuthTokenUsingPinWithPermissions */
	{
		uint64_t perms = PERM_MC | PERM_GA;
		char *rp = NULL;
		uint8_t ct[VK_TOKEN_LEN + 16];
		size_t ctn;

		if (sub == 5 && (p->v[9] || p->v[10])) {
			r = CTAP1_ERR_INVALID_PARAMETER;
			goto out;
		}
		if (sub == 9) {
			if (!p->v[9]) {
				r = CTAP2_ERR_MISSING_PARAMETER;
				goto out;
			}
			if (vk_item_uint(p->v[9], &perms) < 0) {
				r = CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
				goto out;
			}
			if (perms == 0) {
				r = CTAP1_ERR_INVALID_PARAMETER;
				goto out;
			}
			if (perms & ~(uint64_t)(PERM_MC | PERM_GA | PERM_CM)) {
				r = CTAP2_ERR_UNAUTHORIZED_PERMISSION;
				goto out;
			}
			if (p->v[10]) {
				int q = vk_item_text(p->v[10], VK_MAX_RP_ID, &rp);
				if (q < 0) {
					r = q == -EMSGSIZE ? CTAP1_ERR_INVALID_LENGTH
					                   : CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
					goto out;
				}
			}
		}
		if (!k->pin_set) {
			free(rp);
			r = CTAP2_ERR_PIN_NOT_SET;
			goto out;
		}
		r = check_pin_hash(k, (unsigned)proto, secret, p->v[6]);
		if (r != CTAP2_OK) {
			free(rp);
			goto out;
		}
		token_reset(k);
		k->token_valid = true;
		k->token_perms = (uint8_t)perms;
		k->token_rp_id = rp;
		if (vk_pin_encrypt((unsigned)proto, secret, k->token, sizeof(k->token), ct, &ctn) <
		        0) {
			r = CTAP1_ERR_OTHER;
			goto out;
		}
		vk_cbor_map(resp, 1);
		vk_cbor_uint(resp, 2);
		vk_cbor_bytes(resp, ct, ctn);
		r = CTAP2_OK;
	}
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(pt, sizeof(pt));
	return r;
}

/* ---- dispatch ---- */

int vk_ctap_handle(VirtKey *k, const uint8_t *req, size_t len, bool up, VkBuf *resp)
{
	_cleanup_(cbor_itemp) cbor_item_t *root = NULL;
	VkParams p = {};
	uint8_t cmd;
	int r;

	if (len == 0)
		return CTAP1_ERR_INVALID_LENGTH;
	cmd = req[0];
	if (cmd != CTAP_CMD_GET_NEXT_ASSERTION)
		k->next_n = k->next_pos = 0;
	if (cmd != CTAP_CMD_CRED_MGMT && cmd != CTAP_CMD_CRED_MGMT_PRE)
		vk_credman_forget(k);
	if (len > 1) {
		struct cbor_load_result res;

		if (vk_cbor_check(req + 1, len - 1) < 0)
			return CTAP2_ERR_INVALID_CBOR;
		root = cbor_load(req + 1, len - 1, &res);
		if (!root)
			return CTAP2_ERR_INVALID_CBOR;
	}

	switch (cmd) {
	case CTAP_CMD_GET_INFO:
		if (root)
			return CTAP1_ERR_INVALID_LENGTH;
		return get_info(k, resp);
	case CTAP_CMD_RESET:
		if (root)
			return CTAP1_ERR_INVALID_LENGTH;
		if (k->reset_window && k->now > k->powered_ms + VK_RESET_WINDOW_MS)
			return CTAP2_ERR_NOT_ALLOWED;
		if (!up)
			return VK_NEED_TOUCH;
		vk_state_wipe(k);
		vk_ctap_power_up(k);
		return vk_state_save(k) < 0 ? CTAP1_ERR_OTHER : CTAP2_OK;
	case CTAP_CMD_GET_NEXT_ASSERTION:
		if (root)
			return CTAP1_ERR_INVALID_LENGTH;
		return get_next_assertion(k, resp);
	case CTAP_CMD_CRED_MGMT:
	case CTAP_CMD_CRED_MGMT_PRE:
		if (k->ctap20_only)
			return CTAP1_ERR_INVALID_COMMAND;
		if (!root)
			return CTAP2_ERR_MISSING_PARAMETER;
		r = vk_params_parse(root, &p);
		if (r != CTAP2_OK)
			return r;
		return vk_credman(k, &p, req + 1, len - 1, resp);
	case CTAP_CMD_MAKE_CREDENTIAL:
	case CTAP_CMD_GET_ASSERTION:
	case CTAP_CMD_CLIENT_PIN:
		if (!root)
			return CTAP2_ERR_MISSING_PARAMETER;
		r = vk_params_parse(root, &p);
		if (r != CTAP2_OK)
			return r;
		if (cmd == CTAP_CMD_MAKE_CREDENTIAL)
			return make_credential(k, &p, up, resp);
		if (cmd == CTAP_CMD_GET_ASSERTION)
			return get_assertion(k, &p, up, resp);
		return client_pin(k, &p, resp);
	default:
		return CTAP1_ERR_INVALID_COMMAND;
	}
}
