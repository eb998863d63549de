/* directory-value.c: the directory's value formats (SSSD's passkey mapping, keyward's
 * keywardCredential and keywardSignCount), RFC 4515 filter escaping, the per-user parse
 * that rejects a bad value without losing the others, and the merge with local
 * credentials. Pure: no I/O (directory.h). */
#include "directory.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fido.h>
#include <fido/eddsa.h>
#include <fido/es256.h>
#include <fido/rs256.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "fido-util.h"
#include "util.h"

#define PASSKEY_PREFIX "passkey:"

DirectoryUser *directory_user_free(DirectoryUser *u)
{
	if (!u)
		return NULL;
	free(u->user);
	free(u->dn);
	free(u->uri);
	strv_free(u->values);
	strv_free(u->keyward_values);
	for (size_t i = 0; i < u->n_counters; i++) {
		free(u->counters[i].id);
		free(u->counters[i].raw);
	}
	free(u->counters);
	credential_set_free(u->set);
	strv_free(u->problems);
	free(u);
	return NULL;
}

int directory_filter_escape(const char *value, char **ret)
{
	size_t n = strlen(value);
	char *out = malloc(3 * n + 1), *p = out;

	if (!out)
		return -ENOMEM;
	for (const unsigned char *s = (const unsigned char *)value; *s; s++) {
		if (*s == '*' || *s == '(' || *s == ')' || *s == '\\' || *s < 0x20 || *s >= 0x7f)
			p += sprintf(p, "\\%02x", *s);
		else
			*p++ = (char)*s;
	}
	*p = 0;
	*ret = out;
	return 0;
}

int directory_user_filter(const char *template_, const char *user, char **ret)
{
	_cleanup_free_ char *esc = NULL;
	char *out, *p;
	size_t n = 1;
	int r;

	r = directory_filter_escape(user, &esc);
	if (r < 0)
		return r;
	for (const char *t = template_; *t; t++)
		n += (t[0] == '%' && t[1] == 'u') ? strlen(esc) : 1;
	out = p = malloc(n);
	if (!out)
		return -ENOMEM;
	for (const char *t = template_; *t; t++) {
		if (t[0] == '%' && t[1] == 'u') {
			p = stpcpy(p, esc);
			t++;
		} else if (t[0] == '%' && t[1] == '%') {
			*p++ = '%';
			t++;
		} else
			*p++ = *t;
	}
	*p = 0;
	*ret = out;
	return 0;
}

/* Strict RFC 4648 base64 (padded, no whitespace) of 1..MAX bytes. */
static int b64_strict(const char *s, size_t max, uint8_t **ret, size_t *ret_len)
{
	size_t n = strlen(s);
	int r;

	if (n == 0 || n % 4 != 0 || n > 4 * ((max + 2) / 3))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/' &&
		        !(s[i] == '=' && i >= n - 2))
			return -EINVAL;
	r = base64_decode(s, ret, ret_len);
	if (r < 0)
		return -EINVAL;
	if (*ret_len == 0 || *ret_len > max) {
		free(*ret);
		*ret = NULL;
		return -EINVAL;
	}
	return 0;
}

static int bn_fixed(const EVP_PKEY *pk, const char *param, uint8_t *out, size_t len)
{
	BIGNUM *bn = NULL;
	int r = -EINVAL;

	if (EVP_PKEY_get_bn_param(pk, param, &bn) == 1 && BN_num_bytes(bn) <= (int)len &&
	        BN_bn2binpad(bn, out, (int)len) == (int)len)
		r = 0;
	BN_free(bn);
	return r;
}

/* SubjectPublicKeyInfo DER → COSE algorithm and libfido2's raw public key. */
static int spki_to_raw(const uint8_t *der, size_t len, int *ret_cose, uint8_t **ret,
        size_t *ret_len, const char **why)
{
	const unsigned char *p = der;
	EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)len);
	uint8_t *raw = NULL;
	size_t n = 0;
	int cose = 0, r = -EINVAL;

	if (!pk || p != der + len) {
		*why = "the public key is not a DER SubjectPublicKeyInfo";
		goto out;
	}
	if (EVP_PKEY_is_a(pk, "EC")) {
		char group[64] = "";

		if (EVP_PKEY_get_utf8_string_param(
		            pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) != 1 ||
		        !streq(group, "prime256v1")) {
			*why = "the EC public key is not on P-256 (es256)";
			goto out;
		}
		n = 64;
		raw = malloc(n);
		if (!raw || bn_fixed(pk, OSSL_PKEY_PARAM_EC_PUB_X, raw, 32) < 0 ||
		        bn_fixed(pk, OSSL_PKEY_PARAM_EC_PUB_Y, raw + 32, 32) < 0) {
			*why = "the EC public key cannot be read";
			goto out;
		}
		cose = COSE_ES256;
	} else if (EVP_PKEY_is_a(pk, "ED25519")) {
		n = 32;
		raw = malloc(n);
		if (!raw || EVP_PKEY_get_raw_public_key(pk, raw, &n) != 1 || n != 32) {
			*why = "the Ed25519 public key cannot be read";
			goto out;
		}
		cose = COSE_EDDSA;
	} else if (EVP_PKEY_is_a(pk, "RSA")) {
		if (EVP_PKEY_get_bits(pk) != 2048) {
			*why = "the RSA public key is not 2048 bits (rs256)";
			goto out;
		}
		n = 256 + 3;
		raw = malloc(n);
		if (!raw || bn_fixed(pk, OSSL_PKEY_PARAM_RSA_N, raw, 256) < 0 ||
		        bn_fixed(pk, OSSL_PKEY_PARAM_RSA_E, raw + 256, 3) < 0) {
			*why = "the RSA public key cannot be read";
			goto out;
		}
		cose = COSE_RS256;
	} else {
		*why = "wrong key type (es256, eddsa or rs256 keys only)";
		goto out;
	}
	if (!fido_pubkey_valid(cose, raw, n)) {
		*why = "the public key is not a valid point or key";
		goto out;
	}
	*ret_cose = cose;
	*ret = raw;
	*ret_len = n;
	raw = NULL;
	r = 0;
out:
	free(raw);
	EVP_PKEY_free(pk);
	return r;
}

int directory_passkey_parse(const char *value, const char *rp_id, const char *label,
        Credential *ret, const char **ret_why)
{
	_cleanup_free_ char *copy = NULL;
	_cleanup_free_ uint8_t *id = NULL, *der = NULL, *raw = NULL, *uid = NULL;
	size_t id_len = 0, der_len, raw_len, uid_len;
	char *fields[4] = {};
	size_t nf = 0;
	Credential c = {.up = true, .attestation = CRED_ATTESTATION_IMPORTED};
	const char *why = NULL;
	int cose;

	if (strlen(value) > DIRECTORY_VALUE_MAX) {
		why = "the value is too long";
		goto fail;
	}
	if (strncmp(value, PASSKEY_PREFIX, strlen(PASSKEY_PREFIX)) != 0) {
		why = "the value does not start with \"passkey:\"";
		goto fail;
	}
	copy = strdup(value + strlen(PASSKEY_PREFIX));
	if (!copy)
		return -ENOMEM;
	for (char *p = copy; p; nf++) {
		if (nf == 3) {
			nf++; /* a fourth field: too many */
			break;
		}
		fields[nf] = p;
		p = strchr(p, ',');
		if (p)
			*p++ = 0;
	}
	if (nf < 2 || nf > 3) {
		why = "expected passkey:<credential id>,<public key>[,<user id>]";
		goto fail;
	}
	if (!streq(fields[0], CREDS_DISCOVERABLE_ID) &&
	        b64_strict(fields[0], 1023, &id, &id_len) < 0) {
		why = "the credential id is not base64 of 1-1023 bytes";
		goto fail;
	}
	if (b64_strict(fields[1], 1024, &der, &der_len) < 0) {
		why = "the public key is not base64 (of at most 1024 bytes)";
		goto fail;
	}
	if (spki_to_raw(der, der_len, &cose, &raw, &raw_len, &why) < 0)
		goto fail;
	if (nf == 3 && b64_strict(fields[2], 64, &uid, &uid_len) < 0) {
		why = "the user id is not base64 of 1-64 bytes";
		goto fail;
	}
	c.cose_alg = cose;
	c.resident = streq(fields[0], CREDS_DISCOVERABLE_ID) || nf == 3;
	c.id = strdup(fields[0]);
	c.label = strdup(label);
	c.rp_id = strdup(rp_id);
	c.user_id = nf == 3 ? strdup(fields[2]) : NULL;
	if (base64_encode(raw, raw_len, &c.public_key) < 0 || !c.id || !c.label || !c.rp_id ||
	        (nf == 3 && !c.user_id)) {
		credential_done(&c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
fail:
	if (ret_why)
		*ret_why = why;
	return -EINVAL;
}

int directory_passkey_format(const Credential *c, char **ret)
{
	_cleanup_free_ uint8_t *raw = NULL, *der = NULL;
	_cleanup_free_ char *der_b64 = NULL;
	EVP_PKEY *pk = NULL;
	size_t raw_len;
	int der_len = -1, r;

	r = base64_decode(c->public_key, &raw, &raw_len);
	if (r < 0)
		return r;
	if (c->cose_alg == COSE_ES256) {
		es256_pk_t *k = es256_pk_new();
		if (k && es256_pk_from_ptr(k, raw, raw_len) == FIDO_OK)
			pk = es256_pk_to_EVP_PKEY(k);
		es256_pk_free(&k);
	} else if (c->cose_alg == COSE_EDDSA) {
		eddsa_pk_t *k = eddsa_pk_new();
		if (k && eddsa_pk_from_ptr(k, raw, raw_len) == FIDO_OK)
			pk = eddsa_pk_to_EVP_PKEY(k);
		eddsa_pk_free(&k);
	} else if (c->cose_alg == COSE_RS256) {
		rs256_pk_t *k = rs256_pk_new();
		if (k && rs256_pk_from_ptr(k, raw, raw_len) == FIDO_OK)
			pk = rs256_pk_to_EVP_PKEY(k);
		rs256_pk_free(&k);
	}
	if (!pk)
		return -EINVAL;
	der_len = i2d_PUBKEY(pk, NULL);
	if (der_len > 0 && (der = malloc((size_t)der_len))) {
		unsigned char *p = der;
		der_len = i2d_PUBKEY(pk, &p);
	}
	EVP_PKEY_free(pk);
	if (der_len <= 0 || !der)
		return -ENOMEM;
	r = base64_encode(der, (size_t)der_len, &der_b64);
	if (r < 0)
		return r;
	if (asprintf(ret, PASSKEY_PREFIX "%s,%s%s%s", c->id, der_b64, c->user_id ? "," : "",
	            c->user_id ? c->user_id : "") < 0)
		return -ENOMEM;
	return 0;
}

static int replace(char **p, const char *v)
{
	char *c = strdup(v);

	if (!c)
		return -ENOMEM;
	free(*p);
	*p = c;
	return 0;
}

int directory_keyward_apply(CredentialSet *s, const char *value, const char **ret_why)
{
	_cleanup_free_ char *copy = NULL;
	Credential *c, t;
	char *save = NULL, *tok;
	const char *why = NULL;
	int r = 0;

	if (strlen(value) > DIRECTORY_VALUE_MAX) {
		*ret_why = "the value is too long";
		return -EINVAL;
	}
	copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	tok = strtok_r(copy, " ", &save);
	if (!tok) {
		*ret_why = "the value is empty";
		return -EINVAL;
	}
	c = creds_find_id(s, tok);
	if (!c)
		return -ENOENT;
	t = *c; /* applied on a copy of the scalars; strings replaced in place at the end */
	{
		const char *label = NULL, *rp = NULL;

		while (!why && (tok = strtok_r(NULL, " ", &save))) {
			char *eq = strchr(tok, '=');

			if (!eq) {
				why = "expected key=value after the credential id";
				break;
			}
			*eq++ = 0;
			if (streq(tok, "label"))
				label = creds_label_valid(eq) ? eq : (why = "invalid label", NULL);
			else if (streq(tok, "rp_id"))
				rp = (*eq && strlen(eq) <= 255) ? eq
				                                : (why = "invalid rp_id", NULL);
			else if (streq(tok, "alg")) {
				if (fido_cose_from_string(eq) != t.cose_alg)
					why = "alg does not match the public key";
			} else if (streq(tok, "aaguid")) {
				if (fido_aaguid_from_string(eq, t.aaguid) < 0)
					why = "invalid aaguid";
				t.has_aaguid = true;
			} else if (streq(tok, "flags")) {
				t.up = t.uv = false;
				t.resident = streq(t.id, CREDS_DISCOVERABLE_ID);
				for (char *f = eq, *n; f && *f; f = n) {
					n = strchr(f, ',');
					if (n)
						*n++ = 0;
					if (streq(f, "up"))
						t.up = true;
					else if (streq(f, "uv"))
						t.uv = true;
					else if (streq(f, "rk"))
						t.resident = true;
					else
						why = "unknown flag (up, uv, rk)";
				}
			} else if (streq(tok, "attestation")) {
				CredAttestation a = cred_attestation_from_string(eq);
				if (a < 0)
					why = "unknown attestation";
				else
					t.attestation = a;
			} else if (streq(tok, "created")) {
				if (parse_rfc3339_ms(eq, &t.created_ms) < 0)
					why = "invalid created time";
			} else
				why = "unknown key (label, rp_id, alg, aaguid, flags, attestation, "
				      "created)";
		}
		if (why) {
			*ret_why = why;
			return -EINVAL;
		}
		if (label && !streq(label, c->label) && creds_find_label(s, label)) {
			*ret_why = "the label is already used by another credential";
			return -EINVAL;
		}
		c->has_aaguid = t.has_aaguid;
		memcpy(c->aaguid, t.aaguid, sizeof(c->aaguid));
		c->up = t.up;
		c->uv = t.uv;
		c->resident = t.resident;
		c->attestation = t.attestation;
		c->created_ms = t.created_ms;
		if (label)
			r = replace(&c->label, label);
		if (r >= 0 && rp)
			r = replace(&c->rp_id, rp);
	}
	return r;
}

int directory_keyward_format(const Credential *c, char **ret)
{
	char aaguid[FIDO_AAGUID_STRING_MAX] = "", created[40] = "";

	if (c->has_aaguid)
		fido_aaguid_to_string(c->aaguid, aaguid);
	if (c->created_ms)
		(void)format_rfc3339_ms(c->created_ms, created, sizeof(created));
	if (asprintf(ret, "%s label=%s rp_id=%s alg=%s%s%s flags=%s%s%s attestation=%s%s%s", c->id,
	            c->label, c->rp_id, strna(fido_cose_to_string(c->cose_alg)),
	            c->has_aaguid ? " aaguid=" : "", aaguid, c->up ? "up" : "",
	            c->uv ? (c->up ? ",uv" : "uv") : "",
	            c->resident ? ((c->up || c->uv) ? ",rk" : "rk") : "",
	            cred_attestation_to_string(c->attestation), *created ? " created=" : "",
	            created) < 0)
		return -ENOMEM;
	return 0;
}

int directory_counter_parse(const char *value, DirectoryCounter *ret)
{
	const char *sp = strchr(value, ' ');
	_cleanup_free_ char *id = NULL;
	char *end;
	unsigned long long v;

	if (!sp || strlen(value) > 2048)
		return -EINVAL;
	id = strndup(value, (size_t)(sp - value));
	if (!id)
		return -ENOMEM;
	if (!creds_id_valid(id) || !isdigit((unsigned char)sp[1]))
		return -EINVAL;
	errno = 0;
	v = strtoull(sp + 1, &end, 10);
	if (errno || *end || v > UINT32_MAX)
		return -EINVAL;
	ret->raw = strdup(value);
	if (!ret->raw)
		return -ENOMEM;
	ret->id = TAKE_PTR(id);
	ret->value = (uint32_t)v;
	return 0;
}

int directory_counter_format(const char *id, uint32_t value, char **ret)
{
	return asprintf(ret, "%s %" PRIu32, id, value) < 0 ? -ENOMEM : 0;
}

const DirectoryCounter *directory_user_counter(const DirectoryUser *u, const char *id)
{
	const DirectoryCounter *best = NULL;

	/* Several values for one id (a race lost by nobody's fault): the highest counts. */
	for (size_t i = 0; u && i < u->n_counters; i++)
		if (streq(u->counters[i].id, id) && (!best || u->counters[i].value > best->value))
			best = &u->counters[i];
	return best;
}

_printf_(2, 3) static void problem(DirectoryUser *u, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;

	if (strv_length(u->problems) >= DIRECTORY_PROBLEMS_MAX)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) >= 0) {
		/* The value is an outsider's text: no control characters reach a log. */
		for (char *p = msg; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		(void)strv_extend(&u->problems, msg);
	}
	va_end(ap);
	free(msg);
}

int directory_user_parse(DirectoryUser *u, const char *rp_id)
{
	size_t n = 0, k = 0;
	int r;

	credential_set_free(u->set);
	u->set = NULL;
	r = credential_set_new(u->user, &u->set);
	if (r < 0)
		return r;
	for (char **v = u->values; v && *v; v++, n++) {
		Credential c = {};
		const char *why = NULL;
		char label[32];

		if (n >= DIRECTORY_VALUES_MAX) {
			problem(u, "%s: more than %d passkey values; the rest are ignored", u->user,
			        DIRECTORY_VALUES_MAX);
			break;
		}
		snprintf(label, sizeof(label), "directory-%zu", ++k);
		r = directory_passkey_parse(*v, rp_id, label, &c, &why);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			problem(u, "%s: passkey value %zu rejected: %s (\"%.40s%s\")", u->user,
			        n + 1, why, *v, strlen(*v) > 40 ? "..." : "");
			continue;
		}
		r = creds_add(u->set, &c, 0);
		credential_done(&c);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			problem(u, "%s: passkey value %zu rejected: %s", u->user, n + 1,
			        r == -EEXIST  ? "a duplicate credential id"
			        : r == -E2BIG ? "too many credentials"
			                      : "invalid credential");
	}
	n = 0;
	for (char **v = u->keyward_values; v && *v && n < DIRECTORY_VALUES_MAX; v++, n++) {
		const char *why = NULL;

		r = directory_keyward_apply(u->set, *v, &why);
		if (r == -ENOMEM)
			return r;
		if (r == -ENOENT)
			problem(u,
			        "%s: " DIRECTORY_ATTR_CREDENTIAL
			        " value %zu names no passkey value",
			        u->user, n + 1);
		else if (r < 0)
			problem(u, "%s: " DIRECTORY_ATTR_CREDENTIAL " value %zu rejected: %s",
			        u->user, n + 1, why);
	}
	return 0;
}

int directory_merge(CredentialSet **dst, const CredentialSet *dir, PolicyCredSource source)
{
	CredentialSet *out = NULL;
	int r;

	if (source == POLICY_CRED_SOURCE_LOCAL)
		return 0;
	r = credential_set_new((*dst)->user, &out);
	if (r < 0)
		return r;
	if (source == POLICY_CRED_SOURCE_BOTH)
		for (size_t i = 0; i < (*dst)->n; i++) {
			r = creds_add(out, &(*dst)->items[i], 0);
			if (r < 0 && r != -EEXIST && r != -E2BIG)
				goto fail;
		}
	for (size_t i = 0; dir && i < dir->n; i++) {
		Credential c = dir->items[i];
		char label[32];

		if (creds_find_id(out, c.id))
			continue;
		if (creds_find_label(out, c.label)) {
			snprintf(label, sizeof(label), "dir-%zu", i + 1);
			c.label = label;
		}
		r = creds_add(out, &c, 0);
		if (r < 0 && r != -EEXIST && r != -E2BIG)
			goto fail;
	}
	credential_set_free(*dst);
	*dst = out;
	return 0;
fail:
	credential_set_free(out);
	return r;
}
