/* bus-api.h: keywardd's D-Bus interface — the one dispatch table saying who may call
 * what, caller identity from the bus (never from arguments), argument caps. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>

#include "bus-util.h"
#include "creds.h"
#include "manager.h"

/* Connects to the system bus, registers the object and the dispatch table, takes the name. */
int bus_api_setup(Manager *m);
/* Drops the calls still waiting (bus-fair.h); before the bus goes. */
void bus_api_shutdown(Manager *m);

/* The user holding credential ID among all users' files: 1 and *ret_user, 0 if none. */
int bus_find_credential_owner(Manager *m, const char *id, char **ret_user);
/* ImportCredential and ImportSshKey: every rule that would use a credential of unknown
 * model (no attestation) must accept one; else the refusal is audited (REC's fields) and
 * set in ERROR, naming INSTEAD (what to do; NULL: enroll the key). */
int bus_import_check_rules(Manager *m, const char *user, const AuditRecord *rec,
        const char *instead, sd_bus_error *error);
/* Stores CR for USER: Exists when any user has its id or USER its label, the policy's
 * max_credentials_per_user, the file written; REC (event import, filled by the caller)
 * is audited with the outcome. 0, or the D-Bus error set. */
int bus_import_store(
        Manager *m, const char *user, const Credential *cr, AuditRecord *rec, sd_bus_error *error);

/* Method handlers living in their own files. */
typedef int (*bus_method_handler)(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);
int bus_method_authenticate(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);
int bus_method_enroll(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);
/* ImportSshKey (ssh-import.c). */
int bus_method_import_ssh_key(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);

/* The authenticator rules of one policy rule that would use a new credential. */
typedef struct EnrollRule {
	char *rule; /* "file:line" or "default" */
	char *name; /* the rule's name */
	uint8_t (*aaguid_allow)[16];
	size_t n_aaguid_allow;
	uint8_t (*aaguid_deny)[16];
	size_t n_aaguid_deny;
	PolicyAttestation attestation;
	char **trust_anchors;
} EnrollRule;

/* Every rule that would ask USER for a key, each once: what a new credential of USER
 * must satisfy, whether enrolled (Enroll) or imported (ImportCredential). */
typedef struct EnrollRules {
	EnrollRule *items;
	size_t n;
	bool uv_required; /* a rule a login can reach now requires user verification */
} EnrollRules;

/* The rules of USER under the policy in force (enroll.c), in *RET (untouched on failure;
 * free with enroll_rules_done()). Returns 0 or -errno: a failed account lookup is an
 * error (fail closed), never "no rules". */
int enroll_rules_collect(Manager *m, const char *user, EnrollRules *ret);
void enroll_rules_done(EnrollRules *rules);
/* The first of RULES that refuses a credential whose model and attestation are unknown (an
 * imported one): it has an aaguid_allow list (*ret_reason "aaguid-refused") or requires
 * verified attestation ("attestation-refused"). NULL when every rule accepts it. */
const EnrollRule *enroll_rules_refusing_unknown_model(
        const EnrollRules *rules, const char **ret_reason);
/* The first of RULES that refuses a credential of model AAGUID whose attestation is
 * *ATTESTATION (CRED_ATTESTATION_UNVERIFIED: signature verified, X5C the leaf
 * certificate): AAGUID lists, then for attestation=verified the chain to the rule's
 * trust anchors (*ATTESTATION becomes CRED_ATTESTATION_VERIFIED). *RET_REASON
 * ("aaguid-refused", "attestation-refused") and MSG (a sentence naming the rule) say why.
 * NULL when every rule accepts it. Enroll and ImportSshKey (with an attestation). */
const EnrollRule *enroll_rules_check_model(const EnrollRules *rules, const uint8_t aaguid[16],
        const uint8_t *x5c, size_t x5c_len, CredAttestation *attestation, const char **ret_reason,
        char *msg, size_t msg_size);
