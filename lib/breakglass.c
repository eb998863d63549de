/* breakglass.c: break-glass recovery codes and approvals — generation (libsodium's
 * randombytes), Argon2id hashing and constant-work verification, and the strict
 * parser/formatter of the root-only files they live in. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "breakglass.h"
#include "util.h"

_Static_assert(BREAKGLASS_HASH_MAX + 1 == crypto_pwhash_STRBYTES, "hash buffer");
_Static_assert(sizeof(BREAKGLASS_ALPHABET) - 1 == 31, "31 symbols");
/* policy.h's lower bounds are libsodium's (the policy library does not include sodium.h). */
_Static_assert(crypto_pwhash_argon2id_OPSLIMIT_MIN <= 1, "opslimit minimum");
_Static_assert(crypto_pwhash_argon2id_MEMLIMIT_MIN <= 8192, "memlimit minimum");

#define HEADER          "keyward-breakglass 1 "
#define APPROVAL_HEADER "keyward-breakglass-approval 1 "
#define HASH_PREFIX     "$argon2id$v=19$"

static uint64_t argon2_calls;

uint64_t breakglass_argon2_calls(void)
{
	return __atomic_load_n(&argon2_calls, __ATOMIC_RELAXED);
}

static void count_argon2(void)
{
	__atomic_fetch_add(&argon2_calls, 1, __ATOMIC_RELAXED);
}

static const char *const state_table[_BREAKGLASS_STATE_MAX] = {
        [BREAKGLASS_STATE_UNUSED] = "unused",
        [BREAKGLASS_STATE_USED] = "used",
        [BREAKGLASS_STATE_EXPIRED] = "expired",
};
DEFINE_STRING_TABLE_LOOKUP(breakglass_state, BreakglassState, state_table)

static const char *const verdict_table[_BREAKGLASS_VERDICT_MAX] = {
        [BREAKGLASS_OK] = "ok",
        [BREAKGLASS_WRONG_CODE] = "wrong-code",
        [BREAKGLASS_USED_CODE] = "used-code",
        [BREAKGLASS_EXPIRED_CODE] = "expired-code",
        [BREAKGLASS_MALFORMED_CODE] = "malformed-code",
        [BREAKGLASS_NO_CODES] = "no-codes",
};
DEFINE_STRING_TABLE_LOOKUP_TO_STRING(breakglass_verdict, BreakglassVerdict, verdict_table)

BreakglassSet *breakglass_set_free(BreakglassSet *s)
{
	if (!s)
		return NULL;
	free(s->user);
	if (s->codes)
		sodium_memzero(s->codes, s->n * sizeof(BreakglassCode));
	free(s->codes);
	free(s);
	return NULL;
}

int breakglass_set_new(const char *user, BreakglassSet **ret)
{
	BreakglassSet *s;

	if (!valid_user_name(user))
		return -EINVAL;
	s = calloc(1, sizeof(BreakglassSet));
	if (!s)
		return -ENOMEM;
	s->user = strdup(user);
	if (!s->user) {
		free(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

/* ---- parsing ---- */

/* Decimal u64, digits only, no leading zero (but "0"), at most 20 digits. */
static bool parse_u64_strict(const char *s, uint64_t *ret)
{
	uint64_t v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return false;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*ret = v;
	return true;
}

static bool valid_id(const char *s)
{
	if (strlen(s) != BREAKGLASS_ID_CHARS || s[6] != '-')
		return false;
	for (int i = 0; i < 6; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	return s[7] >= '0' && s[7] <= '9' && s[8] >= '0' && s[8] <= '9';
}

static bool valid_hash(const char *s)
{
	size_t n = strlen(s);

	if (n <= strlen(HASH_PREFIX) || n > BREAKGLASS_HASH_MAX ||
	        !strneq(s, HASH_PREFIX, strlen(HASH_PREFIX)))
		return false;
	for (const char *p = s; *p; p++)
		if (!(isalnum((unsigned char)*p) || strchr("$=,+/", *p)))
			return false;
	return true;
}

/* Splits LINE (modified) at single spaces into at most MAX fields; -EINVAL for empty
 * fields (two spaces, leading or trailing space) or too many. */
static int split_fields(char *line, char **fields, size_t max, size_t *ret_n)
{
	size_t n = 0;
	char *p = line;

	for (;;) {
		char *sp = strchr(p, ' ');

		if (n == max)
			return -EINVAL;
		fields[n++] = p;
		if (!sp)
			break;
		*sp = '\0';
		p = sp + 1;
	}
	for (size_t i = 0; i < n; i++)
		if (*fields[i] == '\0')
			return -EINVAL;
	*ret_n = n;
	return 0;
}

/* Calls LINE_FN for each line of TEXT (each ended by '\n'); checks the caps common to both
 * file kinds: size, NUL bytes, line length, a final newline, printable ASCII. */
static int check_text(const char *text, size_t len, const char **ret_why, unsigned *ret_line)
{
	unsigned line = 1;

	if (len > BREAKGLASS_FILE_MAX) {
		*ret_why = "the file is too large";
		return -E2BIG;
	}
	if (len == 0 || text[len - 1] != '\n') {
		*ret_why = "the file does not end with a newline";
		*ret_line = line;
		return -EINVAL;
	}
	for (size_t i = 0, start = 0; i < len; i++) {
		unsigned char ch = (unsigned char)text[i];

		if (ch == '\n') {
			if (i - start > BREAKGLASS_LINE_MAX) {
				*ret_why = "line too long";
				*ret_line = line;
				return -E2BIG;
			}
			line++;
			start = i + 1;
		} else if (ch < 0x20 || ch >= 0x7f) {
			*ret_why = "a control or non-ASCII character";
			*ret_line = line;
			return -EINVAL;
		}
	}
	return 0;
}

int breakglass_parse(const char *text, size_t len, const char *user, BreakglassSet **ret,
        const char **ret_why, unsigned *ret_line)
{
	_cleanup_(breakglass_set_freep) BreakglassSet *s = NULL;
	const char *why_dummy = NULL;
	unsigned line_dummy = 0, line = 0;
	const char *p, *end;
	int r;

	if (!ret_why)
		ret_why = &why_dummy;
	if (!ret_line)
		ret_line = &line_dummy;
	*ret_why = NULL;
	*ret_line = 0;
	if (!text || !ret)
		return -EINVAL;
	r = check_text(text, len, ret_why, ret_line);
	if (r < 0)
		return r;
	r = breakglass_set_new(user, &s);
	if (r < 0)
		return r;

	for (p = text, end = text + len; p < end; p = strchr(p, '\n') + 1) {
		char buf[BREAKGLASS_LINE_MAX + 1], *f[8];
		size_t n = (size_t)(strchr(p, '\n') - p), nf = 0;
		BreakglassCode c = {};

		line++;
		*ret_line = line;
		memcpy(buf, p, n);
		buf[n] = '\0';
		if (line == 1) {
			if (!strneq(buf, HEADER, strlen(HEADER))) {
				*ret_why = "the first line is not \"" HEADER "<user>\"";
				return -EINVAL;
			}
			if (!streq(buf + strlen(HEADER), user)) {
				*ret_why = "the file names another user";
				return -EBADMSG;
			}
			continue;
		}
		if (split_fields(buf, f, ELEMENTSOF(f), &nf) < 0 || nf != 6) {
			*ret_why = "expected: id issued expires state used-at hash";
			return -EINVAL;
		}
		if (!valid_id(f[0])) {
			*ret_why = "bad code id";
			return -EINVAL;
		}
		if (!parse_u64_strict(f[1], &c.issued_s) || !parse_u64_strict(f[2], &c.expires_s) ||
		        !parse_u64_strict(f[4], &c.used_s) || c.expires_s <= c.issued_s) {
			*ret_why = "bad time";
			return -EINVAL;
		}
		c.state = breakglass_state_from_string(f[3]);
		if (c.state < 0) {
			*ret_why = "bad state (unused, used or expired)";
			return -EINVAL;
		}
		if ((c.state == BREAKGLASS_STATE_USED) != (c.used_s != 0)) {
			*ret_why = "used-at must be set exactly for used codes";
			return -EINVAL;
		}
		if (!valid_hash(f[5])) {
			*ret_why = "bad hash (expected an Argon2id string)";
			return -EINVAL;
		}
		for (size_t i = 0; i < s->n; i++)
			if (streq(s->codes[i].id, f[0])) {
				*ret_why = "duplicate code id";
				return -EINVAL;
			}
		if (s->n >= BREAKGLASS_CODES_MAX) {
			*ret_why = "too many codes";
			return -E2BIG;
		}
		memcpy(c.id, f[0], BREAKGLASS_ID_CHARS + 1);
		memcpy(c.hash, f[5], strlen(f[5]) + 1);
		if (!s->codes) {
			s->codes = calloc(BREAKGLASS_CODES_MAX, sizeof(BreakglassCode));
			if (!s->codes)
				return -ENOMEM;
		}
		s->codes[s->n++] = c;
	}
	if (line < 1) {
		*ret_why = "empty file";
		return -EINVAL;
	}
	*ret_line = 0;
	*ret = TAKE_PTR(s);
	return 0;
}

int breakglass_format(const BreakglassSet *s, char **ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t size = 0;
	FILE *f;

	if (!s || !valid_user_name(s->user))
		return -EINVAL;
	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	fprintf(f, HEADER "%s\n", s->user);
	for (size_t i = 0; i < s->n; i++) {
		const BreakglassCode *c = &s->codes[i];

		if (!valid_id(c->id) || !valid_hash(c->hash) || c->state < 0 ||
		        c->state >= _BREAKGLASS_STATE_MAX) {
			fclose(f);
			return -EINVAL;
		}
		fprintf(f, "%s %" PRIu64 " %" PRIu64 " %s %" PRIu64 " %s\n", c->id, c->issued_s,
		        c->expires_s, breakglass_state_to_string(c->state), c->used_s, c->hash);
	}
	if (fclose(f) != 0)
		return -ENOMEM;
	*ret = TAKE_PTR(buf);
	return 0;
}

/* ---- files ---- */

#define DIR_NAME          "breakglass"
#define APPROVALS_DIRNAME "breakglass/approvals"

static int path_in(const char *state_dir, const char *sub, const char *user, char **ret)
{
	if (isempty(state_dir) || !valid_user_name(user))
		return -EINVAL;
	if (asprintf(ret, "%s/%s/%s", state_dir, sub, user) < 0)
		return -ENOMEM;
	return 0;
}

int breakglass_path(const char *state_dir, const char *user, char **ret)
{
	return path_in(state_dir, DIR_NAME, user, ret);
}

int breakglass_approval_path(const char *state_dir, const char *user, char **ret)
{
	return path_in(state_dir, APPROVALS_DIRNAME, user, ret);
}

/* The directory must be root's and closed to group and others: the hashes are secrets. */
static int check_private_dir(const char *dir)
{
	struct stat st;

	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (st.st_uid != 0)
		return -EPERM;
	if (st.st_mode & 0077)
		return -EACCES;
	return 0;
}

#define SECRET_FILE (SAFE_FILE_DEFAULT | SAFE_FILE_NO_WORLD_READ | SAFE_FILE_NO_GROUP_READ)

/* Reads "<state_dir>/<sub>/<user>" into *ret; -ENOENT when the directory or the file is
 * missing, other errors fail closed. */
static int read_private(
        const char *state_dir, const char *sub, const char *user, char **ret, size_t *ret_len)
{
	_cleanup_free_ char *dir = NULL, *path = NULL;
	int r;

	r = path_in(state_dir, sub, user, &path);
	if (r < 0)
		return r;
	if (asprintf(&dir, "%s/%s", state_dir, sub) < 0)
		return -ENOMEM;
	r = check_private_dir(dir);
	if (r < 0)
		return r;
	return read_full_file_safe(path, SECRET_FILE, BREAKGLASS_FILE_MAX, ret, ret_len, NULL);
}

int breakglass_load(const char *state_dir, const char *user, BreakglassSet **ret)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r;

	r = read_private(state_dir, DIR_NAME, user, &text, &len);
	if (r == -ENOENT)
		return breakglass_set_new(user, ret);
	if (r < 0)
		return r;
	return breakglass_parse(text, len, user, ret, NULL, NULL);
}

/* Creates "<state_dir>/<sub>" (0700) and checks it. */
static int make_private_dir(const char *state_dir, const char *sub, char **ret_dir)
{
	_cleanup_free_ char *dir = NULL;
	int r;

	if (asprintf(&dir, "%s/%s", state_dir, sub) < 0)
		return -ENOMEM;
	r = mkdir_parents(dir, 0700);
	if (r < 0)
		return r;
	r = check_private_dir(dir);
	if (r < 0)
		return r;
	*ret_dir = TAKE_PTR(dir);
	return 0;
}

static int write_private(const char *state_dir, const char *sub, const char *user, const char *text)
{
	_cleanup_free_ char *dir = NULL, *path = NULL;
	int r;

	r = path_in(state_dir, sub, user, &path);
	if (r < 0)
		return r;
	r = make_private_dir(state_dir, sub, &dir);
	if (r < 0)
		return r;
	if (!text) {
		if (unlink(path) < 0) {
			if (errno == ENOENT)
				return 0;
			return -errno;
		}
		return fsync_parent_dir(path);
	}
	r = write_file_atomic(path, text, strlen(text), 0600);
	if (r < 0)
		return r;
	/* write_file_atomic() syncs the directory best effort; a burn must be durable. */
	return fsync_parent_dir(path);
}

int breakglass_save(const char *state_dir, const BreakglassSet *s)
{
	_cleanup_free_ char *text = NULL;
	int r;

	if (!s)
		return -EINVAL;
	if (s->n > 0) {
		r = breakglass_format(s, &text);
		if (r < 0)
			return r;
	}
	return write_private(state_dir, DIR_NAME, s->user, text);
}

/* ---- codes ---- */

void breakglass_codes_free(char **codes)
{
	for (char **c = codes; c && *c; c++)
		erase_string_and_free(*c);
	free(codes);
}

static void codes_freep(char ***c)
{
	breakglass_codes_free(*c);
}

static int hash_code(const char *canon, uint64_t opslimit, uint64_t memlimit,
        char ret[static BREAKGLASS_HASH_MAX + 1])
{
	count_argon2();
	if (crypto_pwhash_str_alg(ret, canon, BREAKGLASS_CODE_CHARS, opslimit, (size_t)memlimit,
	            crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -ENOMEM; /* libsodium's only failure here is memory */
	return 0;
}

int breakglass_generate(const char *user, unsigned n, uint64_t now_s, uint64_t validity_s,
        uint64_t opslimit, uint64_t memlimit, BreakglassSet **ret_set, char ***ret_codes)
{
	_cleanup_(breakglass_set_freep) BreakglassSet *s = NULL;
	_cleanup_(codes_freep) char **codes = NULL;
	uint8_t set_id[3];
	int r;

	if (n == 0 || n > BREAKGLASS_CODES_MAX || validity_s == 0 ||
	        opslimit < crypto_pwhash_argon2id_OPSLIMIT_MIN ||
	        opslimit > crypto_pwhash_argon2id_OPSLIMIT_MAX ||
	        memlimit < crypto_pwhash_argon2id_MEMLIMIT_MIN || memlimit > SIZE_MAX ||
	        now_s > UINT64_MAX - validity_s || !ret_set || !ret_codes)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	r = breakglass_set_new(user, &s);
	if (r < 0)
		return r;
	s->codes = calloc(BREAKGLASS_CODES_MAX, sizeof(BreakglassCode));
	codes = calloc(n + 1, sizeof(char *));
	if (!s->codes || !codes)
		return -ENOMEM;
	randombytes_buf(set_id, sizeof(set_id));

	for (unsigned i = 0; i < n; i++) {
		char canon[BREAKGLASS_CODE_CHARS + 1];
		BreakglassCode *c = &s->codes[i];
		char *printed, *q;

		for (size_t k = 0; k < BREAKGLASS_CODE_CHARS; k++)
			canon[k] = BREAKGLASS_ALPHABET[randombytes_uniform(
			        sizeof(BREAKGLASS_ALPHABET) - 1)];
		canon[BREAKGLASS_CODE_CHARS] = '\0';
		printed = malloc(BREAKGLASS_PRINTED_SIZE);
		if (!printed) {
			sodium_memzero(canon, sizeof(canon));
			return -ENOMEM;
		}
		q = printed;
		for (size_t k = 0; k < BREAKGLASS_CODE_CHARS; k++) {
			if (k > 0 && k % BREAKGLASS_GROUP_CHARS == 0)
				*q++ = '-';
			*q++ = canon[k];
		}
		*q = '\0';
		codes[i] = printed;
		r = hash_code(canon, opslimit, memlimit, c->hash);
		sodium_memzero(canon, sizeof(canon));
		if (r < 0)
			return r;
		snprintf(c->id, sizeof(c->id), "%02x%02x%02x-%02u", set_id[0], set_id[1], set_id[2],
		        (i + 1) % 100);
		c->issued_s = now_s;
		c->expires_s = now_s + validity_s;
		c->state = BREAKGLASS_STATE_UNUSED;
		s->n++;
	}
	*ret_set = TAKE_PTR(s);
	*ret_codes = TAKE_PTR(codes);
	return 0;
}

int breakglass_normalize(const char *input, char ret[static BREAKGLASS_CODE_CHARS + 1])
{
	char out[BREAKGLASS_CODE_CHARS + 1];
	size_t n = 0;

	if (!input || strnlen(input, BREAKGLASS_INPUT_MAX + 1) > BREAKGLASS_INPUT_MAX)
		return -EINVAL;
	for (const char *p = input; *p; p++) {
		char ch = *p;

		if (ch == '-' || ch == ' ')
			continue;
		if (ch >= 'a' && ch <= 'z')
			ch = (char)(ch - 'a' + 'A');
		if (!strchr(BREAKGLASS_ALPHABET, ch) || n == BREAKGLASS_CODE_CHARS) {
			sodium_memzero(out, sizeof(out));
			return -EINVAL;
		}
		out[n++] = ch;
	}
	if (n != BREAKGLASS_CODE_CHARS) {
		sodium_memzero(out, sizeof(out));
		return -EINVAL;
	}
	out[n] = '\0';
	memcpy(ret, out, sizeof(out));
	sodium_memzero(out, sizeof(out));
	return 0;
}

int breakglass_verify(BreakglassSet *s, const char *input, uint64_t now_s,
        BreakglassVerdict *ret_verdict, size_t *ret_index)
{
	/* Checked in place of a malformed input: same length, and '!' is outside the
	 * alphabet, so it can match no code. */
	static const char dummy[BREAKGLASS_CODE_CHARS + 1] = "!!!!!!!!!!!!!!!!!!!!";
	char canon[BREAKGLASS_CODE_CHARS + 1];
	size_t match = SIZE_MAX;
	bool malformed;

	if (!s || !ret_verdict)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	malformed = breakglass_normalize(input, canon) < 0;
	if (malformed)
		memcpy(canon, dummy, sizeof(canon));
	if (s->n == 0) {
		sodium_memzero(canon, sizeof(canon));
		*ret_verdict = BREAKGLASS_NO_CODES;
		return 0;
	}
	/* Every code, whatever its state, and no early exit: the work does not depend on
	 * the input or on which code (if any) it is. */
	for (size_t i = 0; i < s->n; i++) {
		count_argon2();
		if (crypto_pwhash_str_verify(s->codes[i].hash, canon, BREAKGLASS_CODE_CHARS) == 0 &&
		        match == SIZE_MAX)
			match = i;
	}
	sodium_memzero(canon, sizeof(canon));

	if (malformed)
		*ret_verdict = BREAKGLASS_MALFORMED_CODE;
	else if (match == SIZE_MAX)
		*ret_verdict = BREAKGLASS_WRONG_CODE;
	else if (s->codes[match].state == BREAKGLASS_STATE_USED)
		*ret_verdict = BREAKGLASS_USED_CODE;
	else if (s->codes[match].state == BREAKGLASS_STATE_EXPIRED ||
	         now_s >= s->codes[match].expires_s)
		*ret_verdict = BREAKGLASS_EXPIRED_CODE;
	else {
		s->codes[match].state = BREAKGLASS_STATE_USED;
		s->codes[match].used_s = now_s ?: 1;
		*ret_verdict = BREAKGLASS_OK;
	}
	if (ret_index)
		*ret_index = match;
	return 0;
}

size_t breakglass_expire(BreakglassSet *s, uint64_t now_s)
{
	size_t n = 0;

	for (size_t i = 0; s && i < s->n; i++)
		if (s->codes[i].state == BREAKGLASS_STATE_UNUSED &&
		        now_s >= s->codes[i].expires_s) {
			s->codes[i].state = BREAKGLASS_STATE_EXPIRED;
			n++;
		}
	return n;
}

size_t breakglass_usable(const BreakglassSet *s, uint64_t now_s)
{
	size_t n = 0;

	for (size_t i = 0; s && i < s->n; i++)
		n += s->codes[i].state == BREAKGLASS_STATE_UNUSED && now_s < s->codes[i].expires_s;
	return n;
}

/* ---- approvals ---- */

int breakglass_approval_parse(
        const char *text, size_t len, const char *user, BreakglassApproval *ret)
{
	char buf[BREAKGLASS_LINE_MAX + 1], *f[8];
	BreakglassApproval a = {};
	const char *why = NULL;
	unsigned line = 0;
	size_t nf = 0;
	int r;

	if (!text || !ret || !valid_user_name(user))
		return -EINVAL;
	r = check_text(text, len, &why, &line);
	if (r < 0)
		return r;
	if (memchr(text, '\n', len) != text + len - 1 || len - 1 > BREAKGLASS_LINE_MAX)
		return -EINVAL; /* exactly one line */
	memcpy(buf, text, len - 1);
	buf[len - 1] = '\0';
	if (!strneq(buf, APPROVAL_HEADER, strlen(APPROVAL_HEADER)))
		return -EINVAL;
	if (split_fields(buf + strlen(APPROVAL_HEADER), f, ELEMENTSOF(f), &nf) < 0 || nf != 4)
		return -EINVAL;
	if (!streq(f[0], user))
		return -EBADMSG;
	if (!valid_user_name(f[1]) || streq(f[1], user) || !parse_u64_strict(f[2], &a.issued_s) ||
	        !parse_u64_strict(f[3], &a.expires_s) || a.expires_s <= a.issued_s)
		return -EINVAL;
	memcpy(a.user, f[0], strlen(f[0]) + 1);
	memcpy(a.approver, f[1], strlen(f[1]) + 1);
	*ret = a;
	return 0;
}

int breakglass_approval_format(const BreakglassApproval *a, char **ret)
{
	if (!a || !valid_user_name(a->user) || !valid_user_name(a->approver) ||
	        streq(a->user, a->approver) || a->expires_s <= a->issued_s)
		return -EINVAL;
	if (asprintf(ret, APPROVAL_HEADER "%s %s %" PRIu64 " %" PRIu64 "\n", a->user, a->approver,
	            a->issued_s, a->expires_s) < 0)
		return -ENOMEM;
	return 0;
}

int breakglass_approval_load(const char *state_dir, const char *user, BreakglassApproval *ret)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r;

	r = read_private(state_dir, APPROVALS_DIRNAME, user, &text, &len);
	if (r < 0)
		return r;
	return breakglass_approval_parse(text, len, user, ret);
}

int breakglass_approval_save(const char *state_dir, const BreakglassApproval *a)
{
	_cleanup_free_ char *text = NULL;
	int r;

	r = breakglass_approval_format(a, &text);
	if (r < 0)
		return r;
	return write_private(state_dir, APPROVALS_DIRNAME, a->user, text);
}

int breakglass_approval_remove(const char *state_dir, const char *user)
{
	return write_private(state_dir, APPROVALS_DIRNAME, user, NULL);
}

/* ---- the last break-glass login ---- */

#define LAST_USE_DIRNAME "breakglass/last-use"
#define LAST_USE_HEADER  "keyward-breakglass-use 1 "

int breakglass_last_use_save(const char *state_dir, const char *user, uint64_t when_s)
{
	_cleanup_free_ char *text = NULL;

	if (!valid_user_name(user))
		return -EINVAL;
	if (asprintf(&text, LAST_USE_HEADER "%s %" PRIu64 "\n", user, when_s) < 0)
		return -ENOMEM;
	return write_private(state_dir, LAST_USE_DIRNAME, user, text);
}

int breakglass_last_use_load(const char *state_dir, const char *user, uint64_t *ret_s)
{
	_cleanup_free_ char *text = NULL;
	const char *why = NULL;
	unsigned line = 0;
	size_t len = 0, n;
	int r;

	r = read_private(state_dir, LAST_USE_DIRNAME, user, &text, &len);
	if (r < 0)
		return r;
	r = check_text(text, len, &why, &line);
	if (r < 0)
		return r;
	n = strlen(LAST_USE_HEADER) + strlen(user);
	if (len < n + 3 || !strneq(text, LAST_USE_HEADER, strlen(LAST_USE_HEADER)) ||
	        !strneq(text + strlen(LAST_USE_HEADER), user, strlen(user)) || text[n] != ' ' ||
	        memchr(text, '\n', len) != text + len - 1)
		return -EINVAL;
	text[len - 1] = '\0';
	return parse_u64_strict(text + n + 1, ret_s) ? 0 : -EINVAL;
}
