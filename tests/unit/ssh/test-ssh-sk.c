/* test-ssh-sk.c: lib/ssh-sk.c against the real OpenSSH: keys, .pub lines and attestation
 * files made by ssh-keygen on the emulated key (run.sh), fingerprints as ssh-keygen -lf
 * prints them; malformed lines, blobs, SSH_AUTH_INFO_0 and tampered attestations refused.
 * Usage: test-ssh-sk DIR (run.sh fills DIR). */
#include <fido/param.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "creds.h"
#include "ssh-sk.h"
#include "ssh-test.h"

static const char *dir;

/* Parses DIR/NAME.pub, checks the fingerprint against DIR/NAME.fp (ssh-keygen -lf). */
static void check_pub(const char *name, SshSkType type, SshKeyLine *ret)
{
	_cleanup_free_ char *pubname = NULL, *fpname = NULL, *line = NULL, *fpline = NULL;
	_cleanup_free_ char *fp = NULL, *err = NULL, *again = NULL;
	_cleanup_free_ uint8_t *blob = NULL;
	SshKeyLine l2 = {};
	size_t len;
	char *want;

	if (asprintf(&pubname, "%s.pub", name) < 0 || asprintf(&fpname, "%s.fp", name) < 0)
		abort();
	line = read_line_in(dir, pubname);
	fpline = read_line_in(dir, fpname);
	CHECK(ssh_key_line_parse(line, ret, &err) == 0);
	if (!ret->is_sk) {
		fprintf(stderr, "%s: %s\n", pubname, strna(err));
		failures++;
		return;
	}
	CHECK(ret->key.type == type);
	CHECK(streq(ret->key.application, "ssh:"));
	CHECK(ret->comment && streq(ret->comment, name[0] == 'e' && name[1] == 'c' ? "alice@laptop"
	                                                                           : "bob@desk"));
	/* "256 SHA256:... comment (ECDSA-SK)" */
	want = strchr(fpline, ' ');
	CHECK(want != NULL);
	if (!want)
		return;
	want++;
	want[strcspn(want, " ")] = '\0';
	CHECK(ssh_fingerprint(ret->blob, ret->blob_len, &fp) == 0);
	CHECK(fp && streq(fp, want));
	if (fp && !streq(fp, want))
		fprintf(stderr, "fingerprint %s, ssh-keygen -lf says %s\n", fp, want);
	/* encode gives back the very blob ssh-keygen wrote */
	CHECK(ssh_sk_key_to_blob(&ret->key, &blob, &len) == 0);
	CHECK(len == ret->blob_len && memcmp(blob, ret->blob, len) == 0);
	/* and the line we print parses to the same key, with verify-required */
	CHECK(ssh_sk_key_format_line(&ret->key, true, "c", &again) == 0);
	CHECK(strneq(again, "verify-required sk-", 19));
	CHECK(ssh_key_line_parse(again, &l2, NULL) == 0);
	CHECK(l2.verify_required && !l2.no_touch_required && ssh_sk_key_equal(&l2.key, &ret->key));
	ssh_key_line_done(&l2);
}

static void test_lines(SshKeyLine *ec, SshKeyLine *ed)
{
	_cleanup_free_ char *plain = read_line_in(dir, "plain.pub"), *err = NULL;
	_cleanup_free_ char *b64 = NULL, *bad = NULL, *opt = NULL;
	SshKeyLine l = {};
	const char *ecline;

	check_pub("ecdsa", SSH_SK_ECDSA, ec);
	check_pub("ed", SSH_SK_ED25519, ed);

	/* an ordinary key: -EPROTOTYPE, named */
	CHECK(ssh_key_line_parse(plain, &l, &err) == -EPROTOTYPE);
	CHECK(l.key_type && streq(l.key_type, "ssh-ed25519") && !l.is_sk);
	CHECK(err && strstr(err, "not a security-key SSH key"));
	ssh_key_line_done(&l);

	CHECK(ssh_key_line_parse("", &l, NULL) == -ENODATA);
	CHECK(ssh_key_line_parse("   # comment", &l, NULL) == -ENODATA);

	/* options: quoted values with commas, spaces and \" ; the two flags */
	CHECK(base64_encode(ec->blob, ec->blob_len, &b64) == 0);
	CHECK(asprintf(&opt,
	              "no-touch-required,command=\"echo \\\"a, b\\\"\",verify-required,"
	              "from=\"10.0.0.1\" %s %s my key",
	              SSH_SK_ECDSA_NAME, b64) > 0);
	CHECK(ssh_key_line_parse(opt, &l, NULL) == 0);
	CHECK(l.no_touch_required && l.verify_required);
	CHECK(strv_length(l.options) == 4);
	CHECK(l.options && streq(l.options[1], "command=echo \"a, b\""));
	CHECK(l.comment && streq(l.comment, "my key"));
	CHECK(ssh_sk_key_equal(&l.key, &ec->key));
	ssh_key_line_done(&l);

	ecline = b64;
	/* malformed: each must be -EBADMSG, never a key */
	{
		const char *opts[] = {
		        "command=\"unbalanced",
		        "verify-required,",
		        "=x",
		        "command=unquoted",
		};
		for (size_t i = 0; i < ELEMENTSOF(opts); i++) {
			_cleanup_free_ char *s = NULL;
			CHECK(asprintf(&s, "%s %s %s", opts[i], SSH_SK_ECDSA_NAME, ecline) > 0);
			CHECK(ssh_key_line_parse(s, &l, NULL) == -EBADMSG);
		}
	}
	/* truncated base64, wrong type word for the blob, control character */
	CHECK(asprintf(&bad, "%s %.*s", SSH_SK_ECDSA_NAME, (int)strlen(b64) - 5, b64) > 0);
	CHECK(ssh_key_line_parse(bad, &l, NULL) == -EBADMSG);
	free(bad);
	CHECK(asprintf(&bad, "%s %s", SSH_SK_ED25519_NAME, b64) > 0);
	CHECK(ssh_key_line_parse(bad, &l, NULL) == -EBADMSG);
	free(bad);
	CHECK(asprintf(&bad, "%s %s a\001b", SSH_SK_ECDSA_NAME, b64) > 0);
	CHECK(ssh_key_line_parse(bad, &l, NULL) == -EBADMSG);
	free(bad);
	bad = malloc(SSH_SK_MAX_LINE + 2);
	memset(bad, 'a', SSH_SK_MAX_LINE + 1);
	bad[SSH_SK_MAX_LINE + 1] = '\0';
	CHECK(ssh_key_line_parse(bad, &l, NULL) == -EBADMSG);
}

static void test_blobs(const SshKeyLine *ec, const SshKeyLine *ed)
{
	_cleanup_free_ uint8_t *b = malloc(ec->blob_len + 1);
	SshSkKey k = {};
	_cleanup_free_ char *err = NULL;

	/* trailing byte */
	memcpy(b, ec->blob, ec->blob_len);
	b[ec->blob_len] = 0;
	CHECK(ssh_sk_key_from_blob(b, ec->blob_len + 1, &k, &err) == -EBADMSG);
	CHECK(err && strstr(err, "follow"));
	/* every truncation */
	for (size_t n = 0; n < ec->blob_len; n++)
		CHECK(ssh_sk_key_from_blob(ec->blob, n, &k, NULL) == -EBADMSG);
	for (size_t n = 0; n < ed->blob_len; n++)
		CHECK(ssh_sk_key_from_blob(ed->blob, n, &k, NULL) == -EBADMSG);
	/* a point off the curve: the last byte of y changed (offset: type 4+34, curve 4+8,
	 * point length 4, point 65) */
	memcpy(b, ec->blob, ec->blob_len);
	b[4 + 34 + 4 + 8 + 4 + 64] ^= 1;
	CHECK(ssh_sk_key_from_blob(b, ec->blob_len, &k, &err) == -EBADMSG);
	CHECK(err && strstr(err, "P-256"));
	/* a wrong curve name */
	memcpy(b, ec->blob, ec->blob_len);
	b[4 + 34 + 4 + 7] = '4';
	CHECK(ssh_sk_key_from_blob(b, ec->blob_len, &k, NULL) == -EBADMSG);
	/* a length that runs past the end */
	memcpy(b, ec->blob, ec->blob_len);
	b[0] = 0x7f;
	CHECK(ssh_sk_key_from_blob(b, ec->blob_len, &k, NULL) == -EBADMSG);
}

static void test_credentials(const SshKeyLine *ec, const SshKeyLine *ed)
{
	const SshKeyLine *lines[] = {ec, ed};

	for (size_t i = 0; i < 2; i++) {
		_cleanup_credential_set_ CredentialSet *s = NULL, *s2 = NULL;
		_cleanup_free_ char *text = NULL, *id = NULL, *err = NULL;
		Credential c = {};
		SshSkKey k = {};

		CHECK(ssh_sk_credential_from_key(&lines[i]->key, "laptop", &c) == 0);
		CHECK(credential_is_ssh(&c) && c.up && !c.uv);
		CHECK(c.cose_alg == (i == 0 ? COSE_ES256 : COSE_EDDSA));
		CHECK(ssh_sk_credential_id(lines[i]->blob, lines[i]->blob_len, &id) == 0);
		CHECK(streq(c.id, id));
		CHECK(ssh_sk_key_from_credential(&c, &k) == 0);
		CHECK(ssh_sk_key_equal(&k, &lines[i]->key));
		ssh_sk_key_done(&k);
		/* the store keeps it: format, parse, the same */
		CHECK(credential_set_new("alice", &s) == 0);
		CHECK(creds_add(s, &c, 0) == 0);
		CHECK(creds_format(s, &text) == 0);
		CHECK(strstr(text, "type=ssh-sk\n") != NULL);
		CHECK(creds_parse(text, "t.creds", "alice", &s2, &err) == 0);
		CHECK(s2 && s2->n == 1 && credential_is_ssh(&s2->items[0]));
		CHECK(s2 && creds_count_ssh(s2) == 1 && creds_count_fido2(s2) == 0);
		if (s2 && s2->n == 1) {
			CHECK(ssh_sk_key_from_credential(&s2->items[0], &k) == 0);
			CHECK(ssh_sk_key_equal(&k, &lines[i]->key));
			ssh_sk_key_done(&k);
		}
		/* a FIDO2 credential is not an SSH key */
		c.type = CRED_TYPE_FIDO2;
		CHECK(ssh_sk_key_from_credential(&c, &k) == -EPROTOTYPE);
		credential_done(&c);
	}
	/* validation: ssh-sk needs es256/eddsa and an application "ssh:..." */
	{
		static const char *bad[] = {
		        "[credential]\nlabel=a\ntype=ssh-sk\nid=AAAA\nrp_id=pam://host\nalg=eddsa\n"
		        "public_key=pqaEv3Mx59PtG/NpFbYnipAu457OeDVlJwwvgeO78BY=\n",
		        "[credential]\nlabel=a\ntype=ssh-sk\nid=*\nresident=yes\nrp_id=ssh:\n"
		        "alg=eddsa\npublic_key=pqaEv3Mx59PtG/NpFbYnipAu457OeDVlJwwvgeO78BY=\n",
		        "[credential]\nlabel=a\ntype=ssh\nid=AAAA\nrp_id=ssh:\nalg=eddsa\n"
		        "public_key=pqaEv3Mx59PtG/NpFbYnipAu457OeDVlJwwvgeO78BY=\n",
		};
		for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
			_cleanup_credential_set_ CredentialSet *s = NULL;
			_cleanup_free_ char *err = NULL;
			CHECK(creds_parse(bad[i], "t.creds", "alice", &s, &err) == -EINVAL);
			CHECK(err && (strstr(err, "ssh") || strstr(err, "type")));
		}
	}
}

static void test_auth_info(const SshKeyLine *ec)
{
	_cleanup_free_ char *b64 = NULL, *text = NULL, *err = NULL;
	SshAuthInfo *a = NULL;

	CHECK(base64_encode(ec->blob, ec->blob_len, &b64) == 0);
	CHECK(asprintf(&text, "keyboard-interactive/pam\npublickey %s %s\n", SSH_SK_ECDSA_NAME,
	              b64) > 0);
	CHECK(ssh_auth_info_parse(text, &a, &err) == 0);
	CHECK(a && a->n == 2);
	if (a && a->n == 2) {
		CHECK(streq(a->methods[0].method, "keyboard-interactive/pam"));
		CHECK(!a->methods[0].blob);
		CHECK(streq(a->methods[1].method, "publickey"));
		CHECK(streq(a->methods[1].key_type, SSH_SK_ECDSA_NAME));
		CHECK(a->methods[1].blob_len == ec->blob_len &&
		        memcmp(a->methods[1].blob, ec->blob, ec->blob_len) == 0);
	}
	a = ssh_auth_info_free(a);
	CHECK(ssh_auth_info_parse("password", &a, NULL) == 0 && a && a->n == 1);
	a = ssh_auth_info_free(a);
	CHECK(ssh_auth_info_parse("", &a, NULL) == -ENODATA);
	{
		static const char *bad[] = {
		        "publickey\n",
		        "publickey ssh-ed25519\n",
		        "publickey ssh-ed25519 !!!!\n",
		        "publickey ssh-ed25519 AAAA extra\n",
		        "password\n\npublickey\n",
		        "pass\tword\n",
		        "password\r\n",
		        "p\xc3\xa4ssword\n",
		        " password\n",
		};
		for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
			int r = ssh_auth_info_parse(bad[i], &a, NULL);
			CHECK(r == -EBADMSG);
			if (r != -EBADMSG)
				fprintf(stderr, "SSH_AUTH_INFO_0 case %zu: %d\n", i, r);
		}
	}
	{
		_cleanup_free_ char *many = malloc(40 * 9 + 1);
		many[0] = '\0';
		for (int i = 0; i < 40; i++)
			strcat(many, "password\n");
		CHECK(ssh_auth_info_parse(many, &a, &err) == -EBADMSG);
		CHECK(err && strstr(err, "more than"));
	}
	{
		_cleanup_free_ char *big = malloc(SSH_AUTH_INFO_MAX_LEN + 2);
		memset(big, 'a', SSH_AUTH_INFO_MAX_LEN + 1);
		big[SSH_AUTH_INFO_MAX_LEN + 1] = '\0';
		CHECK(ssh_auth_info_parse(big, &a, NULL) == -EBADMSG);
	}
}

static void test_attestation(const SshKeyLine *ec, const SshKeyLine *ed)
{
	struct {
		const char *att;
		const SshKeyLine *key, *other;
	} cases[] = {{"ecdsa.att", ec, ed}, {"ed.att", ed, ec}};
	size_t chal_len;
	_cleanup_free_ char *chal = read_in(dir, "chal", &chal_len);
	_cleanup_free_ char *aaguid_hex = read_line_in(dir, "aaguid");

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		size_t len;
		_cleanup_free_ char *att = read_in(dir, cases[i].att, &len), *err = NULL,
		                    *hex = NULL;
		_cleanup_free_ uint8_t *copy = malloc(len + 1);
		SshSkAttestation a = {};
		uint8_t zero[16] = {};

		CHECK(ssh_sk_attestation_verify((uint8_t *)att, len, (uint8_t *)chal, chal_len,
		              &cases[i].key->key, &a, &err) == 0);
		if (err)
			fprintf(stderr, "%s: %s\n", cases[i].att, err);
		CHECK(memcmp(a.aaguid, zero, 16) != 0);
		CHECK(hex_encode(a.aaguid, 16, &hex) == 0);
		/* the testbed's AAGUID (keyward-testbed ctl list) */
		CHECK(hex && streq(hex, aaguid_hex));
		CHECK(a.x5c && a.x5c_len > 100);
		CHECK(a.flags & SSH_SK_FLAG_UP);
		ssh_sk_attestation_done(&a);

		/* another challenge */
		chal[0] ^= 1;
		CHECK(ssh_sk_attestation_verify((uint8_t *)att, len, (uint8_t *)chal, chal_len,
		              &cases[i].key->key, &a, NULL) == -EKEYREJECTED);
		chal[0] ^= 1;
		/* another key */
		CHECK(ssh_sk_attestation_verify((uint8_t *)att, len, (uint8_t *)chal, chal_len,
		              &cases[i].other->key, &a, NULL) < 0);
		/* tampered: each byte of the last 200 (signature, authdata, reserved) flipped
		 * in turn must never verify */
		for (size_t off = len > 200 ? len - 200 : 0; off < len; off++) {
			int r;
			memcpy(copy, att, len);
			copy[off] ^= 0x40;
			r = ssh_sk_attestation_verify(
			        copy, len, (uint8_t *)chal, chal_len, &cases[i].key->key, &a, NULL);
			CHECK(r < 0);
			if (r == 0)
				ssh_sk_attestation_done(&a);
		}
		/* trailing byte, truncation */
		memcpy(copy, att, len);
		copy[len] = 0;
		CHECK(ssh_sk_attestation_verify(copy, len + 1, (uint8_t *)chal, chal_len,
		              &cases[i].key->key, &a, NULL) == -EBADMSG);
		CHECK(ssh_sk_attestation_verify(copy, len - 1, (uint8_t *)chal, chal_len,
		              &cases[i].key->key, &a, NULL) == -EBADMSG);
		/* v00 names itself and is refused with a reason */
		memcpy(copy, att, len);
		copy[4 + 16] = '0';
		free(err);
		err = NULL;
		CHECK(ssh_sk_attestation_verify(copy, len, (uint8_t *)chal, chal_len,
		              &cases[i].key->key, &a, &err) < 0);
	}
}

/* SSH wire helpers for the signatures made below. */
static size_t put_string(uint8_t *p, const void *s, size_t n)
{
	p[0] = n >> 24;
	p[1] = n >> 16;
	p[2] = n >> 8;
	p[3] = n;
	memcpy(p + 4, s, n);
	return 4 + n;
}

/* The sk signature of KEY (an OpenSSL key standing in for the authenticator) over DATA
 * with FLAGS and COUNTER, as an agent returns it. */
static size_t make_sk_sig(EVP_PKEY *key, SshSkType type, const char *app, uint8_t flags,
        uint32_t counter, const uint8_t *data, size_t data_len, uint8_t *out)
{
	uint8_t msg[32 + 1 + 4 + 32], dgst[32], raw[128], inner[160];
	size_t raw_len = sizeof(raw), n = 0, in = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const char *name = ssh_sk_type_to_string(type);

	EVP_Digest(app, strlen(app), msg, NULL, EVP_sha256(), NULL);
	msg[32] = flags;
	msg[33] = counter >> 24;
	msg[34] = counter >> 16;
	msg[35] = counter >> 8;
	msg[36] = counter;
	EVP_Digest(data, data_len, msg + 37, NULL, EVP_sha256(), NULL);
	if (type == SSH_SK_ED25519) {
		if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1 ||
		        EVP_DigestSign(ctx, raw, &raw_len, msg, sizeof(msg)) != 1)
			abort();
		in = raw_len;
		memcpy(inner, raw, raw_len);
	} else {
		EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(key, NULL);
		const unsigned char *p = raw;
		ECDSA_SIG *sig;
		const BIGNUM *r, *s;
		uint8_t rb[33], sb[33];
		int rl, sl;

		EVP_Digest(msg, sizeof(msg), dgst, NULL, EVP_sha256(), NULL);
		if (!pctx || EVP_PKEY_sign_init(pctx) != 1 ||
		        EVP_PKEY_sign(pctx, raw, &raw_len, dgst, sizeof(dgst)) != 1)
			abort();
		EVP_PKEY_CTX_free(pctx);
		sig = d2i_ECDSA_SIG(NULL, &p, (long)raw_len);
		ECDSA_SIG_get0(sig, &r, &s);
		/* mpints: a leading 0 when the top bit is set */
		rb[0] = sb[0] = 0;
		rl = BN_bn2bin(r, rb + 1);
		sl = BN_bn2bin(s, sb + 1);
		in = put_string(
		        inner, rb[1] & 0x80 ? rb : rb + 1, (size_t)rl + (rb[1] & 0x80 ? 1 : 0));
		in += put_string(inner + in, sb[1] & 0x80 ? sb : sb + 1,
		        (size_t)sl + (sb[1] & 0x80 ? 1 : 0));
		ECDSA_SIG_free(sig);
	}
	EVP_MD_CTX_free(ctx);
	n = put_string(out, name, strlen(name));
	n += put_string(out + n, inner, in);
	out[n++] = flags;
	out[n++] = counter >> 24;
	out[n++] = counter >> 16;
	out[n++] = counter >> 8;
	out[n++] = counter;
	return n;
}

/* The verifier reports the flags and counter as signed (UV too, which the emulated key
 * cannot give without credProtect): keys made here with OpenSSL. */
static void test_signature_flags(void)
{
	static const uint8_t data[] = "challenge";
	const SshSkType types[] = {SSH_SK_ECDSA, SSH_SK_ED25519};

	for (size_t t = 0; t < ELEMENTSOF(types); t++) {
		EVP_PKEY *key = types[t] == SSH_SK_ECDSA ? EVP_EC_gen("P-256")
		                                         : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		SshSkKey k = {.type = types[t], .application = (char *)"ssh:"};
		uint8_t sig[512], flags = 0;
		uint32_t counter = 0;
		size_t n, len = sizeof(k.public_key);

		CHECK(key != NULL);
		if (!key)
			continue;
		if (types[t] == SSH_SK_ECDSA)
			CHECK(EVP_PKEY_get_octet_string_param(key, "encoded-pub-key", k.public_key,
			              sizeof(k.public_key), &len) == 1);
		else
			CHECK(EVP_PKEY_get_raw_public_key(key, k.public_key, &len) == 1);
		k.public_key_len = len;
		for (unsigned f = 0; f < 8; f++) {
			uint8_t want = (uint8_t)((f & 1 ? SSH_SK_FLAG_UP : 0) |
			                         (f & 2 ? SSH_SK_FLAG_UV : 0) | (f & 4 ? 0x40 : 0));
			n = make_sk_sig(
			        key, types[t], "ssh:", want, 1000 + f, data, sizeof(data), sig);
			CHECK(ssh_sk_signature_verify(
			              &k, sig, n, data, sizeof(data), &flags, &counter, NULL) == 0);
			CHECK(flags == want && counter == 1000 + f);
			/* the flags byte and the counter are signed: changing either fails */
			sig[n - 5] ^= SSH_SK_FLAG_UV;
			CHECK(ssh_sk_signature_verify(&k, sig, n, data, sizeof(data), &flags,
			              &counter, NULL) == -EKEYREJECTED);
			sig[n - 5] ^= SSH_SK_FLAG_UV;
			sig[n - 1] ^= 1;
			CHECK(ssh_sk_signature_verify(&k, sig, n, data, sizeof(data), &flags,
			              &counter, NULL) == -EKEYREJECTED);
		}
		/* signed for another application: refused */
		n = make_sk_sig(key, types[t], "ssh:other", 5, 1, data, sizeof(data), sig);
		CHECK(ssh_sk_signature_verify(&k, sig, n, data, sizeof(data), NULL, NULL, NULL) ==
		        -EKEYREJECTED);
		EVP_PKEY_free(key);
	}
}

int main(int argc, char **argv)
{
	SshKeyLine ec = {}, ed = {};

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR (made by run.sh)\n", argv[0]);
		return EXIT_FAILURE;
	}
	dir = argv[1];
	test_lines(&ec, &ed);
	if (!ec.is_sk || !ed.is_sk)
		return test_result("test-ssh-sk");
	test_blobs(&ec, &ed);
	test_credentials(&ec, &ed);
	test_auth_info(&ec);
	test_attestation(&ec, &ed);
	test_signature_flags();
	ssh_key_line_done(&ec);
	ssh_key_line_done(&ed);
	return test_result("test-ssh-sk");
}
