/* ssh-sk.h: OpenSSH security-key (sk-) public keys — blobs, authorized_keys lines,
 * fingerprints, SSH_AUTH_INFO_0, sk signatures and ssh-sk-attest files (docs/ssh.md).
 * Library code: -errno, never logs; errors as malloc()ed sentences in *ret_error. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "creds.h"

#define SSH_SK_ECDSA_NAME   "sk-ecdsa-sha2-nistp256@openssh.com"
#define SSH_SK_ED25519_NAME "sk-ssh-ed25519@openssh.com"

#define SSH_SK_FLAG_UP 0x01 /* user present (touch) */
#define SSH_SK_FLAG_UV 0x04 /* user verified (PIN) */

#define SSH_SK_MAX_BLOB           2048  /* caps on what an outsider hands us */
#define SSH_SK_MAX_APPLICATION    255   /* like a FIDO rp id */
#define SSH_SK_MAX_LINE           16384 /* one authorized_keys line */
#define SSH_SK_MAX_SIGNATURE      1024
#define SSH_SK_MAX_ATTESTATION    (64 * 1024)
#define SSH_AUTH_INFO_MAX_LEN     (64 * 1024)
#define SSH_AUTH_INFO_MAX_METHODS 32

typedef enum SshSkType {
	SSH_SK_ECDSA,   /* sk-ecdsa-sha2-nistp256@openssh.com, COSE ES256 */
	SSH_SK_ED25519, /* sk-ssh-ed25519@openssh.com, COSE EdDSA */
	_SSH_SK_TYPE_MAX,
	_SSH_SK_TYPE_INVALID = -EINVAL,
} SshSkType;

/* The SSH key type name ("sk-ecdsa-sha2-nistp256@openssh.com"), or NULL. */
const char *ssh_sk_type_to_string(SshSkType t);
/* -EINVAL for anything but the two sk names. */
SshSkType ssh_sk_type_from_string(const char *s);
/* "ecdsa-sk" / "ed25519-sk" (what ssh-keygen -t takes and -l prints), or NULL. */
const char *ssh_sk_type_short(SshSkType t);

typedef struct SshSkKey {
	SshSkType type;
	uint8_t public_key[65]; /* ECDSA: SEC1 uncompressed 0x04|x|y (65); Ed25519: 32 bytes */
	size_t public_key_len;
	char *application; /* "ssh:" usually; 1..SSH_SK_MAX_APPLICATION printable ASCII */
} SshSkKey;

void ssh_sk_key_done(SshSkKey *k);

/* Parses the SSH wire blob of a public key (RFC 4251 strings). 0 and *ret (free with
 * ssh_sk_key_done()) for an sk key; -EPROTOTYPE for a well-formed blob of another key type
 * (ssh-ed25519, ecdsa-sha2-*, ssh-rsa, certificates, ...: "not a security-key SSH key");
 * -EBADMSG for anything malformed (lengths, curve name, a point not on P-256, trailing
 * bytes). *ret_error (if given) gets a sentence on failure. */
int ssh_sk_key_from_blob(const uint8_t *blob, size_t len, SshSkKey *ret, char **ret_error);
/* The wire blob of K; malloc()ed. */
int ssh_sk_key_to_blob(const SshSkKey *k, uint8_t **ret, size_t *ret_len);
/* Whether A and B are the same key (type, point and application). */
bool ssh_sk_key_equal(const SshSkKey *a, const SshSkKey *b);

/* "SHA256:<base64 without padding>" of BLOB, exactly as `ssh-keygen -l` prints it. */
int ssh_fingerprint(const uint8_t *blob, size_t len, char **ret);
/* The credential id keyward stores for an sk key: base64 (padded) of SHA-256(BLOB). */
int ssh_sk_credential_id(const uint8_t *blob, size_t len, char **ret);

/* One line of an authorized_keys or .pub file: [options] keytype base64 [comment]. */
typedef struct SshKeyLine {
	char *key_type; /* as written */
	uint8_t *blob;  /* decoded base64 */
	size_t blob_len;
	char *comment;  /* or NULL */
	char **options; /* each option as written (quotes removed), NULL-terminated; or NULL */
	bool no_touch_required; /* option no-touch-required */
	bool verify_required;   /* option verify-required */
	bool is_sk;             /* key is valid (an sk key) */
	SshSkKey key;
} SshKeyLine;

void ssh_key_line_done(SshKeyLine *l);
/* Parses LINE (no newline). 0: an sk key (ret->is_sk, ret->key). -ENODATA: blank or
 * comment line (nothing in *ret). -EPROTOTYPE: a well-formed line with an ordinary key
 * (ret->key_type and ret->comment are set so the caller can name it; free with
 * ssh_key_line_done()). -EBADMSG: malformed (unbalanced quotes, bad base64, type/blob
 * mismatch, over SSH_SK_MAX_LINE). Options other than no-touch-required and
 * verify-required are kept in ret->options (keyward does not apply them; sshd does
 * when it reads authorized_keys itself). */
int ssh_key_line_parse(const char *line, SshKeyLine *ret, char **ret_error);
/* "<keytype> <base64>[ <comment>]" with "verify-required " in front when VERIFY_REQUIRED. */
int ssh_sk_key_format_line(
        const SshSkKey *k, bool verify_required, const char *comment, char **ret);

/* Credential <-> key. From a Credential of type ssh-sk (rp_id = application, alg es256:
 * public_key x|y, eddsa: the point). -EPROTOTYPE for a FIDO2 credential, -EINVAL for an
 * inconsistent one. */
int ssh_sk_key_from_credential(const Credential *c, SshSkKey *ret);
/* Fills a new Credential (type ssh-sk, id, rp_id, alg, public_key, up=true, uv=false,
 * attestation=imported, label LABEL, created_ms 0); the caller sets the rest. */
int ssh_sk_credential_from_key(const SshSkKey *k, const char *label, Credential *ret);

/* SSH_AUTH_INFO_0 (sshd ExposeAuthInfo): one successful method per line,
 * "publickey <keytype> <base64 blob>", "password", "keyboard-interactive/pam",
 * "hostbased <keytype> <blob>", ... Strict: printable ASCII, '\n'-separated, capped. */
typedef struct SshAuthMethod {
	char *method;   /* "publickey", "password", "keyboard-interactive/pam", ... */
	char *key_type; /* publickey/hostbased: as written; else NULL */
	uint8_t *blob;  /* publickey/hostbased: decoded; else NULL */
	size_t blob_len;
} SshAuthMethod;

typedef struct SshAuthInfo {
	SshAuthMethod *methods;
	size_t n;
} SshAuthInfo;

SshAuthInfo *ssh_auth_info_free(SshAuthInfo *a);
static inline void ssh_auth_info_freep(SshAuthInfo **a)
{
	if (*a)
		ssh_auth_info_free(*a);
}
/* -EBADMSG with a sentence for anything malformed; an empty text is -ENODATA. */
int ssh_auth_info_parse(const char *text, SshAuthInfo **ret, char **ret_error);

/* Verifies an sk signature SIG (the content of the SIGN_RESPONSE's signature string:
 * string sig type, string signature (ECDSA: mpint r, mpint s; Ed25519: 64 bytes),
 * byte flags, uint32 counter) by K over DATA. The signed message is
 * SHA256(application) || flags || counter (BE32) || SHA256(DATA).
 * 0 with *ret_flags and *ret_counter: the signature is good — the CALLER checks
 * UP/UV and the counter. -EBADMSG malformed, -EPROTOTYPE signature type not K's,
 * -EKEYREJECTED bad signature. */
int ssh_sk_signature_verify(const SshSkKey *k, const uint8_t *sig, size_t sig_len,
        const uint8_t *data, size_t data_len, uint8_t *ret_flags, uint32_t *ret_counter,
        char **ret_error);

/* An ssh-sk-attest-v01 (or -v00) file verified against the challenge and the key. */
typedef struct SshSkAttestation {
	uint8_t aaguid[16];
	uint8_t flags; /* authenticator data flags (UP 0x01, UV 0x04) */
	uint8_t *x5c;  /* DER attestation certificate (for the trust-anchor chain check) */
	size_t x5c_len;
} SshSkAttestation;

void ssh_sk_attestation_done(SshSkAttestation *a);
/* Parses ATT, verifies it with libfido2 (fmt "packed", clientDataHash =
 * SHA256(CHALLENGE)) and checks the attested credential public key equals K and the
 * rp id K's application. 0 and *ret; -EBADMSG malformed, -EKEYREJECTED signature or key
 * mismatch; *ret_error a sentence. The x5c chain is NOT checked here (daemon/attestation.c). */
int ssh_sk_attestation_verify(const uint8_t *att, size_t att_len, const uint8_t *challenge,
        size_t challenge_len, const SshSkKey *k, SshSkAttestation *ret, char **ret_error);
