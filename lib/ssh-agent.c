/* ssh-agent.c: bounded-time ssh-agent client (ssh-agent.h). FIRST COMMIT: stubs only. */
#include "ssh-agent.h"

#include <errno.h>
#include <stdbool.h>

SshAgentIdentities *ssh_agent_identities_free(SshAgentIdentities *l)
{
	return NULL;
}

int ssh_agent_open(
        const char *path, uid_t uid, gid_t gid, int timeout_ms, int *ret_fd, char **ret_error)
{
	return -EOPNOTSUPP;
}

int ssh_agent_list(int fd, int timeout_ms, SshAgentIdentities **ret, char **ret_error)
{
	return -EOPNOTSUPP;
}

int ssh_agent_sign(int fd, const uint8_t *key_blob, size_t key_len, const uint8_t *data,
        size_t data_len, uint32_t flags, int timeout_ms, uint8_t **ret_sig, size_t *ret_sig_len,
        char **ret_error)
{
	return -EOPNOTSUPP;
}

int ssh_agent_parse_identities(
        const uint8_t *msg, size_t len, SshAgentIdentities **ret, char **ret_error)
{
	return -EOPNOTSUPP;
}

int ssh_agent_parse_sign_response(
        const uint8_t *msg, size_t len, uint8_t **ret_sig, size_t *ret_sig_len, char **ret_error)
{
	return -EOPNOTSUPP;
}
