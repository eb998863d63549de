/* fido-util.h: the one place where libfido2 status codes become -errno, a reason word
 * (docs/dbus-api.md) and a sentence a person can act on; plus small libfido2 helpers
 * (COSE names, AAGUID text, public-key loading, reading a PIN from a pipe). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fido.h>

/* FIDO_OK → 0; any other status → a negative errno (never 0). */
int fido_error_to_errno(int fido_status);
/* Reason word for an assertion/credential failure: "wrong-pin", "no-touch", ... ("error"
 * for anything not specifically mapped). */
const char *fido_error_reason(int fido_status);
/* A sentence for the user/admin; never NULL. */
const char *fido_error_message(int fido_status);

/* "es256" / "eddsa" / "rs256" ↔ COSE_ES256 / COSE_EDDSA / COSE_RS256 (case-insensitive).
 * from_string returns 0 (COSE_UNSPEC) for anything else; to_string NULL. */
int fido_cose_from_string(const char *s);
const char *fido_cose_to_string(int cose);

/* AAGUID as canonical UUID text (36 chars + NUL), and back (strict). */
#define FIDO_AAGUID_STRING_MAX 37
void fido_aaguid_to_string(const uint8_t aaguid[16], char buf[FIDO_AAGUID_STRING_MAX]);
int fido_aaguid_from_string(const char *s, uint8_t ret[16]);

/* Verifies assertion IDX of A against a public key in libfido2's raw format
 * (fido_cred_pubkey_ptr: ES256 64 bytes x||y or 65 with 0x04, EdDSA 32, RS256 259).
 * Returns the libfido2 status (FIDO_OK when the signature is valid). */
int fido_assert_verify_raw(
        const fido_assert_t *a, size_t idx, int cose, const void *pk, size_t pk_len);
/* Whether PK is a well-formed public key of type COSE (loads it with libfido2). */
bool fido_pubkey_valid(int cose, const void *pk, size_t pk_len);

/* Reads a PIN from FD (a pipe; at most KEYWARD_MAX_PIN bytes, one trailing newline
 * stripped). *ret = NULL when the pipe gives nothing (no PIN). -EMSGSIZE when longer,
 * -EINVAL for a NUL byte. The buffers are wiped. Does not close FD. */
int fido_pin_read_fd(int fd, char **ret);

/* --- credential lists a key accepts ---------------------------------------------------
 * An allow list (getAssertion) or exclude list (makeCredential) longer than the key takes
 * fails the whole request (REQUEST_TOO_LARGE, LIMIT_EXCEEDED): a YubiKey 5 takes 8 ids in
 * 1,200 bytes. Lists are therefore sent in batches cut by what the key advertises. */

/* What one list sent to a key may hold, from its authenticatorGetInfo. */
typedef struct FidoListLimits {
	size_t max_count;  /* ids per list (maxCredentialCountInList) */
	size_t max_id_len; /* longer ids are not sent: the key cannot have made them */
	size_t max_msg;    /* bytes of one request (maxMsgSize) */
} FidoListLimits;

/* A key that advertises no maxMsgSize: CTAP's default, which every key takes. */
#define FIDO_LIST_DEFAULT_MSG_SIZE 1024
/* Bytes of a request other than the list and the rp id, with room to spare:
 * getAssertion (cdh, options, pinUvAuthParam, extensions) and makeCredential (those, the
 * user entity with a 64-byte id and two 64-byte names, algorithms). */
#define FIDO_LIST_ASSERT_OVERHEAD    192
#define FIDO_LIST_MAKE_CRED_OVERHEAD 448

/* Limits of DEV (open): asks the key for its GetInfo. A key that advertises nothing (or a
 * U2F key, whose lists libfido2 sends one id at a time) gets the defaults. Never fails. */
void fido_list_limits(fido_dev_t *dev, FidoListLimits *ret);

/* Credential ids (bytes), in the order the user's file has them. */
typedef struct FidoCredId {
	uint8_t *ptr;
	size_t len;
} FidoCredId;

typedef struct FidoCredIds {
	FidoCredId *items;
	size_t n;
} FidoCredIds;

/* Appends a copy of ID. -ENOMEM. */
int fido_cred_ids_add(FidoCredIds *ids, const void *id, size_t len);
void fido_cred_ids_done(FidoCredIds *ids);

/* Where the batch of IDS that starts at START ends (index after its last id): as many
 * ids as the key's LIM lets one request carry next to OVERHEAD bytes
 * (FIDO_LIST_*_OVERHEAD + the rp id's length), at least one; ids longer than the key
 * takes are passed over. IDS fits in one request when the batch from 0 ends at ids->n. */
size_t fido_list_batch_end(
        const FidoCredIds *ids, const FidoListLimits *lim, size_t overhead, size_t start);

/* Adds the next batch of IDS, from *POS on, to an allow list (AS) or an exclude list
 * (CRED): the batch fido_list_batch_end() gives. Advances *POS past it. Returns how many were added
 * (0: none left), or -errno. */
int fido_assert_allow_batch(fido_assert_t *as, const FidoCredIds *ids, const FidoListLimits *lim,
        size_t overhead, size_t *pos);
int fido_cred_exclude_batch(fido_cred_t *cred, const FidoCredIds *ids, const FidoListLimits *lim,
        size_t overhead, size_t *pos);

/* Silent probe (no touch, no PIN) of DEV (open) for the ids of IDS under RP, batch by batch;
 * an empty IDS asks for discoverable credentials. Returns 1 when the key holds one of them
 * (*ret_assert: the key's answer, NULL for a U2F key), 0 when every batch was answered
 * "no credentials", or -errno for any other answer, with *ret_status (if given) the libfido2
 * status: a list the key refused as too large is an error, never "not held". */
int fido_probe_batches(fido_dev_t *dev, const char *rp, const FidoCredIds *ids,
        const FidoListLimits *lim, fido_assert_t **ret_assert, int *ret_status);
