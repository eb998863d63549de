/* directory.h: credentials kept in an LDAP directory (docs/credentials.md, "Directory"):
 * the value formats (SSSD's passkey mapping "passkey:<id>,<key>[,<user id>]" and keyward's
 * own keywardCredential / keywardSignCount attributes, dist/keyward.ldif), the RFC 4515
 * filter escaping, the bounded libldap client (fetch, one-op modify) and the root-only
 * cache under <state_dir>/directory-cache. Shared by keywardd and keywardctl. Library
 * code: -errno, never logs (per-value problems are handed back as text). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "creds.h"
#include "policy-directory.h"

#define DIRECTORY_VALUE_MAX       4096 /* bytes of one attribute value */
#define DIRECTORY_VALUES_MAX      64   /* values of one attribute looked at per user */
#define DIRECTORY_PROBLEMS_MAX    (2 * DIRECTORY_VALUES_MAX + 8) /* problems kept for the log */
#define DIRECTORY_CACHE_SUBDIR    "directory-cache"
#define DIRECTORY_CACHE_FILE_MAX  (1024 * 1024)
#define DIRECTORY_ATTR_CREDENTIAL "keywardCredential"
#define DIRECTORY_ATTR_COUNTER    "keywardSignCount"

typedef struct DirectoryCounter {
	char *id; /* credential id (base64) */
	uint32_t value;
	char *raw; /* the exact attribute value ("<id> <n>"), for the compare-and-swap */
} DirectoryCounter;

/* What the directory holds for one user, as fetched (or as cached). */
typedef struct DirectoryUser {
	char *user;
	char *dn;              /* NULL: no entry matched (no directory credentials) */
	char *uri;             /* the server that answered */
	uint64_t fetched_ms;   /* realtime */
	char **values;         /* raw passkey attribute values (NULL-terminated) */
	char **keyward_values; /* raw keywardCredential values */
	DirectoryCounter *counters;
	size_t n_counters;
	CredentialSet *set; /* parsed from the values */
	char **problems;    /* one sentence per rejected value */
} DirectoryUser;

DirectoryUser *directory_user_free(DirectoryUser *u);
static inline void directory_user_freep(DirectoryUser **u)
{
	if (*u)
		directory_user_free(*u);
}
#define _cleanup_directory_user_ _cleanup_(directory_user_freep)

/* Debian's CA bundle: the server certificate's anchors when the policy names none
 * (libldap's own configuration, which would name them, is not read). */
#define DIRECTORY_DEFAULT_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
/* Call once, before any thread and any other libldap use: libldap then reads neither
 * ldap.conf nor an ldaprc in the working or home directory nor LDAP* environment
 * variables (LDAPNOINIT): only the policy configures the connection. */
void directory_library_init(void);

/* RFC 4515 escaping of a value inside a filter: '*', '(', ')', '\\', NUL and every byte
 * outside printable ASCII become "\\XX". */
int directory_filter_escape(const char *value, char **ret);
/* TEMPLATE with each "%u" replaced by USER escaped, "%%" by "%". */
int directory_user_filter(const char *template_, const char *user, char **ret);

/* One SSSD passkey mapping value: "passkey:<credential id b64>,<public key b64>[,<user id
 * b64>]", the public key a DER SubjectPublicKeyInfo (P-256, Ed25519 or RSA-2048), the id
 * "*" for a discoverable credential whose id is not known. Gives a Credential for RP_ID
 * (label LABEL, attestation "imported", touch required). -EINVAL with *ret_why. */
int directory_passkey_parse(const char *value, const char *rp_id, const char *label,
        Credential *ret, const char **ret_why);
/* The SSSD value of C (libfido2 raw key → SubjectPublicKeyInfo). */
int directory_passkey_format(const Credential *c, char **ret);
/* keywardCredential: "<credential id> label=L rp_id=R alg=A aaguid=U flags=up,uv,rk
 * attestation=X created=RFC3339" (all but the id optional). Applies it to the matching
 * credential of S. -ENOENT: no such credential; -EINVAL with *ret_why. */
int directory_keyward_apply(CredentialSet *s, const char *value, const char **ret_why);
int directory_keyward_format(const Credential *c, char **ret);
/* keywardSignCount: "<credential id> <counter>". */
int directory_counter_parse(const char *value, DirectoryCounter *ret);
int directory_counter_format(const char *id, uint32_t value, char **ret);
const DirectoryCounter *directory_user_counter(const DirectoryUser *u, const char *id);

/* Builds U->set from U's raw values: each bad value is skipped with a sentence in
 * U->problems, the others kept. RP_ID: the policy's. */
int directory_user_parse(DirectoryUser *u, const char *rp_id);

/* Fetches USER's entry from the first server of CFG that answers, every step bounded by
 * CFG->timeout_ms in total (connect, StartTLS, bind, search). Blocking: call it from a
 * worker thread. *ret_error: a sentence naming the server and the failure. */
int directory_fetch(const PolicyDirectory *cfg, const char *rp_id, const char *user,
        DirectoryUser **ret, char **ret_error);
/* One LDAP modify on DN of ATTRIBUTE: delete DEL_VALUE (if not NULL) and add ADD_VALUE (if
 * not NULL) in ONE operation, so that it fails (-ESTALE, noSuchAttribute) when DEL_VALUE is
 * no longer there (another host changed it first) and -EEXIST when ADD_VALUE already is. */
int directory_modify(const PolicyDirectory *cfg, const char *dn, const char *attribute,
        const char *del_value, const char *add_value, char **ret_error);

/* One LDAP modify on DN adding VALUE1 to ATTR1 and VALUE2 to ATTR2 (a registration: its
 * passkey value and its keywardCredential value, together or not at all). */
int directory_add_values(const PolicyDirectory *cfg, const char *dn, const char *attr1,
        const char *value1, const char *attr2, const char *value2, char **ret_error);
/* Deletes each exact VALUE of ATTRS[i] (NULL-terminated lists of equal length) in ONE
 * modify (a revocation). */
int directory_delete_values(const PolicyDirectory *cfg, const char *dn, const char *const *attrs,
        const char *const *values, char **ret_error);

/* The cache: "<state_dir>/directory-cache/<user>", root-only, replaced atomically. */
int directory_cache_path(const char *state_dir, const char *user, char **ret);
int directory_cache_save(const char *state_dir, const DirectoryUser *u);
/* -ENOENT when there is none. The values are parsed again (directory_user_parse). */
int directory_cache_load(
        const char *state_dir, const char *user, const char *rp_id, DirectoryUser **ret);
int directory_cache_remove(const char *state_dir, const char *user);
/* Users with a cache file, sorted. */
int directory_cache_users(const char *state_dir, char ***ret);

/* The last contact with the directory, for `keywardctl directory status`:
 * "<state_dir>/directory-cache/.status" with "success <ms> <uri>" and "error <ms> <text>"
 * lines. note() replaces one line (ERROR NULL: a success via URI); callers serialise. */
#define DIRECTORY_STATUS_FILE ".status"
typedef struct DirectoryStatus {
	uint64_t success_ms, error_ms;
	char *success_uri, *error;
} DirectoryStatus;
int directory_status_note(const char *state_dir, const char *uri, const char *error);
int directory_status_load(const char *state_dir, DirectoryStatus *ret);
void directory_status_done(DirectoryStatus *s);

/* Merges the credentials of SOURCE into DST (LOCAL: DST unchanged; DIRECTORY: DST
 * replaced by DIR's; BOTH: DIR's added, a credential id already in DST kept as DST has it,
 * a clashing label renamed "dir-<n>"). */
int directory_merge(CredentialSet **dst, const CredentialSet *dir, PolicyCredSource source);
