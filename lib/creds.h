/* creds.h: keyward's credential store — one human-readable file of public FIDO2
 * credentials per user under credentials_dir (docs/credentials.md), sign counters under
 * state_dir, and the pam_u2f authfile importer. Library code: -errno, never logs. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CREDS_FILE_SUFFIX     ".creds"
#define CREDS_MAX_FILE_SIZE   (256 * 1024)
#define CREDS_MAX_PER_FILE    64    /* hard cap; the policy's max_credentials_per_user is lower */
#define CREDS_MAX_USERS       65536 /* creds_list_users() cap */
#define CREDS_MAX_VALUE       2048  /* characters of one value (base64 RS256 keys fit) */
#define CREDS_DISCOVERABLE_ID "*"   /* imported discoverable credential with unknown id */

typedef enum CredAttestation {
	CRED_ATTESTATION_NONE,       /* fmt "none": nothing to check */
	CRED_ATTESTATION_SELF,       /* self attestation, signature verified */
	CRED_ATTESTATION_UNVERIFIED, /* x5c signature verified, chain not checked (policy: none) */
	CRED_ATTESTATION_VERIFIED,   /* x5c chained to one of the policy's trust anchors */
	CRED_ATTESTATION_IMPORTED,   /* imported from a pam_u2f authfile: never seen */
	_CRED_ATTESTATION_MAX,
	_CRED_ATTESTATION_INVALID = -EINVAL,
} CredAttestation;

typedef enum CredType {
	CRED_TYPE_FIDO2,  /* a FIDO2 credential made by Enroll or imported (default) */
	CRED_TYPE_SSH_SK, /* an OpenSSH sk key (docs/ssh.md): never used for a local assertion */
	_CRED_TYPE_MAX,
	_CRED_TYPE_INVALID = -EINVAL,
} CredType;

typedef struct Credential {
	CredType type; /* "type=" in the file; absent: fido2 */
	char *id; /* base64 (RFC 4648, padded) credential id, or "*" (discoverable, unknown id) */
	char *label;      /* unique per user, [A-Za-z0-9._@+-], <= 64 */
	char *rp_id;      /* relying party the credential was made for */
	int cose_alg;     /* COSE_ES256 / COSE_EDDSA / COSE_RS256 */
	char *public_key; /* base64 of libfido2's raw public key (fido_cred_pubkey_ptr) */
	char *user_id;    /* base64 user handle given at makeCredential, or NULL */
	bool has_aaguid;
	uint8_t aaguid[16];
	CredAttestation attestation;
	bool resident;       /* discoverable credential */
	bool up;             /* touch required (always, unless imported without +presence) */
	bool uv;             /* enrolled with PIN/UV: assertions must carry UV */
	uint64_t created_ms; /* realtime ms */
} Credential;

typedef struct CredentialSet {
	char *user;
	Credential *items;
	size_t n;
} CredentialSet;

void credential_done(Credential *c);
/* An SSH sk key (type=ssh-sk): no key handle, never in a local FIDO allow list or count. */
static inline bool credential_is_ssh(const Credential *c)
{
	return c && c->type == CRED_TYPE_SSH_SK;
}
CredentialSet *credential_set_free(CredentialSet *s);
static inline void credential_set_freep(CredentialSet **s)
{
	if (*s)
		credential_set_free(*s);
}
#define _cleanup_credential_set_ _cleanup_(credential_set_freep)

int credential_set_new(const char *user, CredentialSet **ret);
/* Credentials of S usable for a local key login (type fido2) / SSH (type ssh-sk). */
size_t creds_count_fido2(const CredentialSet *s);
size_t creds_count_ssh(const CredentialSet *s);
/* Drops the credentials of S that are not of TYPE (authenticate.c: a local key login uses
 * only type fido2). */
void creds_keep_type(CredentialSet *s, CredType type);

/* "<dir>/<user>.creds"; -EINVAL for an invalid user name. */
int creds_path(const char *dir, const char *user, char **ret);

/* Loads the user's credentials. A missing file (or missing dir) is an empty set (no
 * credentials). Anything else that prevents reading — unsafe file or directory
 * (symlink, not root-owned, group/world-writable), EACCES, EIO, a parse error — fails
 * with -errno and *ret_error (if given) a malloc()ed sentence naming the file and the
 * fix, e.g. "/etc/keyward/credentials/alice.creds is world-writable; run: chmod o-w
 * /etc/keyward/credentials/alice.creds". "Cannot read" never becomes "no credentials". */
int creds_load_user(const char *dir, const char *user, CredentialSet **ret, char **ret_error);
/* Parses file content (tests, fuzzing). FILENAME is used in messages ("FILE:LINE: ..."). */
int creds_parse(const char *text, const char *filename, const char *user, CredentialSet **ret,
        char **ret_error);
/* Serializes S; malloc()ed text. */
int creds_format(const CredentialSet *s, char **ret);
/* Atomically replaces the user's file (mode 0600); an empty set removes it. Creates
 * dir (0755) if missing. */
int creds_save_user(const char *dir, const CredentialSet *s);

/* Validation of single fields (also used by the D-Bus layer). */
bool creds_label_valid(const char *label);
bool creds_id_valid(const char *id); /* base64 of 1..1023 bytes, or "*" */

/* Lookup: by exact id, by label, or by either (label first). NULL if absent. */
Credential *creds_find_id(const CredentialSet *s, const char *id);
Credential *creds_find_label(const CredentialSet *s, const char *label);
Credential *creds_find(const CredentialSet *s, const char *label_or_id);
/* Adds a copy of C (deep). -EEXIST for a duplicate id or label, -E2BIG past MAX (0:
 * CREDS_MAX_PER_FILE), -EINVAL for an invalid credential. */
int creds_add(CredentialSet *s, const Credential *c, size_t max);
/* Removes the credential with that label or id; -ENOENT if none. */
int creds_remove(CredentialSet *s, const char *label_or_id);

/* For keywardctl/audit reports. Users with a <user>.creds file, sorted; an empty or
 * missing dir gives an empty list (not NULL). */
int creds_list_users(const char *dir, char ***ret_users);
/* Number of credentials of USER (0 when no file); errors as creds_load_user(). */
int creds_count_user(const char *dir, const char *user, size_t *ret);
/* The same, counting only the credentials of TYPE. */
int creds_count_user_type(const char *dir, const char *user, CredType type, size_t *ret);

/* Sign counters: "<state_dir>/counters/<user>", one "<id> <counter>" line each.
 * Load gives 0 and *ret_found=false when there is no entry (or no file). */
int creds_counter_load(
        const char *state_dir, const char *user, const char *id, uint32_t *ret, bool *ret_found);
int creds_counter_store(const char *state_dir, const char *user, const char *id, uint32_t value);
/* DURABLE false: replaced without waiting for the disk (temp file and rename, no fsync):
 * for a caller that holds a durable record of VALUE elsewhere (keywardd's audit trail) and
 * recovers from it after a crash (manager_counters_recover()). */
int creds_counter_store_full(
        const char *state_dir, const char *user, const char *id, uint32_t value, bool durable);
/* Makes every counter file under STATE_DIR/counters, and the directory, durable. */
int creds_counters_sync(const char *state_dir);

const char *cred_type_to_string(CredType t);
CredType cred_type_from_string(const char *s);
const char *cred_attestation_to_string(CredAttestation a);
CredAttestation cred_attestation_from_string(const char *s);

/* pam_u2f authfile ("user:KeyHandle,UserKey,CoseType,Options:..." lines). Both the
 * old format (websafe-base64 key handle, hex 65-byte uncompressed point; two fields,
 * es256 and +presence implied) and the new one (base64 key handle or "*" for a
 * resident credential, base64 raw public key, cose type, options +presence/+pin/
 * +verification). ORIGIN is the relying party pam_u2f used (its `origin`, default
 * "pam://<hostname>"); APPID that of old-format lines (its `appid`, default origin).
 * Gives one Credential per entry (label "<user>-u2f-<n>", attestation imported). */
typedef struct PamU2fEntry {
	char *user;
	Credential cred;
} PamU2fEntry;

int creds_parse_pam_u2f(const char *text, const char *filename, const char *origin,
        const char *appid, PamU2fEntry **ret, size_t *ret_n, char **ret_error);
void pam_u2f_entries_free(PamU2fEntry *e, size_t n);
#define PAM_U2F_MAX_ENTRIES 4096
#define PAM_U2F_MAX_LINE    16384
