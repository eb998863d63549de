/* fido-util.c: libfido2 status mapping (one table) and small libfido2 helpers.
 * Library code: returns -errno or a libfido2 status, never logs. */
#include "fido-util.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include <fido/eddsa.h>
#include <fido/es256.h>
#include <fido/rs256.h>

#include "bus-names.h"
#include "util.h"

typedef struct FidoErrorMap {
	int fido;
	int errno_value;
	const char *reason;
	const char *message;
} FidoErrorMap;

static const FidoErrorMap fido_error_map[] = {
        {FIDO_ERR_PIN_INVALID, EACCES, "wrong-pin", "Wrong PIN for your security key."},
        {FIDO_ERR_PIN_AUTH_INVALID, EACCES, "wrong-pin", "Wrong PIN for your security key."},
        {FIDO_ERR_PIN_BLOCKED, EPERM, "pin-blocked",
                "Your security key's PIN is blocked after too many wrong tries: reset the key "
                "(fido2-token -R) and enroll it again."},
        {FIDO_ERR_PIN_AUTH_BLOCKED, EPERM, "pin-blocked",
                "Your security key refuses more PIN tries until it is unplugged and plugged in "
                "again."},
        {FIDO_ERR_UV_BLOCKED, EPERM, "pin-blocked",
                "Your security key's built-in user verification is blocked: use its PIN or reset "
                "it."},
        {FIDO_ERR_UV_INVALID, EACCES, "wrong-pin",
                "Your security key did not verify you (built-in user verification failed)."},
        {FIDO_ERR_PIN_NOT_SET, ENOKEY, "no-pin-set",
                "This key has no PIN set but the policy requires one: set a PIN with fido2-token "
                "-S."},
        {FIDO_ERR_PIN_REQUIRED, ENOKEY, "pin-required",
                "Your security key needs its PIN for this."},
        {FIDO_ERR_PIN_POLICY_VIOLATION, EINVAL, "wrong-pin",
                "The PIN does not meet the key's PIN rules (length)."},
        {FIDO_ERR_PIN_TOKEN_EXPIRED, ETIMEDOUT, "timeout",
                "The PIN session on your security key expired; try again."},
        {FIDO_ERR_USER_ACTION_TIMEOUT, ETIMEDOUT, "no-touch",
                "Your security key was not touched in time."},
        {FIDO_ERR_ACTION_TIMEOUT, ETIMEDOUT, "no-touch",
                "Your security key was not touched in time."},
        {FIDO_ERR_OPERATION_DENIED, ECONNREFUSED, "touch-denied",
                "The request was refused on the security key."},
        {FIDO_ERR_KEEPALIVE_CANCEL, ECANCELED, "cancelled", "The request was cancelled."},
        {FIDO_ERR_NO_CREDENTIALS, ENOENT, "unknown-credential",
                "This security key holds none of your registered credentials."},
        {FIDO_ERR_INVALID_CREDENTIAL, ENOENT, "unknown-credential",
                "This security key does not know the credential."},
        {FIDO_ERR_CREDENTIAL_EXCLUDED, EEXIST, "error",
                "This security key already holds one of this user's credentials."},
        {FIDO_ERR_UNSUPPORTED_OPTION, EOPNOTSUPP, "uv-missing",
                "This security key does not support an option the policy requires."},
        {FIDO_ERR_UNSUPPORTED_ALGORITHM, EOPNOTSUPP, "error",
                "This security key supports none of the algorithms keyward uses (ES256, EdDSA, "
                "RS256)."},
        {FIDO_ERR_UP_REQUIRED, EPERM, "no-touch", "A touch of your security key is required."},
        {FIDO_ERR_USER_PRESENCE_REQUIRED, EPERM, "no-touch",
                "A touch of your security key is required."},
        {FIDO_ERR_KEY_STORE_FULL, ENOSPC, "error",
                "The security key has no room for another discoverable credential."},
        {FIDO_ERR_LIMIT_EXCEEDED, E2BIG, "error",
                "The request exceeds a limit of the security key."},
        {FIDO_ERR_REQUEST_TOO_LARGE, EMSGSIZE, "error",
                "The request is too large for the security key (too many credentials in one "
                "list)."},
        {FIDO_ERR_CHANNEL_BUSY, EBUSY, "error",
                "The security key is busy with another request; try again."},
        {FIDO_ERR_TIMEOUT, ETIMEDOUT, "timeout", "The security key did not answer in time."},
        {FIDO_ERR_INVALID_SIG, EBADMSG, "bad-signature",
                "The security key's signature did not verify."},
        {FIDO_ERR_TX, EIO, "error",
                "Could not talk to the security key (write failed); replug it and try again."},
        {FIDO_ERR_RX, EIO, "error",
                "Could not talk to the security key (no or bad answer); replug it and try again."},
        {FIDO_ERR_RX_NOT_CBOR, EPROTO, "error", "The security key sent a malformed answer."},
        {FIDO_ERR_RX_INVALID_CBOR, EPROTO, "error", "The security key sent a malformed answer."},
        {FIDO_ERR_INVALID_PARAM, EINVAL, "error", "Invalid request to the security key."},
        {FIDO_ERR_INVALID_ARGUMENT, EINVAL, "error", "Invalid request to the security key."},
        {FIDO_ERR_INTERNAL, EIO, "error", "Internal error while talking to the security key."},
        {FIDO_ERR_NOTFOUND, ENODEV, "no-key", "No security key found."},
};

static const FidoErrorMap *fido_error_lookup(int status)
{
	for (size_t i = 0; i < ELEMENTSOF(fido_error_map); i++)
		if (fido_error_map[i].fido == status)
			return &fido_error_map[i];
	return NULL;
}

int fido_error_to_errno(int fido_status)
{
	const FidoErrorMap *m;

	if (fido_status == FIDO_OK)
		return 0;
	m = fido_error_lookup(fido_status);
	return m ? -m->errno_value : -EIO;
}

const char *fido_error_reason(int fido_status)
{
	const FidoErrorMap *m;

	if (fido_status == FIDO_OK)
		return "ok";
	m = fido_error_lookup(fido_status);
	return m ? m->reason : "error";
}

const char *fido_error_message(int fido_status)
{
	const FidoErrorMap *m;

	if (fido_status == FIDO_OK)
		return "Success.";
	m = fido_error_lookup(fido_status);
	return m ? m->message : "The security key reported an unexpected error.";
}

static const struct {
	int cose;
	const char *name;
} cose_names[] = {
        {COSE_ES256, "es256"},
        {COSE_EDDSA, "eddsa"},
        {COSE_RS256, "rs256"},
};

int fido_cose_from_string(const char *s)
{
	if (!s)
		return COSE_UNSPEC;
	for (size_t i = 0; i < ELEMENTSOF(cose_names); i++)
		if (strcasecmp(cose_names[i].name, s) == 0)
			return cose_names[i].cose;
	return COSE_UNSPEC;
}

const char *fido_cose_to_string(int cose)
{
	for (size_t i = 0; i < ELEMENTSOF(cose_names); i++)
		if (cose_names[i].cose == cose)
			return cose_names[i].name;
	return NULL;
}

void fido_aaguid_to_string(const uint8_t aaguid[16], char buf[FIDO_AAGUID_STRING_MAX])
{
	snprintf(buf, FIDO_AAGUID_STRING_MAX,
	        "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", aaguid[0],
	        aaguid[1], aaguid[2], aaguid[3], aaguid[4], aaguid[5], aaguid[6], aaguid[7],
	        aaguid[8], aaguid[9], aaguid[10], aaguid[11], aaguid[12], aaguid[13], aaguid[14],
	        aaguid[15]);
}

int fido_aaguid_from_string(const char *s, uint8_t ret[16])
{
	uint8_t out[16];
	size_t j = 0;

	if (!s || strlen(s) != 36)
		return -EINVAL;
	for (size_t i = 0; i < 36;) {
		int hi, lo;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -EINVAL;
			i++;
			continue;
		}
		if (!isxdigit((unsigned char)s[i]) || !isxdigit((unsigned char)s[i + 1]))
			return -EINVAL;
		hi = isdigit((unsigned char)s[i]) ? s[i] - '0'
		                                  : (tolower((unsigned char)s[i]) - 'a' + 10);
		lo = isdigit((unsigned char)s[i + 1])
		             ? s[i + 1] - '0'
		             : (tolower((unsigned char)s[i + 1]) - 'a' + 10);
		out[j++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	memcpy(ret, out, 16);
	return 0;
}

int fido_assert_verify_raw(
        const fido_assert_t *a, size_t idx, int cose, const void *pk, size_t pk_len)
{
	int r;

	switch (cose) {
	case COSE_ES256: {
		es256_pk_t *k = es256_pk_new();
		if (!k)
			return FIDO_ERR_INTERNAL;
		r = es256_pk_from_ptr(k, pk, pk_len);
		if (r == FIDO_OK)
			r = fido_assert_verify(a, idx, COSE_ES256, k);
		es256_pk_free(&k);
		return r;
	}
	case COSE_EDDSA: {
		eddsa_pk_t *k = eddsa_pk_new();
		if (!k)
			return FIDO_ERR_INTERNAL;
		r = eddsa_pk_from_ptr(k, pk, pk_len);
		if (r == FIDO_OK)
			r = fido_assert_verify(a, idx, COSE_EDDSA, k);
		eddsa_pk_free(&k);
		return r;
	}
	case COSE_RS256: {
		rs256_pk_t *k = rs256_pk_new();
		if (!k)
			return FIDO_ERR_INTERNAL;
		r = rs256_pk_from_ptr(k, pk, pk_len);
		if (r == FIDO_OK)
			r = fido_assert_verify(a, idx, COSE_RS256, k);
		rs256_pk_free(&k);
		return r;
	}
	default:
		return FIDO_ERR_INVALID_ARGUMENT;
	}
}

bool fido_pubkey_valid(int cose, const void *pk, size_t pk_len)
{
	int r = FIDO_ERR_INVALID_ARGUMENT;

	if (cose == COSE_ES256) {
		es256_pk_t *k = es256_pk_new();
		if (k)
			r = es256_pk_from_ptr(k, pk, pk_len);
		es256_pk_free(&k);
	} else if (cose == COSE_EDDSA) {
		eddsa_pk_t *k = eddsa_pk_new();
		if (k)
			r = eddsa_pk_from_ptr(k, pk, pk_len);
		eddsa_pk_free(&k);
	} else if (cose == COSE_RS256) {
		rs256_pk_t *k = rs256_pk_new();
		if (k)
			r = rs256_pk_from_ptr(k, pk, pk_len);
		rs256_pk_free(&k);
	}
	return r == FIDO_OK;
}

int fido_pin_read_fd(int fd, char **ret)
{
	char buf[KEYWARD_MAX_PIN + 2];
	size_t len = 0;
	char *pin;
	int r;

	if (fd < 0)
		return -EBADF;
	for (;;) {
		ssize_t n;

		if (len >= sizeof(buf)) {
			r = -EMSGSIZE;
			goto out;
		}
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				/* Non-blocking pipe with nothing (yet): wait briefly for the
				 * writer. */
				struct pollfd p = {.fd = fd, .events = POLLIN};
				int k = poll(&p, 1, 1000);
				if (k > 0)
					continue;
				if (k == 0)
					break; /* nothing written: no PIN */
			}
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len > KEYWARD_MAX_PIN) {
		r = -EMSGSIZE;
		goto out;
	}
	if (memchr(buf, '\0', len)) {
		r = -EINVAL;
		goto out;
	}
	if (len == 0) {
		*ret = NULL;
		r = 0;
		goto out;
	}
	pin = malloc(len + 1);
	if (!pin) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(pin, buf, len);
	pin[len] = '\0';
	*ret = pin;
	r = 0;
out:
	explicit_bzero(buf, sizeof(buf));
	return r;
}

static size_t clamp_size(uint64_t v)
{
	return v > SIZE_MAX ? SIZE_MAX : (size_t)v;
}

void fido_list_limits(fido_dev_t *dev, FidoListLimits *ret)
{
	FidoListLimits lim = {
	        .max_count = SIZE_MAX,
	        .max_id_len = SIZE_MAX,
	        .max_msg = FIDO_LIST_DEFAULT_MSG_SIZE,
	};
	fido_cbor_info_t *ci;

	if (!fido_dev_is_fido2(dev)) {
		lim.max_msg = SIZE_MAX; /* libfido2 asks a U2F key one key handle at a time */
		*ret = lim;
		return;
	}
	ci = fido_cbor_info_new();
	if (ci && fido_dev_get_cbor_info(dev, ci) == FIDO_OK) {
		if (fido_cbor_info_maxcredcntlst(ci) > 0)
			lim.max_count = clamp_size(fido_cbor_info_maxcredcntlst(ci));
		if (fido_cbor_info_maxcredidlen(ci) > 0)
			lim.max_id_len = clamp_size(fido_cbor_info_maxcredidlen(ci));
		/* CTAP: a key takes at least 1024 bytes, whatever it says. */
		if (fido_cbor_info_maxmsgsiz(ci) > FIDO_LIST_DEFAULT_MSG_SIZE)
			lim.max_msg = clamp_size(fido_cbor_info_maxmsgsiz(ci));
	}
	fido_cbor_info_free(&ci);
	*ret = lim;
}

int fido_cred_ids_add(FidoCredIds *ids, const void *id, size_t len)
{
	FidoCredId *items;
	uint8_t *copy;

	if (len == 0)
		return -EINVAL;
	copy = malloc(len);
	if (!copy)
		return -ENOMEM;
	items = reallocarray(ids->items, ids->n + 1, sizeof(*items));
	if (!items) {
		free(copy);
		return -ENOMEM;
	}
	memcpy(copy, id, len);
	items[ids->n++] = (FidoCredId){.ptr = copy, .len = len};
	ids->items = items;
	return 0;
}

void fido_cred_ids_done(FidoCredIds *ids)
{
	if (!ids)
		return;
	for (size_t i = 0; i < ids->n; i++)
		free(ids->items[i].ptr);
	free(ids->items);
	*ids = (FidoCredIds){};
}

/* CBOR size of one PublicKeyCredentialDescriptor {"id": bytes, "type": "public-key"}. */
static size_t descriptor_size(size_t id_len)
{
	size_t head = id_len < 24 ? 1 : id_len < 256 ? 2 : id_len < 65536 ? 3 : 5;

	return 1 + 3 + head + id_len + 5 + 11;
}

typedef int (*ListAddFn)(void *target, const unsigned char *id, size_t len);

size_t fido_list_batch_end(
        const FidoCredIds *ids, const FidoListLimits *lim, size_t overhead, size_t start)
{
	/* 3: the array's header */
	size_t budget = lim->max_msg > overhead + 3 ? lim->max_msg - overhead - 3 : 0;
	size_t used = 0, n = 0, i;

	for (i = start; i < ids->n && n < lim->max_count; i++) {
		size_t sz;

		if (ids->items[i].len > lim->max_id_len)
			continue;
		sz = descriptor_size(ids->items[i].len);
		if (n > 0 && (sz > budget || used > budget - sz))
			break;
		used += sz;
		n++;
	}
	return i;
}

static int list_add_batch(ListAddFn add, void *target, const FidoCredIds *ids,
        const FidoListLimits *lim, size_t overhead, size_t *pos)
{
	size_t end = fido_list_batch_end(ids, lim, overhead, *pos);
	int n = 0;

	for (size_t i = *pos; i < end; i++) {
		int r;

		if (ids->items[i].len > lim->max_id_len)
			continue;
		r = add(target, ids->items[i].ptr, ids->items[i].len);
		if (r != FIDO_OK)
			return fido_error_to_errno(r);
		n++;
	}
	*pos = end;
	return n;
}

static int assert_add(void *target, const unsigned char *id, size_t len)
{
	return fido_assert_allow_cred(target, id, len);
}

static int cred_add(void *target, const unsigned char *id, size_t len)
{
	return fido_cred_exclude(target, id, len);
}

int fido_assert_allow_batch(fido_assert_t *as, const FidoCredIds *ids, const FidoListLimits *lim,
        size_t overhead, size_t *pos)
{
	return list_add_batch(assert_add, as, ids, lim, overhead, pos);
}

int fido_cred_exclude_batch(fido_cred_t *cred, const FidoCredIds *ids, const FidoListLimits *lim,
        size_t overhead, size_t *pos)
{
	return list_add_batch(cred_add, cred, ids, lim, overhead, pos);
}

/* One silent getAssertion with the next batch of IDS (all of discovery when IDS is empty).
 * Returns 1 held (*ret_assert: the answer), 0 not held, -errno with *status otherwise;
 * -ENODATA when no id was left to send. */
static int probe_batch(fido_dev_t *dev, const char *rp, const FidoCredIds *ids,
        const FidoListLimits *lim, size_t *pos, fido_assert_t **ret_assert, int *status)
{
	fido_assert_t *as = fido_assert_new();
	uint8_t cdh[32];
	int r;

	*status = FIDO_ERR_INTERNAL;
	if (!as)
		return -ENOMEM;
	if (ids->n > 0) {
		r = fido_assert_allow_batch(
		        as, ids, lim, FIDO_LIST_ASSERT_OVERHEAD + strlen(rp), pos);
		if (r <= 0) {
			fido_assert_free(&as);
			return r < 0 ? r : -ENODATA;
		}
	}
	if (getrandom(cdh, sizeof(cdh), 0) != (ssize_t)sizeof(cdh))
		r = FIDO_ERR_INTERNAL;
	else
		r = fido_assert_set_clientdata_hash(as, cdh, sizeof(cdh));
	if (r == FIDO_OK)
		r = fido_assert_set_rp(as, rp);
	if (r == FIDO_OK)
		r = fido_assert_set_up(as, FIDO_OPT_FALSE);
	if (r == FIDO_OK)
		r = fido_dev_get_assert(dev, as, NULL);
	*status = r;
	if (r == FIDO_OK && fido_dev_is_fido2(dev)) {
		*ret_assert = as;
		return 1;
	}
	fido_assert_free(&as);
	if (!fido_dev_is_fido2(dev)) /* U2F check-only: the handle is known */
		return r == FIDO_ERR_USER_PRESENCE_REQUIRED ? 1 : 0;
	if (r == FIDO_ERR_NO_CREDENTIALS)
		return 0;
	return fido_error_to_errno(r);
}

int fido_probe_batches(fido_dev_t *dev, const char *rp, const FidoCredIds *ids,
        const FidoListLimits *lim, fido_assert_t **ret_assert, int *ret_status)
{
	size_t pos = 0;
	int status = FIDO_OK, r;

	do {
		fido_assert_t *as = NULL;

		r = probe_batch(dev, rp, ids, lim, &pos, &as, &status);
		if (r == -ENODATA)
			break;
		if (r != 0) {
			if (r > 0)
				*ret_assert = as;
			if (ret_status)
				*ret_status = status;
			return r;
		}
	} while (pos < ids->n);
	if (ret_status)
		*ret_status = FIDO_ERR_NO_CREDENTIALS;
	return 0;
}
