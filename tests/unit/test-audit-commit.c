/* test-audit-commit.c: unit tests of the trail's group commit (lib/audit.c) — nothing
 * reported durable before the sync that covers it returned, one sync for many records,
 * seals' key updates after their seal is on disk, a failed sync fails closed, the sink
 * queue's overflow is recorded, rotation under group commit keeps the chain. */
#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "util.h"

#include "audit-test.h"

/* The disk: a gate the test holds closed to keep a sync from returning, and an error. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_closed;
static int sync_result;
static atomic_uint syncs, linux_audit_sent, rotations;

static void gate(bool closed)
{
	pthread_mutex_lock(&gate_lock);
	gate_closed = closed;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

static int test_sync(int fd, void *userdata)
{
	int r;

	pthread_mutex_lock(&gate_lock);
	while (gate_closed)
		pthread_cond_wait(&gate_cond, &gate_lock);
	r = sync_result;
	pthread_mutex_unlock(&gate_lock);
	atomic_fetch_add(&syncs, 1);
	return r < 0 ? r : fdatasync(fd) < 0 ? -errno : 0;
}

static int fake_linux_audit(
        const AuditRecord *rec, const char *message, const char *terminal, void *userdata)
{
	atomic_fetch_add(&linux_audit_sent, 1);
	return 1;
}

static int count_rotation(void *userdata)
{
	atomic_fetch_add(&rotations, 1);
	return 0;
}

/* One request waiting for its record: what its callback said. */
typedef struct Pending {
	bool called;
	int error;
	unsigned order; /* when it was called */
} Pending;

static unsigned calls;

static void on_done(int error, void *userdata)
{
	Pending *p = userdata;

	CHECK(!p->called);
	p->called = true;
	p->error = error;
	p->order = calls++;
}

static AuditRecord auth_record(void)
{
	AuditRecord rec = AUDIT_RECORD_INIT;

	rec.event = AUDIT_EVENT_AUTH;
	rec.result = AUDIT_RESULT_SUCCESS;
	rec.reason = "ok";
	rec.user = "alice";
	rec.service = "sudo";
	return rec;
}

static AuditOptions group_opts(const char *log, const char *key, unsigned seal_every)
{
	return (AuditOptions){.path = log,
	        .seal_key_path = key,
	        .seal_every = seal_every,
	        .group_commit = true,
	        .sync = test_sync};
}

static AuditVerifyStatus verify_trail(const char *log, const AuditSealKey *k0)
{
	_cleanup_strv_free_ char **files = NULL;
	AuditVerifyOptions o = {.verification_key = k0, .strict = true};
	AuditVerifyResult res = {};
	AuditVerifyStatus s;

	CHECK(audit_trail_files(log, &files) == 0);
	CHECK(audit_verify_files(files, &o, &res) == 0);
	if (res.status != AUDIT_VERIFY_INTACT)
		fprintf(stderr, "  verify: %s:%llu: %s\n", res.file, (unsigned long long)res.line,
		        res.message);
	CHECK(res.seals_unproven == 0);
	s = res.status;
	audit_verify_result_clear(&res);
	return s;
}

static uint64_t key_file_epoch(const char *key)
{
	AuditSealKey k = {};
	uint64_t e;

	CHECK(audit_seal_key_read(key, false, &k, NULL) == 0);
	e = k.epoch;
	audit_seal_key_clear(&k);
	return e;
}

/* Waits for the sync thread's word and runs the callbacks. */
static void wait_commit(AuditLog *l)
{
	struct pollfd p = {.fd = audit_log_commit_fd(l), .events = POLLIN};

	CHECK(p.fd >= 0);
	CHECK(poll(&p, 1, 60 * 1000) == 1);
	(void)audit_log_commit_dispatch(l);
}

#define N_RECORDS 200

static void test_group_commit(void)
{
	_cleanup_free_ char *log = path_in("g.log"), *key = path_in("g.key");
	AuditOptions o = group_opts(log, key, 16);
	AuditSealKey k0 = {};
	AuditLog *l = NULL;
	static Pending p[N_RECORDS];
	AuditRecord rec = auth_record();
	uint64_t epoch_on_disk;
	unsigned syncs_before;

	CHECK(audit_seal_key_create(key, true, &k0) == 0);
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(audit_log_commit_fd(l) >= 0);
	epoch_on_disk = key_file_epoch(key);
	CHECK(epoch_on_disk == audit_log_seal_epoch(l));

	/* The disk does not answer: records are written, nobody is told they are durable. */
	gate(true);
	syncs_before = atomic_load(&syncs);
	calls = 0;
	for (unsigned i = 0; i < N_RECORDS; i++)
		CHECK(audit_log_append_async(l, &rec, on_done, &p[i]) == 0);
	CHECK(audit_log_commit_waiting(l) == N_RECORDS);
	(void)audit_log_commit_dispatch(l);
	CHECK(calls == 0);
	/* Seals were made (in memory the key moved on), but the key file waits for them to
	 * be on disk. */
	CHECK(audit_log_seal_epoch(l) > epoch_on_disk);
	CHECK(key_file_epoch(key) == epoch_on_disk);

	gate(false);
	CHECK(audit_log_flush(l) == 0);
	CHECK(calls == N_RECORDS);
	for (unsigned i = 0; i < N_RECORDS; i++) {
		CHECK(p[i].called && p[i].error == 0);
		CHECK(p[i].order == i); /* in trail order */
	}
	/* A few syncs covered them all (the first may have held one record). */
	CHECK(atomic_load(&syncs) - syncs_before <= 3);
	CHECK(audit_log_commit_waiting(l) == 0);

	/* The blocking append joins the commits too and returns once durable. */
	CHECK(audit_log_append(l, &rec) == 0);
	audit_log_free(l);
	/* The key file caught up with the last seal (written after it was on disk). */
	{
		AuditSealKey now = {};
		CHECK(audit_seal_key_read(key, false, &now, NULL) == 0);
		CHECK(now.epoch > epoch_on_disk);
		audit_seal_key_clear(&now);
	}
	CHECK(verify_trail(log, &k0) == AUDIT_VERIFY_INTACT);
	audit_seal_key_clear(&k0);
}

static void test_sync_fails(void)
{
	_cleanup_free_ char *log = path_in("f.log"), *key = path_in("f.key");
	AuditOptions o = group_opts(log, key, 64);
	AuditSealKey k0 = {};
	AuditLog *l = NULL;
	Pending p[5] = {};
	AuditRecord rec = auth_record();

	CHECK(audit_seal_key_create(key, true, &k0) == 0);
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	gate(true);
	sync_result = -EIO;
	calls = 0;
	for (unsigned i = 0; i < ELEMENTSOF(p); i++)
		CHECK(audit_log_append_async(l, &rec, on_done, &p[i]) == 0);
	gate(false);
	while (calls < ELEMENTSOF(p))
		wait_commit(l);
	for (unsigned i = 0; i < ELEMENTSOF(p); i++)
		CHECK(p[i].called && p[i].error == -EIO);
	CHECK(audit_log_sync_error(l) == -EIO);
	/* Fail closed: the trail takes nothing more until it is reopened. */
	CHECK(audit_log_append_async(l, &rec, on_done, &p[0]) < 0);
	CHECK(audit_log_append(l, &rec) < 0);
	audit_log_free(l);

	sync_result = 0;
	l = NULL;
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	CHECK(audit_log_append(l, &rec) == 0);
	audit_log_free(l);
	CHECK(verify_trail(log, &k0) == AUDIT_VERIFY_INTACT);
	audit_seal_key_clear(&k0);
}

static bool trail_has(const char *log, const char *a, const char *b)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;

	if (read_full_file_safe(log, SAFE_FILE_DEFAULT, 1u << 30, &text, &len, NULL) < 0)
		return false;
	for (char *l = text; l && *l;) {
		char *eol = strchr(l, '\n');
		if (eol)
			*eol = '\0';
		if (strstr(l, a) && strstr(l, b))
			return true;
		l = eol ? eol + 1 : NULL;
	}
	return false;
}

#define OVERFLOW_RECORDS 4200 /* more than the sink queue holds (4096) */

static void test_sink_overflow(void)
{
	_cleanup_free_ char *log = path_in("s.log"), *key = path_in("s.key");
	AuditOptions o = group_opts(log, key, 64);
	AuditLog *l = NULL;
	static Pending p[OVERFLOW_RECORDS];
	AuditRecord rec = auth_record();
	uint64_t dropped;
	char detail[64];

	o.to_linux_audit = true;
	o.linux_audit_send = fake_linux_audit;
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	atomic_store(&linux_audit_sent, 0);
	/* Copies are sent once their record is durable: with the disk held they pile up. */
	gate(true);
	for (unsigned i = 0; i < OVERFLOW_RECORDS; i++)
		CHECK(audit_log_append_async(l, &rec, on_done, &p[i]) == 0);
	gate(false);
	CHECK(audit_log_flush(l) == 0);
	dropped = audit_log_sink_dropped(l);
	CHECK(dropped > 0);
	/* Counted, and said in the trail, never silent. */
	CHECK(trail_has(log, "\"event\":\"audit-sink\"", "\"reason\":\"overflow\""));
	/* Once the queue drains, a record says how many were dropped. */
	while (!trail_has(log, "\"event\":\"audit-sink\"", "\"reason\":\"recovered\""))
		wait_commit(l);
	CHECK(audit_log_flush(l) == 0);
	snprintf(detail, sizeof(detail), "%llu copies dropped", (unsigned long long)dropped);
	CHECK(trail_has(log, "\"reason\":\"recovered\"", detail));
	audit_log_free(l);
	/* Every copy was either sent or counted as dropped. */
	CHECK(atomic_load(&linux_audit_sent) + dropped == OVERFLOW_RECORDS);
}

static void test_rotation(void)
{
	_cleanup_free_ char *log = path_in("r.log"), *key = path_in("r.key");
	_cleanup_strv_free_ char **files = NULL;
	AuditOptions o = group_opts(log, key, 8);
	AuditSealKey k0 = {};
	AuditLog *l = NULL;
	static Pending p[N_RECORDS];
	AuditRecord rec = auth_record();

	o.rotate_bytes = 16 * 1024;
	o.before_rotate = count_rotation;
	CHECK(audit_seal_key_create(key, true, &k0) == 0);
	CHECK(audit_log_open(&o, &l, NULL) == 0);
	calls = 0;
	for (unsigned i = 0; i < N_RECORDS; i++)
		CHECK(audit_log_append_async(l, &rec, on_done, &p[i]) == 0);
	CHECK(audit_log_flush(l) == 0);
	CHECK(calls == N_RECORDS);
	for (unsigned i = 0; i < N_RECORDS; i++)
		CHECK(p[i].error == 0 && p[i].order == i);
	audit_log_free(l);
	CHECK(atomic_load(&rotations) >= 2);
	CHECK(audit_trail_files(log, &files) == 0);
	CHECK(strv_length(files) == atomic_load(&rotations) + 1);
	CHECK(verify_trail(log, &k0) == AUDIT_VERIFY_INTACT);
	audit_seal_key_clear(&k0);
}

int main(void)
{
	if (!tmpdir_make())
		return 1;
	test_group_commit();
	test_sync_fails();
	test_sink_overflow();
	test_rotation();
	(void)tmpdir_remove();
	return checks_result("audit commit");
}
