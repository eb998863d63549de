/* bus-api.c: the org.keyward.Keyward1.Manager interface. Every method goes through
 * bus_dispatch(): caller identity from the bus credentials, then the permission in
 * bus_methods[] (the one table saying who may call what), then the handler. */
#include "bus-api.h"

#include <pwd.h>

#include "accounts.h"
#include "bus-fair.h"
#include "creds.h"
#include "device-op.h"
#include "directory-source.h"
#include "fido-util.h"
#include "log.h"
#include "session.h"
#include "ssh-proof.h"
#include "util.h"

/* After root's Check asked for a key: how long non-root key searches hold back for its
 * Authenticate (device_op_expect_root()). */
#define ROOT_LOGIN_EXPECTED_MS 1000

typedef struct BusMethod {
	const char *member;
	BusAccess access;
	bus_method_handler handler;
} BusMethod;

static int method_check(Manager *m, sd_bus_message *msg, const BusCaller *c, sd_bus_error *error);
static int method_cancel(Manager *m, sd_bus_message *msg, const BusCaller *c, sd_bus_error *error);
static int method_list(Manager *m, sd_bus_message *msg, const BusCaller *c, sd_bus_error *error);
static int method_revoke(Manager *m, sd_bus_message *msg, const BusCaller *c, sd_bus_error *error);
static int method_import(Manager *m, sd_bus_message *msg, const BusCaller *c, sd_bus_error *error);
static int method_reload(Manager *m, sd_bus_message *msg, const BusCaller *c, sd_bus_error *error);
static int method_status(Manager *m, sd_bus_message *msg, const BusCaller *c, sd_bus_error *error);

/* Who may call what. SELF methods check the user argument with
 * bus_caller_may_act_for() in the handler. */
static const BusMethod bus_methods[] = {
        {"Check", BUS_ACCESS_ROOT | BUS_ACCESS_SELF, method_check},
        {"Authenticate", BUS_ACCESS_ROOT | BUS_ACCESS_SELF, bus_method_authenticate},
        {"AgentChallenge", BUS_ACCESS_ROOT | BUS_ACCESS_SELF, bus_method_agent_challenge},
        {"Cancel", BUS_ACCESS_ROOT | BUS_ACCESS_SELF, method_cancel},
        {"BindSession", BUS_ACCESS_ROOT, bus_method_bind_session},
        {"UnbindSession", BUS_ACCESS_ROOT, bus_method_unbind_session},
        {"Enroll", BUS_ACCESS_ROOT | BUS_ACCESS_ADMIN, bus_method_enroll},
        {"ListCredentials", BUS_ACCESS_ROOT | BUS_ACCESS_ADMIN | BUS_ACCESS_SELF, method_list},
        {"Revoke", BUS_ACCESS_ROOT | BUS_ACCESS_ADMIN, method_revoke},
        {"ImportCredential", BUS_ACCESS_ROOT | BUS_ACCESS_ADMIN, method_import},
        {"ImportSshKey", BUS_ACCESS_ROOT | BUS_ACCESS_ADMIN, bus_method_import_ssh_key},
        {"Reload", BUS_ACCESS_ROOT | BUS_ACCESS_ADMIN, method_reload},
        {"GetStatus", BUS_ACCESS_ROOT | BUS_ACCESS_ADMIN, method_status},
        {"BreakglassIssue", BUS_ACCESS_ROOT | BUS_ACCESS_ADMIN, bus_method_breakglass_issue},
        {"BreakglassRevoke", BUS_ACCESS_ROOT | BUS_ACCESS_ADMIN, bus_method_breakglass_revoke},
        {"BreakglassList", BUS_ACCESS_ROOT | BUS_ACCESS_ADMIN, bus_method_breakglass_list},
        {"BreakglassApprove", BUS_ACCESS_ROOT | BUS_ACCESS_ADMIN, bus_method_breakglass_approve},
};

/* Whether USER (primary group PRIMARY) is a member of GROUP, through the one account
 * lookup (lib/accounts.h). A lookup that fails is logged and is not membership. */
static bool user_in_group(const char *user, gid_t primary, const char *group)
{
	_cleanup_strv_free_ char **names = NULL;
	int r;

	if (isempty(group) || !user)
		return false;
	r = account_group_names(user, primary, &names);
	if (r < 0) {
		log_warning_errno(r,
		        "Cannot list the groups of %s (not taken as a member of %s): %m", user,
		        group);
		return false;
	}
	return strv_contains(names, group);
}

/* The caller's details for UID/PID (from bus_fair_identify(): the bus's word, never an
 * argument). */
static int bus_caller_get(Manager *m, sd_bus_message *msg, uid_t uid, pid_t pid, BusCaller *ret)
{
	struct passwd pwbuf, *pw = NULL;
	char buf[4096];
	BusCaller c = {.uid = uid, .pid = pid, .sender = sd_bus_message_get_sender(msg)};

	c.is_root = c.uid == 0;
	/* No name (unknown uid or a failed lookup): neither admin nor SELF of anyone. */
	if (getpwuid_r(c.uid, &pwbuf, buf, sizeof(buf), &pw) != 0)
		pw = NULL;
	c.is_admin =
	        !c.is_root && pw &&
	        user_in_group(pw->pw_name, pw->pw_gid, policy_settings(m->policy)->admin_group);
	if (pw) {
		c.user = strdup(pw->pw_name);
		if (!c.user)
			return -ENOMEM;
	}
	*ret = c;
	return 0;
}

/* Checks the caller's right to METHOD and runs its handler (which replies, now or later). */
static int bus_serve(Manager *m, sd_bus_message *msg, const BusMethod *method, uid_t uid, pid_t pid,
        sd_bus_error *error)
{
	const char *member = method->member;
	BusCaller c;
	int r;

	r = bus_caller_get(m, msg, uid, pid, &c);
	if (r < 0)
		return r;
	c.allowed = method->access;
	if (!((method->access & BUS_ACCESS_SELF) ||
	            ((method->access & BUS_ACCESS_ROOT) && c.is_root) ||
	            ((method->access & BUS_ACCESS_ADMIN) && c.is_admin))) {
		log_notice("%s denied to uid %u (%s): needs %s.", member, (unsigned)c.uid,
		        strna(c.user),
		        method->access & BUS_ACCESS_ADMIN ? "root or the admin group" : "root");
		free(c.user);
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_ACCESS_DENIED,
		        "%s is only allowed to %s.", member,
		        method->access & BUS_ACCESS_ADMIN
		                ? "root and members of the keyward admin group"
		                : "root");
	}
	r = method->handler(m, msg, &c, error);
	free(c.user);
	return r;
}

/* Where a call goes once its sender is known: root's are served at once, everyone
 * else's wait their turn (bus-fair.h). Returns like a method handler. */
static int bus_route(Manager *m, sd_bus_message *msg, const BusMethod *method, uid_t uid, pid_t pid,
        sd_bus_error *error)
{
	int r;

	if (uid == (uid_t)-1)
		return sd_bus_error_set(error, KEYWARD_BUS_ERROR_ACCESS_DENIED,
		        "keywardd cannot determine who you are; access denied.");
	if (uid == 0)
		return bus_serve(m, msg, method, uid, pid, error);
	r = bus_fair_enqueue(m->fair, msg, method, uid, pid);
	if (r == -EBUSY)
		return sd_bus_error_set(error, KEYWARD_BUS_ERROR_BUSY,
		        "keywardd is busy with your earlier requests; try again shortly.");
	if (r < 0)
		return r;
	return 1; /* answered when served */
}

/* Replies the error of a handler run outside sd-bus's own dispatch, as sd-bus would. */
static void reply_error(sd_bus_message *msg, int r, const sd_bus_error *error)
{
	if (sd_bus_error_is_set(error))
		(void)sd_bus_reply_method_error(msg, error);
	else if (r < 0)
		(void)sd_bus_reply_method_errno(msg, r, NULL);
}

/* A non-root call that waited its turn. */
static void bus_serve_queued(
        sd_bus_message *msg, const void *method, uid_t uid, pid_t pid, void *userdata)
{
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

	reply_error(msg, bus_serve(userdata, msg, method, uid, pid, &error), &error);
}

/* A call whose sender the bus has just named. */
static void bus_route_identified(
        sd_bus_message *msg, const void *method, uid_t uid, pid_t pid, void *userdata)
{
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

	if (uid == (uid_t)-1)
		log_warning("Cannot learn who called %s (the bus did not say): refused.",
		        strna(sd_bus_message_get_member(msg)));
	reply_error(msg, bus_route(userdata, msg, method, uid, pid, &error), &error);
}

static int bus_dispatch(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	Manager *m = userdata;
	const char *member = sd_bus_message_get_member(msg);
	const BusMethod *method = NULL;
	uid_t uid;
	pid_t pid;
	int r;

	for (size_t i = 0; i < ELEMENTSOF(bus_methods); i++)
		if (member && streq(bus_methods[i].member, member))
			method = &bus_methods[i];
	if (!method)
		return sd_bus_error_set(error, SD_BUS_ERROR_UNKNOWN_METHOD, "Unknown method.");
	r = bus_fair_identify(m->fair, msg, method, &uid, &pid);
	if (r == 0)
		return 1; /* routed when the bus says who sent it */
	if (r == -EBUSY)
		return sd_bus_error_set(
		        error, KEYWARD_BUS_ERROR_BUSY, "keywardd is busy; try again shortly.");
	if (r < 0) {
		log_warning_errno(r, "Cannot learn who called %s: %m", member);
		return sd_bus_error_set(error, KEYWARD_BUS_ERROR_ACCESS_DENIED,
		        "keywardd cannot determine who you are; access denied.");
	}
	return bus_route(m, msg, method, uid, pid, error);
}

/* --- Check -------------------------------------------------------------------------- */

/* How many of USER's credentials serve REQUIRE: the FIDO2 ones for a key (SSH keys have no
 * key handle), the security-key SSH keys for ssh-key. Errors as creds_load_user(). */
static int check_count_creds(Manager *m, const char *user, PolicyRequire require, size_t *ret)
{
	return creds_count_user_type(policy_settings(m->policy)->credentials_dir, user,
	        require == POLICY_REQUIRE_SSH_KEY ? CRED_TYPE_SSH_SK : CRED_TYPE_FIDO2, ret);
}

static int method_check(Manager *m, sd_bus_message *msg, const BusCaller *c, sd_bus_error *error)
{
	const char *user, *service, *tty, *rhost;
	_cleanup_free_ char *message = NULL, *cred_error = NULL;
	_cleanup_decision_ Decision *d = NULL;
	const char *require;
	size_t n_creds = 0;
	int r;

	r = sd_bus_message_read(msg, "ssss", &user, &service, &tty, &rhost);
	if (r < 0)
		return r;
	r = bus_check_login(user, service, tty, rhost, error);
	if (r < 0)
		return r;
	if (!bus_caller_may_act_for(c, user))
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_ACCESS_DENIED,
		        "Only root may ask about another user than yourself.");
	/* The login's one decision: Authenticate (given its id) and BindSession use it. */
	r = manager_decide(m, user, service, tty, rhost, c->pid, c->uid, &d);
	if (r < 0)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_FAILED,
		        "Cannot evaluate the policy for %s: %s", user, strerror(-r));
	require = policy_require_to_string(d->require);
	if (d->require == POLICY_REQUIRE_DENY) {
		AuditRecord rec = AUDIT_RECORD_INIT;

		if (asprintf(&message, "%s",
		            d->reason ? d->reason : "Access denied by the keyward policy.") < 0)
			return -ENOMEM;
		rec.event = AUDIT_EVENT_AUTH;
		rec.reason = d->remote_resolved ? "remote" : "policy-deny";
		rec.message = message;
		rec.user = user;
		rec.uid = d->uid;
		rec.service = service;
		rec.tty = tty;
		rec.rhost = rhost;
		audit_record_set_decision(&rec, d);
		(void)manager_audit_self_call(m, &rec, c->uid);
	} else if (d->require == POLICY_REQUIRE_KEY || d->require == POLICY_REQUIRE_SSH_KEY) {
		r = check_count_creds(m, user, d->require, &n_creds);
		if (r < 0) {
			_cleanup_credential_set_ CredentialSet *s = NULL;
			(void)creds_load_user(
			        policy_settings(m->policy)->credentials_dir, user, &s, &cred_error);
			log_error("Credentials of %s cannot be used: %s", user, strna(cred_error));
			require = "deny";
			if (asprintf(&message,
			            "Your security key registrations cannot be read (%s); ask an "
			            "administrator.",
			            strna(cred_error)) < 0)
				return -ENOMEM;
		} else if (d->credentials != POLICY_CRED_SOURCE_LOCAL) {
			/* Keys from the directory: what the cache says, at least 1 — the
			 * directory itself is asked at Authenticate (off the loop), which
			 * answers not-enrolled when it has none. */
			_cleanup_credential_set_ CredentialSet *ds = NULL;

			if (d->credentials == POLICY_CRED_SOURCE_DIRECTORY)
				n_creds = 0;
			if (directory_cached_set(policy_settings(m->policy), user, &ds) >= 0)
				n_creds += ds->n;
			if (n_creds == 0)
				n_creds = 1;
		} else if (n_creds == 0 &&
		           asprintf(&message, "No %s is registered for %s.",
		                   d->require == POLICY_REQUIRE_SSH_KEY ? "security-key SSH key"
		                                                        : "security key",
		                   user) < 0)
			return -ENOMEM;
		/* Only a login that goes on to Authenticate needs its decision kept; a PAM
		 * application's (root's) Authenticate is about to use the keys. */
		if (n_creds > 0) {
			decision_table_add(&m->decisions, d);
			if (c->is_root && d->require == POLICY_REQUIRE_KEY)
				device_op_expect_root(&m->ops, ROOT_LOGIN_EXPECTED_MS);
		}
	}
	log_debug("Check %s/%s tty=%s rhost=%s remote=%s → %s (%s, rule %s, policy %.12s)", user,
	        service, tty, rhost, d->remote ? "yes" : "no", require, d->id[0] ? "decided" : "",
	        d->rule_name, d->policy);
	return sd_bus_reply_method_return(msg, "ssbussus", require,
	        policy_uv_to_string(d->user_verification), d->user_presence,
	        policy_settings(m->policy)->timeout_ms, d->rule, strempty(message),
	        (uint32_t)n_creds,
	        (d->require == POLICY_REQUIRE_KEY || d->require == POLICY_REQUIRE_SSH_KEY) &&
	                        n_creds > 0
	                ? d->id
	                : "");
}

/* --- Cancel ------------------------------------------------------------------------- */

static int method_cancel(Manager *m, sd_bus_message *msg, const BusCaller *c, sd_bus_error *error)
{
	int n = device_op_cancel_sender(&m->ops, sd_bus_message_get_sender(msg));

	log_debug("Cancel from %s: %d request(s) cancelled.", strna(sd_bus_message_get_sender(msg)),
	        n);
	return sd_bus_reply_method_return(msg, "");
}

/* --- ListCredentials / Revoke / ImportCredential ------------------------------------ */

static int append_user_credentials(
        Manager *m, sd_bus_message *reply, const char *user, sd_bus_error *error)
{
	_cleanup_credential_set_ CredentialSet *s = NULL;
	_cleanup_free_ char *why = NULL;
	int r;

	r = creds_load_user(policy_settings(m->policy)->credentials_dir, user, &s, &why);
	if (r < 0)
		return sd_bus_error_setf(
		        error, KEYWARD_BUS_ERROR_FAILED, "%s", why ? why : strerror(-r));
	for (size_t i = 0; i < s->n; i++) {
		const Credential *cr = &s->items[i];
		char aaguid[FIDO_AAGUID_STRING_MAX] = "";
		char flags[64];

		if (cr->has_aaguid)
			fido_aaguid_to_string(cr->aaguid, aaguid);
		snprintf(flags, sizeof(flags), "%s%s%s%s%s", credential_is_ssh(cr) ? "ssh-sk," : "",
		        fido_cose_to_string(cr->cose_alg), cr->resident ? ",resident" : "",
		        cr->up ? ",up" : "", cr->uv ? ",uv" : "");
		r = sd_bus_message_append(reply, "(sssssst)", user, cr->label, cr->id, aaguid,
		        flags, cred_attestation_to_string(cr->attestation), cr->created_ms * 1000);
		if (r < 0)
			return r;
	}
	return 0;
}

static int method_list(Manager *m, sd_bus_message *msg, const BusCaller *c, sd_bus_error *error)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	const char *user;
	int r;

	r = sd_bus_message_read(msg, "s", &user);
	if (r < 0)
		return r;
	if (!isempty(user) && (r = bus_check_user(user, error)) < 0)
		return r;
	if (isempty(user) ? !(c->is_root || c->is_admin) : !bus_caller_may_act_for(c, user))
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_ACCESS_DENIED,
		        "You may only list your own credentials.");
	r = sd_bus_message_new_method_return(msg, &reply);
	if (r < 0)
		return r;
	r = sd_bus_message_open_container(reply, 'a', "(sssssst)");
	if (r < 0)
		return r;
	if (isempty(user)) {
		_cleanup_strv_free_ char **users = NULL;

		r = creds_list_users(policy_settings(m->policy)->credentials_dir, &users);
		if (r < 0)
			return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_FAILED,
			        "Cannot list %s: %s", policy_settings(m->policy)->credentials_dir,
			        strerror(-r));
		for (char **u = users; *u; u++) {
			r = append_user_credentials(m, reply, *u, error);
			if (r < 0)
				return r;
		}
	} else {
		r = append_user_credentials(m, reply, user, error);
		if (r < 0)
			return r;
	}
	r = sd_bus_message_close_container(reply);
	if (r < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

static int method_revoke(Manager *m, sd_bus_message *msg, const BusCaller *c, sd_bus_error *error)
{
	_cleanup_(bus_actor_done) AuditActor actor = {};
	_cleanup_credential_set_ CredentialSet *s = NULL;
	_cleanup_free_ char *why = NULL, *label = NULL, *id = NULL;
	AuditRecord rec = AUDIT_RECORD_INIT;
	const char *user, *what, *dir = policy_settings(m->policy)->credentials_dir;
	Credential *cr;
	int r;

	r = sd_bus_message_read(msg, "ss", &user, &what);
	if (r < 0)
		return r;
	if ((r = bus_check_user(user, error)) < 0 ||
	        (r = bus_check_string(what, KEYWARD_MAX_ID, false, "label or id", error)) < 0)
		return r;
	rec.event = AUDIT_EVENT_REVOKE;
	rec.user = user;
	rec.detail = c->user;
	r = bus_actor_get(msg, c, &actor);
	if (r < 0)
		return r;
	rec.actor = &actor;
	r = creds_load_user(dir, user, &s, &why);
	if (r < 0) {
		rec.reason = "error";
		rec.message = why;
		(void)manager_audit(m, &rec);
		return sd_bus_error_setf(
		        error, KEYWARD_BUS_ERROR_FAILED, "%s", why ? why : strerror(-r));
	}
	cr = creds_find(s, what);
	if (!cr)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_NOT_FOUND,
		        "%s has no credential with label or id '%s'.", user, what);
	label = strdup(cr->label);
	id = strdup(cr->id);
	if (!label || !id)
		return -ENOMEM;
	rec.cred_label = label;
	rec.cred_id = id;
	r = creds_remove(s, what);
	if (r >= 0)
		r = creds_save_user(dir, s);
	if (r < 0) {
		rec.reason = "error";
		(void)manager_audit(m, &rec);
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_FAILED,
		        "Cannot update the credentials of %s in %s: %s", user, dir, strerror(-r));
	}
	rec.result = AUDIT_RESULT_SUCCESS;
	rec.reason = "ok";
	(void)manager_audit(m, &rec);
	log_info("Revoked credential %s of %s (by uid %u).", label, user, (unsigned)c->uid);
	return sd_bus_reply_method_return(msg, "");
}

int bus_find_credential_owner(Manager *m, const char *id, char **ret_user)
{
	const char *dir = policy_settings(m->policy)->credentials_dir;
	_cleanup_strv_free_ char **users = NULL;
	int r;

	*ret_user = NULL;
	if (streq(id, CREDS_DISCOVERABLE_ID))
		return 0;
	r = creds_list_users(dir, &users);
	if (r < 0)
		return r;
	for (char **u = users; *u; u++) {
		_cleanup_credential_set_ CredentialSet *s = NULL;

		r = creds_load_user(dir, *u, &s, NULL);
		if (r < 0)
			return r;
		if (creds_find_id(s, id)) {
			*ret_user = strdup(*u);
			return *ret_user ? 1 : -ENOMEM;
		}
	}
	return 0;
}

/* An imported credential's model is unknown and its attestation was never seen: every rule
 * that would use it (the rules Enroll checks) must ask for neither. Returns 0, or records
 * the refusal (REC's fields and a reason) and sets the D-Bus error. */
int bus_import_check_rules(Manager *m, const char *user, const AuditRecord *rec,
        const char *instead, sd_bus_error *error)
{
	_cleanup_(enroll_rules_done) EnrollRules rules = {};
	AuditRecord refused = *rec;
	const EnrollRule *er;
	const char *reason = "error", *name = KEYWARD_BUS_ERROR_FAILED;
	_cleanup_free_ char *hint = NULL;
	char text[512];
	int r;

	if (!instead &&
	        asprintf(&hint, "enroll the key with 'keywardctl enroll %s' instead", user) < 0)
		return -ENOMEM;
	r = enroll_rules_collect(m, user, &rules);
	if (r < 0)
		snprintf(text, sizeof(text), "Cannot evaluate the policy for %s: %s.", user,
		        strerror(-r));
	else {
		er = enroll_rules_refusing_unknown_model(&rules, &reason);
		if (!er)
			return 0;
		snprintf(text, sizeof(text), "The policy (rule %s, %s) %s: %s.", er->name, er->rule,
		        streq(reason, "aaguid-refused")
		                ? "allows only the key models in its aaguid_allow list, and an "
		                  "imported credential's model is unknown"
		                : "requires verified attestation, which an imported credential "
		                  "does not have",
		        instead ? instead : hint);
		refused.rule = er->rule;
		refused.rule_name = er->name;
		name = KEYWARD_BUS_ERROR_POLICY_REFUSED;
	}
	refused.reason = reason;
	refused.message = text;
	(void)manager_audit(m, &refused);
	log_info("Import %s for %s: refused (%s): %s", strna(rec->cred_label), user, reason, text);
	return sd_bus_error_setf(error, name, "%s", text);
}

static int method_import(Manager *m, sd_bus_message *msg, const BusCaller *c, sd_bus_error *error)
{
	const char *user, *label, *kh, *pk, *cose, *flags, *rp_id;
	_cleanup_(bus_actor_done) AuditActor actor = {};
	_cleanup_free_ char *id = NULL, *pkb = NULL;
	_cleanup_free_ uint8_t *raw = NULL;
	AuditRecord rec = AUDIT_RECORD_INIT;
	Credential cr = {.attestation = CRED_ATTESTATION_IMPORTED};
	size_t rawlen;
	int r;

	r = sd_bus_message_read(msg, "sssssss", &user, &label, &kh, &pk, &cose, &flags, &rp_id);
	if (r < 0)
		return r;
	if ((r = bus_check_user(user, error)) < 0 ||
	        (r = bus_check_string(label, KEYWARD_MAX_LABEL, false, "label", error)) < 0 ||
	        (r = bus_check_string(kh, KEYWARD_MAX_ID, false, "key handle", error)) < 0 ||
	        (r = bus_check_string(pk, KEYWARD_MAX_ID, false, "public key", error)) < 0 ||
	        (r = bus_check_string(cose, 16, false, "COSE type", error)) < 0 ||
	        (r = bus_check_string(flags, KEYWARD_MAX_FLAGS, true, "flags", error)) < 0 ||
	        (r = bus_check_string(rp_id, KEYWARD_MAX_RP_ID, false, "rp id", error)) < 0)
		return r;
	if (!creds_label_valid(label))
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
		        "Invalid label (1-64 of A-Z a-z 0-9 . _ @ + -).");
	cr.cose_alg = fido_cose_from_string(cose);
	if (cr.cose_alg == COSE_UNSPEC)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
		        "Unknown COSE type '%s' (es256, eddsa or rs256).", cose);
	if (streq(kh, CREDS_DISCOVERABLE_ID)) {
		id = strdup(kh);
		cr.resident = true;
	} else {
		/* Canonical base64 of the decoded handle (accepts websafe input). */
		_cleanup_free_ uint8_t *d = NULL;
		size_t dl;
		if (base64_decode(kh, &d, &dl) < 0 || dl == 0 || dl > 1023)
			return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
			        "The key handle is not valid base64.");
		r = base64_encode(d, dl, &id);
		if (r < 0)
			return r;
	}
	if (!id)
		return -ENOMEM;
	if (base64_decode(pk, &raw, &rawlen) < 0 || !fido_pubkey_valid(cr.cose_alg, raw, rawlen))
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
		        "The public key is not a valid %s key (base64 of libfido2's raw format).",
		        cose);
	r = base64_encode(raw, rawlen, &pkb);
	if (r < 0)
		return r;
	for (const char *f = flags; *f;) {
		if (strneq(f, "+presence", 9)) {
			cr.up = true;
			f += 9;
		} else if (strneq(f, "+pin", 4)) {
			cr.uv = true;
			f += 4;
		} else if (strneq(f, "+verification", 13)) {
			cr.uv = true;
			f += 13;
		} else if (*f == ',' || *f == ' ') {
			f++;
		} else
			return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
			        "Unknown flag in '%s' (+presence, +pin, +verification).", flags);
	}
	cr.id = id;
	cr.label = (char *)label;
	cr.rp_id = (char *)rp_id;
	cr.public_key = pkb;
	cr.created_ms = now_realtime_ms();

	rec.event = AUDIT_EVENT_IMPORT;
	rec.user = user;
	rec.cred_label = label;
	rec.cred_id = id;
	rec.detail = c->user;
	r = bus_actor_get(msg, c, &actor);
	if (r < 0)
		return r;
	rec.actor = &actor;
	r = bus_import_check_rules(m, user, &rec, NULL, error);
	if (r < 0)
		return r;
	r = bus_import_store(m, user, &cr, &rec, error);
	if (r < 0)
		return r;
	log_info("Imported credential %s for %s (rp %s, by uid %u).", label, user, rp_id,
	        (unsigned)c->uid);
	return sd_bus_reply_method_return(msg, "");
}

int bus_import_store(
        Manager *m, const char *user, const Credential *cr, AuditRecord *rec, sd_bus_error *error)
{
	const char *dir = policy_settings(m->policy)->credentials_dir;
	_cleanup_credential_set_ CredentialSet *s = NULL;
	_cleanup_free_ char *why = NULL, *owner = NULL;
	int r;

	r = bus_find_credential_owner(m, cr->id, &owner);
	if (r > 0) {
		rec->reason = "exists";
		(void)manager_audit(m, rec);
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_EXISTS,
		        "This credential is already registered (for %s).", owner);
	}
	r = creds_load_user(dir, user, &s, &why);
	if (r < 0) {
		rec->reason = "error";
		rec->message = why;
		(void)manager_audit(m, rec);
		return sd_bus_error_setf(
		        error, KEYWARD_BUS_ERROR_FAILED, "%s", why ? why : strerror(-r));
	}
	r = creds_add(s, cr, policy_settings(m->policy)->max_credentials_per_user);
	if (r == -EEXIST)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_EXISTS,
		        "%s already has a credential labelled '%s' or with this id.", user,
		        cr->label);
	if (r == -E2BIG)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_POLICY_REFUSED,
		        "%s already has the most credentials the policy allows (%u).", user,
		        policy_settings(m->policy)->max_credentials_per_user);
	if (r < 0)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
		        "Invalid credential: %s", strerror(-r));
	r = creds_save_user(dir, s);
	if (r < 0) {
		rec->reason = "error";
		(void)manager_audit(m, rec);
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_FAILED,
		        "Cannot write the credentials of %s in %s: %s", user, dir, strerror(-r));
	}
	rec->result = AUDIT_RESULT_SUCCESS;
	rec->reason = "ok";
	(void)manager_audit(m, rec);
	return 0;
}

/* --- Reload / GetStatus ------------------------------------------------------------- */

static int method_reload(Manager *m, sd_bus_message *msg, const BusCaller *c, sd_bus_error *error)
{
	_cleanup_(bus_actor_done) AuditActor actor = {};
	int r = bus_actor_get(msg, c, &actor);

	if (r < 0)
		return r;
	r = manager_reload_by(m, "bus", &actor);

	if (r < 0)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_POLICY_REFUSED,
		        "The policy %s was rejected (see the daemon log); the previous policy "
		        "stays in force.",
		        m->config_path);
	return sd_bus_reply_method_return(msg, "");
}

static int method_status(Manager *m, sd_bus_message *msg, const BusCaller *c, sd_bus_error *error)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	BusFairStats fs;
	int r;

	bus_fair_stats(m->fair, &fs);
	r = sd_bus_message_new_method_return(msg, &reply);
	if (r < 0)
		return r;
	/* The break-glass sessions first (breakglass.c), then the rest. */
	r = sd_bus_message_open_container(reply, 'a', "{sv}");
	if (r >= 0)
		r = breakglass_status_append(m, reply);
	if (r < 0)
		return r;
	r = sd_bus_message_append(reply,
	        "{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}", "version", "s",
	        KEYWARD_VERSION, "policy", "s", m->config_path, "policy_ok", "b",
	        m->policy_rejected == NULL, "policy_error", "s", strempty(m->policy_rejected),
	        "policy_in_force", "s", policy_path(m->policy), "policy_digest", "s",
	        policy_digest(m->policy), "started_usec", "t", m->started_ms * 1000,
	        "pending_operations", "u", (uint32_t)m->ops.n, "tokens", "u", (uint32_t)m->n_tokens,
	        "bindings", "u", (uint32_t)m->n_bindings, "audit_log", "s",
	        strempty(policy_settings(m->policy)->audit_log), "audit_ok", "b", m->audit != NULL,
	        "authentications_ok", "t", m->n_auth_ok, "authentications_failed", "t",
	        m->n_auth_failed, "calls_waiting", "u", (uint32_t)fs.waiting, "calls_refused_busy",
	        "t", fs.refused_busy);
	if (r >= 0)
		r = sd_bus_message_close_container(reply);
	if (r < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

/* --- vtable ------------------------------------------------------------------------- */

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_NAMES("Check", "ssss",
                SD_BUS_PARAM(user) SD_BUS_PARAM(service) SD_BUS_PARAM(tty) SD_BUS_PARAM(rhost),
                "ssbussus",
                SD_BUS_PARAM(require) SD_BUS_PARAM(uv) SD_BUS_PARAM(up) SD_BUS_PARAM(timeout_ms)
                        SD_BUS_PARAM(rule) SD_BUS_PARAM(message) SD_BUS_PARAM(n_credentials)
                                SD_BUS_PARAM(decision),
                bus_dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Authenticate", "ssssha{sv}",
                SD_BUS_PARAM(user) SD_BUS_PARAM(service) SD_BUS_PARAM(tty) SD_BUS_PARAM(rhost)
                        SD_BUS_PARAM(pin_fd) SD_BUS_PARAM(options),
                "bsssss",
                SD_BUS_PARAM(granted) SD_BUS_PARAM(reason) SD_BUS_PARAM(message) SD_BUS_PARAM(token)
                        SD_BUS_PARAM(credential) SD_BUS_PARAM(device),
                bus_dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("AgentChallenge", "ssssa{sv}",
                SD_BUS_PARAM(user) SD_BUS_PARAM(service) SD_BUS_PARAM(tty) SD_BUS_PARAM(rhost)
                        SD_BUS_PARAM(options),
                "says", SD_BUS_PARAM(key) SD_BUS_PARAM(challenge) SD_BUS_PARAM(challenge_id),
                bus_dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Cancel", "", "", bus_dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("BindSession", "ssusss",
                SD_BUS_PARAM(token) SD_BUS_PARAM(session_id) SD_BUS_PARAM(pid) SD_BUS_PARAM(service)
                        SD_BUS_PARAM(tty) SD_BUS_PARAM(user),
                "s", SD_BUS_PARAM(binding_id), bus_dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("UnbindSession", "s", SD_BUS_PARAM(binding_id), "", "",
                bus_dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Enroll", "ssha{sv}",
                SD_BUS_PARAM(user) SD_BUS_PARAM(label) SD_BUS_PARAM(pin_fd) SD_BUS_PARAM(options),
                "sss", SD_BUS_PARAM(credential_id) SD_BUS_PARAM(aaguid) SD_BUS_PARAM(attestation),
                bus_dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListCredentials", "s", SD_BUS_PARAM(user), "a(sssssst)",
                SD_BUS_PARAM(credentials), bus_dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Revoke", "ss", SD_BUS_PARAM(user) SD_BUS_PARAM(label_or_id), "",
                "", bus_dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ImportCredential", "sssssss",
                SD_BUS_PARAM(user) SD_BUS_PARAM(label) SD_BUS_PARAM(key_handle) SD_BUS_PARAM(
                        public_key) SD_BUS_PARAM(cose_type) SD_BUS_PARAM(flags) SD_BUS_PARAM(rp_id),
                "", "", bus_dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ImportSshKey", "sssayay",
                SD_BUS_PARAM(user) SD_BUS_PARAM(label) SD_BUS_PARAM(key_line)
                        SD_BUS_PARAM(attestation) SD_BUS_PARAM(challenge),
                "sss",
                SD_BUS_PARAM(credential_id) SD_BUS_PARAM(fingerprint) SD_BUS_PARAM(attestation),
                bus_dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Reload", "", "", bus_dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetStatus", "", "", "a{sv}", SD_BUS_PARAM(status), bus_dispatch,
                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("BreakglassIssue", "s", SD_BUS_PARAM(user), "ast",
                SD_BUS_PARAM(codes) SD_BUS_PARAM(valid_until_usec), bus_dispatch,
                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("BreakglassRevoke", "s", SD_BUS_PARAM(user), "", "", bus_dispatch,
                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("BreakglassList", "s", SD_BUS_PARAM(user), "a(sttb)",
                SD_BUS_PARAM(codes), bus_dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("BreakglassApprove", "sha{sv}",
                SD_BUS_PARAM(user) SD_BUS_PARAM(pin_fd) SD_BUS_PARAM(options), "t",
                SD_BUS_PARAM(valid_until_usec), bus_dispatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* sd-bus turns a lost connection into this local signal. keywardd cannot serve logins
 * or hear logind without the bus: it says so and exits with a failure, so that systemd
 * (Restart=on-failure) starts it again once the bus is back; bindings stay on disk. */
static int on_bus_disconnected(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error)
{
	Manager *m = userdata;

	log_error("Lost the connection to the system bus (dbus-daemon stopped or restarted): "
	          "exiting so that systemd restarts keywardd; session bindings are kept in "
	          "the runtime directory.");
	return sd_event_exit(m->event, EXIT_FAILURE);
}

int bus_api_setup(Manager *m)
{
	int r;

	r = sd_bus_open_system(&m->bus);
	if (r < 0)
		return log_error_errno(r, "Cannot connect to the system bus: %m");
	r = sd_bus_add_object_vtable(m->bus, &m->vtable_slot, KEYWARD_BUS_PATH,
	        KEYWARD_BUS_INTERFACE, manager_vtable, m);
	if (r < 0)
		return log_error_errno(r, "Cannot register %s: %m", KEYWARD_BUS_PATH);
	r = sd_bus_request_name(m->bus, KEYWARD_BUS_NAME, 0);
	if (r < 0)
		return log_error_errno(r,
		        "Cannot own %s on the system bus (is another keywardd running, "
		        "and is dist/org.keyward.Keyward1.conf installed?): %m",
		        KEYWARD_BUS_NAME);
	r = sd_bus_match_signal(m->bus, NULL, NULL, "/org/freedesktop/DBus/Local",
	        "org.freedesktop.DBus.Local", "Disconnected", on_bus_disconnected, m);
	if (r < 0)
		return log_error_errno(r, "Cannot watch the bus connection: %m");
	r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0)
		return log_error_errno(r, "Cannot attach the bus to the event loop: %m");
	r = bus_fair_new(m->event, bus_serve_queued, bus_route_identified, m, &m->fair);
	if (r < 0)
		return log_error_errno(r, "Cannot set up the request queues: %m");
	return 0;
}

void bus_api_shutdown(Manager *m)
{
	m->fair = bus_fair_free(m->fair);
}
