/* policy-directory.h: the `directory` group of keyward.conf's settings (an LDAP directory
 * as a second credential source, keyward.conf(5) DIRECTORY) and the per-rule
 * `credentials` source. Types only; policy.c parses them. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

/* Which credentials count for a rule's accounts. */
typedef enum PolicyCredSource {
	POLICY_CRED_SOURCE_LOCAL,     /* credentials_dir only (default) */
	POLICY_CRED_SOURCE_DIRECTORY, /* the directory (or its cache) only */
	POLICY_CRED_SOURCE_BOTH,      /* both, merged (a local and a directory entry of the
	                               * same credential id: the local one) */
	_POLICY_CRED_SOURCE_MAX,
	_POLICY_CRED_SOURCE_INVALID = -EINVAL,
} PolicyCredSource;

typedef enum PolicyDirectoryBind {
	POLICY_DIRECTORY_BIND_NONE,          /* anonymous */
	POLICY_DIRECTORY_BIND_SIMPLE,        /* bind_dn + the password in secret_file */
	POLICY_DIRECTORY_BIND_SASL_EXTERNAL, /* the TLS client certificate (or ldapi:// peer) */
	_POLICY_DIRECTORY_BIND_MAX,
	_POLICY_DIRECTORY_BIND_INVALID = -EINVAL,
} PolicyDirectoryBind;

#define POLICY_DIRECTORY_URIS_MAX    8
#define POLICY_DIRECTORY_TIMEOUT_MIN 100   /* ms */
#define POLICY_DIRECTORY_TIMEOUT_MAX 30000 /* ms: a login never waits longer on it */
#define POLICY_DIRECTORY_FILTER_MAX  512

/* Strings owned by the Policy; all NULL and `configured` false when there is no group. */
typedef struct PolicyDirectory {
	bool configured;
	char **uris; /* NULL-terminated; ldaps://, ldap:// (StartTLS) or ldapi:// */
	char *base_dn;
	char *user_filter; /* "%u": the user name, RFC 4515-escaped */
	PolicyDirectoryBind bind;
	char *bind_dn;
	char *secret_file; /* root-only 0600; simple bind's password */
	char *tls_ca_file;
	char *tls_cert_file; /* SASL EXTERNAL client certificate */
	char *tls_key_file;
	char *attribute; /* SSSD-format passkey values; default "passkey" */
	uint32_t timeout_ms;
	uint32_t refresh_s;
	uint32_t cache_max_age_s;
	bool writable;
} PolicyDirectory;

const char *policy_cred_source_to_string(PolicyCredSource s);
PolicyCredSource policy_cred_source_from_string(const char *s);
const char *policy_directory_bind_to_string(PolicyDirectoryBind b);
