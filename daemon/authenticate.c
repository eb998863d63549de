/* authenticate.c: the Authenticate method — policy, lockout and credential checks in
 * the loop; the key search (the known key of the user's last login asked directly, else a
 * silent probe per key, then the real assertion) in a worker thread; verification of
 * signature, flags, owner and sign counter back in the loop. */
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/random.h>

#include "bus-api.h"

#include "attestation.h"
#include "device-op.h"
#include "directory-source.h"
#include "fido-util.h"
#include "lockout.h"
#include "log.h"
#include "plugged.h"
#include "process.h"
#include "ssh-proof.h"
#include "util.h"

#define AUTH_MAX_DEVICES      16
#define AUTH_PROBE_TIMEOUT_MS 2000
#define FIDO_FLAG_UP          0x01
#define FIDO_FLAG_UV          0x04

typedef struct AuthData {
	/* request (read by the worker) */
	char *user;
	uid_t uid;
	char *service, *tty, *rhost;
	int pin_fd;
	/* The login's decision (a reference; made by Check or, for a caller that did not
	 * pass one, here): rule, requirements, removal behaviour, policy digest, caller. The
	 * worker only reads it. The token of a success carries it to BindSession. */
	Decision *decision;
	/* The PAM account phase asked (the application skipped authentication): recorded
	 * as event `account`. */
	bool account;
	/* A cached elevation proved silently: only this device, no touch, no PIN. */
	bool silent_proof;
	/* The module asked the user for the PIN (the pipe holds what was typed): a
	 * `pin-required` answer now is a refusal, not the prompt it asks for. */
	bool pin_asked;
	char *only_device;
	char **paths;       /* the plugged keys when the request came (NULL: enumerate) */
	CredentialSet *set; /* the user's credentials (worker reads ids/rp ids only) */
	/* The directory's part of the login (directory-source.h): the worker asks the
	 * directory (or its cache) first and replaces `set` with the merged credentials. */
	DirectoryLogin *dir;
	/* The known key (fast path): the plugged key that made this user's last verified
	 * assertion with credential known_id (still registered), asked directly first. */
	char *known_path;
	char *known_id;
	uint64_t plugged_serial; /* plugged_serial() when the request came */
	/* The PIN from the pipe, read once (the fast path and a fallback both use it). */
	char *pin;
	bool pin_read;
	/* Set when the proof of the key is asked for something else than a login (the
	 * approver of a break-glass approval): DONE gets the verdict instead of the PAM
	 * module getting a token; DONE_DATA is malloc()ed, freed here if DONE never ran. */
	AuthKeyDone done;
	void *done_data;

	/* result (written by the worker) */
	const char *reason; /* NULL: an assertion to verify is in `assert` */
	char message[256];
	char *dev_path;
	char *rp_id; /* rp id the assertion was made for */
	fido_assert_t *assert;
	bool uv_required; /* policy or credential asked for UV */
	bool up_required;
	/* An SSH proof (on_remote = "ssh-key", ssh-proof.c): no key here, no device. */
	bool ssh;
} AuthData;

static void auth_data_free(AuthData *a)
{
	if (!a)
		return;
	free(a->user);
	free(a->service);
	free(a->tty);
	free(a->rhost);
	decision_unref(a->decision);
	free(a->only_device);
	strv_free(a->paths);
	free(a->known_path);
	free(a->known_id);
	erase_string_and_free(a->pin);
	if (a->pin_fd >= 0)
		close(a->pin_fd);
	credential_set_free(a->set);
	directory_login_free(a->dir);
	free(a->dev_path);
	free(a->rp_id);
	fido_assert_free(&a->assert);
	free(a->done_data);
	free(a);
}

/* --- worker thread ------------------------------------------------------------------ */

static void auth_fail(AuthData *a, const char *reason, const char *fmt, ...) _printf_(3, 4);
static void auth_fail(AuthData *a, const char *reason, const char *fmt, ...)
{
	va_list ap;

	a->reason = reason;
	va_start(ap, fmt);
	vsnprintf(a->message, sizeof(a->message), fmt, ap);
	va_end(ap);
}

/* Adds the user's credentials for RP to the allow list; returns how many. */
static int allow_creds(const AuthData *a, fido_assert_t *as, const char *rp)
{
	int n = 0;

	for (size_t i = 0; i < a->set->n; i++) {
		const Credential *c = &a->set->items[i];
		_cleanup_free_ uint8_t *id = NULL;
		size_t idlen;

		if (!streq(c->rp_id, rp) || streq(c->id, CREDS_DISCOVERABLE_ID))
			continue;
		if (base64_decode(c->id, &id, &idlen) < 0)
			continue;
		if (fido_assert_allow_cred(as, id, idlen) == FIDO_OK)
			n++;
	}
	return n;
}

static bool rp_has_discoverable(const AuthData *a, const char *rp)
{
	for (size_t i = 0; i < a->set->n; i++)
		if (streq(a->set->items[i].rp_id, rp) &&
		        streq(a->set->items[i].id, CREDS_DISCOVERABLE_ID))
			return true;
	return false;
}

static int set_random_cdh(fido_assert_t *as)
{
	uint8_t cdh[32];
	int r;

	if (getrandom(cdh, sizeof(cdh), 0) != (ssize_t)sizeof(cdh))
		return FIDO_ERR_INTERNAL;
	r = fido_assert_set_clientdata_hash(as, cdh, sizeof(cdh));
	explicit_bzero(cdh, sizeof(cdh));
	return r;
}

/* Which of the probe's assertions is the user's: a stored id, or (discovery of imported
 * resident credentials) one whose signature verifies with a stored "*" public key. Other
 * users' resident credentials on the same key are skipped. */
static bool probe_pick(const AuthData *a, const fido_assert_t *as, const char *rp, char **ret_id)
{
	for (size_t i = 0; i < fido_assert_count(as); i++) {
		_cleanup_free_ char *id = NULL;

		if (fido_assert_id_len(as, i) == 0 || base64_encode(fido_assert_id_ptr(as, i),
		                                              fido_assert_id_len(as, i), &id) < 0)
			continue;
		if (creds_find_id(a->set, id)) {
			*ret_id = TAKE_PTR(id);
			return true;
		}
		for (size_t k = 0; k < a->set->n; k++) {
			const Credential *c = &a->set->items[k];
			_cleanup_free_ uint8_t *pk = NULL;
			size_t pklen;

			if (!streq(c->id, CREDS_DISCOVERABLE_ID) || !streq(c->rp_id, rp) ||
			        base64_decode(c->public_key, &pk, &pklen) < 0)
				continue;
			if (fido_assert_verify_raw(as, i, c->cose_alg, pk, pklen) == FIDO_OK) {
				*ret_id = TAKE_PTR(id);
				return true;
			}
		}
	}
	return false;
}

/* The ids of the user's credentials for RP, in the file's order (an imported
 * discoverable credential has none). */
static int rp_cred_ids(const AuthData *a, const char *rp, FidoCredIds *ret)
{
	for (size_t i = 0; i < a->set->n; i++) {
		const Credential *c = &a->set->items[i];
		_cleanup_free_ uint8_t *id = NULL;
		size_t idlen;
		int r;

		if (!streq(c->rp_id, rp) || streq(c->id, CREDS_DISCOVERABLE_ID))
			continue;
		if (base64_decode(c->id, &id, &idlen) < 0)
			continue;
		r = fido_cred_ids_add(ret, id, idlen);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Silent probe: does DEV hold one of the user's credentials for RP? Never asks for a
 * touch (up=false) or PIN; sends the allow list in batches the key takes (LIM). Returns 1
 * (*ret_id: the base64 id it answered with, if any), 0 when the key holds none, or -errno
 * when the key refused the search (*ret_status: its libfido2 status). RET_ASSERT (if not
 * NULL): the key's one assertion, a signature over our random challenge. */
static int probe_device(const AuthData *a, fido_dev_t *dev, const char *path,
        const FidoListLimits *lim, const char *rp, char **ret_id, int *ret_status,
        fido_assert_t **ret_assert)
{
	_cleanup_(fido_cred_ids_done) FidoCredIds ids = {};
	fido_assert_t *as = NULL;
	int status = FIDO_ERR_INTERNAL, r;

	*ret_id = NULL;
	r = rp_cred_ids(a, rp, &ids);
	if (r < 0) {
		*ret_status = FIDO_ERR_INTERNAL;
		return r;
	}
	if (ids.n == 0 && !rp_has_discoverable(a, rp))
		return 0;
	if (ids.n == 0 && !fido_dev_is_fido2(dev))
		return 0; /* U2F keys have no discoverable credentials */
	(void)fido_dev_set_timeout(dev, AUTH_PROBE_TIMEOUT_MS);
	r = fido_probe_batches(dev, rp, &ids, lim, &as, &status);
	log_debug("probe %s for rp %s (%zu ids): %s", path, rp, ids.n, fido_strerr(status));
	if (r > 0 && as)
		r = probe_pick(a, as, rp, ret_id) ? 1 : 0;
	if (r > 0 && as && ret_assert && fido_assert_count(as) == 1)
		*ret_assert = TAKE_PTR(as);
	fido_assert_free(&as);
	if (r < 0)
		*ret_status = status;
	return r;
}

/* Asks DEV for the real assertion. Returns the key's answer (libfido2 status), FIDO_OK
 * also when the key was not asked (a->reason says why). */
static int auth_assert(
        DeviceOp *op, AuthData *a, fido_dev_t *dev, const char *rp, const char *matched_id)
{
	const char *pin = NULL;
	const Credential *c = matched_id ? creds_find_id(a->set, matched_id) : NULL;
	bool has_pin = fido_dev_has_pin(dev), has_uv = fido_dev_has_uv(dev);
	bool use_pin = false, builtin_uv = false;
	fido_assert_t *as = NULL;
	uint64_t t0;
	int r, status;

	a->uv_required = a->decision->user_verification == POLICY_UV_REQUIRED;
	a->up_required = a->decision->user_presence;
	if (a->silent_proof) {
		/* Proof that the key of the last authentication is still here: a fresh
		 * signature over a random challenge, no touch (the method never asks for it
		 * when user verification is required). */
		a->uv_required = a->up_required = false;
		c = NULL;
	} else if (c) {
		a->uv_required = a->uv_required || c->uv;
		a->up_required = a->up_required || c->up;
	} else
		/* The key answered with an id we do not store (an imported discoverable
		 * credential) or none (U2F): the strictest of the user's credentials for RP. */
		for (size_t i = 0; i < a->set->n; i++)
			if (streq(a->set->items[i].rp_id, rp)) {
				a->uv_required = a->uv_required || a->set->items[i].uv;
				a->up_required = a->up_required || a->set->items[i].up;
			}
	if (a->pin_fd >= 0 && !a->silent_proof && !a->pin_read) {
		a->pin_read = true;
		r = fido_pin_read_fd(a->pin_fd, &a->pin);
		if (r < 0) {
			auth_fail(a, "error", "The PIN could not be read from the PAM module (%s).",
			        strerror(-r));
			return FIDO_OK;
		}
	}
	if (!a->silent_proof)
		pin = a->pin;
	if (a->uv_required) {
		if (pin && has_pin)
			use_pin = true;
		else if (has_uv)
			builtin_uv = true;
		else if (!has_pin) {
			auth_fail(a, "no-pin-set",
			        "This key has no PIN set but the policy requires one: set a PIN "
			        "with fido2-token -S.");
			return FIDO_OK;
		} else {
			auth_fail(a, "pin-required",
			        "The policy requires your security key's PIN; none was given.");
			return FIDO_OK;
		}
	} else if (a->decision->user_verification == POLICY_UV_PREFERRED && pin && has_pin)
		use_pin = true;

	as = fido_assert_new();
	if (!as) {
		auth_fail(a, "error", "Out of memory.");
		return FIDO_OK;
	}
	if (matched_id) {
		/* Exactly the credential the silent probe found on this key. */
		_cleanup_free_ uint8_t *id = NULL;
		size_t idlen;

		r = base64_decode(matched_id, &id, &idlen) < 0
		            ? FIDO_ERR_INTERNAL
		            : fido_assert_allow_cred(as, id, idlen);
	} else {
		(void)allow_creds(a, as, rp);
		r = FIDO_OK;
	}
	if (r == FIDO_OK)
		r = fido_assert_set_rp(as, rp);
	if (r == FIDO_OK)
		r = set_random_cdh(as);
	if (r == FIDO_OK)
		r = fido_assert_set_up(as, a->up_required ? FIDO_OPT_TRUE : FIDO_OPT_FALSE);
	if (r == FIDO_OK && builtin_uv)
		r = fido_assert_set_uv(as, FIDO_OPT_TRUE);
	if (r != FIDO_OK) {
		auth_fail(a, "error", "Could not prepare the assertion: %s.", fido_strerr(r));
		fido_assert_free(&as);
		return FIDO_OK;
	}
	(void)fido_dev_set_timeout(dev, (int)op->timeout_ms);
	t0 = now_monotonic_ms();
	r = fido_dev_get_assert(dev, as, use_pin ? pin : NULL);
	device_op_stamp(op); /* still holding the key: the order its counter moved in */
	log_debug("assertion on %s: %s after %llu ms", strna(a->dev_path), fido_strerr(r),
	        (unsigned long long)(now_monotonic_ms() - t0));
	if (r == FIDO_OK) {
		a->assert = as;
		a->rp_id = strdup(rp);
		if (!a->rp_id)
			auth_fail(a, "error", "Out of memory.");
		return FIDO_OK;
	}
	status = r;
	fido_assert_free(&as);
	if (device_op_cancelled(op) || r == FIDO_ERR_KEEPALIVE_CANCEL) {
		auth_fail(a, "cancelled", "The request was cancelled.");
		return status;
	}
	if (r == FIDO_ERR_PIN_INVALID || r == FIDO_ERR_PIN_AUTH_INVALID) {
		int retries = -1;
		if (fido_dev_get_retry_count(dev, &retries) == FIDO_OK && retries >= 0)
			auth_fail(a, "wrong-pin", "Wrong PIN for your security key; %d %s left.",
			        retries, retries == 1 ? "try" : "tries");
		else
			auth_fail(a, "wrong-pin", "Wrong PIN for your security key.");
		return status;
	}
	if ((r == FIDO_ERR_RX || r == FIDO_ERR_TX || r == FIDO_ERR_USER_ACTION_TIMEOUT ||
	            r == FIDO_ERR_ACTION_TIMEOUT) &&
	        now_monotonic_ms() - t0 + 100 >= op->timeout_ms) {
		auth_fail(a, a->up_required ? "no-touch" : "timeout",
		        "Your security key was not touched within %u seconds.",
		        (unsigned)((op->timeout_ms + 999) / 1000));
		return status;
	}
	auth_fail(a, fido_error_reason(r), "%s", fido_error_message(r));
	return status;
}

/* The silent proof of a cached elevation (no touch, no PIN, only the key of the last
 * authentication) is exactly what the probe's answer is: a fresh signature of that key
 * over our random challenge. It is verified like any assertion; a second, identical
 * request to the key would add nothing. */
static void auth_take_probe(DeviceOp *op, AuthData *a, const char *rp, fido_assert_t **as)
{
	device_op_stamp(op); /* still holding the key: the order its counter moved in */
	a->uv_required = a->up_required = false;
	a->rp_id = strdup(rp);
	if (!a->rp_id) {
		auth_fail(a, "error", "Out of memory.");
		return;
	}
	a->assert = TAKE_PTR(*as);
}

/* The search over the plugged keys: one probe per key, in parallel when there are several
 * (a thread each), so that each extra key costs its own round trips only, not the sum.
 * The first probe that finds one of the user's credentials wins: it asks its key for the
 * real assertion; the others are cancelled and close their keys. */
typedef struct AuthSearch AuthSearch;

typedef struct AuthProbe {
	AuthSearch *search;
	const char *path;
	pthread_t thread;
	bool started;
	/* under search->lock */
	fido_dev_t *dev; /* open (a winner may cancel it) */
	bool unopened;
	int refused_status; /* FIDO_OK: not refused */
} AuthProbe;

struct AuthSearch {
	DeviceOp *op;
	AuthData *a;
	pthread_mutex_t lock;
	AuthProbe *probes;
	size_t n;
	AuthProbe *winner;
};

static bool auth_search_stopped(AuthSearch *s)
{
	bool stop;

	pthread_mutex_lock(&s->lock);
	stop = s->winner != NULL;
	pthread_mutex_unlock(&s->lock);
	return stop || device_op_cancelled(s->op);
}

/* Claims the search for P; the other keys' probes are cancelled. False: another won. */
static bool auth_search_claim(AuthSearch *s, AuthProbe *p)
{
	bool won = false;

	pthread_mutex_lock(&s->lock);
	if (!s->winner) {
		s->winner = p;
		won = true;
		for (size_t i = 0; i < s->n; i++)
			if (&s->probes[i] != p && s->probes[i].dev)
				(void)fido_dev_cancel(s->probes[i].dev);
	}
	pthread_mutex_unlock(&s->lock);
	return won;
}

/* Opens PATH for OP (a cancel reaches it); NULL if it cannot be. */
static fido_dev_t *auth_open_key(DeviceOp *op, const char *path)
{
	fido_dev_t *dev = fido_dev_new();
	int r;

	if (!dev)
		return NULL;
	/* Bounded from the start: fido_dev_open() already talks to the key. */
	(void)fido_dev_set_timeout(dev, AUTH_PROBE_TIMEOUT_MS);
	r = fido_dev_open(dev, path);
	if (r == FIDO_OK && device_op_add_active(op, dev) < 0) {
		(void)fido_dev_close(dev);
		r = FIDO_ERR_INTERNAL;
	}
	if (r != FIDO_OK) {
		log_debug("Cannot open %s: %s", path, fido_strerr(r));
		fido_dev_free(&dev);
	}
	return dev;
}

static void auth_close_key(DeviceOp *op, fido_dev_t **dev)
{
	device_op_remove_active(op, *dev);
	(void)fido_dev_close(*dev);
	fido_dev_free(dev);
}

static void auth_probe_key(AuthProbe *p)
{
	AuthSearch *s = p->search;
	DeviceOp *op = s->op;
	AuthData *a = s->a;
	FidoListLimits lim;
	fido_dev_t *dev;
	bool found = false;
	int r;

	device_op_yield_to_root(op);
	if (auth_search_stopped(s))
		return;
	dev = auth_open_key(op, p->path);
	if (!dev) {
		pthread_mutex_lock(&s->lock);
		p->unopened = true;
		pthread_mutex_unlock(&s->lock);
		return;
	}
	pthread_mutex_lock(&s->lock);
	p->dev = dev;
	if (s->winner) /* won while this key was opening */
		(void)fido_dev_cancel(dev);
	pthread_mutex_unlock(&s->lock);
	fido_list_limits(dev, &lim);
	/* Each distinct rp id of the user's credentials (imports may differ). */
	for (size_t k = 0; k < a->set->n && !found && !auth_search_stopped(s); k++) {
		const char *rp = a->set->items[k].rp_id;
		_cleanup_free_ char *id = NULL;
		fido_assert_t *probe_as = NULL;
		bool seen = false;
		int status = FIDO_OK;

		for (size_t j = 0; j < k; j++)
			if (streq(a->set->items[j].rp_id, rp))
				seen = true;
		if (seen)
			continue;
		r = probe_device(a, dev, p->path, &lim, rp, &id, &status,
		        a->silent_proof ? &probe_as : NULL);
		if (r > 0) {
			found = true;
			if (auth_search_claim(s, p)) {
				/* Only the winner writes the result. */
				a->dev_path = strdup(p->path);
				if (!a->dev_path)
					auth_fail(a, "error", "Out of memory.");
				else if (probe_as)
					auth_take_probe(op, a, rp, &probe_as);
				else
					(void)auth_assert(op, a, dev, rp, id);
			}
		} else if (r < 0) {
			log_debug("%s refused the search for rp %s: %s", p->path, rp,
			        fido_strerr(status));
			pthread_mutex_lock(&s->lock);
			p->refused_status = status;
			pthread_mutex_unlock(&s->lock);
		}
		fido_assert_free(&probe_as); /* NULL once taken */
	}
	pthread_mutex_lock(&s->lock);
	p->dev = NULL; /* nobody cancels it from now on */
	pthread_mutex_unlock(&s->lock);
	auth_close_key(op, &dev);
}

static void *auth_probe_thread(void *userdata)
{
	auth_probe_key(userdata);
	return NULL;
}

/* Whether the known key's answer STATUS (no assertion) sends the login on to the normal
 * search: not for the user's own answers (no touch in time, a refusal, a wrong or missing
 * PIN) nor a cancel, which the search would only ask again; yes for "no such credential"
 * and any other failure of that key (gone meanwhile, a protocol error). */
static bool auth_known_falls_back(DeviceOp *op, const AuthData *a, int status)
{
	if (device_op_cancelled(op))
		return false;
	/* A timeout of the touch comes back as a receive error: the reason tells. */
	if (a->reason && (streq(a->reason, "cancelled") || streq(a->reason, "no-touch") ||
	                         streq(a->reason, "timeout") || streq(a->reason, "wrong-pin")))
		return false;
	switch (status) {
	case FIDO_OK: /* not asked: the answer would be the same after the search */
	case FIDO_ERR_KEEPALIVE_CANCEL:
	case FIDO_ERR_ACTION_TIMEOUT:
	case FIDO_ERR_USER_ACTION_TIMEOUT:
	case FIDO_ERR_OPERATION_DENIED:
	case FIDO_ERR_PIN_INVALID:
	case FIDO_ERR_PIN_AUTH_INVALID:
	case FIDO_ERR_PIN_BLOCKED:
	case FIDO_ERR_PIN_AUTH_BLOCKED:
	case FIDO_ERR_PIN_REQUIRED:
	case FIDO_ERR_PIN_NOT_SET:
	case FIDO_ERR_PIN_POLICY_VIOLATION:
	case FIDO_ERR_UV_BLOCKED:
	case FIDO_ERR_UV_INVALID:
		return false;
	default:
		return true;
	}
}

/* The known-key fast path: the key that made this user's last verified assertion with
 * credential known_id (the same plugged-set entry: not removed, replugged or swapped since)
 * is asked for the real assertion directly, with the allow list {known_id}, and the silent
 * probe is skipped. This changes only WHICH key is asked first, never what is accepted: the
 * answer is verified in the loop exactly like one found by the search (signature, UP/UV
 * per policy and credential, counter, rp id, user, authenticator rules), and the device
 * binding uses that key. Returns true when the login has its answer (an assertion to
 * verify, or a final refusal); false: go on with the normal search (the direct request
 * failed in a way the search may do better), within the same op and deadline. */
static bool auth_known_key(DeviceOp *op, AuthData *a)
{
	const Credential *c = creds_find_id(a->set, a->known_id);
	fido_dev_t *dev;
	int r;

	if (!c || device_op_cancelled(op))
		return false;
	device_op_yield_to_root(op);
	log_debug("asking the known key directly: %s", a->known_path);
	dev = auth_open_key(op, a->known_path);
	if (!dev)
		return false;
	r = FIDO_OK;
	a->dev_path = strdup(a->known_path);
	if (!a->dev_path)
		auth_fail(a, "error", "Out of memory.");
	else
		r = auth_assert(op, a, dev, c->rp_id, c->id);
	auth_close_key(op, &dev);
	if (a->assert || !a->dev_path || !auth_known_falls_back(op, a, r))
		return true;
	log_debug("the known key %s did not answer (%s): searching every plugged key",
	        a->known_path, fido_strerr(r));
	a->reason = NULL;
	a->message[0] = '\0';
	free(a->dev_path);
	a->dev_path = NULL;
	free(a->rp_id);
	a->rp_id = NULL;
	return false;
}

static void auth_work(DeviceOp *op)
{
	AuthData *a = op->data;
	AuthSearch s = {.op = op, .a = a, .lock = PTHREAD_MUTEX_INITIALIZER};
	AuthProbe probes[AUTH_MAX_DEVICES] = {};
	const char *refused_path = NULL;
	int refused_status = FIDO_OK; /* a key that refused the search (not "none held") */
	unsigned n_unopened = 0;

	if (a->dir) {
		int r = directory_login_run(a->dir, &a->set);

		if (r < 0) {
			auth_fail(a, a->dir->refused ? "directory-unavailable" : "error", "%s",
			        a->dir->refused ? a->dir->message
			                        : "The directory credentials cannot be used.");
			goto out;
		}
		if (a->set->n == 0) {
			auth_fail(a, "not-enrolled",
			        "No security key is registered for %s; ask an administrator to "
			        "enroll one.",
			        a->user);
			goto out;
		}
	}
	/* The plugged keys the loop handed over; without a kept set, libfido2 lists them. */
	if (!a->paths && plugged_enumerate(AUTH_MAX_DEVICES, &a->paths) < 0) {
		auth_fail(a, "error", "Out of memory.");
		goto out;
	}
	if (a->known_path && !a->only_device && auth_known_key(op, a))
		goto out;
	for (char **p = a->paths; *p && s.n < AUTH_MAX_DEVICES; p++)
		if (!a->only_device || streq(*p, a->only_device))
			probes[s.n++] = (AuthProbe){.search = &s, .path = *p};
	s.probes = probes;
	if (s.n == 0) {
		if (a->silent_proof)
			auth_fail(a, "no-key",
			        "The security key of your last authentication is no longer plugged "
			        "in.");
		else
			auth_fail(a, "no-key",
			        "No security key is plugged in: plug in your registered key and "
			        "try "
			        "again.");
		goto out;
	}
	if (s.n == 1)
		auth_probe_key(&probes[0]);
	else {
		for (size_t i = 0; i < s.n; i++)
			probes[i].started = pthread_create(&probes[i].thread, NULL,
			                            auth_probe_thread, &probes[i]) == 0;
		/* A thread that could not start: its key is searched here, after the others. */
		for (size_t i = 0; i < s.n; i++)
			if (!probes[i].started)
				auth_probe_key(&probes[i]);
		for (size_t i = 0; i < s.n; i++)
			if (probes[i].started)
				(void)pthread_join(probes[i].thread, NULL);
	}
	for (size_t i = 0; i < s.n; i++) {
		if (probes[i].unopened)
			n_unopened++;
		if (probes[i].refused_status != FIDO_OK) {
			refused_status = probes[i].refused_status;
			refused_path = probes[i].path;
		}
	}
	if (device_op_cancelled(op) && !a->reason && !a->assert)
		auth_fail(a, "cancelled", "The request was cancelled.");
	else if (!a->reason && !a->assert) {
		free(a->dev_path);
		a->dev_path = NULL;
		if (a->silent_proof)
			auth_fail(a, "no-key",
			        "The security key of your last authentication is no longer "
			        "plugged in.");
		else if (refused_status != FIDO_OK)
			/* Not "not registered": the key was not (fully) asked. */
			auth_fail(a, fido_error_reason(refused_status),
			        "The security key at %s could not be searched for the credentials "
			        "of %s: %s",
			        strna(refused_path), a->user, fido_error_message(refused_status));
		else if (n_unopened > 0)
			auth_fail(a, "no-key",
			        "%u security key(s) could not be used (busy with another request?) "
			        "and no other "
			        "holds a key registered for %s; try again.",
			        n_unopened, a->user);
		else
			auth_fail(a, "no-key",
			        "None of the plugged-in security keys is registered for %s: plug "
			        "in your registered key.",
			        a->user);
	}
out:
	if (a->dir && !a->reason && a->assert)
		directory_login_counter(a->dir, a->set, a->assert);
	pthread_mutex_destroy(&s.lock);
	if (a->pin_fd >= 0) {
		close(a->pin_fd);
		a->pin_fd = -1;
	}
}

/* --- back in the loop --------------------------------------------------------------- */

typedef struct AuthOutcome {
	const char *reason;
	char message[256];
	const Credential *cred;
	char *cred_id; /* base64 id the key answered with */
	char *sysfs;
	char counter_detail[32]; /* "sign-counter=N" when auth_verify() stored it */
	/* An SSH proof: its detail ("method=ssh-login key=SHA256:..."), the caller's logind
	 * session, and whether the agent signed (the token's binding then has a lifetime). */
	const char *ssh_detail;
	const char *session;
	bool ssh_agent;
} AuthOutcome;

/* --- the answer, once the record is durable (group commit) ------------------------- */

/* What an Authenticate call answers, held until the audit commit that covers its record
 * returned: nothing is granted (nor refused) before the trail holds it. */
typedef struct AuthReply {
	Manager *m;
	sd_bus_message *request;
	bool granted, pin_prompt;
	char *token; /* granted: taken back if the record fails */
	char *reason, *message, *label, *device;
	/* the record again, for the journal and spool if the trail fails it */
	Decision *decision;
	AuditEvent event;
	char *user, *service, *tty, *rhost;
	uid_t uid;
} AuthReply;

static void auth_reply_free(AuthReply *p)
{
	if (!p)
		return;
	sd_bus_message_unref(p->request);
	free(p->token);
	free(p->reason);
	free(p->message);
	free(p->label);
	free(p->device);
	decision_unref(p->decision);
	free(p->user);
	free(p->service);
	free(p->tty);
	free(p->rhost);
	free(p);
}

/* Counts, logs and answers one Authenticate call: the one place its answer is made, in
 * line or once its record is durable. REQUEST NULL: the call was answered already. A
 * refusal carries no token, label or device. */
static void auth_answer(Manager *m, sd_bus_message *request, const char *user, const char *service,
        bool granted, bool pin_prompt, const char *reason, const char *message, const char *token,
        const char *label, const char *device)
{
	int r;

	if (granted)
		m->n_auth_ok++;
	else if (!pin_prompt)
		m->n_auth_failed++;
	log_info("Authenticate %s/%s: %s (%s)%s%s", user, service, granted ? "granted" : "denied",
	        reason, granted ? "" : ": ", granted ? "" : strempty(message));
	if (!request)
		return;
	r = sd_bus_reply_method_return(request, "bsssss", granted, reason,
	        granted ? "" : strempty(message), granted ? strempty(token) : "",
	        granted ? strempty(label) : "", granted ? strempty(device) : "");
	if (r < 0)
		log_warning_errno(
		        r, "Cannot reply to %s: %m", strna(sd_bus_message_get_sender(request)));
}

/* The commit of the login's record returned. A failure refuses a grant (audit_failure =
 * deny), and the refusal goes to the journal and the spool instead of the trail. */
static void on_auth_record_durable(int error, void *userdata)
{
	AuthReply *p = userdata;
	Manager *m = p->m;

	if (error < 0) {
		AuditRecord rec = AUDIT_RECORD_INIT;

		if (p->granted && manager_audit_failure_denies(m)) {
			auth_token_free(manager_token_take(m, p->token));
			p->granted = false;
			free(p->reason);
			free(p->message);
			p->reason = strdup("audit-unavailable");
			p->message = strdup("The keyward audit trail cannot be written, so logins "
			                    "that need it are refused; tell an administrator.");
		}
		rec.event = p->event;
		rec.result = p->granted ? AUDIT_RESULT_SUCCESS : AUDIT_RESULT_FAILURE;
		rec.reason = p->reason;
		rec.message = p->message;
		rec.user = p->user;
		rec.uid = p->uid;
		rec.service = p->service;
		rec.tty = p->tty;
		rec.rhost = p->rhost;
		rec.device = p->device;
		if (p->decision)
			audit_record_set_decision(&rec, p->decision);
		manager_audit_outage(m, &rec);
	}
	auth_answer(m, p->request, p->user, p->service, p->granted, p->pin_prompt, p->reason,
	        p->message, p->token, p->label, p->device);
	auth_reply_free(p);
}

/* Records REC and answers with O's reason and message once it is durable: > 0. 0: not
 * tried (no *REPLY, or out of memory): the caller records in line and answers. < 0: the
 * trail did not take it (logged, outage applied): the caller answers. *REPLY is taken. */
static int auth_reply_defer(
        Manager *m, AuthReply **reply, const AuditRecord *rec, const AuthOutcome *o)
{
	AuthReply *p = TAKE_PTR(*reply);
	int r;

	if (!p)
		return 0;
	p->reason = strdup(o->reason);
	p->message = strdup(o->message);
	if (!p->reason || !p->message) {
		auth_reply_free(p);
		return 0;
	}
	r = manager_audit_async(m, rec, on_auth_record_durable, p);
	if (r < 0) {
		auth_reply_free(p);
		return r;
	}
	return 1;
}

static AuthReply *auth_reply_new(Manager *m, sd_bus_message *request, const AuthData *a)
{
	AuthReply *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->m = m;
	p->request = sd_bus_message_ref(request);
	p->decision = a->decision ? decision_ref(a->decision) : NULL;
	p->event = a->account ? AUDIT_EVENT_ACCOUNT : AUDIT_EVENT_AUTH;
	p->uid = a->uid;
	p->user = strdup(strempty(a->user));
	p->service = strdup(strempty(a->service));
	p->tty = a->tty ? strdup(a->tty) : NULL;
	p->rhost = a->rhost ? strdup(a->rhost) : NULL;
	if (!p->user || !p->service || (a->tty && !p->tty) || (a->rhost && !p->rhost)) {
		auth_reply_free(p);
		return NULL;
	}
	return p;
}

/* A `pin-required` answer to a call that did not ask the PIN: the module's cue to ask it. */
static bool auth_is_pin_prompt(const AuthData *a, const char *reason)
{
	return !a->pin_asked && !a->silent_proof && streq(reason, "pin-required");
}

/* DEVICE: the key's sysfs path or hidraw node for the record (read by the caller: in the
 * abort path the worker may still be writing AuthData's result fields). REQUEST: the call
 * to answer, NULL when it was answered already. */
static void answer_and_audit(Manager *m, sd_bus_message *request, AuthData *a, AuthOutcome *o,
        bool granted, const char *device)
{
	AuditRecord rec = AUDIT_RECORD_INIT;
	char aaguid[FIDO_AAGUID_STRING_MAX] = "", detail[sizeof(o->counter_detail) + 192];
	const AuthToken *token = NULL;
	AuthReply *reply = NULL;
	int r;

	rec.event = a->account ? AUDIT_EVENT_ACCOUNT : AUDIT_EVENT_AUTH;
	rec.user = a->user;
	rec.uid = a->uid;
	rec.service = a->service;
	rec.tty = a->tty;
	rec.rhost = a->rhost;
	audit_record_set_decision(&rec, a->decision);
	rec.cred_label = o->cred ? o->cred->label : NULL;
	rec.cred_id = o->cred_id ? o->cred_id : (o->cred ? o->cred->id : NULL);
	if (o->cred && o->cred->has_aaguid) {
		fido_aaguid_to_string(o->cred->aaguid, aaguid);
		rec.aaguid = aaguid;
	}
	rec.device = device;
	rec.session = o->session && *o->session ? o->session : NULL;
	if (o->ssh_detail) {
		/* the counter first: the recovery at start reads "sign-counter=N " */
		snprintf(detail, sizeof(detail), "%s%s%s", o->counter_detail,
		        o->counter_detail[0] ? " " : "", o->ssh_detail);
		o->ssh_detail = detail;
	}
	if (request)
		reply = auth_reply_new(m, request, a);

	if (granted) {
		AuthToken tmpl = {
		        .user = a->user,
		        .uid = a->uid,
		        .service = a->service,
		        .tty = a->tty,
		        .cred_id = (char *)rec.cred_id,
		        .cred_label = (char *)rec.cred_label,
		        .hidraw_path = a->dev_path,
		        .sysfs_path = o->sysfs,
		        .rule = a->decision->rule,
		        .decision = a->decision,
		        .removal = a->decision->removal,
		        .grace_ms = a->decision->grace_ms,
		        .lock_verify_ms = a->decision->lock_verify_ms,
		        .on_lock_failure = a->decision->on_lock_failure,
		        .caller_pid = a->decision->caller_pid,
		        .caller_start = a->decision->caller_start,
		        .ssh_agent = o->ssh_agent,
		        .lifetime_s = o->ssh_agent ? a->decision->remote_lifetime_s : 0,
		};

		/* A decision serves one successful authentication. */
		a->decision->spent = true;
		r = manager_token_add(m, &tmpl, &token);
		if (r >= 0 && !a->silent_proof && !a->ssh)
			r = manager_grant_set(m, a->uid, rec.cred_id, a->dev_path, o->sysfs);
		if (r < 0) {
			if (token)
				auth_token_free(manager_token_take(m, token->token));
			token = NULL;
			granted = false;
			o->reason = "error";
			snprintf(o->message, sizeof(o->message), "Internal error (%s).",
			        strerror(-r));
		}
	}
	if (granted) {
		rec.result = AUDIT_RESULT_SUCCESS;
		rec.reason = "ok";
		rec.message = a->silent_proof
		                      ? "Cached elevation allowed: the key of the last "
		                        "authentication is still plugged in (silent assertion)."
		              : o->ssh_agent ? "Approved by a signature of the registered SSH key "
		                               "through the forwarded SSH agent."
		              : a->ssh ? "Remote login with the registered security-key SSH key."
		                       : "Authenticated with a security key.";
		rec.detail = a->silent_proof        ? "cached-elevation same-key"
		             : o->ssh_detail        ? o->ssh_detail
		             : o->counter_detail[0] ? o->counter_detail
		                                    : NULL;
		if (reply) {
			reply->granted = true;
			reply->token = strdup(token->token);
			reply->reason = strdup("ok");
			reply->label = o->cred ? strdup(o->cred->label) : NULL;
			reply->device = rec.device ? strdup(rec.device) : NULL;
			if (!reply->token || !reply->reason || (o->cred && !reply->label) ||
			        (rec.device && !reply->device))
				reply = (auth_reply_free(reply), NULL);
		}
		/* The answer waits for the commit (on_auth_record_durable()); without a reply
		 * object (out of memory, or already answered) the record is written in line. */
		r = reply ? manager_audit_async(m, &rec, on_auth_record_durable, reply)
		          : manager_audit(m, &rec);
		if (r >= 0 && reply)
			return;
		if (reply) {
			reply->granted = false;
			free(reply->token);
			reply->token = NULL;
		}
		if (r < 0 && manager_audit_failure_denies(m)) {
			AuthToken *t = manager_token_take(m, token->token);
			auth_token_free(t);
			token = NULL;
			granted = false;
			o->reason = "audit-unavailable";
			snprintf(o->message, sizeof(o->message), "%s",
			        r == -ENOSPC
			                ? "The disk holding the keyward audit trail is full, so "
			                  "logins that need it are refused; tell an administrator."
			                : "The keyward audit trail cannot be written, so logins "
			                  "that need it are refused; tell an administrator.");
		}
	}
	if (!granted && auth_is_pin_prompt(a, o->reason)) {
		/* Not a failure: the module asks the PIN and tries again; that try is the
		 * login's outcome. Not counted for lockout either (auth_finish). */
		rec.event = AUDIT_EVENT_PIN_PROMPT;
		rec.result = AUDIT_RESULT_INFO;
		rec.reason = o->reason;
		rec.message = "The security key needs its PIN; the PIN is asked and the "
		              "authentication tried again.";
		if (reply)
			reply->pin_prompt = true;
		r = auth_reply_defer(m, &reply, &rec, o);
		if (r > 0)
			return;
		if (r == 0)
			(void)manager_audit(m, &rec);
	} else if (!granted) {
		rec.result = AUDIT_RESULT_FAILURE;
		rec.reason = o->reason;
		rec.message = o->message;
		rec.detail = o->ssh_detail          ? o->ssh_detail
		             : o->counter_detail[0] ? o->counter_detail
		                                    : NULL;
		if (!streq(o->reason, "audit-unavailable")) {
			/* A refusal is answered once it is durable too (or, failed, journaled). */
			r = auth_reply_defer(m, &reply, &rec, o);
			if (r > 0)
				return;
			if (r == 0)
				(void)manager_audit(m, &rec);
		} else
			/* refused because the trail failed: the journal and the spool have it */
			manager_audit_outage(m, &rec);
	}
	auth_reply_free(reply);
	auth_answer(m, request, a->user, a->service, granted, rec.event == AUDIT_EVENT_PIN_PROMPT,
	        o->reason, o->message, token ? token->token : NULL, o->cred ? o->cred->label : NULL,
	        rec.device);
}

static void reply_and_audit(DeviceOp *op, AuthOutcome *o, bool granted, const char *device)
{
	answer_and_audit(
	        op->manager, op->replied ? NULL : op->request, op->data, o, granted, device);
}

/* A proof of the key for someone else than the PAM module (AuthData.done): hands the
 * verdict over; true when it did. */
static bool auth_hand_over(
        Manager *m, sd_bus_message *request, AuthData *a, const AuthOutcome *o, bool granted)
{
	void *data = TAKE_PTR(a->done_data);

	if (!a->done)
		return false;
	a->done(m, request, granted, o->reason, o->message, o->cred ? o->cred->label : NULL, data);
	return true;
}

static bool reason_counts_for_lockout(const char *reason)
{
	return streq(reason, "wrong-pin") || streq(reason, "bad-signature") ||
	       streq(reason, "clone") || streq(reason, "uv-missing");
}

/* Lockout bookkeeping of the login's outcome, then its record and answer. */
static void finish(Manager *m, sd_bus_message *request, AuthData *a, AuthOutcome *o, bool granted,
        const char *device)
{
	const char *state_dir = policy_settings(m->policy)->state_dir;
	bool locked = false;
	int r;

	if (!granted && reason_counts_for_lockout(o->reason)) {
		r = lockout_record_failure(state_dir, a->user, a->decision->lockout_max_failures,
		        a->decision->lockout_window_s, a->decision->lockout_unlock_after_s,
		        &locked);
		if (r < 0)
			log_error_errno(r,
			        "Cannot record a failed authentication of %s in %s/lockout: %m",
			        a->user, state_dir);
		if (locked) {
			AuditRecord rec = AUDIT_RECORD_INIT;
			rec.event = AUDIT_EVENT_LOCKOUT;
			rec.reason = "lockout";
			rec.user = a->user;
			rec.uid = a->uid;
			rec.service = a->service;
			audit_record_set_decision(&rec, a->decision);
			rec.message = "Too many failed authentications: locked out.";
			rec.result = AUDIT_RESULT_INFO;
			(void)manager_audit(m, &rec);
			log_warning("%s is locked out for %u s after %u failures.", a->user,
			        a->decision->lockout_unlock_after_s,
			        a->decision->lockout_max_failures);
		}
	} else if (granted && a->decision->lockout_max_failures > 0)
		(void)lockout_reset(state_dir, a->user);
	if (auth_hand_over(m, request, a, o, granted))
		return;
	answer_and_audit(m, request, a, o, granted, device);
}

static void auth_finish(DeviceOp *op, AuthOutcome *o, bool granted)
{
	AuthData *a = op->data;

	finish(op->manager, op->replied ? NULL : op->request, a, o, granted,
	        o->sysfs ? o->sysfs : a->dev_path);
}

static bool auth_counter_check(Manager *m, AuthData *a, const Credential *c, const char *cid,
        uint32_t count, AuthOutcome *o);

/* Verifies the assertion the worker got. Returns true when everything the policy asks
 * for holds; else fills o->reason/message. */
static bool auth_verify(DeviceOp *op, AuthOutcome *o)
{
	Manager *m = op->manager;
	AuthData *a = op->data;
	fido_assert_t *as = a->assert;
	const Credential *c = NULL;
	_cleanup_free_ uint8_t *pk = NULL;
	uint8_t flags;
	uint32_t count;
	size_t pklen;
	int r;

	if (fido_assert_count(as) != 1) {
		o->reason = "error";
		snprintf(o->message, sizeof(o->message),
		        "The security key returned %zu assertions; expected one.",
		        fido_assert_count(as));
		return false;
	}
	if (fido_assert_id_len(as, 0) > 0 && base64_encode(fido_assert_id_ptr(as, 0),
	                                             fido_assert_id_len(as, 0), &o->cred_id) < 0)
		return false;
	/* Owner: the credential the key used must be one of this user's, for this rp. */
	if (o->cred_id)
		c = creds_find_id(a->set, o->cred_id);
	if (c && !streq(c->rp_id, a->rp_id))
		c = NULL;
	if (!c) {
		/* Imported discoverable credentials have no stored id: the public key decides. */
		for (size_t i = 0; i < a->set->n && !c; i++) {
			const Credential *d = &a->set->items[i];
			_cleanup_free_ uint8_t *dpk = NULL;
			size_t dl;

			if (!streq(d->id, CREDS_DISCOVERABLE_ID) || !streq(d->rp_id, a->rp_id))
				continue;
			if (base64_decode(d->public_key, &dpk, &dl) < 0)
				continue;
			if (fido_assert_verify_raw(as, 0, d->cose_alg, dpk, dl) == FIDO_OK)
				c = d;
		}
	}
	if (!c) {
		o->reason = "unknown-credential";
		snprintf(o->message, sizeof(o->message),
		        "The security key answered with a credential that is not registered for "
		        "%s.",
		        a->user);
		return false;
	}
	o->cred = c;
	/* The authenticator rules of the login's decision, against what was recorded at
	 * enrolment: a policy change applies to keys enrolled before it. A credential
	 * without a known model (imported) passes an allow list only if the list is empty. */
	if ((a->decision->n_aaguid_allow > 0 || a->decision->n_aaguid_deny > 0) &&
	        (c->has_aaguid ? attestation_check_aaguid(c->aaguid,
	                                 (const uint8_t(*)[16])a->decision->aaguid_allow,
	                                 a->decision->n_aaguid_allow,
	                                 (const uint8_t(*)[16])a->decision->aaguid_deny,
	                                 a->decision->n_aaguid_deny) < 0
	                       : a->decision->n_aaguid_allow > 0)) {
		o->reason = "aaguid-refused";
		snprintf(o->message, sizeof(o->message),
		        "The policy (rule %s) no longer allows this model of security key (%s); "
		        "enroll an allowed key.",
		        a->decision->rule_name, c->label);
		return false;
	}
	if (a->decision->attestation == POLICY_ATTESTATION_VERIFIED &&
	        c->attestation != CRED_ATTESTATION_VERIFIED) {
		o->reason = "attestation-refused";
		snprintf(o->message, sizeof(o->message),
		        "The policy (rule %s) requires a key whose attestation was verified at "
		        "enrolment, and %s's was not; enroll it again.",
		        a->decision->rule_name, c->label);
		return false;
	}
	/* Every flag the policy requires (CVE-2021-31924): checked here, not assumed. */
	flags = fido_assert_flags(as, 0);
	if (a->up_required && !(flags & FIDO_FLAG_UP)) {
		o->reason = "no-touch";
		snprintf(o->message, sizeof(o->message),
		        "The security key did not confirm a touch, which the policy requires.");
		return false;
	}
	if (a->uv_required && !(flags & FIDO_FLAG_UV)) {
		o->reason = "uv-missing";
		snprintf(o->message, sizeof(o->message),
		        "The security key did not verify your PIN or fingerprint, which the policy "
		        "requires.");
		return false;
	}
	r = base64_decode(c->public_key, &pk, &pklen);
	if (r < 0) {
		o->reason = "error";
		snprintf(o->message, sizeof(o->message), "The stored public key of %s is damaged.",
		        c->label);
		return false;
	}
	/* Signature over authData||cdh, rp id hash (fido_assert_set_rp) and the UP/UV
	 * options that were requested. */
	r = fido_assert_verify_raw(as, 0, c->cose_alg, pk, pklen);
	if (r != FIDO_OK) {
		o->reason = "bad-signature";
		snprintf(o->message, sizeof(o->message),
		        "The security key's signature did not verify (%s).", fido_strerr(r));
		return false;
	}
	if (c->user_id && fido_assert_user_id_len(as, 0) > 0) {
		_cleanup_free_ uint8_t *uid = NULL;
		size_t ul;
		if (base64_decode(c->user_id, &uid, &ul) < 0 ||
		        ul != fido_assert_user_id_len(as, 0) ||
		        memcmp(uid, fido_assert_user_id_ptr(as, 0), ul) != 0) {
			o->reason = "unknown-credential";
			snprintf(o->message, sizeof(o->message),
			        "The credential on the key belongs to another user.");
			return false;
		}
	}
	/* Sign counter: a counter that did not move forward means a cloned key. */
	count = fido_assert_sigcount(as, 0);
	return auth_counter_check(m, a, c, o->cred_id ? o->cred_id : c->id, count, o);
}

/* The sign counter COUNT of credential C (id CID) against the stored one: a counter that
 * did not move forward means a cloned key (clone-alert record, refused); a new one is
 * stored, and its value rides on the login's record (o->counter_detail). */
static bool auth_counter_check(Manager *m, AuthData *a, const Credential *c, const char *cid,
        uint32_t count, AuthOutcome *o)
{
	uint32_t stored = 0;
	bool found = false;
	int r;

	{
		const char *state_dir = policy_settings(m->policy)->state_dir;

		r = creds_counter_load(state_dir, a->user, cid, &stored, &found);
		if (r < 0) {
			o->reason = "error";
			snprintf(o->message, sizeof(o->message),
			        "The sign counters in %s/counters cannot be read (%s).", state_dir,
			        strerror(-r));
			return false;
		}
		/* The highest counter any host saw (a writable directory): the same check. */
		if (a->dir && a->dir->shared_clone && (!found || a->dir->shared_value > stored)) {
			found = true;
			stored = a->dir->shared_value;
		}
		if (count == 0 && (!found || stored == 0)) {
			if (a->decision->counter != POLICY_COUNTER_ALLOW_ZERO) {
				o->reason = "clone";
				snprintf(o->message, sizeof(o->message),
				        "This security key does not count its signatures, which "
				        "the policy requires (counter = strict); it may be a "
				        "clone.");
				return false;
			}
		} else if (found && count <= stored) {
			AuditRecord rec = AUDIT_RECORD_INIT;
			char detail[96];

			snprintf(detail, sizeof(detail), "sign counter %u, last seen %u", count,
			        stored);
			rec.event = AUDIT_EVENT_CLONE_ALERT;
			rec.reason = "clone";
			rec.user = a->user;
			rec.uid = a->uid;
			rec.service = a->service;
			rec.cred_label = c->label;
			rec.cred_id = cid;
			rec.device = a->dev_path;
			audit_record_set_decision(&rec, a->decision);
			rec.detail = detail;
			rec.message =
			        "Sign counter did not increase: the key may have been cloned.";
			(void)manager_audit(m, &rec);
			log_warning(
			        "CLONE ALERT: %s credential %s: %s.", a->user, c->label, detail);
			o->reason = "clone";
			snprintf(o->message, sizeof(o->message),
			        "Your security key's signature counter went backwards, which "
			        "suggests a cloned key; access denied. Tell an administrator.");
			return false;
		}
		if (count > stored || !found) {
			/* Without its own sync: the login's record carries the value
			 * (detail sign-counter=N) and is durable before the login is answered;
			 * manager_counters_recover() takes it from there after a crash.
			 * A silent proof's record says only that (its detail is fixed), and with
			 * audit_failure = alert a login goes on without its record: then the
			 * counter is synced on its own. */
			bool lazy = !a->silent_proof && !a->done && m->audit &&
			            manager_audit_failure_denies(m);

			r = creds_counter_store_full(state_dir, a->user, cid, count, !lazy);
			if (!a->silent_proof)
				snprintf(o->counter_detail, sizeof(o->counter_detail),
				        AUDIT_SIGN_COUNTER_DETAIL "%u", count);
			if (r < 0) {
				o->reason = "error";
				snprintf(o->message, sizeof(o->message),
				        "The sign counter cannot be saved in %s/counters (%s).",
				        state_dir, strerror(-r));
				return false;
			}
		}
	}
	return true;
}

/* A fully verified assertion: its key holds that credential of the user, as long as the
 * key stays plugged (the same plugged-set entry as when the request came). The next login
 * asks it directly (auth_known_key). Not for the silent proof (its own path). */
static void auth_remember_key(Manager *m, const AuthData *a, const AuthOutcome *o)
{
	if (a->silent_proof || !o->cred || streq(o->cred->id, CREDS_DISCOVERABLE_ID))
		return;
	if (plugged_remember(m->plugged, a->dev_path, a->plugged_serial, a->user, o->cred->id) < 0)
		log_warning("Out of memory: the key of %s's login is not remembered.", a->user);
}

static void auth_complete(DeviceOp *op)
{
	AuthData *a = op->data;
	AuthOutcome o = {};
	bool ok = false;

	if (a->reason) {
		o.reason = a->reason;
		snprintf(o.message, sizeof(o.message), "%s", a->message);
	} else if (a->assert) {
		ok = auth_verify(op, &o);
		if (!ok && !o.reason) {
			o.reason = "error";
			snprintf(o.message, sizeof(o.message), "Out of memory.");
		}
	} else {
		o.reason = "error";
		snprintf(o.message, sizeof(o.message), "The key search ended without a result.");
	}
	if (a->dev_path)
		(void)manager_hidraw_to_syspath(op->manager, a->dev_path, &o.sysfs);
	if (ok) {
		o.reason = "ok";
		o.message[0] = '\0';
		auth_remember_key(op->manager, a, &o);
	} else if (streq(o.reason, "no-key") && a->decision->breakglass && !a->done &&
	           !a->account && !a->silent_proof) {
		/* None of the user's keys is here, and the rule allows break-glass on this
		 * service: the module may ask for a recovery code (breakglass.c). */
		o.reason = "breakglass-available";
		snprintf(o.message, sizeof(o.message), BREAKGLASS_OFFER_MESSAGE, a->user);
	}
	auth_finish(op, &o, ok);
	free(o.cred_id);
	free(o.sysfs);
}

static void auth_abort(DeviceOp *op, const char *reason)
{
	AuthData *a = op->data;
	AuthOutcome o = {.reason = reason};

	snprintf(o.message, sizeof(o.message), "%s",
	        streq(reason, "timeout") ? "Your security key did not answer in time."
	                                 : "The request was cancelled.");
	if (auth_hand_over(op->manager, op->replied ? NULL : op->request, a, &o, false))
		return;
	reply_and_audit(op, &o, false, NULL);
}

static void auth_done(DeviceOp *op)
{
	auth_data_free(op->data);
	op->data = NULL;
}

static const DeviceOpVTable auth_vtable = {
        .work = auth_work,
        .complete = auth_complete,
        .abort = auth_abort,
        .done = auth_done,
};

/* --- the method --------------------------------------------------------------------- */

/* A remembered credential is asked directly only while the user's file still holds it (a
 * revoked one is not). */
static bool auth_cred_registered(const char *cred_id, void *userdata)
{
	return creds_find_id(userdata, cred_id) != NULL;
}

/* Answers at once, without the key: the record goes through manager_audit_self_call(), so a
 * non-root caller asking again and again costs no fsync per call. */
static int reply_now(Manager *m, sd_bus_message *msg, const BusCaller *caller, AuditRecord *rec,
        const char *reason, const char *message, AuditResult result)
{
	rec->reason = reason;
	rec->message = message;
	rec->result = result;
	if (result != AUDIT_RESULT_SUCCESS && !streq(reason, "not-covered"))
		m->n_auth_failed++;
	if (manager_audit_self_call(m, rec, caller->uid))
		log_info("Authenticate %s/%s: %s (%s)", strna(rec->user), strna(rec->service),
		        reason, message);
	return sd_bus_reply_method_return(msg, "bsssss", false, reason, message, "", "", "");
}

typedef struct AuthOptions {
	int cached;           /* the PAM application skipped authentication (account phase) */
	int pin_asked;        /* the module asked the user for the PIN */
	const char *decision; /* id of the decision Check made for this login */
	int breakglass;       /* the pipe holds a break-glass recovery code (breakglass.c) */
	SshProofRequest ssh;  /* on_remote = "ssh-key": sshd's record or the agent's signature */
} AuthOptions;

static int auth_option(const char *key, sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	AuthOptions *o = userdata;

	if (streq(key, "cached"))
		return sd_bus_message_read(msg, "b", &o->cached);
	if (streq(key, "decision"))
		return sd_bus_message_read(msg, "s", &o->decision);
	if (streq(key, "pin-asked"))
		return sd_bus_message_read(msg, "b", &o->pin_asked);
	if (streq(key, "breakglass"))
		return sd_bus_message_read(msg, "b", &o->breakglass);
	return ssh_proof_option(key, msg, &o->ssh);
}

/* The login A is for: D's user, service, tty and rhost (copied), D itself, and what the
 * call's options say of it. -ENOMEM (A keeps what was set; auth_data_free() frees it). */
static int auth_data_set_login(AuthData *a, Decision *d, const AuthOptions *opts)
{
	a->user = strdup(d->user);
	a->service = strdup(d->service);
	a->tty = strdup(strempty(d->tty));
	a->rhost = strdup(strempty(d->rhost));
	a->decision = decision_ref(d);
	a->account = opts->cached;
	a->pin_asked = opts->pin_asked;
	a->uid = d->uid;
	return a->user && a->service && a->tty && a->rhost ? 0 : -ENOMEM;
}

/* A login whose decision asks for a security-key SSH key (on_remote = "ssh-key"): no key
 * here. ssh-proof.c checks sshd's record or the agent's signature; the counter, lockout,
 * token and the durable record are the key login's own (A, with the user's credentials,
 * is consumed). */
static int auth_ssh(Manager *m, sd_bus_message *msg, const BusCaller *caller, AuditRecord *rec,
        AuthData *a, Decision *d, const char *user, const char *service, const char *tty,
        const char *rhost, const AuthOptions *opts)
{
	SshProofResult res;
	AuthOutcome o = {};
	bool ok;

	/* sshd's record comes from sshd (root): a user cannot vouch for their own login. */
	if (opts->ssh.auth_info && !caller->is_root) {
		auth_data_free(a);
		return reply_now(m, msg, caller, rec, "ssh-key-required",
		        "Only sshd (root) can hand over its record of a login (SSH_AUTH_INFO_0).",
		        AUDIT_RESULT_FAILURE);
	}
	if (creds_count_ssh(a->set) == 0) {
		char msgbuf[200];

		snprintf(msgbuf, sizeof(msgbuf),
		        "No security-key SSH key is registered for %s; an administrator imports "
		        "one "
		        "with: keywardctl ssh import %s",
		        user, user);
		auth_data_free(a);
		return reply_now(m, msg, caller, rec, "not-enrolled", msgbuf, AUDIT_RESULT_FAILURE);
	}
	if (auth_data_set_login(a, d, opts) < 0) {
		auth_data_free(a);
		return -ENOMEM;
	}
	a->ssh = true;
	ssh_proof_verify(m, d, a->set, &opts->ssh, &res);
	o.cred = res.cred;
	o.reason = res.reason ? res.reason : "ok";
	snprintf(o.message, sizeof(o.message), "%s", res.reason ? res.message : "");
	o.ssh_detail = res.detail[0] ? res.detail : NULL;
	o.session = res.session;
	o.ssh_agent = res.agent;
	ok = !res.reason;
	if (ok && res.agent)
		ok = auth_counter_check(m, a, res.cred, res.cred->id, res.counter, &o);
	if (ok)
		o.message[0] = '\0';
	finish(m, msg, a, &o, ok, NULL);
	auth_data_free(a);
	return 1; /* answered, now or once its record is durable */
}

static int auth_start(Manager *m, sd_bus_message *msg, const BusCaller *caller, Decision *d,
        const AuthOptions *opts, int pin_fd, AuditRecord *rec, AuthKeyDone done, void *done_data);

/* A refusal before the key search: to DONE when A has one (A is freed), else answered at
 * once like any other. */
static int auth_refuse(Manager *m, sd_bus_message *msg, const BusCaller *caller, AuditRecord *rec,
        AuthData *a, const char *reason, const char *message)
{
	AuthKeyDone done = a ? a->done : NULL;
	void *data = a ? TAKE_PTR(a->done_data) : NULL;

	auth_data_free(a);
	if (done) {
		done(m, msg, false, reason, message, NULL, data);
		return 1;
	}
	return reply_now(m, msg, caller, rec, reason, message, AUDIT_RESULT_FAILURE);
}

int bus_method_authenticate(
        Manager *m, sd_bus_message *msg, const BusCaller *caller, sd_bus_error *error)
{
	const char *user, *service, *tty, *rhost;
	const PolicySettings *st = policy_settings(m->policy);
	_cleanup_decision_ Decision *d = NULL;
	AuditRecord rec = AUDIT_RECORD_INIT;
	uint64_t locked_until = 0;
	uid_t uid = (uid_t)-1;
	static const char *const known[] = {
	        "cached:b", "decision:s", "pin-asked:b", "breakglass:b", SSH_PROOF_OPTIONS, NULL};
	AuthOptions opts = {};
	int pin_fd, r;

	r = sd_bus_message_read(msg, "ssssh", &user, &service, &tty, &rhost, &pin_fd);
	if (r < 0)
		return r;
	r = bus_read_options(msg, known, auth_option, &opts, error);
	if (r < 0)
		return r;
	r = bus_check_login(user, service, tty, rhost, error);
	if (r < 0)
		return r;
	if (!bus_caller_may_act_for(caller, user)) {
		log_notice("Authenticate for %s refused to uid %u: only root may authenticate "
		           "another user.",
		        user, (unsigned)caller->uid);
		return sd_bus_error_setf(error, KEYWARD_BUS_ERROR_ACCESS_DENIED,
		        "Only root may authenticate another user than yourself.");
	}

	/* The account phase's decisions (sudo's cached timestamp) are `account` events. */
	rec.event = opts.cached ? AUDIT_EVENT_ACCOUNT : AUDIT_EVENT_AUTH;
	rec.user = user;
	rec.service = service;
	rec.tty = tty;
	rec.rhost = rhost;
	if (!isempty(opts.decision)) {
		/* The decision Check made for this login, whatever policy is in force now: one
		 * decision per login. It must be this login's, asked by the same process. */
		Decision *found = decision_table_find(&m->decisions, opts.decision);

		if (!found)
			return reply_now(m, msg, caller, &rec, "decision-expired",
			        "The login took too long (its policy decision expired); try again.",
			        AUDIT_RESULT_FAILURE);
		if (!decision_matches(found, user, service, tty, rhost, caller->pid)) {
			log_notice("Authenticate %s/%s from pid %d: decision %.8s... was made for "
			           "another login; refused.",
			        user, service, (int)caller->pid, opts.decision);
			return reply_now(m, msg, caller, &rec, "decision-mismatch",
			        "The policy decision given is not this login's.",
			        AUDIT_RESULT_FAILURE);
		}
		d = decision_ref(found);
	} else {
		/* A caller that did not ask Check first (or an older module): decide now. */
		r = manager_decide(m, user, service, tty, rhost, caller->pid, caller->uid, &d);
		if (r < 0)
			return reply_now(m, msg, caller, &rec, "error",
			        "The keyward policy could not be evaluated.", AUDIT_RESULT_FAILURE);
	}
	uid = d->uid;
	rec.uid = uid;
	audit_record_set_decision(&rec, d);

	if (d->require == POLICY_REQUIRE_NONE)
		return reply_now(m, msg, caller, &rec, "not-covered",
		        "The keyward policy does not cover this login.", AUDIT_RESULT_INFO);
	if (d->require == POLICY_REQUIRE_DENY)
		return reply_now(m, msg, caller, &rec,
		        d->remote_resolved ? "remote" : "policy-deny",
		        d->reason ? d->reason : "Access denied by the keyward policy.",
		        AUDIT_RESULT_FAILURE);
	if (d->require != POLICY_REQUIRE_KEY && d->require != POLICY_REQUIRE_SSH_KEY)
		return reply_now(m, msg, caller, &rec, "error", "Unknown policy outcome.",
		        AUDIT_RESULT_FAILURE);

	r = lockout_check(st->state_dir, user, &locked_until);
	if (r < 0) {
		log_error_errno(r, "Cannot read the lockout state of %s in %s/lockout: %m", user,
		        st->state_dir);
		return reply_now(m, msg, caller, &rec, "error",
		        "The lockout state cannot be read; tell an administrator.",
		        AUDIT_RESULT_FAILURE);
	}
	if (locked_until > 0) {
		char msgbuf[160];
		snprintf(msgbuf, sizeof(msgbuf),
		        "Too many failed attempts: try again in %llu minute(s).",
		        (unsigned long long)((locked_until - now_realtime_ms()) / 60000 + 1));
		return reply_now(m, msg, caller, &rec, "lockout", msgbuf, AUDIT_RESULT_FAILURE);
	}
	/* Break-glass (breakglass.c): a recovery code or an approval in place of the key, the
	 * offer of it to a user without a usable key, and enroll-required. */
	r = breakglass_on_authenticate(
	        m, msg, caller, d, pin_fd, opts.breakglass, opts.cached, &rec);
	if (r != 0)
		return r;
	return auth_start(m, msg, caller, d, &opts, pin_fd, &rec, NULL, NULL);
}

int authenticate_own_key(Manager *m, sd_bus_message *msg, const BusCaller *caller, Decision *d,
        int pin_fd, bool pin_asked, AuditRecord *rec, AuthKeyDone done, void *done_data)
{
	AuthOptions opts = {.pin_asked = pin_asked};

	return auth_start(m, msg, caller, d, &opts, pin_fd, rec, done, done_data);
}

/* Loads the user's credentials and starts the key search for decision D on a worker.
 * DONE (if set) gets the verdict instead of the PAM module (it owns DONE_DATA from now
 * on, and answers MSG); a refusal before the search is handed to it too. */
static int auth_start(Manager *m, sd_bus_message *msg, const BusCaller *caller, Decision *d,
        const AuthOptions *opts, int pin_fd, AuditRecord *rec, AuthKeyDone done, void *done_data)
{
	const PolicySettings *st = policy_settings(m->policy);
	const char *user = d->user, *service = d->service;
	const char *tty = strempty(d->tty), *rhost = strempty(d->rhost);
	_cleanup_free_ char *why = NULL;
	const AuthGrant *grant = NULL;
	AuthData *a = NULL;
	DeviceOp *op = NULL;
	uid_t uid = d->uid;
	int r;

	a = calloc(1, sizeof(*a));
	if (!a) {
		free(done_data);
		return -ENOMEM;
	}
	a->pin_fd = -1;
	a->done = done;
	a->done_data = done_data;
	r = creds_load_user(st->credentials_dir, user, &a->set, &why);
	if (r < 0) {
		char msgbuf[256];
		log_error("Credentials of %s cannot be used: %s", user, strna(why));
		snprintf(msgbuf, sizeof(msgbuf),
		        "Your security key registrations cannot be read (%s); ask an "
		        "administrator.",
		        strna(why));
		return auth_refuse(m, msg, caller, rec, a, "error", msgbuf);
	}
	if (d->require == POLICY_REQUIRE_SSH_KEY) {
		AuthOptions ssh_opts = *opts;

		ssh_opts.ssh.caller_pid = caller->pid;
		return auth_ssh(m, msg, caller, rec, a, d, user, service, tty, rhost, &ssh_opts);
	}
	/* SSH keys (type=ssh-sk) have no key handle: a local key login never offers them. */
	creds_keep_type(a->set, CRED_TYPE_FIDO2);
	if (d->credentials != POLICY_CRED_SOURCE_LOCAL) {
		r = directory_login_new(st, user, d->credentials, &a->set, &a->dir);
		if (r < 0) {
			auth_data_free(a);
			return r;
		}
	}
	if (a->set->n == 0 && !a->dir) {
		char msgbuf[160];
		snprintf(msgbuf, sizeof(msgbuf),
		        "No security key is registered for %s; ask an administrator to enroll one.",
		        user);
		return auth_refuse(m, msg, caller, rec, a, "not-enrolled", msgbuf);
	}
	if (auth_data_set_login(a, d, opts) < 0) {
		auth_data_free(a);
		return -ENOMEM;
	}
	/* A cached elevation under "same-key": the key of the user's last authentication,
	 * if it was not removed since, proves itself without a touch. Anything else (no
	 * such key, a rule that wants a touch or a PIN every time) is a full
	 * authentication. */
	if (opts->cached && d->cached_elevation == POLICY_CACHED_ELEVATION_SAME_KEY &&
	        d->user_verification != POLICY_UV_REQUIRED)
		grant = manager_grant_find(m, uid);
	if (grant) {
		a->silent_proof = true;
		a->only_device = strdup(grant->hidraw_path);
		if (!a->only_device) {
			auth_data_free(a);
			return -ENOMEM;
		}
	}
	log_debug("Authenticate %s/%s%s%s", user, service,
	        opts->cached ? " (cached elevation)" : "",
	        grant ? ": proving the last key silently" : "");
	r = plugged_devnodes(m->plugged, &a->paths);
	if (r < 0) {
		auth_data_free(a);
		return r;
	}
	a->plugged_serial = plugged_serial(m->plugged);
	if (!grant) {
		const char *known_id = NULL;
		const PluggedKey *k =
		        plugged_known(m->plugged, user, auth_cred_registered, a->set, &known_id);

		if (k) {
			a->known_path = strdup(k->devnode);
			a->known_id = strdup(known_id);
			if (!a->known_path || !a->known_id) {
				auth_data_free(a);
				return -ENOMEM;
			}
		}
	}
	/* Our own copy of the PIN pipe, non-blocking (the worker reads it). */
	a->pin_fd = pin_fd >= 0 ? fcntl(pin_fd, F_DUPFD_CLOEXEC, 3) : -1;
	if (a->pin_fd >= 0)
		(void)fcntl(a->pin_fd, F_SETFL, O_NONBLOCK);
	r = device_op_new(&m->ops, m, DEVICE_OP_AUTHENTICATE, &auth_vtable, msg, caller->uid,
	        st->timeout_ms, a, &op);
	if (r == -EBUSY && done) /* (A and DONE_DATA are gone with the op) */
		return sd_bus_reply_method_errorf(msg, KEYWARD_BUS_ERROR_BUSY,
		        "keywardd is busy with too many requests; try again.");
	if (r == -EBUSY)
		return auth_refuse(m, msg, caller, rec, NULL, "error",
		        "keywardd is busy with too many requests; try again.");
	if (r < 0)
		return r;
	r = device_op_start(op);
	if (r < 0)
		return log_error_errno(r, "Cannot start the key search: %m");
	return 1; /* the reply is deferred */
}
