/* audit-spool.c: the outage spool — refused-login records appended to a root-only file
 * while the trail cannot take them, taken into the trail once when it can again. */
#include "audit-spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit-json.h"
#include "util.h"

#define SPOOL_ID_BYTES      8
#define SPOOL_TAKING_SUFFIX ".taking"

/* The record's string fields, in the spool under the trail's names. */
static const struct {
	const char *key;
	size_t offset;
} spool_fields[] = {
        {"reason", offsetof(AuditRecord, reason)},
        {"message", offsetof(AuditRecord, message)},
        {"user", offsetof(AuditRecord, user)},
        {"service", offsetof(AuditRecord, service)},
        {"tty", offsetof(AuditRecord, tty)},
        {"rhost", offsetof(AuditRecord, rhost)},
        {"cred_label", offsetof(AuditRecord, cred_label)},
        {"cred_id", offsetof(AuditRecord, cred_id)},
        {"aaguid", offsetof(AuditRecord, aaguid)},
        {"device", offsetof(AuditRecord, device)},
        {"rule", offsetof(AuditRecord, rule)},
        {"rule_name", offsetof(AuditRecord, rule_name)},
        {"policy", offsetof(AuditRecord, policy)},
        {"session", offsetof(AuditRecord, session)},
        {"action", offsetof(AuditRecord, action)},
        {"detail", offsetof(AuditRecord, detail)},
};

static const char **rec_field(AuditRecord *rec, size_t i)
{
	return (const char **)((char *)rec + spool_fields[i].offset);
}

static int spool_format(const AuditRecord *rec, JsonBuf *b)
{
	uint8_t raw[SPOOL_ID_BYTES];
	char id[2 * SPOOL_ID_BYTES + 1], t[40];
	int r;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -errno;
	hex_encode_to(raw, sizeof(raw), id);
	r = format_rfc3339_ms(now_realtime_ms(), t, sizeof(t));
	if (r < 0)
		return r;
	json_buf_printf(b, "{\"spool_id\":\"%s\",\"time\":\"%s\"", id, t);
	json_buf_printf(b, ",\"event\":\"%s\",\"result\":\"%s\"", audit_event_to_string(rec->event),
	        audit_result_to_string(rec->result));
	if (rec->uid != (uid_t)-1)
		json_buf_printf(b, ",\"uid\":%u", (unsigned)rec->uid);
	for (size_t i = 0; i < ELEMENTSOF(spool_fields); i++) {
		const char *v = *rec_field((AuditRecord *)rec, i);
		if (!v)
			continue;
		json_buf_printf(b, ",\"%s\":", spool_fields[i].key);
		json_buf_put_string(b, v, AUDIT_FIELD_SHORT * 4);
	}
	json_buf_puts(b, "}\n");
	return b->oom ? -ENOMEM : 0;
}

/* A spool or intake file must be ours alone: a regular file owned by us, mode 0600 or
 * stricter. */
static int spool_check(int fd, struct stat *ret_st)
{
	if (fstat(fd, ret_st) < 0)
		return -errno;
	if (!S_ISREG(ret_st->st_mode))
		return -EBADFD;
	if (ret_st->st_uid != geteuid())
		return -EPERM;
	if (ret_st->st_mode & 077)
		return -EACCES;
	return 0;
}

int audit_spool_append(const char *path, const AuditRecord *rec, uint64_t max_bytes)
{
	_cleanup_close_ int fd = -EBADF;
	JsonBuf b = {};
	struct stat st;
	size_t done = 0;
	char last = '\n';
	int r;

	if (isempty(path) || !rec || rec->event < 0 || rec->event >= _AUDIT_EVENT_MAX ||
	        rec->result < 0 || rec->result >= _AUDIT_RESULT_MAX)
		return -EINVAL;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX) < 0)
		return -errno;
	r = spool_check(fd, &st);
	if (r < 0)
		return r;
	/* A line a crash cut short must not swallow the next record. */
	if (st.st_size > 0) {
		int rfd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (rfd < 0)
			return -errno;
		if (pread(rfd, &last, 1, st.st_size - 1) != 1)
			last = '\n';
		close(rfd);
	}
	if (last != '\n')
		json_buf_append(&b, "\n", 1);
	r = spool_format(rec, &b);
	if (r >= 0 && (uint64_t)st.st_size + b.len > max_bytes)
		r = -ENOSPC;
	while (r >= 0 && done < b.len) {
		ssize_t n = write(fd, b.data + done, b.len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			/* Take a partial line back; should that fail too, the intake counts
			 * the cut-off line as bad and skips it. */
			int q = ftruncate(fd, st.st_size);
			(void)q;
			break;
		}
		done += (size_t)n;
	}
	json_buf_free(&b);
	if (r < 0)
		return r;
	if (fdatasync(fd) < 0)
		return -errno;
	if (st.st_size == 0)
		(void)fsync_parent_dir(path);
	return 0;
}

bool audit_spool_pending(const char *path)
{
	_cleanup_free_ char *taking = NULL;
	struct stat st;

	if (isempty(path) || asprintf(&taking, "%s" SPOOL_TAKING_SUFFIX, path) < 0)
		return false;
	return (lstat(path, &st) == 0 && st.st_size > 0) || lstat(taking, &st) == 0;
}

typedef struct TakenIds {
	char **ids; /* spool ids already in the trail */
	size_t n, alloc;
} TakenIds;

static int collect_taken(const AuditEntry *e, const char *file, uint64_t line, void *userdata)
{
	TakenIds *t = userdata;

	if (!e->spool_id)
		return 0;
	if (t->n + 2 > t->alloc) {
		size_t na = t->alloc ? t->alloc * 2 : 64;
		char **p = realloc(t->ids, na * sizeof(char *));
		if (!p)
			return -ENOMEM;
		t->ids = p;
		t->alloc = na;
	}
	t->ids[t->n] = strdup(e->spool_id);
	if (!t->ids[t->n])
		return -ENOMEM;
	t->ids[++t->n] = NULL;
	return 0;
}

static bool taken(const TakenIds *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (streq(t->ids[i], id))
			return true;
	return false;
}

/* The spool ids in the trail's last two files (an intake cut short ended there). */
static int trail_taken_ids(const char *trail_path, TakenIds *ret)
{
	_cleanup_strv_free_ char **files = NULL;
	size_t n;

	int r = audit_trail_files(trail_path, &files);
	if (r < 0)
		return r;
	n = strv_length(files);
	return audit_read_files(files + (n > 2 ? n - 2 : 0), collect_taken, ret, NULL);
}

/* One spool line into the trail. 1: taken, 0: already there, -EBADMSG: not a record. */
static int take_line(AuditLog *log, const char *line, size_t len, const TakenIds *skip)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	JsonField *f = NULL;
	size_t n = 0;
	int r;

	r = json_parse_flat(line, len, &f, &n, NULL);
	if (r < 0)
		return r;
	rec.event = _AUDIT_EVENT_INVALID;
	rec.result = _AUDIT_RESULT_INVALID;
	for (size_t i = 0; i < n && r >= 0; i++) {
		bool known = false;

		if (f[i].type == JSON_UINT && streq(f[i].key, "uid") && f[i].num < UINT32_MAX) {
			rec.uid = (uid_t)f[i].num;
			continue;
		}
		if (f[i].type != JSON_STRING) {
			r = -EBADMSG;
			break;
		}
		if (streq(f[i].key, "spool_id"))
			rec.spool_id = f[i].str, known = true;
		else if (streq(f[i].key, "time"))
			rec.spooled = f[i].str, known = true;
		else if (streq(f[i].key, "event"))
			rec.event = audit_event_from_string(f[i].str), known = true;
		else if (streq(f[i].key, "result"))
			rec.result = audit_result_from_string(f[i].str), known = true;
		for (size_t k = 0; k < ELEMENTSOF(spool_fields) && !known; k++)
			if (streq(f[i].key, spool_fields[k].key)) {
				*rec_field(&rec, k) = f[i].str;
				known = true;
			}
		if (!known)
			r = -EBADMSG;
	}
	if (r >= 0 &&
	        (rec.event < 0 || rec.result < 0 || isempty(rec.spool_id) || isempty(rec.spooled)))
		r = -EBADMSG;
	if (r >= 0 && taken(skip, rec.spool_id))
		r = 0;
	else if (r >= 0) {
		r = audit_log_append(log, &rec);
		if (r == -EINVAL)
			r = -EBADMSG; /* an event the trail does not take from outside */
		else if (r >= 0)
			r = 1;
	}
	json_fields_free(f, n);
	return r;
}

int audit_spool_take(AuditLog *log, const char *path, const char *trail_path)
{
	_cleanup_free_ char *taking = NULL, *text = NULL;
	_cleanup_close_ int fd = -EBADF;
	TakenIds done = {};
	char batch[AUDIT_HASH_HEX_LEN + 1], detail[64];
	AuditRecord rec = AUDIT_RECORD_INIT;
	unsigned long n_taken = 0, n_bad = 0;
	bool leftover = false;
	struct stat st;
	size_t len;
	int r;

	if (!log || isempty(path) || isempty(trail_path))
		return -EINVAL;
	if (asprintf(&taking, "%s" SPOOL_TAKING_SUFFIX, path) < 0)
		return -ENOMEM;
	if (lstat(taking, &st) == 0)
		leftover = true; /* an intake was cut short: finish it first */
	else if (errno != ENOENT)
		return -errno;
	else {
		if (renameat2(AT_FDCWD, path, AT_FDCWD, taking, RENAME_NOREPLACE) < 0)
			return errno == ENOENT ? 0 : -errno;
		r = fsync_parent_dir(taking);
		if (r < 0)
			return r;
	}
	fd = open(taking, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	r = spool_check(fd, &st);
	if (r < 0)
		return r;
	r = read_full_fd(fd, 4 * (size_t)AUDIT_SPOOL_MAX_BYTES, &text, &len);
	if (r < 0)
		return r;
	/* The batch's id: the same file gives the same id after a crash. */
	r = audit_line_hash(text, len, batch);
	if (r < 0)
		return r;
	batch[16] = '\0';
	if (leftover) {
		r = trail_taken_ids(trail_path, &done);
		if (r < 0)
			goto out;
	}
	for (char *l = text, *end = text + len; l < end;) {
		char *nl = memchr(l, '\n', (size_t)(end - l));
		size_t ll = nl ? (size_t)(nl - l) : (size_t)(end - l);

		if (ll > 0) {
			r = take_line(log, l, ll, &done);
			if (r == -EBADMSG || r == -ENOMEM)
				n_bad++;
			else if (r < 0)
				goto out; /* the trail failed: the rest waits for the next intake */
			else
				n_taken += (unsigned long)r;
		}
		l += ll + 1;
	}
	if (!taken(&done, batch)) {
		snprintf(detail, sizeof(detail), "records=%lu bad=%lu", n_taken, n_bad);
		rec.event = AUDIT_EVENT_SPOOL_TAKEN;
		rec.result = AUDIT_RESULT_INFO;
		rec.reason = "spool";
		rec.spool_id = batch;
		rec.detail = detail;
		rec.message = "Records spooled while the trail could not be written were taken in "
		              "(each marked spooled, with its original time).";
		r = audit_log_append(log, &rec);
		if (r < 0)
			goto out;
	}
	if (unlink(taking) < 0) {
		r = -errno;
		goto out;
	}
	(void)fsync_parent_dir(taking);
	r = n_taken > INT32_MAX ? INT32_MAX : (int)n_taken;
out:
	for (size_t i = 0; i < done.n; i++)
		free(done.ids[i]);
	free(done.ids);
	return r;
}
