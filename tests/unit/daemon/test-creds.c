/* test-creds.c: the credential store — parsing, formatting, refusing unsafe files with
 * exact messages, atomic replacement, listing, counters. Run as root (file ownership). */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fido/param.h>

#include "check.h"
#include "creds.h"
#include "util.h"

static char tmpdir[] = "/tmp/keyward-test-creds-XXXXXX";

#define PK64                                                                                       \
	"QMQcqZ5r4799hWDVgEnxoc9KlvCioNiyxLQgLaTthmorcdH70dvHIkQ7T8289qKXZ/X7+DXAdxbHph/V7gJ9nA=="
/* Key material of the wrong length for its algorithm, and of the right one. */
#define PK63 "QMQcqZ5r4799hWDVgEnxoc9KlvCioNiyxLQgLaTthmorcdH70dvHIkQ7T8289qKXZ/X7+DXAdxbHph/V7gJ9"
#define PK65                                                                                       \
	"BEDEHKmea+O/fYVg1YBJ8aHPSpbwoqDYssS0IC2k7YZqK3HR+9HbxyJEO0/NvPail2f1+/g1wHcWx6Yf1e4CfZw="
#define PK65_BAD                                                                                   \
	"BUDEHKmea+O/fYVg1YBJ8aHPSpbwoqDYssS0IC2k7YZqK3HR+9HbxyJEO0/NvPail2f1+/g1wHcWx6Yf1e4CfZw="
#define PK32 "QMQcqZ5r4799hWDVgEnxoc9KlvCioNiyxLQgLaTthmo="

static const char good[] = "# comment\n"
                           "\n"
                           "[credential]\n"
                           "label=yubi-1\n"
                           "id=AAECAwQFBgc=\n"
                           "rp_id=pam://keyward\n"
                           "alg=es256\n"
                           "public_key=" PK64 "\n"
                           "user_id=dXNlcg==\n"
                           "aaguid=cb69481e-8ff7-4039-93ec-0a2729a154a8\n"
                           "attestation=verified\n"
                           "resident=no\n"
                           "up=yes\n"
                           "uv=yes\n"
                           "created=2026-11-27T07:24:12.123Z\n"
                           "[credential]\n"
                           "  label = imported-1  \n"
                           "id=*\n"
                           "rp_id=pam://oldhost\n"
                           "alg=eddsa\n"
                           "public_key=" PK32 "\n"
                           "attestation=imported\n"
                           "resident=yes\n"
                           "up=no\n";

static void test_parse_good(void)
{
	_cleanup_credential_set_ CredentialSet *s = NULL;
	char *err = NULL;
	const Credential *c;

	CHECK_INT(creds_parse(good, "f.creds", "alice", &s, &err), 0);
	CHECK(!err);
	CHECK_INT(s->n, 2);
	c = &s->items[0];
	CHECK_STR(c->label, "yubi-1");
	CHECK_STR(c->id, "AAECAwQFBgc=");
	CHECK_STR(c->rp_id, "pam://keyward");
	CHECK_INT(c->cose_alg, COSE_ES256);
	CHECK_STR(c->user_id, "dXNlcg==");
	CHECK(c->has_aaguid);
	CHECK_INT(c->aaguid[0], 0xcb);
	CHECK_INT(c->aaguid[15], 0xa8);
	CHECK_INT(c->attestation, CRED_ATTESTATION_VERIFIED);
	CHECK(!c->resident && c->up && c->uv);
	CHECK_INT(c->created_ms, 1795764252123ULL);
	c = &s->items[1];
	CHECK_STR(c->label, "imported-1");
	CHECK_STR(c->id, "*");
	CHECK_INT(c->cose_alg, COSE_EDDSA);
	CHECK(c->resident && !c->up && !c->uv && !c->has_aaguid);
	CHECK(creds_find(s, "yubi-1") == &s->items[0]);
	CHECK(creds_find(s, "AAECAwQFBgc=") == &s->items[0]);
	CHECK(!creds_find_id(s, "*")); /* "*" is never an id to look up */
}

static void test_roundtrip(void)
{
	_cleanup_credential_set_ CredentialSet *s = NULL, *t = NULL;
	_cleanup_free_ char *text = NULL, *text2 = NULL;

	CHECK_INT(creds_parse(good, "f", "alice", &s, NULL), 0);
	CHECK_INT(creds_format(s, &text), 0);
	CHECK_INT(creds_parse(text, "g", "alice", &t, NULL), 0);
	CHECK_INT(creds_format(t, &text2), 0);
	CHECK_STR(text, text2);
	CHECK_INT(t->n, 2);
	CHECK_INT(memcmp(s->items[0].aaguid, t->items[0].aaguid, 16), 0);
}

static void expect_parse_error(const char *text, const char *message)
{
	_cleanup_credential_set_ CredentialSet *s = NULL;
	_cleanup_free_ char *err = NULL;

	CHECK(creds_parse(text, "u.creds", "alice", &s, &err) < 0);
	CHECK(!s);
	CHECK_STR(err, message);
}

static void test_parse_errors(void)
{
	expect_parse_error("label=x\n", "u.creds:1: key=value before the first '[credential]'");
	expect_parse_error("[credential]\ncolor=blue\n", "u.creds:2: 'color': unknown key");
	expect_parse_error("[credential]\nlabel=a\nalg=es512\n",
	        "u.creds:3: 'alg': unknown 'alg' (use es256, eddsa or rs256)");
	expect_parse_error("[credential]\nlabel=a\nrp_id=x\nalg=es256\npublic_key=" PK64 "\n",
	        "u.creds:1: credential: missing or invalid 'id' (base64 credential id)");
	expect_parse_error("[credential]\nid=!!\n",
	        "u.creds:1: credential: missing or invalid 'id' (base64 credential id)");
	expect_parse_error("[credential]\nid=AAEC\nlabel=a b\nrp_id=x\nalg=es256\npublic_key=" PK64
	                   "\n",
	        "u.creds:1: credential: missing or invalid 'label' (1-64 of A-Z a-z 0-9 . _ @ + "
	        "-)");
	expect_parse_error(
	        "[credential]\nresident=maybe\n", "u.creds:2: 'resident': expected yes or no");
	expect_parse_error("[credential]\naaguid=1234\n",
	        "u.creds:2: 'aaguid': invalid 'aaguid' (UUID like "
	        "01234567-89ab-cdef-0123-456789abcdef)");
	expect_parse_error("garbage\n", "u.creds:1: expected '[credential]' or key=value");
	expect_parse_error(
	        "[credential]\nid=AAEC\nlabel=a\nrp_id=x\nalg=es256\npublic_key=" PK64 "\n"
	        "[credential]\nid=AAED\nlabel=a\nrp_id=x\nalg=es256\npublic_key=" PK64 "\n",
	        "u.creds:7: credential: duplicate id or label 'a'");
	expect_parse_error("[credential]\nid=*\nlabel=a\nrp_id=x\nalg=es256\npublic_key=" PK64 "\n",
	        "u.creds:1: credential: 'id=*' needs 'resident=yes'");
	expect_parse_error("[credential]\nlabel=\x01\n", "u.creds:2: control character");
}

#define RS259                                                                                      \
	"xQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+"     \
	"P0BBQkNERU"                                                                               \
	"ZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+"            \
	"AgYKDhIWGh4iJiouMjY"                                                                      \
	"6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/"                       \
	"wMHCw8TFxsfIycrLzM3Oz9DR0tPU1d"                                                           \
	"bX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+GwEAAQ=="
#define RS259_ZERO                                                                                 \
	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" \
	"AAAAAA"                                                                                   \
	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" \
	"AAAAAA"                                                                                   \
	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" \
	"AAAAAA"                                                                                   \
	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEAAQ=="

static void expect_key_material(const char *alg, const char *pk, bool ok)
{
	_cleanup_credential_set_ CredentialSet *s = NULL;
	_cleanup_free_ char *text = NULL, *err = NULL, *msg = NULL;

	CHECK(asprintf(&text,
	              "# x\n[credential]\nid=AAEC\nlabel=a\nrp_id=x\nalg=%s\npublic_key=%s\n", alg,
	              pk) > 0);
	if (ok) {
		CHECK_INT(creds_parse(text, "k.creds", "alice", &s, &err), 0);
		CHECK_INT(s->n, 1);
		return;
	}
	CHECK_INT(creds_parse(text, "k.creds", "alice", &s, &err), -EINVAL);
	CHECK(!s);
	CHECK(asprintf(&msg, "k.creds:7: 'public_key' is not a valid %s public key (%s)", alg,
	              streq(alg, "es256") ? "64 bytes, the raw P-256 point x|y"
	              : streq(alg, "eddsa")
	                      ? "32 bytes, an Ed25519 point"
	                      : "259 bytes, a 2048-bit modulus and an odd exponent") > 0);
	CHECK_STR(err, msg);
}

/* A corrupt key must fail the load (file:line), never reach verification: a signature
 * that cannot verify counts towards lockout. */
static void test_key_material(void)
{
	expect_key_material("es256", PK64, true);
	expect_key_material("es256", PK65, true); /* 0x04 | x | y, as libfido2 accepts */
	expect_key_material("eddsa", PK32, true);
	expect_key_material("rs256", RS259, true);
	expect_key_material("es256", PK63, false);
	expect_key_material("es256", PK65_BAD, false);
	expect_key_material("es256", PK32, false);
	expect_key_material("eddsa", PK64, false);
	expect_key_material("eddsa", PK63, false);
	expect_key_material("rs256", PK64, false);
	expect_key_material("rs256", RS259_ZERO, false);
}

static char *path_in(const char *name)
{
	char *p;

	CHECK(asprintf(&p, "%s/%s", tmpdir, name) > 0);
	return p;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd;

	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	CHECK(fchmod(fd, mode) == 0);
	close(fd);
}

static void expect_load_error(
        const char *dir, const char *user, int expected_r, const char *message)
{
	_cleanup_credential_set_ CredentialSet *s = NULL;
	_cleanup_free_ char *err = NULL;

	CHECK_INT(creds_load_user(dir, user, &s, &err), expected_r);
	CHECK(!s);
	CHECK_STR(err, message);
}

static void test_load_files(void)
{
	_cleanup_free_ char *alice = path_in("alice.creds"), *bob = path_in("bob.creds"),
	                    *carol = path_in("carol.creds"), *target = path_in("target"),
	                    *msg = NULL;
	_cleanup_credential_set_ CredentialSet *s = NULL;
	size_t n = 99;

	/* no file: no credentials (ENOENT is the only "none") */
	CHECK_INT(creds_load_user(tmpdir, "nobody1", &s, NULL), 0);
	CHECK_INT(s->n, 0);
	s = credential_set_free(s);
	CHECK_INT(creds_count_user(tmpdir, "nobody1", &n), 0);
	CHECK_INT(n, 0);

	write_file(alice, good, 0600);
	CHECK_INT(creds_load_user(tmpdir, "alice", &s, NULL), 0);
	CHECK_INT(s->n, 2);
	s = credential_set_free(s);
	CHECK_INT(creds_count_user(tmpdir, "alice", &n), 0);
	CHECK_INT(n, 2);

	/* world-writable */
	CHECK(chmod(alice, 0602) == 0);
	CHECK(asprintf(&msg, "%s is world-writable; run: chmod o-w %s", alice, alice) > 0);
	expect_load_error(tmpdir, "alice", -EACCES, msg);
	free(msg);
	msg = NULL;
	CHECK(creds_count_user(tmpdir, "alice", &n) == -EACCES);

	/* group-writable */
	CHECK(chmod(alice, 0620) == 0);
	CHECK(asprintf(&msg, "%s is group-writable; run: chmod g-w %s", alice, alice) > 0);
	expect_load_error(tmpdir, "alice", -EACCES, msg);
	free(msg);
	msg = NULL;

	/* not root-owned */
	CHECK(chmod(alice, 0600) == 0);
	CHECK(chown(alice, 1000, 1000) == 0);
	CHECK(asprintf(&msg, "%s is not owned by root; run: chown root:root %s", alice, alice) > 0);
	expect_load_error(tmpdir, "alice", -EPERM, msg);
	free(msg);
	msg = NULL;
	CHECK(chown(alice, 0, 0) == 0);

	/* symlink (to a perfectly good file) */
	write_file(target, good, 0600);
	(void)unlink(bob);
	CHECK(symlink(target, bob) == 0);
	CHECK(asprintf(&msg, "%s is a symbolic link; replace it with a regular file", bob) > 0);
	expect_load_error(tmpdir, "bob", -ELOOP, msg);
	free(msg);
	msg = NULL;

	/* not a regular file */
	(void)unlink(carol);
	CHECK(mkdir(carol, 0700) == 0);
	CHECK(asprintf(&msg, "%s is not a regular file", carol) > 0);
	expect_load_error(tmpdir, "carol", -EBADFD, msg);
	free(msg);
	msg = NULL;
	CHECK(rmdir(carol) == 0);

	/* corrupt: parse errors name file and line */
	write_file(carol, "[credential]\nlabel=x\nbogus\n", 0600);
	CHECK(asprintf(&msg, "%s:3: expected '[credential]' or key=value", carol) > 0);
	expect_load_error(tmpdir, "carol", -EINVAL, msg);
	free(msg);
	msg = NULL;
	CHECK(unlink(carol) == 0);

	/* an unsafe directory refuses everything in it */
	CHECK(chmod(tmpdir, 0777) == 0);
	CHECK(asprintf(&msg, "%s is group- or world-writable; run: chmod go-w %s", tmpdir, tmpdir) >
	        0);
	expect_load_error(tmpdir, "alice", -EACCES, msg);
	free(msg);
	msg = NULL;
	CHECK(chmod(tmpdir, 0700) == 0);

	/* invalid user names never become paths */
	CHECK(creds_load_user(tmpdir, "../etc/passwd", &s, NULL) == -EINVAL);
	CHECK(unlink(bob) == 0);
	CHECK(unlink(target) == 0);
}

static void test_save_atomic(void)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_credential_set_ CredentialSet *s = NULL, *t = NULL;
	_cleanup_strv_free_ char **users = NULL;
	Credential c = {
	        .id = (char *)"AAECAwQF",
	        .label = (char *)"k1",
	        .rp_id = (char *)"pam://keyward",
	        .cose_alg = COSE_ES256,
	        .public_key = (char *)PK64,
	        .up = true,
	};
	struct stat st1, st2;
	size_t files = 0;
	DIR *d;
	struct dirent *de;

	CHECK_INT(creds_path(tmpdir, "dave", &path), 0);
	CHECK_INT(credential_set_new("dave", &s), 0);
	CHECK_INT(creds_add(s, &c, 0), 0);
	CHECK_INT(creds_add(s, &c, 0), -EEXIST);
	CHECK_INT(creds_save_user(tmpdir, s), 0);
	CHECK(stat(path, &st1) == 0);
	CHECK_INT(st1.st_mode & 07777, 0600);

	c.id = (char *)"AAECAwQG";
	c.label = (char *)"k2";
	CHECK_INT(creds_add(s, &c, 2), 0);
	c.id = (char *)"AAECAwQH";
	c.label = (char *)"k3";
	CHECK_INT(creds_add(s, &c, 2), -E2BIG);
	CHECK_INT(creds_save_user(tmpdir, s), 0);
	CHECK(stat(path, &st2) == 0);
	/* replaced by rename(): a new inode, never an in-place rewrite */
	CHECK(st1.st_ino != st2.st_ino);
	CHECK_INT(creds_load_user(tmpdir, "dave", &t, NULL), 0);
	CHECK_INT(t->n, 2);
	CHECK_STR(t->items[1].label, "k2");
	CHECK(t->items[0].created_ms == 0);
	/* no temporary files left behind */
	d = opendir(tmpdir);
	CHECK(d);
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".tmp-"))
			files++;
	closedir(d);
	CHECK_INT(files, 0);

	CHECK_INT(creds_list_users(tmpdir, &users), 0);
	CHECK_INT(strv_length(users), 2);
	CHECK_STR(users[0], "alice");
	CHECK_STR(users[1], "dave");

	CHECK_INT(creds_remove(s, "k1"), 0);
	CHECK_INT(creds_remove(s, "AAECAwQG"), 0);
	CHECK_INT(creds_remove(s, "k1"), -ENOENT);
	CHECK_INT(creds_save_user(tmpdir, s), 0); /* empty: file removed */
	CHECK(access(path, F_OK) < 0 && errno == ENOENT);
}

static void test_counters(void)
{
	uint32_t v = 7;
	bool found = true;

	CHECK_INT(creds_counter_load(tmpdir, "erin", "AAEC", &v, &found), 0);
	CHECK(!found && v == 0);
	CHECK_INT(creds_counter_store(tmpdir, "erin", "AAEC", 5), 0);
	CHECK_INT(creds_counter_store(tmpdir, "erin", "AAED", 9), 0);
	CHECK_INT(creds_counter_store(tmpdir, "erin", "AAEC", 6), 0);
	CHECK_INT(creds_counter_load(tmpdir, "erin", "AAEC", &v, &found), 0);
	CHECK(found && v == 6);
	CHECK_INT(creds_counter_load(tmpdir, "erin", "AAED", &v, &found), 0);
	CHECK(found && v == 9);
	/* a prefix of an id is not the id */
	CHECK_INT(creds_counter_load(tmpdir, "erin", "AAE", &v, &found), 0);
	CHECK(!found);
}

static void test_fields(void)
{
	CHECK(creds_label_valid("a.b_c@d+e-1"));
	CHECK(!creds_label_valid(""));
	CHECK(!creds_label_valid("a/b"));
	CHECK(!creds_label_valid("a b"));
	CHECK(creds_id_valid("*"));
	CHECK(creds_id_valid("AAEC"));
	CHECK(creds_id_valid("AAEC-_8="));
	CHECK(!creds_id_valid("A"));
	CHECK(!creds_id_valid(""));
	CHECK_STR(cred_attestation_to_string(CRED_ATTESTATION_SELF), "self");
	CHECK_INT(cred_attestation_from_string("verified"), CRED_ATTESTATION_VERIFIED);
	CHECK(cred_attestation_from_string("bogus") < 0);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

int main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr,
		        "test-creds must run as root (it checks root ownership of files)\n");
		return EXIT_FAILURE;
	}
	CHECK(mkdtemp(tmpdir));
	CHECK(chmod(tmpdir, 0700) == 0);
	test_parse_good();
	test_roundtrip();
	test_parse_errors();
	test_key_material();
	test_fields();
	test_load_files();
	test_save_atomic();
	test_counters();
	CHECK(nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
	printf("test-creds: all passed\n");
	return EXIT_SUCCESS;
}
