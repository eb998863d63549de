/* ctl-report-hosts.h: `keywardctl report --host NAME=DIR ... --journal DIR` — one report
 * over the trails of many hosts (ctl-report-hosts.c), built on the single-host report's
 * one-pass collection (ctl-report.c), one host at a time. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "audit.h"

/* One host's collection: ctl-report.c's Report, opaque here. */
typedef struct Report ReportScan;

ReportScan *report_scan_new(uint64_t since, uint64_t until);
void report_scan_free(ReportScan *s);
/* An AuditEntryFn: one record into the host's tables (the --since/--until filter is in). */
int report_scan_collect(const AuditEntry *e, const char *file, uint64_t line, void *scan);

/* The rows of a finished host, strings already cleaned of control characters; they live
 * until report_scan_free(). */
typedef struct ReportAuthOut {
	const char *user, *service, *reasons;
	uint64_t success, failure, first_ms, last_ms;
} ReportAuthOut;

typedef struct ReportElevOut {
	uint64_t time_ms;
	const char *time, *user, *service, *key, *from, *session, *ended;
} ReportElevOut;

typedef struct ReportScanSink {
	int (*auth)(const ReportAuthOut *a, void *userdata);
	int (*elev)(const ReportElevOut *e, void *userdata);
} ReportScanSink;

/* Calls SINK for every row; returns < 0 on the sink's error, else 1 when a table of this
 * host was cut at its cap, 0 when not. */
int report_scan_rows(ReportScan *s, const ReportScanSink *sink, void *userdata);

/* ctl-report.c's helpers for the writers (the first two are declared in ctl-report.h too,
 * for the section files that include it; this header may not include it: ctl-report.c
 * includes this one). */
char *report_clean_strdup(const char *s); /* control characters become '?' */
void report_html_escape(FILE *f, const char *s);
/* Writes the report through EMIT to OUT ("-" or NULL: stdout; else atomically). Returns
 * EMIT's result, or CTL_EXIT_ERROR when the file cannot be written. */
int report_write_output(const char *out, int (*emit)(FILE *f, void *userdata), void *userdata);

typedef struct ReportHostsArgs {
	uint64_t since, until;
	const char *format; /* text, json, csv, html */
	const char *out;
	char **hosts;    /* NAME=DIR_OR_FILE */
	char **journals; /* journal directories or files */
} ReportHostsArgs;

/* The multi-host report; returns the exit code. */
int report_hosts_main(const ReportHostsArgs *a);
