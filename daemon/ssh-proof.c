/* ssh-proof.c: the SSH side of a login whose rule says on_remote = "ssh-key" — sshd's
 * SSH_AUTH_INFO_0 checked against the user's registered sk keys, the AgentChallenge method
 * and the verification of the agent's signature over its challenge (ssh-proof.h). */
#include "ssh-proof.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-login.h>

#include "bus-util.h"
#include "log.h"
#include "process.h"
#include "ssh-sk.h"
#include "util.h"

#define AGENT_MAX_KEYS 64 /* public keys the module may offer to AgentChallenge */

static void proof_fail(SshProofResult *r, const char *reason, const char *fmt, ...) _printf_(3, 4);
static void proof_fail(SshProofResult *r, const char *reason, const char *fmt, ...)
{
	va_list ap;

	r->reason = reason;
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
}

static void key_required(SshProofResult *r, const char *user, const char *what)
{
	proof_fail(r, "ssh-key-required",
	        "%s must log in with a security-key SSH key registered for %s (ecdsa-sk or "
	        "ed25519-sk); %s.",
	        user, user, what);
}

int ssh_proof_option(const char *key, sd_bus_message *msg, SshProofRequest *req)
{
	int r;

	if (streq(key, "ssh_auth_info"))
		r = sd_bus_message_read(msg, "s", &req->auth_info);
	else if (streq(key, "agent_challenge"))
		r = sd_bus_message_read(msg, "s", &req->challenge_id);
	else if (streq(key, "agent_failure"))
		r = sd_bus_message_read(msg, "s", &req->agent_failure);
	else if (streq(key, "agent_signature")) {
		const void *p = NULL;
		size_t n = 0;

		r = sd_bus_message_read_array(msg, 'y', &p, &n);
		if (r >= 0 && n > SSH_SK_MAX_SIGNATURE)
			return -E2BIG;
		req->signature = p;
		req->signature_len = n;
	} else
		return 0;
	return r < 0 ? r : 1;
}

/* The registered ssh-sk credential of SET with key BLOB: 1 and *ret, 0 when BLOB is not
 * one, -EPROTOTYPE for an ordinary (not sk) key, -EBADMSG when malformed. */
static int find_ssh_cred(const CredentialSet *set, const uint8_t *blob, size_t len,
        const Credential **ret, char **ret_fingerprint)
{
	_cleanup_free_ char *id = NULL, *fp = NULL;
	SshSkKey key = {};
	int r;

	r = ssh_fingerprint(blob, len, &fp);
	if (r < 0)
		return r;
	r = ssh_sk_key_from_blob(blob, len, &key, NULL);
	ssh_sk_key_done(&key);
	if (r == -EPROTOTYPE) {
		*ret_fingerprint = TAKE_PTR(fp);
		return r;
	}
	if (r < 0)
		return -EBADMSG;
	r = ssh_sk_credential_id(blob, len, &id);
	if (r < 0)
		return r;
	*ret_fingerprint = TAKE_PTR(fp);
	for (size_t i = 0; i < set->n; i++)
		if (credential_is_ssh(&set->items[i]) && streq(set->items[i].id, id)) {
			*ret = &set->items[i];
			return 1;
		}
	return 0;
}

/* The fingerprint of credential C as ssh-keygen -l prints it. */
static int cred_fingerprint(const Credential *c, char **ret)
{
	_cleanup_free_ uint8_t *blob = NULL;
	SshSkKey key = {};
	size_t len = 0;
	int r;

	r = ssh_sk_key_from_credential(c, &key);
	if (r >= 0)
		r = ssh_sk_key_to_blob(&key, &blob, &len);
	ssh_sk_key_done(&key);
	if (r < 0)
		return r;
	return ssh_fingerprint(blob, len, ret);
}

/* sshd's record of the login: a publickey line with a registered sk key of the user. */
static void verify_auth_info(
        const Decision *d, const CredentialSet *set, const char *text, SshProofResult *ret)
{
	_cleanup_(ssh_auth_info_freep) SshAuthInfo *info = NULL;
	_cleanup_free_ char *why = NULL, *ordinary = NULL, *unregistered = NULL;
	int r;

	if (strlen(text) > SSH_AUTH_INFO_MAX_LEN) {
		key_required(
		        ret, d->user, "sshd's record of this login (SSH_AUTH_INFO_0) is too long");
		return;
	}
	r = ssh_auth_info_parse(text, &info, &why);
	if (r == -ENODATA) {
		key_required(ret, d->user,
		        "sshd did not say how this login authenticated (sshd_config needs "
		        "ExposeAuthInfo yes)");
		return;
	}
	if (r < 0) {
		key_required(
		        ret, d->user, "sshd's record of this login (SSH_AUTH_INFO_0) is malformed");
		log_notice("SSH_AUTH_INFO_0 of %s refused: %s", d->user, strna(why));
		return;
	}
	for (size_t i = 0; i < info->n; i++) {
		const SshAuthMethod *am = &info->methods[i];
		const Credential *c = NULL;
		_cleanup_free_ char *fp = NULL;

		if (!streq(am->method, "publickey") || !am->blob)
			continue;
		r = find_ssh_cred(set, am->blob, am->blob_len, &c, &fp);
		if (r == -EPROTOTYPE && !ordinary)
			ordinary = TAKE_PTR(fp);
		else if (r == 0 && !unregistered)
			unregistered = TAKE_PTR(fp);
		if (r <= 0)
			continue;
		ret->cred = c;
		snprintf(ret->detail, sizeof(ret->detail), "method=ssh-login key=%s", fp);
		if (d->user_verification == POLICY_UV_REQUIRED && !c->uv) {
			proof_fail(ret, "uv-missing",
			        "The policy (rule %s) requires user verification, and the SSH key "
			        "%s "
			        "of %s is not registered with verify-required.",
			        d->rule_name, c->label, d->user);
			return;
		}
		if (d->user_presence && !c->up) {
			proof_fail(ret, "no-touch",
			        "The policy (rule %s) requires a touch, and the SSH key %s of %s "
			        "is "
			        "registered with no-touch-required.",
			        d->rule_name, c->label, d->user);
			return;
		}
		ret->reason = NULL;
		return;
	}
	if (ordinary) {
		snprintf(ret->detail, sizeof(ret->detail), "method=ssh-login key=%s", ordinary);
		key_required(ret, d->user, "an ordinary SSH key is refused");
	} else if (unregistered) {
		snprintf(ret->detail, sizeof(ret->detail), "method=ssh-login key=%s", unregistered);
		key_required(ret, d->user, "this security-key SSH key is not registered");
	} else {
		snprintf(ret->detail, sizeof(ret->detail), "method=ssh-login");
		key_required(ret, d->user, "password and keyboard-interactive logins are refused");
	}
}

/* The agent's signature over our challenge, by the key the challenge named. */
static void verify_agent(Manager *m, Decision *d, const CredentialSet *set,
        const SshProofRequest *req, SshProofResult *ret)
{
	_cleanup_(ssh_challenge_freep) SshChallenge *ch = NULL;
	_cleanup_free_ char *fp = NULL, *why = NULL;
	const Credential *c;
	SshSkKey key = {};
	uint64_t start = 0;
	uint8_t flags = 0;
	int r;

	ret->agent = true;
	snprintf(ret->detail, sizeof(ret->detail), "method=ssh-agent");
	ch = ssh_challenge_take(&m->ssh_challenges, req->challenge_id);
	if (!ch || ch->decision != d || ch->caller_pid != req->caller_pid ||
	        (ch->caller_start && (pid_start_time(req->caller_pid, &start) < 0 ||
	                                     start != ch->caller_start))) {
		proof_fail(ret, "challenge-expired",
		        "The SSH agent's signature does not answer a challenge of this login "
		        "(unknown, expired or already used); try again.");
		return;
	}
	c = creds_find_id(set, ch->cred_id);
	if (!c || !credential_is_ssh(c)) {
		proof_fail(ret, "not-enrolled",
		        "The SSH key the challenge was made for is no longer registered for %s.",
		        d->user);
		return;
	}
	ret->cred = c;
	if (cred_fingerprint(c, &fp) >= 0)
		snprintf(ret->detail, sizeof(ret->detail), "method=ssh-agent key=%s", fp);
	if (!req->signature || req->signature_len == 0) {
		proof_fail(ret, "bad-signature", "No signature came with the challenge.");
		return;
	}
	r = ssh_sk_key_from_credential(c, &key);
	if (r < 0) {
		proof_fail(
		        ret, "error", "The stored SSH key %s of %s is damaged.", c->label, d->user);
		return;
	}
	r = ssh_sk_signature_verify(&key, req->signature, req->signature_len, ch->challenge,
	        sizeof(ch->challenge), &flags, &ret->counter, &why);
	ssh_sk_key_done(&key);
	if (r < 0) {
		log_notice("SSH agent signature of %s (%s) refused: %s", d->user, c->label,
		        strna(why));
		proof_fail(ret, r == -ENOMEM ? "error" : "bad-signature",
		        "The signature from your SSH agent did not verify with the registered "
		        "key %s.",
		        c->label);
		return;
	}
	/* Every flag the policy requires (CVE-2021-31924): checked here, not assumed. */
	if (d->user_presence && !(flags & SSH_SK_FLAG_UP)) {
		proof_fail(ret, "no-touch",
		        "Your security key did not confirm a touch for the SSH agent's signature, "
		        "which the policy requires.");
		return;
	}
	if ((d->user_verification == POLICY_UV_REQUIRED || c->uv) && !(flags & SSH_SK_FLAG_UV)) {
		proof_fail(ret, "uv-missing",
		        "Your security key did not verify your PIN for the SSH agent's signature, "
		        "which %s.",
		        c->uv ? "its registration (verify-required) requires"
		              : "the policy requires");
		return;
	}
	ret->reason = NULL;
}

/* A short machine word from the module: [a-z-], 1..32 characters. */
static bool is_word(const char *s)
{
	size_t n = 0;

	for (; s && *s; s++, n++)
		if (!((*s >= 'a' && *s <= 'z') || *s == '-'))
			return false;
	return n > 0 && n <= 32;
}

/* The module could not get a signature (no agent, agent garbage or hang, no registered
 * key in it): the refusal is recorded here, with the module's word mapped to ours. */
static void agent_failed(const Decision *d, const char *word, SshProofResult *ret)
{
	ret->agent = true;
	snprintf(ret->detail, sizeof(ret->detail), "method=ssh-agent agent=%.32s",
	        is_word(word) ? word : "invalid");
	if (streq(word, "timeout"))
		proof_fail(ret, "timeout", "The SSH agent did not sign in time.");
	else if (streq(word, "no-key"))
		key_required(ret, d->user,
		        "the forwarded SSH agent holds no security-key SSH key registered for "
		        "them");
	else if (streq(word, "agent-refused"))
		proof_fail(ret, "no-touch",
		        "The SSH agent refused to sign (no touch of the security key?).");
	else
		proof_fail(ret, "agent-unavailable",
		        "No usable SSH agent is forwarded for %s: connect with ssh -A and use the "
		        "security-key SSH key registered for %s.",
		        d->user, d->user);
}

void ssh_proof_verify(Manager *m, Decision *d, const CredentialSet *set, const SshProofRequest *req,
        SshProofResult *ret)
{
	_cleanup_free_ char *session = NULL;

	*ret = (SshProofResult){};
	if (sd_pid_get_session(req->caller_pid, &session) >= 0 && session &&
	        strlen(session) < sizeof(ret->session))
		memcpy(ret->session, session, strlen(session) + 1);
	if (req->challenge_id)
		verify_agent(m, d, set, req, ret);
	else if (req->agent_failure)
		agent_failed(d, req->agent_failure, ret);
	else if (req->auth_info)
		verify_auth_info(d, set, req->auth_info, ret);
	else {
		snprintf(ret->detail, sizeof(ret->detail), "method=none");
		key_required(ret, d->user,
		        "neither sshd's record of the login nor a signature through the SSH agent "
		        "came with the request");
	}
}

/* --- AgentChallenge ------------------------------------------------------------------ */

typedef struct ChallengeOptions {
	const char *decision;
	const Credential *cred; /* the first offered key that is a registered one */
	const CredentialSet *set;
	const Decision *d;
	size_t n_keys;
	bool ordinary;   /* an offered key was not an sk key */
	bool uv_lacking; /* a registered one lacks verify-required the policy asks for */
	char *blob;      /* base64 of the picked key's blob */
} ChallengeOptions;

static int challenge_keys(sd_bus_message *msg, ChallengeOptions *o, sd_bus_error *error)
{
	const char *b64;
	int r;

	r = sd_bus_message_enter_container(msg, 'a', "s");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_read(msg, "s", &b64)) > 0) {
		_cleanup_free_ uint8_t *blob = NULL;
		_cleanup_free_ char *fp = NULL;
		const Credential *c = NULL;
		size_t len = 0;

		if (++o->n_keys > AGENT_MAX_KEYS)
			return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
			        "Too many keys (at most %d).", AGENT_MAX_KEYS);
		if (strlen(b64) > 4 * (SSH_SK_MAX_BLOB / 3 + 1) ||
		        base64_decode(b64, &blob, &len) < 0)
			return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
			        "Key %zu is not base64 of an SSH public key.", o->n_keys);
		if (o->cred)
			continue;
		r = find_ssh_cred(o->set, blob, len, &c, &fp);
		if (r == -EPROTOTYPE || r == -EBADMSG) {
			o->ordinary = true;
			continue;
		}
		if (r < 0)
			return r;
		if (r == 0)
			continue;
		if (o->d->user_verification == POLICY_UV_REQUIRED && !c->uv) {
			o->uv_lacking = true;
			continue;
		}
		o->cred = c;
		o->blob = strdup(b64);
		if (!o->blob)
			return -ENOMEM;
	}
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(msg);
}

static int challenge_option(
        const char *key, sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	ChallengeOptions *o = userdata;

	if (streq(key, "decision"))
		return sd_bus_message_read(msg, "s", &o->decision);
	if (streq(key, "keys"))
		return o->set ? challenge_keys(msg, o, error) : sd_bus_message_skip(msg, "as");
	return 0;
}

int bus_method_agent_challenge(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error)
{
	static const char *const known[] = {"decision:s", "keys:as", NULL};
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	_cleanup_credential_set_ CredentialSet *set = NULL;
	_cleanup_free_ char *why = NULL;
	const char *user, *service, *tty, *rhost;
	ChallengeOptions o = {};
	const SshChallenge *ch = NULL;
	uint64_t start = 0;
	Decision *d;
	int r;

	r = sd_bus_message_read(msg, "ssss", &user, &service, &tty, &rhost);
	if (r < 0)
		return r;
	r = bus_check_login(user, service, tty, rhost, error);
	if (r < 0)
		return r;
	if (!bus_caller_may_act_for(caller, user))
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_ACCESS_DENIED,
		        "Only root may ask a challenge for another user than yourself.");
	/* First pass: the decision (the keys are matched against its user's credentials). */
	r = bus_read_options(msg, known, challenge_option, &o, error);
	if (r < 0)
		return r;
	d = isempty(o.decision) ? NULL : decision_table_find(&m->decisions, o.decision);
	if (!d || !decision_matches(d, user, service, tty, rhost, caller->pid))
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_POLICY_REFUSED,
		        "No policy decision of this login is pending (expired, or not this "
		        "login's); try again.");
	if (d->require != POLICY_REQUIRE_SSH_KEY)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_POLICY_REFUSED,
		        "The policy does not ask this login for an SSH key.");
	r = creds_load_user(policy_settings(m->policy)->credentials_dir, user, &set, &why);
	if (r < 0) {
		log_error("Credentials of %s cannot be used: %s", user, strna(why));
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_FAILED,
		        "Your key registrations cannot be read (%s); ask an administrator.",
		        strna(why));
	}
	/* Second pass: the keys. */
	r = sd_bus_message_rewind(msg, true);
	if (r >= 0)
		r = sd_bus_message_skip(msg, "ssss");
	if (r < 0)
		return r;
	o.set = set;
	o.d = d;
	r = bus_read_options(msg, known, challenge_option, &o, error);
	if (r < 0 || sd_bus_error_is_set(error)) {
		free(o.blob);
		return r;
	}
	if (!o.cred) {
		r = sd_bus_error_setf(error, KEYWARD_BUS_ERROR_NOT_FOUND,
		        "None of the %zu key(s) in your SSH agent is a security-key SSH key "
		        "registered for %s%s.",
		        o.n_keys, user,
		        o.uv_lacking ? " with verify-required, which the policy requires" : "");
		return r;
	}
	(void)pid_start_time(caller->pid, &start);
	r = ssh_challenge_add(
	        &m->ssh_challenges, d, caller->pid, start, caller->uid, o.cred->id, &ch);
	if (r >= 0)
		r = sd_bus_message_new_method_return(msg, &reply);
	if (r >= 0)
		r = sd_bus_message_append(reply, "s", o.blob);
	if (r >= 0)
		r = sd_bus_message_append_array(reply, 'y', ch->challenge, sizeof(ch->challenge));
	if (r >= 0)
		r = sd_bus_message_append(reply, "s", ch->id);
	free(o.blob);
	if (r < 0)
		return r;
	log_debug("AgentChallenge %s/%s: key %s, challenge %.8s...", user, service, o.cred->label,
	        ch->id);
	return sd_bus_send(NULL, reply, NULL);
}
