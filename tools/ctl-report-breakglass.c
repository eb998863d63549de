/* ctl-report-breakglass.c: the report's break-glass section, first in every format —
 * each issue, use, failed attempt, approval, expiry and revoke, and the sessions opened. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-report.h"
#include "util.h"

typedef enum BgKind {
	BG_ISSUE,
	BG_USE,
	BG_FAIL,
	BG_APPROVE,
	BG_EXPIRE,
	BG_REVOKE,
	BG_ENROLL_REQUIRED, /* an auth/account refusal: no elevation before a new key */
	_BG_KIND_MAX,
} BgKind;

/* The trail's event name and the controls each row evidences. */
static const struct {
	const char *event, *controls;
} kinds[_BG_KIND_MAX] = {
        [BG_ISSUE] = {"breakglass-issue", "AC-2,AC-2(2),IA-5"},
        [BG_USE] = {"breakglass-use", "AC-2,IA-5,AU-6"},
        [BG_FAIL] = {"breakglass-fail", "IA-5,AU-6"},
        [BG_APPROVE] = {"breakglass-approve", "AC-2,AC-2(2)"},
        [BG_EXPIRE] = {"breakglass-expire", "AC-2(2),IA-5"},
        [BG_REVOKE] = {"breakglass-revoke", "AC-2,IA-5"},
        [BG_ENROLL_REQUIRED] = {NULL, "AC-2,IA-5"},
};

typedef struct BgRow {
	BgKind kind;
	char *time, *event, *result, *actor, *user, *service, *tty, *rhost, *reason, *session,
	        *detail;
} BgRow;

/* One login break-glass let in: where it went, how it ended, and when the user enrolled
 * a new key afterwards. */
typedef struct BgSession {
	char *time, *user, *service, *session, *via, *enrolled;
	bool bound; /* a session-bind named its session */
	bool ended;
} BgSession;

struct BreakglassReport {
	BgRow *rows;
	size_t n_rows;
	BgSession *sessions;
	size_t n_sessions;
	uint64_t n[_BG_KIND_MAX];
	uint64_t codes_issued, codes_expired, by_code, by_approval;
	bool truncated;
};

static void row_done(BgRow *r)
{
	free(r->time), free(r->event), free(r->result), free(r->actor), free(r->user);
	free(r->service), free(r->tty), free(r->rhost), free(r->reason), free(r->session);
	free(r->detail);
}

static void session_done(BgSession *s)
{
	free(s->time), free(s->user), free(s->service), free(s->session), free(s->via);
	free(s->enrolled);
}

int breakglass_report_new(BreakglassReport **ret)
{
	BreakglassReport *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	*ret = b;
	return 0;
}

BreakglassReport *breakglass_report_free(BreakglassReport *b)
{
	if (!b)
		return NULL;
	for (size_t i = 0; i < b->n_rows; i++)
		row_done(&b->rows[i]);
	free(b->rows);
	for (size_t i = 0; i < b->n_sessions; i++)
		session_done(&b->sessions[i]);
	free(b->sessions);
	free(b);
	return NULL;
}

bool breakglass_report_truncated(const BreakglassReport *b)
{
	return b && b->truncated;
}

static int kind_of(const AuditEntry *e)
{
	const char *ev = audit_event_to_string(e->event);

	if (!ev)
		return -1;
	for (BgKind k = 0; k < _BG_KIND_MAX; k++)
		if (kinds[k].event && streq(kinds[k].event, ev))
			return (int)k;
	if ((e->event == AUDIT_EVENT_AUTH || e->event == AUDIT_EVENT_ACCOUNT) && e->reason &&
	        streq(e->reason, "enroll-required"))
		return BG_ENROLL_REQUIRED;
	return -1;
}

/* N of "codes=N" in DETAIL (0 when absent or not a number). */
static uint64_t detail_codes(const char *detail)
{
	const char *p = detail ? strstr(detail, "codes=") : NULL;
	uint64_t v = 0;

	if (!p)
		return 0;
	for (p += strlen("codes="); *p >= '0' && *p <= '9' && v < UINT64_C(1) << 40; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	return v;
}

/* Who did it: the actor's login name, else its uid. */
static char *actor_of(const AuditEntry *e)
{
	char *s = NULL;

	if (e->actor)
		return report_clean_strdup(e->actor);
	if (e->actor_uid >= 0 && asprintf(&s, "uid %" PRId64, e->actor_uid) < 0)
		return NULL;
	return s;
}

static int add_session(BreakglassReport *b, const AuditEntry *e)
{
	BgSession *s = report_grow(&b->sessions, &b->n_sessions, sizeof(BgSession), &b->truncated);

	if (!s)
		return b->truncated ? 0 : -ENOMEM;
	s->time = report_clean_strdup(e->time);
	s->user = report_clean_strdup(e->user);
	s->service = report_clean_strdup(e->service);
	s->session = report_clean_strdup(e->session);
	s->via = report_clean_strdup(e->detail);
	if ((e->time && !s->time) || (e->user && !s->user) || (e->service && !s->service) ||
	        (e->session && !s->session) || (e->detail && !s->via))
		return -ENOMEM;
	return 0;
}

static bool same(const char *clean, const char *raw)
{
	_cleanup_free_ char *c = report_clean_strdup(raw);

	return clean && c && streq(clean, c);
}

/* The records that follow a break-glass login: its session bound (the logind session or
 * the elevation), unbound, and the user's next enrolment. */
static int follow_session(BreakglassReport *b, const AuditEntry *e)
{
	for (size_t i = b->n_sessions; i-- > 0;) {
		BgSession *s = &b->sessions[i];

		switch (e->event) {
		case AUDIT_EVENT_SESSION_BIND:
			/* keywardd marks the session a break-glass login opens (reason
			 * "breakglass": it is bound to no key); a later key login is not it */
			if (s->bound || e->result != AUDIT_RESULT_SUCCESS || !e->session ||
			        !e->reason || !streq(e->reason, "breakglass") ||
			        !same(s->user, e->user) ||
			        (e->service && s->service && !same(s->service, e->service)))
				break;
			free(s->session);
			s->session = report_clean_strdup(e->session);
			s->bound = true;
			return s->session ? 0 : -ENOMEM;
		case AUDIT_EVENT_SESSION_UNBIND:
			if (s->ended || !e->session || !same(s->session, e->session))
				break;
			s->ended = true;
			return 0;
		case AUDIT_EVENT_ENROLL:
			if (s->enrolled || e->result != AUDIT_RESULT_SUCCESS ||
			        !same(s->user, e->user))
				break;
			s->enrolled = report_clean_strdup(e->time);
			if (e->time && !s->enrolled)
				return -ENOMEM;
			break; /* every earlier break-glass login of the user too */
		default:
			return 0;
		}
	}
	return 0;
}

int breakglass_report_collect(BreakglassReport *b, const AuditEntry *e)
{
	int k = kind_of(e);
	BgRow *r;

	if (k < 0)
		return follow_session(b, e);
	b->n[k]++;
	if (k == BG_ISSUE && e->result == AUDIT_RESULT_SUCCESS)
		b->codes_issued += detail_codes(e->detail);
	if (k == BG_EXPIRE)
		b->codes_expired += detail_codes(e->detail);
	if (k == BG_USE && e->result == AUDIT_RESULT_SUCCESS) {
		int q;

		if (e->detail && strstr(e->detail, "approval="))
			b->by_approval++;
		else
			b->by_code++;
		q = add_session(b, e);
		if (q < 0)
			return q;
	}
	r = report_grow(&b->rows, &b->n_rows, sizeof(BgRow), &b->truncated);
	if (!r)
		return b->truncated ? 0 : -ENOMEM;
	r->kind = k;
	r->time = report_clean_strdup(e->time);
	r->event = report_clean_strdup(audit_event_to_string(e->event));
	r->result = report_clean_strdup(audit_result_to_string(e->result));
	r->actor = actor_of(e);
	r->user = report_clean_strdup(e->user);
	r->service = report_clean_strdup(e->service);
	r->tty = report_clean_strdup(e->tty);
	r->rhost = report_clean_strdup(e->rhost);
	r->reason = report_clean_strdup(e->reason);
	r->session = report_clean_strdup(e->session);
	r->detail = report_clean_strdup(e->detail); /* the message only repeats the reason */
	if (!r->event || !r->result)
		return -ENOMEM;
	return 0;
}

/* ---- per-row words ---- */

/* The controls a row evidences, comma-separated; a refusal for too many attempts also
 * AC-7. */
static const char *row_controls(const BgRow *r)
{
	if (r->kind == BG_FAIL && r->reason && streq(r->reason, "rate-limited"))
		return "IA-5,AU-6,AC-7";
	return kinds[r->kind].controls;
}

/* "reason; detail", the reason alone, the detail alone, or "-" (a success's "ok" says
 * nothing the result does not). */
static void row_why(const BgRow *r, char *buf, size_t size)
{
	const char *reason = r->reason && !streq(r->reason, "ok") ? r->reason : NULL;

	if (reason && r->detail)
		snprintf(buf, size, "%s; %s", reason, r->detail);
	else
		snprintf(buf, size, "%s", reason ?: r->detail ?: "-");
}

/* Where from: the remote host, else the terminal (keywardd writes an empty rhost for a
 * local login). */
static const char *row_from(const BgRow *r)
{
	return !isempty(r->rhost) ? r->rhost : !isempty(r->tty) ? r->tty : NULL;
}

static const char *session_end(const BgSession *s)
{
	if (s->ended)
		return "session ended";
	return s->session ? "still open" : "no session bound";
}

static size_t sessions_open(const BreakglassReport *b)
{
	size_t n = 0;

	for (size_t i = 0; i < b->n_sessions; i++)
		n += !b->sessions[i].ended && b->sessions[i].session;
	return n;
}

static void summary(const BreakglassReport *b, char *buf, size_t size)
{
	snprintf(buf, size,
	        "%" PRIu64 " issue(s) (%" PRIu64 " code(s)), %" PRIu64 " use(s) (%" PRIu64
	        " by code, %" PRIu64 " by two-person approval), %" PRIu64
	        " failed attempt(s), %" PRIu64 " approval(s), %" PRIu64 " expiry(ies) (%" PRIu64
	        " code(s)), %" PRIu64 " revocation(s), %" PRIu64
	        " elevation(s) refused until a new key is enrolled; %zu session(s) opened by "
	        "break-glass, %zu still open.",
	        b->n[BG_ISSUE], b->codes_issued, b->by_code + b->by_approval, b->by_code,
	        b->by_approval, b->n[BG_FAIL], b->n[BG_APPROVE], b->n[BG_EXPIRE], b->codes_expired,
	        b->n[BG_REVOKE], b->n[BG_ENROLL_REQUIRED], b->n_sessions, sessions_open(b));
}

#define BG_EMPTY "No break-glass events in this period."

/* ---- text ---- */

void breakglass_report_text(const BreakglassReport *b, FILE *f)
{
	char buf[1024];

	if (b->n_rows == 0) {
		fprintf(f, "%s\n", BG_EMPTY);
		return;
	}
	summary(b, buf, sizeof(buf));
	fprintf(f, "Count: %zu. %s\n", b->n_rows, buf);
	fprintf(f, "%-24s %-18s %-8s %-10s %-10s %-8s %-14s %-14s %-28s %s\n", "TIME", "EVENT",
	        "RESULT", "ACTOR", "USER", "SERVICE", "TTY/RHOST", "SESSION", "REASON/DETAIL",
	        "CONTROLS");
	for (size_t i = 0; i < b->n_rows; i++) {
		const BgRow *r = &b->rows[i];

		row_why(r, buf, sizeof(buf));
		fprintf(f, "%-24s %-18s %-8s %-10s %-10s %-8s %-14s %-14s %-28s %s\n",
		        strna(r->time), r->event, r->result, r->actor ?: "-", r->user ?: "-",
		        r->service ?: "-", row_from(r) ?: "-", r->session ?: "-", buf,
		        row_controls(r));
	}
	fprintf(f, "Sessions opened by break-glass: %zu\n", b->n_sessions);
	if (b->n_sessions == 0)
		return;
	fprintf(f, "  %-24s %-10s %-8s %-14s %-22s %-16s %s\n", "OPENED", "USER", "SERVICE",
	        "SESSION", "VIA", "ENDED", "NEW KEY ENROLLED");
	for (size_t i = 0; i < b->n_sessions; i++) {
		const BgSession *s = &b->sessions[i];

		fprintf(f, "  %-24s %-10s %-8s %-14s %-22s %-16s %s\n", strna(s->time),
		        s->user ?: "-", s->service ?: "-", s->session ?: "-", s->via ?: "-",
		        session_end(s), s->enrolled ?: "not yet");
	}
}

/* ---- JSON ---- */

/* CONTROLS ("AC-2,IA-5") as a JSON array of strings. */
static void json_controls(JsonBuf *j, const char *controls)
{
	const char *p = controls;

	json_buf_puts(j, ",\"controls\":[");
	while (*p) {
		size_t n = strcspn(p, ",");

		json_buf_printf(j, "%s\"%.*s\"", p == controls ? "" : ",", (int)n, p);
		p += n + (p[n] == ',');
	}
	json_buf_puts(j, "]");
}

void breakglass_report_json(const BreakglassReport *b, JsonBuf *j)
{
	json_buf_printf(j,
	        "\"breakglass\":{\"summary\":{\"issued\":%" PRIu64 ",\"codes_issued\":%" PRIu64
	        ",\"used\":%" PRIu64 ",\"used_by_code\":%" PRIu64 ",\"used_by_approval\":%" PRIu64
	        ",\"failed\":%" PRIu64 ",\"approved\":%" PRIu64 ",\"expired\":%" PRIu64
	        ",\"codes_expired\":%" PRIu64 ",\"revoked\":%" PRIu64
	        ",\"enroll_required\":%" PRIu64 ",\"sessions\":%zu,\"sessions_open\":%zu}",
	        b->n[BG_ISSUE], b->codes_issued, b->by_code + b->by_approval, b->by_code,
	        b->by_approval, b->n[BG_FAIL], b->n[BG_APPROVE], b->n[BG_EXPIRE], b->codes_expired,
	        b->n[BG_REVOKE], b->n[BG_ENROLL_REQUIRED], b->n_sessions, sessions_open(b));
	report_json_str(j, "note", b->n_rows ? NULL : BG_EMPTY, true);
	json_buf_puts(j, ",\"events\":[");
	for (size_t i = 0; i < b->n_rows; i++) {
		const BgRow *r = &b->rows[i];

		json_buf_puts(j, i ? ",{" : "{");
		report_json_str(j, "time", r->time, false);
		report_json_str(j, "event", r->event, true);
		report_json_str(j, "result", r->result, true);
		report_json_str(j, "actor", r->actor, true);
		report_json_str(j, "user", r->user, true);
		report_json_str(j, "service", r->service, true);
		report_json_str(j, "tty", r->tty, true);
		report_json_str(j, "rhost", r->rhost, true);
		report_json_str(j, "reason", r->reason, true);
		report_json_str(j, "session", r->session, true);
		report_json_str(j, "detail", r->detail, true);
		json_controls(j, row_controls(r));
		json_buf_puts(j, "}");
	}
	json_buf_puts(j, "],\"sessions\":[");
	for (size_t i = 0; i < b->n_sessions; i++) {
		const BgSession *s = &b->sessions[i];

		json_buf_puts(j, i ? ",{" : "{");
		report_json_str(j, "time", s->time, false);
		report_json_str(j, "user", s->user, true);
		report_json_str(j, "service", s->service, true);
		report_json_str(j, "session", s->session, true);
		report_json_str(j, "via", s->via, true);
		report_json_str(j, "ended", session_end(s), true);
		json_buf_printf(j, ",\"open\":%s", !s->ended && s->session ? "true" : "false");
		report_json_str(j, "new_key_enrolled", s->enrolled, true);
		json_buf_puts(j, "}");
	}
	json_buf_puts(j, "]}");
}

/* ---- CSV ---- */

void breakglass_report_csv(const BreakglassReport *b, FILE *f)
{
	fputs("section,time,event,result,actor,user,service,tty,rhost,reason,session,detail,"
	      "controls\r\n",
	        f);
	for (size_t i = 0; i < b->n_rows; i++) {
		const BgRow *r = &b->rows[i];
		const char *cells[] = {BREAKGLASS_REPORT_ID, r->time, r->event, r->result, r->actor,
		        r->user, r->service, r->tty, r->rhost, r->reason, r->session, r->detail,
		        row_controls(r)};

		for (size_t c = 0; c < ELEMENTSOF(cells); c++)
			csv_write_field(f, cells[c], c == ELEMENTSOF(cells) - 1);
	}
	fputs("\r\nsection,time,user,service,session,via,ended,new_key_enrolled\r\n", f);
	for (size_t i = 0; i < b->n_sessions; i++) {
		const BgSession *s = &b->sessions[i];
		const char *cells[] = {"breakglass_sessions", s->time, s->user, s->service,
		        s->session, s->via, session_end(s), s->enrolled};

		for (size_t c = 0; c < ELEMENTSOF(cells); c++)
			csv_write_field(f, cells[c], c == ELEMENTSOF(cells) - 1);
	}
	fputs("\r\n", f);
}

/* ---- HTML ---- */

/* A row; the first NW cells do not wrap. */
static void html_row(FILE *f, const char *cls, const char *const *cells, size_t n, size_t nw)
{
	if (cls)
		fprintf(f, "<tr class=\"%s\">", cls);
	else
		fputs("<tr>", f);
	for (size_t c = 0; c < n; c++) {
		fputs(c < nw ? "<td class=\"nw\">" : "<td>", f);
		report_html_escape(f, cells[c]);
		fputs("</td>", f);
	}
	fputs("</tr>\n", f);
}

void breakglass_report_html(const BreakglassReport *b, FILE *f)
{
	char buf[1024], controls[64];

	if (b->n_rows == 0) {
		fputs("<p>" BG_EMPTY "</p>\n", f);
		return;
	}
	summary(b, buf, sizeof(buf));
	fprintf(f, "<p><b>%zu</b> break-glass record(s). ", b->n_rows);
	report_html_escape(f, buf);
	fputs("</p>\n<table style=\"font-size:.8em\"><tr><th>Time "
	      "(UTC)</th><th>Event</th><th>Result</th><th>Actor</th>"
	      "<th>User</th><th>Service</th><th>TTY/rhost</th><th>Session</th>"
	      "<th>Reason/detail</th><th>Controls</th></tr>\n",
	        f);
	for (size_t i = 0; i < b->n_rows; i++) {
		const BgRow *r = &b->rows[i];
		const char *cells[] = {r->time, r->event, r->result, r->actor, r->user, r->service,
		        row_from(r), r->session, buf, controls};
		size_t k = 0;

		row_why(r, buf, sizeof(buf));
		/* "AC-2, IA-5": the cell wraps between controls, not inside one */
		for (const char *p = row_controls(r); *p && k + 3 < sizeof(controls); p++) {
			controls[k++] = *p;
			if (*p == ',')
				controls[k++] = ' ';
		}
		controls[k] = '\0';
		/* a way in (use, approval) or a refusal stands out; issue/expire/revoke not */
		html_row(f,
		        r->kind == BG_USE || r->kind == BG_APPROVE || r->kind == BG_FAIL ? "gap"
		                                                                         : NULL,
		        cells, ELEMENTSOF(cells), 2);
	}
	fputs("</table>\n", f);
	fprintf(f, "<p>%zu session(s) opened by break-glass, %zu still open.</p>\n", b->n_sessions,
	        sessions_open(b));
	if (b->n_sessions == 0)
		return;
	fputs("<table><tr><th>Opened (UTC)</th><th>User</th><th>Service</th><th>Session</th>"
	      "<th>Via</th><th>Ended</th><th>New key enrolled</th></tr>\n",
	        f);
	for (size_t i = 0; i < b->n_sessions; i++) {
		const BgSession *s = &b->sessions[i];
		const char *cells[] = {s->time, s->user, s->service, s->session, s->via,
		        session_end(s), s->enrolled ?: "not yet"};

		html_row(f, "gap", cells, ELEMENTSOF(cells), 1);
	}
	fputs("</table>\n", f);
}

/* ---- keywardctl status ---- */

void breakglass_report_open_sessions(
        const BreakglassReport *b, FILE *f, bool (*alive)(const char *session), bool list_sessions)
{
	size_t open = 0;

	for (size_t i = 0; list_sessions && i < b->n_sessions; i++) {
		const BgSession *s = &b->sessions[i];

		if (s->ended || !s->session || (alive && !alive(s->session)))
			continue;
		open++;
		fprintf(f, "  session opened by break-glass: %s, %s, session %s, since %s (%s)\n",
		        strna(s->user), strna(s->service), s->session, strna(s->time),
		        strna(s->via));
	}
	if (list_sessions && open == 0)
		fprintf(f, "  sessions opened by break-glass still open: none\n");
	for (size_t i = 0; i < b->n_sessions; i++) {
		const BgSession *s = &b->sessions[i];
		bool later = false;

		/* the user's latest break-glass login only */
		for (size_t j = i + 1; j < b->n_sessions && !later; j++)
			later = s->user && b->sessions[j].user &&
			        streq(s->user, b->sessions[j].user);
		if (later || s->enrolled)
			continue;
		fprintf(f, "  new key not yet enrolled: %s (break-glass login %s)\n",
		        strna(s->user), strna(s->time));
	}
}
