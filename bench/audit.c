/* bench/audit.c: keyward-bench-audit — audit trail throughput: records appended per
 * second with fsync per record (the default) and without, and the time to verify a
 * trail of one million records. Prints a table. Usage: keyward-bench-audit [DIR] [N].
 * keyward-bench-audit --generate TRAIL KEY N PAIRS writes a forward-secure trail of N
 * records (seals every 64) and its exported verification key, for bench/audit.py: with
 * PAIRS > 1, logins of PAIRS user x service pairs with elevations, lock actions and
 * their outcomes mixed in (what the report indexes). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "util.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int append_records(
        const char *log, const char *key, bool fsync_each, unsigned long n, double *ret_seconds)
{
	AuditOptions o = {.path = log,
	        .seal_key_path = key,
	        .seal_every = AUDIT_SEAL_EVERY_DEFAULT,
	        .fsync_each = fsync_each};
	AuditLog *l = NULL;
	double t0;
	int r;

	r = audit_log_open(&o, &l, NULL);
	if (r < 0)
		return r;
	t0 = now_s();
	for (unsigned long i = 0; i < n; i++) {
		AuditRecord rec = AUDIT_RECORD_INIT;
		char session[24];

		snprintf(session, sizeof(session), "%lu", i);
		rec.event = AUDIT_EVENT_AUTH;
		rec.result = AUDIT_RESULT_SUCCESS;
		rec.user = "alice";
		rec.uid = 1000;
		rec.service = "sudo";
		rec.tty = "pts/3";
		rec.cred_label = "yubikey-5c-nfc";
		rec.cred_id = "qUE1Dq2g0kBGLeV0ZKS2SgLdyjzBdvNnSj1jXMN5Fk5kQ5pHbuhfYw==";
		rec.aaguid = "ee882879-721c-4913-9775-3dfcce97072a";
		rec.device = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/"
		             "0003:1050:0407.0001/hidraw/hidraw0";
		rec.rule = "/etc/keyward/keyward.conf:31";
		rec.session = session;
		r = audit_log_append(l, &rec);
		if (r < 0) {
			audit_log_free(l);
			return r;
		}
	}
	r = audit_log_seal(l, "stop", false);
	*ret_seconds = now_s() - t0;
	audit_log_free(l);
	return r;
}

/* One login of pair I % PAIRS (1000 users x PAIRS/1000 services), like the daemon writes. */
static void fill_auth(AuditRecord *rec, unsigned long i, unsigned long pairs, char *user,
        size_t usize, char *service, size_t ssize, char *session, size_t sesssize)
{
	unsigned long users = pairs < 1000 ? pairs : 1000, p = i % pairs;

	snprintf(user, usize, pairs > 1 ? "user%04lu" : "alice", p % users);
	snprintf(service, ssize, pairs > 1 ? "svc%03lu" : "sudo", p / users);
	snprintf(session, sesssize, "%lu", i);
	rec->event = AUDIT_EVENT_AUTH;
	rec->result = i % 17 == 0 ? AUDIT_RESULT_FAILURE : AUDIT_RESULT_SUCCESS;
	rec->reason = i % 17 == 0 ? (i % 2 ? "no-touch" : "wrong-pin") : NULL;
	rec->user = user;
	rec->uid = (uid_t)(1000 + p % users);
	rec->service = service;
	rec->tty = "pts/3";
	rec->rhost = i % 3 == 0 ? "10.1.2.3" : NULL;
	rec->cred_label = "yubikey-5c-nfc";
	rec->cred_id = "qUE1Dq2g0kBGLeV0ZKS2SgLdyjzBdvNnSj1jXMN5Fk5kQ5pHbuhfYw==";
	rec->aaguid = "ee882879-721c-4913-9775-3dfcce97072a";
	rec->device = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/"
	              "0003:1050:0407.0001/hidraw/hidraw0";
	rec->rule = "/etc/keyward/keyward.conf:31";
	rec->rule_name = "admins";
	rec->session = session;
}

static int generate(const char *trail, const char *key_out, unsigned long n, unsigned long pairs)
{
	_cleanup_free_ char *key = NULL;
	AuditSealKey k0 = {};
	AuditOptions o = {.path = trail, .seal_every = 64};
	AuditLog *l = NULL;
	uint64_t open_action = 0;
	int r;

	if (asprintf(&key, "%s.seal-key", trail) < 0)
		return -ENOMEM;
	r = audit_seal_key_create(key, true, &k0);
	if (r >= 0)
		r = audit_seal_key_write(key_out, &k0);
	audit_seal_key_clear(&k0);
	o.seal_key_path = key;
	if (r >= 0)
		r = audit_log_open(&o, &l, NULL);
	for (unsigned long i = 0; r >= 0 && audit_log_seq(l) < n; i++) {
		AuditRecord rec = AUDIT_RECORD_INIT;
		char user[32], service[32], session[24];

		fill_auth(&rec, i, pairs, user, sizeof(user), service, sizeof(service), session,
		        sizeof(session));
		if (pairs > 1 && i % 20 == 1) {
			/* the elevation of the login before, then its end or a removal's lock */
			rec.event =
			        i % 40 == 1 ? AUDIT_EVENT_SESSION_BIND : AUDIT_EVENT_SESSION_UNBIND;
			rec.result = AUDIT_RESULT_SUCCESS;
			rec.reason = NULL;
			snprintf(session, sizeof(session), "%lu", (i - 1) / 40);
		} else if (pairs > 1 && i % 50 == 7) {
			rec.event = AUDIT_EVENT_ACTION;
			rec.result = AUDIT_RESULT_SUCCESS;
			rec.reason = "lock-requested";
			rec.action = "lock";
			snprintf(session, sizeof(session), "%lu", i / 40);
		} else if (pairs > 1 && i % 50 == 8 && open_action) {
			rec.event = AUDIT_EVENT_OUTCOME;
			rec.result = AUDIT_RESULT_SUCCESS;
			rec.reason = i % 3 ? "verified" : "escalated";
			rec.action = "lock";
			rec.action_seq = open_action;
			snprintf(session, sizeof(session), "%lu", i / 40);
		}
		r = audit_log_append(l, &rec);
		open_action = rec.event == AUDIT_EVENT_ACTION ? audit_log_seq(l) : open_action;
	}
	if (r >= 0)
		r = audit_log_seal(l, "stop", false);
	audit_log_free(l);
	(void)unlink(key);
	return r;
}

int main(int argc, char *argv[])
{
	char dir_template[] = "/var/tmp/keyward-bench-audit.XXXXXX";
	const char *dir = argc > 1 ? argv[1] : NULL;
	unsigned long n_verify = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000UL;
	unsigned long n_sync = 2000, n_nosync = 200000;
	_cleanup_free_ char *log_sync = NULL, *log_nosync = NULL, *log_big = NULL, *key = NULL;
	double t_sync, t_nosync, t_big, t_verify;
	AuditSealKey k0 = {};
	AuditVerifyResult res = {};
	AuditVerifyOptions vo = {.verification_key = &k0};
	struct stat st;
	int r;

	if (argc == 6 && streq(argv[1], "--generate")) {
		r = generate(
		        argv[2], argv[3], strtoul(argv[4], NULL, 10), strtoul(argv[5], NULL, 10));
		if (r < 0) {
			fprintf(stderr, "keyward-bench-audit: cannot write %s: %s\n", argv[2],
			        strerror(-r));
			return 1;
		}
		return 0;
	}
	if (!dir) {
		dir = mkdtemp(dir_template);
		if (!dir) {
			perror("mkdtemp");
			return 1;
		}
	}
	if (asprintf(&log_sync, "%s/sync.log", dir) < 0 ||
	        asprintf(&log_nosync, "%s/nosync.log", dir) < 0 ||
	        asprintf(&log_big, "%s/big.log", dir) < 0 || asprintf(&key, "%s/seal.key", dir) < 0)
		return 1;

	r = append_records(log_sync, key, true, n_sync, &t_sync);
	(void)unlink(key); /* one key chain per trail */
	if (r >= 0)
		r = append_records(log_nosync, key, false, n_nosync, &t_nosync);
	(void)unlink(key);
	/* forward-secure, as set up with keywardctl audit setup-keys: verify proves every seal */
	if (r >= 0)
		r = audit_seal_key_create(key, true, &k0);
	if (r >= 0)
		r = append_records(log_big, key, false, n_verify, &t_big);
	if (r < 0) {
		fprintf(stderr, "keyward-bench-audit: append failed: %s\n", strerror(-r));
		return 1;
	}
	{
		char *files[] = {log_big, NULL};
		double t0 = now_s();
		r = audit_verify_files(files, &vo, &res);
		t_verify = now_s() - t0;
	}
	if (r < 0 || res.status != AUDIT_VERIFY_INTACT) {
		fprintf(stderr, "keyward-bench-audit: verification failed: %s\n",
		        r < 0 ? strerror(-r) : res.message);
		return 1;
	}
	if (stat(log_big, &st) < 0)
		st.st_size = 0;

	printf("Audit trail benchmark (directory %s)\n\n", dir);
	printf("| measurement | records | seconds | rate |\n");
	printf("| --- | ---: | ---: | ---: |\n");
	printf("| append, fsync per record (default) | %lu | %.3f | %.0f records/s |\n", n_sync,
	        t_sync, n_sync / t_sync);
	printf("| append, no fsync | %lu | %.3f | %.0f records/s |\n", n_nosync, t_nosync,
	        n_nosync / t_nosync);
	printf("| append, no fsync (verify input) | %lu | %.3f | %.0f records/s |\n", n_verify,
	        t_big, n_verify / t_big);
	printf("| verify chain + seals | %" PRIu64 " | %.3f | %.0f records/s |\n", res.records,
	        t_verify, res.records / t_verify);
	printf("\nverify input: %.1f MB, %" PRIu64 " seals (every %u records)\n",
	        (double)st.st_size / 1e6, res.seals, AUDIT_SEAL_EVERY_DEFAULT);
	audit_verify_result_clear(&res);
	audit_seal_key_clear(&k0);
	if (argc <= 1) {
		unlink(log_sync);
		unlink(log_nosync);
		unlink(log_big);
		unlink(key);
		rmdir(dir);
	}
	return 0;
}
