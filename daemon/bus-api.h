/* bus-api.h: keywardd's D-Bus interface — the one dispatch table saying who may call
 * what, caller identity from the bus (never from arguments), argument caps. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>

#include "bus-util.h"
#include "manager.h"

/* Connects to the system bus, registers the object and the dispatch table, takes the name. */
int bus_api_setup(Manager *m);
/* Drops the calls still waiting (bus-fair.h); before the bus goes. */
void bus_api_shutdown(Manager *m);

/* The user holding credential ID among all users' files: 1 and *ret_user, 0 if none. */
int bus_find_credential_owner(Manager *m, const char *id, char **ret_user);

/* Method handlers living in their own files. */
typedef int (*bus_method_handler)(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);
int bus_method_authenticate(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);
int bus_method_enroll(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);

/* The proof of the caller's own key (authenticate.c) for something else than a login: the
 * break-glass approver's touch. DONE gets the verdict (reason and message as Authenticate's;
 * REQUEST NULL when the call was answered already) and DONE_DATA, one malloc()ed block that
 * DONE frees; should DONE never run (shutdown), it is freed with the request. */
typedef void (*AuthKeyDone)(Manager *m, sd_bus_message *request, bool verified, const char *reason,
        const char *message, const char *cred_label, void *done_data);
int authenticate_own_key(Manager *m, sd_bus_message *msg, const BusCaller *caller, Decision *d,
        int pin_fd, bool pin_asked, AuditRecord *rec, AuthKeyDone done, void *done_data);

/* Break-glass recovery (breakglass.c). The answer to a login that may use it instead of a
 * key (reason "breakglass-available"; %s: the user). */
#define BREAKGLASS_OFFER_MESSAGE                                                                   \
	"No security key is available for %s. Enter a break-glass recovery code, or ask "          \
	"another administrator to approve this login."

int bus_method_breakglass_issue(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);
int bus_method_breakglass_revoke(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);
int bus_method_breakglass_list(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);
int bus_method_breakglass_approve(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error);
/* Authenticate's hook, once the login's decision D requires a key and the user is not
 * locked out: 0 to go on with the key; else the call was answered (> 0) or failed (< 0).
 * REQUESTED: the call carries option breakglass (the pipe PIN_FD holds a code); CACHED: the
 * account phase's call (never break-glass). */
int breakglass_on_authenticate(Manager *m, sd_bus_message *msg, const BusCaller *caller,
        Decision *d, int pin_fd, bool requested, bool cached, AuditRecord *rec);
/* GetStatus's entry "breakglass_sessions" a(sssst): user, service, session, how, since (µs). */
int breakglass_status_append(Manager *m, sd_bus_message *reply);
/* At start: records (breakglass-expire) and marks codes and approvals past their expiry. */
void breakglass_startup(Manager *m);

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
