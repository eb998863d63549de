/* test-virtkey-ctap.c: the CTAP2 handlers of virtkey driven directly (bytes in, bytes out)
 * — credProtect levels, resident credentials, credential management and its
 * pinUvAuthParam/permission checks. Usage: test-virtkey-ctap CASE (one ctest test per case). */
#include <sys/random.h>

#include "util.h"
#include "virtkey-check.h"
#include "virtkey-client.h"

#define PIN "1234"

static VirtKey *key_new(const char *pin, bool ctap20)
{
	VirtKeyOptions o = {
	        .aaguid = {0x74, 0x65, 0x73, 0x74},
	        .initial_pin = pin,
	        .touch = VIRTKEY_TOUCH_AUTO,
	        .ctap20_only = ctap20,
	};
	VirtKey *k = NULL;

	if (ctap20)
		o.pin_protocols = VIRTKEY_PIN_PROTOCOL_1;
	CHECK(virtkey_new(&o, &k) == 0);
	return k;
}

static void token(
        VirtKey *k, unsigned proto, uint8_t perms, const char *rp, uint8_t t[VK_TOKEN_LEN])
{
	CHECK_EQ(vkc_get_token(k, proto, PIN, perms, rp, t), CTAP2_OK);
}

typedef struct Cred {
	uint8_t id[VK_CRED_ID_LEN];
	uint8_t flags;
	const uint8_t *ext; /* extension output in authData (NULL: none) */
	size_t ext_len;
	cbor_item_t *reply;
} Cred;

static void cred_done(Cred *c)
{
	if (c->reply)
		cbor_decref(&c->reply);
}

/* makeCredential for RP/USER; LEVEL 0: no credProtect; PIN: sign with a fresh mc token. */
static int make_cred(VirtKey *k, const char *rp, const char *user, bool rk, unsigned level,
        const char *pin, const uint8_t *exclude_id, Cred *ret)
{
	const uint8_t *auth;
	size_t n;
	int r;

	*ret = (Cred){};
	r = vkc_make_credential(k, rp, user, rk, level, pin, exclude_id, &ret->reply);
	if (r != CTAP2_OK)
		return r;
	CHECK(vk_item_bytes(vkc_get(ret->reply, 2), &auth, &n) == 0);
	CHECK(n > 55 + VK_CRED_ID_LEN);
	CHECK_EQ(auth[53] << 8 | auth[54], VK_CRED_ID_LEN);
	memcpy(ret->id, auth + 55, VK_CRED_ID_LEN);
	ret->flags = auth[32];
	if (ret->flags & 0x80) {
		/* the COSE key (77 bytes for P-256) is followed by the extensions map */
		ret->ext = auth + 55 + VK_CRED_ID_LEN + 77;
		ret->ext_len = n - (55 + VK_CRED_ID_LEN + 77);
	}
	return CTAP2_OK;
}

static void make_ok(VirtKey *k, const char *rp, const char *user, bool rk, unsigned level,
        const char *pin, uint8_t ret_id[VK_CRED_ID_LEN])
{
	Cred c;

	CHECK_EQ(make_cred(k, rp, user, rk, level, pin, NULL, &c), CTAP2_OK);
	if (ret_id)
		memcpy(ret_id, c.id, VK_CRED_ID_LEN);
	cred_done(&c);
}

/* getAssertion for RP; ALLOW_ID NULL: discovery; UV: sign with a fresh ga token (PIN). */
static int get_assert(
        VirtKey *k, const char *rp, const uint8_t *allow_id, bool uv, cbor_item_t **ret)
{
	uint8_t cdh[32], t[VK_TOKEN_LEN], mac[32];
	VkBuf b = {};
	int r;

	CHECK(getrandom(cdh, sizeof(cdh), 0) == sizeof(cdh));
	if (uv)
		token(k, 2, PERM_GA, NULL, t);
	vk_cbor_map(&b, 2 + !!allow_id + (uv ? 2 : 0));
	vk_cbor_uint(&b, 1);
	vk_cbor_text(&b, rp);
	vk_cbor_uint(&b, 2);
	vk_cbor_bytes(&b, cdh, 32);
	if (allow_id)
		vkc_id_list(&b, 3, allow_id);
	if (uv) {
		vk_cbor_uint(&b, 6);
		vk_cbor_bytes(&b, mac, vkc_auth(2, t, cdh, 32, mac));
		vk_cbor_uint(&b, 7);
		vk_cbor_uint(&b, 2);
	}
	r = vkc_call_buf(k, CTAP_CMD_GET_ASSERTION, &b, ret);
	vk_buf_done(&b);
	return r;
}

static int assert_status(VirtKey *k, const char *rp, const uint8_t *allow_id, bool uv)
{
	cbor_item_t *reply = NULL;
	int r = get_assert(k, rp, allow_id, uv, &reply);

	if (reply)
		cbor_decref(&reply);
	return r;
}

/* numberOfCredentials of a discovery (1 when the key leaves it out). */
static uint64_t discovered(VirtKey *k, const char *rp, bool uv)
{
	cbor_item_t *reply = NULL;
	uint64_t n = 1;

	CHECK_EQ(get_assert(k, rp, NULL, uv, &reply), CTAP2_OK);
	if (vkc_get(reply, 5))
		CHECK(vk_item_uint(vkc_get(reply, 5), &n) == 0);
	cbor_decref(&reply);
	return n;
}

static bool bytes_eq(const cbor_item_t *it, const void *p, size_t n)
{
	const uint8_t *q;
	size_t m;

	return it && vk_item_bytes(it, &q, &m) == 0 && m == n && memcmp(p, q, n) == 0;
}

static uint64_t uint_of(const cbor_item_t *it)
{
	uint64_t v = UINT64_MAX;

	CHECK(it && vk_item_uint(it, &v) == 0);
	return v;
}

/* subCommandParams {1: SHA-256(rp)} or {2: {"id": ID, "type"}} (+ {3: user}) */
static void params_rp(VkBuf *b, const char *rp)
{
	uint8_t h[32];

	CHECK(vk_sha256(rp, strlen(rp), h) == 0);
	*b = (VkBuf){};
	vk_cbor_map(b, 1);
	vk_cbor_uint(b, 1);
	vk_cbor_bytes(b, h, 32);
}

static void params_cred(
        VkBuf *b, const uint8_t id[VK_CRED_ID_LEN], const char *user, const char *name)
{
	*b = (VkBuf){};
	vk_cbor_map(b, user ? 2 : 1);
	vk_cbor_uint(b, 2);
	vk_cbor_map(b, 2);
	vk_cbor_text(b, "id");
	vk_cbor_bytes(b, id, VK_CRED_ID_LEN);
	vk_cbor_text(b, "type");
	vk_cbor_text(b, "public-key");
	if (user) {
		vk_cbor_uint(b, 3);
		vk_cbor_map(b, 2);
		vk_cbor_text(b, "id");
		vk_cbor_bytes(b, user, strlen(user));
		vk_cbor_text(b, "name");
		vk_cbor_text(b, name);
	}
}

static int cm(VirtKey *k, uint8_t cmd, uint8_t sub, VkBuf *params, unsigned proto, const uint8_t *t,
        cbor_item_t **ret)
{
	cbor_item_t *reply = NULL;
	int r = vkc_credman(k, cmd, sub, params, proto, t, &reply);

	if (params)
		vk_buf_done(params);
	if (ret)
		*ret = reply;
	else if (reply)
		cbor_decref(&reply);
	return r;
}

static void metadata(VirtKey *k, const uint8_t *t, uint64_t existing, uint64_t remaining)
{
	cbor_item_t *m = NULL;

	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_GET_CREDS_METADATA, NULL, 2, t, &m), CTAP2_OK);
	CHECK_EQ(uint_of(vkc_get(m, 1)), existing);
	CHECK_EQ(uint_of(vkc_get(m, 2)), remaining);
	cbor_decref(&m);
}

/* ---- cases ---- */

static void test_getinfo(void)
{
	VirtKey *k = key_new(NULL, false);
	cbor_item_t *info = NULL;
	const cbor_item_t *ext, *opts;
	bool v = false;

	CHECK_EQ(vkc_call(k, (const uint8_t *)"\x04", 1, &info), CTAP2_OK);
	ext = vkc_get(info, 2);
	CHECK(ext && cbor_isa_array(ext) && cbor_array_size(ext) == 1);
	CHECK(vk_item_text_eq(cbor_array_handle(ext)[0], "credProtect"));
	opts = vkc_get(info, 4);
	CHECK(vk_item_bool(vkc_get_text(opts, "credMgmt"), &v) == 0 && v);
	CHECK(vk_item_bool(vkc_get_text(opts, "credentialMgmtPreview"), &v) == 0 && v);
	cbor_decref(&info);
	virtkey_free(k);

	/* a CTAP 2.0 key has no credential management */
	k = key_new(PIN, true);
	CHECK_EQ(vkc_call(k, (const uint8_t *)"\x04", 1, &info), CTAP2_OK);
	CHECK(!vkc_get_text(vkc_get(info, 4), "credMgmt"));
	cbor_decref(&info);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_GET_CREDS_METADATA, NULL, 1, NULL, NULL),
	        CTAP1_ERR_INVALID_COMMAND);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT_PRE, CM_GET_CREDS_METADATA, NULL, 1, NULL, NULL),
	        CTAP1_ERR_INVALID_COMMAND);
	virtkey_free(k);
}

static void test_cred_protect(void)
{
	static const uint8_t ext3[] = {
	        0xa1, 0x6b, 'c', 'r', 'e', 'd', 'P', 'r', 'o', 't', 'e', 'c', 't', 0x03};
	VirtKey *k = key_new(PIN, false);
	uint8_t l1[VK_CRED_ID_LEN], l2[VK_CRED_ID_LEN], l3[VK_CRED_ID_LEN], nr3[VK_CRED_ID_LEN];
	cbor_item_t *reply = NULL;
	Cred c;

	/* the extension output: ED flag and {"credProtect": level}; none when not asked */
	CHECK_EQ(make_cred(k, "a.example", "u3", true, 3, PIN, NULL, &c), CTAP2_OK);
	CHECK(c.flags & 0x80);
	CHECK(c.flags & 0x04); /* UV: the PIN token */
	CHECK_EQ(c.ext_len, sizeof(ext3));
	CHECK(memcmp(c.ext, ext3, sizeof(ext3)) == 0);
	memcpy(l3, c.id, sizeof(l3));
	cred_done(&c);
	CHECK_EQ(make_cred(k, "a.example", "u0", true, 0, PIN, NULL, &c), CTAP2_OK);
	CHECK(!(c.flags & 0x80));
	memcpy(l1, c.id, sizeof(l1));
	cred_done(&c);
	make_ok(k, "a.example", "u2", true, 2, PIN, l2);
	make_ok(k, "a.example", "n3", false, 3, PIN, nr3);
	CHECK_EQ(make_cred(k, "a.example", "bad", true, 4, PIN, NULL, &c),
	        CTAP1_ERR_INVALID_PARAMETER);
	/* with a PIN set, makeCredential needs it (verify-required enrollment) */
	CHECK_EQ(make_cred(k, "a.example", "x", true, 3, NULL, NULL, &c), CTAP2_ERR_PIN_REQUIRED);

	/* discovery without UV: level 1 only (level 2 needs the ID, level 3 needs UV) */
	CHECK_EQ(get_assert(k, "a.example", NULL, false, &reply), CTAP2_OK);
	CHECK(!vkc_get(reply, 5));
	CHECK(bytes_eq(vkc_get_text(vkc_get(reply, 1), "id"), l1, sizeof(l1)));
	CHECK(bytes_eq(vkc_get_text(vkc_get(reply, 4), "id"), "u0", 2));
	cbor_decref(&reply);
	/* with UV: all three resident ones */
	CHECK_EQ(discovered(k, "a.example", true), 3);
	/* allow list without UV: levels 1 and 2 yes, level 3 (resident or not) no */
	CHECK_EQ(assert_status(k, "a.example", l1, false), CTAP2_OK);
	CHECK_EQ(assert_status(k, "a.example", l2, false), CTAP2_OK);
	CHECK_EQ(assert_status(k, "a.example", l3, false), CTAP2_ERR_NO_CREDENTIALS);
	CHECK_EQ(assert_status(k, "a.example", nr3, false), CTAP2_ERR_NO_CREDENTIALS);
	CHECK_EQ(assert_status(k, "a.example", l3, true), CTAP2_OK);
	CHECK_EQ(assert_status(k, "a.example", nr3, true), CTAP2_OK);
	/* the level is sealed in the ID: a changed header does not open */
	l3[0] &= 0x0f;
	CHECK_EQ(assert_status(k, "a.example", l3, true), CTAP2_ERR_NO_CREDENTIALS);
	virtkey_free(k);

	/* no PIN: a level-3 credential can be made, but is never used or excluded without UV */
	k = key_new(NULL, false);
	make_ok(k, "b.example", "u3", true, 3, NULL, l3);
	make_ok(k, "b.example", "u2", true, 2, NULL, l2);
	CHECK_EQ(assert_status(k, "b.example", NULL, false), CTAP2_ERR_NO_CREDENTIALS);
	CHECK_EQ(assert_status(k, "b.example", l3, false), CTAP2_ERR_NO_CREDENTIALS);
	CHECK_EQ(assert_status(k, "b.example", l2, false), CTAP2_OK);
	CHECK_EQ(make_cred(k, "b.example", "v", false, 0, NULL, l3, &c), CTAP2_OK);
	cred_done(&c);
	CHECK_EQ(make_cred(k, "b.example", "v", false, 0, NULL, l2, &c),
	        CTAP2_ERR_CREDENTIAL_EXCLUDED);
	virtkey_free(k);
}

static void test_enumerate(void)
{
	static const char *rps[] = {"one.example", "two.example", "ssh:kw"};
	VirtKey *k = key_new(PIN, false);
	uint8_t ids[3][3][VK_CRED_ID_LEN], t[VK_TOKEN_LEN];
	bool seen_rp[3] = {}, seen_cred[3] = {};
	cbor_item_t *reply = NULL;
	VkBuf p;

	for (size_t i = 0; i < 3; i++)
		for (size_t j = 0; j <= i; j++) {
			char user[8];
			snprintf(user, sizeof(user), "u%zu", j);
			make_ok(k, rps[i], user, true, (unsigned)j + 1, PIN, ids[i][j]);
		}
	make_ok(k, "one.example", "nonresident", false, 0, PIN, NULL); /* not listed */

	for (unsigned proto = 1; proto <= 2; proto++) {
		uint8_t cmd = proto == 1 ? CTAP_CMD_CRED_MGMT_PRE : CTAP_CMD_CRED_MGMT;

		token(k, proto, PERM_CM, NULL, t);
		memset(seen_rp, 0, sizeof(seen_rp));
		CHECK_EQ(cm(k, cmd, CM_GET_CREDS_METADATA, NULL, proto, t, &reply), CTAP2_OK);
		CHECK_EQ(uint_of(vkc_get(reply, 1)), 6);
		CHECK_EQ(uint_of(vkc_get(reply, 2)), VK_MAX_RESIDENT - 6);
		cbor_decref(&reply);

		for (size_t n = 0; n < 3; n++) {
			const cbor_item_t *rp_id;
			uint8_t h[32];
			size_t i;

			CHECK_EQ(cm(k, cmd, n == 0 ? CM_ENUMERATE_RPS_BEGIN : CM_ENUMERATE_RPS_NEXT,
			                 NULL, proto, n == 0 ? t : NULL, &reply),
			        CTAP2_OK);
			if (n == 0)
				CHECK_EQ(uint_of(vkc_get(reply, 5)), 3);
			else
				CHECK(!vkc_get(reply, 5));
			rp_id = vkc_get_text(vkc_get(reply, 3), "id");
			for (i = 0; i < 3 && !vk_item_text_eq(rp_id, rps[i]); i++)
				;
			CHECK(i < 3 && !seen_rp[i]);
			seen_rp[i] = true;
			CHECK(vk_sha256(rps[i], strlen(rps[i]), h) == 0);
			CHECK(bytes_eq(vkc_get(reply, 4), h, 32));
			cbor_decref(&reply);
		}
		CHECK_EQ(cm(k, cmd, CM_ENUMERATE_RPS_NEXT, NULL, proto, NULL, NULL),
		        CTAP2_ERR_NOT_ALLOWED);

		for (size_t i = 0; i < 3; i++) {
			memset(seen_cred, 0, sizeof(seen_cred));
			for (size_t n = 0; n <= i; n++) {
				const cbor_item_t *id;
				size_t j;

				if (n == 0)
					params_rp(&p, rps[i]);
				CHECK_EQ(cm(k, cmd,
				                 n == 0 ? CM_ENUMERATE_CREDS_BEGIN
				                        : CM_ENUMERATE_CREDS_NEXT,
				                 n == 0 ? &p : NULL, proto, n == 0 ? t : NULL,
				                 &reply),
				        CTAP2_OK);
				if (n == 0)
					CHECK_EQ(uint_of(vkc_get(reply, 9)), i + 1);
				id = vkc_get_text(vkc_get(reply, 7), "id");
				for (j = 0; j <= i && !bytes_eq(id, ids[i][j], VK_CRED_ID_LEN); j++)
					;
				CHECK(j <= i && !seen_cred[j]);
				seen_cred[j] = true;
				CHECK_EQ(uint_of(vkc_get(reply, 10)), j + 1); /* credProtect */
				CHECK(vk_item_text_eq(vkc_get_text(vkc_get(reply, 6), "name"),
				        (const char[]){'u', (char)('0' + j), 0}));
				CHECK(vk_is_map(vkc_get(reply, 8))); /* the public key */
				cbor_decref(&reply);
			}
			CHECK_EQ(cm(k, cmd, CM_ENUMERATE_CREDS_NEXT, NULL, proto, NULL, NULL),
			        CTAP2_ERR_NOT_ALLOWED);
		}
		/* another command between Begin and GetNext ends the enumeration */
		CHECK_EQ(cm(k, cmd, CM_ENUMERATE_RPS_BEGIN, NULL, proto, t, NULL), CTAP2_OK);
		CHECK_EQ(vkc_call(k, (const uint8_t *)"\x04", 1, &reply), CTAP2_OK);
		cbor_decref(&reply);
		CHECK_EQ(cm(k, cmd, CM_ENUMERATE_RPS_NEXT, NULL, proto, NULL, NULL),
		        CTAP2_ERR_NOT_ALLOWED);
		params_rp(&p, "none.example");
		CHECK_EQ(cm(k, cmd, CM_ENUMERATE_CREDS_BEGIN, &p, proto, t, NULL),
		        CTAP2_ERR_NO_CREDENTIALS);
	}
	virtkey_free(k);

	/* an empty key: no RPs */
	k = key_new(PIN, false);
	token(k, 2, PERM_CM, NULL, t);
	metadata(k, t, 0, VK_MAX_RESIDENT);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_ENUMERATE_RPS_BEGIN, NULL, 2, t, NULL),
	        CTAP2_ERR_NO_CREDENTIALS);
	virtkey_free(k);
}

static void test_delete(void)
{
	VirtKey *k = key_new(PIN, false);
	uint8_t a[VK_CRED_ID_LEN], b[VK_CRED_ID_LEN], nr[VK_CRED_ID_LEN], t[VK_TOKEN_LEN];
	cbor_item_t *reply = NULL;
	VkBuf p;

	make_ok(k, "a.example", "ua", true, 0, PIN, a);
	make_ok(k, "a.example", "ub", true, 0, PIN, b);
	make_ok(k, "a.example", "un", false, 0, PIN, nr);
	token(k, 2, PERM_CM, NULL, t);
	metadata(k, t, 2, VK_MAX_RESIDENT - 2);

	params_cred(&p, a, NULL, NULL);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_DELETE_CREDENTIAL, &p, 2, t, NULL), CTAP2_OK);
	metadata(k, t, 1, VK_MAX_RESIDENT - 1);
	CHECK_EQ(virtkey_credential_count(k, true), 1);
	/* gone: not enumerated, not usable by its ID, not deletable twice */
	params_rp(&p, "a.example");
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_ENUMERATE_CREDS_BEGIN, &p, 2, t, &reply), CTAP2_OK);
	CHECK_EQ(uint_of(vkc_get(reply, 9)), 1);
	CHECK(bytes_eq(vkc_get_text(vkc_get(reply, 7), "id"), b, VK_CRED_ID_LEN));
	cbor_decref(&reply);
	CHECK_EQ(assert_status(k, "a.example", a, true), CTAP2_ERR_NO_CREDENTIALS);
	CHECK_EQ(assert_status(k, "a.example", b, true), CTAP2_OK);
	token(k, 2, PERM_CM, NULL, t); /* the assertions took new tokens */
	params_cred(&p, a, NULL, NULL);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_DELETE_CREDENTIAL, &p, 2, t, NULL),
	        CTAP2_ERR_NO_CREDENTIALS);
	/* a non-resident credential is not managed here */
	params_cred(&p, nr, NULL, NULL);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_DELETE_CREDENTIAL, &p, 2, t, NULL),
	        CTAP2_ERR_NO_CREDENTIALS);
	/* no credential ID */
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_DELETE_CREDENTIAL, NULL, 2, t, NULL),
	        CTAP2_ERR_MISSING_PARAMETER);

	/* updateUserInformation: same user id only; the new name shows after UV */
	params_cred(&p, b, "ub", "renamed");
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_UPDATE_USER, &p, 2, t, NULL), CTAP2_OK);
	params_cred(&p, b, "other", "x");
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_UPDATE_USER, &p, 2, t, NULL),
	        CTAP1_ERR_INVALID_PARAMETER);
	CHECK_EQ(get_assert(k, "a.example", NULL, true, &reply), CTAP2_OK);
	CHECK(vk_item_text_eq(vkc_get_text(vkc_get(reply, 4), "name"), "renamed"));
	CHECK(!vkc_get_text(vkc_get(reply, 4), "displayName")); /* absent: removed */
	cbor_decref(&reply);

	/* the last one deleted: no RPs left */
	token(k, 2, PERM_CM, NULL, t);
	params_cred(&p, b, NULL, NULL);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT_PRE, CM_DELETE_CREDENTIAL, &p, 2, t, NULL), CTAP2_OK);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_ENUMERATE_RPS_BEGIN, NULL, 2, t, NULL),
	        CTAP2_ERR_NO_CREDENTIALS);
	virtkey_free(k);
}

static void test_auth(void)
{
	VirtKey *k = key_new(PIN, false);
	uint8_t a[VK_CRED_ID_LEN], b[VK_CRED_ID_LEN], t[VK_TOKEN_LEN], mac[32];
	cbor_item_t *reply = NULL;
	VkBuf p = {}, req = {};

	make_ok(k, "a.example", "ua", true, 0, PIN, a);
	make_ok(k, "b.example", "ub", true, 0, PIN, b);

	/* no token, or a wrong one */
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_GET_CREDS_METADATA, NULL, 2, NULL, NULL),
	        CTAP2_ERR_PIN_REQUIRED);
	memset(t, 0x55, sizeof(t));
	for (unsigned proto = 1; proto <= 2; proto++)
		CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_GET_CREDS_METADATA, NULL, proto, t, NULL),
		        CTAP2_ERR_PIN_AUTH_INVALID);
	/* a good token over protocol 1 (16-byte pinUvAuthParam) */
	token(k, 1, PERM_CM, NULL, t);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_GET_CREDS_METADATA, NULL, 1, t, NULL), CTAP2_OK);
	token(k, 2, PERM_CM, NULL, t);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_GET_CREDS_METADATA, NULL, 2, t, NULL), CTAP2_OK);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_GET_CREDS_METADATA, NULL, 3, t, NULL),
	        CTAP1_ERR_INVALID_PARAMETER);

	/* pinUvAuthParam covers the subcommand and its parameters: signed for one, sent with
	 * another */
	vk_cbor_map(&req, 4);
	vk_cbor_uint(&req, 1);
	vk_cbor_uint(&req, CM_DELETE_CREDENTIAL);
	vk_cbor_uint(&req, 2);
	params_cred(&p, a, NULL, NULL);
	{
		uint8_t msg[1 + 128];
		CHECK(p.len < sizeof(msg));
		msg[0] = CM_DELETE_CREDENTIAL;
		memcpy(msg + 1, p.data, p.len);
		vk_buf_done(&p);
		params_cred(&p, b, NULL, NULL);
		vk_buf_append(&req, p.data, p.len);
		vk_cbor_uint(&req, 3);
		vk_cbor_uint(&req, 2);
		vk_cbor_uint(&req, 4);
		vk_cbor_bytes(&req, mac, vkc_auth(2, t, msg, 1 + p.len, mac));
		vk_buf_done(&p);
	}
	CHECK_EQ(vkc_call_buf(k, CTAP_CMD_CRED_MGMT, &req, &reply), CTAP2_ERR_PIN_AUTH_INVALID);
	vk_buf_done(&req);
	CHECK_EQ(virtkey_credential_count(k, true), 2);
	/* a missing protocol */
	vk_cbor_map(&req, 2);
	vk_cbor_uint(&req, 1);
	vk_cbor_uint(&req, CM_GET_CREDS_METADATA);
	vk_cbor_uint(&req, 4);
	vk_cbor_bytes(&req, mac, vkc_auth(2, t, (const uint8_t *)"\x01", 1, mac));
	CHECK_EQ(vkc_call_buf(k, CTAP_CMD_CRED_MGMT, &req, &reply), CTAP2_ERR_MISSING_PARAMETER);
	vk_buf_done(&req);

	/* permissions: a token for mc/ga is no good here; unknown permissions are refused */
	token(k, 2, PERM_MC | PERM_GA, NULL, t);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_GET_CREDS_METADATA, NULL, 2, t, NULL),
	        CTAP2_ERR_PIN_AUTH_INVALID);
	CHECK_EQ(vkc_get_token(k, 2, PIN, 0x08, NULL, t), CTAP2_ERR_UNAUTHORIZED_PERMISSION);
	/* getPinToken (subcommand 5) gives mc/ga only */
	CHECK_EQ(vkc_get_token(k, 2, PIN, 0, NULL, t), CTAP2_OK);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_GET_CREDS_METADATA, NULL, 2, t, NULL),
	        CTAP2_ERR_PIN_AUTH_INVALID);
	/* a cm token bound to a.example: its credentials only, no key-wide listing */
	token(k, 2, PERM_CM, "a.example", t);
	params_rp(&p, "a.example");
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_ENUMERATE_CREDS_BEGIN, &p, 2, t, NULL), CTAP2_OK);
	params_rp(&p, "b.example");
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_ENUMERATE_CREDS_BEGIN, &p, 2, t, NULL),
	        CTAP2_ERR_PIN_AUTH_INVALID);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_GET_CREDS_METADATA, NULL, 2, t, NULL),
	        CTAP2_ERR_PIN_AUTH_INVALID);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_ENUMERATE_RPS_BEGIN, NULL, 2, t, NULL),
	        CTAP2_ERR_PIN_AUTH_INVALID);
	params_cred(&p, b, NULL, NULL);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_DELETE_CREDENTIAL, &p, 2, t, NULL),
	        CTAP2_ERR_PIN_AUTH_INVALID);
	params_cred(&p, a, NULL, NULL);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_DELETE_CREDENTIAL, &p, 2, t, NULL), CTAP2_OK);
	CHECK_EQ(virtkey_credential_count(k, true), 1);

	/* a cm token does not make credentials */
	token(k, 2, PERM_CM, NULL, t);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, 0x42, NULL, 2, t, NULL), CTAP2_ERR_INVALID_SUBCOMMAND);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_ENUMERATE_CREDS_NEXT, NULL, 2, NULL, NULL),
	        CTAP2_ERR_NOT_ALLOWED);
	CHECK_EQ(vkc_call(k, (const uint8_t *)"\x0a\xa0", 2, &reply), CTAP2_ERR_MISSING_PARAMETER);
	CHECK_EQ(vkc_call(k, (const uint8_t *)"\x0a", 1, &reply), CTAP2_ERR_MISSING_PARAMETER);
	virtkey_free(k);
}

static void test_store_full(void)
{
	VirtKey *k = key_new(PIN, false);
	uint8_t first[VK_CRED_ID_LEN], t[VK_TOKEN_LEN];
	VkBuf p;
	Cred c;

	for (unsigned i = 0; i < VK_MAX_RESIDENT; i++) {
		char user[16];
		snprintf(user, sizeof(user), "user%u", i);
		make_ok(k, i % 2 ? "odd.example" : "even.example", user, true, 0, PIN,
		        i == 0 ? first : NULL);
	}
	CHECK_EQ(
	        make_cred(k, "new.example", "u", true, 0, PIN, NULL, &c), CTAP2_ERR_KEY_STORE_FULL);
	/* replacing an existing user's credential still works; non-resident ones too */
	make_ok(k, "odd.example", "user1", true, 0, PIN, NULL);
	make_ok(k, "new.example", "u", false, 0, PIN, NULL);
	token(k, 2, PERM_CM, NULL, t);
	metadata(k, t, VK_MAX_RESIDENT, 0);
	params_cred(&p, first, NULL, NULL);
	CHECK_EQ(cm(k, CTAP_CMD_CRED_MGMT, CM_DELETE_CREDENTIAL, &p, 2, t, NULL), CTAP2_OK);
	make_ok(k, "new.example", "u", true, 0, PIN, NULL);
	CHECK_EQ(virtkey_credential_count(k, true), VK_MAX_RESIDENT);
	virtkey_free(k);
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
        {"getinfo", test_getinfo},
        {"cred-protect", test_cred_protect},
        {"enumerate", test_enumerate},
        {"delete", test_delete},
        {"auth", test_auth},
        {"store-full", test_store_full},
};

int main(int argc, char *argv[])
{
	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		if (argc == 2 && streq(argv[1], cases[i].name)) {
			cases[i].fn();
			printf("== %s\n", cases[i].name);
			return EXIT_SUCCESS;
		}
	fprintf(stderr, "usage: test-virtkey-ctap CASE\n");
	return EXIT_FAILURE;
}
