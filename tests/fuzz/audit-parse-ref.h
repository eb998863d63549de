/* audit-parse-ref.h: the reference (pre-scanner) trail parsers, for the differential test. */
#pragma once

#include <stddef.h>

#include "audit-json.h"
#include "audit.h"

int ref_json_parse_flat(
        const char *line, size_t len, JsonField **ret, size_t *ret_n, const char **ret_why);
void ref_fields_free(JsonField *f, size_t n);
int ref_audit_entry_parse(const char *line, size_t len, AuditEntry **ret, const char **ret_why);
AuditEntry *ref_entry_free(AuditEntry *e);
