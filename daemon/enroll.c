/* enroll.c: the Enroll method — makeCredential on a plugged key (worker thread), then
 * in the loop: attestation signature, AAGUID lists, x5c chain per policy, duplicate
 * checks, store, audit. */
#include "bus-api.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/random.h>

#include "accounts.h"
#include "attestation.h"
#include "device-op.h"
#include "directory-source.h"
#include "fido-util.h"
#include "log.h"
#include "plugged.h"
#include "service-coverage.h"
#include "util.h"

#define ENROLL_MAX_DEVICES      16
#define ENROLL_USER_ID_BYTES    32
#define ENROLL_PROBE_TIMEOUT_MS 2000

typedef struct EnrollData {
	/* request */
	char *user, *label, *rp_id, *device, *rule;
	int pin_fd;
	bool resident, want_uv;
	uint8_t user_id[ENROLL_USER_ID_BYTES];
	CredentialSet *set; /* exclude list */
	EnrollRules rules;  /* every rule that must accept the key */
	uid_t caller_uid;
	AuditActor actor; /* who asked, for the record */

	/* result */
	const char *error_name; /* NULL: cred holds the new credential */
	char message[320];
	char *dev_path;
	char **paths; /* the plugged keys when the request came (NULL: enumerate) */
	fido_cred_t *cred;
	bool pin_used, builtin_uv;
	/* (extension) the registration goes to the directory (option `directory`). */
	bool directory;
	char *dir_id, *dir_aaguid, *dir_sysfs;
	sd_bus_message *dir_request;
	Manager *dir_manager;
	CredAttestation dir_attestation;
} EnrollData;

static void enroll_data_free(EnrollData *e)
{
	if (!e)
		return;
	free(e->user);
	free(e->label);
	free(e->rp_id);
	free(e->device);
	free(e->rule);
	if (e->pin_fd >= 0)
		close(e->pin_fd);
	credential_set_free(e->set);
	enroll_rules_done(&e->rules);
	free(e->dev_path);
	strv_free(e->paths);
	fido_cred_free(&e->cred);
	bus_actor_done(&e->actor);
	free(e->dir_id);
	free(e->dir_aaguid);
	free(e->dir_sysfs);
	sd_bus_message_unref(e->dir_request);
	free(e);
}

static void enroll_fail(EnrollData *e, const char *error_name, const char *fmt, ...) _printf_(3, 4);
static void enroll_fail(EnrollData *e, const char *error_name, const char *fmt, ...)
{
	va_list ap;

	e->error_name = error_name;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

/* --- worker thread ------------------------------------------------------------------ */

static int pick_device(EnrollData *e, char **paths, const char **ret)
{
	size_t n = strv_length(paths);

	if (n == 0) {
		enroll_fail(e, KEYWARD_BUS_ERROR_NO_DEVICE, "No security key is plugged in.");
		return -ENODEV;
	}
	if (e->device) {
		for (size_t i = 0; i < n; i++)
			if (streq(paths[i], e->device)) {
				*ret = paths[i];
				return 0;
			}
		enroll_fail(e, KEYWARD_BUS_ERROR_NO_DEVICE,
		        "No security key at %s (see fido2-token -L).", e->device);
		return -ENODEV;
	}
	if (n > 1) {
		char list[200] = "";
		for (size_t i = 0; i < n && strlen(list) < 150; i++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			        i ? ", " : "", paths[i]);
		enroll_fail(e, KEYWARD_BUS_ERROR_BUSY,
		        "%zu security keys are plugged in (%s): choose one with --device PATH, or "
		        "unplug the others.",
		        n, list);
		return -EBUSY;
	}
	*ret = paths[0];
	return 0;
}

/* The ids of the user's credentials for the rp id being enrolled, in the file's order. */
static int enroll_cred_ids(const EnrollData *e, FidoCredIds *ret)
{
	for (size_t i = 0; i < e->set->n; i++) {
		const Credential *c = &e->set->items[i];
		_cleanup_free_ uint8_t *id = NULL;
		size_t idlen;
		int r;

		if (credential_is_ssh(c) || !streq(c->rp_id, e->rp_id) ||
		        streq(c->id, CREDS_DISCOVERABLE_ID) ||
		        base64_decode(c->id, &id, &idlen) < 0)
			continue;
		r = fido_cred_ids_add(ret, id, idlen);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Whether DEV already holds one of IDS: a silent probe, batch by batch, for an exclude list
 * longer than one makeCredential request takes. Returns 0 when it holds none; else fails
 * the enrollment and returns -errno (-EEXIST: it holds one). */
static int enroll_probe(DeviceOp *op, EnrollData *e, fido_dev_t *dev, const FidoCredIds *ids,
        const FidoListLimits *lim)
{
	fido_assert_t *as = NULL;
	int status = FIDO_ERR_INTERNAL, r;

	(void)fido_dev_set_timeout(dev, ENROLL_PROBE_TIMEOUT_MS);
	r = fido_probe_batches(dev, e->rp_id, ids, lim, &as, &status);
	fido_assert_free(&as);
	log_debug("probe %s for %zu credentials of %s: %s", e->dev_path, ids->n, e->user,
	        fido_strerr(status));
	if (r == 0)
		return 0;
	if (r > 0) {
		enroll_fail(e, KEYWARD_BUS_ERROR_EXISTS,
		        "This security key already holds a credential of %s: it is enrolled "
		        "already.",
		        e->user);
		return -EEXIST;
	}
	if (device_op_cancelled(op) || status == FIDO_ERR_KEEPALIVE_CANCEL)
		enroll_fail(e, KEYWARD_BUS_ERROR_FAILED, "Enrollment was cancelled.");
	else
		/* Not "not enrolled": the key was not (fully) asked. */
		enroll_fail(e, KEYWARD_BUS_ERROR_FAILED,
		        "The security key could not be searched for the credentials of %s: %s "
		        "(%s)",
		        e->user, fido_error_message(status), fido_strerr(status));
	return r;
}

static void enroll_make(DeviceOp *op, EnrollData *e, fido_dev_t *dev)
{
	_cleanup_erase_ char *pin = NULL;
	_cleanup_(fido_cred_ids_done) FidoCredIds ids = {};
	bool has_pin = fido_dev_has_pin(dev), has_uv = fido_dev_has_uv(dev);
	size_t overhead = FIDO_LIST_MAKE_CRED_OVERHEAD + strlen(e->rp_id), pos = 0;
	FidoListLimits lim;
	fido_cred_t *cred;
	uint8_t cdh[32];
	int r;

	if (e->pin_fd >= 0) {
		r = fido_pin_read_fd(e->pin_fd, &pin);
		if (r < 0) {
			enroll_fail(e, KEYWARD_BUS_ERROR_INVALID_ARGS,
			        "The PIN could not be read (%s).", strerror(-r));
			return;
		}
	}
	if (has_pin && !pin) {
		enroll_fail(e, KEYWARD_BUS_ERROR_PIN_REQUIRED,
		        "The security key at %s has a PIN: give it to enroll the key.",
		        e->dev_path);
		return;
	}
	if (e->want_uv && !has_pin && !has_uv) {
		enroll_fail(e, KEYWARD_BUS_ERROR_POLICY_REFUSED,
		        "This key has no PIN set but the policy requires one: set a PIN with "
		        "fido2-token -S.");
		return;
	}
	e->pin_used = has_pin && pin;
	e->builtin_uv = e->want_uv && !e->pin_used && has_uv;

	if (enroll_cred_ids(e, &ids) < 0) {
		enroll_fail(e, KEYWARD_BUS_ERROR_FAILED, "Out of memory.");
		return;
	}
	fido_list_limits(dev, &lim);
	/* An exclude list the key takes in one request goes with makeCredential; a longer one
	 * is asked batch by batch first, and makeCredential then goes without it. */
	if (fido_list_batch_end(&ids, &lim, overhead, 0) < ids.n) {
		if (enroll_probe(op, e, dev, &ids, &lim) < 0)
			return;
		pos = ids.n;
	}

	cred = fido_cred_new();
	if (!cred) {
		enroll_fail(e, KEYWARD_BUS_ERROR_FAILED, "Out of memory.");
		return;
	}
	if (getrandom(cdh, sizeof(cdh), 0) != (ssize_t)sizeof(cdh))
		r = FIDO_ERR_INTERNAL;
	else
		r = fido_cred_set_clientdata_hash(cred, cdh, sizeof(cdh));
	if (r == FIDO_OK)
		r = fido_cred_set_type(cred, COSE_ES256);
	if (r == FIDO_OK)
		r = fido_cred_set_rp(cred, e->rp_id, "keyward");
	if (r == FIDO_OK)
		r = fido_cred_set_user(
		        cred, e->user_id, sizeof(e->user_id), e->user, e->user, NULL);
	if (r == FIDO_OK)
		r = fido_cred_set_rk(cred, e->resident ? FIDO_OPT_TRUE : FIDO_OPT_OMIT);
	if (r == FIDO_OK && e->builtin_uv)
		r = fido_cred_set_uv(cred, FIDO_OPT_TRUE);
	/* excludeList: a key that already holds one of the user's credentials refuses. */
	if (r == FIDO_OK && pos < ids.n) {
		int k = fido_cred_exclude_batch(cred, &ids, &lim, overhead, &pos);
		if (k < 0)
			r = FIDO_ERR_INTERNAL;
	}
	if (r != FIDO_OK) {
		enroll_fail(e, KEYWARD_BUS_ERROR_FAILED,
		        "Could not prepare the credential request: %s.", fido_strerr(r));
		fido_cred_free(&cred);
		return;
	}
	(void)fido_dev_set_timeout(dev, (int)op->timeout_ms);
	r = fido_dev_make_cred(dev, cred, e->pin_used ? pin : NULL);
	if (r == FIDO_OK) {
		e->cred = cred;
		return;
	}
	fido_cred_free(&cred);
	if (device_op_cancelled(op) || r == FIDO_ERR_KEEPALIVE_CANCEL)
		enroll_fail(e, KEYWARD_BUS_ERROR_FAILED, "Enrollment was cancelled.");
	else if (r == FIDO_ERR_CREDENTIAL_EXCLUDED)
		enroll_fail(e, KEYWARD_BUS_ERROR_EXISTS,
		        "This security key already holds a credential of %s: it is enrolled "
		        "already.",
		        e->user);
	else if (r == FIDO_ERR_PIN_INVALID || r == FIDO_ERR_PIN_AUTH_INVALID) {
		int retries = -1;
		if (fido_dev_get_retry_count(dev, &retries) == FIDO_OK && retries >= 0)
			enroll_fail(e, KEYWARD_BUS_ERROR_ACCESS_DENIED,
			        "Wrong PIN for the security key; %d %s left.", retries,
			        retries == 1 ? "try" : "tries");
		else
			enroll_fail(e, KEYWARD_BUS_ERROR_ACCESS_DENIED,
			        "Wrong PIN for the security key.");
	} else if (r == FIDO_ERR_RX || r == FIDO_ERR_USER_ACTION_TIMEOUT ||
	           r == FIDO_ERR_ACTION_TIMEOUT)
		enroll_fail(e, KEYWARD_BUS_ERROR_FAILED,
		        "The security key was not touched within %u seconds.",
		        (unsigned)((op->timeout_ms + 999) / 1000));
	else
		enroll_fail(e, KEYWARD_BUS_ERROR_FAILED, "%s (%s)", fido_error_message(r),
		        fido_strerr(r));
}

static void enroll_work(DeviceOp *op)
{
	EnrollData *e = op->data;
	const char *path = NULL;
	fido_dev_t *dev = NULL;
	int r;

	/* The plugged keys the loop handed over; without a kept set, libfido2 lists them. */
	if (!e->paths && plugged_enumerate(ENROLL_MAX_DEVICES, &e->paths) < 0) {
		enroll_fail(e, KEYWARD_BUS_ERROR_FAILED, "Out of memory.");
		goto out;
	}
	if (pick_device(e, e->paths, &path) < 0)
		goto out;
	e->dev_path = strdup(path);
	dev = fido_dev_new();
	if (!e->dev_path || !dev) {
		enroll_fail(e, KEYWARD_BUS_ERROR_FAILED, "Out of memory.");
		goto out;
	}
	/* Bounded from the start: fido_dev_open() already talks to the key. */
	(void)fido_dev_set_timeout(dev, (int)op->timeout_ms);
	r = fido_dev_open(dev, path);
	if (r != FIDO_OK) {
		enroll_fail(e, KEYWARD_BUS_ERROR_NO_DEVICE,
		        "Cannot open the security key at %s: %s.", path, fido_strerr(r));
		goto out;
	}
	(void)device_op_add_active(op, dev); /* the op's only key: room for it */
	enroll_make(op, e, dev);
	device_op_remove_active(op, dev);
	(void)fido_dev_close(dev);
out:
	fido_dev_free(&dev);
	if (e->pin_fd >= 0) {
		close(e->pin_fd);
		e->pin_fd = -1;
	}
}

/* --- back in the loop --------------------------------------------------------------- */

static void enroll_reply_error(
        DeviceOp *op, AuditRecord *rec, const char *reason, const char *name, const char *message)
{
	int r;

	rec->result = AUDIT_RESULT_FAILURE;
	rec->reason = reason;
	rec->message = message;
	(void)manager_audit(op->manager, rec);
	log_info("Enroll %s: refused (%s): %s", strna(rec->user), reason, message);
	r = sd_bus_reply_method_errorf(op->request, name, "%s", message);
	if (r < 0)
		log_warning_errno(r, "Cannot reply to %s: %m", strna(op->sender));
}

/* The enrolment's record: who asked, for whom, which label, under which rule. */
static void enroll_record_init(AuditRecord *rec, const EnrollData *e)
{
	rec->event = AUDIT_EVENT_ENROLL;
	rec->actor = &e->actor;
	rec->user = e->user;
	rec->cred_label = e->label;
	rec->rule = e->rule;
}

/* The directory's answer to a registration (directory-source.h), in the loop. */
static void enroll_directory_done(int r, const char *message, void *userdata)
{
	EnrollData *e = userdata;
	Manager *m = e->dir_manager;
	AuditRecord rec = AUDIT_RECORD_INIT;

	enroll_record_init(&rec, e);
	rec.cred_id = e->dir_id;
	rec.aaguid = e->dir_aaguid;
	rec.device = e->dir_sysfs;
	rec.detail = "directory";
	if (r < 0) {
		rec.result = AUDIT_RESULT_FAILURE;
		rec.reason = r == -EEXIST ? "exists" : "error";
		rec.message = message;
		(void)manager_audit(m, &rec);
		log_info("Enroll %s into the directory: refused: %s", e->user, message);
		r = sd_bus_reply_method_errorf(e->dir_request,
		        r == -EEXIST ? KEYWARD_BUS_ERROR_EXISTS : KEYWARD_BUS_ERROR_FAILED, "%s",
		        message);
	} else {
		rec.result = AUDIT_RESULT_SUCCESS;
		rec.reason = "ok";
		(void)manager_audit(m, &rec);
		log_info("Enrolled credential %s for %s into the directory (AAGUID %s, attestation "
		         "%s).",
		        e->label, e->user, e->dir_aaguid,
		        cred_attestation_to_string(e->dir_attestation));
		r = sd_bus_reply_method_return(e->dir_request, "sss", e->dir_id, e->dir_aaguid,
		        cred_attestation_to_string(e->dir_attestation));
	}
	if (r < 0)
		log_warning_errno(r, "Cannot reply to the Enroll of %s: %m", e->user);
	enroll_data_free(e);
}

/* Hands the verified credential to the directory; the op's data goes with it (the reply
 * waits for the directory, the op ends now). */
static void enroll_directory_store(
        DeviceOp *op, AuditRecord *rec, const Credential *c, uint32_t sigcount)
{
	Manager *m = op->manager;
	EnrollData *e = op->data;
	int r;

	(void)sigcount; /* the shared counter starts with the first login */
	e->dir_id = strdup(c->id);
	e->dir_aaguid = strdup(strempty(rec->aaguid));
	e->dir_sysfs = rec->device ? strdup(rec->device) : NULL;
	e->dir_attestation = c->attestation;
	e->dir_manager = m;
	e->dir_request = sd_bus_message_ref(op->request);
	if (!e->dir_id || !e->dir_aaguid || (rec->device && !e->dir_sysfs)) {
		enroll_reply_error(op, rec, "error", KEYWARD_BUS_ERROR_FAILED, "Out of memory.");
		return;
	}
	r = directory_enroll_start(sd_bus_get_event(sd_bus_message_get_bus(op->request)),
	        policy_settings(m->policy), e->user, c,
	        policy_settings(m->policy)->max_credentials_per_user, enroll_directory_done, e);
	if (r < 0) {
		enroll_reply_error(op, rec, "error", KEYWARD_BUS_ERROR_FAILED,
		        "The registration cannot be sent to the directory.");
		return;
	}
	op->data = NULL; /* transferred: enroll_directory_done() frees it */
}

static void enroll_complete(DeviceOp *op)
{
	Manager *m = op->manager;
	EnrollData *e = op->data;
	const char *dir = policy_settings(m->policy)->credentials_dir;
	_cleanup_free_ char *id = NULL, *pk = NULL, *uid = NULL, *why = NULL, *owner = NULL,
	                    *sysfs = NULL;
	_cleanup_credential_set_ CredentialSet *set = NULL;
	AuditRecord rec = AUDIT_RECORD_INIT;
	char aaguid_s[FIDO_AAGUID_STRING_MAX] = "", msg[400];
	Credential c = {.up = true};
	const char *fmt, *reason = NULL;
	const EnrollRule *er;
	uint8_t aaguid[16] = {};
	int r;

	enroll_record_init(&rec, e);
	if (e->dev_path && manager_hidraw_to_syspath(m, e->dev_path, &sysfs) >= 0)
		rec.device = sysfs;
	else
		rec.device = e->dev_path;
	{
		uid_t user_uid;

		if (account_lookup(e->user, &user_uid, NULL) >= 0)
			rec.uid = user_uid;
	}
	if (!e->cred) {
		enroll_reply_error(op, &rec, "error",
		        e->error_name ? e->error_name : KEYWARD_BUS_ERROR_FAILED,
		        e->message[0] ? e->message : "Enrollment failed.");
		return;
	}
	if (base64_encode(fido_cred_id_ptr(e->cred), fido_cred_id_len(e->cred), &id) < 0 ||
	        base64_encode(fido_cred_pubkey_ptr(e->cred), fido_cred_pubkey_len(e->cred), &pk) <
	                0 ||
	        base64_encode(e->user_id, sizeof(e->user_id), &uid) < 0) {
		enroll_reply_error(op, &rec, "error", KEYWARD_BUS_ERROR_FAILED, "Out of memory.");
		return;
	}
	rec.cred_id = id;
	if (fido_cred_aaguid_len(e->cred) == 16)
		memcpy(aaguid, fido_cred_aaguid_ptr(e->cred), 16);
	fido_aaguid_to_string(aaguid, aaguid_s);
	rec.aaguid = aaguid_s;

	/* The attestation statement's signature (not the chain: see below). */
	fmt = fido_cred_fmt(e->cred);
	if (fmt && streq(fmt, "none"))
		c.attestation = CRED_ATTESTATION_NONE;
	else if (fido_cred_x5c_len(e->cred) > 0) {
		r = fido_cred_verify(e->cred);
		if (r != FIDO_OK) {
			snprintf(msg, sizeof(msg),
			        "The key's attestation signature does not verify (%s): refusing "
			        "it.",
			        fido_strerr(r));
			enroll_reply_error(op, &rec, "attestation-refused",
			        KEYWARD_BUS_ERROR_POLICY_REFUSED, msg);
			return;
		}
		c.attestation = CRED_ATTESTATION_UNVERIFIED;
	} else {
		r = fido_cred_verify_self(e->cred);
		if (r != FIDO_OK) {
			snprintf(msg, sizeof(msg),
			        "The key's self attestation does not verify (%s): refusing it.",
			        fido_strerr(r));
			enroll_reply_error(op, &rec, "attestation-refused",
			        KEYWARD_BUS_ERROR_POLICY_REFUSED, msg);
			return;
		}
		c.attestation = CRED_ATTESTATION_SELF;
	}
	/* Every rule that would use this credential must accept the key. */
	er = enroll_rules_check_model(&e->rules, aaguid, fido_cred_x5c_ptr(e->cred),
	        fido_cred_x5c_len(e->cred), &c.attestation, &reason, msg, sizeof(msg));
	if (er) {
		rec.rule = er->rule;
		enroll_reply_error(op, &rec, reason, KEYWARD_BUS_ERROR_POLICY_REFUSED, msg);
		return;
	}
	rec.rule = e->rule;

	c.id = id;
	c.label = e->label;
	c.rp_id = e->rp_id;
	c.cose_alg = fido_cred_type(e->cred);
	c.public_key = pk;
	c.user_id = uid;
	c.has_aaguid = true;
	memcpy(c.aaguid, aaguid, 16);
	c.resident = e->resident;
	c.uv = e->pin_used || e->builtin_uv;
	c.created_ms = now_realtime_ms();

	r = bus_find_credential_owner(m, id, &owner);
	if (r > 0) {
		snprintf(
		        msg, sizeof(msg), "This credential is already registered (for %s).", owner);
		enroll_reply_error(op, &rec, "exists", KEYWARD_BUS_ERROR_EXISTS, msg);
		return;
	}
	if (e->directory) {
		enroll_directory_store(op, &rec, &c, fido_cred_sigcount(e->cred));
		return;
	}
	/* Re-read: the file may have changed while the key waited for a touch. */
	r = creds_load_user(dir, e->user, &set, &why);
	if (r >= 0)
		r = creds_add(set, &c, policy_settings(m->policy)->max_credentials_per_user);
	if (r >= 0)
		r = creds_save_user(dir, set);
	if (r < 0) {
		if (r == -EEXIST)
			snprintf(msg, sizeof(msg), "%s already has a credential labelled '%s'.",
			        e->user, e->label);
		else if (r == -E2BIG)
			snprintf(msg, sizeof(msg),
			        "%s already has the most credentials the policy allows.", e->user);
		else
			snprintf(msg, sizeof(msg), "Cannot store the credential of %s in %s: %s",
			        e->user, dir, why ? why : strerror(-r));
		enroll_reply_error(op, &rec, r == -EEXIST ? "exists" : "error",
		        r == -EEXIST ? KEYWARD_BUS_ERROR_EXISTS : KEYWARD_BUS_ERROR_FAILED, msg);
		return;
	}
	/* The counter the key starts from (usually 0). */
	(void)creds_counter_store(
	        policy_settings(m->policy)->state_dir, e->user, id, fido_cred_sigcount(e->cred));
	rec.result = AUDIT_RESULT_SUCCESS;
	rec.reason = "ok";
	rec.detail = cred_attestation_to_string(c.attestation);
	(void)manager_audit(m, &rec);
	log_info("Enrolled credential %s for %s (AAGUID %s, attestation %s).", e->label, e->user,
	        aaguid_s, cred_attestation_to_string(c.attestation));
	r = sd_bus_reply_method_return(
	        op->request, "sss", id, aaguid_s, cred_attestation_to_string(c.attestation));
	if (r < 0)
		log_warning_errno(r, "Cannot reply to %s: %m", strna(op->sender));
}

static void enroll_abort(DeviceOp *op, const char *reason)
{
	EnrollData *e = op->data;
	AuditRecord rec = AUDIT_RECORD_INIT;

	enroll_record_init(&rec, e);
	enroll_reply_error(op, &rec, reason, KEYWARD_BUS_ERROR_FAILED,
	        streq(reason, "timeout") ? "The security key was not touched in time."
	                                 : "Enrollment was cancelled.");
}

static void enroll_done(DeviceOp *op)
{
	enroll_data_free(op->data);
	op->data = NULL;
}

static const DeviceOpVTable enroll_vtable = {
        .work = enroll_work,
        .complete = enroll_complete,
        .abort = enroll_abort,
        .done = enroll_done,
};

/* --- the method --------------------------------------------------------------------- */

typedef struct EnrollOptions {
	int resident, uv, directory;
	const char *device;
} EnrollOptions;

static int enroll_option(const char *key, sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	EnrollOptions *o = userdata;
	int r, b;

	if (streq(key, "device")) {
		r = sd_bus_message_read(msg, "s", &o->device);
		if (r < 0)
			return r;
		return bus_check_string(o->device, KEYWARD_MAX_DEVICE_PATH, false, "device", error);
	}
	r = sd_bus_message_read(msg, "b", &b);
	if (r < 0)
		return r;
	if (streq(key, "resident"))
		o->resident = b;
	else if (streq(key, "directory"))
		o->directory = b;
	else
		o->uv = b;
	return 0;
}

static int copy_aaguids(const uint8_t (*src)[16], size_t n, uint8_t (**ret)[16])
{
	*ret = NULL;
	if (n == 0)
		return 0;
	*ret = calloc(n, 16);
	if (!*ret)
		return -ENOMEM;
	memcpy(*ret, src, n * 16);
	return 0;
}

/* The pseudo-service a policy can name to add a rule just for enrollment (no PAM file has it). */
#define ENROLL_SERVICE "keyward-enroll"

void enroll_rules_done(EnrollRules *rules)
{
	if (!rules)
		return;
	for (size_t i = 0; i < rules->n; i++) {
		free(rules->items[i].rule);
		free(rules->items[i].name);
		free(rules->items[i].aaguid_allow);
		free(rules->items[i].aaguid_deny);
		strv_free(rules->items[i].trust_anchors);
	}
	free(rules->items);
	*rules = (EnrollRules){};
}

/* Records the restrictions of D (a `key` decision) unless its rule is already recorded.
 * ASKS_UV: a login can reach the rule now, so its user_verification counts. Every rule is
 * kept (the policy bounds their number): one left out would go unchecked. */
static int enroll_add_rule(EnrollRules *rules, const PolicyDecision *d, bool asks_uv)
{
	_cleanup_free_ char *rule = NULL;
	EnrollRule *er, *items;
	int r;

	if (asks_uv && d->user_verification == POLICY_UV_REQUIRED)
		rules->uv_required = true;
	r = decision_rule_label(d, &rule);
	if (r < 0)
		return r;
	for (size_t j = 0; j < rules->n; j++)
		if (streq(rules->items[j].rule, rule))
			return 0;
	items = reallocarray(rules->items, rules->n + 1, sizeof(EnrollRule));
	if (!items)
		return -ENOMEM;
	rules->items = items;
	er = &rules->items[rules->n++];
	*er = (EnrollRule){
	        .rule = TAKE_PTR(rule),
	        .name = strdup(strna(d->rule_name)),
	        .attestation = d->attestation,
	        .n_aaguid_allow = d->n_aaguid_allow,
	        .n_aaguid_deny = d->n_aaguid_deny,
	        .trust_anchors = calloc(1, sizeof(char *)),
	};
	if (!er->name || !er->trust_anchors)
		return -ENOMEM;
	r = copy_aaguids(d->aaguid_allow, d->n_aaguid_allow, &er->aaguid_allow);
	if (r >= 0)
		r = copy_aaguids(d->aaguid_deny, d->n_aaguid_deny, &er->aaguid_deny);
	if (r < 0)
		return r;
	for (char *const *t = d->trust_anchors; t && *t; t++) {
		r = strv_extend(&er->trust_anchors, *t);
		if (r < 0)
			return r;
	}
	return 0;
}

/* service_coverage_user() asks through here: the decision every login gets. */
static int enroll_evaluate(const PolicyRequest *req, PolicyDecision *ret, void *userdata)
{
	return manager_evaluate(
	        userdata, req->user, req->service, req->tty ?: "", "", 0, ret, NULL, NULL);
}

/* A credential serves every service, so each rule that would ask this user for a key must
 * accept it (the strictest wins): the rule for ENROLL_SERVICE first (its label names the
 * enrollment in the audit record), then those of the PAM services present (the answer
 * keywardctl doctor and report give too: service_coverage_user()) and of the services a
 * rule names that are not installed yet: their AAGUID lists and attestation hold for the
 * credential once they are (nothing checks them later), while a PIN is only wanted for
 * what a login can reach now. */
int enroll_rules_collect(Manager *m, const char *user, EnrollRules *ret)
{
	_cleanup_(service_coverage_freep) ServiceCoverage *cov = NULL;
	_cleanup_free_ ServiceCoverageHit *hits = NULL;
	_cleanup_(enroll_rules_done) EnrollRules rules = {};
	size_t n_hits = 0;
	PolicyDecision d;
	int r;

	r = manager_evaluate(m, user, ENROLL_SERVICE, "", "", 0, &d, NULL, NULL);
	if (r < 0)
		return r;
	if (d.require == POLICY_REQUIRE_KEY) {
		r = enroll_add_rule(&rules, &d, true);
		if (r < 0)
			return r;
	}
	r = service_coverage_load(m->policy, NULL, &cov);
	if (r < 0)
		return log_error_errno(
		        r, "Cannot list the PAM services in /etc/pam.d and /usr/lib/pam.d: %m");
	r = service_coverage_user(cov, m->policy,
	        &(ServiceCoverageQuery){
	                .user = user,
	                .include_absent = true,
	                .evaluate = enroll_evaluate,
	                .userdata = m,
	        },
	        &hits, &n_hits);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_hits; i++) {
		r = enroll_add_rule(&rules, &hits[i].decision, hits[i].entry->present);
		if (r < 0)
			return r;
	}
	*ret = rules;
	rules = (EnrollRules){}; /* transferred */
	return 0;
}

const EnrollRule *enroll_rules_refusing_unknown_model(
        const EnrollRules *rules, const char **ret_reason)
{
	/* The same test a login makes (authenticate.c): a credential without a known model
	 * passes an allow list only if it is empty, and verified attestation needs a chain
	 * checked at enrolment. A deny list cannot name an unknown model. */
	for (size_t i = 0; i < rules->n; i++) {
		const EnrollRule *er = &rules->items[i];

		if (er->n_aaguid_allow > 0) {
			*ret_reason = "aaguid-refused";
			return er;
		}
		if (er->attestation == POLICY_ATTESTATION_VERIFIED) {
			*ret_reason = "attestation-refused";
			return er;
		}
	}
	return NULL;
}

const EnrollRule *enroll_rules_check_model(const EnrollRules *rules, const uint8_t aaguid[16],
        const uint8_t *x5c, size_t x5c_len, CredAttestation *attestation, const char **ret_reason,
        char *msg, size_t msg_size)
{
	char aaguid_s[FIDO_AAGUID_STRING_MAX] = "";

	fido_aaguid_to_string(aaguid, aaguid_s);
	for (size_t i = 0; i < rules->n; i++) {
		const EnrollRule *er = &rules->items[i];
		_cleanup_free_ char *why = NULL;
		int r;

		if (attestation_check_aaguid(aaguid, (const uint8_t(*)[16])er->aaguid_allow,
		            er->n_aaguid_allow, (const uint8_t(*)[16])er->aaguid_deny,
		            er->n_aaguid_deny) < 0) {
			snprintf(msg, msg_size,
			        "The policy (rule %s) does not allow this model of security key "
			        "(AAGUID %s).",
			        er->rule, aaguid_s);
			*ret_reason = "aaguid-refused";
			return er;
		}
		if (er->attestation != POLICY_ATTESTATION_VERIFIED)
			continue;
		if (*attestation != CRED_ATTESTATION_UNVERIFIED &&
		        *attestation != CRED_ATTESTATION_VERIFIED) {
			snprintf(msg, msg_size,
			        "The policy (rule %s) requires verified attestation, but the key "
			        "sent %s attestation.",
			        er->rule,
			        *attestation == CRED_ATTESTATION_NONE ? "no" : "only self");
			*ret_reason = "attestation-refused";
			return er;
		}
		r = attestation_verify_chain(x5c, x5c_len, er->trust_anchors, aaguid, &why);
		if (r < 0) {
			snprintf(msg, msg_size, "Attestation refused: %s (rule %s).",
			        why ? why : strerror(-r), er->rule);
			*ret_reason = "attestation-refused";
			return er;
		}
		*attestation = CRED_ATTESTATION_VERIFIED;
	}
	return NULL;
}

int bus_method_enroll(Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error)
{
	static const char *const known[] = {"resident:b", "uv:b", "device:s", "directory:b", NULL};
	const PolicySettings *st = policy_settings(m->policy);
	const char *user, *label;
	_cleanup_free_ char *why = NULL, *auto_label = NULL;
	EnrollOptions o = {.resident = 0, .uv = -1};
	EnrollData *e;
	DeviceOp *op;
	int pin_fd, r;

	r = sd_bus_message_read(msg, "ssh", &user, &label, &pin_fd);
	if (r < 0)
		return r;
	r = bus_read_options(msg, known, enroll_option, &o, error);
	if (r < 0)
		return r;
	if ((r = bus_check_user(user, error)) < 0 ||
	        (r = bus_check_string(label, KEYWARD_MAX_LABEL, true, "label", error)) < 0)
		return r;
	if (!isempty(label) && !creds_label_valid(label))
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_INVALID_ARGS,
		        "Invalid label '%s' (1-64 of A-Z a-z 0-9 . _ @ + -).", label);
	if (o.directory && (!st->directory.configured || !st->directory.writable))
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_POLICY_REFUSED,
		        "Enrolment into the directory needs a 'directory' group with writable = "
		        "true in the policy.");
	r = account_lookup(user, NULL, NULL);
	if (r == -ESRCH)
		return sd_bus_error_setf(
		        error, KEYWARD_BUS_ERROR_INVALID_ARGS, "No such user: %s.", user);
	if (r < 0)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_FAILED,
		        "Cannot look up user %s: %s.", user, strerror(-r));
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->pin_fd = -1;
	e->actor = (AuditActor){.uid = (uid_t)-1, .loginuid = (uid_t)-1};
	r = creds_load_user(st->credentials_dir, user, &e->set, &why);
	if (r < 0) {
		enroll_data_free(e);
		return sd_bus_error_setf(
		        error, KEYWARD_BUS_ERROR_FAILED, "%s", why ? why : strerror(-r));
	}
	if (o.directory > 0) {
		/* Into the directory: its credentials (as cached) are the exclude list, the
		 * labels taken and the count; the worker checks them again on the server. */
		e->set = credential_set_free(e->set);
		r = directory_cached_set(st, user, &e->set);
		if (r < 0) {
			enroll_data_free(e);
			return r;
		}
	}
	if (st->max_credentials_per_user > 0 && e->set->n >= st->max_credentials_per_user) {
		enroll_data_free(e);
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_POLICY_REFUSED,
		        "%s already has %u credentials, the most the policy allows "
		        "(max_credentials_per_user).",
		        user, st->max_credentials_per_user);
	}
	if (isempty(label)) {
		for (unsigned i = 1; i <= CREDS_MAX_PER_FILE + 1; i++) {
			free(auto_label);
			if (asprintf(&auto_label, "key-%u", i) < 0) {
				auto_label = NULL;
				break;
			}
			if (!creds_find_label(e->set, auto_label))
				break;
		}
		if (!auto_label) {
			enroll_data_free(e);
			return -ENOMEM;
		}
		label = auto_label;
	} else if (creds_find_label(e->set, label)) {
		enroll_data_free(e);
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_EXISTS,
		        "%s already has a credential labelled '%s'.", user, label);
	}
	e->user = strdup(user);
	e->label = strdup(label);
	e->rp_id = strdup(st->rp_id);
	e->device = o.device ? strdup(o.device) : NULL;
	e->resident = o.resident;
	e->directory = o.directory > 0;
	e->caller_uid = caller->uid;
	r = bus_actor_get(msg, caller, &e->actor);
	if (r < 0) {
		enroll_data_free(e);
		return r;
	}
	r = enroll_rules_collect(m, user, &e->rules);
	if (r < 0) {
		enroll_data_free(e);
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_FAILED,
		        "Cannot evaluate the policy for %s.", user);
	}
	e->want_uv = o.uv > 0 || (o.uv < 0 && e->rules.uv_required);
	e->rule = strdup(e->rules.n > 0 ? e->rules.items[0].rule : "default");
	if (!e->user || !e->label || !e->rp_id || !e->rule || (o.device && !e->device)) {
		enroll_data_free(e);
		return -ENOMEM;
	}
	if (getrandom(e->user_id, sizeof(e->user_id), 0) != (ssize_t)sizeof(e->user_id)) {
		enroll_data_free(e);
		return -EIO;
	}
	r = plugged_devnodes(m->plugged, &e->paths);
	if (r < 0) {
		enroll_data_free(e);
		return r;
	}
	e->pin_fd = pin_fd >= 0 ? fcntl(pin_fd, F_DUPFD_CLOEXEC, 3) : -1;
	if (e->pin_fd >= 0)
		(void)fcntl(e->pin_fd, F_SETFL, O_NONBLOCK);
	log_info("Enroll %s (label %s) requested by uid %u.", user, label, (unsigned)caller->uid);
	r = device_op_new(&m->ops, m, DEVICE_OP_ENROLL, &enroll_vtable, msg, caller->uid,
	        st->timeout_ms, e, &op);
	if (r == -EBUSY)
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_BUSY,
		        "keywardd is busy with too many requests; try again.");
	if (r < 0)
		return r;
	r = device_op_start(op);
	if (r < 0)
		return log_error_errno(r, "Cannot start enrollment: %m");
	return 1;
}
