/* test-breakglass.c: the break-glass store (lib/breakglass.c) — code format and alphabet,
 * normalisation, the strict parser and its caps, atomic durable replacement, burning,
 * expiry, and verification doing the same Argon2id work whatever the input (counted, not
 * timed). Run as root (file ownership). Small Argon2 limits keep it fast. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "breakglass.h"
#include "check.h"
#include "util.h"

#define OPS 1
#define MEM 8192

static char tmpdir[] = "/tmp/keyward-test-breakglass-XXXXXX";

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	return remove(path);
}

static void test_generate_format(void)
{
	_cleanup_(breakglass_set_freep) BreakglassSet *s = NULL, *t = NULL;
	_cleanup_free_ char *text = NULL, *text2 = NULL;
	char **codes = NULL;
	char canon[BREAKGLASS_CODE_CHARS + 1];
	uint64_t before = breakglass_argon2_calls();

	CHECK(breakglass_generate("alice", 10, 1000, 600, OPS, MEM, &s, &codes) == 0);
	CHECK(breakglass_argon2_calls() - before == 10);
	CHECK(s->n == 10);
	for (size_t i = 0; i < 10; i++) {
		const char *c = codes[i];

		CHECK(strlen(c) == 23);
		CHECK(c[5] == '-' && c[11] == '-' && c[17] == '-');
		for (const char *p = c; *p; p++)
			CHECK(*p == '-' || strchr(BREAKGLASS_ALPHABET, *p));
		for (const char *p = c; *p; p++)
			CHECK(!strchr("01OIL", *p));
		CHECK(breakglass_normalize(c, canon) == 0);
		CHECK(strneq(s->codes[i].hash, "$argon2id$v=19$m=8,t=1,p=1$", 27));
		CHECK(s->codes[i].issued_s == 1000 && s->codes[i].expires_s == 1600);
		CHECK(s->codes[i].state == BREAKGLASS_STATE_UNUSED);
		/* the code never appears in the stored text */
		for (size_t j = 0; j < 10; j++)
			CHECK(!strstr(s->codes[j].hash, canon));
		for (size_t j = 0; j < i; j++)
			CHECK(!streq(codes[i], codes[j]));
	}
	CHECK(codes[10] == NULL);
	CHECK(breakglass_format(s, &text) == 0);
	CHECK(strneq(text, "keyward-breakglass 1 alice\n", 27));
	for (size_t i = 0; i < 10; i++) {
		CHECK(breakglass_normalize(codes[i], canon) == 0);
		CHECK(!strstr(text, canon));
		CHECK(!strstr(text, codes[i]));
	}
	CHECK(breakglass_parse(text, strlen(text), "alice", &t, NULL, NULL) == 0);
	CHECK(breakglass_format(t, &text2) == 0);
	CHECK(streq(text, text2));
	/* another user's file is refused */
	CHECK(breakglass_parse(text, strlen(text), "bob", &t, NULL, NULL) == -EBADMSG);
	breakglass_codes_free(codes);

	CHECK(breakglass_generate("alice", 0, 1000, 600, OPS, MEM, &s, &codes) == -EINVAL);
	CHECK(breakglass_generate("alice", 65, 1000, 600, OPS, MEM, &s, &codes) == -EINVAL);
	CHECK(breakglass_generate("alice", 1, 1000, 600, 0, MEM, &s, &codes) == -EINVAL);
	CHECK(breakglass_generate("alice", 1, 1000, 600, OPS, 4096, &s, &codes) == -EINVAL);
	CHECK(breakglass_generate("../x", 1, 1000, 600, OPS, MEM, &s, &codes) == -EINVAL);
}

static void test_normalize(void)
{
	char out[BREAKGLASS_CODE_CHARS + 1];
	char longer[300];

	CHECK(breakglass_normalize("ABCDE-FGHJK-MNPQR-STUVW", out) == 0);
	CHECK(streq(out, "ABCDEFGHJKMNPQRSTUVW"));
	CHECK(breakglass_normalize("abcde fghjk mnpqr stuvw", out) == 0);
	CHECK(streq(out, "ABCDEFGHJKMNPQRSTUVW"));
	CHECK(breakglass_normalize("abcdefghjkmnpqrstuvw", out) == 0);
	CHECK(breakglass_normalize(" A-b-C-d-E-f-G-h-J-k-M-n-P-q-R-s-T-u-V-w ", out) == 0);
	/* wrong length, characters outside the alphabet, overlong, empty */
	CHECK(breakglass_normalize("ABCDE-FGHJK-MNPQR-STUV", out) == -EINVAL);
	CHECK(breakglass_normalize("ABCDE-FGHJK-MNPQR-STUVWX", out) == -EINVAL);
	CHECK(breakglass_normalize("0BCDE-FGHJK-MNPQR-STUVW", out) == -EINVAL);
	CHECK(breakglass_normalize("OBCDE-FGHJK-MNPQR-STUVW", out) == -EINVAL);
	CHECK(breakglass_normalize("IBCDE-FGHJK-MNPQR-STUVW", out) == -EINVAL);
	CHECK(breakglass_normalize("LBCDE-FGHJK-MNPQR-STUVW", out) == -EINVAL);
	CHECK(breakglass_normalize("ABCDE_FGHJK-MNPQR-STUVW", out) == -EINVAL);
	CHECK(breakglass_normalize("ABCDE\tFGHJK-MNPQR-STUVW", out) == -EINVAL);
	CHECK(breakglass_normalize("", out) == -EINVAL);
	CHECK(breakglass_normalize(NULL, out) == -EINVAL);
	memset(longer, '-', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	memcpy(longer, "ABCDEFGHJKMNPQRSTUVW", 20);
	CHECK(breakglass_normalize(longer, out) == -EINVAL); /* > BREAKGLASS_INPUT_MAX */
}

#define H  "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"
#define L1 "3fa9c1-01 1000 1600 unused 0 " H "\n"

static void test_parse_errors(void)
{
	static const struct {
		const char *text;
		int r;
	} cases[] = {
	        {"", -EINVAL},
	        {"keyward-breakglass 1 alice", -EINVAL},   /* no final newline */
	        {"keyward-breakglass 2 alice\n", -EINVAL}, /* version */
	        {"keyward-breakglass 1 bob\n", -EBADMSG},
	        {"keyward-breakglass 1 alice\n3fa9c1-01 1000 1600 unused 0\n", -EINVAL},
	        {"keyward-breakglass 1 alice\n3fa9c1-01  1000 1600 unused 0 " H "\n", -EINVAL},
	        {"keyward-breakglass 1 alice\n3fa9c1-01 1000 1600 unused 0 " H " x\n", -EINVAL},
	        {"keyward-breakglass 1 alice\n3FA9C1-01 1000 1600 unused 0 " H "\n", -EINVAL},
	        {"keyward-breakglass 1 alice\n3fa9c1_01 1000 1600 unused 0 " H "\n", -EINVAL},
	        {"keyward-breakglass 1 alice\n3fa9c1-01 01000 1600 unused 0 " H "\n", -EINVAL},
	        {"keyward-breakglass 1 alice\n3fa9c1-01 -1 1600 unused 0 " H "\n", -EINVAL},
	        {"keyward-breakglass 1 alice\n3fa9c1-01 1000 1000 unused 0 " H "\n", -EINVAL},
	        {"keyward-breakglass 1 alice\n3fa9c1-01 1000 99999999999999999999 unused 0 " H "\n",
	                -EINVAL},
	        {"keyward-breakglass 1 alice\n3fa9c1-01 1000 1600 fresh 0 " H "\n", -EINVAL},
	        {"keyward-breakglass 1 alice\n3fa9c1-01 1000 1600 used 0 " H "\n", -EINVAL},
	        {"keyward-breakglass 1 alice\n3fa9c1-01 1000 1600 unused 5 " H "\n", -EINVAL},
	        {"keyward-breakglass 1 alice\n3fa9c1-01 1000 1600 unused 0 $argon2i$v=19$m=8\n",
	                -EINVAL},
	        {"keyward-breakglass 1 alice\n3fa9c1-01 1000 1600 unused 0 " H " \n", -EINVAL},
	        {"keyward-breakglass 1 alice\n" L1 L1, -EINVAL}, /* duplicate id */
	        {"keyward-breakglass 1 alice\n\n", -EINVAL},
	        {"keyward-breakglass 1 alice\n3fa9c1-01 1000 1600 unused 0 " H "\r\n", -EINVAL},
	};
	char big[BREAKGLASS_FILE_MAX + 2];
	_cleanup_free_ char *many = NULL;
	BreakglassSet *s = NULL;
	const char *why = NULL;
	unsigned line = 0;

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		int r = breakglass_parse(
		        cases[i].text, strlen(cases[i].text), "alice", &s, &why, &line);
		if (r != cases[i].r)
			fprintf(stderr, "case %zu: %d (%s)\n", i, r, strna(why));
		CHECK(r == cases[i].r);
		CHECK(why != NULL);
		CHECK(s == NULL);
	}
	CHECK(breakglass_parse("keyward-breakglass 1 alice\n" L1,
	              strlen("keyward-breakglass 1 alice\n" L1), "alice", &s, &why, &line) == 0);
	CHECK(s && s->n == 1 && streq(s->codes[0].id, "3fa9c1-01"));
	s = breakglass_set_free(s);
	/* a NUL byte inside */
	CHECK(breakglass_parse("keyward-breakglass 1 alice\n\0x\n", 30, "alice", &s, &why, &line) ==
	        -EINVAL);

	/* caps: size, line length, code count */
	memset(big, 'a', sizeof(big));
	big[sizeof(big) - 1] = '\n';
	CHECK(breakglass_parse(big, sizeof(big), "alice", &s, &why, &line) == -E2BIG);
	{
		char line_text[400];

		memset(line_text, 'x', sizeof(line_text));
		memcpy(line_text, "keyward-breakglass 1 alice\n", 27);
		line_text[sizeof(line_text) - 1] = '\n';
		CHECK(breakglass_parse(line_text, sizeof(line_text), "alice", &s, &why, &line) ==
		        -E2BIG);
	}
	{
		FILE *f;
		size_t size = 0;

		f = open_memstream(&many, &size);
		fprintf(f, "keyward-breakglass 1 alice\n");
		for (int i = 0; i < 65; i++)
			fprintf(f, "3fa9%02x-01 1000 1600 unused 0 " H "\n", i);
		fclose(f);
		CHECK(breakglass_parse(many, size, "alice", &s, &why, &line) == -E2BIG);
		CHECK(line == 66);
	}
}

static void test_verify(void)
{
	_cleanup_(breakglass_set_freep) BreakglassSet *s = NULL, *empty = NULL;
	char **codes = NULL;
	BreakglassVerdict v;
	size_t idx = 0;
	uint64_t c0;
	char lower[64];
	const char *inputs[] = {"", "x", "ABCDE-FGHJK-MNPQR-STUVW", "0000-bad", NULL};
	char overlong[4096];

	CHECK(breakglass_generate("alice", 5, 1000, 600, OPS, MEM, &s, &codes) == 0);

	/* The work is one Argon2id per stored code, whatever the input. */
	memset(overlong, 'A', sizeof(overlong) - 1);
	overlong[sizeof(overlong) - 1] = '\0';
	for (size_t i = 0; inputs[i]; i++) {
		c0 = breakglass_argon2_calls();
		CHECK(breakglass_verify(s, inputs[i], 1100, &v, &idx) == 0);
		CHECK(breakglass_argon2_calls() - c0 == 5);
		CHECK(v == (i == 2 ? BREAKGLASS_WRONG_CODE : BREAKGLASS_MALFORMED_CODE));
	}
	c0 = breakglass_argon2_calls();
	CHECK(breakglass_verify(s, overlong, 1100, &v, &idx) == 0);
	CHECK(v == BREAKGLASS_MALFORMED_CODE && breakglass_argon2_calls() - c0 == 5);
	c0 = breakglass_argon2_calls();
	CHECK(breakglass_verify(s, NULL, 1100, &v, &idx) == 0);
	CHECK(v == BREAKGLASS_MALFORMED_CODE && breakglass_argon2_calls() - c0 == 5);
	for (size_t i = 0; i < s->n; i++)
		CHECK(s->codes[i].state == BREAKGLASS_STATE_UNUSED);

	/* the right code, typed in lower case without dashes: burnt, the others untouched */
	{
		size_t k = 0;
		for (const char *p = codes[2]; *p; p++)
			if (*p != '-')
				lower[k++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
		lower[k] = '\0';
	}
	c0 = breakglass_argon2_calls();
	CHECK(breakglass_verify(s, lower, 1100, &v, &idx) == 0);
	CHECK(breakglass_argon2_calls() - c0 == 5);
	CHECK(v == BREAKGLASS_OK && idx == 2);
	CHECK(s->codes[2].state == BREAKGLASS_STATE_USED && s->codes[2].used_s == 1100);
	for (size_t i = 0; i < s->n; i++)
		if (i != 2)
			CHECK(s->codes[i].state == BREAKGLASS_STATE_UNUSED);
	CHECK(breakglass_usable(s, 1100) == 4);
	/* the same code again */
	c0 = breakglass_argon2_calls();
	CHECK(breakglass_verify(s, codes[2], 1200, &v, &idx) == 0);
	CHECK(v == BREAKGLASS_USED_CODE && idx == 2);
	CHECK(breakglass_argon2_calls() - c0 == 5);
	CHECK(s->codes[2].used_s == 1100);
	/* past expiry (1600): refused, nothing burnt */
	CHECK(breakglass_verify(s, codes[3], 1600, &v, &idx) == 0);
	CHECK(v == BREAKGLASS_EXPIRED_CODE && idx == 3);
	CHECK(s->codes[3].state == BREAKGLASS_STATE_UNUSED);
	CHECK(breakglass_usable(s, 1600) == 0);
	CHECK(breakglass_expire(s, 1599) == 0);
	CHECK(breakglass_expire(s, 1600) == 4);
	CHECK(breakglass_expire(s, 1700) == 0); /* noticed once */
	CHECK(s->codes[2].state == BREAKGLASS_STATE_USED);
	CHECK(breakglass_verify(s, codes[4], 1000, &v, &idx) == 0);
	CHECK(v == BREAKGLASS_EXPIRED_CODE);

	/* no codes: said so, no work */
	CHECK(breakglass_parse("keyward-breakglass 1 alice\n", 27, "alice", &empty, NULL, NULL) ==
	        0);
	c0 = breakglass_argon2_calls();
	CHECK(breakglass_verify(empty, codes[0], 1100, &v, &idx) == 0);
	CHECK(v == BREAKGLASS_NO_CODES && breakglass_argon2_calls() == c0);
	CHECK(streq(breakglass_verdict_to_string(BREAKGLASS_WRONG_CODE), "wrong-code"));
	CHECK(streq(breakglass_verdict_to_string(BREAKGLASS_MALFORMED_CODE), "malformed-code"));
	breakglass_codes_free(codes);
}

static void test_files(void)
{
	_cleanup_(breakglass_set_freep) BreakglassSet *s = NULL, *t = NULL, *u = NULL;
	_cleanup_free_ char *path = NULL, *dir = NULL;
	char **codes = NULL;
	BreakglassVerdict v;
	struct stat st;
	DIR *d;
	struct dirent *de;
	int files = 0;

	CHECK(asprintf(&dir, "%s/breakglass", tmpdir) > 0);
	CHECK(breakglass_path(tmpdir, "alice", &path) == 0);
	CHECK(breakglass_path(tmpdir, "..", &path) == -EINVAL);
	CHECK(breakglass_path(tmpdir, "a/b", &path) == -EINVAL);
	/* nothing yet: an empty set */
	CHECK(breakglass_load(tmpdir, "alice", &t) == 0 && t->n == 0);
	t = breakglass_set_free(t);

	CHECK(breakglass_generate("alice", 3, 1000, 600, OPS, MEM, &s, &codes) == 0);
	CHECK(breakglass_save(tmpdir, s) == 0);
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 07777) == 0700 && st.st_uid == 0);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600 && st.st_uid == 0);
	CHECK(breakglass_load(tmpdir, "alice", &t) == 0 && t->n == 3);

	/* burn, save, load: the burn survives */
	CHECK(breakglass_verify(t, codes[0], 1100, &v, NULL) == 0 && v == BREAKGLASS_OK);
	CHECK(breakglass_save(tmpdir, t) == 0);
	CHECK(breakglass_load(tmpdir, "alice", &u) == 0);
	CHECK(u->codes[0].state == BREAKGLASS_STATE_USED && u->codes[0].used_s == 1100);
	CHECK(u->codes[1].state == BREAKGLASS_STATE_UNUSED);
	u = breakglass_set_free(u);
	/* atomic replacement: no temp file is left beside it */
	d = opendir(dir);
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.') {
			files++;
			CHECK(streq(de->d_name, "alice"));
		}
	if (d)
		closedir(d);
	CHECK(files == 1);

	/* unsafe modes fail closed */
	CHECK(chmod(path, 0640) == 0);
	CHECK(breakglass_load(tmpdir, "alice", &u) == -EACCES);
	CHECK(chmod(path, 0600) == 0);
	CHECK(chmod(dir, 0755) == 0);
	CHECK(breakglass_load(tmpdir, "alice", &u) == -EACCES);
	CHECK(breakglass_save(tmpdir, s) == -EACCES);
	CHECK(chmod(dir, 0700) == 0);
	/* a symlink in place of the file */
	CHECK(rename(path, "/tmp/keyward-bg-moved") == 0 || true);
	CHECK(symlink("/tmp/keyward-bg-moved", path) == 0);
	CHECK(breakglass_load(tmpdir, "alice", &u) == -ELOOP);
	CHECK(unlink(path) == 0);
	(void)unlink("/tmp/keyward-bg-moved");
	/* a corrupt file is an error, never "no codes" */
	{
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		CHECK(fd >= 0 && write(fd, "garbage\n", 8) == 8);
		close(fd);
		CHECK(breakglass_load(tmpdir, "alice", &u) == -EINVAL);
	}
	/* an empty set removes the file */
	t->n = 0;
	CHECK(breakglass_save(tmpdir, t) == 0);
	CHECK(access(path, F_OK) < 0 && errno == ENOENT);
	breakglass_codes_free(codes);
}

static void test_approvals(void)
{
	BreakglassApproval a = {
	        .user = "alice", .approver = "carol", .issued_s = 10, .expires_s = 910};
	BreakglassApproval b = {};
	_cleanup_free_ char *text = NULL, *path = NULL;

	CHECK(breakglass_approval_load(tmpdir, "alice", &b) == -ENOENT);
	CHECK(breakglass_approval_save(tmpdir, &a) == 0);
	CHECK(breakglass_approval_load(tmpdir, "alice", &b) == 0);
	CHECK(streq(b.user, "alice") && streq(b.approver, "carol") && b.expires_s == 910);
	CHECK(breakglass_approval_load(tmpdir, "bob", &b) == -ENOENT);
	CHECK(breakglass_approval_format(&a, &text) == 0);
	CHECK(streq(text, "keyward-breakglass-approval 1 alice carol 10 910\n"));
	CHECK(breakglass_approval_parse(text, strlen(text), "bob", &b) == -EBADMSG);
	CHECK(breakglass_approval_parse("keyward-breakglass-approval 1 alice alice 10 910\n", 48,
	              "alice", &b) == -EINVAL); /* self-approval */
	CHECK(breakglass_approval_parse("keyward-breakglass-approval 1 alice carol 10 9\n", 46,
	              "alice", &b) == -EINVAL);
	CHECK(breakglass_approval_parse("keyward-breakglass-approval 1 alice carol 10 910\nx\n", 51,
	              "alice", &b) == -EINVAL);
	a.approver[0] = '\0';
	CHECK(breakglass_approval_save(tmpdir, &a) == -EINVAL);
	CHECK(breakglass_approval_remove(tmpdir, "alice") == 0);
	CHECK(breakglass_approval_remove(tmpdir, "alice") == 0);
	CHECK(breakglass_approval_load(tmpdir, "alice", &b) == -ENOENT);
	CHECK(breakglass_approval_path(tmpdir, "alice", &path) == 0);
	CHECK(strstr(path, "/breakglass/approvals/alice"));
}

static void test_last_use(void)
{
	_cleanup_free_ char *path = NULL;
	uint64_t t = 0;
	int fd;

	CHECK(breakglass_last_use_load(tmpdir, "alice", &t) == -ENOENT);
	CHECK(breakglass_last_use_save(tmpdir, "alice", 1234567) == 0);
	CHECK(breakglass_last_use_load(tmpdir, "alice", &t) == 0 && t == 1234567);
	CHECK(breakglass_last_use_load(tmpdir, "bob", &t) == -ENOENT);
	CHECK(breakglass_last_use_save(tmpdir, "../x", 1) == -EINVAL);
	/* a file naming another user, or garbage, is an error (fail closed), never "none" */
	CHECK(asprintf(&path, "%s/breakglass/last-use/alice", tmpdir) > 0);
	CHECK(unlink(path) == 0);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0 && write(fd, "keyward-breakglass-use 1 bob 5\n", 31) == 31);
	close(fd);
	CHECK(breakglass_last_use_load(tmpdir, "alice", &t) == -EINVAL);
	CHECK(unlink(path) == 0);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0 && write(fd, "keyward-breakglass-use 1 alice 05\n", 34) == 34);
	close(fd);
	CHECK(breakglass_last_use_load(tmpdir, "alice", &t) == -EINVAL);
}

int main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "test-breakglass must run as root (file ownership checks)\n");
		return 1;
	}
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_normalize();
	test_generate_format();
	test_parse_errors();
	test_verify();
	test_files();
	test_approvals();
	test_last_use();
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	printf("test-breakglass: all passed\n");
	return 0;
}
