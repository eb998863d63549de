/* ssh-agent.h: a bounded-time client of the ssh-agent protocol (draft-miller-ssh-agent):
 * list identities and ask for a signature, as the user who owns the socket. No OpenSSL:
 * pam_keyward.so may link it. Library code: -errno, never logs; sentences in *ret_error. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SSH_AGENT_MAX_MESSAGE    (256 * 1024)
#define SSH_AGENT_MAX_IDENTITIES 1024

typedef struct SshAgentIdentity {
	uint8_t *blob; /* public key blob */
	size_t blob_len;
	char *comment;
} SshAgentIdentity;

typedef struct SshAgentIdentities {
	SshAgentIdentity *items;
	size_t n;
} SshAgentIdentities;

SshAgentIdentities *ssh_agent_identities_free(SshAgentIdentities *l);
static inline void ssh_agent_identities_freep(SshAgentIdentities **l)
{
	if (*l)
		ssh_agent_identities_free(*l);
}

/* Connects to the agent socket PATH as UID/GID: lstat() must show a socket owned by UID;
 * connect() runs with the file-system identity switched to UID/GID (setfsuid/setfsgid,
 * restored afterwards; per thread) and the peer (SO_PEERCRED) must be UID. The timeout
 * bounds the connect. 0 and *ret_fd (O_CLOEXEC|O_NONBLOCK, for the calls below; caller closes);
 * -ENOENT no socket, -EPERM wrong owner/peer or not a socket, -ETIMEDOUT, other -errno; *ret_error
 * a sentence naming PATH. */
int ssh_agent_open(
        const char *path, uid_t uid, gid_t gid, int timeout_ms, int *ret_fd, char **ret_error);

/* REQUEST_IDENTITIES (11) → IDENTITIES_ANSWER (12). TIMEOUT_MS bounds the whole exchange.
 * -ETIMEDOUT on a hang, -EBADMSG on garbage or an oversized reply, -EIO/-ECONNRESET when
 * the agent goes away, -EPROTO for SSH_AGENT_FAILURE. */
int ssh_agent_list(int fd, int timeout_ms, SshAgentIdentities **ret, char **ret_error);

/* SIGN_REQUEST (13: key blob, DATA, FLAGS) → SIGN_RESPONSE (14): *ret_sig is the
 * signature blob (string sig type, ...) for ssh_sk_signature_verify(); malloc()ed.
 * FAILURE (5) → -EPROTO ("the agent refused to sign": no touch, key missing, ...). */
int ssh_agent_sign(int fd, const uint8_t *key_blob, size_t key_len, const uint8_t *data,
        size_t data_len, uint32_t flags, int timeout_ms, uint8_t **ret_sig, size_t *ret_sig_len,
        char **ret_error);

/* Parses an IDENTITIES_ANSWER / SIGN_RESPONSE message body (type byte first, without
 * the length prefix); used by the calls above and by the fuzzer. */
int ssh_agent_parse_identities(
        const uint8_t *msg, size_t len, SshAgentIdentities **ret, char **ret_error);
int ssh_agent_parse_sign_response(
        const uint8_t *msg, size_t len, uint8_t **ret_sig, size_t *ret_sig_len, char **ret_error);
