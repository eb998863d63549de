/* ctl-report-hosts.c: `keywardctl report --host NAME=DIR ... [--journal DIR]` — one
 * coverage and elevation report over the trails of many hosts, each host's integrity
 * verdict first. Every host is read in one pass, as the single-host report reads its
 * trail (ctl-report.c's collection, verified in the same walk); its rows are copied out
 * with the host's name and its tables freed before the next host is read. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "audit-json.h"
#include "audit-scan.h"
#include "audit.h"
#include "ctl-report-hosts.h"
#include "ctl.h"
#include "util.h"

#define HOSTS_MAX         4096u
#define HOST_NAME_LEN_MAX 253u    /* a fully qualified name */
#define FLEET_MAX_ROWS    200000u /* rows of each merged table, over all hosts */
#define JOURNAL_VALUE_MAX 4096u   /* bytes of one KEYWARD_* value read from a journal */

/* From best to worst: the exit code and the marks follow this order. */
typedef enum HostStatus {
	HOST_INTACT,
	HOST_NO_ANCHORS,   /* chain and seals proved, no anchors to catch a cut or a rollback */
	HOST_UNVERIFIABLE, /* no key for its seals */
	HOST_JOURNAL,      /* forwarded journal copies: no chain to verify */
	HOST_GAP,          /* journal copies with sequence numbers missing */
	HOST_BROKEN,
	HOST_UNREADABLE,
	_HOST_STATUS_MAX,
} HostStatus;

static const char *const host_status_names[_HOST_STATUS_MAX] = {
        [HOST_INTACT] = "intact",
        [HOST_NO_ANCHORS] = "missing-anchors",
        [HOST_UNVERIFIABLE] = "unverifiable",
        [HOST_JOURNAL] = "journal-copy",
        [HOST_GAP] = "records-missing",
        [HOST_BROKEN] = "broken",
        [HOST_UNREADABLE] = "unreadable",
};

typedef struct Host {
	char *name, *source;
	HostStatus status;
	char *verdict; /* "broken at seq 17", "unverifiable (no key)", ... */
	char *reason;
	uint64_t t_min, t_max, records;
	bool truncated;
} Host;

typedef struct FleetAuth {
	size_t host;
	char *user, *service, *reasons;
	uint64_t success, failure, first_ms, last_ms;
} FleetAuth;

typedef struct FleetElev {
	size_t host;
	uint64_t time_ms;
	char *time, *user, *service, *key, *from, *session, *ended;
} FleetElev;

typedef struct Fleet {
	uint64_t since, until;
	Host *hosts;
	size_t n_hosts;
	FleetAuth *auth;
	size_t n_auth;
	FleetElev *elev;
	size_t n_elev;
	bool truncated;
	char **journals; /* --journal: anchors of the --host hosts too */
	/* the host being read */
	size_t cur;
	ReportScan *scan;
} Fleet;

static void fleet_done(Fleet *f)
{
	for (size_t i = 0; i < f->n_hosts; i++) {
		Host *h = &f->hosts[i];
		free(h->name), free(h->source), free(h->verdict), free(h->reason);
	}
	free(f->hosts);
	for (size_t i = 0; i < f->n_auth; i++) {
		FleetAuth *a = &f->auth[i];
		free(a->user), free(a->service), free(a->reasons);
	}
	free(f->auth);
	for (size_t i = 0; i < f->n_elev; i++) {
		FleetElev *v = &f->elev[i];
		free(v->time), free(v->user), free(v->service), free(v->key), free(v->from);
		free(v->session), free(v->ended);
	}
	free(f->elev);
	report_scan_free(f->scan);
}

/* A row's mark in the text report: '!' its host's trail failed, '?' it is not proven. */
static char status_mark(HostStatus s)
{
	return s >= HOST_GAP ? '!' : s >= HOST_UNVERIFIABLE ? '?' : ' ';
}

static bool host_name_valid(const char *s, size_t len)
{
	if (len == 0 || len > HOST_NAME_LEN_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_",
		            s[i]))
			return false;
	return true;
}

static bool host_known(const Fleet *f, const char *name)
{
	for (size_t i = 0; i < f->n_hosts; i++)
		if (streq(f->hosts[i].name, name))
			return true;
	return false;
}

static Host *host_add(Fleet *f, const char *name, const char *source)
{
	Host *n, *h;

	if (f->n_hosts >= HOSTS_MAX)
		return NULL;
	n = reallocarray(f->hosts, f->n_hosts + 1, sizeof(Host));
	if (!n)
		return NULL;
	f->hosts = n;
	h = &f->hosts[f->n_hosts];
	*h = (Host){.name = strdup(name), .source = report_clean_strdup(source)};
	if (!h->name || !h->source) {
		free(h->name), free(h->source);
		return NULL;
	}
	f->cur = f->n_hosts++;
	return h;
}

static int host_set(Host *h, HostStatus s, const char *verdict, const char *reason)
{
	h->status = s;
	free(h->verdict), free(h->reason);
	h->verdict = report_clean_strdup(verdict);
	h->reason = report_clean_strdup(reason);
	return h->verdict && h->reason ? 0 : -ENOMEM;
}

/* ---- collection: one host at a time ---- */

static void *fleet_grow(Fleet *f, void *arr_p, size_t *n, size_t size)
{
	void **arr = arr_p;
	char *na;

	if (*n >= FLEET_MAX_ROWS) {
		f->truncated = true;
		return NULL;
	}
	na = reallocarray(*arr, *n + 1, size);
	if (!na)
		return NULL;
	*arr = na;
	memset(na + *n * size, 0, size);
	return na + (*n)++ * size;
}

static char *dup_or_empty(const char *s)
{
	return strdup(strempty(s));
}

static int sink_auth(const ReportAuthOut *a, void *userdata)
{
	Fleet *f = userdata;
	FleetAuth *r = fleet_grow(f, &f->auth, &f->n_auth, sizeof(FleetAuth));

	if (!r)
		return f->truncated ? 0 : -ENOMEM;
	*r = (FleetAuth){.host = f->cur,
	        .user = dup_or_empty(a->user),
	        .service = dup_or_empty(a->service),
	        .reasons = dup_or_empty(a->reasons),
	        .success = a->success,
	        .failure = a->failure,
	        .first_ms = a->first_ms,
	        .last_ms = a->last_ms};
	return r->user && r->service && r->reasons ? 0 : -ENOMEM;
}

static int sink_elev(const ReportElevOut *e, void *userdata)
{
	Fleet *f = userdata;
	FleetElev *v = fleet_grow(f, &f->elev, &f->n_elev, sizeof(FleetElev));

	if (!v)
		return f->truncated ? 0 : -ENOMEM;
	*v = (FleetElev){.host = f->cur,
	        .time_ms = e->time_ms,
	        .time = dup_or_empty(e->time),
	        .user = dup_or_empty(e->user),
	        .service = dup_or_empty(e->service),
	        .key = dup_or_empty(e->key),
	        .from = dup_or_empty(e->from),
	        .session = dup_or_empty(e->session),
	        .ended = dup_or_empty(e->ended)};
	return v->time && v->user && v->service && v->key && v->from && v->session && v->ended
	               ? 0
	               : -ENOMEM;
}

static int host_collect(const AuditEntry *e, const char *file, uint64_t line, void *userdata)
{
	Fleet *f = userdata;
	Host *h = &f->hosts[f->cur];

	h->records++;
	if (e->time_ms && (h->t_min == 0 || e->time_ms < h->t_min))
		h->t_min = e->time_ms;
	if (e->time_ms > h->t_max)
		h->t_max = e->time_ms;
	return report_scan_collect(e, file, line, f->scan);
}

static int host_begin(Fleet *f)
{
	report_scan_free(f->scan);
	f->scan = report_scan_new(f->since, f->until);
	return f->scan ? 0 : -ENOMEM;
}

/* The host's rows into the merged tables; its own tables are freed. */
static int host_end(Fleet *f)
{
	static const ReportScanSink sink = {sink_auth, sink_elev};
	int q = report_scan_rows(f->scan, &sink, f);

	if (q > 0)
		f->hosts[f->cur].truncated = true;
	report_scan_free(f->scan);
	f->scan = NULL;
	return q < 0 ? q : 0;
}

/* The seq of line LINE of FILE, when that line is a record. */
static bool line_seq(const char *file, uint64_t line, uint64_t *ret)
{
	_cleanup_fclose_ FILE *fp = fopen(file, "re");
	_cleanup_free_ char *buf = NULL;
	_cleanup_(audit_entry_freep) AuditEntry *e = NULL;
	const char *why;
	size_t cap = 0;
	ssize_t len = -1;

	if (!fp || line == 0)
		return false;
	for (uint64_t i = 0; i < line; i++) {
		len = getline(&buf, &cap, fp);
		if (len < 0 || (size_t)len > AUDIT_LINE_MAX + 1)
			return false;
	}
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (audit_entry_parse(buf, (size_t)len, &e, &why) < 0)
		return false;
	*ret = e->seq;
	return true;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(strempty(p), '/');
	return s ? s + 1 : strempty(p);
}

/* The verdict from audit verify's result, in the fleet's words. */
static int host_verdict(Host *h, int verify_error, const AuditVerifyResult *res, bool keyed,
        const char *key_note, size_t n_anchors)
{
	char buf[1024], verdict[256], reason[2048];
	uint64_t seq;

	switch (ctl_audit_verdict(verify_error, res, buf, sizeof(buf))) {
	case CTL_AUDIT_UNREADABLE:
		return host_set(h, HOST_UNREADABLE, "unreadable", buf);
	case CTL_AUDIT_TAMPERED:
		if (line_seq(res->file, res->line, &seq))
			snprintf(verdict, sizeof(verdict), "broken at seq %" PRIu64, seq);
		else
			snprintf(verdict, sizeof(verdict), "broken at %s line %" PRIu64,
			        base_name(res->file), res->line);
		snprintf(reason, sizeof(reason), "%s at %s:%" PRIu64 ": %s",
		        audit_verify_status_to_string(res->status), base_name(res->file), res->line,
		        strna(res->message));
		return host_set(h, HOST_BROKEN, verdict, reason);
	case CTL_AUDIT_NOT_PROVEN:
		snprintf(reason, sizeof(reason), "%s%s%s", buf, key_note ? ". " : "",
		        strempty(key_note));
		return host_set(h, HOST_UNVERIFIABLE,
		        keyed ? "unverifiable (seals not proven)" : "unverifiable (no key)",
		        reason);
	default:
		break;
	}
	if (n_anchors == 0) {
		snprintf(reason, sizeof(reason),
		        "%s; no anchors file: a trail cut back to a seal, or an older copy "
		        "restored, would not show",
		        buf);
		return host_set(h, HOST_NO_ANCHORS, "missing anchors", reason);
	}
	snprintf(reason, sizeof(reason), "%s; %" PRIu64 " of %zu anchor(s) matched", buf,
	        res->anchors_matched, n_anchors);
	return host_set(h, HOST_INTACT, "intact", reason);
}

/* --host NAME=DIR_OR_FILE: DIR holds audit.log (and its rotated files), the key that
 * proves its seals (verification.key from `audit setup-keys`, or a legacy
 * audit-seal.key) and an anchors file (lines of `keywardctl audit anchor`), each when
 * the host has one. A FILE is the trail; the key and anchors are looked for beside it. */
static int read_file_host(Fleet *f, const char *arg)
{
	const char *eq = strchr(arg, '=');
	_cleanup_free_ char *name = NULL, *dir = NULL, *trail = NULL, *key_path = NULL,
	                    *anchors_path = NULL, *note = NULL;
	_cleanup_free_ AuditAnchor *anchors = NULL;
	_cleanup_strv_free_ char **files = NULL;
	AuditVerifyResult res = {};
	AuditSealKey key = {};
	AuditVerifyOptions vo = {};
	size_t n_anchors = 0;
	uint64_t bad = 0;
	struct stat st;
	bool keyed = false;
	Host *h;
	int q;

	if (!eq || !host_name_valid(arg, (size_t)(eq - arg)) || eq[1] == '\0') {
		fprintf(stderr,
		        "keywardctl report: --host %s: expected NAME=DIR or NAME=FILE, NAME of "
		        "letters, digits, '.', '-', '_' (at most %u)\n",
		        arg, HOST_NAME_LEN_MAX);
		return -EINVAL;
	}
	name = strndup(arg, (size_t)(eq - arg));
	if (!name)
		return -ENOMEM;
	if (host_known(f, name)) {
		fprintf(stderr, "keywardctl report: host %s is given twice\n", name);
		return -EINVAL;
	}
	h = host_add(f, name, eq + 1);
	if (!h)
		return -ENOMEM;
	if (stat(eq + 1, &st) < 0) {
		q = -errno;
		char why[512];
		snprintf(why, sizeof(why), "cannot read %s: %s", eq + 1, strerror(-q));
		return host_set(h, HOST_UNREADABLE, "unreadable", why);
	}
	if (S_ISDIR(st.st_mode)) {
		dir = strdup(eq + 1);
		if (!dir || asprintf(&trail, "%s/audit.log", dir) < 0)
			return -ENOMEM;
	} else {
		const char *slash = strrchr(eq + 1, '/');
		dir = slash ? strndup(eq + 1, (size_t)(slash - eq - 1) ?: 1) : strdup(".");
		trail = strdup(eq + 1);
		if (!dir || !trail)
			return -ENOMEM;
	}
	q = audit_trail_files(trail, &files);
	if (q < 0 || strv_length(files) == 0) {
		char why[512];
		snprintf(why, sizeof(why), "no trail at %s: %s", trail,
		        strerror(q < 0 ? -q : ENOENT));
		return host_set(h, HOST_UNREADABLE, "unreadable", why);
	}

	if (asprintf(&key_path, "%s/verification.key", dir) < 0)
		return -ENOMEM;
	if (access(key_path, F_OK) < 0) {
		free(key_path);
		if (asprintf(&key_path, "%s/" AUDIT_SEAL_KEY_FILENAME, dir) < 0)
			return -ENOMEM;
	}
	if (access(key_path, F_OK) == 0) {
		q = ctl_audit_load_key("keywardctl report", key_path, false, &key, &vo, &note);
		if (q < 0)
			return q;
		keyed = q > 0;
	} else if (asprintf(&note, "no verification.key or " AUDIT_SEAL_KEY_FILENAME " in %s",
	                   dir) < 0)
		return -ENOMEM;

	if (asprintf(&anchors_path, "%s/anchors", dir) < 0)
		return -ENOMEM;
	if (access(anchors_path, F_OK) == 0) {
		q = ctl_audit_anchors_from_arg(anchors_path, &anchors, &n_anchors);
		if (q < 0) {
			audit_seal_key_clear(&key);
			return q; /* the message is printed */
		}
	}
	/* The anchors the host sent to journald, where the collector's journal is given. */
	for (char **j = f->journals; j && *j; j++) {
		q = ctl_audit_anchors_from_journal(*j, name, &anchors, &n_anchors);
		if (q < 0) {
			audit_seal_key_clear(&key);
			return q;
		}
	}
	vo.anchors = anchors;
	vo.n_anchors = n_anchors;

	q = host_begin(f);
	if (q >= 0)
		q = audit_verify_read_files(files, &vo, &res, host_collect, f, &bad);
	audit_seal_key_clear(&key);
	if (q == -ENOMEM) {
		audit_verify_result_clear(&res);
		return q;
	}
	q = host_verdict(h, q < 0 ? q : 0, &res, keyed, note, n_anchors);
	audit_verify_result_clear(&res);
	if (q < 0)
		return q;
	return host_end(f);
}

/* ---- the forwarded journal: the KEYWARD_* copies of every record ---- */

/* FIELD's value in the current entry into *RET (NULL when absent). -EBADMSG: too long. */
static int jfield(sd_journal *j, const char *field, char **ret)
{
	const void *d;
	size_t l, fl = strlen(field);
	int r;

	*ret = NULL;
	r = sd_journal_get_data(j, field, &d, &l);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (l < fl + 1 || l - fl - 1 > JOURNAL_VALUE_MAX || memchr(d, '\0', l))
		return -EBADMSG;
	*ret = strndup((const char *)d + fl + 1, l - fl - 1);
	return *ret ? 0 : -ENOMEM;
}

static bool parse_u64(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	if (!s || !*s || strlen(s) > 19)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ret = v;
	return true;
}

typedef struct JournalSeq {
	uint64_t last, first, gap_after, gap_next;
	bool gap;
} JournalSeq;

static const struct {
	const char *field;
	size_t offset;
} journal_strings[] = {
        {"KEYWARD_REASON", offsetof(AuditEntry, reason)},
        {"KEYWARD_USER", offsetof(AuditEntry, user)},
        {"KEYWARD_SERVICE", offsetof(AuditEntry, service)},
        {"KEYWARD_TTY", offsetof(AuditEntry, tty)},
        {"KEYWARD_RHOST", offsetof(AuditEntry, rhost)},
        {"KEYWARD_CREDENTIAL", offsetof(AuditEntry, cred_label)},
        {"KEYWARD_CREDENTIAL_ID", offsetof(AuditEntry, cred_id)},
        {"KEYWARD_AAGUID", offsetof(AuditEntry, aaguid)},
        {"KEYWARD_DEVICE", offsetof(AuditEntry, device)},
        {"KEYWARD_RULE", offsetof(AuditEntry, rule)},
        {"KEYWARD_SESSION", offsetof(AuditEntry, session)},
        {"KEYWARD_ACTION", offsetof(AuditEntry, action)},
        {"KEYWARD_DETAIL", offsetof(AuditEntry, detail)},
};

/* The current entry as a record; 0: done, 1: not a keyward record, -EBADMSG: malformed. */
static int journal_entry(sd_journal *j, const char *host, Fleet *f, JournalSeq *js)
{
	_cleanup_free_ char *event = NULL, *result = NULL, *seq = NULL, *uid = NULL, *aseq = NULL;
	char *strs[ELEMENTSOF(journal_strings)] = {};
	char time[40];
	uint64_t usec, n;
	AuditEntry e = {
	        .uid = -1, .actor_uid = -1, .actor_loginuid = -1, .epoch = AUDIT_SEAL_EPOCH_NONE};
	int q;

	q = jfield(j, "KEYWARD_EVENT", &event);
	if (q < 0 || !event)
		return q < 0 ? q : 1;
	q = jfield(j, "KEYWARD_RESULT", &result);
	if (q >= 0)
		q = jfield(j, "KEYWARD_SEQ", &seq);
	if (q >= 0)
		q = jfield(j, "KEYWARD_UID", &uid);
	if (q >= 0)
		q = jfield(j, "KEYWARD_ACTION_SEQ", &aseq);
	for (size_t i = 0; q >= 0 && i < ELEMENTSOF(journal_strings); i++)
		q = jfield(j, journal_strings[i].field, &strs[i]);
	if (q < 0)
		goto out;
	q = -EBADMSG;
	e.event = audit_event_from_string(event);
	e.result = result ? audit_result_from_string(result) : _AUDIT_RESULT_INVALID;
	if ((int)e.event < 0 || (int)e.result < 0 || !parse_u64(seq, &e.seq) ||
	        (uid && !parse_u64(uid, &n)) || (aseq && !parse_u64(aseq, &e.action_seq)) ||
	        sd_journal_get_realtime_usec(j, &usec) < 0)
		goto out;
	if (uid && parse_u64(uid, &n) && n <= INT64_MAX)
		e.uid = (int64_t)n;
	e.time_ms = usec / 1000;
	if (format_rfc3339_ms(e.time_ms, time, sizeof(time)) < 0)
		goto out;
	e.time = time;
	e.host = (char *)host;
	for (size_t i = 0; i < ELEMENTSOF(journal_strings); i++)
		*(char **)((char *)&e + journal_strings[i].offset) = strs[i];
	if (js->last && e.seq != js->last + 1 && !js->gap) {
		js->gap = true;
		js->gap_after = js->last;
		js->gap_next = e.seq;
	}
	if (!js->first)
		js->first = e.seq;
	js->last = e.seq;
	q = host_collect(&e, host, 0, f);
out:
	for (size_t i = 0; i < ELEMENTSOF(strs); i++)
		free(strs[i]);
	return q;
}

static int journal_open(const char *path, sd_journal **ret)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return sd_journal_open_directory(ret, path, 0);
	return sd_journal_open_files(ret, (const char *[]){path, NULL}, 0);
}

/* One host of the journal: its records in one pass, then its verdict. */
static int read_journal_host(Fleet *f, sd_journal *j, const char *path, const char *host)
{
	_cleanup_free_ char *match = NULL;
	_cleanup_free_ AuditAnchor *anchors = NULL;
	JournalSeq js = {};
	size_t n_anchors = 0;
	uint64_t bad = 0, anchored = 0;
	char verdict[128], reason[1024];
	Host *h;
	int q;

	h = host_add(f, host, path);
	if (!h || asprintf(&match, "_HOSTNAME=%s", host) < 0)
		return -ENOMEM;
	q = host_begin(f);
	if (q < 0)
		return q;
	sd_journal_flush_matches(j);
	q = sd_journal_add_match(j, match, 0);
	if (q < 0)
		return q;
	SD_JOURNAL_FOREACH(j)
	{
		q = journal_entry(j, host, f, &js);
		if (q == -EBADMSG)
			bad++;
		else if (q < 0)
			return q;
	}
	/* The seals' anchors reach further than the forwarded records: the end is missing. */
	if (ctl_audit_anchors_from_journal(path, host, &anchors, &n_anchors) >= 0)
		for (size_t i = 0; i < n_anchors; i++)
			if (anchors[i].seq > anchored)
				anchored = anchors[i].seq;
	if (js.gap) {
		snprintf(verdict, sizeof(verdict), "records missing after seq %" PRIu64,
		        js.gap_after);
		snprintf(reason, sizeof(reason),
		        "forwarded records jump from seq %" PRIu64 " to %" PRIu64
		        ": records were lost in forwarding or removed; check the host's trail",
		        js.gap_after, js.gap_next);
		q = host_set(h, HOST_GAP, verdict, reason);
	} else if (anchored > js.last) {
		snprintf(verdict, sizeof(verdict), "records missing after seq %" PRIu64, js.last);
		snprintf(reason, sizeof(reason),
		        "the host's anchors reach seq %" PRIu64 " but its forwarded records end "
		        "at seq %" PRIu64,
		        anchored, js.last);
		q = host_set(h, HOST_GAP, verdict, reason);
	} else {
		snprintf(reason, sizeof(reason),
		        "journal copies carry no hash chain: seq %" PRIu64 "..%" PRIu64
		        " without a gap, %zu anchor(s), %" PRIu64
		        " malformed entries; verify the host's trail itself with --host",
		        js.first, js.last, n_anchors, bad);
		q = host_set(h, HOST_JOURNAL, "unverifiable (journal copy)", reason);
	}
	if (q < 0)
		return q;
	return host_end(f);
}

/* --journal DIR|FILE: the hosts are the _HOSTNAMEs of entries that carry KEYWARD_EVENT. */
static int read_journal(Fleet *f, const char *path)
{
	_cleanup_(sd_journal_closep) sd_journal *j = NULL;
	_cleanup_strv_free_ char **names = NULL;
	const void *d;
	size_t l;
	int q;

	q = journal_open(path, &j);
	if (q < 0) {
		fprintf(stderr, "keywardctl report: cannot open the journal %s: %s\n", path,
		        strerror(-q));
		return q;
	}
	q = sd_journal_query_unique(j, "_HOSTNAME");
	if (q < 0)
		return q;
	SD_JOURNAL_FOREACH_UNIQUE(j, d, l)
	{
		_cleanup_free_ char *n = NULL;

		if (l <= 10 || l - 10 > HOST_NAME_LEN_MAX || memchr(d, '\0', l))
			continue; /* not a host name keyward writes (HOST_NAME_MAX) */
		n = strndup((const char *)d + 10, l - 10);
		if (!n)
			return -ENOMEM;
		if (!host_name_valid(n, strlen(n))) {
			_cleanup_free_ char *c = report_clean_strdup(n);
			fprintf(stderr,
			        "keywardctl report: %s: entries of '%s' skipped (not a host "
			        "name)\n",
			        path, strna(c));
			continue;
		}
		if (strv_length(names) >= HOSTS_MAX)
			return -E2BIG;
		if (strv_extend(&names, n) < 0)
			return -ENOMEM;
	}
	(void)strv_sort_uniq(names, strv_length(names));
	for (char **n = names; n && *n; n++) {
		size_t before = f->n_hosts;

		/* Its trail is given (--host): the report has its verified records, and the
		 * journal gave their anchors. */
		if (host_known(f, *n))
			continue;

		q = read_journal_host(f, j, path, *n);
		if (q < 0)
			return q;
		/* A host that forwarded nothing of keyward's is not in the report. */
		if (f->n_hosts > before && f->hosts[f->n_hosts - 1].records == 0) {
			Host *h = &f->hosts[--f->n_hosts];
			free(h->name), free(h->source), free(h->verdict), free(h->reason);
		}
	}
	return 0;
}

/* ---- writing ---- */

static int cmp_auth(const void *a, const void *b)
{
	const FleetAuth *x = a, *y = b;
	int c;

	if (x->first_ms != y->first_ms)
		return x->first_ms < y->first_ms ? -1 : 1;
	if (x->host != y->host)
		return x->host < y->host ? -1 : 1;
	c = strcmp(x->user, y->user);
	return c ? c : strcmp(x->service, y->service);
}

static int cmp_elev(const void *a, const void *b)
{
	const FleetElev *x = a, *y = b;

	if (x->time_ms != y->time_ms)
		return x->time_ms < y->time_ms ? -1 : 1;
	return x->host < y->host ? -1 : x->host > y->host;
}

static void fmt_ms(uint64_t ms, char *buf, size_t size)
{
	if (ms == 0 || format_rfc3339_ms(ms, buf, size) < 0)
		snprintf(buf, size, "-");
}

static size_t count_status(const Fleet *f, HostStatus s)
{
	size_t n = 0;
	for (size_t i = 0; i < f->n_hosts; i++)
		n += f->hosts[i].status == s;
	return n;
}

static void period(const Fleet *f, char *buf, size_t size)
{
	char a[40] = "(start of trails)", b[40] = "(end of trails)";

	if (f->since)
		fmt_ms(f->since, a, sizeof(a));
	if (f->until)
		fmt_ms(f->until, b, sizeof(b));
	snprintf(buf, size, "%s .. %s", a, b);
}

static int emit_text(FILE *o, void *userdata)
{
	const Fleet *f = userdata;
	char t1[40], t2[40], buf[128];

	fputs("keyward fleet report\n====================\n", o);
	fmt_ms(now_realtime_ms(), t1, sizeof(t1));
	period(f, buf, sizeof(buf));
	fprintf(o, "Generated: %s\nPeriod:    %s\n", t1, buf);
	fprintf(o, "Hosts:     %zu (%zu broken or unreadable, %zu not proven)\n", f->n_hosts,
	        count_status(f, HOST_BROKEN) + count_status(f, HOST_UNREADABLE) +
	                count_status(f, HOST_GAP),
	        count_status(f, HOST_UNVERIFIABLE) + count_status(f, HOST_JOURNAL));
	if (f->truncated)
		fprintf(o, "NOTE: some tables were cut at %u rows.\n", FLEET_MAX_ROWS);

	fputs("\nHosts and the integrity of their trails\n"
	      "---------------------------------------\n",
	        o);
	fprintf(o, "%-20s %-24s %-24s %8s  %s\n", "HOST", "FIRST RECORD", "LAST RECORD", "RECORDS",
	        "VERDICT");
	for (size_t i = 0; i < f->n_hosts; i++) {
		const Host *h = &f->hosts[i];
		fmt_ms(h->t_min, t1, sizeof(t1));
		fmt_ms(h->t_max, t2, sizeof(t2));
		fprintf(o, "%-20s %-24s %-24s %8" PRIu64 "  %s%s\n    %s\n    source: %s\n",
		        h->name, t1, t2, h->records, h->verdict,
		        h->truncated ? " (tables cut)" : "", h->reason, h->source);
	}

	fputs("\nCoverage: key-verified authentications per host, user and service\n"
	      "------------------------------------------------------------------\n"
	      "(first column: '!' the host's trail failed verification, '?' not proven)\n",
	        o);
	fprintf(o, "  %-24s %-24s %-16s %-15s %-12s %-12s %7s %7s  %s\n", "FIRST", "LAST", "HOST",
	        "TRAIL", "USER", "SERVICE", "SUCCESS", "FAILURE", "FAILURE REASONS");
	for (size_t i = 0; i < f->n_auth; i++) {
		const FleetAuth *a = &f->auth[i];
		const Host *h = &f->hosts[a->host];
		fmt_ms(a->first_ms, t1, sizeof(t1));
		fmt_ms(a->last_ms, t2, sizeof(t2));
		fprintf(o, "%c %-24s %-24s %-16s %-15s %-12s %-12s %7" PRIu64 " %7" PRIu64 "  %s\n",
		        status_mark(h->status), t1, t2, h->name, host_status_names[h->status],
		        a->user, a->service, a->success, a->failure, a->reasons);
	}

	fputs("\nElevations and sessions, by time across hosts\n"
	      "---------------------------------------------\n",
	        o);
	fprintf(o, "  %-24s %-16s %-15s %-12s %-12s %-14s %-16s %-10s %s\n", "TIME", "HOST",
	        "TRAIL", "USER", "SERVICE", "KEY", "FROM", "SESSION", "ENDED");
	for (size_t i = 0; i < f->n_elev; i++) {
		const FleetElev *v = &f->elev[i];
		const Host *h = &f->hosts[v->host];
		fprintf(o, "%c %-24s %-16s %-15s %-12s %-12s %-14s %-16s %-10s %s\n",
		        status_mark(h->status), v->time, h->name, host_status_names[h->status],
		        v->user, v->service, v->key, v->from, v->session, v->ended);
	}
	return 0;
}

static void js(JsonBuf *b, const char *key, const char *v)
{
	json_buf_printf(b, ",\"%s\":", key);
	json_buf_put_string(b, strempty(v), SIZE_MAX);
}

static void js_time(JsonBuf *b, const char *key, uint64_t ms)
{
	char t[40];

	json_buf_printf(b, ",\"%s\":", key);
	if (ms == 0 || format_rfc3339_ms(ms, t, sizeof(t)) < 0)
		json_buf_puts(b, "null");
	else
		json_buf_put_string(b, t, SIZE_MAX);
}

static int emit_json(FILE *o, void *userdata)
{
	const Fleet *f = userdata;
	JsonBuf b = {};

	json_buf_puts(&b, "{\"report\":\"keyward-fleet\"");
	js_time(&b, "generated", now_realtime_ms());
	js_time(&b, "since", f->since);
	js_time(&b, "until", f->until);
	json_buf_printf(&b, ",\"truncated\":%s,\"hosts\":[", f->truncated ? "true" : "false");
	for (size_t i = 0; i < f->n_hosts; i++) {
		const Host *h = &f->hosts[i];
		json_buf_printf(&b, "%s{\"host\":", i ? "," : "");
		json_buf_put_string(&b, h->name, SIZE_MAX);
		js(&b, "source", h->source);
		js_time(&b, "first", h->t_min);
		js_time(&b, "last", h->t_max);
		json_buf_printf(&b, ",\"records\":%" PRIu64, h->records);
		js(&b, "status", host_status_names[h->status]);
		js(&b, "verdict", h->verdict);
		js(&b, "reason", h->reason);
		json_buf_printf(&b, ",\"truncated\":%s}", h->truncated ? "true" : "false");
	}
	json_buf_puts(&b, "],\"coverage\":[");
	for (size_t i = 0; i < f->n_auth; i++) {
		const FleetAuth *a = &f->auth[i];
		const Host *h = &f->hosts[a->host];
		json_buf_printf(&b, "%s{\"host\":", i ? "," : "");
		json_buf_put_string(&b, h->name, SIZE_MAX);
		js(&b, "trail", host_status_names[h->status]);
		js(&b, "user", a->user);
		js(&b, "service", a->service);
		json_buf_printf(&b, ",\"success\":%" PRIu64 ",\"failure\":%" PRIu64, a->success,
		        a->failure);
		js(&b, "failure_reasons", a->reasons);
		js_time(&b, "first", a->first_ms);
		js_time(&b, "last", a->last_ms);
		json_buf_puts(&b, "}");
	}
	json_buf_puts(&b, "],\"elevations\":[");
	for (size_t i = 0; i < f->n_elev; i++) {
		const FleetElev *v = &f->elev[i];
		const Host *h = &f->hosts[v->host];
		json_buf_printf(&b, "%s{\"time\":", i ? "," : "");
		json_buf_put_string(&b, v->time, SIZE_MAX);
		js(&b, "host", h->name);
		js(&b, "trail", host_status_names[h->status]);
		js(&b, "user", v->user);
		js(&b, "service", v->service);
		js(&b, "key", v->key);
		js(&b, "from", v->from);
		js(&b, "session", v->session);
		js(&b, "ended", v->ended);
		json_buf_puts(&b, "}");
	}
	json_buf_puts(&b, "]}\n");
	if (b.oom) {
		json_buf_free(&b);
		return CTL_EXIT_ERROR;
	}
	fputs(b.data, o);
	json_buf_free(&b);
	return 0;
}

/* ---- CSV and HTML: the same three tables, cell by cell ---- */

typedef enum Table {
	TABLE_HOSTS,
	TABLE_COVERAGE,
	TABLE_ELEVATIONS,
	_TABLE_MAX,
} Table;

#define TABLE_COLS_MAX 10

static const struct {
	const char *id, *title;
	const char *cols[TABLE_COLS_MAX];
} tables[_TABLE_MAX] = {
        [TABLE_HOSTS] = {"hosts", "Hosts and the integrity of their trails",
                {"host", "first", "last", "records", "status", "verdict", "reason", "source"}},
        [TABLE_COVERAGE] = {"coverage",
                "Coverage: key-verified authentications per host, user and service",
                {"first", "last", "host", "trail", "user", "service", "success", "failure",
                        "failure_reasons"}},
        [TABLE_ELEVATIONS] = {"elevations", "Elevations and sessions, by time across hosts",
                {"time", "host", "trail", "user", "service", "key", "from", "session", "ended"}},
};

typedef struct Cells {
	const char *c[TABLE_COLS_MAX];
	size_t n;
	HostStatus status; /* of the row's host */
	char t1[40], t2[40], n1[24], n2[24];
} Cells;

static void cells_set(Cells *c, HostStatus status, const char *const *cells, size_t n)
{
	c->status = status;
	c->n = n;
	for (size_t k = 0; k < n; k++)
		c->c[k] = cells[k];
}

static size_t table_rows(const Fleet *f, Table t)
{
	return t == TABLE_HOSTS ? f->n_hosts : t == TABLE_COVERAGE ? f->n_auth : f->n_elev;
}

static void table_cells(const Fleet *f, Table t, size_t i, Cells *c)
{
	const Host *h;

	switch (t) {
	case TABLE_HOSTS:
		h = &f->hosts[i];
		fmt_ms(h->t_min, c->t1, sizeof(c->t1));
		fmt_ms(h->t_max, c->t2, sizeof(c->t2));
		snprintf(c->n1, sizeof(c->n1), "%" PRIu64, h->records);
		cells_set(c, h->status,
		        (const char *[]){h->name, c->t1, c->t2, c->n1, host_status_names[h->status],
		                h->verdict, h->reason, h->source},
		        8);
		break;
	case TABLE_COVERAGE: {
		const FleetAuth *a = &f->auth[i];
		h = &f->hosts[a->host];
		fmt_ms(a->first_ms, c->t1, sizeof(c->t1));
		fmt_ms(a->last_ms, c->t2, sizeof(c->t2));
		snprintf(c->n1, sizeof(c->n1), "%" PRIu64, a->success);
		snprintf(c->n2, sizeof(c->n2), "%" PRIu64, a->failure);
		cells_set(c, h->status,
		        (const char *[]){c->t1, c->t2, h->name, host_status_names[h->status],
		                a->user, a->service, c->n1, c->n2, a->reasons},
		        9);
		break;
	}
	default: {
		const FleetElev *v = &f->elev[i];
		h = &f->hosts[v->host];
		cells_set(c, h->status,
		        (const char *[]){v->time, h->name, host_status_names[h->status], v->user,
		                v->service, v->key, v->from, v->session, v->ended},
		        9);
		break;
	}
	}
}

static int emit_csv(FILE *o, void *userdata)
{
	const Fleet *f = userdata;

	for (Table t = 0; t < _TABLE_MAX; t++) {
		fputs(t ? "\r\nsection" : "section", o);
		for (size_t k = 0; tables[t].cols[k] && k < TABLE_COLS_MAX; k++)
			fprintf(o, ",%s", tables[t].cols[k]);
		fputs("\r\n", o);
		for (size_t i = 0; i < table_rows(f, t); i++) {
			Cells c;
			table_cells(f, t, i, &c);
			csv_write_field(o, tables[t].id, false);
			for (size_t k = 0; k < c.n; k++)
				csv_write_field(o, c.c[k], k + 1 == c.n);
		}
	}
	return 0;
}

static const char *html_class(HostStatus s)
{
	return s >= HOST_GAP ? "broken" : s >= HOST_UNVERIFIABLE ? "unproven" : "ok";
}

static int emit_html(FILE *o, void *userdata)
{
	const Fleet *f = userdata;
	char t1[40], buf[128];

	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	      "<title>keyward fleet report</title>\n<style>\n"
	      "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:2em;color:#222}\n"
	      "h1{font-size:1.6em;border-bottom:2px solid #333}h2{font-size:1.2em;"
	      "margin-top:1.6em;border-bottom:1px solid #bbb}\n"
	      "table{border-collapse:collapse;font-size:.9em}th,td{border:1px solid #ccc;"
	      "padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f0f0f0}\n"
	      "tr.broken{background:#fde2de;font-weight:bold}tr.unproven{background:#fff4d6}\n"
	      "@media print{body{margin:0}table{page-break-inside:avoid}}\n"
	      "</style></head><body>\n<h1>keyward fleet report</h1>\n",
	        o);
	fmt_ms(now_realtime_ms(), t1, sizeof(t1));
	period(f, buf, sizeof(buf));
	fprintf(o, "<p>Generated %s. Period: ", t1);
	report_html_escape(o, buf);
	fprintf(o,
	        ". %zu host(s). Rows of a host whose trail failed verification are red, of one "
	        "not proven yellow.%s</p>\n",
	        f->n_hosts, f->truncated ? " Some tables were cut at their row limit." : "");
	for (Table t = 0; t < _TABLE_MAX; t++) {
		fprintf(o, "<section id=\"%s\"><h2>%s</h2>\n<table><tr>", tables[t].id,
		        tables[t].title);
		for (size_t k = 0; tables[t].cols[k] && k < TABLE_COLS_MAX; k++)
			fprintf(o, "<th>%s</th>", tables[t].cols[k]);
		fputs("</tr>\n", o);
		for (size_t i = 0; i < table_rows(f, t); i++) {
			Cells c;
			table_cells(f, t, i, &c);
			fprintf(o, "<tr class=\"%s\">", html_class(c.status));
			for (size_t k = 0; k < c.n; k++) {
				fputs("<td>", o);
				report_html_escape(o, c.c[k]);
				fputs("</td>", o);
			}
			fputs("</tr>\n", o);
		}
		fputs("</table></section>\n", o);
	}
	fputs("</body></html>\n", o);
	return 0;
}

/* Reads every input of ARGS with READ; 0, or the exit code. */
static int read_inputs(Fleet *f, char **args, int (*read)(Fleet *, const char *), const char *what)
{
	for (char **i = args; i && *i; i++) {
		int q = read(f, *i);
		if (q == -EINVAL)
			return CTL_EXIT_USAGE;
		if (q < 0) {
			fprintf(stderr, "keywardctl report: %s %s: %s\n", what, *i, strerror(-q));
			return CTL_EXIT_ERROR;
		}
	}
	return 0;
}

int report_hosts_main(const ReportHostsArgs *a)
{
	_cleanup_(fleet_done)
	        Fleet f = {.since = a->since, .until = a->until, .journals = a->journals};
	HostStatus worst = HOST_INTACT;
	int (*emit)(FILE *, void *) = streq(a->format, "json")   ? emit_json
	                              : streq(a->format, "csv")  ? emit_csv
	                              : streq(a->format, "html") ? emit_html
	                                                         : emit_text;
	int q;

	q = read_inputs(&f, a->hosts, read_file_host, "host");
	if (q == 0)
		q = read_inputs(&f, a->journals, read_journal, "journal");
	if (q != 0)
		return q;
	if (f.n_hosts == 0) {
		fprintf(stderr, "keywardctl report: no host with keyward records in the input\n");
		return CTL_EXIT_ERROR;
	}
	if (f.n_auth > 1)
		qsort(f.auth, f.n_auth, sizeof(FleetAuth), cmp_auth);
	if (f.n_elev > 1)
		qsort(f.elev, f.n_elev, sizeof(FleetElev), cmp_elev);
	for (size_t i = 0; i < f.n_hosts; i++)
		if (f.hosts[i].status > worst)
			worst = f.hosts[i].status;
	q = report_write_output(a->out, emit, &f);
	if (q != 0)
		return q;
	return worst >= HOST_GAP            ? CTL_EXIT_FAILURE
	       : worst >= HOST_UNVERIFIABLE ? CTL_EXIT_NOT_PROVEN
	                                    : CTL_EXIT_OK;
}
