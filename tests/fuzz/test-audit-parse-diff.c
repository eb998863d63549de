/* test-audit-parse-diff.c: the one-pass trail parser against the reference parser it
 * replaced (audit-parse-ref.c), over the fuzz corpora (each file whole and line by line),
 * realistic records, and deterministic mutations of all of them: the same accept/reject,
 * the same reason, the same field values, for json_parse_flat() and audit_entry_parse()
 * (and audit_entry_parse_into(), its no-allocation form). Usage: DIR... */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit-json.h"
#include "audit-parse-ref.h"
#include "audit-scan.h"
#include "audit.h"
#include "util.h"

static unsigned long n_cases, n_accepted, n_failed;

static void mismatch(const char *what, const char *in, size_t len)
{
	n_failed++;
	if (n_failed > 20)
		return;
	fprintf(stderr, "MISMATCH (%s) on %zu bytes: ", what, len);
	for (size_t i = 0; i < len && i < 300; i++)
		fputc((unsigned char)in[i] >= 0x20 && (unsigned char)in[i] < 0x7f ? in[i] : '.',
		        stderr);
	fputc('\n', stderr);
}

static bool str_same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && streq(a, b));
}

static bool entries_same(const AuditEntry *a, const AuditEntry *b)
{
	const char *sa[] = {a->time, a->host, a->reason, a->message, a->user, a->service, a->tty,
	        a->rhost, a->cred_label, a->cred_id, a->aaguid, a->device, a->rule, a->rule_name,
	        a->policy, a->session, a->action, a->detail, a->actor, a->actor_login,
	        a->actor_session, a->actor_tty, a->spooled, a->spool_id, a->prev_file,
	        a->torn_sha256, a->key_id, a->mac, a->prev};
	const char *sb[] = {b->time, b->host, b->reason, b->message, b->user, b->service, b->tty,
	        b->rhost, b->cred_label, b->cred_id, b->aaguid, b->device, b->rule, b->rule_name,
	        b->policy, b->session, b->action, b->detail, b->actor, b->actor_login,
	        b->actor_session, b->actor_tty, b->spooled, b->spool_id, b->prev_file,
	        b->torn_sha256, b->key_id, b->mac, b->prev};

	for (size_t i = 0; i < ELEMENTSOF(sa); i++)
		if (!str_same(sa[i], sb[i]))
			return false;
	return a->seq == b->seq && a->time_ms == b->time_ms && a->event == b->event &&
	       a->result == b->result && a->uid == b->uid && a->actor_uid == b->actor_uid &&
	       a->actor_loginuid == b->actor_loginuid && a->file_seq == b->file_seq &&
	       a->torn_offset == b->torn_offset && a->torn_length == b->torn_length &&
	       a->every == b->every && a->epoch == b->epoch && a->action_seq == b->action_seq;
}

static void check_one(const char *in, size_t len)
{
	JsonField *fo = NULL, *fn = NULL;
	size_t no = 0, nn = 0;
	const char *wo = NULL, *wn = NULL, *wi = NULL;
	AuditEntry *eo = NULL, *en = NULL, ei;
	_cleanup_free_ char *arena = malloc(AUDIT_ENTRY_ARENA(len));
	int ro, rn, ri;

	n_cases++;
	ro = ref_json_parse_flat(in, len, &fo, &no, &wo);
	rn = json_parse_flat(in, len, &fn, &nn, &wn);
	if (ro != rn || (ro < 0 && !str_same(wo, wn)))
		mismatch("json_parse_flat accept/reject or reason", in, len);
	else if (ro == 0) {
		bool same = no == nn;
		for (size_t i = 0; same && i < no; i++)
			same = streq(fo[i].key, fn[i].key) && fo[i].type == fn[i].type &&
			       (fo[i].type == JSON_STRING ? streq(fo[i].str, fn[i].str)
			                                  : fo[i].num == fn[i].num);
		if (!same)
			mismatch("json_parse_flat fields", in, len);
	}
	if (ro == 0)
		ref_fields_free(fo, JSON_FIELDS_MAX);
	if (rn == 0)
		json_fields_free(fn, JSON_FIELDS_MAX);

	ro = ref_audit_entry_parse(in, len, &eo, &wo);
	rn = audit_entry_parse(in, len, &en, &wn);
	ri = len <= AUDIT_LINE_MAX && arena ? audit_entry_parse_into(in, len, &ei, arena, &wi) : rn;
	if (len > AUDIT_LINE_MAX)
		wi = wn;
	if (ro != rn || ri != rn || (ro < 0 && (!str_same(wo, wn) || !str_same(wo, wi))))
		mismatch("audit_entry_parse accept/reject or reason", in, len);
	else if (ro == 0) {
		n_accepted++;
		if (!entries_same(eo, en) || (len <= AUDIT_LINE_MAX && !entries_same(eo, &ei)))
			mismatch("audit_entry_parse values", in, len);
	}
	ref_entry_free(eo);
	audit_entry_free(en);
}

/* Each input whole and, when it has several lines, each line. */
static void check_input(const char *in, size_t len)
{
	const char *p = in, *end = in + len;

	check_one(in, len);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (l != len)
			check_one(p, l);
		p += l + 1;
	}
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Pieces a mutation splices in: the cases the parser must refuse, and some it accepts. */
static const char *const tokens[] = {"\\\"", "\\\\", "\\/", "\\u0000", "\\ud800", "\\udc00",
        "\\ud83d\\ude00", "\\u00e9", "\\u0041", "\\x", "\\", "\"", "\xff", "\xc0\xaf",
        "\xed\xa0\x80", "\xe2\x82\xac", "\xf4\x90\x80\x80", "\x01", "\x7f", "{", "}", ",", ":", " ",
        "\t", "\n", "0", "01", "-1", "1.5", "1e3", "9223372036854775807", "9223372036854775808",
        "99999999999999999999", "\"seq\":1,", "\"prev\":\"\",", "\"s\\u0065q\":2,", "\"zz\":1,",
        "\"zz\":1,\"zz\":2,", "\"event\":\"seal\",", "\"event\":\"rotate\",", "\"epoch\":3,",
        "\"file_seq\":0,", "\"uid\":4294967295,", "\"uid\":\"x\",", "true", "null", "[]", "{}"};

static void mutate_and_check(const char *in, size_t len, unsigned rounds)
{
	size_t cap = len + 256;
	_cleanup_free_ char *buf = malloc(cap);

	if (!buf)
		abort();
	for (unsigned r = 0; r < rounds; r++) {
		size_t n = len, pos, k;

		memcpy(buf, in, len);
		for (unsigned m = 0; m < 1 + next_rand() % 3; m++) {
			pos = n ? next_rand() % (n + 1) : 0;
			switch (next_rand() % 6) {
			case 0: /* flip a byte */
				if (pos < n)
					buf[pos] = (char)(next_rand() & 0xff);
				break;
			case 1: /* delete a few bytes */
				k = next_rand() % 8;
				if (pos + k > n)
					k = n - pos;
				memmove(buf + pos, buf + pos + k, n - pos - k);
				n -= k;
				break;
			case 2: /* cut */
				n = pos;
				break;
			case 3: /* duplicate a span (a field twice, say) */
				k = next_rand() % 40;
				if (pos + k > n)
					k = n - pos;
				if (n + k <= cap) {
					size_t at = next_rand() % (n + 1);
					char tmp[40];
					memcpy(tmp, buf + pos, k);
					memmove(buf + at + k, buf + at, n - at);
					memcpy(buf + at, tmp, k);
					n += k;
				}
				break;
			default: { /* splice in a token */
				const char *t = tokens[next_rand() % ELEMENTSOF(tokens)];
				k = strlen(t);
				if (n + k <= cap) {
					memmove(buf + pos + k, buf + pos, n - pos);
					memcpy(buf + pos, t, k);
					n += k;
				}
				break;
			}
			}
		}
		check_one(buf, n);
	}
}

/* Records as the writer makes them (one of each shape), to mutate. */
static const char *const records[] = {
        "{\"seq\":1,\"time\":\"2026-01-02T03:04:05.678Z\",\"host\":\"h\",\"event\":\"rotate\","
        "\"result\":\"success\",\"file_seq\":1,\"prev\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
        "{\"seq\":2,\"time\":\"2026-01-02T03:04:05.678Z\",\"host\":\"h\",\"event\":\"seal\","
        "\"result\":\"success\",\"reason\":\"start\",\"every\":64,\"epoch\":0,\"key_id\":"
        "\"0123456789abcdef\",\"prev\":"
        "\"1111111111111111111111111111111111111111111111111111111111111111\",\"mac\":"
        "\"2222222222222222222222222222222222222222222222222222222222222222\"}",
        "{\"seq\":3,\"time\":\"2026-01-02T03:04:05.678Z\",\"host\":\"h\",\"event\":\"auth\","
        "\"result\":\"failure\",\"reason\":\"no-key\",\"message\":\"tab\\there \\\"q\\\" "
        "\\u00e9\\ud83d\\ude00 \xe2\x82\xac\",\"user\":\"alice\",\"uid\":1000,\"service\":"
        "\"sudo\",\"tty\":\"pts/3\",\"rhost\":\"10.0.0.1\",\"cred_label\":\"yk\",\"cred_id\":"
        "\"qUE1Dq2g0kBGLeV0ZKS2SgLdyjzBdvNnSj1jXMN5Fk5kQ5pHbuhfYw==\",\"aaguid\":"
        "\"ee882879-721c-4913-9775-3dfcce97072a\",\"device\":\"/sys/x\",\"rule\":\"r:1\","
        "\"rule_name\":\"admins\",\"policy\":\"abc\",\"session\":\"7\",\"actor_uid\":0,"
        "\"actor\":\"root\",\"actor_loginuid\":1000,\"actor_login\":\"alice\","
        "\"actor_session\":\"3\",\"actor_tty\":\"pts/1\",\"prev\":"
        "\"3333333333333333333333333333333333333333333333333333333333333333\"}",
        "{\"seq\":4,\"time\":\"2026-01-02T03:04:05Z\",\"host\":\"h\",\"event\":\"outcome\","
        "\"result\":\"success\",\"reason\":\"done\",\"action\":\"lock\",\"action_seq\":3,"
        "\"detail\":\"d\",\"spooled\":\"2026-01-02\",\"spool_id\":\"s1\",\"prev\":"
        "\"4444444444444444444444444444444444444444444444444444444444444444\"}",
        "{\"seq\":5,\"time\":\"2026-01-02T03:04:05.678Z\",\"host\":\"h\",\"event\":"
        "\"torn-tail\",\"result\":\"failure\",\"torn_offset\":100,\"torn_length\":12,"
        "\"torn_sha256\":\"5555555555555555555555555555555555555555555555555555555555555555\","
        "\"prev\":\"6666666666666666666666666666666666666666666666666666666666666666\"}",
        " { \"seq\" : 6 , \"time\":\"2026-01-02\",\"host\":\"h\",\"event\":\"key-added\","
        "\"result\":\"success\",\"prev\":"
        "\"7777777777777777777777777777777777777777777777777777777777777777\" } ",
};

static void check_dir(const char *dir, unsigned rounds)
{
	_cleanup_strv_free_ char **names = NULL;
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d) {
		fprintf(stderr, "cannot open %s: %m\n", dir);
		exit(1);
	}
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && strv_extend(&names, de->d_name) < 0)
			abort();
	closedir(d);
	for (size_t i = 0; names && names[i]; i++) {
		_cleanup_free_ char *path = NULL, *data = NULL;
		size_t len;
		FILE *f;

		if (asprintf(&path, "%s/%s", dir, names[i]) < 0)
			abort();
		f = fopen(path, "re");
		if (!f)
			continue;
		data = malloc(1024 * 1024);
		if (!data)
			abort();
		len = fread(data, 1, 1024 * 1024, f);
		fclose(f);
		check_input(data, len);
		/* mutate each line of the file */
		for (const char *p = data, *end = data + len; p < end;) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
			mutate_and_check(p, l, rounds);
			p += l + 1;
		}
	}
}

int main(int argc, char *argv[])
{
	_cleanup_free_ char *big = NULL;

	/* times at the edges of the writer's form (the parser has a fast path for it) */
	static const char *const times[] = {"2025-02-29T00:00:00.000Z", "2026-02-31T23:59:59.999Z",
	        "2026-04-31T12:00:00.000Z", "2024-02-29T00:00:00.000Z", "1969-12-31T23:59:59.999Z",
	        "1970-01-01T00:00:00.000Z", "2026-13-01T00:00:00.000Z", "2026-00-10T00:00:00.000Z",
	        "2026-01-00T00:00:00.000Z", "2026-01-01T24:00:00.000Z", "2026-01-01T23:60:00.000Z",
	        "2026-01-01T23:59:60.000Z", "2026-01-01T23:59:61.000Z", "9999-12-31T23:59:59.999Z",
	        "2026-01-01T 3:04:05.678Z", "2026-1-01T03:04:05.678Z", "2026-01-01T03:04:05.67Z",
	        "2026-01-01T03:04:05.6789Z", "2026-01-01T03:04:05Z", "2026-01-01 03:04:05.678Z",
	        "2026-01-01T03:04:05.678", "+026-01-01T03:04:05.678Z", "2100-03-01T00:00:00.000Z"};
	for (size_t i = 0; i < ELEMENTSOF(times); i++) {
		char line[512];
		int n = snprintf(line, sizeof(line),
		        "{\"seq\":7,\"time\":\"%s\",\"host\":\"h\",\"event\":\"auth\","
		        "\"result\":\"success\",\"prev\":"
		        "\"7777777777777777777777777777777777777777777777777777777777777777\"}",
		        times[i]);
		check_one(line, (size_t)n);
	}
	for (size_t i = 0; i < ELEMENTSOF(records); i++) {
		check_input(records[i], strlen(records[i]));
		mutate_and_check(records[i], strlen(records[i]), 4000);
	}
	/* too many fields, and too long */
	big = malloc(AUDIT_LINE_MAX + 64);
	if (!big)
		abort();
	{
		size_t n = 0;
		n += (size_t)sprintf(big + n, "{");
		for (int i = 0; i < 70; i++)
			n += (size_t)sprintf(big + n, "%s\"k%d\":%d", i ? "," : "", i, i);
		n += (size_t)sprintf(big + n, "}");
		check_one(big, n);
		memset(big, ' ', AUDIT_LINE_MAX + 1);
		memcpy(big, records[0], strlen(records[0]));
		check_one(big, AUDIT_LINE_MAX + 1);
		check_one(big, AUDIT_LINE_MAX);
	}
	for (int i = 1; i < argc; i++)
		check_dir(argv[i], 30);
	printf("%lu inputs, %lu accepted as records, %lu mismatches\n", n_cases, n_accepted,
	        n_failed);
	/* A differential test that never compares an accepted record proves little. */
	if (n_accepted < 100) {
		fprintf(stderr, "too few accepted records (%lu): the inputs are not realistic\n",
		        n_accepted);
		return 1;
	}
	return n_failed ? 1 : 0;
}
