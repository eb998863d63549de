/* virtkey-crypto.c: the authenticator's cryptography on OpenSSL 3 — credential keys,
 * key-handle wrapping, signatures, PIN/UV auth protocols 1 and 2, attestation certs. */
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "util.h"
#include "virtkey-internal.h"

#define AAGUID_EXT_OID "1.3.6.1.4.1.45724.1.1.4"

static inline void evp_pkey_freep(EVP_PKEY **p)
{
	EVP_PKEY_free(*p);
}
static inline void evp_pkey_ctx_freep(EVP_PKEY_CTX **p)
{
	EVP_PKEY_CTX_free(*p);
}
static inline void evp_md_ctx_freep(EVP_MD_CTX **p)
{
	EVP_MD_CTX_free(*p);
}
static inline void evp_cipher_ctx_freep(EVP_CIPHER_CTX **p)
{
	EVP_CIPHER_CTX_free(*p);
}
static inline void bn_freep(BIGNUM **p)
{
	BN_clear_free(*p);
}
static inline void x509_freep(X509 **p)
{
	X509_free(*p);
}
static inline void bio_freep(BIO **p)
{
	BIO_free(*p);
}
#define _cleanup_pkey_ _cleanup_(evp_pkey_freep)

int vk_random(void *p, size_t n)
{
	if (n > INT_MAX || RAND_bytes(p, (int)n) != 1)
		return -EIO;
	return 0;
}

int vk_sha256(const void *p, size_t n, uint8_t out[32])
{
	return SHA256(p, n, out) ? 0 : -EIO;
}

int vk_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[32])
{
	unsigned int len = 32;

	if (klen > INT_MAX)
		return -EINVAL;
	if (!HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &len) || len != 32)
		return -EIO;
	return 0;
}

int vk_ec_generate(EVP_PKEY **ret)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");

	if (!pkey)
		return -EIO;
	*ret = pkey;
	return 0;
}

static int bn_param(EVP_PKEY *pkey, const char *name, uint8_t out[32])
{
	_cleanup_(bn_freep) BIGNUM *bn = NULL;

	if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1 || BN_num_bytes(bn) > 32)
		return -EIO;
	if (BN_bn2binpad(bn, out, 32) != 32)
		return -EIO;
	return 0;
}

int vk_key_generate(int alg, uint8_t ret_secret[32])
{
	if (alg == COSE_EDDSA)
		return vk_random(ret_secret, 32);
	if (alg == COSE_ES256) {
		_cleanup_pkey_ EVP_PKEY *pkey = NULL;
		int r = vk_ec_generate(&pkey);
		if (r < 0)
			return r;
		return bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, ret_secret);
	}
	return -EOPNOTSUPP;
}

static int ec_from_params(const uint8_t *priv, const uint8_t *pub, size_t pub_len, EVP_PKEY **ret)
{
	_cleanup_(evp_pkey_ctx_freep) EVP_PKEY_CTX *ctx = NULL;
	_cleanup_(bn_freep) BIGNUM *d = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY *pkey = NULL;
	int r = -EIO;

	bld = OSSL_PARAM_BLD_new();
	if (!bld)
		return -ENOMEM;
	if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
	        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, pub_len))
		goto out;
	if (priv) {
		d = BN_bin2bn(priv, 32, NULL);
		if (!d || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d))
			goto out;
	}
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	        EVP_PKEY_fromdata(
	                ctx, &pkey, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	*ret = pkey;
	r = 0;
out:
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return r;
}

int vk_key_from_secret(int alg, const uint8_t secret[32], EVP_PKEY **ret)
{
	EC_GROUP *g = NULL;
	EC_POINT *pt = NULL;
	_cleanup_(bn_freep) BIGNUM *d = NULL;
	uint8_t pub[65];
	int r = -EIO;

	if (alg == COSE_EDDSA) {
		EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, secret, 32);
		if (!pkey)
			return -EIO;
		*ret = pkey;
		return 0;
	}
	if (alg != COSE_ES256)
		return -EOPNOTSUPP;
	g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	d = BN_bin2bn(secret, 32, NULL);
	if (!g || !d)
		goto out;
	if (BN_is_zero(d) || BN_cmp(d, EC_GROUP_get0_order(g)) >= 0) {
		r = -EINVAL;
		goto out;
	}
	pt = EC_POINT_new(g);
	if (!pt || EC_POINT_mul(g, pt, d, NULL, NULL, NULL) != 1 ||
	        EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof(pub), NULL) !=
	                sizeof(pub))
		goto out;
	r = ec_from_params(secret, pub, sizeof(pub), ret);
out:
	EC_POINT_free(pt);
	EC_GROUP_free(g);
	return r;
}

int vk_cose_pubkey(VkBuf *b, EVP_PKEY *pkey, int alg)
{
	uint8_t x[32], y[32];
	size_t len = sizeof(x);
	int r;

	if (alg == COSE_EDDSA) {
		if (EVP_PKEY_get_raw_public_key(pkey, x, &len) != 1 || len != 32)
			return -EIO;
		vk_cbor_map(b, 4);
		vk_cbor_uint(b, 1);
		vk_cbor_uint(b, 1); /* kty OKP */
		vk_cbor_uint(b, 3);
		vk_cbor_int(b, COSE_EDDSA);
		vk_cbor_int(b, -1);
		vk_cbor_uint(b, 6); /* Ed25519 */
		vk_cbor_int(b, -2);
		vk_cbor_bytes(b, x, 32);
		return 0;
	}
	r = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, x);
	if (r >= 0)
		r = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, y);
	if (r < 0)
		return r;
	vk_cbor_map(b, 5);
	vk_cbor_uint(b, 1);
	vk_cbor_uint(b, 2); /* kty EC2 */
	vk_cbor_uint(b, 3);
	vk_cbor_int(b, alg);
	vk_cbor_int(b, -1);
	vk_cbor_uint(b, 1); /* P-256 */
	vk_cbor_int(b, -2);
	vk_cbor_bytes(b, x, 32);
	vk_cbor_int(b, -3);
	vk_cbor_bytes(b, y, 32);
	return 0;
}

int vk_sign(EVP_PKEY *pkey, int alg, const uint8_t *msg, size_t len, uint8_t *sig, size_t *sig_len)
{
	_cleanup_(evp_md_ctx_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestSignInit(ctx, NULL, alg == COSE_EDDSA ? NULL : EVP_sha256(), NULL, pkey) !=
	                1 ||
	        EVP_DigestSign(ctx, sig, sig_len, msg, len) != 1)
		return -EIO;
	return 0;
}

/* Key handle: version(1) alg(1) nonce(12) AES-256-GCM(secret)(32) tag(16); the AAD is
 * the first two bytes plus the RP ID hash, so a handle only opens for its own RP. */
static int alg_code(int alg)
{
	return alg == COSE_ES256 ? 1 : alg == COSE_EDDSA ? 2 : -1;
}

static int gcm(bool enc, const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
        size_t aad_len, const uint8_t *in, size_t n, uint8_t *out, uint8_t tag[16])
{
	_cleanup_(evp_cipher_ctx_freep) EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len;

	if (!ctx)
		return -ENOMEM;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, enc ? 1 : 0) != 1 ||
	        EVP_CipherUpdate(ctx, NULL, &len, aad, (int)aad_len) != 1 ||
	        EVP_CipherUpdate(ctx, out, &len, in, (int)n) != 1)
		return -EIO;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1)
		return -EIO;
	if (EVP_CipherFinal_ex(ctx, out + len, &len) != 1)
		return -EBADMSG;
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1)
		return -EIO;
	return 0;
}

int vk_wrap(const uint8_t master[32], int alg, unsigned cred_protect, bool resident,
        const uint8_t secret[32], const uint8_t rp_id_hash[32], uint8_t ret_id[VK_CRED_ID_LEN])
{
	uint8_t aad[34];
	int r;

	if (alg_code(alg) < 0)
		return -EOPNOTSUPP;
	if (cred_protect > VK_CRED_PROTECT_MAX)
		return -EINVAL;
	/* format 1 in the low 3 bits, the resident bit, the credProtect level (0: none asked)
	 * in the high nibble; all in the AAD, so a changed level or bit does not open */
	ret_id[0] = (uint8_t)(1 | (resident ? VK_ID_RESIDENT : 0) | cred_protect << 4);
	ret_id[1] = (uint8_t)alg_code(alg);
	r = vk_random(ret_id + 2, 12);
	if (r < 0)
		return r;
	memcpy(aad, ret_id, 2);
	memcpy(aad + 2, rp_id_hash, 32);
	return gcm(
	        true, master, ret_id + 2, aad, sizeof(aad), secret, 32, ret_id + 14, ret_id + 46);
}

int vk_unwrap(const uint8_t master[32], const uint8_t *id, size_t id_len,
        const uint8_t rp_id_hash[32], int *ret_alg, uint8_t ret_secret[32])
{
	uint8_t aad[34], tag[16], secret[32];
	int r;

	if (id_len != VK_CRED_ID_LEN || (id[0] & 0x07) != 1 || (id[0] >> 4) > VK_CRED_PROTECT_MAX ||
	        (id[1] != 1 && id[1] != 2))
		return -EBADMSG;
	memcpy(aad, id, 2);
	memcpy(aad + 2, rp_id_hash, 32);
	memcpy(tag, id + 46, 16);
	r = gcm(false, master, id + 2, aad, sizeof(aad), id + 14, 32, secret, tag);
	if (r < 0) {
		OPENSSL_cleanse(secret, sizeof(secret));
		return -EBADMSG;
	}
	if (ret_alg)
		*ret_alg = id[1] == 1 ? COSE_ES256 : COSE_EDDSA;
	if (ret_secret)
		memcpy(ret_secret, secret, 32);
	OPENSSL_cleanse(secret, sizeof(secret));
	return 0;
}

int vk_ecdh(EVP_PKEY *ours, const uint8_t x[32], const uint8_t y[32], uint8_t ret_z[32])
{
	_cleanup_pkey_ EVP_PKEY *peer = NULL;
	_cleanup_(evp_pkey_ctx_freep) EVP_PKEY_CTX *check = NULL, *ctx = NULL;
	uint8_t pub[65];
	size_t len = 32;

	pub[0] = 0x04;
	memcpy(pub + 1, x, 32);
	memcpy(pub + 33, y, 32);
	if (ec_from_params(NULL, pub, sizeof(pub), &peer) < 0)
		return -EINVAL; /* not a point on P-256 */
	check = EVP_PKEY_CTX_new_from_pkey(NULL, peer, NULL);
	if (!check || EVP_PKEY_public_check(check) != 1)
		return -EINVAL;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, ours, NULL);
	if (!ctx || EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, peer) != 1 ||
	        EVP_PKEY_derive(ctx, ret_z, &len) != 1 || len != 32)
		return -EIO;
	return 0;
}

static int hkdf_sha256(const uint8_t z[32], const char *info, uint8_t out[32])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = NULL;
	uint8_t salt[32] = {};
	OSSL_PARAM params[5];
	int r = -EIO;

	if (!kdf)
		return -EIO;
	kctx = EVP_KDF_CTX_new(kdf);
	if (!kctx)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)z, 32);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, sizeof(salt));
	params[3] =
	        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
	params[4] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, 32, params) == 1)
		r = 0;
out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return r;
}

int vk_pin_kdf(unsigned proto, const uint8_t z[32], uint8_t ret_secret[64], size_t *ret_len)
{
	int r;

	if (proto == 1) {
		*ret_len = 32;
		return vk_sha256(z, 32, ret_secret);
	}
	if (proto != 2)
		return -EINVAL;
	r = hkdf_sha256(z, "CTAP2 HMAC key", ret_secret);
	if (r >= 0)
		r = hkdf_sha256(z, "CTAP2 AES key", ret_secret + 32);
	*ret_len = 64;
	return r;
}

static int cbc(bool enc, const uint8_t key[32], const uint8_t iv[16], const uint8_t *in, size_t n,
        uint8_t *out)
{
	_cleanup_(evp_cipher_ctx_freep) EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len, fin;

	if (!ctx)
		return -ENOMEM;
	if (n == 0 || n % 16 != 0 || n > INT_MAX)
		return -EINVAL;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, iv, enc ? 1 : 0) != 1 ||
	        EVP_CIPHER_CTX_set_padding(ctx, 0) != 1 ||
	        EVP_CipherUpdate(ctx, out, &len, in, (int)n) != 1 ||
	        EVP_CipherFinal_ex(ctx, out + len, &fin) != 1 || (size_t)(len + fin) != n)
		return -EIO;
	return 0;
}

int vk_pin_encrypt(unsigned proto, const uint8_t *secret, const uint8_t *pt, size_t n,
        uint8_t *ret_ct, size_t *ret_len)
{
	static const uint8_t zero_iv[16];
	int r;

	if (proto == 1) {
		r = cbc(true, secret, zero_iv, pt, n, ret_ct);
		*ret_len = n;
		return r;
	}
	r = vk_random(ret_ct, 16);
	if (r < 0)
		return r;
	r = cbc(true, secret + 32, ret_ct, pt, n, ret_ct + 16);
	*ret_len = n + 16;
	return r;
}

int vk_pin_decrypt(unsigned proto, const uint8_t *secret, const uint8_t *ct, size_t n,
        uint8_t *ret_pt, size_t *ret_len)
{
	static const uint8_t zero_iv[16];
	int r;

	if (proto == 1) {
		r = cbc(false, secret, zero_iv, ct, n, ret_pt);
		*ret_len = n;
		return r;
	}
	if (n < 32)
		return -EINVAL;
	r = cbc(false, secret + 32, ct, ct + 16, n - 16, ret_pt);
	*ret_len = n - 16;
	return r;
}

bool vk_pin_verify(unsigned proto, const uint8_t *key, size_t klen, const uint8_t *msg, size_t mlen,
        const uint8_t *param, size_t plen)
{
	uint8_t mac[32];
	size_t want = proto == 1 ? 16 : 32;
	bool ok;

	if (plen != want || vk_hmac_sha256(key, klen, msg, mlen, mac) < 0)
		return false;
	ok = memcmp_const(mac, param, want) == 0;
	OPENSSL_cleanse(mac, sizeof(mac));
	return ok;
}

/* ---- attestation certificates ---- */

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok;

	if (!ext)
		return -EIO;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -EIO;
}

static int add_aaguid_ext(X509 *x, const uint8_t aaguid[16])
{
	ASN1_OCTET_STRING *inner = ASN1_OCTET_STRING_new(), *outer = ASN1_OCTET_STRING_new();
	ASN1_OBJECT *obj = OBJ_txt2obj(AAGUID_EXT_OID, 1);
	X509_EXTENSION *ext = NULL;
	uint8_t *der = NULL;
	int der_len, r = -EIO;

	if (!inner || !outer || !obj || ASN1_OCTET_STRING_set(inner, aaguid, 16) != 1)
		goto out;
	der_len = i2d_ASN1_OCTET_STRING(inner, &der); /* 04 10 <aaguid> */
	if (der_len <= 0 || ASN1_OCTET_STRING_set(outer, der, der_len) != 1)
		goto out;
	ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, outer);
	if (ext && X509_add_ext(x, ext, -1) == 1)
		r = 0;
out:
	X509_EXTENSION_free(ext);
	OPENSSL_free(der);
	ASN1_OBJECT_free(obj);
	ASN1_OCTET_STRING_free(inner);
	ASN1_OCTET_STRING_free(outer);
	return r;
}

/* issuer NULL: self-signed CA. */
static int make_cert(
        EVP_PKEY *key, EVP_PKEY *issuer_key, X509 *issuer, const uint8_t *aaguid, X509 **ret)
{
	_cleanup_(x509_freep) X509 *x = X509_new();
	_cleanup_(bn_freep) BIGNUM *serial = BN_new();
	X509_NAME *name;
	X509V3_CTX ctx;
	bool ca = !issuer;

	if (!x || !serial)
		return -ENOMEM;
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	        BN_rand(serial, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ODD) != 1 ||
	        !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) ||
	        !X509_gmtime_adj(X509_getm_notBefore(x), -86400) ||
	        !X509_gmtime_adj(X509_getm_notAfter(x), 20L * 365 * 86400))
		return -EIO;
	name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(
	            name, "C", MBSTRING_ASC, (const unsigned char *)"SE", -1, -1, 0) != 1 ||
	        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	                (const unsigned char *)"keyward tests", -1, -1, 0) != 1 ||
	        X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_ASC,
	                (const unsigned char *)(ca ? "virtkey test CA"
	                                           : "Authenticator Attestation"),
	                -1, -1, 0) != 1 ||
	        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                (const unsigned char *)(ca ? "virtkey test root CA"
	                                           : "virtkey batch attestation"),
	                -1, -1, 0) != 1)
		return -EIO;
	if (X509_set_issuer_name(x, ca ? name : X509_get_subject_name(issuer)) != 1 ||
	        X509_set_pubkey(x, key) != 1)
		return -EIO;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, ca ? x : issuer, x, NULL, NULL, 0);
	if (ca) {
		if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
		        add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
		        add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0)
			return -EIO;
	} else {
		if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
		        add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") < 0 ||
		        add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0 ||
		        add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") < 0 ||
		        add_aaguid_ext(x, aaguid) < 0)
			return -EIO;
	}
	if (X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) <= 0)
		return -EIO;
	*ret = TAKE_PTR(x);
	return 0;
}

static int write_pem(const char *path, X509 *x, EVP_PKEY *key)
{
	_cleanup_(bio_freep) BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long len;

	if (!bio)
		return -ENOMEM;
	if (x ? PEM_write_bio_X509(bio, x) != 1
	      : PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)
		return -EIO;
	len = BIO_get_mem_data(bio, &data);
	if (len <= 0)
		return -EIO;
	return write_file_atomic(path, data, (size_t)len, x ? 0644 : 0600);
}

static int read_pem(const char *path, X509 **ret_x, EVP_PKEY **ret_key)
{
	_cleanup_free_ char *data = NULL;
	_cleanup_(bio_freep) BIO *bio = NULL;
	size_t len;
	int r;

	r = read_full_file_safe(path, SAFE_FILE_NO_WORLD_WRITE, 64 * 1024, &data, &len, NULL);
	if (r < 0)
		return r;
	bio = BIO_new_mem_buf(data, (int)len);
	if (!bio)
		return -ENOMEM;
	if (ret_x) {
		*ret_x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		return *ret_x ? 0 : -EBADMSG;
	}
	*ret_key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	return *ret_key ? 0 : -EBADMSG;
}

static int batch_paths(const char *dir, const uint8_t aaguid[16], char **ret_pem, char **ret_key)
{
	_cleanup_free_ char *hex = NULL;
	int r;

	r = hex_encode(aaguid, 16, &hex);
	if (r < 0)
		return r;
	if (asprintf(ret_pem, "%s/batch-%s.pem", dir, hex) < 0)
		return -ENOMEM;
	if (asprintf(ret_key, "%s/batch-%s.key", dir, hex) < 0) {
		free(*ret_pem);
		return -ENOMEM;
	}
	return 0;
}

int virtkey_attestation_ensure(const char *dir, const uint8_t aaguid[16])
{
	_cleanup_free_ char *lock = NULL, *ca_pem = NULL, *ca_key = NULL, *b_pem = NULL,
	                    *b_key = NULL;
	_cleanup_close_ int lfd = -EBADF;
	_cleanup_pkey_ EVP_PKEY *cakey = NULL, *bkey = NULL;
	_cleanup_(x509_freep) X509 *cacert = NULL, *bcert = NULL;
	int r;

	if (!dir || !aaguid)
		return -EINVAL;
	r = mkdir_parents(dir, 0755);
	if (r < 0)
		return r;
	if (asprintf(&lock, "%s/.lock", dir) < 0 || asprintf(&ca_pem, "%s/ca.pem", dir) < 0 ||
	        asprintf(&ca_key, "%s/ca.key", dir) < 0)
		return -ENOMEM;
	r = batch_paths(dir, aaguid, &b_pem, &b_key);
	if (r < 0)
		return r;
	/* several test processes may share one directory */
	lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lfd < 0)
		return -errno;
	if (flock(lfd, LOCK_EX) < 0)
		return -errno;

	if (access(ca_pem, F_OK) == 0 && access(ca_key, F_OK) == 0) {
		r = read_pem(ca_pem, &cacert, NULL);
		if (r >= 0)
			r = read_pem(ca_key, NULL, &cakey);
		if (r < 0)
			return r;
	} else {
		r = vk_ec_generate(&cakey);
		if (r >= 0)
			r = make_cert(cakey, NULL, NULL, NULL, &cacert);
		if (r >= 0)
			r = write_pem(ca_key, NULL, cakey);
		if (r >= 0)
			r = write_pem(ca_pem, cacert, NULL);
		if (r < 0)
			return r;
		/* a new CA makes old batch certificates worthless */
		(void)unlink(b_pem);
	}
	if (access(b_pem, F_OK) == 0 && access(b_key, F_OK) == 0)
		return 0;
	r = vk_ec_generate(&bkey);
	if (r >= 0)
		r = make_cert(bkey, cakey, cacert, aaguid, &bcert);
	if (r >= 0)
		r = write_pem(b_key, NULL, bkey);
	if (r >= 0)
		r = write_pem(b_pem, bcert, NULL);
	return r;
}

int vk_attestation_load(VirtKey *k, const char *dir)
{
	_cleanup_free_ char *b_pem = NULL, *b_key = NULL;
	_cleanup_(x509_freep) X509 *x = NULL;
	uint8_t *der = NULL;
	int r, len;

	r = batch_paths(dir, k->aaguid, &b_pem, &b_key);
	if (r < 0)
		return r;
	r = read_pem(b_pem, &x, NULL);
	if (r < 0)
		return r;
	r = read_pem(b_key, NULL, &k->att_key);
	if (r < 0)
		return r;
	if (!EVP_PKEY_is_a(k->att_key, "EC") || X509_check_private_key(x, k->att_key) != 1)
		return -EBADMSG;
	len = i2d_X509(x, &der);
	if (len <= 0)
		return -EIO;
	k->att_cert = malloc((size_t)len);
	if (k->att_cert) {
		memcpy(k->att_cert, der, (size_t)len);
		k->att_cert_len = (size_t)len;
	}
	OPENSSL_free(der);
	return k->att_cert ? 0 : -ENOMEM;
}
