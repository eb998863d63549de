/* breakglass.h: the break-glass store — single-use recovery codes (only their Argon2id
 * hashes, "<state_dir>/breakglass/<user>") and two-person approvals
 * ("<state_dir>/breakglass/approvals/<user>"): generate, parse, format, verify, burn.
 *
 * Codes file (root-only 0600 in a 0700 root directory, replaced atomically):
 *   keyward-breakglass 1 <user>
 *   <id> <issued> <expires> <state> <used-at> <argon2id hash>     (one line per code)
 * id "<6 hex>-<2 digits>" (the set and the code's number, printed beside the code), times
 * in seconds since the epoch, state unused | used | expired (an unused code whose expiry
 * was noticed and recorded), used-at 0 unless used. Approval file, one line:
 *   keyward-breakglass-approval 1 <user> <approver> <issued> <expires>
 * Library code: no logging, no policy; uses libsodium (never linked into the PAM module). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BREAKGLASS_CODES_MAX    64    /* codes in one set (= POLICY_BREAKGLASS_CODES_MAX) */
#define BREAKGLASS_FILE_MAX     32768 /* bytes of a codes or approval file */
#define BREAKGLASS_LINE_MAX     320   /* bytes of one line */
#define BREAKGLASS_HASH_MAX     127   /* characters of a hash (crypto_pwhash_STRBYTES - 1) */
#define BREAKGLASS_ID_CHARS     9     /* "3fa9c1-04" */
#define BREAKGLASS_GROUPS       4     /* a code is 4 groups ... */
#define BREAKGLASS_GROUP_CHARS  5     /* ... of 5 characters: 20 * log2(31) = 99 bits */
#define BREAKGLASS_CODE_CHARS   (BREAKGLASS_GROUPS * BREAKGLASS_GROUP_CHARS)
#define BREAKGLASS_PRINTED_SIZE (BREAKGLASS_CODE_CHARS + BREAKGLASS_GROUPS) /* dashes + NUL */
#define BREAKGLASS_INPUT_MAX    128 /* bytes typed: longer is malformed */
/* The alphabet: digits and capitals without 0, O, 1, I and L. */
#define BREAKGLASS_ALPHABET "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

typedef enum BreakglassState {
	BREAKGLASS_STATE_UNUSED,
	BREAKGLASS_STATE_USED,
	BREAKGLASS_STATE_EXPIRED, /* unused, past its expiry, and recorded as such */
	_BREAKGLASS_STATE_MAX,
	_BREAKGLASS_STATE_INVALID = -22,
} BreakglassState;

typedef struct BreakglassCode {
	char id[BREAKGLASS_ID_CHARS + 1];
	uint64_t issued_s, expires_s, used_s;
	BreakglassState state;
	char hash[BREAKGLASS_HASH_MAX + 1];
} BreakglassCode;

typedef struct BreakglassSet {
	char *user;
	BreakglassCode *codes;
	size_t n;
} BreakglassSet;

/* What a verification found. The reason words are the audit's (breakglass-fail). */
typedef enum BreakglassVerdict {
	BREAKGLASS_OK,             /* an unused, unexpired code matched: it is now burnt */
	BREAKGLASS_WRONG_CODE,     /* well formed, matches no code */
	BREAKGLASS_USED_CODE,      /* matches a code already used */
	BREAKGLASS_EXPIRED_CODE,   /* matches a code past its expiry */
	BREAKGLASS_MALFORMED_CODE, /* not 20 characters of the alphabet (dashes, spaces aside) */
	BREAKGLASS_NO_CODES,       /* the user has no codes at all */
	_BREAKGLASS_VERDICT_MAX,
	_BREAKGLASS_VERDICT_INVALID = -22,
} BreakglassVerdict;

const char *breakglass_state_to_string(BreakglassState s);
BreakglassState breakglass_state_from_string(const char *s);
const char *breakglass_verdict_to_string(BreakglassVerdict v); /* "wrong-code", ... */

/* An empty set for USER (-EINVAL for a bad name). */
int breakglass_set_new(const char *user, BreakglassSet **ret);
BreakglassSet *breakglass_set_free(BreakglassSet *s);
static inline void breakglass_set_freep(BreakglassSet **s)
{
	if (*s)
		breakglass_set_free(*s);
}

/* Strict parser. Errors: -EINVAL (syntax: *ret_why, *ret_line say where), -E2BIG (caps),
 * -EBADMSG (the file names another user than USER). */
int breakglass_parse(const char *text, size_t len, const char *user, BreakglassSet **ret,
        const char **ret_why, unsigned *ret_line);
int breakglass_format(const BreakglassSet *s, char **ret);

/* "<state_dir>/breakglass/<user>" and ".../approvals/<user>"; -EINVAL for a bad name. */
int breakglass_path(const char *state_dir, const char *user, char **ret);
int breakglass_approval_path(const char *state_dir, const char *user, char **ret);

/* Loads USER's codes; no file: an empty set. The directory must be root's and not open to
 * group or others, the file 0600 root (else -EPERM/-EACCES: fail closed). */
int breakglass_load(const char *state_dir, const char *user, BreakglassSet **ret);
/* Replaces the file atomically and durably (temp, fsync, rename, directory fsync); an empty
 * set removes it. Creates the 0700 directory. */
int breakglass_save(const char *state_dir, const BreakglassSet *s);

/* Makes N fresh codes for USER: *ret_set holds their hashes (Argon2id, OPSLIMIT/MEMLIMIT),
 * *ret_codes the printable codes ("ABCDE-FGHJK-MNPQR-STUVW", NULL-terminated; the caller
 * wipes them with breakglass_codes_free()). */
int breakglass_generate(const char *user, unsigned n, uint64_t now_s, uint64_t validity_s,
        uint64_t opslimit, uint64_t memlimit, BreakglassSet **ret_set, char ***ret_codes);
void breakglass_codes_free(char **codes);

/* INPUT as typed → the 20 canonical characters (upper case, no dashes or spaces).
 * -EINVAL when malformed (wrong length, a character outside the alphabet, overlong). */
int breakglass_normalize(const char *input, char ret[static BREAKGLASS_CODE_CHARS + 1]);

/* Checks INPUT against every code of S — the same number of Argon2id computations (one
 * per code in S) whatever the input: malformed, unknown, wrong, used or right. On
 * BREAKGLASS_OK the matching code is marked used at NOW_S in S (the caller saves S before
 * answering) and *ret_index names it. Returns 0 and the verdict, or -errno. */
int breakglass_verify(BreakglassSet *s, const char *input, uint64_t now_s,
        BreakglassVerdict *ret_verdict, size_t *ret_index);

/* Marks unused codes past expiry as expired; returns how many changed (the caller records
 * a breakglass-expire and saves), 0 if none. */
size_t breakglass_expire(BreakglassSet *s, uint64_t now_s);
/* Unused and unexpired codes at NOW_S. */
size_t breakglass_usable(const BreakglassSet *s, uint64_t now_s);

/* Argon2id computations done by this process (tests count them; never timed). */
uint64_t breakglass_argon2_calls(void);

/* ---- two-person approvals ---- */
typedef struct BreakglassApproval {
	char user[33], approver[33];
	uint64_t issued_s, expires_s;
} BreakglassApproval;

int breakglass_approval_parse(
        const char *text, size_t len, const char *user, BreakglassApproval *ret);
int breakglass_approval_format(const BreakglassApproval *a, char **ret);
/* -ENOENT when USER has no approval. */
int breakglass_approval_load(const char *state_dir, const char *user, BreakglassApproval *ret);
int breakglass_approval_save(const char *state_dir, const BreakglassApproval *a);
/* Removes USER's approval durably (used or expired); 0 also when there was none. */
int breakglass_approval_remove(const char *state_dir, const char *user);

/* ---- the last break-glass login ("<state_dir>/breakglass/last-use/<user>", one line
 * "keyward-breakglass-use 1 <user> <time>"): what require_enroll compares the user's
 * credentials' enrolment times with ---- */
int breakglass_last_use_save(const char *state_dir, const char *user, uint64_t when_s);
/* -ENOENT when USER never came in with break-glass (or it was cleared). */
int breakglass_last_use_load(const char *state_dir, const char *user, uint64_t *ret_s);
