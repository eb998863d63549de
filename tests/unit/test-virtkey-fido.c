/* test-virtkey-fido.c: the real libfido2 client against virtkey — credentials,
 * assertions, attestation, counters, PIN protocols, touch, reset, persistence.
 * Usage: test-virtkey-fido CASE (one ctest test per case). */
#include <fcntl.h>
#include <spawn.h>
#include <sys/random.h>
#include <sys/wait.h>

#include <fido/credman.h>
#include <fido/eddsa.h>
#include <fido/es256.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "fido-util.h"
#include "util.h"
#include "virtkey-bench.h"

extern char **environ;

#define RP "keyward.test"

static void random_bytes(uint8_t *p, size_t n)
{
	CHECK(getrandom(p, n, 0) == (ssize_t)n);
}

static int make_cred(Bench *b, int type, bool rk, const char *pin, const char *user,
        const fido_cred_t *exclude, fido_cred_t **ret)
{
	fido_cred_t *c = fido_cred_new();
	uint8_t cdh[32], uid[32] = {};
	int r;

	CHECK(c);
	random_bytes(cdh, sizeof(cdh));
	snprintf((char *)uid, sizeof(uid), "uid:%s", user);
	CHECK_FIDO(fido_cred_set_type(c, type), FIDO_OK);
	CHECK_FIDO(fido_cred_set_clientdata_hash(c, cdh, sizeof(cdh)), FIDO_OK);
	CHECK_FIDO(fido_cred_set_rp(c, RP, "keyward tests"), FIDO_OK);
	CHECK_FIDO(fido_cred_set_user(c, uid, strlen((char *)uid), user, "Display Name", NULL),
	        FIDO_OK);
	if (rk)
		CHECK_FIDO(fido_cred_set_rk(c, FIDO_OPT_TRUE), FIDO_OK);
	if (exclude)
		CHECK_FIDO(
		        fido_cred_exclude(c, fido_cred_id_ptr(exclude), fido_cred_id_len(exclude)),
		        FIDO_OK);
	r = fido_dev_make_cred(b->dev, c, pin);
	*ret = c;
	return r;
}

static int get_assert(
        Bench *b, const fido_cred_t *allow, fido_opt_t up, const char *pin, fido_assert_t **ret)
{
	fido_assert_t *a = fido_assert_new();
	uint8_t cdh[32];

	CHECK(a);
	random_bytes(cdh, sizeof(cdh));
	CHECK_FIDO(fido_assert_set_clientdata_hash(a, cdh, sizeof(cdh)), FIDO_OK);
	CHECK_FIDO(fido_assert_set_rp(a, RP), FIDO_OK);
	if (allow)
		CHECK_FIDO(
		        fido_assert_allow_cred(a, fido_cred_id_ptr(allow), fido_cred_id_len(allow)),
		        FIDO_OK);
	if (up != FIDO_OPT_OMIT)
		CHECK_FIDO(fido_assert_set_up(a, up), FIDO_OK);
	if (pin)
		CHECK_FIDO(fido_assert_set_uv(a, FIDO_OPT_TRUE), FIDO_OK);
	*ret = a;
	return fido_dev_get_assert(b->dev, a, pin);
}

static int verify_assert(const fido_assert_t *a, size_t idx, const fido_cred_t *c)
{
	int type = fido_cred_type(c), r;

	if (type == COSE_ES256) {
		es256_pk_t *pk = es256_pk_new();
		CHECK(pk);
		CHECK_FIDO(es256_pk_from_ptr(pk, fido_cred_pubkey_ptr(c), fido_cred_pubkey_len(c)),
		        FIDO_OK);
		r = fido_assert_verify(a, idx, type, pk);
		es256_pk_free(&pk);
		return r;
	}
	CHECK_EQ(type, COSE_EDDSA);
	{
		eddsa_pk_t *pk = eddsa_pk_new();
		CHECK(pk);
		CHECK_FIDO(eddsa_pk_from_ptr(pk, fido_cred_pubkey_ptr(c), fido_cred_pubkey_len(c)),
		        FIDO_OK);
		r = fido_assert_verify(a, idx, type, pk);
		eddsa_pk_free(&pk);
		return r;
	}
}

static bool info_option(const fido_cbor_info_t *ci, const char *name, bool *ret)
{
	char **names = fido_cbor_info_options_name_ptr(ci);
	const bool *values = fido_cbor_info_options_value_ptr(ci);

	for (size_t i = 0; i < fido_cbor_info_options_len(ci); i++)
		if (streq(names[i], name)) {
			*ret = values[i];
			return true;
		}
	return false;
}

static bool has_pin(Bench *b)
{
	fido_cbor_info_t *ci = fido_cbor_info_new();
	bool v = false;

	CHECK_FIDO(fido_dev_get_cbor_info(b->dev, ci), FIDO_OK);
	CHECK(info_option(ci, "clientPin", &v));
	fido_cbor_info_free(&ci);
	return v;
}

static int retries(Bench *b)
{
	int n = -1;

	CHECK_FIDO(fido_dev_get_retry_count(b->dev, &n), FIDO_OK);
	return n;
}

/* ---- cases ---- */

static void test_getinfo(void)
{
	Bench b;
	fido_cbor_info_t *ci;
	char **v;
	bool opt;
	const uint8_t *protos;

	bench_init(&b, false);
	bench_start(&b);
	ci = fido_cbor_info_new();
	CHECK_FIDO(fido_dev_get_cbor_info(b.dev, ci), FIDO_OK);
	CHECK_EQ(fido_cbor_info_versions_len(ci), 2);
	v = fido_cbor_info_versions_ptr(ci);
	CHECK(streq(v[0], "FIDO_2_0") && streq(v[1], "FIDO_2_1"));
	CHECK_EQ(fido_cbor_info_aaguid_len(ci), 16);
	CHECK(memcmp(fido_cbor_info_aaguid_ptr(ci), bench_aaguid, 16) == 0);
	CHECK(info_option(ci, "rk", &opt) && opt);
	CHECK(info_option(ci, "up", &opt) && opt);
	CHECK(info_option(ci, "clientPin", &opt) && !opt);
	CHECK(info_option(ci, "pinUvAuthToken", &opt) && opt);
	CHECK(!info_option(ci, "uv", &opt));
	CHECK_EQ(fido_cbor_info_maxmsgsiz(ci), VIRTKEY_MAX_CBOR_MSG);
	CHECK_EQ(fido_cbor_info_protocols_len(ci), 2);
	protos = fido_cbor_info_protocols_ptr(ci);
	CHECK(protos[0] == 2 && protos[1] == 1);
	CHECK_EQ(fido_cbor_info_algorithm_count(ci), 2);
	CHECK_EQ(fido_cbor_info_algorithm_cose(ci, 0), COSE_ES256);
	CHECK_EQ(fido_cbor_info_algorithm_cose(ci, 1), COSE_EDDSA);
	CHECK(streq(fido_cbor_info_algorithm_type(ci, 0), "public-key"));
	CHECK_EQ(fido_cbor_info_transports_len(ci), 1);
	fido_cbor_info_free(&ci);
	/* libfido2 learnt the protocol and the token support from GetInfo at open */
	CHECK(fido_dev_supports_pin(b.dev));
	CHECK(!fido_dev_has_pin(b.dev));
	CHECK(fido_dev_supports_permissions(b.dev));
	bench_done(&b);
}

static int run(char *const argv[])
{
	pid_t pid;
	int status;

	if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
		return -1;
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void write_b64_line(FILE *f, const void *p, size_t n)
{
	_cleanup_free_ char *s = NULL;

	CHECK(base64_encode(p, n, &s) >= 0);
	fprintf(f, "%s\n", s);
}

static void test_makecred_packed(void)
{
	Bench b;
	fido_cred_t *c;
	X509 *x, *ca;
	X509_STORE *store;
	X509_STORE_CTX *ctx;
	const unsigned char *p;
	char ca_path[PATH_MAX + 32], cert_path[PATH_MAX + 32], in_path[PATH_MAX + 32];
	FILE *f;
	ASN1_OBJECT *obj;
	int idx;

	bench_init(&b, false);
	bench_start(&b);
	CHECK_FIDO(make_cred(&b, COSE_ES256, false, NULL, "alice", NULL, &c), FIDO_OK);
	CHECK(streq(fido_cred_fmt(c), "packed"));
	CHECK_FIDO(fido_cred_verify(c), FIDO_OK);
	CHECK((fido_cred_flags(c) & 0x45) == 0x41); /* UP, AT, no UV */
	CHECK_EQ(fido_cred_aaguid_len(c), 16);
	CHECK(memcmp(fido_cred_aaguid_ptr(c), bench_aaguid, 16) == 0);
	CHECK_EQ(fido_cred_sigcount(c), 0);
	CHECK(fido_cred_x5c_len(c) > 0);

	/* the batch certificate chains to the test CA */
	p = fido_cred_x5c_ptr(c);
	x = d2i_X509(NULL, &p, (long)fido_cred_x5c_len(c));
	CHECK(x);
	snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", b.att);
	f = fopen(ca_path, "re");
	CHECK(f);
	ca = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	CHECK(ca);
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	CHECK(store && ctx && X509_STORE_add_cert(store, ca) == 1);
	CHECK(X509_STORE_CTX_init(ctx, store, x, NULL) == 1);
	if (X509_verify_cert(ctx) != 1) {
		fprintf(stderr, "x5c: %s\n",
		        X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		CHECK(false);
	}
	/* id-fido-gen-ce-aaguid: an OCTET STRING wrapping the 16 bytes */
	obj = OBJ_txt2obj("1.3.6.1.4.1.45724.1.1.4", 1);
	idx = X509_get_ext_by_OBJ(x, obj, -1);
	CHECK(idx >= 0);
	{
		ASN1_OCTET_STRING *d = X509_EXTENSION_get_data(X509_get_ext(x, idx));
		CHECK_EQ(ASN1_STRING_length(d), 18);
		CHECK(ASN1_STRING_get0_data(d)[0] == 0x04 && ASN1_STRING_get0_data(d)[1] == 16);
		CHECK(memcmp(ASN1_STRING_get0_data(d) + 2, bench_aaguid, 16) == 0);
		CHECK(!X509_EXTENSION_get_critical(X509_get_ext(x, idx)));
	}
	ASN1_OBJECT_free(obj);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(ca);

	/* and so do the tools nobody here wrote: fido2-cred -V, openssl verify */
	snprintf(cert_path, sizeof(cert_path), "%s/x5c.pem", b.dir);
	f = fopen(cert_path, "we");
	CHECK(f && PEM_write_X509(f, x) == 1);
	fclose(f);
	X509_free(x);
	snprintf(in_path, sizeof(in_path), "%s/cred.txt", b.dir);
	f = fopen(in_path, "we");
	CHECK(f);
	write_b64_line(f, fido_cred_clientdata_hash_ptr(c), fido_cred_clientdata_hash_len(c));
	fprintf(f, "%s\n", RP);
	fprintf(f, "%s\n", fido_cred_fmt(c));
	write_b64_line(f, fido_cred_authdata_ptr(c), fido_cred_authdata_len(c));
	write_b64_line(f, fido_cred_id_ptr(c), fido_cred_id_len(c));
	write_b64_line(f, fido_cred_sig_ptr(c), fido_cred_sig_len(c));
	write_b64_line(f, fido_cred_x5c_ptr(c), fido_cred_x5c_len(c));
	fclose(f);
	{
		char *fido2_cred[] = {"fido2-cred", "-V", "-i", in_path, "-o", "/dev/null", NULL};
		char *openssl[] = {"openssl", "verify", "-CAfile", ca_path, cert_path, NULL};
		CHECK_EQ(run(fido2_cred), 0);
		CHECK_EQ(run(openssl), 0);
	}
	(void)unlink(in_path);
	(void)unlink(cert_path);
	fido_cred_free(&c);
	bench_done(&b);
}

static void test_attestation_none(void)
{
	Bench b;
	fido_cred_t *c;
	fido_assert_t *a;

	bench_init(&b, false);
	b.opts.attestation_dir = NULL;
	bench_start(&b);
	CHECK_FIDO(make_cred(&b, COSE_ES256, false, NULL, "alice", NULL, &c), FIDO_OK);
	CHECK(streq(fido_cred_fmt(c), "none"));
	CHECK_EQ(fido_cred_x5c_len(c), 0);
	CHECK(fido_cred_pubkey_len(c) > 0);
	CHECK_FIDO(get_assert(&b, c, FIDO_OPT_OMIT, NULL, &a), FIDO_OK);
	CHECK_FIDO(verify_assert(a, 0, c), FIDO_OK);
	fido_assert_free(&a);
	fido_cred_free(&c);
	bench_done(&b);
}

static void assert_roundtrip(int type)
{
	Bench b;
	fido_cred_t *c;
	fido_assert_t *a;

	bench_init(&b, false);
	bench_start(&b);
	CHECK_FIDO(make_cred(&b, type, false, NULL, "alice", NULL, &c), FIDO_OK);
	CHECK_EQ(fido_cred_type(c), type);
	CHECK_FIDO(fido_cred_verify(c), FIDO_OK);
	for (uint32_t i = 1; i <= 3; i++) {
		CHECK_FIDO(get_assert(&b, c, FIDO_OPT_OMIT, NULL, &a), FIDO_OK);
		CHECK_EQ(fido_assert_count(a), 1);
		CHECK_FIDO(verify_assert(a, 0, c), FIDO_OK);
		CHECK_EQ(fido_assert_flags(a, 0) & 0x05, 0x01);
		CHECK_EQ(fido_assert_sigcount(a, 0), i);
		CHECK_EQ(fido_assert_id_len(a, 0), fido_cred_id_len(c));
		CHECK(memcmp(fido_assert_id_ptr(a, 0), fido_cred_id_ptr(c), fido_cred_id_len(c)) ==
		        0);
		fido_assert_free(&a);
	}
	/* a key handle for another RP does not open */
	{
		uint8_t cdh[32];
		a = fido_assert_new();
		random_bytes(cdh, sizeof(cdh));
		CHECK_FIDO(fido_assert_set_clientdata_hash(a, cdh, sizeof(cdh)), FIDO_OK);
		CHECK_FIDO(fido_assert_set_rp(a, "other.test"), FIDO_OK);
		CHECK_FIDO(fido_assert_allow_cred(a, fido_cred_id_ptr(c), fido_cred_id_len(c)),
		        FIDO_OK);
		CHECK_FIDO(fido_dev_get_assert(b.dev, a, NULL), FIDO_ERR_NO_CREDENTIALS);
		fido_assert_free(&a);
	}
	CHECK_EQ(virtkey_credential_count(b.key, false), 1);
	CHECK_EQ(virtkey_credential_count(b.key, true), 0);
	fido_cred_free(&c);
	bench_done(&b);
}

static void test_assert_es256(void)
{
	assert_roundtrip(COSE_ES256);
}

static void test_assert_eddsa(void)
{
	assert_roundtrip(COSE_EDDSA);
}

static void test_resident(void)
{
	Bench b;
	fido_cred_t *c1, *c2, *c3;
	fido_assert_t *a;
	bool seen1 = false, seen2 = false;

	bench_init(&b, false);
	bench_start(&b);
	CHECK_FIDO(make_cred(&b, COSE_ES256, true, NULL, "alice", NULL, &c1), FIDO_OK);
	CHECK_FIDO(make_cred(&b, COSE_EDDSA, true, NULL, "bob", NULL, &c2), FIDO_OK);
	CHECK_FIDO(make_cred(&b, COSE_ES256, false, NULL, "carol", NULL, &c3), FIDO_OK);
	CHECK_EQ(virtkey_credential_count(b.key, true), 2);
	CHECK_FIDO(get_assert(&b, NULL, FIDO_OPT_OMIT, NULL, &a), FIDO_OK);
	CHECK_EQ(fido_assert_count(a), 2);
	for (size_t i = 0; i < 2; i++) {
		const fido_cred_t *c =
		        fido_assert_user_id_len(a, i) == strlen("uid:alice") ? c1 : c2;
		CHECK(memcmp(fido_assert_id_ptr(a, i), fido_cred_id_ptr(c), fido_cred_id_len(c)) ==
		        0);
		CHECK(memcmp(fido_assert_user_id_ptr(a, i), fido_cred_user_id_ptr(c),
		              fido_cred_user_id_len(c)) == 0);
		CHECK_FIDO(verify_assert(a, i, c), FIDO_OK);
		if (c == c1)
			seen1 = true;
		else
			seen2 = true;
	}
	CHECK(seen1 && seen2);
	/* most recent first */
	CHECK(memcmp(fido_assert_id_ptr(a, 0), fido_cred_id_ptr(c2), fido_cred_id_len(c2)) == 0);
	fido_assert_free(&a);

	/* same RP and user again: replaces the old resident credential */
	fido_cred_free(&c1);
	CHECK_FIDO(make_cred(&b, COSE_ES256, true, NULL, "alice", NULL, &c1), FIDO_OK);
	CHECK_EQ(virtkey_credential_count(b.key, true), 2);
	CHECK_FIDO(get_assert(&b, NULL, FIDO_OPT_OMIT, NULL, &a), FIDO_OK);
	CHECK_EQ(fido_assert_count(a), 2);
	CHECK(memcmp(fido_assert_id_ptr(a, 0), fido_cred_id_ptr(c1), fido_cred_id_len(c1)) == 0);
	CHECK_FIDO(verify_assert(a, 0, c1), FIDO_OK);
	fido_assert_free(&a);
	fido_cred_free(&c1);
	fido_cred_free(&c2);
	fido_cred_free(&c3);
	bench_done(&b);
}

/* credProtect and credential management through libfido2's own API (fido_credman_*, which
 * sends the 2.1-PRE command 0x41 with a cm token), across a restart of the key. */
static void test_credman(void)
{
	static const int levels[] = {FIDO_CRED_PROT_UV_OPTIONAL, FIDO_CRED_PROT_UV_OPTIONAL_WITH_ID,
	        FIDO_CRED_PROT_UV_REQUIRED};
	static const char *users[] = {"alice", "bob", "carol"};
	const char *pin = "4711";
	fido_credman_metadata_t *meta = fido_credman_metadata_new();
	fido_credman_rp_t *rp = fido_credman_rp_new();
	fido_credman_rk_t *rk = fido_credman_rk_new();
	fido_cred_t *c[3];
	fido_assert_t *a;
	Bench b;

	CHECK(meta && rp && rk);
	bench_init(&b, true);
	b.opts.initial_pin = pin;
	bench_start(&b);
	CHECK(fido_dev_supports_credman(b.dev));
	CHECK(fido_dev_supports_cred_prot(b.dev));
	for (size_t i = 0; i < 3; i++) {
		uint8_t cdh[32], uid[16];
		c[i] = fido_cred_new();
		CHECK(c[i]);
		random_bytes(cdh, sizeof(cdh));
		snprintf((char *)uid, sizeof(uid), "uid:%s", users[i]);
		CHECK_FIDO(fido_cred_set_type(c[i], COSE_ES256), FIDO_OK);
		CHECK_FIDO(fido_cred_set_clientdata_hash(c[i], cdh, sizeof(cdh)), FIDO_OK);
		CHECK_FIDO(fido_cred_set_rp(c[i], RP, NULL), FIDO_OK);
		CHECK_FIDO(fido_cred_set_user(c[i], uid, strlen((char *)uid), users[i], NULL, NULL),
		        FIDO_OK);
		CHECK_FIDO(fido_cred_set_rk(c[i], FIDO_OPT_TRUE), FIDO_OK);
		CHECK_FIDO(fido_cred_set_prot(c[i], levels[i]), FIDO_OK);
		CHECK_FIDO(fido_dev_make_cred(b.dev, c[i], pin), FIDO_OK);
		/* libfido2 checks that authData's extensions answer what was asked */
		CHECK_FIDO(fido_cred_verify(c[i]), FIDO_OK);
		CHECK_EQ(fido_cred_prot(c[i]), levels[i]);
	}
	/* the credential ID carries the level: it holds after a restart from the state file */
	bench_stop(&b);
	bench_start(&b);

	CHECK_FIDO(fido_credman_get_dev_metadata(b.dev, meta, pin), FIDO_OK);
	CHECK_EQ(fido_credman_rk_existing(meta), 3);
	CHECK_EQ(fido_credman_rk_remaining(meta), 22);
	CHECK_FIDO(fido_credman_get_dev_rp(b.dev, rp, pin), FIDO_OK);
	CHECK_EQ(fido_credman_rp_count(rp), 1);
	CHECK(streq(fido_credman_rp_id(rp, 0), RP));
	CHECK_FIDO(fido_credman_get_dev_rk(b.dev, RP, rk, pin), FIDO_OK);
	CHECK_EQ(fido_credman_rk_count(rk), 3);
	for (size_t i = 0; i < 3; i++) {
		const fido_cred_t *r = fido_credman_rk(rk, i);
		size_t j;
		for (j = 0; j < 3; j++)
			if (fido_cred_id_len(r) == fido_cred_id_len(c[j]) &&
			        memcmp(fido_cred_id_ptr(r), fido_cred_id_ptr(c[j]),
			                fido_cred_id_len(r)) == 0)
				break;
		CHECK(j < 3);
		CHECK_EQ(fido_cred_prot(r), levels[j]);
		CHECK(streq(fido_cred_user_name(r), users[j]));
		CHECK_EQ(fido_cred_pubkey_len(r), fido_cred_pubkey_len(c[j]));
		CHECK(memcmp(fido_cred_pubkey_ptr(r), fido_cred_pubkey_ptr(c[j]),
		              fido_cred_pubkey_len(r)) == 0);
	}
	/* discovery: one without UV (alice, level 1), three with the PIN */
	CHECK_FIDO(get_assert(&b, NULL, FIDO_OPT_OMIT, NULL, &a), FIDO_OK);
	CHECK_EQ(fido_assert_count(a), 1);
	CHECK(memcmp(fido_assert_id_ptr(a, 0), fido_cred_id_ptr(c[0]), fido_cred_id_len(c[0])) ==
	        0);
	fido_assert_free(&a);
	CHECK_FIDO(get_assert(&b, NULL, FIDO_OPT_OMIT, pin, &a), FIDO_OK);
	CHECK_EQ(fido_assert_count(a), 3);
	fido_assert_free(&a);
	CHECK_FIDO(get_assert(&b, c[2], FIDO_OPT_OMIT, NULL, &a), FIDO_ERR_NO_CREDENTIALS);
	fido_assert_free(&a);
	CHECK_FIDO(get_assert(&b, c[1], FIDO_OPT_OMIT, NULL, &a), FIDO_OK);
	CHECK_FIDO(verify_assert(a, 0, c[1]), FIDO_OK);
	fido_assert_free(&a);

	/* delete bob's; a wrong PIN deletes nothing */
	CHECK_FIDO(fido_credman_del_dev_rk(
	                   b.dev, fido_cred_id_ptr(c[1]), fido_cred_id_len(c[1]), "0000"),
	        FIDO_ERR_PIN_INVALID);
	CHECK_FIDO(
	        fido_credman_del_dev_rk(b.dev, fido_cred_id_ptr(c[1]), fido_cred_id_len(c[1]), pin),
	        FIDO_OK);
	CHECK_FIDO(
	        fido_credman_del_dev_rk(b.dev, fido_cred_id_ptr(c[1]), fido_cred_id_len(c[1]), pin),
	        FIDO_ERR_NO_CREDENTIALS);
	CHECK_FIDO(fido_credman_get_dev_rk(b.dev, RP, rk, pin), FIDO_OK);
	CHECK_EQ(fido_credman_rk_count(rk), 2);
	CHECK_FIDO(get_assert(&b, c[1], FIDO_OPT_OMIT, NULL, &a), FIDO_ERR_NO_CREDENTIALS);
	fido_assert_free(&a);

	for (size_t i = 0; i < 3; i++)
		fido_cred_free(&c[i]);
	fido_credman_metadata_free(&meta);
	fido_credman_rp_free(&rp);
	fido_credman_rk_free(&rk);
	bench_done(&b);
}

static void test_exclude(void)
{
	Bench b;
	fido_cred_t *c, *c2;

	bench_init(&b, false);
	bench_start(&b);
	CHECK_FIDO(make_cred(&b, COSE_ES256, false, NULL, "alice", NULL, &c), FIDO_OK);
	CHECK_FIDO(make_cred(&b, COSE_ES256, false, NULL, "alice", c, &c2),
	        FIDO_ERR_CREDENTIAL_EXCLUDED);
	CHECK_EQ(virtkey_credential_count(b.key, false), 1);
	fido_cred_free(&c2);
	fido_cred_free(&c);
	bench_done(&b);
}

static void test_silent(void)
{
	Bench b;
	fido_cred_t *c;
	fido_assert_t *a;
	unsigned ka;

	bench_init(&b, false);
	b.opts.touch_delay_ms = 150;
	bench_start(&b);
	CHECK_FIDO(make_cred(&b, COSE_ES256, false, NULL, "alice", NULL, &c), FIDO_OK);
	CHECK(b.keepalives > 0); /* the touch took a while */
	ka = b.keepalives;
	CHECK_FIDO(get_assert(&b, c, FIDO_OPT_FALSE, NULL, &a), FIDO_OK);
	CHECK_EQ(b.keepalives, ka); /* no touch wait */
	CHECK_EQ(fido_assert_flags(a, 0) & 0x01, 0);
	CHECK_FIDO(verify_assert(a, 0, c), FIDO_OK);
	CHECK_EQ(fido_assert_sigcount(a, 0), 1);
	fido_assert_free(&a);
	/* a verifier that demands UP rejects it */
	virtkey_set_touch(b.key, VIRTKEY_TOUCH_NEVER, 0);
	CHECK_FIDO(get_assert(&b, c, FIDO_OPT_FALSE, NULL, &a), FIDO_OK);
	CHECK_FIDO(fido_assert_set_up(a, FIDO_OPT_TRUE), FIDO_OK);
	CHECK(verify_assert(a, 0, c) != FIDO_OK);
	fido_assert_free(&a);
	fido_cred_free(&c);
	bench_done(&b);
}

static uint32_t one_count(Bench *b, const fido_cred_t *c)
{
	fido_assert_t *a;
	uint32_t n;

	CHECK_FIDO(get_assert(b, c, FIDO_OPT_OMIT, NULL, &a), FIDO_OK);
	CHECK_FIDO(verify_assert(a, 0, c), FIDO_OK);
	n = fido_assert_sigcount(a, 0);
	fido_assert_free(&a);
	return n;
}

static void test_counter(void)
{
	Bench b;
	fido_cred_t *c, *d;

	bench_init(&b, false);
	bench_start(&b);
	CHECK_FIDO(make_cred(&b, COSE_ES256, false, NULL, "alice", NULL, &c), FIDO_OK);
	CHECK_FIDO(make_cred(&b, COSE_EDDSA, false, NULL, "bob", NULL, &d), FIDO_OK);
	CHECK_EQ(one_count(&b, c), 1);
	CHECK_EQ(one_count(&b, c), 2);
	CHECK_EQ(one_count(&b, d), 1); /* per credential */
	virtkey_set_counter(b.key, VIRTKEY_COUNTER_ZERO);
	CHECK_EQ(one_count(&b, c), 0);
	CHECK_EQ(one_count(&b, c), 0);
	virtkey_set_counter(b.key, VIRTKEY_COUNTER_NORMAL);
	CHECK_EQ(one_count(&b, c), 3);
	virtkey_set_counter(b.key, VIRTKEY_COUNTER_REWOUND);
	CHECK(one_count(&b, c) < 3);
	CHECK(one_count(&b, c) < 3);
	virtkey_set_counter(b.key, VIRTKEY_COUNTER_NORMAL);
	CHECK_EQ(one_count(&b, c), 4);
	fido_cred_free(&c);
	fido_cred_free(&d);
	bench_done(&b);
}

static void pin_flow(Bench *b)
{
	fido_cred_t *c, *c2;
	fido_assert_t *a;

	CHECK(!has_pin(b));
	CHECK_FIDO(fido_dev_set_pin(b->dev, "1234", NULL), FIDO_OK);
	CHECK(has_pin(b));
	CHECK_EQ(virtkey_pin_retries(b->key), 8);
	CHECK_EQ(retries(b), 8);
	/* a PIN is set: makeCredential needs it */
	CHECK_FIDO(make_cred(b, COSE_ES256, false, NULL, "alice", NULL, &c), FIDO_ERR_PIN_REQUIRED);
	fido_cred_free(&c);
	CHECK_FIDO(make_cred(b, COSE_ES256, true, "1234", "alice", NULL, &c), FIDO_OK);
	CHECK_EQ(fido_cred_flags(c) & 0x05, 0x05); /* UP and UV */
	CHECK_FIDO(fido_cred_verify(c), FIDO_OK);

	CHECK_FIDO(get_assert(b, c, FIDO_OPT_OMIT, "1234", &a), FIDO_OK);
	CHECK_EQ(fido_assert_flags(a, 0) & 0x05, 0x05);
	CHECK_FIDO(verify_assert(a, 0, c), FIDO_OK);
	/* with UV the user entity carries the names */
	CHECK(fido_assert_user_name(a, 0) && streq(fido_assert_user_name(a, 0), "alice"));
	fido_assert_free(&a);
	/* without a PIN: no UV flag, and a verifier that wants UV says no */
	CHECK_FIDO(get_assert(b, c, FIDO_OPT_OMIT, NULL, &a), FIDO_OK);
	CHECK_EQ(fido_assert_flags(a, 0) & 0x05, 0x01);
	CHECK_FIDO(fido_assert_set_uv(a, FIDO_OPT_TRUE), FIDO_OK);
	CHECK(verify_assert(a, 0, c) != FIDO_OK);
	fido_assert_free(&a);

	/* wrong PIN: retries drop, the right one restores them */
	CHECK_FIDO(get_assert(b, c, FIDO_OPT_OMIT, "9999", &a), FIDO_ERR_PIN_INVALID);
	fido_assert_free(&a);
	CHECK_EQ(retries(b), 7);
	CHECK_FIDO(make_cred(b, COSE_ES256, false, "0000", "bob", NULL, &c2), FIDO_ERR_PIN_INVALID);
	fido_cred_free(&c2);
	CHECK_EQ(retries(b), 6);
	CHECK_FIDO(get_assert(b, c, FIDO_OPT_OMIT, "1234", &a), FIDO_OK);
	fido_assert_free(&a);
	CHECK_EQ(retries(b), 8);

	/* changePIN */
	CHECK_FIDO(fido_dev_set_pin(b->dev, "abcdef", "9999"), FIDO_ERR_PIN_INVALID);
	CHECK_EQ(retries(b), 7);
	CHECK_FIDO(fido_dev_set_pin(b->dev, "abc", "1234"), FIDO_ERR_PIN_POLICY_VIOLATION);
	CHECK_FIDO(fido_dev_set_pin(b->dev, "abcdef", "1234"), FIDO_OK);
	CHECK_EQ(retries(b), 8);
	CHECK_FIDO(get_assert(b, c, FIDO_OPT_OMIT, "1234", &a), FIDO_ERR_PIN_INVALID);
	fido_assert_free(&a);
	CHECK_FIDO(get_assert(b, c, FIDO_OPT_OMIT, "abcdef", &a), FIDO_OK);
	CHECK_FIDO(verify_assert(a, 0, c), FIDO_OK);
	fido_assert_free(&a);

	/* three wrong in a row: blocked until power cycle */
	for (int i = 0; i < 2; i++) {
		CHECK_FIDO(get_assert(b, c, FIDO_OPT_OMIT, "0000", &a), FIDO_ERR_PIN_INVALID);
		fido_assert_free(&a);
	}
	CHECK_FIDO(get_assert(b, c, FIDO_OPT_OMIT, "0000", &a), FIDO_ERR_PIN_AUTH_BLOCKED);
	fido_assert_free(&a);
	CHECK_FIDO(get_assert(b, c, FIDO_OPT_OMIT, "abcdef", &a), FIDO_ERR_PIN_AUTH_BLOCKED);
	fido_assert_free(&a);
	CHECK_EQ(retries(b), 5);
	virtkey_power_cycle(b->key);
	bench_reopen_dev(b);
	CHECK_FIDO(get_assert(b, c, FIDO_OPT_OMIT, "abcdef", &a), FIDO_OK);
	fido_assert_free(&a);
	CHECK_EQ(retries(b), 8);
	fido_cred_free(&c);
}

static void test_pin(void)
{
	Bench b;

	bench_init(&b, false);
	bench_start(&b);
	pin_flow(&b);
	bench_done(&b);
}

static void test_pin_protocol1(void)
{
	Bench b;
	fido_cbor_info_t *ci = fido_cbor_info_new();

	bench_init(&b, false);
	b.opts.pin_protocols = VIRTKEY_PIN_PROTOCOL_1;
	bench_start(&b);
	CHECK_FIDO(fido_dev_get_cbor_info(b.dev, ci), FIDO_OK);
	CHECK_EQ(fido_cbor_info_protocols_len(ci), 1);
	CHECK_EQ(fido_cbor_info_protocols_ptr(ci)[0], 1);
	fido_cbor_info_free(&ci);
	pin_flow(&b);
	bench_done(&b);
}

static void test_pin_protocol2(void)
{
	Bench b;

	bench_init(&b, false);
	b.opts.pin_protocols = VIRTKEY_PIN_PROTOCOL_2;
	bench_start(&b);
	pin_flow(&b);
	bench_done(&b);
}

static void test_ctap20(void)
{
	Bench b;
	fido_cbor_info_t *ci = fido_cbor_info_new();
	bool opt;

	bench_init(&b, false);
	b.opts.ctap20_only = true;
	b.opts.pin_protocols = VIRTKEY_PIN_PROTOCOL_1;
	bench_start(&b);
	CHECK_FIDO(fido_dev_get_cbor_info(b.dev, ci), FIDO_OK);
	CHECK_EQ(fido_cbor_info_versions_len(ci), 1);
	CHECK(!info_option(ci, "pinUvAuthToken", &opt));
	fido_cbor_info_free(&ci);
	CHECK(!fido_dev_supports_permissions(b.dev));
	pin_flow(&b); /* tokens through getPinToken (subcommand 5) */
	bench_done(&b);
}

static void test_pin_blocked(void)
{
	Bench b;
	fido_cred_t *c;

	bench_init(&b, false);
	b.opts.initial_pin = "123456";
	bench_start(&b);
	CHECK(has_pin(&b));
	for (int i = 1; i <= 8; i++) {
		int want = i == 8       ? FIDO_ERR_PIN_BLOCKED
		           : i % 3 == 0 ? FIDO_ERR_PIN_AUTH_BLOCKED
		                        : FIDO_ERR_PIN_INVALID;
		CHECK_FIDO(make_cred(&b, COSE_ES256, false, "000000", "alice", NULL, &c), want);
		fido_cred_free(&c);
		CHECK_EQ(retries(&b), 8 - i);
		if (i % 3 == 0) {
			virtkey_power_cycle(b.key);
			bench_reopen_dev(&b);
		}
	}
	CHECK_FIDO(make_cred(&b, COSE_ES256, false, "123456", "alice", NULL, &c),
	        FIDO_ERR_PIN_BLOCKED);
	fido_cred_free(&c);
	/* only a reset helps */
	CHECK_FIDO(fido_dev_reset(b.dev), FIDO_OK);
	CHECK(!has_pin(&b));
	CHECK_FIDO(make_cred(&b, COSE_ES256, false, NULL, "alice", NULL, &c), FIDO_OK);
	fido_cred_free(&c);
	bench_done(&b);
}

static void test_touch_never(void)
{
	Bench b;
	fido_cred_t *c;
	fido_assert_t *a;
	uint8_t r[VIRTKEY_REPORT_SIZE];
	uint64_t t0;
	int status;

	bench_init(&b, false);
	bench_start(&b);
	CHECK_FIDO(make_cred(&b, COSE_ES256, false, NULL, "alice", NULL, &c), FIDO_OK);
	virtkey_set_touch(b.key, VIRTKEY_TOUCH_NEVER, 0);
	CHECK_FIDO(fido_dev_set_timeout(b.dev, 350), FIDO_OK);
	b.keepalives = 0;
	status = get_assert(&b, c, FIDO_OPT_OMIT, NULL, &a);
	fido_assert_free(&a);
	CHECK(status != FIDO_OK);
	fprintf(stderr, "libfido2 on touch timeout: %s (%d)\n", fido_strerr(status), status);
	CHECK(b.keepalives >= 1); /* UPNEEDED (no count: the clock is real) */
	/* the client gives up: CANCEL, and the key answers KEEPALIVE_CANCEL */
	CHECK_FIDO(fido_dev_cancel(b.dev), FIDO_OK);
	t0 = now_monotonic_ms();
	for (;;) {
		CHECK(now_monotonic_ms() - t0 < 5000);
		if (virtkey_hid_read(b.key, r, now_monotonic_ms()) == 1 && r[4] == 0x90)
			break;
	}
	CHECK_EQ(r[7], 0x2d);
	/* a touch that comes later (live setting) serves the next request */
	CHECK_FIDO(fido_dev_set_timeout(b.dev, -1), FIDO_OK);
	virtkey_set_touch(b.key, VIRTKEY_TOUCH_AUTO, 50);
	CHECK_FIDO(get_assert(&b, c, FIDO_OPT_OMIT, NULL, &a), FIDO_OK);
	CHECK_FIDO(verify_assert(a, 0, c), FIDO_OK);
	fido_assert_free(&a);
	fido_cred_free(&c);
	bench_done(&b);
}

static void test_touch_deny(void)
{
	Bench b;
	fido_cred_t *c, *c2;
	fido_assert_t *a;

	bench_init(&b, false);
	bench_start(&b);
	CHECK_FIDO(make_cred(&b, COSE_ES256, false, NULL, "alice", NULL, &c), FIDO_OK);
	virtkey_set_touch(b.key, VIRTKEY_TOUCH_DENY, 20);
	CHECK_FIDO(get_assert(&b, c, FIDO_OPT_OMIT, NULL, &a), FIDO_ERR_OPERATION_DENIED);
	fido_assert_free(&a);
	CHECK_FIDO(make_cred(&b, COSE_ES256, false, NULL, "bob", NULL, &c2),
	        FIDO_ERR_OPERATION_DENIED);
	fido_cred_free(&c2);
	CHECK_FIDO(fido_dev_reset(b.dev), FIDO_ERR_OPERATION_DENIED);
	CHECK_EQ(virtkey_credential_count(b.key, false), 1);
	fido_cred_free(&c);
	bench_done(&b);
}

static void touch_probe(const char *pin)
{
	Bench b;
	int touched = 0;

	/* libfido2's "touch to select": makeCredential with an empty pinUvAuthParam; the key
	 * waits for the touch, then answers PIN_INVALID (PIN set) or PIN_NOT_SET */
	bench_init(&b, false);
	b.opts.initial_pin = pin;
	b.opts.touch_delay_ms = 30;
	bench_start(&b);
	CHECK_FIDO(fido_dev_get_touch_begin(b.dev), FIDO_OK);
	for (int i = 0; i < 100 && !touched; i++)
		CHECK_FIDO(fido_dev_get_touch_status(b.dev, &touched, 50), FIDO_OK);
	CHECK_EQ(touched, 1);
	CHECK(b.keepalives > 0);
	CHECK_EQ(virtkey_credential_count(b.key, false), 0);
	/* nobody touches: not touched, and the wait ends with a cancel */
	virtkey_set_touch(b.key, VIRTKEY_TOUCH_NEVER, 0);
	touched = 0;
	CHECK_FIDO(fido_dev_get_touch_begin(b.dev), FIDO_OK);
	for (int i = 0; i < 3; i++)
		CHECK_FIDO(fido_dev_get_touch_status(b.dev, &touched, 50), FIDO_OK);
	CHECK_EQ(touched, 0);
	CHECK_FIDO(fido_dev_cancel(b.dev), FIDO_OK);
	bench_done(&b);
}

static void test_touch_probe(void)
{
	touch_probe("1234");
	touch_probe(NULL);
}

static void test_slow_key(void)
{
	Bench b;
	fido_cred_t *c;
	fido_assert_t *a;

	/* PROCESSING keepalives before every reply, then UPNEEDED until the touch */
	bench_init(&b, false);
	b.opts.processing_delay_ms = 120;
	b.opts.touch_delay_ms = 130;
	bench_start(&b);
	CHECK_FIDO(make_cred(&b, COSE_EDDSA, true, NULL, "alice", NULL, &c), FIDO_OK);
	CHECK(b.keepalives >= 2);
	CHECK_FIDO(get_assert(&b, NULL, FIDO_OPT_OMIT, NULL, &a), FIDO_OK);
	CHECK_FIDO(verify_assert(a, 0, c), FIDO_OK);
	fido_assert_free(&a);
	fido_cred_free(&c);
	bench_done(&b);
}

static void test_long_allow_list(void)
{
	Bench b;
	fido_cred_t *c;
	fido_assert_t *a;
	uint8_t cdh[32], junk[62];

	/* a request of many continuation packets: 7 foreign handles, then ours (8: the most
	 * the key takes, like a YubiKey 5) */
	bench_init(&b, false);
	bench_start(&b);
	CHECK_FIDO(make_cred(&b, COSE_ES256, false, NULL, "alice", NULL, &c), FIDO_OK);
	a = fido_assert_new();
	random_bytes(cdh, sizeof(cdh));
	CHECK_FIDO(fido_assert_set_clientdata_hash(a, cdh, sizeof(cdh)), FIDO_OK);
	CHECK_FIDO(fido_assert_set_rp(a, RP), FIDO_OK);
	for (int i = 0; i < 7; i++) {
		random_bytes(junk, sizeof(junk));
		junk[0] = 1;
		junk[1] = 1; /* looks like ours, but does not open */
		CHECK_FIDO(fido_assert_allow_cred(a, junk, sizeof(junk)), FIDO_OK);
	}
	CHECK_FIDO(fido_assert_allow_cred(a, fido_cred_id_ptr(c), fido_cred_id_len(c)), FIDO_OK);
	b.writes = 0;
	CHECK_FIDO(fido_dev_get_assert(b.dev, a, NULL), FIDO_OK);
	CHECK(b.writes > 10);
	CHECK_EQ(fido_assert_count(a), 1);
	CHECK_FIDO(verify_assert(a, 0, c), FIDO_OK);
	/* one more than maxCredentialCountInList: refused as a whole, not "no credentials" */
	CHECK_FIDO(fido_assert_allow_cred(a, junk, sizeof(junk) - 1), FIDO_OK);
	CHECK_FIDO(fido_dev_get_assert(b.dev, a, NULL), FIDO_ERR_LIMIT_EXCEEDED);
	fido_assert_free(&a);
	fido_cred_free(&c);
	bench_done(&b);
}

/* lib/fido-util's batching against the key: 39 foreign handles, ours last, found by a
 * silent probe batch by batch; limits the key does not keep are an error, never "none". */
static void test_batched_probe(void)
{
	FidoCredIds ids = {}, foreign = {}, big = {};
	uint8_t big_id[200];
	FidoListLimits lim, lie;
	fido_assert_t *a = NULL;
	fido_cred_t *c;
	uint8_t junk[62];
	size_t pos = 0, n_batches = 0;
	int status = FIDO_OK;
	Bench b;

	bench_init(&b, false);
	bench_start(&b);
	CHECK_FIDO(make_cred(&b, COSE_ES256, false, NULL, "alice", NULL, &c), FIDO_OK);
	fido_list_limits(b.dev, &lim);
	CHECK_EQ(lim.max_count, 8);
	CHECK_EQ(lim.max_id_len, 62);
	CHECK_EQ(lim.max_msg, VIRTKEY_MAX_CBOR_MSG);
	for (int i = 0; i < 39; i++) {
		random_bytes(junk, sizeof(junk));
		CHECK_EQ(fido_cred_ids_add(&ids, junk, sizeof(junk)), 0);
		CHECK_EQ(fido_cred_ids_add(&foreign, junk, sizeof(junk)), 0);
	}
	CHECK_EQ(fido_cred_ids_add(&ids, fido_cred_id_ptr(c), fido_cred_id_len(c)), 0);
	/* 40 ids of 62 bytes: 5 batches of 8 */
	while (pos < ids.n) {
		pos = fido_list_batch_end(&ids, &lim, FIDO_LIST_ASSERT_OVERHEAD + strlen(RP), pos);
		n_batches++;
	}
	CHECK_EQ(n_batches, 5);
	/* no count advertised: what fits in 1,024 bytes */
	lie = (FidoListLimits){.max_count = SIZE_MAX, .max_id_len = SIZE_MAX, .max_msg = 1024};
	pos = fido_list_batch_end(&ids, &lie, FIDO_LIST_ASSERT_OVERHEAD + strlen(RP), 0);
	CHECK(pos >= 8 && pos <= 10);

	CHECK_EQ(fido_probe_batches(b.dev, RP, &ids, &lim, &a, &status), 1);
	CHECK_FIDO(status, FIDO_OK);
	CHECK(a && fido_assert_count(a) == 1);
	CHECK(fido_assert_id_len(a, 0) == fido_cred_id_len(c) &&
	        memcmp(fido_assert_id_ptr(a, 0), fido_cred_id_ptr(c), fido_cred_id_len(c)) == 0);
	CHECK_EQ(fido_assert_flags(a, 0) & 0x01, 0); /* silent: no touch */
	fido_assert_free(&a);
	CHECK_EQ(fido_probe_batches(b.dev, RP, &foreign, &lim, &a, &status), 0);
	CHECK_FIDO(status, FIDO_ERR_NO_CREDENTIALS);
	/* a key that takes less than it says: too many ids, then too many bytes */
	lie = (FidoListLimits){.max_count = 9, .max_id_len = SIZE_MAX, .max_msg = 4096};
	CHECK(fido_probe_batches(b.dev, RP, &foreign, &lie, &a, &status) < 0);
	CHECK_FIDO(status, FIDO_ERR_LIMIT_EXCEEDED);
	CHECK(fido_error_to_errno(status) != fido_error_to_errno(FIDO_ERR_NO_CREDENTIALS));
	lie = (FidoListLimits){.max_count = 8, .max_id_len = SIZE_MAX, .max_msg = 4096};
	for (int i = 0; i < 8; i++) { /* 8 ids of 200 bytes: more than 1,200 */
		random_bytes(big_id, sizeof(big_id));
		CHECK_EQ(fido_cred_ids_add(&big, big_id, sizeof(big_id)), 0);
	}
	CHECK(fido_probe_batches(b.dev, RP, &big, &lie, &a, &status) < 0);
	CHECK_FIDO(status, FIDO_ERR_REQUEST_TOO_LARGE);
	CHECK(streq(fido_error_reason(status), "error"));
	/* ids longer than the key's maxCredentialIdLength are not sent to it */
	CHECK_EQ(fido_probe_batches(b.dev, RP, &big, &lim, &a, &status), 0);
	CHECK(a == NULL);
	fido_cred_ids_done(&ids);
	fido_cred_ids_done(&foreign);
	fido_cred_ids_done(&big);
	fido_cred_free(&c);
	bench_done(&b);
}

static void test_reset(void)
{
	Bench b;
	fido_cred_t *c, *c2;
	fido_assert_t *a;

	bench_init(&b, true);
	bench_start(&b);
	CHECK_FIDO(make_cred(&b, COSE_ES256, true, NULL, "alice", NULL, &c), FIDO_OK);
	CHECK_FIDO(make_cred(&b, COSE_ES256, false, NULL, "bob", NULL, &c2), FIDO_OK);
	CHECK_FIDO(fido_dev_set_pin(b.dev, "1234", NULL), FIDO_OK);
	CHECK_FIDO(fido_dev_reset(b.dev), FIDO_OK);
	CHECK(!has_pin(&b));
	CHECK_EQ(virtkey_credential_count(b.key, false), 0);
	CHECK_FIDO(get_assert(&b, NULL, FIDO_OPT_OMIT, NULL, &a), FIDO_ERR_NO_CREDENTIALS);
	fido_assert_free(&a);
	/* the old key handle belonged to the old master key */
	CHECK_FIDO(get_assert(&b, c2, FIDO_OPT_OMIT, NULL, &a), FIDO_ERR_NO_CREDENTIALS);
	fido_assert_free(&a);
	/* and the reset is persistent */
	bench_stop(&b);
	bench_start(&b);
	CHECK(!has_pin(&b));
	CHECK_EQ(virtkey_credential_count(b.key, false), 0);
	fido_cred_free(&c);
	fido_cred_free(&c2);
	bench_done(&b);
}

static void test_persistence(void)
{
	Bench b;
	fido_cred_t *c, *c2;
	fido_assert_t *a;
	struct stat st;

	bench_init(&b, true);
	bench_start(&b);
	CHECK_FIDO(make_cred(&b, COSE_ES256, true, NULL, "alice", NULL, &c), FIDO_OK);
	CHECK_FIDO(make_cred(&b, COSE_EDDSA, false, NULL, "bob", NULL, &c2), FIDO_OK);
	CHECK_EQ(one_count(&b, c2), 1);
	CHECK_FIDO(fido_dev_set_pin(b.dev, "1234", NULL), FIDO_OK);
	CHECK_FIDO(get_assert(&b, c, FIDO_OPT_OMIT, "0000", &a), FIDO_ERR_PIN_INVALID);
	fido_assert_free(&a);
	CHECK(stat(b.state, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) == 0);
	bench_stop(&b);

	bench_start(&b); /* a new process, the same key */
	CHECK(has_pin(&b));
	CHECK_EQ(retries(&b), 7);
	CHECK_EQ(virtkey_credential_count(b.key, true), 1);
	CHECK_EQ(virtkey_credential_count(b.key, false), 2);
	CHECK_FIDO(get_assert(&b, NULL, FIDO_OPT_OMIT, "1234", &a), FIDO_OK);
	CHECK_EQ(fido_assert_count(a), 1);
	CHECK_FIDO(verify_assert(a, 0, c), FIDO_OK);
	fido_assert_free(&a);
	CHECK_EQ(one_count(&b, c2), 2); /* the counter went on */

	/* a damaged state file is refused, not silently replaced */
	bench_stop(&b);
	{
		int fd = open(b.state, O_WRONLY | O_TRUNC | O_CLOEXEC);
		VirtKey *k = NULL;
		CHECK(fd >= 0);
		CHECK(write(fd, "\xa1\x02\x01", 3) == 3); /* master key of the wrong type */
		close(fd);
		CHECK_EQ(virtkey_new(&b.opts, &k), -EBADMSG);
		CHECK(!k);
	}
	fido_cred_free(&c);
	fido_cred_free(&c2);
	bench_done(&b);
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
        {"getinfo", test_getinfo},
        {"makecred-packed", test_makecred_packed},
        {"attestation-none", test_attestation_none},
        {"assert-es256", test_assert_es256},
        {"assert-eddsa", test_assert_eddsa},
        {"resident", test_resident},
        {"credman", test_credman},
        {"exclude", test_exclude},
        {"silent", test_silent},
        {"counter", test_counter},
        {"pin", test_pin},
        {"pin-protocol1", test_pin_protocol1},
        {"pin-protocol2", test_pin_protocol2},
        {"ctap20", test_ctap20},
        {"pin-blocked", test_pin_blocked},
        {"touch-never", test_touch_never},
        {"touch-deny", test_touch_deny},
        {"touch-probe", test_touch_probe},
        {"slow-key", test_slow_key},
        {"long-allow-list", test_long_allow_list},
        {"batched-probe", test_batched_probe},
        {"reset", test_reset},
        {"persistence", test_persistence},
};

int main(int argc, char *argv[])
{
	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		if (argc < 2 || streq(argv[1], cases[i].name)) {
			fprintf(stderr, "== %s\n", cases[i].name);
			cases[i].fn();
			if (argc >= 2)
				return EXIT_SUCCESS;
		}
	if (argc >= 2) {
		fprintf(stderr, "unknown case %s\n", argv[1]);
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}
