/* audit-testtool.c: drives the real audit library for the integration tests — appends
 * records (optionally "crashing" without the closing seal) and writes credential files. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "breakglass.h"
#include "creds.h"
#include "util.h"

static int cmd_append(int argc, char *argv[])
{
	static const struct option options[] = {{"log", required_argument, NULL, 'l'},
	        {"key", required_argument, NULL, 'k'}, {"every", required_argument, NULL, 'e'},
	        {"rotate", required_argument, NULL, 'r'}, {"count", required_argument, NULL, 'n'},
	        {"user", required_argument, NULL, 'u'}, {"crash", no_argument, NULL, 'c'},
	        {"fsync", no_argument, NULL, 'f'}, {"journal", no_argument, NULL, 'j'}, {}};
	AuditOptions o = {.seal_every = 8};
	const char *user = "alice";
	unsigned long count = 10;
	bool crash = false, torn = false;
	AuditLog *log = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
		switch (c) {
		case 'l':
			o.path = optarg;
			break;
		case 'k':
			o.seal_key_path = optarg;
			break;
		case 'e':
			o.seal_every = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			o.rotate_bytes = strtoull(optarg, NULL, 10);
			break;
		case 'n':
			count = strtoul(optarg, NULL, 10);
			break;
		case 'u':
			user = optarg;
			break;
		case 'c':
			crash = true;
			break;
		case 'f':
			o.fsync_each = true;
			break;
		case 'j':
			o.to_syslog = true; /* records and seal anchors to journald */
			break;
		default:
			return 2;
		}
	}
	r = audit_log_open(&o, &log, &torn);
	if (r < 0) {
		fprintf(stderr, "audit_log_open: %s\n", strerror(-r));
		return 1;
	}
	if (torn)
		printf("torn\n");
	for (unsigned long i = 0; i < count; i++) {
		AuditRecord rec = AUDIT_RECORD_INIT;
		char session[32];

		snprintf(session, sizeof(session), "%lu", i + 1);
		rec.event = AUDIT_EVENT_AUTH;
		rec.result = i % 4 == 3 ? AUDIT_RESULT_FAILURE : AUDIT_RESULT_SUCCESS;
		rec.reason = i % 4 == 3 ? "no-touch" : NULL;
		rec.user = user;
		rec.uid = 1000;
		rec.service = "sudo";
		rec.tty = "pts/0";
		rec.cred_label = "yubikey-5c";
		rec.aaguid = "ee882879-721c-4913-9775-3dfcce97072a";
		rec.rule = "/etc/keyward/keyward.conf:31";
		rec.session = session;
		r = audit_log_append(log, &rec);
		if (r < 0) {
			fprintf(stderr, "audit_log_append: %s\n", strerror(-r));
			return 1;
		}
	}
	if (crash) {
		fflush(stdout);
		_exit(0); /* no closing seal: what a crash leaves */
	}
	r = audit_log_seal(log, "stop", false);
	audit_log_free(log);
	return r < 0 ? 1 : 0;
}

static int cmd_creds(int argc, char *argv[])
{
	_cleanup_(credential_set_freep) CredentialSet *s = NULL;
	unsigned long n;
	int r;

	if (argc != 4)
		return 2;
	n = strtoul(argv[3], NULL, 10);
	r = credential_set_new(argv[2], &s);
	if (r < 0)
		return 1;
	for (unsigned long i = 0; i < n; i++) {
		uint8_t id[32], pk[64];
		char label[32];
		_cleanup_free_ char *id64 = NULL, *pk64 = NULL;
		Credential c = {};

		for (size_t j = 0; j < sizeof(id); j++)
			id[j] = (uint8_t)(i * 7 + j);
		for (size_t j = 0; j < sizeof(pk); j++)
			pk[j] = (uint8_t)(i * 13 + j + 1);
		if (base64_encode(id, sizeof(id), &id64) < 0 ||
		        base64_encode(pk, sizeof(pk), &pk64) < 0)
			return 1;
		snprintf(label, sizeof(label), "key-%lu", i + 1);
		c.id = id64;
		c.label = label;
		c.rp_id = "pam://keyward";
		c.cose_alg = -7; /* ES256 */
		c.public_key = pk64;
		c.attestation = CRED_ATTESTATION_NONE;
		c.up = true;
		c.created_ms = 1764000000000ULL;
		r = creds_add(s, &c, 16);
		if (r < 0) {
			fprintf(stderr, "creds_add: %s\n", strerror(-r));
			return 1;
		}
	}
	r = creds_save_user(argv[1], s);
	if (r < 0) {
		fprintf(stderr, "creds_save_user: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}

/* breakglass STATE_DIR USER N VALIDITY_S USED: a codes file as keywardctl breakglass issue
 * makes it (cheapest Argon2id), the first USED codes burnt; the codes on stdout. */
static int cmd_breakglass(int argc, char *argv[])
{
	_cleanup_(breakglass_set_freep) BreakglassSet *s = NULL;
	char **codes = NULL;
	uint64_t now_s = now_realtime_ms() / 1000;
	unsigned long n, used;
	int r;

	if (argc != 6)
		return 2;
	n = strtoul(argv[3], NULL, 10);
	used = strtoul(argv[5], NULL, 10);
	r = breakglass_generate(
	        argv[2], (unsigned)n, now_s, strtoull(argv[4], NULL, 10), 1, 8192, &s, &codes);
	if (r < 0) {
		fprintf(stderr, "breakglass_generate: %s\n", strerror(-r));
		return 1;
	}
	for (unsigned long i = 0; i < used && i < s->n; i++) {
		s->codes[i].state = BREAKGLASS_STATE_USED;
		s->codes[i].used_s = now_s;
	}
	r = breakglass_save(argv[1], s);
	for (size_t i = 0; r >= 0 && codes[i]; i++)
		printf("%s %s\n", s->codes[i].id, codes[i]);
	breakglass_codes_free(codes);
	if (r < 0) {
		fprintf(stderr, "breakglass_save: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}

/* approval STATE_DIR USER APPROVER VALID_S: a pending two-person approval. */
static int cmd_approval(int argc, char *argv[])
{
	uint64_t now_s = now_realtime_ms() / 1000;
	BreakglassApproval a = {.issued_s = now_s};
	int r;

	if (argc != 5 || strlen(argv[2]) >= sizeof(a.user) || strlen(argv[3]) >= sizeof(a.approver))
		return 2;
	strcpy(a.user, argv[2]);
	strcpy(a.approver, argv[3]);
	a.expires_s = now_s + strtoull(argv[4], NULL, 10);
	r = breakglass_approval_save(argv[1], &a);
	if (r < 0) {
		fprintf(stderr, "breakglass_approval_save: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}

int main(int argc, char *argv[])
{
	if (argc >= 2 && streq(argv[1], "append"))
		return cmd_append(argc - 1, argv + 1);
	if (argc >= 2 && streq(argv[1], "creds"))
		return cmd_creds(argc - 1, argv + 1);
	if (argc >= 2 && streq(argv[1], "breakglass"))
		return cmd_breakglass(argc - 1, argv + 1);
	if (argc >= 2 && streq(argv[1], "approval"))
		return cmd_approval(argc - 1, argv + 1);
	fprintf(stderr, "usage: audit-testtool append --log P --key K [...] | creds DIR USER N | "
	                "breakglass STATE USER N VALIDITY USED | approval STATE USER APPROVER "
	                "VALID\n");
	return 2;
}
