/* test-audit.c: unit tests of the audit trail library — JSON escaping and strict
 * parsing, writing and verifying, reopen, torn tails, rotation, key checks, I/O errors,
 * and the journald / Linux audit copies of hostile values. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit-json.h"
#include "audit.h"
#include "util.h"

#include "audit-test.h"

static void test_escape(void)
{
	JsonBuf b = {};
	JsonField *f = NULL;
	size_t n = 0;
	const char *why = NULL;

	json_buf_put_string(&b,
	        "a\"b\\c\nd\te\x01\x7f"
	        "\xc3\xa9"
	        "\xff"
	        "z",
	        SIZE_MAX);
	CHECK(b.data && streq(b.data, "\"a\\\"b\\\\c\\nd\\te\\u0001\\u007f\xc3\xa9\\ufffdz\""));
	json_buf_reset(&b);
	/* A cut never splits a UTF-8 sequence into invalid output. */
	json_buf_put_string(&b, "ab\xc3\xa9", 3);
	CHECK(streq(b.data, "\"ab\\ufffd\""));
	json_buf_reset(&b);
	/* Overlong and surrogate encodings are invalid. */
	json_buf_put_string(&b, "\xc0\xaf\xed\xa0\x80", SIZE_MAX);
	CHECK(strstr(b.data, "\\ufffd") && !strchr(b.data, '\xc0'));
	json_buf_reset(&b);

	/* Round trip through the strict parser. */
	json_buf_puts(&b, "{\"k\":");
	json_buf_put_string(&b, "x\"y\\\n\x02\xe2\x82\xac", SIZE_MAX);
	json_buf_puts(&b, ",\"n\":42}");
	CHECK(json_parse_flat(b.data, b.len, &f, &n, &why) == 0);
	CHECK(n == 2 && streq(f[0].key, "k") && streq(f[0].str, "x\"y\\\n\x02\xe2\x82\xac"));
	CHECK(f[1].type == JSON_UINT && f[1].num == 42);
	json_fields_free(f, JSON_FIELDS_MAX);
	json_buf_free(&b);

	static const char *const bad[] = {
	        "",
	        "[]",
	        "{",
	        "{\"a\":1,}",
	        "{\"a\":1}x",
	        "{\"a\":1,\"a\":2}",
	        "{\"a\":{}}",
	        "{\"a\":-1}",
	        "{\"a\":1.5}",
	        "{\"a\":01}",
	        "{\"a\":true}",
	        "{\"a\":\"\\x\"}",
	        "{\"a\":\"\\ud800\"}",
	        "{\"a\":\"\x01\"}",
	        "{\"a\":\"\xff\"}",
	        "{\"a\":\"\\u0000\"}",
	        "{\"a\":99999999999999999999}",
	        "{a:1}",
	        "{\"a\" 1}",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		f = NULL;
		why = NULL;
		int r = json_parse_flat(bad[i], strlen(bad[i]), &f, &n, &why);
		if (r != -EBADMSG || !why)
			fprintf(stderr, "accepted bad JSON: %s\n", bad[i]);
		CHECK(r == -EBADMSG && why);
	}
	CHECK(json_parse_flat("{\"a\":\"\\ud83d\\ude00\"}", 20, &f, &n, &why) == 0);
	CHECK(streq(f[0].str, "\xf0\x9f\x98\x80"));
	json_fields_free(f, JSON_FIELDS_MAX);
}

static void test_tables(void)
{
	for (int i = 0; i < _AUDIT_EVENT_MAX; i++) {
		CHECK(audit_event_to_string(i) != NULL);
		CHECK(audit_event_from_string(audit_event_to_string(i)) == (AuditEvent)i);
	}
	for (int i = 0; i < _AUDIT_RESULT_MAX; i++)
		CHECK(audit_result_from_string(audit_result_to_string(i)) == (AuditResult)i);
	CHECK(audit_event_from_string("nope") == _AUDIT_EVENT_INVALID);
	CHECK(audit_event_to_string(_AUDIT_EVENT_MAX) == NULL);
	for (int i = 0; i < _AUDIT_VERIFY_STATUS_MAX; i++)
		CHECK(audit_verify_status_to_string(i) != NULL);
}

static int sink_calls[_AUDIT_SINK_MAX];
static void on_sink(AuditSink sink, int error, void *userdata)
{
	CHECK(error < 0);
	sink_calls[sink]++;
}

/* A legacy static key (32 raw bytes): the tests below that predate forward-secure
 * sealing run against it, so legacy trails keep being written and verified. */
static void legacy_key(const char *key)
{
	uint8_t k[AUDIT_SEAL_KEY_SIZE];
	int fd;

	if (access(key, F_OK) == 0)
		return;
	for (size_t i = 0; i < sizeof(k); i++)
		k[i] = (uint8_t)(rand() & 0xff);
	fd = open(key, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(fd >= 0 && write(fd, k, sizeof(k)) == (ssize_t)sizeof(k));
	if (fd >= 0)
		close(fd);
}

static AuditOptions opts_for(const char *log, const char *key, unsigned every, uint64_t rotate)
{
	legacy_key(key);
	return (AuditOptions){
	        .path = log,
	        .seal_key_path = key,
	        .seal_every = every,
	        .fsync_each = false,
	        .rotate_bytes = rotate,
	};
}

static int append_n(AuditLog *l, unsigned n, const char *user)
{
	for (unsigned i = 0; i < n; i++) {
		AuditRecord rec = AUDIT_RECORD_INIT;
		rec.event = AUDIT_EVENT_AUTH;
		rec.result = i % 3 ? AUDIT_RESULT_SUCCESS : AUDIT_RESULT_FAILURE;
		rec.reason = i % 3 ? NULL : "no-touch";
		rec.user = user;
		rec.uid = 1000;
		rec.service = "sudo";
		rec.cred_label = "yubikey-5";
		rec.rule = "/etc/keyward/keyward.conf:12";
		rec.detail = "weird \"chars\"\n\t\x01 and \xff";
		int r = audit_log_append(l, &rec);
		if (r < 0)
			return r;
	}
	return 0;
}

static AuditVerifyStatus verify_with(
        char **files, const AuditVerifyOptions *o, AuditVerifyResult *res)
{
	CHECK(audit_verify_files(files, o, res) == 0);
	if (res->status != AUDIT_VERIFY_INTACT)
		fprintf(stderr, "  verify: %s:%llu: %s: %s\n", res->file,
		        (unsigned long long)res->line, audit_verify_status_to_string(res->status),
		        res->message);
	return res->status;
}

static AuditVerifyStatus verify(char **files, const char *key, bool strict, AuditVerifyResult *res)
{
	uint8_t k[AUDIT_SEAL_KEY_SIZE];
	AuditVerifyOptions o = {.strict = strict};

	if (key) {
		CHECK(audit_seal_key_load(key, false, k, NULL) == 0);
		o.key = k;
	}
	return verify_with(files, &o, res);
}

/* A journal that is not there: the sink fails once, with -ENOENT, the trail is whole. */
static void test_sink_failure(void)
{
	_cleanup_free_ char *log = path_in("sink.log"), *key = path_in("sink.key");
	AuditOptions o = opts_for(log, key, 8, 0);
	AuditLog *l = NULL;
	AuditVerifyResult res = {};
	bool torn = true;
	char *files[] = {log, NULL};

	memset(sink_calls, 0, sizeof(sink_calls));
	o.to_syslog = true;
	o.journal_socket = "/nonexistent/keyward-test/journal/socket";
	o.on_sink_error = on_sink;
	CHECK(audit_log_open(&o, &l, &torn) == 0);
	CHECK(append_n(l, 10, "alice") == 0);
	CHECK(sink_calls[AUDIT_SINK_JOURNAL] == 1);
	CHECK(audit_log_sink_error(l, AUDIT_SINK_JOURNAL) == -ENOENT);
	CHECK(sink_calls[AUDIT_SINK_LINUX_AUDIT] == 0); /* not asked for */
	audit_log_free(l);
	CHECK(verify(files, key, true, &res) == AUDIT_VERIFY_INTACT);
	CHECK(res.records == 2 + 10 + 1 + 1);
	audit_verify_result_clear(&res);
	memset(sink_calls, 0, sizeof(sink_calls));
}

static void test_write_verify(void)
{
	_cleanup_free_ char *log = path_in("a.log"), *key = path_in("a.key");
	AuditOptions o = opts_for(log, key, 8, 0);
	AuditLog *l = NULL;
	AuditVerifyResult res = {};
	struct stat st;
	bool torn = true;
	char *files[] = {log, NULL};

	o.to_syslog = true;
	o.to_linux_audit = true;
	o.on_sink_error = on_sink;
	CHECK(audit_log_open(&o, &l, &torn) == 0);
	CHECK(!torn);
	CHECK(stat(key, &st) == 0 && (st.st_mode & 0777) == 0600 &&
	        st.st_size == AUDIT_SEAL_KEY_SIZE);
	CHECK(append_n(l, 50, "alice") == 0);
	/* The journal sink fails exactly when journald's socket is absent, reported once. */
	CHECK(sink_calls[AUDIT_SINK_JOURNAL] ==
	        (access("/run/systemd/journal/socket", F_OK) < 0 ? 1 : 0));
	CHECK(sink_calls[AUDIT_SINK_LINUX_AUDIT] <= 1);
	CHECK((sink_calls[AUDIT_SINK_JOURNAL] == 1) ==
	        (audit_log_sink_error(l, AUDIT_SINK_JOURNAL) < 0));
	CHECK(audit_log_seq(l) > 50);
	audit_log_free(l);

	CHECK(verify(files, key, true, &res) == AUDIT_VERIFY_INTACT);
	CHECK(res.first_file_seq == 1 && res.first_seq == 1);
	/* header + open seal + 50 records + 6 interval seals (every 8) + close seal, and
	 * one audit-sink record if the Linux audit copy could not be sent here */
	CHECK(res.records == 2 + 50 + 6 + 1 + (sink_calls[AUDIT_SINK_LINUX_AUDIT] ? 1 : 0));
	CHECK(res.seals == 1 + 6 + 1);
	CHECK(res.unsealed_tail == 0);
	audit_verify_result_clear(&res);

	/* Reopen: the chain continues, the open is sealed. */
	CHECK(audit_log_open(&o, &l, &torn) == 0);
	CHECK(!torn);
	CHECK(append_n(l, 3, "bob") == 0);
	uint64_t seq = audit_log_seq(l);
	audit_log_free(l);
	CHECK(verify(files, key, false, &res) == AUDIT_VERIFY_INTACT);
	CHECK(res.last_seq == seq + 1); /* close seal */
	audit_verify_result_clear(&res);

	/* Chain-only verification works without a key; a wrong key is named as such. */
	CHECK(verify(files, NULL, false, &res) == AUDIT_VERIFY_INTACT);
	audit_verify_result_clear(&res);
	{
		_cleanup_free_ char *other = path_in("other.key");
		_cleanup_free_ char *olog = path_in("other.log");
		AuditOptions o2 = opts_for(olog, other, 8, 0);
		CHECK(audit_log_open(&o2, &l, NULL) == 0);
		audit_log_free(l);
		CHECK(verify(files, other, false, &res) == AUDIT_VERIFY_WRONG_KEY);
		audit_verify_result_clear(&res);
	}

	/* Parsing reads back exactly what was written, escapes included. */
	{
		_cleanup_free_ char *text = NULL;
		size_t len;
		int fd = open(log, O_RDONLY | O_CLOEXEC);
		CHECK(fd >= 0 && read_full_fd(fd, 1 << 24, &text, &len) == 0);
		close(fd);
		char *l3 = text;
		for (int i = 0; i < 2; i++)
			l3 = strchr(l3, '\n') + 1;
		AuditEntry *e = NULL;
		CHECK(audit_entry_parse(l3, (size_t)(strchr(l3, '\n') - l3), &e, NULL) == 0);
		CHECK(e && e->seq == 3 && e->event == AUDIT_EVENT_AUTH && streq(e->user, "alice") &&
		        e->uid == 1000);
		CHECK(e && streq(e->detail, "weird \"chars\"\n\t\x01 and \xef\xbf\xbd"));
		CHECK(e && streq(e->reason, "no-touch") && e->result == AUDIT_RESULT_FAILURE);
		audit_entry_free(e);
	}
}

/* An outcome record names its action by action_seq; the reader gets it back. */
static void test_outcome_action_seq(void)
{
	_cleanup_free_ char *log = path_in("o.log"), *key = path_in("o.key");
	_cleanup_free_ char *text = NULL;
	AuditOptions o = opts_for(log, key, 8, 0);
	AuditRecord act = AUDIT_RECORD_INIT, out = AUDIT_RECORD_INIT;
	AuditLog *l = NULL;
	AuditEntry *e = NULL;
	uint64_t seq;
	size_t len;
	int fd;

	CHECK(audit_log_open(&o, &l, NULL) == 0);
	act.event = AUDIT_EVENT_ACTION;
	act.action = "lock";
	act.reason = "lock-requested";
	CHECK(audit_log_append(l, &act) == 0);
	seq = audit_log_seq(l);
	out.event = AUDIT_EVENT_OUTCOME;
	out.action = "lock";
	out.reason = "failed";
	out.action_seq = seq;
	CHECK(audit_log_append(l, &out) == 0);
	audit_log_free(l);
	fd = open(log, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 && read_full_fd(fd, 1 << 20, &text, &len) == 0);
	close(fd);
	char *line = strstr(text, "\"event\":\"outcome\"");
	CHECK(line);
	while (line > text && line[-1] != '\n')
		line--;
	CHECK(audit_entry_parse(line, (size_t)(strchr(line, '\n') - line), &e, NULL) == 0);
	CHECK(e && e->event == AUDIT_EVENT_OUTCOME && e->action_seq == seq && seq > 0);
	audit_entry_free(e);
	/* the action record itself carries none */
	line = strstr(text, "\"event\":\"action\"");
	CHECK(line && !memmem(line, (size_t)(strchr(line, '\n') - line), "action_seq", 10));
	CHECK(audit_event_from_string("outcome") == AUDIT_EVENT_OUTCOME);
}

static void append_bytes(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(fd >= 0 && write(fd, data, len) == (ssize_t)len);
	close(fd);
}

static void test_torn(void)
{
	_cleanup_free_ char *log = path_in("t.log"), *key = path_in("t.key");
	AuditOptions o = opts_for(log, key, 8, 0);
	AuditLog *l = NULL;
	AuditVerifyResult res = {};
	bool torn = false;
	char *files[] = {log, NULL};
	static const char partial[] =
	        "{\"seq\":99,\"time\":\"2026-11-27T07:00:00.000Z\",\"host\":\"h\",\"ev";

	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(append_n(l, 5, "alice") == 0);
	audit_log_free(l);
	/* A crash mid-write leaves part of a line. */
	append_bytes(log, partial, strlen(partial));
	CHECK(verify(files, key, false, &res) == AUDIT_VERIFY_TRUNCATED);
	audit_verify_result_clear(&res);

	CHECK(audit_log_open(&o, &l, &torn) == 0);
	CHECK(torn);
	CHECK(append_n(l, 4, "carol") == 0);
	audit_log_free(l);
	CHECK(verify(files, key, true, &res) == AUDIT_VERIFY_INTACT);
	CHECK(res.torn_acknowledged == 1);
	audit_verify_result_clear(&res);

	/* A complete but garbled last line (zeros after a crash) is a torn line too. */
	append_bytes(log, "\0\0\0\0\n", 5);
	CHECK(audit_log_open(&o, &l, &torn) == 0);
	CHECK(torn);
	audit_log_free(l);
	CHECK(verify(files, key, true, &res) == AUDIT_VERIFY_INTACT);
	CHECK(res.torn_acknowledged == 2);
	audit_verify_result_clear(&res);

	/* More than one damaged line is not a crash: refuse to open (fail closed). */
	append_bytes(log, "garbage\nmore garbage\n", 21);
	CHECK(audit_log_open(&o, &l, &torn) == -EBADMSG);
}

static void test_rotation(void)
{
	_cleanup_free_ char *log = path_in("r.log"), *key = path_in("r.key");
	AuditOptions o = opts_for(log, key, 16, 4096);
	AuditLog *l = NULL;
	AuditVerifyResult res = {};
	_cleanup_strv_free_ char **files = NULL;

	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(append_n(l, 100, "alice") == 0);
	audit_log_free(l);
	CHECK(audit_trail_files(log, &files) == 0);
	CHECK(strv_length(files) >= 4);
	CHECK(files && streq(files[strv_length(files) - 1], log));
	CHECK(verify(files, key, true, &res) == AUDIT_VERIFY_INTACT);
	CHECK(res.files == strv_length(files) && res.first_file_seq == 1);
	audit_verify_result_clear(&res);

	/* The last file alone verifies, anchored to a rotated file. */
	{
		char *last[] = {files[strv_length(files) - 1], NULL};
		CHECK(verify(last, key, false, &res) == AUDIT_VERIFY_INTACT);
		CHECK(res.first_file_seq == strv_length(files));
		audit_verify_result_clear(&res);
	}
	/* Interrupted rotation (renamed, new file never written): the reopen continues the
	 * chain from the newest rotated file instead of starting a new genesis. */
	CHECK(unlink(log) == 0);
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(append_n(l, 3, "bob") == 0);
	audit_log_free(l);
	{
		_cleanup_strv_free_ char **again = NULL;
		CHECK(audit_trail_files(log, &again) == 0);
		CHECK(strv_length(again) == strv_length(files));
		CHECK(verify(again, key, true, &res) == AUDIT_VERIFY_INTACT);
		CHECK(res.first_file_seq == 1 && res.files == strv_length(files));
		audit_verify_result_clear(&res);
	}
	/* ... and a lost key is not replaced while rotated files exist. */
	{
		_cleanup_free_ char *moved = path_in("r.key.moved"), *live = path_in("r.log.live");
		CHECK(rename(key, moved) == 0);
		CHECK(rename(log, live) == 0);
		CHECK(audit_log_open(&o, &l, NULL) == -ENOKEY);
		CHECK(rename(moved, key) == 0);
		CHECK(rename(live, log) == 0);
	}

	/* A missing middle file is a gap. */
	{
		_cleanup_strv_free_ char **gap = NULL;
		for (size_t i = 0; files[i]; i++)
			if (i != 1)
				CHECK(strv_extend(&gap, files[i]) == 0);
		CHECK(verify(gap, key, false, &res) == AUDIT_VERIFY_FILE_GAP);
		CHECK(res.line == 1);
		audit_verify_result_clear(&res);
	}
}

/* Counts records of one event (and reason, if given) across the trail's files. */
typedef struct EventCount {
	AuditEvent event;
	const char *reason;
	unsigned n;
	char last_detail[256];
} EventCount;

static int count_cb(const AuditEntry *e, const char *file, uint64_t line, void *userdata)
{
	EventCount *c = userdata;

	if (e->event == c->event && (!c->reason || (e->reason && streq(e->reason, c->reason)))) {
		c->n++;
		snprintf(c->last_detail, sizeof(c->last_detail), "%s", e->detail ? e->detail : "");
	}
	return 0;
}

static unsigned count_events(const char *log, AuditEvent event, const char *reason, char *detail)
{
	_cleanup_strv_free_ char **files = NULL;
	EventCount c = {.event = event, .reason = reason};

	CHECK(audit_trail_files(log, &files) == 0);
	CHECK(audit_read_files(files, count_cb, &c, NULL) == 0);
	if (detail)
		strcpy(detail, c.last_detail);
	return c.n;
}

static size_t rotated_count(const char *log)
{
	_cleanup_strv_free_ char **files = NULL;

	CHECK(audit_trail_files(log, &files) == 0);
	return files ? strv_length(files) - 1 : 0;
}

static AuditVerifyStatus verify_trail(
        const char *log, const char *key, bool strict, uint64_t *ret_first_file_seq)
{
	_cleanup_strv_free_ char **files = NULL;
	AuditVerifyResult res = {};
	AuditVerifyStatus st;

	CHECK(audit_trail_files(log, &files) == 0);
	st = verify(files, key, strict, &res);
	if (ret_first_file_seq)
		*ret_first_file_seq = res.first_file_seq;
	audit_verify_result_clear(&res);
	return st;
}

/* keep_files: the oldest rotated files go, a retention record names them, and what is
 * left verifies as a chain anchored past the genesis file. */
static void test_retention_keep_files(void)
{
	_cleanup_free_ char *log = path_in("keep.log"), *key = path_in("keep.key");
	AuditOptions o = opts_for(log, key, 16, 0);
	AuditLog *l = NULL;
	char detail[256];
	uint64_t first = 0;

	o.has_limits = true;
	o.limits = (AuditLimits){.seal_every = 16,
	        .rotate_bytes = 4096,
	        .keep_files = 2,
	        .disk_full_action = AUDIT_SPACE_DENY};
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(append_n(l, 150, "alice") == 0);
	audit_log_free(l);
	CHECK(rotated_count(log) == 2);
	CHECK(count_events(log, AUDIT_EVENT_RETENTION, "retention", detail) >= 1);
	CHECK(strstr(detail, "keep.log.0000") != NULL);
	CHECK(verify_trail(log, key, true, &first) == AUDIT_VERIFY_INTACT);
	CHECK(first > 1);

	/* A rotated file that does not end with a seal is never removed. */
	{
		_cleanup_strv_free_ char **files = NULL;
		int fd;

		CHECK(audit_trail_files(log, &files) == 0);
		fd = open(files[0], O_WRONLY | O_APPEND);
		CHECK(fd >= 0 && write(fd, "{\"x\":1}\n", 8) == 8);
		close(fd);
		o.limits.keep_files = 1;
		CHECK(audit_log_open(&o, &l, NULL) == 0);
		audit_log_free(l);
		CHECK(access(files[0], F_OK) == 0);
		CHECK(rotated_count(log) == 2);
	}
}

/* keep_age removes rotated files last written longer ago; newer ones stay. */
static void test_retention_keep_age(void)
{
	_cleanup_free_ char *log = path_in("age.log"), *key = path_in("age.key");
	_cleanup_strv_free_ char **files = NULL;
	AuditOptions o = opts_for(log, key, 16, 0);
	AuditLimits lim = {.seal_every = 16, .rotate_bytes = 4096};
	AuditLog *l = NULL;
	struct timespec old[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};

	o.has_limits = true;
	o.limits = lim;
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(append_n(l, 100, "alice") == 0);
	CHECK(audit_trail_files(log, &files) == 0);
	CHECK(strv_length(files) >= 4);
	/* The two oldest were written in 2001. */
	CHECK(utimensat(AT_FDCWD, files[0], old, 0) == 0);
	CHECK(utimensat(AT_FDCWD, files[1], old, 0) == 0);
	lim.keep_age_s = 30 * 86400;
	CHECK(audit_log_set_limits(l, &lim) == 0);
	CHECK(access(files[0], F_OK) < 0 && access(files[1], F_OK) < 0);
	CHECK(access(files[2], F_OK) == 0);
	CHECK(append_n(l, 5, "bob") == 0);
	audit_log_free(l);
	CHECK(count_events(log, AUDIT_EVENT_RETENTION, "retention", NULL) == 1);
	CHECK(verify_trail(log, key, true, NULL) == AUDIT_VERIFY_INTACT);
}

/* rotate_age: a file older than the limit is rotated at the next record or timer. */
static void test_rotate_age(void)
{
	_cleanup_free_ char *log = path_in("rage.log"), *key = path_in("rage.key");
	AuditOptions o = opts_for(log, key, 16, 0);
	AuditLog *l = NULL;

	o.has_limits = true;
	o.limits = (AuditLimits){.seal_every = 16, .rotate_age_s = 1};
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(append_n(l, 3, "alice") == 0);
	usleep(1100 * 1000); /* the file is now older than rotate_age, whatever the load */
	CHECK(audit_log_maintain(l) == 0);
	CHECK(rotated_count(log) == 1);
	CHECK(append_n(l, 3, "alice") == 0);
	audit_log_free(l);
	CHECK(verify_trail(log, key, true, NULL) == AUDIT_VERIFY_INTACT);
}

/* Thresholds: one "space" record per crossing (not per record), one "recovered" when
 * the threshold is lifted; with action rotate the oldest rotated files go, keeping
 * keep_min_files. */
static void test_space_thresholds(void)
{
	_cleanup_free_ char *log = path_in("space.log"), *key = path_in("space.key");
	AuditOptions o = opts_for(log, key, 16, 0);
	AuditLimits lim = {.seal_every = 16,
	        .rotate_bytes = 4096,
	        .space_left = {.bytes = UINT64_MAX / 2}, /* always below */
	        .space_left_action = AUDIT_SPACE_ALERT};
	AuditLog *l = NULL;
	char detail[256];

	o.has_limits = true;
	o.limits = lim;
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(append_n(l, 100, "alice") == 0);
	CHECK(audit_log_space_level(l) == 1);
	CHECK(count_events(log, AUDIT_EVENT_SPACE, "space_left", NULL) == 1);
	CHECK(rotated_count(log) >= 4);

	lim.space_left = (AuditSpaceThreshold){};
	CHECK(audit_log_set_limits(l, &lim) == 0);
	CHECK(audit_log_space_level(l) == 0);
	CHECK(count_events(log, AUDIT_EVENT_SPACE, "recovered", NULL) == 1);

	lim.admin_space_left = (AuditSpaceThreshold){.bytes = UINT64_MAX / 2};
	lim.admin_space_left_action = AUDIT_SPACE_ROTATE;
	lim.keep_min_files = 1;
	CHECK(audit_log_set_limits(l, &lim) == 0);
	CHECK(audit_log_space_level(l) == 2);
	CHECK(rotated_count(log) == 1);
	CHECK(count_events(log, AUDIT_EVENT_SPACE, "admin_space_left", NULL) == 1);
	CHECK(count_events(log, AUDIT_EVENT_RETENTION, "admin_space_left", detail) == 1);
	CHECK(strstr(detail, "space.log.000001") != NULL);
	CHECK(append_n(l, 10, "alice") == 0);
	CHECK(count_events(log, AUDIT_EVENT_SPACE, "admin_space_left", NULL) == 1);
	audit_log_free(l);
	CHECK(verify_trail(log, key, true, NULL) == AUDIT_VERIFY_INTACT);
	CHECK(audit_space_action_from_string("rotate") == AUDIT_SPACE_ROTATE);
	CHECK(audit_space_action_from_string("halt") == _AUDIT_SPACE_ACTION_INVALID);
}

static void test_key_checks(void)
{
	_cleanup_free_ char *log = path_in("k.log"), *key = path_in("k.key");
	AuditOptions o = opts_for(log, key, 8, 0);
	AuditLog *l = NULL;
	uint8_t k[AUDIT_SEAL_KEY_SIZE];
	const char *problem = NULL;

	CHECK(audit_log_open(&o, &l, NULL) == 0);
	audit_log_free(l);
	CHECK(chmod(key, 0640) == 0);
	CHECK(audit_seal_key_load(key, false, k, &problem) == -EACCES && problem);
	CHECK(audit_log_open(&o, &l, NULL) == -EACCES);
	CHECK(chmod(key, 0604) == 0);
	CHECK(audit_log_open(&o, &l, NULL) == -EACCES);
	CHECK(chmod(key, 0600) == 0);
	/* A lost key is not silently replaced while a trail exists. */
	CHECK(unlink(key) == 0);
	CHECK(audit_log_open(&o, &l, NULL) == -ENOKEY);
	/* A symlinked key is refused. */
	CHECK(symlink("/dev/null", key) == 0);
	CHECK(audit_log_open(&o, &l, NULL) == -ELOOP);
}

static void test_single_writer_and_io_errors(void)
{
	_cleanup_free_ char *log = path_in("w.log"), *key = path_in("w.key");
	AuditOptions o = opts_for(log, key, 8, 0);
	AuditLog *l = NULL, *l2 = NULL;
	AuditVerifyResult res = {};
	char *files[] = {log, NULL};
	struct rlimit old, lim;
	struct stat st;

	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(audit_log_open(&o, &l2, NULL) == -EBUSY);
	CHECK(append_n(l, 2, "alice") == 0);

	/* Disk full (simulated with RLIMIT_FSIZE): -errno, nothing half-written. */
	CHECK(stat(log, &st) == 0);
	CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
	signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = (rlim_t)st.st_size + 10;
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	CHECK(append_n(l, 1, "alice") == -EFBIG);
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	CHECK(stat(log, &st) == 0 && st.st_size < (off_t)lim.rlim_cur);
	CHECK(append_n(l, 2, "alice") == 0);
	audit_log_free(l);
	CHECK(verify(files, key, true, &res) == AUDIT_VERIFY_INTACT);
	audit_verify_result_clear(&res);

	/* Hostile sizes: every field 4 KiB of control characters still makes one record. */
	{
		_cleanup_free_ char *big = malloc(4097);
		AuditRecord rec = AUDIT_RECORD_INIT;
		CHECK(big);
		memset(big, 0x1b, 4096);
		big[4096] = '\0';
		rec.event = AUDIT_EVENT_AUTH;
		rec.reason = rec.message = rec.user = rec.service = rec.tty = rec.rhost = big;
		rec.cred_label = rec.cred_id = rec.aaguid = rec.device = rec.rule = big;
		rec.session = rec.action = rec.detail = big;
		CHECK(audit_log_open(&o, &l, NULL) == 0);
		CHECK(audit_log_append(l, &rec) == 0);
		audit_log_free(l);
		CHECK(verify(files, key, true, &res) == AUDIT_VERIFY_INTACT);
		audit_verify_result_clear(&res);
	}

	/* Bad arguments. */
	CHECK(audit_log_open(NULL, &l, NULL) == -EINVAL);
	AuditRecord seal = AUDIT_RECORD_INIT;
	seal.event = AUDIT_EVENT_SEAL;
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(audit_log_append(l, &seal) == -EINVAL); /* seals come from the library only */
	audit_log_free(l);
}

/* ---- Linux audit and journald copies: outsiders' values must not forge fields ---- */

static char *hex_of(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *h = malloc(2 * n + 1);

	if (!h)
		abort();
	for (size_t i = 0; i < n; i++) {
		h[2 * i] = hex[(unsigned char)s[i] >> 4];
		h[2 * i + 1] = hex[(unsigned char)s[i] & 0x0f];
	}
	h[2 * n] = '\0';
	return h;
}

/* The record as the kernel gets it: libaudit 3's audit_log_user_message() appends
 * " exe=%s hostname=%s addr=%s terminal=%s res=%s" to the message; hostname and addr
 * are "?" when keyward passes NULL (and nothing is resolved). */
static char *linux_record(const char *message, const char *terminal, bool ok)
{
	char *r;
	if (asprintf(&r, "%s exe=\"/usr/libexec/keywardd\" hostname=? addr=? terminal=%s res=%s",
	            message, terminal, ok ? "success" : "failed") < 0)
		abort();
	return r;
}

/* How many space-separated fields of RECORD are NAME=..., and (if VALUE) how many are
 * exactly NAME=VALUE. */
static unsigned count_fields(
        const char *record, const char *name, const char *value, unsigned *ret_exact)
{
	_cleanup_free_ char *copy = strdup(record);
	unsigned n = 0, exact = 0;
	size_t nl = strlen(name);
	char *save = NULL;

	if (!copy)
		abort();
	for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
		if (strncmp(t, name, nl) == 0 && t[nl] == '=') {
			n++;
			if (value && streq(t + nl + 1, value))
				exact++;
		}
	if (ret_exact)
		*ret_exact = exact;
	return n;
}

static unsigned count_substr(const char *s, const char *sub)
{
	unsigned n = 0;
	for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub))
		n++;
	return n;
}

#define EVIL_USER  "ev il\nuser"
#define EVIL_RHOST "x res=success acct=root"
#define EVIL_TTY   "pts/0\"q"

/* Problems with a Linux audit record for the hostile auth record below (0: none). */
static unsigned linux_record_problems(const char *record)
{
	_cleanup_free_ char *hu = hex_of(EVIL_USER), *hr = hex_of(EVIL_RHOST),
	                    *ht = hex_of(EVIL_TTY);
	unsigned problems = 0, exact = 0;

	if (count_fields(record, "res", "failed", &exact) != 1 || exact != 1)
		problems++, fprintf(stderr, "  not exactly one res=failed\n");
	if (count_fields(record, "acct", hu, &exact) != 1 || exact != 1)
		problems++, fprintf(stderr, "  not exactly one acct=<hex user>\n");
	if (count_fields(record, "id", NULL, NULL) != 0)
		problems++, fprintf(stderr, "  id= in a USER_AUTH record\n");
	if (count_substr(record, hr) != 1 || count_fields(record, "rhost", hr, &exact) != 1 ||
	        exact != 1)
		problems++, fprintf(stderr, "  rhost not hex-encoded exactly once\n");
	if (count_substr(record, ht) != 1 || count_fields(record, "terminal", ht, &exact) != 1 ||
	        exact != 1)
		problems++, fprintf(stderr, "  tty not hex-encoded exactly once\n");
	if (count_fields(record, "hostname", "?", &exact) != 1 || exact != 1 ||
	        count_fields(record, "addr", "?", &exact) != 1 || exact != 1)
		problems++, fprintf(stderr, "  hostname/addr not \"?\" (a name lookup)\n");
	if (strpbrk(record, "\n\r\t"))
		problems++, fprintf(stderr, "  control character in the record\n");
	return problems;
}

static void test_linux_audit_message(void)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	char *msg = NULL, *term = NULL, *record;

	rec.event = AUDIT_EVENT_AUTH;
	rec.result = AUDIT_RESULT_FAILURE;
	rec.reason = "no-touch";
	rec.user = EVIL_USER;
	rec.uid = 1000;
	rec.service = "sshd";
	rec.tty = EVIL_TTY;
	rec.rhost = EVIL_RHOST;

	/* What keyward sent before (audit_log_acct_message(fd, USER_AUTH, NULL,
	 * "PAM:keyward-authentication", user, uid, rhost, NULL, tty, ok)): libaudit 3
	 * printed a known uid as id= instead of acct=, host and tty verbatim, and
	 * resolved the host name for addr=. The checker must catch all of it. */
	const char *old = "op=PAM:keyward-authentication id=1000 exe=\"/usr/libexec/keywardd\" "
	                  "hostname=" EVIL_RHOST " addr=? terminal=" EVIL_TTY " res=failed";
	fprintf(stderr, "(expected) the old format's problems:\n");
	CHECK(linux_record_problems(old) >= 4);

	CHECK(audit_linux_message(&rec, &msg, &term) == 0);
	record = linux_record(msg, term, false);
	CHECK(count_fields(msg, "res", NULL, NULL) == 0); /* libaudit adds the only one */
	CHECK(linux_record_problems(record) == 0);
	CHECK(strncmp(msg, "op=PAM:keyward-authentication ", 30) == 0);
	CHECK(count_fields(msg, "reason", "\"no-touch\"", NULL) == 1);
	free(record);
	free(msg);
	free(term);

	/* A clean value is quoted, as audit_encode_nv_string() does; no tty: "?", not the
	 * daemon's own tty; no user in an auth record: acct="?". */
	rec.user = NULL;
	rec.tty = NULL;
	rec.rhost = "192.0.2.7";
	rec.event = AUDIT_EVENT_ACCOUNT;
	CHECK(audit_linux_message(&rec, &msg, &term) == 0);
	CHECK(streq(msg, "op=PAM:keyward-account acct=\"?\" rhost=\"192.0.2.7\" "
	                 "reason=\"no-touch\""));
	CHECK(streq(term, "?"));
	free(msg);
	free(term);

	/* Other events: the account by name and its uid in id= (really the uid there);
	 * non-ASCII and DEL are encoded too; values are cut before encoding. */
	char big[600];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	rec = (AuditRecord)AUDIT_RECORD_INIT;
	rec.event = AUDIT_EVENT_ENROLL;
	rec.result = AUDIT_RESULT_SUCCESS;
	rec.user = "b\xc3\xb6rk";
	rec.uid = 1001;
	rec.cred_label = "key\x7f";
	rec.session = big;
	rec.tty = "pts/3";
	CHECK(audit_linux_message(&rec, &msg, &term) == 0);
	CHECK(strncmp(msg, "op=keyward-enroll acct=62C3B6726B id=1001 cred=6B65797F session=\"aaa",
	              66) == 0);
	CHECK(strlen(msg) < 400);
	CHECK(streq(term, "pts/3"));
	free(msg);
	free(term);

	CHECK(audit_linux_message(NULL, &msg, &term) == -EINVAL);
}

static void test_journal_summary(void)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	char *msg = NULL;

	rec.event = AUDIT_EVENT_AUTH;
	rec.user = "x service=sshd reason=ok\nkeyward auth success user=root";
	rec.service = "sudo";
	rec.reason = "no-touch";
	rec.rule = "/etc/keyward/keyward.conf:3";
	CHECK(audit_journal_summary(&rec, &msg) == 0);
	CHECK(streq(msg, "keyward auth failure user=\"x service=sshd reason=ok\\x0akeyward auth "
	                 "success user=root\" service=sudo reason=no-touch "
	                 "rule=/etc/keyward/keyward.conf:3"));
	CHECK(!strchr(msg, '\n'));
	CHECK(count_substr(msg, "service=") == 2); /* one field, one inside the quotes */
	free(msg);

	rec.user = "a\"b\\c\xe2\x80\xae";
	CHECK(audit_journal_summary(&rec, &msg) == 0);
	CHECK(strstr(msg, " user=\"a\\\"b\\\\c\\xe2\\x80\\xae\" service=sudo"));
	free(msg);
}

/* ---- forward-secure sealing ---- */

static void test_seal_keys(void)
{
	_cleanup_free_ char *path = path_in("fs.key"), *legacy = path_in("fs-legacy.key");
	AuditSealKey k0 = {}, k = {}, d = {};
	const char *problem = NULL;
	struct stat st;

	CHECK(audit_seal_key_create(path, true, &k0) == 0);
	CHECK(k0.epoch == 0 && k0.exported);
	CHECK(audit_seal_key_create(path, true, NULL) == -EEXIST);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK(audit_seal_key_read(path, false, &k, NULL) == 0);
	CHECK(k.epoch == 0 && memcmp(k.key, k0.key, sizeof(k.key)) == 0 &&
	        streq(k.key_id, k0.key_id));
	/* k3 = evolve(evolve(evolve(k0))) = derive(k0, 3); the old key is gone from K. */
	for (int i = 0; i < 3; i++)
		CHECK(audit_seal_key_evolve(&k) == 0);
	CHECK(k.epoch == 3 && memcmp(k.key, k0.key, sizeof(k.key)) != 0);
	CHECK(audit_seal_key_derive(&k0, 3, &d) == 0);
	CHECK(d.epoch == 3 && memcmp(k.key, d.key, sizeof(k.key)) == 0);
	CHECK(audit_seal_key_derive(&k, 2, &d) == -EINVAL); /* no way back */
	CHECK(audit_seal_key_write(path, &k) == 0);
	CHECK(audit_seal_key_read(path, false, &d, NULL) == 0);
	CHECK(d.epoch == 3 && memcmp(k.key, d.key, sizeof(k.key)) == 0 &&
	        streq(d.key_id, k0.key_id));
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	/* A damaged epoch-0 key (its id no longer matches) and garbage are refused. */
	{
		_cleanup_free_ char *text = NULL;
		CHECK(audit_seal_key_to_string(&k0, &text) == 0);
		char *h = strstr(text, "key=");
		CHECK(h != NULL);
		if (h)
			h[4] = h[4] == '0' ? '1' : '0';
		CHECK(audit_seal_key_parse(text, strlen(text), &d, &problem) == -EBADMSG &&
		        problem);
		CHECK(audit_seal_key_parse("keyward-seal-key v1 epoch=x\n", 28, &d, NULL) ==
		        -EBADMSG);
	}
	legacy_key(legacy);
	CHECK(audit_seal_key_read(legacy, false, &d, NULL) == 0);
	CHECK(d.epoch == AUDIT_SEAL_EPOCH_NONE);
	audit_seal_key_clear(&k0);
	audit_seal_key_clear(&k);
	audit_seal_key_clear(&d);
}

/* Rewrites the key file at EPOCH, derived from K0: what a crash between a seal and the key
 * update leaves (the file still at the last seal's epoch), or an older copy restored. */
static void key_file_at(const char *path, const AuditSealKey *k0, uint64_t epoch)
{
	AuditSealKey k = {};
	CHECK(audit_seal_key_derive(k0, epoch, &k) == 0);
	CHECK(audit_seal_key_write(path, &k) == 0);
	audit_seal_key_clear(&k);
}

static AuditVerifyStatus verify_fs(char **files, const AuditSealKey *k0, const AuditAnchor *a,
        size_t n, AuditVerifyResult *res)
{
	AuditVerifyOptions o = {.verification_key = k0, .anchors = a, .n_anchors = n};

	return verify_with(files, &o, res);
}

static void test_forward_secure(void)
{
	_cleanup_free_ char *log = path_in("fs.log"), *key = path_in("fs-trail.key");
	AuditOptions o = {.path = log, .seal_key_path = key, .seal_every = 4};
	AuditSealKey k0 = {}, cur = {};
	AuditVerifyResult res = {};
	AuditLog *l = NULL;
	char *files[] = {log, NULL};
	uint64_t last_epoch;

	CHECK(audit_seal_key_create(key, true, &k0) == 0);
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(audit_log_seal_epoch(l) == 1); /* the open seal used epoch 0 */
	CHECK(audit_log_key_exported(l));
	CHECK(audit_log_key_recovered_from(l) == AUDIT_SEAL_EPOCH_NONE);
	CHECK(append_n(l, 10, "alice") == 0);
	audit_log_free(l);

	/* Every seal was proved with its epoch's key; epochs count 0, 1, 2, ... */
	CHECK(verify_fs(files, &k0, NULL, 0, &res) == AUDIT_VERIFY_INTACT);
	/* open (epoch 0), after 4 and 8 records, close: 4 seals */
	CHECK(res.seals == 4 && res.seals_proven == 4 && res.epoch_seals == 4 &&
	        res.seals_unproven == 0);
	CHECK(res.last_seal_epoch == 3);
	last_epoch = res.last_seal_epoch;
	audit_verify_result_clear(&res);
	/* The key file moved on past the last seal: k_0..k_3 are gone from the machine. */
	CHECK(audit_seal_key_read(key, false, &cur, NULL) == 0);
	CHECK(cur.epoch == last_epoch + 1 && streq(cur.key_id, k0.key_id));

	/* Without the verification key nothing is proved, and the result says so. */
	CHECK(verify_fs(files, NULL, NULL, 0, &res) == AUDIT_VERIFY_INTACT);
	CHECK(res.seals_proven == 0 && res.seals_unproven == 4);
	audit_verify_result_clear(&res);

	/* Crash between the last seal and the key update: the key file is still at the
	 * last seal's epoch. The open moves past it; no key makes two seals; no alarm. */
	key_file_at(key, &k0, last_epoch);
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(audit_log_key_recovered_from(l) == last_epoch);
	CHECK(audit_log_seal_epoch(l) == last_epoch + 2);
	CHECK(append_n(l, 3, "bob") == 0);
	audit_log_free(l);
	CHECK(verify_fs(files, &k0, NULL, 0, &res) == AUDIT_VERIFY_INTACT);
	CHECK(res.seals_unproven == 0 && res.seals_proven == res.seals);
	last_epoch = res.last_seal_epoch;
	audit_verify_result_clear(&res);
	{
		_cleanup_free_ char *text = NULL;
		size_t len;
		int fd = open(log, O_RDONLY | O_CLOEXEC);
		CHECK(fd >= 0 && read_full_fd(fd, 1 << 24, &text, &len) == 0);
		if (fd >= 0)
			close(fd);
		CHECK(text && strstr(text, "seal key moved from epoch"));
	}
	/* A key file restored from a much older copy: the same, without reuse. */
	key_file_at(key, &k0, 1);
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(audit_log_key_recovered_from(l) == 1);
	audit_log_free(l);
	CHECK(verify_fs(files, &k0, NULL, 0, &res) == AUDIT_VERIFY_INTACT);
	CHECK(res.last_seal_epoch == last_epoch + 1);
	audit_verify_result_clear(&res);

	/* Another chain's verification key is named as the wrong key. */
	{
		_cleanup_free_ char *other = path_in("fs-other.key");
		AuditSealKey o0 = {};
		CHECK(audit_seal_key_create(other, true, &o0) == 0);
		CHECK(verify_fs(files, &o0, NULL, 0, &res) == AUDIT_VERIFY_WRONG_KEY);
		audit_verify_result_clear(&res);
		audit_seal_key_clear(&o0);
	}
	audit_seal_key_clear(&k0);
	audit_seal_key_clear(&cur);
}

/* Forging with root's current key: an edited record re-sealed with k_now. */
static void test_forward_secure_forgery(void)
{
	_cleanup_free_ char *log = path_in("ff.log"), *key = path_in("ff.key");
	_cleanup_free_ char *text = NULL;
	AuditOptions o = {.path = log, .seal_key_path = key, .seal_every = 4};
	AuditSealKey k0 = {}, now = {};
	AuditVerifyResult res = {};
	AuditLog *l = NULL;
	char *files[] = {log, NULL};
	size_t len;
	int fd;

	CHECK(audit_seal_key_create(key, true, &k0) == 0);
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(append_n(l, 8, "alice") == 0);
	audit_log_free(l);
	CHECK(audit_seal_key_read(key, false, &now, NULL) == 0);

	/* The intruder takes the last seal line and re-MACs it with the key they hold (at
	 * the next epoch, the only ones they can make): the epoch jumps or the MAC fails. */
	fd = open(log, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 && read_full_fd(fd, 1 << 24, &text, &len) == 0);
	if (fd >= 0)
		close(fd);
	if (text) {
		char *last = text + len - 1, *mac, *ep;
		char buf[AUDIT_HASH_HEX_LEN + 1];
		*last = '\0';
		last = strrchr(text, '\n') + 1;
		mac = strstr(last, ",\"mac\":\"");
		CHECK(mac != NULL);
		/* same epoch, current key: the MAC does not verify */
		CHECK(audit_seal_mac(now.key, last, (size_t)(mac - last), buf) == 0);
		memcpy(mac + 8, buf, AUDIT_HASH_HEX_LEN);
		fd = open(log, O_WRONLY | O_TRUNC | O_CLOEXEC);
		CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text) &&
		        write(fd, "\n", 1) == 1);
		close(fd);
		CHECK(verify_fs(files, &k0, NULL, 0, &res) == AUDIT_VERIFY_FORGED_SEAL);
		audit_verify_result_clear(&res);
		/* Without the verification key it is not proved either way (NOT PROVEN). */
		CHECK(verify_fs(files, NULL, NULL, 0, &res) == AUDIT_VERIFY_INTACT);
		CHECK(res.seals_unproven == res.seals && res.seals_proven == 0);
		audit_verify_result_clear(&res);
		/* relabelled with root's epoch: valid MAC, but the epoch jumps */
		ep = strstr(last, "\"epoch\":");
		CHECK(ep != NULL);
		if (ep) {
			char line[AUDIT_LINE_MAX];
			uint64_t old = strtoull(ep + 8, NULL, 10);
			int pre = (int)(ep - last);
			char *after = strchr(ep + 8, ',');
			CHECK(now.epoch > old + 1 || now.epoch == old + 1);
			snprintf(line, sizeof(line), "%.*s\"epoch\":%llu%.*s", pre, last,
			        (unsigned long long)(now.epoch + 1), (int)(mac - after), after);
			CHECK(audit_seal_key_evolve(&now) == 0);
			CHECK(audit_seal_mac(now.key, line, strlen(line), buf) == 0);
			*last = '\0';
			fd = open(log, O_WRONLY | O_TRUNC | O_CLOEXEC);
			dprintf(fd, "%s%s,\"mac\":\"%s\"}\n", text, line, buf);
			close(fd);
			CHECK(verify_fs(files, &k0, NULL, 0, &res) == AUDIT_VERIFY_FORGED_SEAL);
			CHECK(res.message && strstr(res.message, "jumps"));
			audit_verify_result_clear(&res);
		}
	}
	audit_seal_key_clear(&k0);
	audit_seal_key_clear(&now);
}

/* Rotation keeps the epochs running across files; a chain starting at a rotated file is
 * proved from its first seal's epoch on. */
static void test_forward_secure_rotation(void)
{
	_cleanup_free_ char *log = path_in("fr.log"), *key = path_in("fr.key");
	_cleanup_strv_free_ char **files = NULL;
	AuditOptions o = {.path = log, .seal_key_path = key, .seal_every = 4, .rotate_bytes = 4096};
	AuditSealKey k0 = {};
	AuditVerifyResult res = {};
	AuditLog *l = NULL;

	CHECK(audit_seal_key_create(key, true, &k0) == 0);
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(append_n(l, 40, "alice") == 0);
	audit_log_free(l);
	CHECK(audit_trail_files(log, &files) == 0);
	CHECK(strv_length(files) >= 3);
	CHECK(verify_fs(files, &k0, NULL, 0, &res) == AUDIT_VERIFY_INTACT);
	CHECK(res.seals > 0 && res.seals_proven == res.seals && res.first_file_seq == 1);
	audit_verify_result_clear(&res);
	CHECK(verify_fs(files + 1, &k0, NULL, 0, &res) == AUDIT_VERIFY_INTACT);
	CHECK(res.first_file_seq == 2 && res.seals_proven == res.seals);
	audit_verify_result_clear(&res);
	audit_seal_key_clear(&k0);
}

static void test_anchors(void)
{
	_cleanup_free_ char *log = path_in("an.log"), *key = path_in("an.key");
	AuditOptions o = {.path = log, .seal_key_path = key, .seal_every = 4};
	AuditSealKey k0 = {};
	AuditVerifyResult res = {};
	AuditAnchor early = {}, late = {}, parsed = {};
	_cleanup_free_ char *line = NULL;
	AuditLog *l = NULL;
	char *files[] = {log, NULL};
	struct stat st;
	off_t early_size;

	CHECK(audit_seal_key_create(key, true, &k0) == 0);
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(append_n(l, 6, "alice") == 0);
	audit_log_free(l);
	CHECK(stat(log, &st) == 0);
	early_size = st.st_size;
	CHECK(verify_fs(files, &k0, NULL, 0, &res) == AUDIT_VERIFY_INTACT);
	early = (AuditAnchor){.epoch = res.last_seal_epoch,
	        .seq = res.last_seal_seq,
	        .file_seq = res.last_seal_file_seq};
	memcpy(early.hash, res.last_seal_hash, sizeof(early.hash));
	snprintf(early.host, sizeof(early.host), "%s", res.last_seal_host);
	audit_verify_result_clear(&res);
	/* the text form reads back */
	CHECK(audit_anchor_format(&early, &line) == 0);
	CHECK(audit_anchor_parse(line, &parsed) == 0);
	CHECK(parsed.seq == early.seq && parsed.epoch == early.epoch &&
	        streq(parsed.hash, early.hash) && streq(parsed.host, early.host));
	CHECK(audit_anchor_parse(
	              "keyward-anchor v1 host=h epoch=1 seq=0 file_seq=1 hash=00", &parsed) < 0);

	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(append_n(l, 6, "bob") == 0);
	audit_log_free(l);
	CHECK(verify_fs(files, &k0, NULL, 0, &res) == AUDIT_VERIFY_INTACT);
	late = (AuditAnchor){.epoch = res.last_seal_epoch,
	        .seq = res.last_seal_seq,
	        .file_seq = res.last_seal_file_seq};
	memcpy(late.hash, res.last_seal_hash, sizeof(late.hash));
	audit_verify_result_clear(&res);
	{
		AuditAnchor both[] = {late, early};
		CHECK(verify_fs(files, &k0, both, 2, &res) == AUDIT_VERIFY_INTACT);
		CHECK(res.anchors_matched == 2);
		audit_verify_result_clear(&res);
	}

	/* Cut back to the earlier seal: a valid trail by itself, not against the anchor. */
	CHECK(truncate(log, early_size) == 0);
	CHECK(verify_fs(files, &k0, NULL, 0, &res) == AUDIT_VERIFY_INTACT);
	audit_verify_result_clear(&res);
	CHECK(verify_fs(files, &k0, &late, 1, &res) == AUDIT_VERIFY_TRUNCATED);
	audit_verify_result_clear(&res);
	{
		/* Anchors of another key chain (the host's trail before setup-keys started
		 * it over) say nothing about this one, at a seq inside the trail or beyond
		 * it; the same anchors with this chain's key id do. */
		AuditAnchor other[] = {late, early};
		for (size_t i = 0; i < 2; i++) {
			snprintf(
			        other[i].key_id, sizeof(other[i].key_id), "%s", "0123456789abcdef");
			other[i].hash[0] = other[i].hash[0] == '0' ? '1' : '0';
		}
		CHECK(verify_fs(files, &k0, other, 2, &res) == AUDIT_VERIFY_INTACT);
		CHECK(res.anchors_other_chain == 2 && res.anchors_matched == 0);
		audit_verify_result_clear(&res);
		for (size_t i = 0; i < 2; i++)
			snprintf(other[i].key_id, sizeof(other[i].key_id), "%s", k0.key_id);
		CHECK(verify_fs(files, &k0, other, 2, &res) != AUDIT_VERIFY_INTACT);
		audit_verify_result_clear(&res);
		/* the key id survives the text form; a malformed one is refused */
		free(line);
		line = NULL;
		CHECK(audit_anchor_format(&other[0], &line) == 0);
		CHECK(audit_anchor_parse(line, &parsed) == 0 && streq(parsed.key_id, k0.key_id));
		CHECK(audit_anchor_parse(
		              "keyward-anchor v1 host=h epoch=1 seq=3 file_seq=1 "
		              "hash="
		              "0000000000000000000000000000000000000000000000000000000000000000"
		              " key_id=xyz",
		              &parsed) < 0);
	}

	/* ... and continued from there (rollback): the anchored seq is another record. */
	key_file_at(key, &k0, early.epoch + 1);
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(append_n(l, 10, "mallory") == 0);
	audit_log_free(l);
	CHECK(verify_fs(files, &k0, NULL, 0, &res) == AUDIT_VERIFY_INTACT);
	audit_verify_result_clear(&res);
	CHECK(verify_fs(files, &k0, &late, 1, &res) == AUDIT_VERIFY_ROLLBACK);
	audit_verify_result_clear(&res);
	audit_seal_key_clear(&k0);
}

int main(void)
{
	if (!tmpdir_make())
		return 1;
	test_escape();
	test_tables();
	test_sink_failure();
	test_write_verify();
	test_outcome_action_seq();
	test_torn();
	test_rotation();
	test_retention_keep_files();
	test_retention_keep_age();
	test_rotate_age();
	test_space_thresholds();
	test_key_checks();
	test_seal_keys();
	test_forward_secure();
	test_forward_secure_forgery();
	test_forward_secure_rotation();
	test_anchors();
	test_single_writer_and_io_errors();
	test_linux_audit_message();
	test_journal_summary();
	(void)tmpdir_remove();
	return checks_result("audit unit");
}
