/* ssh-import.c: ImportSshKey — registers an OpenSSH sk key (an authorized_keys/.pub line)
 * as a type=ssh-sk credential, under the rules Enroll and ImportCredential apply
 * (docs/ssh.md, docs/dbus-api.md). */
#include <string.h>

#include "accounts.h"
#include "bus-api.h"
#include "bus-names.h"
#include "fido-util.h"
#include "log.h"
#include "ssh-sk.h"
#include "util.h"

#define SSH_IMPORT_MAX_CHALLENGE 1024

/* A refusal: audited with REASON and the sentence, and the D-Bus error NAME. */
static int ssh_import_refuse(Manager *m, AuditRecord *rec, const char *reason, const char *name,
        const char *text, sd_bus_error *error)
{
	rec->reason = reason;
	rec->message = text;
	(void)manager_audit(m, rec);
	log_info("ImportSshKey %s for %s: refused (%s): %s", strna(rec->cred_label),
	        strna(rec->user), reason, text);
	return sd_bus_error_setf(error, name, "%s", text);
}

/* Verifies the attestation of K against CHALLENGE and the rules that would use the key:
 * fills C's aaguid, attestation (and uv from the attested flags). */
static int ssh_import_attested(Manager *m, const char *user, const SshSkKey *k, const uint8_t *att,
        size_t att_len, const uint8_t *chal, size_t chal_len, Credential *c, AuditRecord *rec,
        char *aaguid_s, sd_bus_error *error)
{
	_cleanup_(enroll_rules_done) EnrollRules rules = {};
	_cleanup_free_ char *why = NULL;
	SshSkAttestation a = {};
	const EnrollRule *er;
	const char *reason = NULL;
	char text[512];
	int r;

	if (chal_len == 0 || chal_len > SSH_IMPORT_MAX_CHALLENGE)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
		        "An attestation needs the challenge file given to ssh-keygen "
		        "(-O challenge=FILE), 1-%d bytes.",
		        SSH_IMPORT_MAX_CHALLENGE);
	r = ssh_sk_attestation_verify(att, att_len, chal, chal_len, k, &a, &why);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		snprintf(text, sizeof(text), "The key's attestation is refused: %s.",
		        why ? why : strerror(-r));
		return ssh_import_refuse(m, rec, "attestation-refused",
		        KEYWARD_BUS_ERROR_POLICY_REFUSED, text, error);
	}
	c->has_aaguid = true;
	memcpy(c->aaguid, a.aaguid, sizeof(c->aaguid));
	fido_aaguid_to_string(a.aaguid, aaguid_s);
	rec->aaguid = aaguid_s;
	c->attestation = a.x5c_len > 0 ? CRED_ATTESTATION_UNVERIFIED : CRED_ATTESTATION_SELF;
	if (a.flags & SSH_SK_FLAG_UV)
		c->uv = true;
	r = enroll_rules_collect(m, user, &rules);
	if (r < 0) {
		ssh_sk_attestation_done(&a);
		snprintf(text, sizeof(text), "Cannot evaluate the policy for %s: %s.", user,
		        strerror(-r));
		return ssh_import_refuse(m, rec, "error", KEYWARD_BUS_ERROR_FAILED, text, error);
	}
	er = enroll_rules_check_model(
	        &rules, a.aaguid, a.x5c, a.x5c_len, &c->attestation, &reason, text, sizeof(text));
	ssh_sk_attestation_done(&a);
	if (er) {
		rec->rule = er->rule;
		rec->rule_name = er->name;
		return ssh_import_refuse(
		        m, rec, reason, KEYWARD_BUS_ERROR_POLICY_REFUSED, text, error);
	}
	return 0;
}

int bus_method_import_ssh_key(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error)
{
	const char *user, *label, *line;
	const void *att = NULL, *chal = NULL;
	size_t att_len = 0, chal_len = 0;
	_cleanup_(bus_actor_done) AuditActor actor = {};
	_cleanup_free_ char *err = NULL, *fp = NULL, *hint = NULL;
	AuditRecord rec = AUDIT_RECORD_INIT;
	char aaguid_s[FIDO_AAGUID_STRING_MAX] = "";
	SshKeyLine l = {};
	Credential c = {};
	int r;

	r = sd_bus_message_read(msg, "sss", &user, &label, &line);
	if (r >= 0)
		r = sd_bus_message_read_array(msg, 'y', &att, &att_len);
	if (r >= 0)
		r = sd_bus_message_read_array(msg, 'y', &chal, &chal_len);
	if (r < 0)
		return r;
	if ((r = bus_check_user(user, error)) < 0 ||
	        (r = bus_check_string(label, KEYWARD_MAX_LABEL, false, "label", error)) < 0 ||
	        (r = bus_check_string(line, SSH_SK_MAX_LINE, false, "key line", error)) < 0)
		return r;
	if (!creds_label_valid(label))
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
		        "Invalid label (1-64 of A-Z a-z 0-9 . _ @ + -).");
	if (att_len > SSH_SK_MAX_ATTESTATION)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
		        "The attestation is larger than %d bytes.", SSH_SK_MAX_ATTESTATION);
	if (strpbrk(line, "\r\n"))
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
		        "The key line must be one line (one key).");

	r = ssh_key_line_parse(line, &l, &err);
	if (r == -EPROTOTYPE) {
		r = sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
		        "This is an ordinary SSH key (%s), not a security-key SSH key: only "
		        "ecdsa-sk and ed25519-sk keys (ssh-keygen -t ecdsa-sk) can be registered.",
		        strna(l.key_type));
		goto out;
	}
	if (r == -ENODATA) {
		r = sd_bus_error_setf(
		        error, KEYWARD_BUS_ERROR_INVALID_ARGS, "The key line is empty.");
		goto out;
	}
	if (r < 0) {
		r = r == -ENOMEM ? r
		                 : sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
		                           "Not a valid SSH public key line: %s.", strna(err));
		goto out;
	}
	if (!strneq(l.key.application, "ssh:", 4)) {
		r = sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
		        "The key's application is '%s': OpenSSH makes keys for 'ssh:...' only.",
		        l.key.application);
		goto out;
	}
	r = ssh_sk_credential_from_key(&l.key, label, &c);
	if (r >= 0)
		r = ssh_fingerprint(l.blob, l.blob_len, &fp);
	if (r < 0)
		goto out;
	c.up = !l.no_touch_required;
	c.uv = l.verify_required;
	c.created_ms = now_realtime_ms();

	rec.event = AUDIT_EVENT_IMPORT;
	rec.user = user;
	rec.cred_label = label;
	rec.cred_id = c.id;
	rec.detail = fp; /* the key as ssh-keygen -l and sshd's log name it */
	r = bus_actor_get(msg, caller, &actor);
	if (r < 0)
		goto out;
	rec.actor = &actor;
	{
		uid_t uid;
		if (account_lookup(user, &uid, NULL) >= 0)
			rec.uid = uid;
	}

	if (att_len > 0)
		r = ssh_import_attested(
		        m, user, &l.key, att, att_len, chal, chal_len, &c, &rec, aaguid_s, error);
	else {
		if (asprintf(&hint,
		            "give the key's attestation (ssh-keygen -O write-attestation=FILE "
		            "-O challenge=FILE; keywardctl ssh import %s --attestation FILE "
		            "--challenge FILE)",
		            user) < 0) {
			r = -ENOMEM;
			goto out;
		}
		r = bus_import_check_rules(m, user, &rec, hint, error);
	}
	if (r < 0)
		goto out;
	r = bus_import_store(m, user, &c, &rec, error);
	if (r < 0)
		goto out;
	log_info("Imported SSH key %s (%s, %s) for %s (attestation %s, by uid %u).", label,
	        ssh_sk_type_short(l.key.type), fp, user, cred_attestation_to_string(c.attestation),
	        (unsigned)caller->uid);
	r = sd_bus_reply_method_return(
	        msg, "sss", c.id, fp, cred_attestation_to_string(c.attestation));
out:
	credential_done(&c);
	ssh_key_line_done(&l);
	return r;
}
