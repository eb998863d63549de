/* test-directory.c: the credential directory's pure parts — RFC 4515 escaping of the user
 * name in the filter (an injection cannot widen it), SSSD passkey values (good ones of each
 * key type, and each kind of bad one rejected with its reason), keywardCredential and
 * keywardSignCount values, the per-value parse that keeps the good keys, the merge of
 * sources, and the policy's `directory` group and `credentials` key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fido.h>

#include "directory.h"
#include "policy.h"
#include "util.h"

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond);         \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

/* P-256 SubjectPublicKeyInfo (a key made with openssl for this test) and an Ed25519 one. */
#define P256_SPKI                                                                                  \
	"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE5zktRzbplDQmtwy5a1B6KTz35zCAYFidhjjzKp+"              \
	"dMQbvZ2eJ4ew7J3p6"                                                                        \
	"30Z2s46iVXjgZD0hUQqAW2lcihJaFQ=="
#define ED25519_SPKI "MCowBQYDK2VwAyEAJqTi/mflvBIFUS38Z9ojvmrMV9YRl7kJekBSAiryFbg="
#define X25519_SPKI  "MCowBQYDK2VuAyEACwYRBqcWr0ANW5AUwtzWYUjMNPFiR5imy9iG2aK/viw="
#define CRED_ID                                                                                    \
	"AQHwaFvTKq7dDFnGPQAJCRdb6LzqzTXRCwDpvX+tGfJbcFHrzj2W6fnmBZjguMDDrcC0eJtlo+MISX3QBvs="

static void test_escape(void)
{
	char *f = NULL;

	CHECK(directory_filter_escape("*)(uid=*", &f) == 0);
	CHECK(streq(f, "\\2a\\29\\28uid=\\2a"));
	free(f);
	CHECK(directory_filter_escape("a\\b\x01\xc3\xa9", &f) == 0);
	CHECK(streq(f, "a\\5cb\\01\\c3\\a9"));
	free(f);
	CHECK(directory_user_filter("(&(objectClass=posixAccount)(uid=%u))", "*)(uid=*", &f) == 0);
	CHECK(streq(f, "(&(objectClass=posixAccount)(uid=\\2a\\29\\28uid=\\2a))"));
	free(f);
	CHECK(directory_user_filter("(|(uid=%u)(mail=%u@x))(x=100%%)", "al", &f) == 0);
	CHECK(streq(f, "(|(uid=al)(mail=al@x))(x=100%)"));
	free(f);
}

static void test_passkey(void)
{
	Credential c = {};
	const char *why = NULL;
	char *v = NULL, big[6000];

	CHECK(directory_passkey_parse(
	              "passkey:" CRED_ID "," P256_SPKI, "pam://k", "d1", &c, &why) == 0);
	CHECK(c.cose_alg == COSE_ES256 && streq(c.id, CRED_ID) && c.up && !c.uv && !c.user_id);
	CHECK(c.attestation == CRED_ATTESTATION_IMPORTED && streq(c.rp_id, "pam://k"));
	/* and back: the same value */
	CHECK(directory_passkey_format(&c, &v) == 0);
	CHECK(v && streq(v, "passkey:" CRED_ID "," P256_SPKI));
	free(v);
	credential_done(&c);

	CHECK(directory_passkey_parse("passkey:*," ED25519_SPKI ",dXNlcg==", "r", "d2", &c, &why) ==
	        0);
	CHECK(c.cose_alg == COSE_EDDSA && c.resident && streq(c.user_id, "dXNlcg=="));
	credential_done(&c);

#define BAD(value, word)                                                                           \
	do {                                                                                       \
		why = NULL;                                                                        \
		CHECK(directory_passkey_parse(value, "r", "x", &c, &why) == -EINVAL);              \
		CHECK(why &&strstr(why, word));                                                    \
	} while (0)
	BAD("passkey:" CRED_ID "," X25519_SPKI, "wrong key type");
	BAD("passkey:!!," P256_SPKI, "not base64");
	BAD("passkey:" CRED_ID "," P256_SPKI "x", "not base64");
	BAD("passkey:" CRED_ID ",AAAA", "SubjectPublicKeyInfo");
	BAD("passkey:" CRED_ID, "expected passkey:");
	BAD("passkey:a,b,c,d", "expected passkey:");
	BAD("ssh-ed25519 AAAA", "does not start");
	BAD("passkey: " CRED_ID "," P256_SPKI, "not base64");
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	memcpy(big, "passkey:", 8);
	BAD(big, "too long");
#undef BAD
}

static void test_user_parse(void)
{
	DirectoryUser u = {.user = (char *)"alice"};
	DirectoryCounter k = {};
	char *vals[] = {(char *)"passkey:!!,x", (char *)("passkey:" CRED_ID "," P256_SPKI),
	        (char *)("passkey:" CRED_ID "," P256_SPKI), NULL};
	char *kw[] = {(char *)(CRED_ID " label=work uv=1"),
	        (char *)(CRED_ID " label=work alg=es256 flags=up,uv "
	                         "aaguid=6b657977-6172-6420-7465-737430303031"),
	        (char *)"Zm9v label=nobody", NULL};

	u.values = vals;
	u.keyward_values = kw;
	CHECK(directory_user_parse(&u, "pam://k") == 0);
	CHECK(u.set && u.set->n == 1);       /* the good one; the duplicate refused */
	CHECK(strv_length(u.problems) == 4); /* bad, duplicate, bad key, no such id */
	CHECK(streq(u.set->items[0].label, "work") && u.set->items[0].uv &&
	        u.set->items[0].has_aaguid);
	for (char **p = u.problems; p && *p; p++)
		printf("problem: %s\n", *p);

	CHECK(directory_counter_parse(CRED_ID " 42", &k) == 0 && k.value == 42);
	free(k.id);
	free(k.raw);
	CHECK(directory_counter_parse(CRED_ID " 4294967296", &k) == -EINVAL);
	CHECK(directory_counter_parse(CRED_ID " -1", &k) == -EINVAL);
	CHECK(directory_counter_parse("nospace", &k) == -EINVAL);

	/* merge: directory only, both (the local copy of a shared id wins) */
	{
		CredentialSet *local = NULL;
		Credential c = u.set->items[0];

		CHECK(credential_set_new("alice", &local) == 0);
		c.label = (char *)"work"; /* same label as the directory's, other id */
		c.id = (char *)"Zm9vYmFy";
		CHECK(creds_add(local, &c, 0) == 0);
		CHECK(directory_merge(&local, u.set, POLICY_CRED_SOURCE_BOTH) == 0);
		CHECK(local->n == 2 && creds_find_id(local, CRED_ID) &&
		        !streq(creds_find_id(local, CRED_ID)->label, "work"));
		CHECK(directory_merge(&local, u.set, POLICY_CRED_SOURCE_DIRECTORY) == 0);
		CHECK(local->n == 1);
		CHECK(directory_merge(&local, NULL, POLICY_CRED_SOURCE_LOCAL) == 0 &&
		        local->n == 1);
		credential_set_free(local);
	}
	credential_set_free(u.set);
	strv_free(u.problems);
}

static void test_policy(void)
{
	static const char *const head = "settings = { directory = { ";
	static const char *const tail =
	        " }; }; rules = ({ name = \"a\"; match = { users = \"alice\"; };"
	        " require = \"key\"; credentials = \"directory\"; });"
	        " default = { require = \"none\"; };";
	struct {
		const char *group;
		bool ok;
	} cases[] = {
	        {"uri = \"ldaps://ldap.example.com\"; base_dn = \"dc=example,dc=com\";", true},
	        {"uri = [\"ldap://a\", \"ldapi:///\"]; base_dn = \"dc=x\"; bind = \"simple\"; "
	         "bind_dn = "
	         "\"cn=k,dc=x\"; secret_file = \"/etc/keyward/ldap.secret\"; timeout = 500; "
	         "refresh = 60;"
	         " cache_max_age = 3600; writable = true; attribute = \"ipaPassKey\";",
	                true},
	        {"uri = \"http://x\"; base_dn = \"dc=x\";", false},
	        {"base_dn = \"dc=x\";", false},
	        {"uri = \"ldaps://x\";", false},
	        {"uri = \"ldaps://x\"; base_dn = \"dc=x\"; bind = \"simple\";", false},
	        {"uri = \"ldaps://x\"; base_dn = \"dc=x\"; bind = \"sasl-external\";", false},
	        {"uri = \"ldaps://x\"; base_dn = \"dc=x\"; timeout = 60000;", false},
	        {"uri = \"ldaps://x\"; base_dn = \"dc=x\"; user_filter = \"(uid=%s)\";", false},
	        {"uri = \"ldaps://x\"; base_dn = \"dc=x\"; user_filter = \"uid=%u\";", false},
	        {"uri = \"ldaps://x\"; base_dn = \"dc=x\"; attribute = \"a b\";", false},
	        {"uri = \"ldaps://x\"; base_dn = \"dc=x\"; secret_file = \"/x\";", false},
	        {"uri = \"ldaps://x\"; base_dn = \"dc=x\"; colour = 1;", false},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		char text[1024];
		PolicyDiagnostics d = {};
		Policy *p = NULL;
		int r;

		snprintf(text, sizeof(text), "%s%s%s", head, cases[i].group, tail);
		r = policy_load_string(text, "t.conf", &d, &p);
		if ((r >= 0) != cases[i].ok) {
			fprintf(stderr, "policy case %zu: r=%d\n", i, r);
			for (size_t k = 0; k < d.n; k++)
				fprintf(stderr, "  %s\n", d.items[k].message);
		}
		CHECK((r >= 0) == cases[i].ok);
		if (p && i == 0) {
			const PolicyDirectory *g = &policy_settings(p)->directory;
			CHECK(g->timeout_ms == 3000 && g->refresh_s == 300 &&
			        g->cache_max_age_s == 86400);
			CHECK(streq(g->attribute, "passkey") &&
			        streq(g->user_filter, "(&(objectClass=posixAccount)(uid=%u))"));
		}
		policy_free(p);
		policy_diagnostics_clear(&d);
	}
	/* credentials = "directory" without the group */
	{
		PolicyDiagnostics d = {};
		Policy *p = NULL;
		CHECK(policy_load_string(
		              "rules = ({ name = \"a\"; match = { users = \"x\"; }; require = "
		              "\"key\"; credentials = \"both\"; }); default = { require = "
		              "\"none\"; };",
		              "t.conf", &d, &p) < 0);
		policy_diagnostics_clear(&d);
	}
}

int main(void)
{
	test_escape();
	test_passkey();
	test_user_parse();
	test_policy();
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	else
		printf("test-directory: all checks passed\n");
	return failures ? 1 : 0;
}
