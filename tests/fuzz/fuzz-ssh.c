/* fuzz-ssh.c: libFuzzer target for the SSH parsers (lib/ssh-sk.c, lib/ssh-agent.c). The
 * first byte picks one: an authorized_keys line, a key blob (which must re-encode to the
 * same bytes), SSH_AUTH_INFO_0, an sk signature or an ssh-sk-attest file (after a
 * length-prefixed key blob), an agent IDENTITIES_ANSWER or SIGN_RESPONSE. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ssh-agent.h"
#include "ssh-sk.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* [u16 key length][key blob][rest]: the key for the signature/attestation modes. */
static bool split_key(
        const uint8_t *data, size_t size, SshSkKey *k, const uint8_t **rest, size_t *rest_len)
{
	size_t kl;

	if (size < 2)
		return false;
	kl = (size_t)data[0] << 8 | data[1];
	if (kl > size - 2 || ssh_sk_key_from_blob(data + 2, kl, k, NULL) < 0)
		return false;
	*rest = data + 2 + kl;
	*rest_len = size - 2 - kl;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *text = NULL, *err = NULL;
	const uint8_t *rest;
	size_t rest_len;
	uint8_t mode;

	if (size < 1 || size > 256 * 1024)
		return 0;
	mode = data[0] % 6;
	data++;
	size--;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	switch (mode) {
	case 0: { /* authorized_keys line: a parsed key formats and parses back to itself */
		SshKeyLine l = {}, l2 = {};
		_cleanup_free_ char *again = NULL;
		int r = ssh_key_line_parse(text, &l, &err);

		if (r == 0) {
			if (ssh_sk_key_format_line(&l.key, l.verify_required, NULL, &again) < 0 ||
			        ssh_key_line_parse(again, &l2, NULL) != 0 ||
			        !ssh_sk_key_equal(&l.key, &l2.key) ||
			        l2.verify_required != l.verify_required)
				abort();
		}
		if (r == 0 || r == -EPROTOTYPE)
			ssh_key_line_done(&l);
		ssh_key_line_done(&l2);
		break;
	}
	case 1: { /* key blob: re-encodes to the same bytes; the credential round trip */
		SshSkKey k = {}, k2 = {};
		_cleanup_free_ uint8_t *blob = NULL;
		_cleanup_free_ char *fp = NULL;
		Credential c = {};
		size_t len;

		if (ssh_sk_key_from_blob(data, size, &k, &err) == 0) {
			if (ssh_sk_key_to_blob(&k, &blob, &len) < 0 || len != size ||
			        memcmp(blob, data, size) != 0 ||
			        ssh_fingerprint(blob, len, &fp) < 0)
				abort();
			if (ssh_sk_credential_from_key(&k, "fuzz", &c) < 0)
				abort();
			c.type = CRED_TYPE_SSH_SK;
			if (ssh_sk_key_from_credential(&c, &k2) < 0 || !ssh_sk_key_equal(&k, &k2))
				abort();
			credential_done(&c);
			ssh_sk_key_done(&k2);
			ssh_sk_key_done(&k);
		}
		break;
	}
	case 2: { /* SSH_AUTH_INFO_0 */
		SshAuthInfo *a = NULL;
		if (ssh_auth_info_parse(text, &a, &err) == 0)
			ssh_auth_info_free(a);
		break;
	}
	case 3: { /* sk signature over fixed data */
		SshSkKey k = {};
		uint8_t flags;
		uint32_t counter;

		if (split_key(data, size, &k, &rest, &rest_len)) {
			(void)ssh_sk_signature_verify(&k, rest, rest_len, (const uint8_t *)"fuzz",
			        4, &flags, &counter, &err);
			ssh_sk_key_done(&k);
		}
		break;
	}
	case 4: { /* ssh-sk-attest file, challenge "fuzz" */
		SshSkKey k = {};
		SshSkAttestation a = {};

		if (split_key(data, size, &k, &rest, &rest_len)) {
			if (ssh_sk_attestation_verify(
			            rest, rest_len, (const uint8_t *)"fuzz", 4, &k, &a, &err) == 0)
				ssh_sk_attestation_done(&a);
			ssh_sk_key_done(&k);
		}
		break;
	}
	case 5: { /* agent replies */
		SshAgentIdentities *ids = NULL;
		_cleanup_free_ uint8_t *sig = NULL;
		size_t sl;

		if (ssh_agent_parse_identities(data, size, &ids, NULL) == 0)
			ssh_agent_identities_free(ids);
		(void)ssh_agent_parse_sign_response(data, size, &sig, &sl, NULL);
		break;
	}
	}
	return 0;
}
