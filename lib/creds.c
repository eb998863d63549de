/* creds.c: the credential store (parse/format/load/save one file per user), sign
 * counters, and the pam_u2f authfile importer. Library code: -errno, never logs. */
#include "creds.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <fido/param.h>

#include "util.h"

static const char *const cred_attestation_table[_CRED_ATTESTATION_MAX] = {
        [CRED_ATTESTATION_NONE] = "none",
        [CRED_ATTESTATION_SELF] = "self",
        [CRED_ATTESTATION_UNVERIFIED] = "unverified",
        [CRED_ATTESTATION_VERIFIED] = "verified",
        [CRED_ATTESTATION_IMPORTED] = "imported",
};

DEFINE_STRING_TABLE_LOOKUP(cred_attestation, CredAttestation, cred_attestation_table)

static const char *const cred_type_table[_CRED_TYPE_MAX] = {
        [CRED_TYPE_FIDO2] = "fido2",
        [CRED_TYPE_SSH_SK] = "ssh-sk",
};

DEFINE_STRING_TABLE_LOOKUP(cred_type, CredType, cred_type_table)

/* The application prefix OpenSSH gives every sk key ("ssh:" by default, "ssh:NAME" with
 * ssh-keygen -O application=ssh:NAME; OpenSSH refuses anything else). */
#define SSH_APPLICATION_PREFIX "ssh:"

static const struct {
	int cose;
	const char *name;
} cose_table[] = {
        {COSE_ES256, "es256"},
        {COSE_EDDSA, "eddsa"},
        {COSE_RS256, "rs256"},
};

static const char *cose_name(int cose)
{
	for (size_t i = 0; i < ELEMENTSOF(cose_table); i++)
		if (cose_table[i].cose == cose)
			return cose_table[i].name;
	return NULL;
}

static int cose_from_name(const char *s)
{
	for (size_t i = 0; i < ELEMENTSOF(cose_table); i++)
		if (strcasecmp(cose_table[i].name, s) == 0)
			return cose_table[i].cose;
	return 0;
}

void credential_done(Credential *c)
{
	if (!c)
		return;
	free(c->id);
	free(c->label);
	free(c->rp_id);
	free(c->public_key);
	free(c->user_id);
	*c = (Credential){};
}

CredentialSet *credential_set_free(CredentialSet *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		credential_done(&s->items[i]);
	free(s->items);
	free(s->user);
	free(s);
	return NULL;
}

int credential_set_new(const char *user, CredentialSet **ret)
{
	CredentialSet *s;

	if (!valid_user_name(user))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->user = strdup(user);
	if (!s->user) {
		free(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

size_t creds_count_fido2(const CredentialSet *s)
{
	size_t n = 0;

	for (size_t i = 0; s && i < s->n; i++)
		n += !credential_is_ssh(&s->items[i]);
	return n;
}

size_t creds_count_ssh(const CredentialSet *s)
{
	size_t n = 0;

	for (size_t i = 0; s && i < s->n; i++)
		n += credential_is_ssh(&s->items[i]);
	return n;
}

void creds_keep_type(CredentialSet *s, CredType type)
{
	size_t j = 0;

	for (size_t i = 0; s && i < s->n; i++) {
		if (s->items[i].type == type)
			s->items[j++] = s->items[i];
		else
			credential_done(&s->items[i]);
	}
	if (s)
		s->n = j;
}

int creds_path(const char *dir, const char *user, char **ret)
{
	char *p;

	if (!valid_user_name(user) || isempty(dir))
		return -EINVAL;
	if (asprintf(&p, "%s/%s%s", dir, user, CREDS_FILE_SUFFIX) < 0)
		return -ENOMEM;
	*ret = p;
	return 0;
}

bool creds_label_valid(const char *label)
{
	size_t n;

	if (isempty(label))
		return false;
	n = strlen(label);
	if (n > 64)
		return false;
	for (const char *c = label; *c; c++)
		if (!(isalnum((unsigned char)*c) || strchr("._@+-", *c)))
			return false;
	return true;
}

bool creds_id_valid(const char *id)
{
	_cleanup_free_ uint8_t *d = NULL;
	size_t n;

	if (isempty(id))
		return false;
	if (streq(id, CREDS_DISCOVERABLE_ID))
		return true;
	if (strlen(id) > 1368) /* base64 of 1023 bytes + padding */
		return false;
	if (base64_decode(id, &d, &n) < 0)
		return false;
	return n >= 1 && n <= 1023;
}

static bool base64_valid(const char *s, size_t min, size_t max)
{
	_cleanup_free_ uint8_t *d = NULL;
	size_t n;

	if (isempty(s) || strlen(s) > CREDS_MAX_VALUE)
		return false;
	if (base64_decode(s, &d, &n) < 0)
		return false;
	return n >= min && n <= max;
}

#define ES256_PK_LEN 64  /* libfido2's es256_pk_t: x | y, as fido_cred_pubkey_ptr() gives it */
#define EDDSA_PK_LEN 32  /* eddsa_pk_t: the Ed25519 point */
#define RS256_PK_LEN 259 /* rs256_pk_t: 2048-bit modulus n, 3-byte exponent e */

/* Whether PK (raw, as stored) is key material of the right shape for COSE: a corrupt key
 * must fail the load, not every signature check (each of which counts towards lockout).
 * NULL if it fits, else what the algorithm takes. */
static const char *public_key_problem(int cose, const uint8_t *pk, size_t n)
{
	switch (cose) {
	case COSE_ES256:
		/* libfido2 also takes the SEC1 uncompressed point, 0x04 | x | y. */
		if (n == ES256_PK_LEN || (n == ES256_PK_LEN + 1 && pk[0] == 0x04))
			return NULL;
		return "64 bytes, the raw P-256 point x|y";
	case COSE_EDDSA:
		if (n == EDDSA_PK_LEN)
			return NULL;
		return "32 bytes, an Ed25519 point";
	case COSE_RS256:
		/* A full-width odd modulus n[256] and an odd exponent e[3] above 1. */
		if (n == RS256_PK_LEN && (pk[0] & 0x80) && (pk[255] & 1) && (pk[258] & 1) &&
		        (pk[256] | pk[257] | (pk[258] & 0xfe)) != 0)
			return NULL;
		return "259 bytes, a 2048-bit modulus and an odd exponent";
	default:
		return "es256, eddsa or rs256";
	}
}

static const char *public_key_problem_b64(int cose, const char *b64)
{
	_cleanup_free_ uint8_t *d = NULL;
	size_t n;

	if (base64_decode(b64, &d, &n) < 0)
		return "base64";
	return public_key_problem(cose, d, n);
}

static int credential_check(const Credential *c, const char **ret_why, bool *ret_key_material)
{
	const char *why = NULL;
	bool key_material = false;

	if (!creds_id_valid(c->id))
		why = "missing or invalid 'id' (base64 credential id)";
	else if (!creds_label_valid(c->label))
		why = "missing or invalid 'label' (1-64 of A-Z a-z 0-9 . _ @ + -)";
	else if (isempty(c->rp_id) || strlen(c->rp_id) > 255)
		why = "missing or invalid 'rp_id'";
	else if (!cose_name(c->cose_alg))
		why = "missing or invalid 'alg' (es256, eddsa or rs256)";
	else if (!base64_valid(c->public_key, 32, 1024))
		why = "missing or invalid 'public_key' (base64)";
	else if (public_key_problem_b64(c->cose_alg, c->public_key)) {
		why = "'public_key' is not valid key material for its 'alg'";
		key_material = true;
	} else if (c->user_id && !base64_valid(c->user_id, 1, 64))
		why = "invalid 'user_id' (base64 of 1-64 bytes)";
	else if (c->attestation < 0 || c->attestation >= _CRED_ATTESTATION_MAX)
		why = "invalid 'attestation'";
	else if (streq(c->id, CREDS_DISCOVERABLE_ID) && !c->resident)
		why = "'id=*' needs 'resident=yes'";
	else if (c->type < 0 || c->type >= _CRED_TYPE_MAX)
		why = "invalid 'type'";
	else if (credential_is_ssh(c) && c->cose_alg != COSE_ES256 && c->cose_alg != COSE_EDDSA)
		why = "'type=ssh-sk' needs 'alg' es256 or eddsa (ecdsa-sk or ed25519-sk)";
	else if (credential_is_ssh(c) &&
	         !strneq(c->rp_id, SSH_APPLICATION_PREFIX, strlen(SSH_APPLICATION_PREFIX)))
		why = "'type=ssh-sk' needs an 'rp_id' starting with \"ssh:\" (the key's "
		      "application)";
	else if (credential_is_ssh(c) && streq(c->id, CREDS_DISCOVERABLE_ID))
		why = "'type=ssh-sk' needs the key's 'id' (base64 of the SHA-256 of its blob), not "
		      "'*'";
	if (why) {
		if (ret_why)
			*ret_why = why;
		if (ret_key_material)
			*ret_key_material = key_material;
		return -EINVAL;
	}
	return 0;
}

static int credential_copy(const Credential *src, Credential *dst)
{
	Credential c = *src;

	c.id = strdup(src->id);
	c.label = strdup(src->label);
	c.rp_id = strdup(src->rp_id);
	c.public_key = strdup(src->public_key);
	c.user_id = src->user_id ? strdup(src->user_id) : NULL;
	if (!c.id || !c.label || !c.rp_id || !c.public_key || (src->user_id && !c.user_id)) {
		credential_done(&c);
		return -ENOMEM;
	}
	*dst = c;
	return 0;
}

Credential *creds_find_id(const CredentialSet *s, const char *id)
{
	if (!s || !id)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (streq(s->items[i].id, id) && !streq(id, CREDS_DISCOVERABLE_ID))
			return &s->items[i];
	return NULL;
}

Credential *creds_find_label(const CredentialSet *s, const char *label)
{
	if (!s || !label)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (streq(s->items[i].label, label))
			return &s->items[i];
	return NULL;
}

Credential *creds_find(const CredentialSet *s, const char *label_or_id)
{
	Credential *c = creds_find_label(s, label_or_id);

	return c ? c : creds_find_id(s, label_or_id);
}

int creds_add(CredentialSet *s, const Credential *c, size_t max)
{
	Credential *items;
	int r;

	if (credential_check(c, NULL, NULL) < 0)
		return -EINVAL;
	if (max == 0 || max > CREDS_MAX_PER_FILE)
		max = CREDS_MAX_PER_FILE;
	if (creds_find_id(s, c->id) || creds_find_label(s, c->label))
		return -EEXIST;
	if (s->n >= max)
		return -E2BIG;
	items = reallocarray(s->items, s->n + 1, sizeof(Credential));
	if (!items)
		return -ENOMEM;
	s->items = items;
	r = credential_copy(c, &s->items[s->n]);
	if (r < 0)
		return r;
	s->n++;
	return 0;
}

int creds_remove(CredentialSet *s, const char *label_or_id)
{
	Credential *c = creds_find(s, label_or_id);
	size_t i;

	if (!c)
		return -ENOENT;
	i = (size_t)(c - s->items);
	credential_done(c);
	memmove(&s->items[i], &s->items[i + 1], (s->n - i - 1) * sizeof(Credential));
	s->n--;
	return 0;
}

/* --- parsing ------------------------------------------------------------------------ */

static int parse_bool(const char *v, bool *ret)
{
	if (streq(v, "yes") || streq(v, "true") || streq(v, "1"))
		*ret = true;
	else if (streq(v, "no") || streq(v, "false") || streq(v, "0"))
		*ret = false;
	else
		return -EINVAL;
	return 0;
}

static int replace_str(char **p, const char *v)
{
	char *c = strdup(v);

	if (!c)
		return -ENOMEM;
	free(*p);
	*p = c;
	return 0;
}

/* Finishes the credential being parsed (if any) and appends it. */
static int finish_block(CredentialSet *s, Credential *cur, bool *open, const char *filename,
        unsigned block_line, unsigned key_line, char **ret_error)
{
	const char *why = NULL;
	bool key_material = false;
	Credential *items;

	if (!*open)
		return 0;
	*open = false;
	if (credential_check(cur, &why, &key_material) < 0) {
		if (key_material)
			set_error(ret_error,
			        "%s:%u: 'public_key' is not a valid %s public key (%s)", filename,
			        key_line, cose_name(cur->cose_alg),
			        public_key_problem_b64(cur->cose_alg, cur->public_key));
		else
			set_error(ret_error, "%s:%u: credential: %s", filename, block_line, why);
		credential_done(cur);
		return -EINVAL;
	}
	if (creds_find_id(s, cur->id) || creds_find_label(s, cur->label)) {
		set_error(ret_error, "%s:%u: credential: duplicate id or label '%s'", filename,
		        block_line, cur->label);
		credential_done(cur);
		return -EINVAL;
	}
	if (s->n >= CREDS_MAX_PER_FILE) {
		set_error(ret_error, "%s:%u: more than %d credentials", filename, block_line,
		        CREDS_MAX_PER_FILE);
		credential_done(cur);
		return -E2BIG;
	}
	items = reallocarray(s->items, s->n + 1, sizeof(Credential));
	if (!items) {
		credential_done(cur);
		return -ENOMEM;
	}
	s->items = items;
	s->items[s->n++] = *cur; /* transferred */
	*cur = (Credential){};
	return 0;
}

/* Canonical UUID text → 16 bytes. */
static int aaguid_parse(const char *value, uint8_t ret[16])
{
	uint8_t a[16];
	size_t j = 0;

	if (strlen(value) != 36)
		return -EINVAL;
	for (size_t i = 0; i < 36;) {
		char hx[3];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (value[i] != '-')
				return -EINVAL;
			i++;
			continue;
		}
		hx[0] = value[i];
		hx[1] = value[i + 1];
		hx[2] = '\0';
		if (!isxdigit((unsigned char)hx[0]) || !isxdigit((unsigned char)hx[1]))
			return -EINVAL;
		a[j++] = (uint8_t)strtoul(hx, NULL, 16);
		i += 2;
	}
	memcpy(ret, a, 16);
	return 0;
}

static int parse_assignment(Credential *c, const char *key, const char *value, const char **why)
{
	int r;

	if (streq(key, "id"))
		return replace_str(&c->id, value);
	if (streq(key, "type")) {
		CredType t = cred_type_from_string(value);
		if (t < 0) {
			*why = "unknown 'type' (fido2 or ssh-sk)";
			return -EINVAL;
		}
		c->type = t;
		return 0;
	}
	if (streq(key, "label"))
		return replace_str(&c->label, value);
	if (streq(key, "rp_id"))
		return replace_str(&c->rp_id, value);
	if (streq(key, "public_key"))
		return replace_str(&c->public_key, value);
	if (streq(key, "user_id"))
		return replace_str(&c->user_id, value);
	if (streq(key, "alg")) {
		c->cose_alg = cose_from_name(value);
		if (c->cose_alg == 0) {
			*why = "unknown 'alg' (use es256, eddsa or rs256)";
			return -EINVAL;
		}
		return 0;
	}
	if (streq(key, "aaguid")) {
		if (aaguid_parse(value, c->aaguid) < 0) {
			*why = "invalid 'aaguid' (UUID like 01234567-89ab-cdef-0123-456789abcdef)";
			return -EINVAL;
		}
		c->has_aaguid = true;
		return 0;
	}
	if (streq(key, "attestation")) {
		CredAttestation a = cred_attestation_from_string(value);
		if (a < 0) {
			*why = "unknown 'attestation' (none, self, unverified, verified, imported)";
			return -EINVAL;
		}
		c->attestation = a;
		return 0;
	}
	if (streq(key, "resident") || streq(key, "up") || streq(key, "uv")) {
		bool b;
		r = parse_bool(value, &b);
		if (r < 0) {
			*why = "expected yes or no";
			return r;
		}
		if (streq(key, "resident"))
			c->resident = b;
		else if (streq(key, "up"))
			c->up = b;
		else
			c->uv = b;
		return 0;
	}
	if (streq(key, "created")) {
		r = parse_rfc3339_ms(value, &c->created_ms);
		/* 1970-01-01 .. 9999-12-31 (parse_rfc3339_ms() wraps earlier years) */
		if (r >= 0 && c->created_ms > 253402300799999ULL)
			r = -ERANGE;
		if (r < 0) {
			*why = "invalid 'created' (RFC 3339 time, e.g. 2026-11-27T07:24:12.123Z)";
			return r;
		}
		return 0;
	}
	*why = "unknown key";
	return -EINVAL;
}

int creds_parse(const char *text, const char *filename, const char *user, CredentialSet **ret,
        char **ret_error)
{
	_cleanup_credential_set_ CredentialSet *s = NULL;
	Credential cur = {};
	bool open = false;
	unsigned line = 0, block_line = 0, key_line = 0;
	const char *p = text;
	int r;

	r = credential_set_new(user, &s);
	if (r < 0)
		return r;
	while (*p) {
		const char *eol = strchrnul(p, '\n');
		size_t len = (size_t)(eol - p);
		_cleanup_free_ char *l = NULL;
		char *k, *v, *eq;

		line++;
		if (len > CREDS_MAX_VALUE + 64) {
			set_error(ret_error, "%s:%u: line too long", filename, line);
			r = -EINVAL;
			goto fail;
		}
		l = strndup(p, len);
		if (!l) {
			r = -ENOMEM;
			goto fail;
		}
		p = *eol ? eol + 1 : eol;

		/* trim */
		k = l;
		while (*k == ' ' || *k == '\t')
			k++;
		for (size_t n = strlen(k);
		        n > 0 && (k[n - 1] == ' ' || k[n - 1] == '\t' || k[n - 1] == '\r'); n--)
			k[n - 1] = '\0';
		if (*k == '\0' || *k == '#')
			continue;
		for (const char *c = k; *c; c++)
			if ((unsigned char)*c < 0x20) {
				set_error(ret_error, "%s:%u: control character", filename, line);
				r = -EINVAL;
				goto fail;
			}
		if (streq(k, "[credential]")) {
			r = finish_block(s, &cur, &open, filename, block_line, key_line, ret_error);
			if (r < 0)
				goto fail;
			cur = (Credential){.up = true, .attestation = CRED_ATTESTATION_NONE};
			open = true;
			block_line = line;
			key_line = 0;
			continue;
		}
		eq = strchr(k, '=');
		if (!eq) {
			set_error(ret_error, "%s:%u: expected '[credential]' or key=value",
			        filename, line);
			r = -EINVAL;
			goto fail;
		}
		if (!open) {
			set_error(ret_error, "%s:%u: key=value before the first '[credential]'",
			        filename, line);
			r = -EINVAL;
			goto fail;
		}
		*eq = '\0';
		v = eq + 1;
		for (size_t n = strlen(k); n > 0 && (k[n - 1] == ' ' || k[n - 1] == '\t'); n--)
			k[n - 1] = '\0';
		while (*v == ' ' || *v == '\t')
			v++;
		if (strlen(v) > CREDS_MAX_VALUE) {
			set_error(ret_error, "%s:%u: value of '%s' too long", filename, line, k);
			r = -EINVAL;
			goto fail;
		}
		{
			const char *why = NULL;
			if (streq(k, "public_key"))
				key_line = line;
			r = parse_assignment(&cur, k, v, &why);
			if (r < 0) {
				if (r == -ENOMEM)
					goto fail;
				set_error(ret_error, "%s:%u: '%s': %s", filename, line, k,
				        strna(why));
				goto fail;
			}
		}
	}
	r = finish_block(s, &cur, &open, filename, block_line, key_line, ret_error);
	if (r < 0)
		goto fail;
	*ret = TAKE_PTR(s);
	return 0;
fail:
	credential_done(&cur);
	return r;
}

int creds_format(const CredentialSet *s, char **ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t size = 0;
	FILE *f;

	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	fprintf(f,
	        "# keyward credentials of %s: public keys only. Managed by keywardd;\n"
	        "# change with keywardctl (enroll, revoke, import-pam-u2f). Format: keyward "
	        "docs/credentials.md.\n",
	        s->user);
	for (size_t i = 0; i < s->n; i++) {
		const Credential *c = &s->items[i];
		char created[32] = "";

		fprintf(f, "\n[credential]\n");
		fprintf(f, "label=%s\n", c->label);
		if (credential_is_ssh(c))
			fprintf(f, "type=%s\n", cred_type_to_string(c->type));
		fprintf(f, "id=%s\n", c->id);
		fprintf(f, "rp_id=%s\n", c->rp_id);
		fprintf(f, "alg=%s\n", cose_name(c->cose_alg));
		fprintf(f, "public_key=%s\n", c->public_key);
		if (c->user_id)
			fprintf(f, "user_id=%s\n", c->user_id);
		if (c->has_aaguid)
			fprintf(f,
			        "aaguid=%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%"
			        "02x%02x%02x\n",
			        c->aaguid[0], c->aaguid[1], c->aaguid[2], c->aaguid[3],
			        c->aaguid[4], c->aaguid[5], c->aaguid[6], c->aaguid[7],
			        c->aaguid[8], c->aaguid[9], c->aaguid[10], c->aaguid[11],
			        c->aaguid[12], c->aaguid[13], c->aaguid[14], c->aaguid[15]);
		fprintf(f, "attestation=%s\n", cred_attestation_to_string(c->attestation));
		fprintf(f, "resident=%s\n", c->resident ? "yes" : "no");
		fprintf(f, "up=%s\n", c->up ? "yes" : "no");
		fprintf(f, "uv=%s\n", c->uv ? "yes" : "no");
		if (c->created_ms > 0 &&
		        format_rfc3339_ms(c->created_ms, created, sizeof(created)) == 0)
			fprintf(f, "created=%s\n", created);
	}
	if (fclose(f) != 0)
		return -ENOMEM;
	*ret = TAKE_PTR(buf);
	return 0;
}

/* The credentials directory must not let anyone but root swap files in it. */
static int check_dir(const char *dir, const char **ret_problem)
{
	struct stat st;

	if (stat(dir, &st) < 0) {
		int r = -errno;
		*ret_problem = r == -ENOENT ? "does not exist" : "cannot be examined";
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		*ret_problem = "is not a directory";
		return -ENOTDIR;
	}
	if (st.st_uid != 0) {
		*ret_problem = "is not owned by root; run: chown root:root DIR";
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		*ret_problem = "is group- or world-writable; run: chmod go-w DIR";
		return -EACCES;
	}
	return 0;
}

/* Replaces the FILE/DIR placeholder of a safe_open() problem by the path. */
static int problem_error(char **ret_error, const char *path, const char *problem, const char *word)
{
	const char *ph = problem ? strstr(problem, word) : NULL;

	if (!problem)
		return set_error(ret_error, "%s cannot be read", path);
	if (!ph)
		return set_error(ret_error, "%s %s", path, problem);
	return set_error(ret_error, "%s %.*s%s%s", path, (int)(ph - problem), problem, path,
	        ph + strlen(word));
}

int creds_load_user(const char *dir, const char *user, CredentialSet **ret, char **ret_error)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	const char *problem = NULL;
	int r;

	r = creds_path(dir, user, &path);
	if (r < 0) {
		set_error(ret_error, "invalid user name");
		return r;
	}
	r = check_dir(dir, &problem);
	if (r == -ENOENT)
		return credential_set_new(user, ret);
	if (r < 0) {
		problem_error(ret_error, dir, problem, "DIR");
		return r;
	}
	r = read_full_file_safe(
	        path, SAFE_FILE_DEFAULT, CREDS_MAX_FILE_SIZE, &text, NULL, &problem);
	if (r == -ENOENT)
		return credential_set_new(user, ret);
	if (r < 0) {
		problem_error(ret_error, path, problem, "FILE");
		return r;
	}
	return creds_parse(text, path, user, ret, ret_error);
}

int creds_save_user(const char *dir, const CredentialSet *s)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	int r;

	r = creds_path(dir, s->user, &path);
	if (r < 0)
		return r;
	r = mkdir_parents(dir, 0755);
	if (r < 0)
		return r;
	if (s->n == 0) {
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
		return 0;
	}
	r = creds_format(s, &text);
	if (r < 0)
		return r;
	return write_file_atomic(path, text, strlen(text), 0600);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int creds_list_users(const char *dir, char ***ret_users)
{
	_cleanup_strv_free_ char **users = NULL;
	DIR *d;
	struct dirent *de;
	size_t n = 0;
	int r = 0;

	users = calloc(1, sizeof(char *));
	if (!users)
		return -ENOMEM;
	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT) {
			*ret_users = TAKE_PTR(users);
			return 0;
		}
		return -errno;
	}
	while ((errno = 0, de = readdir(d))) {
		size_t len = strlen(de->d_name), sl = strlen(CREDS_FILE_SUFFIX);
		_cleanup_free_ char *u = NULL;

		if (len <= sl || !streq(de->d_name + len - sl, CREDS_FILE_SUFFIX))
			continue;
		u = strndup(de->d_name, len - sl);
		if (!u) {
			r = -ENOMEM;
			break;
		}
		if (!valid_user_name(u))
			continue;
		if (n >= CREDS_MAX_USERS) {
			r = -E2BIG;
			break;
		}
		r = strv_extend(&users, u);
		if (r < 0)
			break;
		n++;
	}
	if (r == 0 && errno != 0)
		r = -errno;
	closedir(d);
	if (r < 0)
		return r;
	qsort(users, n, sizeof(char *), cmp_str);
	*ret_users = TAKE_PTR(users);
	return 0;
}

int creds_count_user(const char *dir, const char *user, size_t *ret)
{
	_cleanup_credential_set_ CredentialSet *s = NULL;
	int r;

	r = creds_load_user(dir, user, &s, NULL);
	if (r < 0)
		return r;
	*ret = s->n;
	return 0;
}

int creds_count_user_type(const char *dir, const char *user, CredType type, size_t *ret)
{
	_cleanup_credential_set_ CredentialSet *s = NULL;
	int r;

	r = creds_load_user(dir, user, &s, NULL);
	if (r < 0)
		return r;
	*ret = type == CRED_TYPE_SSH_SK ? creds_count_ssh(s) : creds_count_fido2(s);
	return 0;
}

/* --- sign counters ------------------------------------------------------------------ */

static int counters_path(const char *state_dir, const char *user, char **ret)
{
	char *p;

	if (!valid_user_name(user) || isempty(state_dir))
		return -EINVAL;
	if (asprintf(&p, "%s/counters/%s", state_dir, user) < 0)
		return -ENOMEM;
	*ret = p;
	return 0;
}

#define COUNTERS_MAX_FILE (CREDS_MAX_PER_FILE * 1500)

int creds_counter_load(
        const char *state_dir, const char *user, const char *id, uint32_t *ret, bool *ret_found)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	size_t idlen = strlen(id);
	int r;

	r = counters_path(state_dir, user, &path);
	if (r < 0)
		return r;
	r = read_full_file_safe(path, SAFE_FILE_DEFAULT, COUNTERS_MAX_FILE, &text, NULL, NULL);
	if (r == -ENOENT) {
		*ret = 0;
		*ret_found = false;
		return 0;
	}
	if (r < 0)
		return r;
	for (char *l = text; l && *l;) {
		char *eol = strchr(l, '\n');
		if (eol)
			*eol = '\0';
		if (strneq(l, id, idlen) && l[idlen] == ' ') {
			char *end;
			unsigned long v;

			errno = 0;
			v = strtoul(l + idlen + 1, &end, 10);
			if (errno != 0 || *end != '\0' || v > UINT32_MAX)
				return -EBADMSG;
			*ret = (uint32_t)v;
			*ret_found = true;
			return 0;
		}
		l = eol ? eol + 1 : NULL;
	}
	*ret = 0;
	*ret_found = false;
	return 0;
}

/* Replaces PATH with DATA (temp file and rename) without waiting for the disk: the caller
 * has a durable record of the value elsewhere (keywardd: the audit trail) and makes the
 * files durable with creds_counters_sync() before that record can go away. */
static int write_file_replace_lazy(const char *path, const char *data, size_t len)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -EBADF;
	size_t done = 0;

	if (asprintf(&tmp, "%s.tmp-%d", path, (int)getpid()) < 0)
		return -ENOMEM;
	(void)unlink(tmp); /* a leftover of a crash: ours (the directory is root's, 0700) */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int r = n < 0 ? -errno : -EIO;
			(void)unlink(tmp);
			return r;
		}
		done += (size_t)n;
	}
	if (rename(tmp, path) < 0) {
		int r = -errno;
		(void)unlink(tmp);
		return r;
	}
	return 0;
}

int creds_counters_sync(const char *state_dir)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int dfd = -EBADF;
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (isempty(state_dir))
		return -EINVAL;
	if (asprintf(&dir, "%s/counters", state_dir) < 0)
		return -ENOMEM;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	d = fdopendir(fcntl(dfd, F_DUPFD_CLOEXEC, 3));
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		int fd;

		if (de->d_name[0] == '.' || de->d_type != DT_REG)
			continue;
		fd = openat(dfd, de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
		if (fd < 0) {
			r = -errno;
			break;
		}
		if (fsync(fd) < 0)
			r = -errno;
		close(fd);
		if (r < 0)
			break;
	}
	closedir(d);
	if (r >= 0 && fsync(dfd) < 0)
		r = -errno;
	return r;
}

int creds_counter_store(const char *state_dir, const char *user, const char *id, uint32_t value)
{
	return creds_counter_store_full(state_dir, user, id, value, true);
}

int creds_counter_store_full(
        const char *state_dir, const char *user, const char *id, uint32_t value, bool durable)
{
	_cleanup_free_ char *path = NULL, *dir = NULL, *text = NULL, *out = NULL;
	size_t idlen = strlen(id), size = 0;
	bool written = false;
	FILE *f;
	int r;

	r = counters_path(state_dir, user, &path);
	if (r < 0)
		return r;
	if (asprintf(&dir, "%s/counters", state_dir) < 0)
		return -ENOMEM;
	r = mkdir_parents(dir, 0700);
	if (r < 0)
		return r;
	r = read_full_file_safe(path, SAFE_FILE_DEFAULT, COUNTERS_MAX_FILE, &text, NULL, NULL);
	if (r < 0 && r != -ENOENT)
		return r;
	f = open_memstream(&out, &size);
	if (!f)
		return -ENOMEM;
	for (char *l = text; l && *l;) {
		char *eol = strchr(l, '\n');
		if (eol)
			*eol = '\0';
		if (strneq(l, id, idlen) && l[idlen] == ' ') {
			if (!written)
				fprintf(f, "%s %u\n", id, value);
			written = true;
		} else if (*l)
			fprintf(f, "%s\n", l);
		l = eol ? eol + 1 : NULL;
	}
	if (!written)
		fprintf(f, "%s %u\n", id, value);
	if (fclose(f) != 0)
		return -ENOMEM;
	if (!durable)
		return write_file_replace_lazy(path, out, size);
	return write_file_atomic(path, out, size, 0600);
}

/* --- pam_u2f authfile ---------------------------------------------------------------- */

void pam_u2f_entries_free(PamU2fEntry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].user);
		credential_done(&e[i].cred);
	}
	free(e);
}

static int websafe_to_base64(const char *in, char **ret)
{
	_cleanup_free_ uint8_t *d = NULL;
	size_t n;
	int r;

	/* base64_decode() takes base64url, padded or not, and padded standard base64. */
	r = base64_decode(in, &d, &n);
	if (r < 0)
		return r;
	if (n == 0)
		return -EINVAL;
	return base64_encode(d, n, ret);
}

static int parse_pam_u2f_credential(
        char *s, const char *origin, const char *appid, Credential *c, const char **why)
{
	char *fields[5] = {};
	size_t nf = 0;
	char *save = NULL;
	bool old;
	int r;

	for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (nf >= 4) {
			*why = "too many comma-separated fields (expected "
			       "KeyHandle,UserKey,CoseType,Options)";
			return -EINVAL;
		}
		fields[nf++] = t;
	}
	if (nf < 2) {
		*why = "expected at least KeyHandle,UserKey";
		return -EINVAL;
	}
	old = nf == 2;
	*c = (Credential){.attestation = CRED_ATTESTATION_IMPORTED};
	if (old) {
		_cleanup_free_ uint8_t *pk = NULL;
		size_t pklen;

		/* Old (libu2f-host) format: websafe base64 key handle, hex uncompressed point. */
		r = websafe_to_base64(fields[0], &c->id);
		if (r < 0) {
			*why = "invalid key handle (websafe base64 expected in the old format)";
			goto fail;
		}
		r = hex_decode(fields[1], &pk, &pklen);
		if (r < 0 || pklen != 65 || pk[0] != 0x04) {
			*why = "invalid public key (hex of a 65-byte uncompressed P-256 point "
			       "expected in the old format)";
			r = -EINVAL;
			goto fail;
		}
		r = base64_encode(pk + 1, 64, &c->public_key);
		if (r < 0)
			goto fail;
		c->cose_alg = COSE_ES256;
		c->up = true;
		r = replace_str(&c->rp_id, appid ? appid : origin);
		if (r < 0)
			goto fail;
		return 0;
	}
	if (streq(fields[0], "*")) {
		c->resident = true;
		r = replace_str(&c->id, CREDS_DISCOVERABLE_ID);
	} else {
		r = websafe_to_base64(fields[0], &c->id);
		if (r == -EINVAL)
			*why = "invalid key handle (base64 expected)";
	}
	if (r < 0)
		goto fail;
	{
		_cleanup_free_ uint8_t *pk = NULL;
		size_t pklen;

		r = base64_decode(fields[1], &pk, &pklen);
		if (r < 0 || pklen < 32 || pklen > 1024) {
			*why = "invalid public key (base64 expected)";
			r = -EINVAL;
			goto fail;
		}
		r = base64_encode(pk, pklen, &c->public_key);
		if (r < 0)
			goto fail;
	}
	c->cose_alg = cose_from_name(fields[2]);
	if (c->cose_alg == 0) {
		*why = "unknown COSE type (es256, eddsa or rs256 expected)";
		r = -EINVAL;
		goto fail;
	}
	if (public_key_problem_b64(c->cose_alg, c->public_key)) {
		*why = "the public key does not fit its COSE type (es256: 64 bytes, eddsa: 32, "
		       "rs256: 259)";
		r = -EINVAL;
		goto fail;
	}
	if (fields[3]) {
		const char *o = fields[3];
		while (*o) {
			if (strneq(o, "+presence", 9)) {
				c->up = true;
				o += 9;
			} else if (strneq(o, "+pin", 4)) {
				c->uv = true;
				o += 4;
			} else if (strneq(o, "+verification", 13)) {
				c->uv = true;
				o += 13;
			} else {
				*why = "unknown option (only +presence, +pin, +verification)";
				r = -EINVAL;
				goto fail;
			}
		}
	}
	r = replace_str(&c->rp_id, origin);
	if (r < 0)
		goto fail;
	return 0;
fail:
	credential_done(c);
	return r;
}

int creds_parse_pam_u2f(const char *text, const char *filename, const char *origin,
        const char *appid, PamU2fEntry **ret, size_t *ret_n, char **ret_error)
{
	PamU2fEntry *entries = NULL;
	size_t n = 0;
	unsigned line = 0;
	const char *p = text;
	int r = 0;

	if (isempty(origin) || strlen(origin) > 255)
		return -EINVAL;
	while (*p) {
		const char *eol = strchrnul(p, '\n');
		size_t len = (size_t)(eol - p);
		_cleanup_free_ char *l = NULL;
		char *save = NULL, *user, *cred;
		unsigned idx = 0;

		line++;
		if (len > PAM_U2F_MAX_LINE) {
			set_error(ret_error, "%s:%u: line too long", filename, line);
			r = -EINVAL;
			goto fail;
		}
		l = strndup(p, len);
		if (!l) {
			r = -ENOMEM;
			goto fail;
		}
		p = *eol ? eol + 1 : eol;
		if (len > 0 && l[len - 1] == '\r')
			l[len - 1] = '\0';
		if (l[0] == '\0' || l[0] == '#')
			continue;
		user = strtok_r(l, ":", &save);
		if (!user || !valid_user_name(user)) {
			set_error(ret_error, "%s:%u: invalid user name before ':'", filename, line);
			r = -EINVAL;
			goto fail;
		}
		while ((cred = strtok_r(NULL, ":", &save))) {
			const char *why = "invalid entry";
			PamU2fEntry *ne;
			Credential c;

			idx++;
			if (n >= PAM_U2F_MAX_ENTRIES) {
				set_error(ret_error, "%s:%u: more than %d credentials", filename,
				        line, PAM_U2F_MAX_ENTRIES);
				r = -E2BIG;
				goto fail;
			}
			r = parse_pam_u2f_credential(cred, origin, appid, &c, &why);
			if (r < 0) {
				if (r != -ENOMEM)
					set_error(ret_error, "%s:%u: user %s, credential %u: %s",
					        filename, line, user, idx, why);
				goto fail;
			}
			if (asprintf(&c.label, "%s-u2f-%u", user, idx) < 0) {
				c.label = NULL;
				credential_done(&c);
				r = -ENOMEM;
				goto fail;
			}
			ne = reallocarray(entries, n + 1, sizeof(PamU2fEntry));
			if (!ne) {
				credential_done(&c);
				r = -ENOMEM;
				goto fail;
			}
			entries = ne;
			entries[n].user = strdup(user);
			entries[n].cred = c; /* transferred */
			if (!entries[n].user) {
				credential_done(&entries[n].cred);
				r = -ENOMEM;
				goto fail;
			}
			n++;
		}
		if (idx == 0) {
			set_error(ret_error, "%s:%u: user %s has no credentials after ':'",
			        filename, line, user);
			r = -EINVAL;
			goto fail;
		}
	}
	*ret = entries;
	*ret_n = n;
	return 0;
fail:
	pam_u2f_entries_free(entries, n);
	return r;
}
