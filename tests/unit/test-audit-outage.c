/* test-audit-outage.c: unit tests of who and what survives an outage — the actor fields,
 * the outage spool (lib/audit-spool.c: caps, mode, intake once, a crash mid-intake) and
 * the audit-sink records when the Linux audit copy cannot be sent. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit-json.h"
#include "audit-spool.h"
#include "audit.h"
#include "util.h"

#include "audit-test.h"

static AuditLog *open_log(const char *log, const char *key, AuditOptions *o)
{
	AuditLog *l = NULL;

	o->path = log;
	o->seal_key_path = key;
	o->seal_every = 64;
	CHECK(audit_log_open(o, &l, NULL) == 0);
	return l;
}

/* Every record of the trail files of LOG. */
typedef struct Entries {
	AuditEntry *e[256];
	size_t n;
} Entries;

static bool streq_ptr(const char *a, const char *b)
{
	return a && b && streq(a, b);
}

/* Parses every line of the trail LOG (one file: these tests do not rotate). */
static void entries_read(const char *log, Entries *x)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int fd;

	for (size_t i = 0; i < x->n; i++)
		audit_entry_free(x->e[i]);
	x->n = 0;
	fd = open(log, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 && read_full_fd(fd, 1 << 24, &text, &len) == 0);
	if (fd >= 0)
		close(fd);
	for (char *l = text, *nl; l && (nl = strchr(l, '\n')); l = nl + 1) {
		AuditEntry *e = NULL;
		CHECK(audit_entry_parse(l, (size_t)(nl - l), &e, NULL) == 0);
		if (e && x->n < ELEMENTSOF(x->e))
			x->e[x->n++] = e;
		else
			audit_entry_free(e);
	}
}

static size_t entries_count(const Entries *x, AuditEvent event, const char *reason)
{
	size_t n = 0;
	for (size_t i = 0; i < x->n; i++)
		if (x->e[i]->event == event && (!reason || streq_ptr(x->e[i]->reason, reason)))
			n++;
	return n;
}

static void entries_done(Entries *x)
{
	for (size_t i = 0; i < x->n; i++)
		audit_entry_free(x->e[i]);
	x->n = 0;
}

/* ---- the actor ---- */

static void test_actor_fields(void)
{
	_cleanup_free_ char *log = path_in("actor.log"), *key = path_in("actor.key");
	AuditOptions o = {};
	AuditLog *l = open_log(log, key, &o);
	AuditActor a = {.uid = 1000,
	        .user = "alice",
	        .loginuid = 1001,
	        .login = "bob",
	        .session = "42",
	        .tty = "pts/3"};
	AuditRecord rec = AUDIT_RECORD_INIT;
	Entries x = {};
	char *msg = NULL, *term = NULL;

	rec.event = AUDIT_EVENT_REVOKE;
	rec.result = AUDIT_RESULT_SUCCESS;
	rec.user = "carol";
	rec.actor = &a;
	CHECK(audit_log_append(l, &rec) == 0);
	/* no actor: no actor fields (not uid 0) */
	rec.actor = NULL;
	CHECK(audit_log_append(l, &rec) == 0);
	audit_log_free(l);
	entries_read(log, &x);
	CHECK(x.n == 2 + 2 + 1);
	CHECK(x.e[2]->actor_uid == 1000 && streq_ptr(x.e[2]->actor, "alice") &&
	        x.e[2]->actor_loginuid == 1001 && streq_ptr(x.e[2]->actor_login, "bob") &&
	        streq_ptr(x.e[2]->actor_session, "42") && streq_ptr(x.e[2]->actor_tty, "pts/3"));
	CHECK(x.e[3]->actor_uid == -1 && x.e[3]->actor_loginuid == -1 && !x.e[3]->actor &&
	        !x.e[3]->actor_tty);
	entries_done(&x);

	/* The Linux audit copy names the account (acct=) and who asked. */
	rec.actor = &a;
	CHECK(audit_linux_message(&rec, &msg, &term) == 0);
	CHECK(msg && strstr(msg, "op=keyward-revoke acct=\"carol\"") &&
	        strstr(msg, " actor_uid=1000 actor=\"alice\" actor_auid=1001 actor_ses=\"42\""));
	free(msg);
	free(term);
	/* acct= on every record, "?" without an account */
	rec = (AuditRecord)AUDIT_RECORD_INIT;
	rec.event = AUDIT_EVENT_POLICY_LOAD;
	rec.result = AUDIT_RESULT_SUCCESS;
	CHECK(audit_linux_message(&rec, &msg, &term) == 0);
	CHECK(msg && streq(msg, "op=keyward-policy-load acct=\"?\""));
	free(msg);
	free(term);
}

/* ---- Linux audit outages ---- */

static int sends, fail_sends;
static char last_message[512];

static int fake_send(
        const AuditRecord *rec, const char *message, const char *terminal, void *userdata)
{
	(void)rec;
	(void)terminal;
	(void)userdata;
	sends++;
	snprintf(last_message, sizeof(last_message), "%s", message);
	return fail_sends ? (fail_sends > 0 ? -ECONNREFUSED : -EPERM) : 1;
}

static int append_auth(AuditLog *l, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		AuditRecord rec = AUDIT_RECORD_INIT;
		int r;

		rec.event = AUDIT_EVENT_AUTH;
		rec.user = "alice";
		rec.uid = 1000;
		rec.service = "sudo";
		rec.reason = "no-touch";
		r = audit_log_append(l, &rec);
		if (r < 0)
			return r;
	}
	return 0;
}

static void test_linux_audit_outage(void)
{
	_cleanup_free_ char *log = path_in("la.log"), *key = path_in("la.key");
	AuditOptions o = {.to_linux_audit = true, .linux_audit_send = fake_send};
	AuditLog *l = open_log(log, key, &o);
	Entries x = {};

	sends = 0;
	fail_sends = 1;
	CHECK(append_auth(l, 5) == 0);
	CHECK(sends == 5); /* each record is tried: the outage's end is noticed */
	CHECK(audit_log_sink_error(l, AUDIT_SINK_LINUX_AUDIT) == -ECONNREFUSED);
	fail_sends = 0;
	CHECK(append_auth(l, 3) == 0);
	CHECK(strstr(last_message, "op=PAM:keyward-authentication acct=\"alice\""));
	fail_sends = -1;
	CHECK(append_auth(l, 2) == 0);
	fail_sends = 0;
	CHECK(append_auth(l, 1) == 0);
	audit_log_free(l);

	entries_read(log, &x);
	/* one record per outage, one per recovery; never sent to Linux audit themselves */
	CHECK(entries_count(&x, AUDIT_EVENT_AUDIT_SINK, "unavailable") == 2);
	CHECK(entries_count(&x, AUDIT_EVENT_AUDIT_SINK, "recovered") == 2);
	CHECK(entries_count(&x, AUDIT_EVENT_AUTH, NULL) == 11);
	CHECK(sends == 11);
	{
		size_t first = 0;
		while (first < x.n && x.e[first]->event != AUDIT_EVENT_AUDIT_SINK)
			first++;
		CHECK(first < x.n && x.e[first]->result == AUDIT_RESULT_INFO &&
		        streq_ptr(x.e[first]->detail, "linux-audit: Connection refused"));
	}
	entries_done(&x);
}

/* ---- the spool ---- */

static void spool_refusal(const char *spool, const char *user, int expect)
{
	AuditRecord rec = AUDIT_RECORD_INIT;

	rec.event = AUDIT_EVENT_AUTH;
	rec.user = user;
	rec.uid = 1000;
	rec.service = "sudo";
	rec.tty = "pts/1";
	rec.reason = "audit-unavailable";
	rec.message = "The keyward audit trail cannot be written \"quoted\"\n.";
	rec.rule_name = "admins";
	CHECK(audit_spool_append(spool, &rec, AUDIT_SPOOL_MAX_BYTES) == expect);
}

static void test_spool(void)
{
	_cleanup_free_ char *log = path_in("sp.log"), *key = path_in("sp.key"),
	                    *spool = path_in("audit-spool"),
	                    *taking = path_in("audit-spool.taking");
	AuditOptions o = {};
	AuditLog *l;
	Entries x = {};
	struct stat st;

	CHECK(!audit_spool_pending(spool));
	spool_refusal(spool, "alice", 0);
	spool_refusal(spool, "bob", 0);
	CHECK(stat(spool, &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK(audit_spool_pending(spool));
	/* a line a crash cut short: counted, and it does not swallow the next record */
	{
		int fd = open(spool, O_WRONLY | O_APPEND | O_CLOEXEC);
		CHECK(fd >= 0 && write(fd, "{\"spool_id\":\"00", 15) == 15);
		close(fd);
	}
	spool_refusal(spool, "carol", 0);

	l = open_log(log, key, &o);
	CHECK(audit_spool_take(l, spool, log) == 3);
	CHECK(!audit_spool_pending(spool) && access(spool, F_OK) < 0 && access(taking, F_OK) < 0);
	CHECK(audit_spool_take(l, spool, log) == 0);
	audit_log_free(l);

	entries_read(log, &x);
	CHECK(entries_count(&x, AUDIT_EVENT_AUTH, "audit-unavailable") == 3);
	CHECK(entries_count(&x, AUDIT_EVENT_SPOOL_TAKEN, NULL) == 1);
	for (size_t i = 0; i < x.n; i++) {
		if (x.e[i]->event == AUDIT_EVENT_AUTH) {
			CHECK(x.e[i]->spooled && x.e[i]->spool_id &&
			        strlen(x.e[i]->spool_id) == 16);
			CHECK(x.e[i]->result == AUDIT_RESULT_FAILURE && x.e[i]->uid == 1000);
			/* the original time, not the intake's */
			CHECK(strcmp(x.e[i]->spooled, x.e[i]->time) <= 0);
		}
		if (x.e[i]->event == AUDIT_EVENT_SPOOL_TAKEN)
			CHECK(streq_ptr(x.e[i]->detail, "records=3 bad=1") &&
			        x.e[i]->result == AUDIT_RESULT_INFO);
	}
	CHECK(x.n >= 6 && streq_ptr(x.e[2]->user, "alice") && streq_ptr(x.e[4]->user, "carol"));
	entries_done(&x);
}

/* A crash after some records were taken in: the next intake takes the rest, none twice,
 * and writes the one spool-taken record. */
static void test_spool_crash_mid_intake(void)
{
	_cleanup_free_ char *log = path_in("cr.log"), *key = path_in("cr.key"),
	                    *spool = path_in("cr-spool"), *taking = path_in("cr-spool.taking");
	_cleanup_free_ char *text = NULL;
	AuditOptions o = {};
	AuditLog *l;
	Entries x = {};
	size_t len;

	spool_refusal(spool, "alice", 0);
	spool_refusal(spool, "bob", 0);
	spool_refusal(spool, "carol", 0);
	/* the intake renamed the spool and took alice's record, then the machine stopped */
	CHECK(rename(spool, taking) == 0);
	{
		int fd = open(taking, O_RDONLY | O_CLOEXEC);
		CHECK(fd >= 0 && read_full_fd(fd, 1 << 20, &text, &len) == 0);
		close(fd);
	}
	l = open_log(log, key, &o);
	{
		JsonField *f = NULL;
		size_t n = 0;
		AuditRecord rec = AUDIT_RECORD_INIT;
		CHECK(json_parse_flat(text, (size_t)(strchr(text, '\n') - text), &f, &n, NULL) ==
		        0);
		rec.event = AUDIT_EVENT_AUTH;
		rec.user = "alice";
		rec.reason = "audit-unavailable";
		for (size_t i = 0; i < n; i++) {
			if (streq(f[i].key, "spool_id"))
				rec.spool_id = f[i].str;
			if (streq(f[i].key, "time"))
				rec.spooled = f[i].str;
		}
		CHECK(audit_log_append(l, &rec) == 0);
		json_fields_free(f, n);
	}
	audit_log_free(l);
	/* meanwhile (the daemon back, the trail not yet) another refusal was spooled */
	spool_refusal(spool, "dave", 0);
	CHECK(audit_spool_pending(spool));

	l = open_log(log, key, &o);
	CHECK(audit_spool_take(l, spool, log) == 2); /* bob, carol: the cut intake finished */
	CHECK(access(taking, F_OK) < 0 && access(spool, F_OK) == 0);
	CHECK(audit_spool_take(l, spool, log) == 1); /* dave */
	CHECK(audit_spool_take(l, spool, log) == 0);
	audit_log_free(l);

	entries_read(log, &x);
	CHECK(entries_count(&x, AUDIT_EVENT_AUTH, "audit-unavailable") == 4);
	CHECK(entries_count(&x, AUDIT_EVENT_SPOOL_TAKEN, NULL) == 2);
	for (size_t i = 0; i < x.n; i++)
		for (size_t k = i + 1; k < x.n; k++)
			CHECK(!(x.e[i]->spool_id && streq_ptr(x.e[i]->spool_id, x.e[k]->spool_id)));
	entries_done(&x);

	/* crash after the spool-taken record, before the intake file was removed */
	spool_refusal(spool, "erin", 0);
	CHECK(rename(spool, taking) == 0);
	CHECK(link(taking, spool) == 0);
	l = open_log(log, key, &o);
	CHECK(audit_spool_take(l, spool, log) == 1); /* the spool (same lines) as intake */
	CHECK(rename(spool, taking) == 0);           /* the leftover: all of it is in already */
	CHECK(audit_spool_take(l, spool, log) == 0);
	CHECK(access(taking, F_OK) < 0);
	audit_log_free(l);
	entries_read(log, &x);
	CHECK(entries_count(&x, AUDIT_EVENT_AUTH, "audit-unavailable") == 5);
	CHECK(entries_count(&x, AUDIT_EVENT_SPOOL_TAKEN, NULL) == 3);
	entries_done(&x);
}

static void test_spool_limits(void)
{
	_cleanup_free_ char *spool = path_in("lim-spool"), *other = path_in("lim-open");
	AuditRecord rec = AUDIT_RECORD_INIT;
	struct stat st;
	int fd;

	rec.event = AUDIT_EVENT_AUTH;
	rec.user = "alice";
	CHECK(audit_spool_append(spool, &rec, 400) == 0);
	CHECK(stat(spool, &st) == 0);
	CHECK(audit_spool_append(spool, &rec, (uint64_t)st.st_size + 10) == -ENOSPC);
	CHECK(stat(spool, &st) == 0 && st.st_size < 400); /* nothing half-written */
	/* a spool others may read is refused, not written to */
	fd = open(other, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(fchmod(fd, 0644) == 0);
	close(fd);
	CHECK(audit_spool_append(other, &rec, AUDIT_SPOOL_MAX_BYTES) == -EACCES);
	CHECK(symlink(spool, path_in("lim-link")) == 0);
	{
		_cleanup_free_ char *link_path = path_in("lim-link");
		CHECK(audit_spool_append(link_path, &rec, AUDIT_SPOOL_MAX_BYTES) == -ELOOP);
	}
}

int main(void)
{
	if (!tmpdir_make())
		return 1;
	test_actor_fields();
	test_linux_audit_outage();
	test_spool();
	test_spool_crash_mid_intake();
	test_spool_limits();
	(void)tmpdir_remove();
	return checks_result("audit outage");
}
