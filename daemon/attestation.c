/* attestation.c: AAGUID lists and x5c chain verification with OpenSSL's X509_STORE. */
#include "attestation.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>

#include "util.h"

#define TRUST_ANCHOR_MAX_FILE (1024 * 1024)
#define FIDO_AAGUID_OID       "1.3.6.1.4.1.45724.1.1.4"

int attestation_check_aaguid(const uint8_t aaguid[16], const uint8_t (*allow)[16], size_t n_allow,
        const uint8_t (*deny)[16], size_t n_deny)
{
	bool listed = false;

	for (size_t i = 0; i < n_deny; i++)
		if (memcmp(deny[i], aaguid, 16) == 0)
			return -EPERM;
	if (n_allow == 0)
		return 0;
	for (size_t i = 0; i < n_allow; i++)
		if (memcmp(allow[i], aaguid, 16) == 0)
			listed = true;
	return listed ? 0 : -EPERM;
}

static int load_anchors(X509_STORE *store, char *const *files, char **ret_why)
{
	size_t n_certs = 0;

	for (char *const *f = files; f && *f; f++) {
		_cleanup_free_ char *pem = NULL;
		const char *problem = NULL;
		size_t len;
		BIO *bio;
		X509 *x;
		int r;

		r = read_full_file_safe(
		        *f, SAFE_FILE_DEFAULT, TRUST_ANCHOR_MAX_FILE, &pem, &len, &problem);
		if (r < 0) {
			if (asprintf(ret_why, "trust anchor %s %s", *f, strna(problem)) < 0)
				*ret_why = NULL;
			return r;
		}
		bio = BIO_new_mem_buf(pem, (int)len);
		if (!bio)
			return -ENOMEM;
		while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
			if (X509_STORE_add_cert(store, x) == 1)
				n_certs++;
			X509_free(x);
		}
		ERR_clear_error(); /* end of file */
		BIO_free(bio);
	}
	if (n_certs == 0) {
		if (asprintf(ret_why, "the policy's trust_anchors hold no certificate") < 0)
			*ret_why = NULL;
		return -ENOKEY;
	}
	return 0;
}

static int check_aaguid_extension(X509 *leaf, const uint8_t aaguid[16], char **ret_why)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(FIDO_AAGUID_OID, 1);
	const ASN1_OCTET_STRING *os;
	const unsigned char *p;
	X509_EXTENSION *ext;
	int idx;

	if (!obj)
		return -ENOMEM;
	idx = X509_get_ext_by_OBJ(leaf, obj, -1);
	ASN1_OBJECT_free(obj);
	if (idx < 0)
		return 0; /* optional */
	ext = X509_get_ext(leaf, idx);
	os = ext ? X509_EXTENSION_get_data(ext) : NULL;
	/* The extension value is an OCTET STRING holding the 16-byte AAGUID. */
	if (!os || ASN1_STRING_length(os) != 18) {
		if (asprintf(ret_why,
		            "the attestation certificate's AAGUID extension is malformed") < 0)
			*ret_why = NULL;
		return -EBADMSG;
	}
	p = ASN1_STRING_get0_data(os);
	if (p[0] != 0x04 || p[1] != 0x10 || memcmp(p + 2, aaguid, 16) != 0) {
		if (asprintf(ret_why, "the attestation certificate names another AAGUID than the "
		                      "credential") < 0)
			*ret_why = NULL;
		return -EBADMSG;
	}
	return 0;
}

int attestation_verify_chain(const uint8_t *x5c, size_t x5c_len, char *const *trust_anchors,
        const uint8_t aaguid[16], char **ret_why)
{
	const unsigned char *p = x5c;
	X509_STORE_CTX *ctx = NULL;
	X509_STORE *store = NULL;
	X509 *leaf = NULL;
	int r;

	*ret_why = NULL;
	if (!x5c || x5c_len == 0 || x5c_len > 64 * 1024) {
		if (asprintf(ret_why, "the key sent no attestation certificate") < 0)
			*ret_why = NULL;
		return -ENOKEY;
	}
	leaf = d2i_X509(NULL, &p, (long)x5c_len);
	if (!leaf) {
		if (asprintf(ret_why, "the key's attestation certificate cannot be parsed") < 0)
			*ret_why = NULL;
		r = -EBADMSG;
		goto out;
	}
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	if (!store || !ctx) {
		r = -ENOMEM;
		goto out;
	}
	r = load_anchors(store, trust_anchors, ret_why);
	if (r < 0)
		goto out;
	X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
	if (X509_STORE_CTX_init(ctx, store, leaf, NULL) != 1) {
		r = -ENOMEM;
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		if (asprintf(ret_why,
		            "the attestation certificate does not chain to the policy's trust "
		            "anchors (%s)",
		            X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx))) < 0)
			*ret_why = NULL;
		r = -EPERM;
		goto out;
	}
	r = check_aaguid_extension(leaf, aaguid, ret_why);
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(leaf);
	return r;
}
