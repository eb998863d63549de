/* test-audit-pipeline.c: verifying a trail with two threads (the reading thread hashes
 * each line, the calling thread parses and checks) decides exactly what one thread does:
 * the same verdict, place and message for an intact trail, a record edited in the first
 * chunk, in the last chunk and at a chunk boundary, a line deleted there, a file cut
 * mid-line there, an overlong line there, and across rotated files. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit-scan.h"
#include "audit.h"
#include "daemon/check.h"
#include "util.h"

#include "audit-test.h"

/* The shipped tuning (audit-verify.c): two threads from 4 MiB, chunks of 2 MiB. */
#define MIN_BYTES   (UINT64_C(4) << 20)
#define CHUNK_BYTES ((size_t)2 << 20)

static uint8_t key[AUDIT_SEAL_KEY_SIZE];

static void write_trail(const char *log, unsigned n, uint64_t rotate)
{
	_cleanup_free_ char *keyfile = path_in("k.key");
	AuditOptions o = {
	        .path = log,
	        .seal_key_path = keyfile,
	        .seal_every = 64,
	        .rotate_bytes = rotate,
	};
	AuditLog *l = NULL;
	int fd;

	if (access(keyfile, F_OK) < 0) {
		for (size_t i = 0; i < sizeof(key); i++)
			key[i] = (uint8_t)(rand() & 0xff);
		fd = open(keyfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		CHECK(fd >= 0 && write(fd, key, sizeof(key)) == (ssize_t)sizeof(key));
		if (fd >= 0)
			close(fd);
	}
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	for (unsigned i = 0; l && i < n; i++) {
		AuditRecord rec = AUDIT_RECORD_INIT;
		rec.event = AUDIT_EVENT_AUTH;
		rec.result = i % 3 ? AUDIT_RESULT_SUCCESS : AUDIT_RESULT_FAILURE;
		rec.reason = i % 3 ? NULL : "no-touch";
		rec.user = "alice";
		rec.uid = 1000;
		rec.service = "sudo";
		rec.cred_label = "yubikey-5";
		rec.rule = "/etc/keyward/keyward.conf:12";
		rec.detail = "a detail long enough that a few thousand records make megabytes of "
		             "trail, with \"quotes\" and \t escapes";
		CHECK(audit_log_append(l, &rec) == 0);
	}
	audit_log_free(l);
}

static char *slurp(const char *path, size_t *ret_len)
{
	struct stat st;
	char *b;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0)
		abort();
	b = malloc((size_t)st.st_size + 1);
	if (!b || read(fd, b, (size_t)st.st_size) != st.st_size)
		abort();
	close(fd);
	*ret_len = (size_t)st.st_size;
	return b;
}

static void spit(const char *path, const char *a, size_t alen, const char *b, size_t blen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0 && write(fd, a, alen) == (ssize_t)alen &&
	        (blen == 0 || write(fd, b, blen) == (ssize_t)blen));
	if (fd >= 0)
		close(fd);
}

static int count_cb(const AuditEntry *e, const char *file, uint64_t line, void *userdata)
{
	(void)e, (void)file, (void)line;
	(*(uint64_t *)userdata)++;
	return 0;
}

typedef struct Outcome {
	int r;
	AuditVerifyResult res;
	uint64_t walked, bad;
} Outcome;

static void run(char **files, uint64_t min_bytes, size_t chunk_bytes, Outcome *o)
{
	AuditVerifyOptions opts = {.key = key, .strict = true};

	*o = (Outcome){};
	audit_verify_pipeline_tune(min_bytes, chunk_bytes);
	o->r = audit_verify_read_files(files, &opts, &o->res, count_cb, &o->walked, &o->bad);
}

static bool same(const Outcome *a, const Outcome *b)
{
	const AuditVerifyResult *x = &a->res, *y = &b->res;

	return a->r == b->r && a->walked == b->walked && a->bad == b->bad &&
	       x->status == y->status && streq(strempty(x->file), strempty(y->file)) &&
	       x->line == y->line && streq(strempty(x->message), strempty(y->message)) &&
	       x->records == y->records && x->seals == y->seals &&
	       x->seals_proven == y->seals_proven && x->seals_unproven == y->seals_unproven &&
	       x->last_seal_seq == y->last_seal_seq &&
	       streq(x->last_seal_hash, y->last_seal_hash) && x->files == y->files &&
	       x->first_seq == y->first_seq && x->last_seq == y->last_seq &&
	       x->unsealed_tail == y->unsealed_tail && x->torn_acknowledged == y->torn_acknowledged;
}

/* FILES verify the same with one thread, the shipped pipeline and tiny chunks; the
 * verdict is EXPECT. */
static void check_same(const char *what, char **files, AuditVerifyStatus expect)
{
	Outcome one, two, tiny;

	run(files, UINT64_MAX, CHUNK_BYTES, &one);
	run(files, MIN_BYTES, CHUNK_BYTES, &two);
	run(files, 0, 4096, &tiny);
	if (one.res.status != expect || !same(&one, &two) || !same(&one, &tiny)) {
		fprintf(stderr, "%s: expected %s\n", what, audit_verify_status_to_string(expect));
		for (const Outcome *o = &one; o; o = o == &one ? &two : o == &two ? &tiny : NULL)
			fprintf(stderr,
			        "  r=%d %s %s:%" PRIu64 ": %s (records %" PRIu64 ", walked %" PRIu64
			        ")\n",
			        o->r, audit_verify_status_to_string(o->res.status),
			        strna(o->res.file), o->res.line, strna(o->res.message),
			        o->res.records, o->walked);
		failures++;
	}
	audit_verify_result_clear(&one.res);
	audit_verify_result_clear(&two.res);
	audit_verify_result_clear(&tiny.res);
	audit_verify_pipeline_tune(MIN_BYTES, CHUNK_BYTES);
}

/* The start of the line holding offset OFF, and of the line after it. */
static size_t line_start(const char *b, size_t off)
{
	while (off > 0 && b[off - 1] != '\n')
		off--;
	return off;
}

static size_t next_line(const char *b, size_t len, size_t off)
{
	const char *nl = memchr(b + off, '\n', len - off);
	return nl ? (size_t)(nl - b) + 1 : len;
}

/* A copy of B with the record at line start AT edited (a digit of its time changed). */
static void edited(const char *path, const char *b, size_t len, size_t at)
{
	char *c = malloc(len);
	char *t;

	if (!c)
		abort();
	memcpy(c, b, len);
	t = strstr(c + at, "\"time\":\"");
	CHECK(t && (size_t)(t - c) < next_line(b, len, at));
	if (t)
		t[8 + 22] = t[8 + 22] == '9' ? '0' : (char)(t[8 + 22] + 1);
	spit(path, c, len, NULL, 0);
	free(c);
}

/* The file offset where the pipeline's first chunk ends (it counts line bytes without
 * their newlines, and closes a chunk after the line that reaches CHUNK_BYTES). */
static size_t first_chunk_end(const char *b, size_t len)
{
	size_t bytes = 0, off = 0;

	while (off < len && bytes < CHUNK_BYTES) {
		size_t next = next_line(b, len, off);
		bytes += next - off - 1;
		off = next;
	}
	return off;
}

static void test_one_file(void)
{
	_cleanup_free_ char *log = path_in("p.log"), *pristine = NULL, *big = NULL;
	char *files[] = {log, NULL};
	size_t len, boundary, last, before;

	write_trail(log, 20000, 0);
	pristine = slurp(log, &len);
	CHECK(len > MIN_BYTES + CHUNK_BYTES); /* three chunks at least */
	boundary = first_chunk_end(pristine, len);
	before = line_start(pristine, boundary - 1);
	last = line_start(pristine, len - 1);
	CHECK(boundary > CHUNK_BYTES && boundary < len);

	check_same("intact", files, AUDIT_VERIFY_INTACT);
	edited(log, pristine, len, line_start(pristine, 100000));
	check_same("edited in chunk 1", files, AUDIT_VERIFY_EDITED);
	edited(log, pristine, len, line_start(pristine, len - 3000));
	check_same("edited in the last chunk", files, AUDIT_VERIFY_EDITED);
	edited(log, pristine, len, before);
	check_same("edited: the last line of chunk 1", files, AUDIT_VERIFY_EDITED);
	edited(log, pristine, len, boundary);
	check_same("edited: the first line of chunk 2", files, AUDIT_VERIFY_EDITED);
	edited(log, pristine, len, last);
	check_same("edited: the last line (a seal)", files, AUDIT_VERIFY_FORGED_SEAL);
	spit(log, pristine, boundary, pristine + next_line(pristine, len, boundary),
	        len - next_line(pristine, len, boundary));
	check_same("deleted: the first line of chunk 2", files, AUDIT_VERIFY_DELETED);
	spit(log, pristine, boundary + 100, NULL, 0);
	check_same("cut mid-line after the chunk boundary", files, AUDIT_VERIFY_TRUNCATED);
	spit(log, pristine, boundary - 100, NULL, 0);
	check_same("cut mid-line before the chunk boundary", files, AUDIT_VERIFY_TRUNCATED);
	spit(log, pristine, boundary, NULL, 0);
	check_same("cut at the chunk boundary (not at a seal)", files, AUDIT_VERIFY_TRUNCATED);
	/* An overlong line across the boundary. */
	big = malloc(3 * AUDIT_LINE_MAX + 1);
	if (!big)
		abort();
	memset(big, 'x', 3 * AUDIT_LINE_MAX);
	big[3 * AUDIT_LINE_MAX] = '\n';
	{
		size_t at = line_start(pristine, boundary - 10);
		_cleanup_free_ char *c = malloc(len + 3 * AUDIT_LINE_MAX + 1);
		if (!c)
			abort();
		memcpy(c, pristine, at);
		memcpy(c + at, big, 3 * AUDIT_LINE_MAX + 1);
		memcpy(c + at + 3 * AUDIT_LINE_MAX + 1, pristine + at, len - at);
		spit(log, c, len + 3 * AUDIT_LINE_MAX + 1, NULL, 0);
		check_same("an overlong line at the boundary", files, AUDIT_VERIFY_MALFORMED);
		/* ... and one at the end, without its newline: garbage appended after the last
		 * seal is reported (it used to be dropped whole, the trail called intact). */
		spit(log, pristine, len, big, 3 * AUDIT_LINE_MAX);
		check_same("an overlong cut line at the end", files, AUDIT_VERIFY_MALFORMED);
	}
	unlink(log);
}

static void test_rotated(void)
{
	_cleanup_free_ char *log = path_in("r.log"), *pristine = NULL;
	_cleanup_strv_free_ char **files = NULL;
	size_t len, n;

	write_trail(log, 3000, 256 * 1024);
	CHECK(audit_trail_files(log, &files) == 0);
	n = strv_length(files);
	CHECK(n >= 4);
	check_same("rotated, intact", files, AUDIT_VERIFY_INTACT);
	if (n < 4)
		return;
	pristine = slurp(files[1], &len);
	edited(files[1], pristine, len, line_start(pristine, len / 2));
	check_same("rotated, edited in the middle of file 2", files, AUDIT_VERIFY_EDITED);
	spit(files[1], pristine, line_start(pristine, len - 1), NULL, 0);
	check_same("rotated, file 2 lost its closing seal", files, AUDIT_VERIFY_TRUNCATED);
	spit(files[1], pristine, len, NULL, 0);
	check_same("rotated, intact again", files, AUDIT_VERIFY_INTACT);
}

int main(void)
{
	if (!tmpdir_make())
		return 1;
	test_one_file();
	test_rotated();
	CHECK(tmpdir_remove() == 0);
	return checks_result("audit pipeline");
}
