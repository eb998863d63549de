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
