/* fuzz-audit.c: libFuzzer target for the audit trail's readers — the strict JSON parser,
 * the record parser, key files and anchor lines, and the verifier over a whole (possibly
 * hostile) trail file, with a static key, a verification key and an anchor. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit-json.h"
#include "audit-scan.h"
#include "audit.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads every string of a record handed to the walk (ASan sees any bad pointer). */
static int touch_record(const AuditEntry *e, const char *file, uint64_t line, void *userdata)
{
	size_t *n = userdata;
	const char *s[] = {e->time, e->host, e->user, e->service, e->session, e->prev, e->mac};

	(void)file;
	(void)line;
	for (size_t i = 0; i < ELEMENTSOF(s); i++)
		*n += s[i] ? strlen(s[i]) : 0;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[AUDIT_SEAL_KEY_SIZE] = {1, 2, 3};
	char path[] = "/tmp/fuzz-audit.XXXXXX";
	const char *why = NULL;
	JsonField *f = NULL;
	AuditEntry *e = NULL;
	size_t n = 0;
	int fd;

	if (size > 1024 * 1024)
		return 0;
	if (json_parse_flat((const char *)data, size, &f, &n, &why) == 0)
		json_fields_free(f, JSON_FIELDS_MAX);
	if (audit_entry_parse((const char *)data, size, &e, &why) == 0)
		audit_entry_free(e);
	if (size <= AUDIT_LINE_MAX) {
		/* the no-allocation form, with an arena of exactly the size it asks for */
		char *arena = malloc(AUDIT_ENTRY_ARENA(size));
		AuditEntry ei;
		if (arena &&
		        audit_entry_parse_into((const char *)data, size, &ei, arena, &why) == 0)
			(void)touch_record(&ei, NULL, 0, &n);
		free(arena);
	}
	/* key files and anchor lines (both are read from files a person hands over) */
	{
		AuditSealKey k = {};
		AuditAnchor a = {};
		char *line = strndup((const char *)data, size);
		(void)audit_seal_key_parse((const char *)data, size, &k, &why);
		audit_seal_key_clear(&k);
		if (line && audit_anchor_parse(line, &a) == 0) {
			char *again = NULL;
			if (audit_anchor_format(&a, &again) == 0)
				free(again);
		}
		free(line);
	}

	/* The same bytes as a trail file, verified with and without a key. */
	fd = mkstemp(path);
	if (fd < 0)
		abort();
	if (write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	{
		char *files[] = {path, NULL};
		AuditVerifyOptions o = {.key = key, .strict = true};
		AuditVerifyResult r = {};
		(void)audit_verify_files(files, &o, &r);
		audit_verify_result_clear(&r);
		/* verdict and records in one walk, as the report reads it */
		{
			uint64_t bad = 0;
			size_t total = 0;
			(void)audit_verify_read_files(files, &o, &r, touch_record, &total, &bad);
			audit_verify_result_clear(&r);
		}
		o.key = NULL;
		(void)audit_verify_files(files, &o, &r);
		audit_verify_result_clear(&r);
		/* forward-secure seals with a verification key, against an anchor */
		{
			AuditSealKey k0 = {.epoch = 0, .key = {1, 2, 3}};
			AuditAnchor an = {.epoch = 2, .seq = 5, .file_seq = 1};
			memset(an.hash, 'a', AUDIT_HASH_HEX_LEN);
			(void)audit_seal_key_id(k0.key, k0.key_id);
			o.verification_key = &k0;
			o.anchors = &an;
			o.n_anchors = 1;
			(void)audit_verify_files(files, &o, &r);
			audit_verify_result_clear(&r);
		}
	}
	unlink(path);
	return 0;
}
