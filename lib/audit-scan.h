/* audit-scan.h: reading the trail fast — records parsed without allocating (strings in a
 * caller's arena), and one walk that gives both the verdict and the records. */
#pragma once

#include "audit.h"

/* Arena bytes for parsing a line of LEN bytes (AUDIT_LINE_MAX at most). */
#define AUDIT_ENTRY_ARENA(len) (2 * (size_t)(len) + 2)

/* audit_entry_parse() into *E, exactly as strict, with no allocation: E's strings point
 * into ARENA (AUDIT_ENTRY_ARENA(len) bytes) and live as long as it is not reused. */
int audit_entry_parse_into(
        const char *line, size_t len, AuditEntry *e, char *arena, const char **ret_why);

/* audit_verify_files() and audit_read_files() in one pass: FILES are verified into *RET
 * (the first problem stops the verdict, not the walk), and CB is called for every
 * well-formed record as audit_read_files() does (malformed lines counted in *RET_BAD).
 * Returns 0, -errno when a file cannot be read (ret->file names it) or CB's error. */
int audit_verify_read_files(char *const *files, const AuditVerifyOptions *opts,
        AuditVerifyResult *ret, AuditEntryFn cb, void *userdata, uint64_t *ret_bad);

/* For tests: files of MIN_BYTES or more are verified by two threads, in chunks of about
 * CHUNK_BYTES (UINT64_MAX: always one thread). Not thread-safe; call before verifying. */
void audit_verify_pipeline_tune(uint64_t min_bytes, size_t chunk_bytes);
