/* ssh-proof.h: proof of a registered security-key SSH key for a remote login whose rule
 * says on_remote = "ssh-key" (docs/ssh.md): sshd's record of the login (SSH_AUTH_INFO_0,
 * the account phase of a publickey login), or a signature through the forwarded agent over
 * a challenge of ours (AgentChallenge, then Authenticate with it). authenticate.c calls
 * ssh_proof_verify() and answers through its own path (counter, token, audit). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-bus.h>

#include "bus-util.h"
#include "creds.h"
#include "decision.h"
#include "manager.h"

/* What the module sent with Authenticate (options; strings point into the call). */
typedef struct SshProofRequest {
	const char *auth_info;    /* ssh_auth_info: sshd's SSH_AUTH_INFO_0 */
	const char *challenge_id; /* agent_challenge: the id AgentChallenge answered */
	const uint8_t *signature; /* agent_signature: the agent's signature blob */
	size_t signature_len;
	const char *agent_failure; /* agent_failure: why the module has no signature */
	pid_t caller_pid;
} SshProofRequest;

typedef struct SshProofResult {
	const char *reason; /* NULL: proven; else the refusal word */
	char message[256];
	const Credential *cred; /* the key used (points into the set), NULL if none */
	bool agent;             /* a signature through the agent: COUNTER is to be checked */
	uint32_t counter;
	char detail[160]; /* "method=ssh-login key=SHA256:..." for the audit record */
	char session[64]; /* the caller's logind session (the sshd session), "" if none */
} SshProofResult;

/* Which SSH proof REQ carries for decision D (require ssh-key) and whether it holds
 * against SET (the user's credentials): fills *ret. The agent's challenge is spent. */
void ssh_proof_verify(Manager *m, Decision *d, const CredentialSet *set, const SshProofRequest *req,
        SshProofResult *ret);

/* AgentChallenge(s user, s service, s tty, s rhost, a{sv} options{decision s, keys as})
 * → (s key, ay challenge, s challenge_id): picks the first offered key (base64 SSH public
 * key blobs from the user's agent) that is a registered security-key SSH key of the user,
 * and a challenge for it bound to the login's decision and the calling process (one use,
 * SSH_CHALLENGE_LIFETIME_MS). Same access rules as Authenticate. */
int bus_method_agent_challenge(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);

/* The options of Authenticate that ssh_proof_verify() reads ("name:type", for
 * bus_read_options()). */
#define SSH_PROOF_OPTIONS                                                                          \
	"ssh_auth_info:s", "agent_challenge:s", "agent_signature:ay", "agent_failure:s"
/* Reads one of them into REQ: 1 when KEY was one, 0 when not, -errno. */
int ssh_proof_option(const char *key, sd_bus_message *msg, SshProofRequest *req);
static inline bool ssh_proof_requested(const SshProofRequest *req)
{
	return req->auth_info || req->challenge_id || req->signature || req->agent_failure;
}
