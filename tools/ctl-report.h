/* ctl-report.h: what the report's section files share with ctl-report.c — the trail
 * string cleaner and the HTML escaper — and the break-glass section (ctl-report-breakglass.c). */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "audit-json.h"
#include "audit.h"

/* ctl-report.c: a copy of S from the trail with control characters made '?' (NULL for
 * NULL or on OOM); S escaped for HTML text and attribute values. */
char *report_clean_strdup(const char *s);
void report_html_escape(FILE *f, const char *s);
/* Appends ,"KEY":"V" (without the comma unless COMMA; null for a NULL V). */
void report_json_str(JsonBuf *b, const char *key, const char *v, bool comma);
/* Grows *ARR_P (of *N elements of SIZE) by one zeroed element; NULL at the report's row
 * cap (*TRUNCATED set) or on OOM. */
void *report_grow(void *arr_p, size_t *n, size_t size, bool *truncated);

/* ctl-report-breakglass.c: the report's first section, every break-glass record of the
 * period (issue, use, failed attempt, approval, expiry, revoke, and the elevations refused
 * until a new key is enrolled) with the sessions break-glass opened. */
typedef struct BreakglassReport BreakglassReport;

#define BREAKGLASS_REPORT_ID "breakglass"
#define BREAKGLASS_REPORT_TITLE                                                                    \
	"Break-glass recovery: codes issued, used, refused, approvals, expiries, revocations"
#define BREAKGLASS_REPORT_CONTROLS                                                                 \
	"NIST SP 800-53 AC-2 (account management: issue, revoke, approve, use), IA-5 "             \
	"(authenticator management: codes issued, used, expired), AC-2(2) (emergency access "      \
	"is time-limited: validity, expiry, approvals), AU-6 (every use and failed attempt "       \
	"listed for review)"

int breakglass_report_new(BreakglassReport **ret);
BreakglassReport *breakglass_report_free(BreakglassReport *b);
/* Every record of the period, in trail order (not only break-glass ones: session-bind,
 * session-unbind and enroll records follow a break-glass login). 0 or -ENOMEM. */
int breakglass_report_collect(BreakglassReport *b, const AuditEntry *e);
bool breakglass_report_truncated(const BreakglassReport *b);

void breakglass_report_text(const BreakglassReport *b, FILE *f);
/* Appends `"breakglass":{...}` (no leading comma). */
void breakglass_report_json(const BreakglassReport *b, JsonBuf *j);
/* Two tables (events, then sessions), each followed by a blank line. */
void breakglass_report_csv(const BreakglassReport *b, FILE *f);
/* The section's body (the caller writes <section>, the title and the controls line). */
void breakglass_report_html(const BreakglassReport *b, FILE *f);
/* keywardctl status: with LIST_SESSIONS, the sessions break-glass opened that are still
 * open (per the trail, and ALIVE, when given, confirms); always the users who have not
 * enrolled a key since their last break-glass login. */
void breakglass_report_open_sessions(
        const BreakglassReport *b, FILE *f, bool (*alive)(const char *session), bool list_sessions);
