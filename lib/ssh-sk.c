/* ssh-sk.c: OpenSSH security-key public keys (blob, authorized_keys line, fingerprint,
 * Credential), SSH_AUTH_INFO_0, sk signatures (OpenSSL) and ssh-sk-attest files (libfido2).
 * Library code: -errno, never logs. */
#include "ssh-sk.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <fido.h>
#include <fido/param.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

#include "ssh-wire.h"
#include "util.h"

#define SHA256_LEN      32
#define ES256_POINT_LEN 65 /* 0x04 | x | y */
#define ED25519_LEN     32
#define ED25519_SIG_LEN 64

static const char *const ssh_sk_type_table[_SSH_SK_TYPE_MAX] = {
        [SSH_SK_ECDSA] = SSH_SK_ECDSA_NAME,
        [SSH_SK_ED25519] = SSH_SK_ED25519_NAME,
};

DEFINE_STRING_TABLE_LOOKUP(ssh_sk_type, SshSkType, ssh_sk_type_table)

const char *ssh_sk_type_short(SshSkType t)
{
	switch (t) {
	case SSH_SK_ECDSA:
		return "ecdsa-sk";
	case SSH_SK_ED25519:
		return "ed25519-sk";
	default:
		return NULL;
	}
}

static int sha256(const void *data, size_t len, uint8_t out[SHA256_LEN])
{
	unsigned n = 0;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != SHA256_LEN)
		return -EIO;
	return 0;
}

/* --- keys --------------------------------------------------------------------------- */

void ssh_sk_key_done(SshSkKey *k)
{
	if (!k)
		return;
	free(k->application);
	*k = (SshSkKey){};
}

/* Whether P (65 bytes, SEC1 uncompressed) is a point on P-256 (not the point at infinity). */
static bool p256_point_valid(const uint8_t *p, size_t n)
{
	EC_GROUP *g;
	EC_POINT *pt = NULL;
	bool ok = false;

	if (n != ES256_POINT_LEN || p[0] != 0x04)
		return false;
	g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	if (!g)
		return false;
	pt = EC_POINT_new(g);
	if (pt && EC_POINT_oct2point(g, pt, p, n, NULL) == 1 &&
	        EC_POINT_is_on_curve(g, pt, NULL) == 1 && EC_POINT_is_at_infinity(g, pt) == 0)
		ok = true;
	EC_POINT_free(pt);
	EC_GROUP_free(g);
	return ok;
}

static bool application_valid(const uint8_t *s, size_t n)
{
	return text_ok(s, n, SSH_SK_MAX_APPLICATION);
}

int ssh_sk_key_from_blob(const uint8_t *blob, size_t len, SshSkKey *ret, char **ret_error)
{
	Wire w = {blob, len};
	const uint8_t *type, *curve, *pk, *app;
	size_t type_len, curve_len, pk_len, app_len;
	SshSkKey k = {};

	if (!blob || len == 0 || len > SSH_SK_MAX_BLOB) {
		set_error(ret_error, "the SSH public key is empty or longer than %d bytes",
		        SSH_SK_MAX_BLOB);
		return -EBADMSG;
	}
	if (wire_string(&w, &type, &type_len) < 0 || !text_ok(type, type_len, 128)) {
		set_error(ret_error, "the SSH public key does not start with a key type");
		return -EBADMSG;
	}
	if (str_is(type, type_len, SSH_SK_ECDSA_NAME)) {
		k.type = SSH_SK_ECDSA;
		if (wire_string(&w, &curve, &curve_len) < 0 ||
		        !str_is(curve, curve_len, "nistp256")) {
			set_error(ret_error, "the ecdsa-sk key does not name the curve nistp256");
			return -EBADMSG;
		}
		if (wire_string(&w, &pk, &pk_len) < 0 || !p256_point_valid(pk, pk_len)) {
			set_error(ret_error, "the ecdsa-sk key's point is not a P-256 point");
			return -EBADMSG;
		}
	} else if (str_is(type, type_len, SSH_SK_ED25519_NAME)) {
		k.type = SSH_SK_ED25519;
		if (wire_string(&w, &pk, &pk_len) < 0 || pk_len != ED25519_LEN) {
			set_error(ret_error, "the ed25519-sk key is not 32 bytes");
			return -EBADMSG;
		}
	} else {
		set_error(ret_error, "%.*s is not a security-key SSH key (ecdsa-sk or ed25519-sk)",
		        (int)type_len, (const char *)type);
		return -EPROTOTYPE;
	}
	if (wire_string(&w, &app, &app_len) < 0 || !application_valid(app, app_len)) {
		set_error(ret_error, "the sk key's application is missing or not printable text");
		return -EBADMSG;
	}
	if (w.n != 0) {
		set_error(ret_error, "%zu bytes follow the sk key", w.n);
		return -EBADMSG;
	}
	memcpy(k.public_key, pk, pk_len);
	k.public_key_len = pk_len;
	k.application = strndup((const char *)app, app_len);
	if (!k.application)
		return -ENOMEM;
	*ret = k;
	return 0;
}

int ssh_sk_key_to_blob(const SshSkKey *k, uint8_t **ret, size_t *ret_len)
{
	const char *name = ssh_sk_type_to_string(k->type);
	Buf b = {};

	if (!name || isempty(k->application))
		return -EINVAL;
	buf_put_string(&b, name, strlen(name));
	if (k->type == SSH_SK_ECDSA)
		buf_put_string(&b, "nistp256", 8);
	buf_put_string(&b, k->public_key, k->public_key_len);
	buf_put_string(&b, k->application, strlen(k->application));
	return buf_take(&b, ret, ret_len);
}

bool ssh_sk_key_equal(const SshSkKey *a, const SshSkKey *b)
{
	return a->type == b->type && a->public_key_len == b->public_key_len &&
	       memcmp(a->public_key, b->public_key, a->public_key_len) == 0 && a->application &&
	       b->application && streq(a->application, b->application);
}

int ssh_fingerprint(const uint8_t *blob, size_t len, char **ret)
{
	uint8_t h[SHA256_LEN];
	_cleanup_free_ char *b64 = NULL;
	char *s, *eq;
	int r;

	r = sha256(blob, len, h);
	if (r < 0)
		return r;
	r = base64_encode(h, sizeof(h), &b64);
	if (r < 0)
		return r;
	eq = strchr(b64, '=');
	if (eq)
		*eq = '\0';
	if (asprintf(&s, "SHA256:%s", b64) < 0)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int ssh_sk_credential_id(const uint8_t *blob, size_t len, char **ret)
{
	uint8_t h[SHA256_LEN];
	int r;

	r = sha256(blob, len, h);
	if (r < 0)
		return r;
	return base64_encode(h, sizeof(h), ret);
}

/* --- authorized_keys / .pub lines ----------------------------------------------------- */

void ssh_key_line_done(SshKeyLine *l)
{
	if (!l)
		return;
	free(l->key_type);
	free(l->blob);
	free(l->comment);
	strv_free(l->options);
	ssh_sk_key_done(&l->key);
	*l = (SshKeyLine){};
}

/* Key type names OpenSSH knows: a first word that is one of them starts the key, anything
 * else is the options field (OpenSSH's auth_parse_options() does the same). */
static bool known_key_type(const char *s, size_t n)
{
	static const char *const names[] = {
	        SSH_SK_ECDSA_NAME,
	        SSH_SK_ED25519_NAME,
	        "ssh-ed25519",
	        "ssh-rsa",
	        "ssh-dss",
	        "ecdsa-sha2-nistp256",
	        "ecdsa-sha2-nistp384",
	        "ecdsa-sha2-nistp521",
	        "ssh-xmss@openssh.com",
	};
	static const char cert_suffix[] = "-cert-v01@openssh.com";
	size_t cl = strlen(cert_suffix);

	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		if (n == strlen(names[i]) && memcmp(s, names[i], n) == 0)
			return true;
	return n > cl && memcmp(s + n - cl, cert_suffix, cl) == 0;
}

/* Splits the options field [S, S+N) at commas outside double quotes; an option is NAME or
 * NAME="VALUE" (\" inside VALUE). Stores each option with its quotes removed. */
static int parse_options(const char *s, size_t n, SshKeyLine *l, char **ret_error)
{
	size_t i = 0;

	while (i < n) {
		_cleanup_free_ char *opt = malloc(n + 1);
		size_t o = 0, name_len = 0;
		bool has_value = false;

		if (!opt)
			return -ENOMEM;
		while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_'))
			opt[o++] = s[i++];
		name_len = o;
		if (name_len == 0) {
			set_error(ret_error, "malformed key options (expected an option name)");
			return -EBADMSG;
		}
		if (i < n && s[i] == '=') {
			opt[o++] = s[i++];
			if (i >= n || s[i] != '"') {
				set_error(ret_error,
				        "malformed key options (a value must be quoted)");
				return -EBADMSG;
			}
			i++;
			while (i < n && s[i] != '"') {
				if (s[i] == '\\' && i + 1 < n && s[i + 1] == '"')
					i++;
				opt[o++] = s[i++];
			}
			if (i >= n) {
				set_error(ret_error, "malformed key options (unbalanced quotes)");
				return -EBADMSG;
			}
			i++; /* closing quote */
			has_value = true;
		}
		opt[o] = '\0';
		if (i < n && s[i] != ',') {
			set_error(ret_error, "malformed key options near '%.*s'",
			        (int)(n - i > 32 ? 32 : n - i), s + i);
			return -EBADMSG;
		}
		if (i < n) {
			i++;
			if (i == n) {
				set_error(ret_error, "malformed key options (trailing comma)");
				return -EBADMSG;
			}
		}
		if (!has_value && strcasecmp(opt, "no-touch-required") == 0)
			l->no_touch_required = true;
		else if (!has_value && strcasecmp(opt, "verify-required") == 0)
			l->verify_required = true;
		if (strv_extend(&l->options, opt) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* End of the word at S: whitespace outside double quotes. */
static size_t word_len(const char *s, bool quotes)
{
	bool q = false;
	size_t i = 0;

	for (; s[i]; i++) {
		if (quotes && s[i] == '"' && (i == 0 || s[i - 1] != '\\'))
			q = !q;
		else if (!q && (s[i] == ' ' || s[i] == '\t'))
			break;
	}
	return i;
}

static const char *skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

int ssh_key_line_parse(const char *line, SshKeyLine *ret, char **ret_error)
{
	SshKeyLine l = {};
	_cleanup_free_ char *b64 = NULL;
	const char *p;
	size_t n, len;
	Wire w;
	const uint8_t *t;
	size_t tl;
	int r;

	len = strnlen(line, SSH_SK_MAX_LINE + 1);
	if (len > SSH_SK_MAX_LINE) {
		set_error(ret_error, "line longer than %d characters", SSH_SK_MAX_LINE);
		return -EBADMSG;
	}
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t' &&
		        !(line[i] == '\r' && i == len - 1)) {
			set_error(ret_error, "control character in the line");
			return -EBADMSG;
		}
	p = skip_ws(line);
	if (*p == '\0' || *p == '#' || (*p == '\r' && p[1] == '\0'))
		return -ENODATA;

	n = word_len(p, true);
	if (!known_key_type(p, n)) {
		r = parse_options(p, n, &l, ret_error);
		if (r < 0)
			goto fail;
		p = skip_ws(p + n);
		n = word_len(p, false);
		if (!known_key_type(p, n)) {
			set_error(ret_error, "no known SSH key type after the options");
			r = -EBADMSG;
			goto fail;
		}
	}
	l.key_type = strndup(p, n);
	if (!l.key_type) {
		r = -ENOMEM;
		goto fail;
	}
	p = skip_ws(p + n);
	n = word_len(p, false);
	b64 = strndup(p, n);
	if (!b64) {
		r = -ENOMEM;
		goto fail;
	}
	if (n == 0 || base64_decode(b64, &l.blob, &l.blob_len) < 0 || l.blob_len == 0) {
		set_error(ret_error, "the %s key is not valid base64", l.key_type);
		r = -EBADMSG;
		goto fail;
	}
	p = skip_ws(p + n);
	if (*p) {
		size_t cl = strlen(p);
		while (cl > 0 && (p[cl - 1] == '\r' || p[cl - 1] == ' ' || p[cl - 1] == '\t'))
			cl--;
		if (cl > 0) {
			l.comment = strndup(p, cl);
			if (!l.comment) {
				r = -ENOMEM;
				goto fail;
			}
		}
	}
	/* The blob must say the type the line says (sshd refuses a mismatch too). */
	w = (Wire){l.blob, l.blob_len};
	if (wire_string(&w, &t, &tl) < 0 || !str_is(t, tl, l.key_type)) {
		set_error(
		        ret_error, "the key blob is not of the type %s the line names", l.key_type);
		r = -EBADMSG;
		goto fail;
	}
	r = ssh_sk_key_from_blob(l.blob, l.blob_len, &l.key, ret_error);
	if (r == -EPROTOTYPE) {
		*ret = l; /* the caller names the ordinary key */
		return r;
	}
	if (r < 0)
		goto fail;
	l.is_sk = true;
	*ret = l;
	return 0;
fail:
	ssh_key_line_done(&l);
	return r;
}

int ssh_sk_key_format_line(const SshSkKey *k, bool verify_required, const char *comment, char **ret)
{
	_cleanup_free_ uint8_t *blob = NULL;
	_cleanup_free_ char *b64 = NULL;
	size_t len;
	char *s;
	int r;

	r = ssh_sk_key_to_blob(k, &blob, &len);
	if (r < 0)
		return r;
	r = base64_encode(blob, len, &b64);
	if (r < 0)
		return r;
	if (comment && strpbrk(comment, "\r\n"))
		return -EINVAL;
	if (asprintf(&s, "%s%s %s%s%s", verify_required ? "verify-required " : "",
	            ssh_sk_type_to_string(k->type), b64, isempty(comment) ? "" : " ",
	            strempty(comment)) < 0)
		return -ENOMEM;
	*ret = s;
	return 0;
}

/* --- Credential <-> key ------------------------------------------------------------- */

int ssh_sk_key_from_credential(const Credential *c, SshSkKey *ret)
{
	_cleanup_free_ uint8_t *pk = NULL;
	SshSkKey k = {};
	size_t n;

	if (!credential_is_ssh(c))
		return -EPROTOTYPE;
	if (isempty(c->rp_id) || !application_valid((const uint8_t *)c->rp_id, strlen(c->rp_id)) ||
	        !c->public_key || base64_decode(c->public_key, &pk, &n) < 0)
		return -EINVAL;
	if (c->cose_alg == COSE_ES256) {
		k.type = SSH_SK_ECDSA;
		if (n == ES256_POINT_LEN - 1) {
			k.public_key[0] = 0x04;
			memcpy(k.public_key + 1, pk, n);
		} else if (n == ES256_POINT_LEN)
			memcpy(k.public_key, pk, n);
		else
			return -EINVAL;
		k.public_key_len = ES256_POINT_LEN;
		if (!p256_point_valid(k.public_key, k.public_key_len))
			return -EINVAL;
	} else if (c->cose_alg == COSE_EDDSA) {
		k.type = SSH_SK_ED25519;
		if (n != ED25519_LEN)
			return -EINVAL;
		memcpy(k.public_key, pk, n);
		k.public_key_len = n;
	} else
		return -EINVAL;
	k.application = strdup(c->rp_id);
	if (!k.application)
		return -ENOMEM;
	*ret = k;
	return 0;
}

int ssh_sk_credential_from_key(const SshSkKey *k, const char *label, Credential *ret)
{
	_cleanup_free_ uint8_t *blob = NULL;
	size_t len;
	Credential c = {
	        .type = CRED_TYPE_SSH_SK,
	        .up = true,
	        .attestation = CRED_ATTESTATION_IMPORTED,
	};
	const uint8_t *pk = k->public_key;
	size_t pk_len = k->public_key_len;
	int r;

	r = ssh_sk_key_to_blob(k, &blob, &len);
	if (r < 0)
		return r;
	if (k->type == SSH_SK_ECDSA) {
		c.cose_alg = COSE_ES256;
		pk++; /* stored as libfido2 keeps it: x | y */
		pk_len--;
	} else
		c.cose_alg = COSE_EDDSA;
	r = ssh_sk_credential_id(blob, len, &c.id);
	if (r >= 0)
		r = base64_encode(pk, pk_len, &c.public_key);
	if (r >= 0) {
		c.rp_id = strdup(k->application);
		c.label = label ? strdup(label) : NULL;
		if (!c.rp_id || (label && !c.label))
			r = -ENOMEM;
	}
	if (r < 0) {
		credential_done(&c);
		return r;
	}
	*ret = c;
	return 0;
}

/* --- SSH_AUTH_INFO_0 ---------------------------------------------------------------- */

SshAuthInfo *ssh_auth_info_free(SshAuthInfo *a)
{
	if (!a)
		return NULL;
	for (size_t i = 0; i < a->n; i++) {
		free(a->methods[i].method);
		free(a->methods[i].key_type);
		free(a->methods[i].blob);
	}
	free(a->methods);
	free(a);
	return NULL;
}

#define SSH_AUTH_INFO_MAX_KEY (16 * 1024) /* a certificate is larger than a key */

static bool method_char(char c)
{
	return isalnum((unsigned char)c) || strchr("-_./@", c);
}

static int auth_info_line(
        const char *s, size_t n, unsigned line, SshAuthMethod *m, char **ret_error)
{
	size_t i = 0, t0, t1, b0, b1;
	_cleanup_free_ char *b64 = NULL;

	while (i < n && method_char(s[i]))
		i++;
	if (i == 0 || i > 64 || (i < n && s[i] != ' ')) {
		set_error(ret_error, "SSH_AUTH_INFO_0 line %u: not a method name", line);
		return -EBADMSG;
	}
	m->method = strndup(s, i);
	if (!m->method)
		return -ENOMEM;
	if (!streq(m->method, "publickey"))
		return 0; /* other methods' details (if any) do not matter to keyward */
	if (i == n) {
		set_error(ret_error, "SSH_AUTH_INFO_0 line %u: publickey without a key", line);
		return -EBADMSG;
	}
	t0 = ++i;
	while (i < n && s[i] != ' ')
		i++;
	t1 = i;
	if (t1 == t0 || i == n || !text_ok((const uint8_t *)s + t0, t1 - t0, 128)) {
		set_error(ret_error, "SSH_AUTH_INFO_0 line %u: publickey without a key type", line);
		return -EBADMSG;
	}
	b0 = ++i;
	while (i < n && s[i] != ' ')
		i++;
	b1 = i;
	m->key_type = strndup(s + t0, t1 - t0);
	b64 = strndup(s + b0, b1 - b0);
	if (!m->key_type || !b64)
		return -ENOMEM;
	if (b1 == b0 || b1 - b0 > SSH_AUTH_INFO_MAX_KEY * 4 / 3 + 4 ||
	        base64_decode(b64, &m->blob, &m->blob_len) < 0 || m->blob_len == 0) {
		set_error(ret_error, "SSH_AUTH_INFO_0 line %u: the key is not valid base64", line);
		return -EBADMSG;
	}
	/* A certificate line carries more words (ID, serial, CA); a key line nothing else. */
	if (b1 != n && !strstr(m->key_type, "-cert-v01@openssh.com")) {
		set_error(
		        ret_error, "SSH_AUTH_INFO_0 line %u: unexpected text after the key", line);
		return -EBADMSG;
	}
	return 0;
}

int ssh_auth_info_parse(const char *text, SshAuthInfo **ret, char **ret_error)
{
	SshAuthInfo *a;
	size_t len;
	unsigned line = 0;
	int r = 0;

	if (isempty(text)) {
		set_error(ret_error, "SSH_AUTH_INFO_0 is empty");
		return -ENODATA;
	}
	len = strnlen(text, SSH_AUTH_INFO_MAX_LEN + 1);
	if (len > SSH_AUTH_INFO_MAX_LEN) {
		set_error(ret_error, "SSH_AUTH_INFO_0 is longer than %d bytes",
		        SSH_AUTH_INFO_MAX_LEN);
		return -EBADMSG;
	}
	for (size_t i = 0; i < len; i++)
		if (text[i] != '\n' &&
		        ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e)) {
			set_error(ret_error,
			        "SSH_AUTH_INFO_0 holds a control or non-ASCII character");
			return -EBADMSG;
		}
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	for (const char *p = text; *p;) {
		const char *eol = strchrnul(p, '\n');
		SshAuthMethod *m;

		line++;
		if (eol == p) {
			set_error(ret_error, "SSH_AUTH_INFO_0 line %u is empty", line);
			r = -EBADMSG;
			break;
		}
		if (a->n >= SSH_AUTH_INFO_MAX_METHODS) {
			set_error(ret_error, "SSH_AUTH_INFO_0 has more than %d methods",
			        SSH_AUTH_INFO_MAX_METHODS);
			r = -EBADMSG;
			break;
		}
		m = reallocarray(a->methods, a->n + 1, sizeof(*m));
		if (!m) {
			r = -ENOMEM;
			break;
		}
		a->methods = m;
		m = &a->methods[a->n++];
		*m = (SshAuthMethod){};
		r = auth_info_line(p, (size_t)(eol - p), line, m, ret_error);
		if (r < 0)
			break;
		p = *eol ? eol + 1 : eol;
	}
	if (r < 0) {
		ssh_auth_info_free(a);
		return r;
	}
	*ret = a;
	return 0;
}

/* --- signatures --------------------------------------------------------------------- */

/* An SSH mpint that is a positive number of at most MAX bytes (minimal encoding). */
static int wire_mpint_pos(Wire *w, size_t max, BIGNUM **ret)
{
	const uint8_t *p;
	size_t n;

	if (wire_string(w, &p, &n) < 0 || n == 0 || (p[0] & 0x80))
		return -EBADMSG;
	if (p[0] == 0 && (n == 1 || !(p[1] & 0x80)))
		return -EBADMSG; /* zero or a needless leading 0x00 */
	if (p[0] == 0) {
		p++;
		n--;
	}
	if (n > max)
		return -EBADMSG;
	*ret = BN_bin2bn(p, (int)n, NULL);
	return *ret ? 0 : -ENOMEM;
}

static int ecdsa_der(Wire *w, uint8_t **ret, size_t *ret_len)
{
	BIGNUM *r = NULL, *s = NULL;
	ECDSA_SIG *sig;
	unsigned char *der = NULL;
	int n;

	if (wire_mpint_pos(w, 32, &r) < 0 || wire_mpint_pos(w, 32, &s) < 0 || w->n != 0) {
		BN_free(r);
		BN_free(s);
		return -EBADMSG;
	}
	sig = ECDSA_SIG_new();
	if (!sig || ECDSA_SIG_set0(sig, r, s) != 1) {
		ECDSA_SIG_free(sig);
		BN_free(r);
		BN_free(s);
		return -ENOMEM;
	}
	n = i2d_ECDSA_SIG(sig, &der);
	ECDSA_SIG_free(sig);
	if (n <= 0)
		return -ENOMEM;
	*ret = der;
	*ret_len = (size_t)n;
	return 0;
}

/* The SubjectPublicKeyInfo DER of a P-256 key is this prefix and the 65-byte point. */
static const uint8_t p256_spki_prefix[] = {
        0x30,
        0x59,
        0x30,
        0x13,
        0x06,
        0x07,
        0x2a,
        0x86,
        0x48,
        0xce,
        0x3d,
        0x02,
        0x01,
        0x06,
        0x08,
        0x2a,
        0x86,
        0x48,
        0xce,
        0x3d,
        0x03,
        0x01,
        0x07,
        0x03,
        0x42,
        0x00,
};

static EVP_PKEY *pkey_from_key(const SshSkKey *k)
{
	uint8_t der[sizeof(p256_spki_prefix) + ES256_POINT_LEN];
	const unsigned char *p = der;

	if (k->type == SSH_SK_ED25519)
		return EVP_PKEY_new_raw_public_key(
		        EVP_PKEY_ED25519, NULL, k->public_key, ED25519_LEN);
	if (k->public_key_len != ES256_POINT_LEN)
		return NULL;
	memcpy(der, p256_spki_prefix, sizeof(p256_spki_prefix));
	memcpy(der + sizeof(p256_spki_prefix), k->public_key, ES256_POINT_LEN);
	return d2i_PUBKEY(NULL, &p, sizeof(der));
}

int ssh_sk_signature_verify(const SshSkKey *k, const uint8_t *sig, size_t sig_len,
        const uint8_t *data, size_t data_len, uint8_t *ret_flags, uint32_t *ret_counter,
        char **ret_error)
{
	Wire w = {sig, sig_len}, inner;
	const uint8_t *type, *s;
	size_t type_len, s_len;
	uint8_t flags, msg[SHA256_LEN + 1 + 4 + SHA256_LEN], digest[SHA256_LEN];
	uint32_t counter;
	_cleanup_free_ uint8_t *der = NULL;
	size_t der_len = 0;
	EVP_PKEY *pkey = NULL;
	EVP_MD_CTX *ctx = NULL;
	int r, ok;

	if (!sig || sig_len == 0 || sig_len > SSH_SK_MAX_SIGNATURE) {
		set_error(ret_error, "the signature is empty or longer than %d bytes",
		        SSH_SK_MAX_SIGNATURE);
		return -EBADMSG;
	}
	if (wire_string(&w, &type, &type_len) < 0 || wire_string(&w, &s, &s_len) < 0 ||
	        wire_u8(&w, &flags) < 0 || wire_u32(&w, &counter) < 0 || w.n != 0) {
		set_error(ret_error, "the signature is not an sk signature (type, signature, "
		                     "flags, counter)");
		return -EBADMSG;
	}
	if (!str_is(type, type_len, ssh_sk_type_to_string(k->type))) {
		set_error(ret_error, "the signature is of type %.*s, not %s",
		        (int)(text_ok(type, type_len, 128) ? type_len : 1),
		        text_ok(type, type_len, 128) ? (const char *)type : "?",
		        ssh_sk_type_to_string(k->type));
		return -EPROTOTYPE;
	}
	if (k->type == SSH_SK_ED25519 && s_len != ED25519_SIG_LEN) {
		set_error(ret_error, "the ed25519-sk signature is not 64 bytes");
		return -EBADMSG;
	}
	if (k->type == SSH_SK_ECDSA) {
		inner = (Wire){s, s_len};
		r = ecdsa_der(&inner, &der, &der_len);
		if (r < 0) {
			set_error(ret_error,
			        "the ecdsa-sk signature is not two positive 256-bit mpints");
			return r;
		}
	}
	r = sha256(k->application, strlen(k->application), msg);
	if (r >= 0) {
		msg[SHA256_LEN] = flags;
		msg[SHA256_LEN + 1] = counter >> 24;
		msg[SHA256_LEN + 2] = counter >> 16;
		msg[SHA256_LEN + 3] = counter >> 8;
		msg[SHA256_LEN + 4] = counter;
		r = sha256(data, data_len, msg + SHA256_LEN + 5);
	}
	if (r < 0)
		return r;

	pkey = pkey_from_key(k);
	ctx = EVP_MD_CTX_new();
	if (!pkey || !ctx) {
		r = -ENOMEM;
		goto out;
	}
	if (k->type == SSH_SK_ED25519) {
		ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
		     EVP_DigestVerify(ctx, s, s_len, msg, sizeof(msg)) == 1;
	} else {
		EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(pkey, NULL);

		r = sha256(msg, sizeof(msg), digest);
		ok = r >= 0 && pctx && EVP_PKEY_verify_init(pctx) == 1 &&
		     EVP_PKEY_verify(pctx, der, der_len, digest, sizeof(digest)) == 1;
		EVP_PKEY_CTX_free(pctx);
	}
	if (!ok) {
		set_error(ret_error, "the %s signature does not verify with the key",
		        ssh_sk_type_short(k->type));
		r = -EKEYREJECTED;
		goto out;
	}
	if (ret_flags)
		*ret_flags = flags;
	if (ret_counter)
		*ret_counter = counter;
	r = 0;
out:
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return r;
}

/* --- attestation (ssh-keygen -O write-attestation=FILE) ------------------------------- */

void ssh_sk_attestation_done(SshSkAttestation *a)
{
	if (!a)
		return;
	free(a->x5c);
	*a = (SshSkAttestation){};
}

static int fido_verify_attestation(const uint8_t *cert, size_t cert_len, const uint8_t *sig,
        size_t sig_len, const uint8_t *authdata, size_t authdata_len, const uint8_t *challenge,
        size_t challenge_len, const SshSkKey *k, SshSkAttestation *ret, char **ret_error)
{
	fido_cred_t *cred = fido_cred_new();
	uint8_t cdh[SHA256_LEN];
	const uint8_t *pk;
	size_t pk_len;
	int r, fr;

	if (!cred)
		return -ENOMEM;
	r = sha256(challenge, challenge_len, cdh);
	if (r < 0)
		goto out;
	r = -EBADMSG;
	if (fido_cred_set_type(cred, k->type == SSH_SK_ECDSA ? COSE_ES256 : COSE_EDDSA) !=
	                FIDO_OK ||
	        fido_cred_set_fmt(cred, "packed") != FIDO_OK ||
	        fido_cred_set_rp(cred, k->application, NULL) != FIDO_OK ||
	        fido_cred_set_clientdata_hash(cred, cdh, sizeof(cdh)) != FIDO_OK) {
		set_error(ret_error, "the attestation cannot be prepared for verification");
		goto out;
	}
	/* OpenSSH stores the authenticator data CBOR-wrapped as libfido2 gives it (older
	 * versions: raw). */
	if (fido_cred_set_authdata(cred, authdata, authdata_len) != FIDO_OK &&
	        fido_cred_set_authdata_raw(cred, authdata, authdata_len) != FIDO_OK) {
		set_error(ret_error,
		        "the attestation's authenticator data is malformed or not "
		        "for a %s key",
		        ssh_sk_type_short(k->type));
		goto out;
	}
	if (fido_cred_set_sig(cred, sig, sig_len) != FIDO_OK ||
	        (cert_len > 0 && fido_cred_set_x509(cred, cert, cert_len) != FIDO_OK)) {
		set_error(ret_error, "the attestation's signature or certificate is malformed");
		goto out;
	}
	fr = cert_len > 0 ? fido_cred_verify(cred) : fido_cred_verify_self(cred);
	if (fr != FIDO_OK) {
		set_error(ret_error,
		        "the attestation does not verify (%s): wrong challenge file, or the "
		        "attestation was altered",
		        fido_strerr(fr));
		r = -EKEYREJECTED;
		goto out;
	}
	pk = fido_cred_pubkey_ptr(cred);
	pk_len = fido_cred_pubkey_len(cred);
	if (!(k->type == SSH_SK_ECDSA && pk_len == ES256_POINT_LEN - 1 && pk &&
	            memcmp(pk, k->public_key + 1, pk_len) == 0) &&
	        !(k->type == SSH_SK_ED25519 && pk_len == ED25519_LEN && pk &&
	                memcmp(pk, k->public_key, pk_len) == 0)) {
		set_error(ret_error, "the attestation is for another key than this SSH key");
		r = -EKEYREJECTED;
		goto out;
	}
	if (fido_cred_aaguid_len(cred) != sizeof(ret->aaguid)) {
		set_error(ret_error, "the attestation carries no AAGUID");
		goto out;
	}
	*ret = (SshSkAttestation){.flags = fido_cred_flags(cred)};
	memcpy(ret->aaguid, fido_cred_aaguid_ptr(cred), sizeof(ret->aaguid));
	if (cert_len > 0) {
		ret->x5c = malloc(cert_len);
		if (!ret->x5c) {
			r = -ENOMEM;
			goto out;
		}
		memcpy(ret->x5c, cert, cert_len);
		ret->x5c_len = cert_len;
	}
	r = 0;
out:
	fido_cred_free(&cred);
	return r;
}

int ssh_sk_attestation_verify(const uint8_t *att, size_t att_len, const uint8_t *challenge,
        size_t challenge_len, const SshSkKey *k, SshSkAttestation *ret, char **ret_error)
{
	Wire w = {att, att_len};
	const uint8_t *ver, *cert, *sig, *authdata = NULL, *resvd;
	size_t ver_len, cert_len, sig_len, authdata_len = 0, resvd_len;
	uint32_t flags;
	bool v01;

	if (!att || att_len == 0 || att_len > SSH_SK_MAX_ATTESTATION) {
		set_error(ret_error, "the attestation file is empty or larger than %d bytes",
		        SSH_SK_MAX_ATTESTATION);
		return -EBADMSG;
	}
	if (!challenge || challenge_len == 0 || challenge_len > 1024) {
		set_error(ret_error, "the challenge is empty or larger than 1024 bytes");
		return -EINVAL;
	}
	if (wire_string(&w, &ver, &ver_len) < 0) {
		set_error(ret_error, "not an OpenSSH attestation file (ssh-sk-attest-v01)");
		return -EBADMSG;
	}
	if (str_is(ver, ver_len, "ssh-sk-attest-v01"))
		v01 = true;
	else if (str_is(ver, ver_len, "ssh-sk-attest-v00"))
		v01 = false;
	else {
		set_error(ret_error, "not an OpenSSH attestation file (ssh-sk-attest-v01)");
		return -EBADMSG;
	}
	if (wire_string(&w, &cert, &cert_len) < 0 || wire_string(&w, &sig, &sig_len) < 0 ||
	        (v01 && wire_string(&w, &authdata, &authdata_len) < 0) ||
	        wire_u32(&w, &flags) < 0 || wire_string(&w, &resvd, &resvd_len) < 0 || w.n != 0 ||
	        sig_len == 0) {
		set_error(ret_error, "the attestation file is truncated or has trailing bytes");
		return -EBADMSG;
	}
	/* OpenSSH writes 0 and an empty string: anything else is a format we do not know. */
	if (flags != 0 || resvd_len != 0) {
		set_error(ret_error, "the attestation file uses reserved fields this version of "
		                     "keyward does not know");
		return -EBADMSG;
	}
	if (!v01) {
		/* OpenSSH 8.2 wrote no authenticator data: nothing binds the certificate's
		 * signature to this key. */
		set_error(ret_error,
		        "ssh-sk-attest-v00 (OpenSSH 8.2) carries no authenticator "
		        "data and cannot be verified; make the key with OpenSSH 8.3 or "
		        "later");
		return -EOPNOTSUPP;
	}
	return fido_verify_attestation(cert, cert_len, sig, sig_len, authdata, authdata_len,
	        challenge, challenge_len, k, ret, ret_error);
}
