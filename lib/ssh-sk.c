/* ssh-sk.c: OpenSSH sk public keys, lines, fingerprints, SSH_AUTH_INFO_0, signatures and
 * attestation (ssh-sk.h). FIRST COMMIT: stubs only, replaced by the implementation. */
#include "ssh-sk.h"

#include <errno.h>

const char *ssh_sk_type_to_string(SshSkType t)
{
	return NULL;
}

SshSkType ssh_sk_type_from_string(const char *s)
{
	return _SSH_SK_TYPE_INVALID;
}

const char *ssh_sk_type_short(SshSkType t)
{
	return NULL;
}

void ssh_sk_key_done(SshSkKey *k)
{
}

int ssh_sk_key_from_blob(const uint8_t *blob, size_t len, SshSkKey *ret, char **ret_error)
{
	return -EOPNOTSUPP;
}

int ssh_sk_key_to_blob(const SshSkKey *k, uint8_t **ret, size_t *ret_len)
{
	return -EOPNOTSUPP;
}

bool ssh_sk_key_equal(const SshSkKey *a, const SshSkKey *b)
{
	return false;
}

int ssh_fingerprint(const uint8_t *blob, size_t len, char **ret)
{
	return -EOPNOTSUPP;
}

int ssh_sk_credential_id(const uint8_t *blob, size_t len, char **ret)
{
	return -EOPNOTSUPP;
}

void ssh_key_line_done(SshKeyLine *l)
{
}

int ssh_key_line_parse(const char *line, SshKeyLine *ret, char **ret_error)
{
	return -EOPNOTSUPP;
}

int ssh_sk_key_format_line(const SshSkKey *k, bool verify_required, const char *comment, char **ret)
{
	return -EOPNOTSUPP;
}

int ssh_sk_key_from_credential(const Credential *c, SshSkKey *ret)
{
	return -EOPNOTSUPP;
}

int ssh_sk_credential_from_key(const SshSkKey *k, const char *label, Credential *ret)
{
	return -EOPNOTSUPP;
}

SshAuthInfo *ssh_auth_info_free(SshAuthInfo *a)
{
	return NULL;
}

int ssh_auth_info_parse(const char *text, SshAuthInfo **ret, char **ret_error)
{
	return -EOPNOTSUPP;
}

int ssh_sk_signature_verify(const SshSkKey *k, const uint8_t *sig, size_t sig_len,
        const uint8_t *data, size_t data_len, uint8_t *ret_flags, uint32_t *ret_counter,
        char **ret_error)
{
	return -EOPNOTSUPP;
}

void ssh_sk_attestation_done(SshSkAttestation *a)
{
}

int ssh_sk_attestation_verify(const uint8_t *att, size_t att_len, const uint8_t *challenge,
        size_t challenge_len, const SshSkKey *k, SshSkAttestation *ret, char **ret_error)
{
	return -EOPNOTSUPP;
}
