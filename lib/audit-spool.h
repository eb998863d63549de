/* audit-spool.h: refused logins the audit trail could not take (disk full, read-only,
 * not open) wait in a small root-only spool file until the trail takes them in, once. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "audit.h"

/* The spool's file name in the policy's state_dir. */
#define AUDIT_SPOOL_FILENAME "audit-spool"
/* Its size limit: past it records are refused (-ENOSPC) and reach the journal only. */
#define AUDIT_SPOOL_MAX_BYTES (1024u * 1024u)

/* Appends REC to the spool at PATH with the time now and a random spool id: one line,
 * one write() under flock(), then fdatasync(). The file is created 0600 and must be a
 * regular file of ours that nobody else may read or write (else -EPERM / -EACCES).
 * -ENOSPC when the line would take the file past MAX_BYTES. */
int audit_spool_append(const char *path, const AuditRecord *rec, uint64_t max_bytes);

/* Whether PATH, or an intake a crash interrupted, holds records to take in. */
bool audit_spool_pending(const char *path);

/* Takes the spooled records into LOG, oldest first: each as a record of its own with
 * `spooled` (its original time) and `spool_id`, then one `spool-taken` record. The spool
 * is renamed to PATH.taking first and removed at the end; an intake cut short (crash,
 * trail failing again) is finished by the next call, which skips every spool id already
 * in the trail at TRAIL_PATH (its last two files): no record is taken twice. Returns the
 * number of records taken in, 0 when there was nothing, -errno on failure. Lines that
 * are not records (a crash during a spool write) are counted in the spool-taken record. */
int audit_spool_take(AuditLog *log, const char *path, const char *trail_path);
