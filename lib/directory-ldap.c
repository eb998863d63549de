/* directory-ldap.c: the libldap client of the credential directory — connect to the first
 * server that answers (ldaps://, ldap:// with StartTLS required, ldapi://), bind (none,
 * simple with the root-only secret file, SASL EXTERNAL), fetch one user's entry, and the
 * one-operation modify used for enrolment, revocation and the shared sign counter. Every
 * step is bounded by what is left of the policy's timeout. Blocking: worker threads and
 * keywardctl only. */
#include "directory.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <ldap.h>

#include "util.h"

#define SECRET_MAX 1024

/* The hard stop of a connection: libldap's timeouts do not bound everything (2.5's TLS
 * handshake on ldaps:// with a server that never answers spins past
 * LDAP_OPT_NETWORK_TIMEOUT), so a thread of ours shuts the socket down at the deadline,
 * which ends whatever libldap is waiting for. The socket comes from the connect callback. */
typedef struct Watchdog {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, done, fired;
	int fd; /* the connection's socket, -1: none */
	uint64_t deadline_ms;
} Watchdog;

typedef struct Conn {
	LDAP *ld;
	const char *uri;
	uint64_t deadline_ms; /* CLOCK_MONOTONIC */
	Watchdog *wd;
	struct ldap_conncb cb;
} Conn;

static void *watchdog_thread(void *userdata)
{
	Watchdog *w = userdata;
	struct timespec ts;

	ts.tv_sec = (time_t)(w->deadline_ms / 1000);
	ts.tv_nsec = (long)(w->deadline_ms % 1000) * 1000000L;
	pthread_mutex_lock(&w->lock);
	while (!w->done)
		if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT) {
			if (!w->done && w->fd >= 0)
				(void)shutdown(w->fd, SHUT_RDWR);
			w->fired = true;
			break;
		}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static int watchdog_start(Conn *c)
{
	pthread_condattr_t attr;
	Watchdog *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->deadline_ms = c->deadline_ms;
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&w->thread, NULL, watchdog_thread, w) != 0) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return -EAGAIN;
	}
	w->started = true;
	c->wd = w;
	return 0;
}

static void watchdog_stop(Conn *c)
{
	Watchdog *w = c->wd;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	(void)pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
	c->wd = NULL;
}

static int conn_cb_add(
        LDAP *ld, Sockbuf *sb, LDAPURLDesc *srv, struct sockaddr *addr, struct ldap_conncb *ctx)
{
	Watchdog *w = ctx->lc_arg;
	ber_socket_t fd = -1;

	(void)ld;
	(void)srv;
	(void)addr;
	if (!w || ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd) != 1)
		return 0;
	pthread_mutex_lock(&w->lock);
	w->fd = fd;
	if (w->fired) /* already past the deadline */
		(void)shutdown(fd, SHUT_RDWR);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

static void conn_cb_del(LDAP *ld, Sockbuf *sb, struct ldap_conncb *ctx)
{
	Watchdog *w = ctx->lc_arg;

	(void)ld;
	(void)sb;
	if (!w)
		return;
	/* before libldap closes it: the number may be reused at once */
	pthread_mutex_lock(&w->lock);
	w->fd = -1;
	pthread_mutex_unlock(&w->lock);
}

_printf_(2, 3) static int fail(char **ret_error, const char *fmt, ...)
{
	va_list ap;

	if (ret_error) {
		free(*ret_error);
		*ret_error = NULL;
		va_start(ap, fmt);
		if (vasprintf(ret_error, fmt, ap) < 0)
			*ret_error = NULL;
		va_end(ap);
	}
	return -EIO;
}

void directory_library_init(void)
{
	int v;

	(void)setenv("LDAPNOINIT", "1", 1);
	/* libldap reads its configuration at its first call: make that call now. */
	(void)ldap_get_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &v);
}

/* What is left of the deadline, at least 1 ms, as the per-step limits of libldap. */
static int conn_arm(Conn *c)
{
	uint64_t now = now_monotonic_ms();
	uint64_t left = c->deadline_ms > now ? c->deadline_ms - now : 0;
	struct timeval tv;

	if (left == 0)
		return -ETIMEDOUT;
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)((left % 1000) * 1000);
	if (ldap_set_option(c->ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
	        ldap_set_option(c->ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS)
		return -EINVAL;
	return 0;
}

static int read_secret(const char *path, char **ret, char **ret_error)
{
	const char *problem = NULL;
	char *s = NULL;
	size_t len = 0;
	int r;

	r = read_full_file_safe(path,
	        SAFE_FILE_ROOT_OWNED | SAFE_FILE_NO_GROUP_WRITE | SAFE_FILE_NO_WORLD_WRITE |
	                SAFE_FILE_NO_GROUP_READ | SAFE_FILE_NO_WORLD_READ,
	        SECRET_MAX, &s, &len, &problem);
	if (r < 0) {
		(void)fail(ret_error, "the directory's secret_file %s cannot be used: %s", path,
		        problem ? problem : strerror(-r));
		return r;
	}
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		s[--len] = 0;
	if (len == 0 || strlen(s) != len) {
		erase_string_and_free(s);
		(void)fail(ret_error, "the directory's secret_file %s is empty or not text", path);
		return -EINVAL;
	}
	*ret = s;
	return 0;
}

static int conn_open_one(const PolicyDirectory *cfg, const char *uri, Conn *c, char **ret_error)
{
	int v3 = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND, zero = 0, rc, r;
	bool ldapi = strncmp(uri, "ldapi://", 8) == 0, ldap = strncmp(uri, "ldap://", 7) == 0;

	c->uri = uri;
	rc = ldap_initialize(&c->ld, uri);
	if (rc != LDAP_SUCCESS)
		return fail(ret_error, "%s: %s", uri, ldap_err2string(rc));
	c->cb = (struct ldap_conncb){.lc_add = conn_cb_add, .lc_del = conn_cb_del, .lc_arg = c->wd};
	if (ldap_set_option(c->ld, LDAP_OPT_CONNECT_CB, &c->cb) != LDAP_OPT_SUCCESS)
		return fail(ret_error, "%s: the connection watch cannot be set", uri);
	if (ldap_set_option(c->ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_OPT_SUCCESS ||
	        ldap_set_option(c->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	        ldap_set_option(c->ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS ||
	        ldap_set_option(c->ld, LDAP_OPT_X_TLS_CACERTFILE,
	                cfg->tls_ca_file ? cfg->tls_ca_file : DIRECTORY_DEFAULT_CA_FILE) !=
	                LDAP_OPT_SUCCESS ||
	        (cfg->tls_cert_file && ldap_set_option(c->ld, LDAP_OPT_X_TLS_CERTFILE,
	                                       cfg->tls_cert_file) != LDAP_OPT_SUCCESS) ||
	        (cfg->tls_key_file && ldap_set_option(c->ld, LDAP_OPT_X_TLS_KEYFILE,
	                                      cfg->tls_key_file) != LDAP_OPT_SUCCESS) ||
	        ldap_set_option(c->ld, LDAP_OPT_X_TLS_NEWCTX, &zero) != LDAP_OPT_SUCCESS)
		return fail(ret_error, "%s: the TLS settings cannot be applied", uri);
	if (conn_arm(c) < 0)
		return fail(ret_error, "%s: no time left (timeout %" PRIu32 " ms)", uri,
		        cfg->timeout_ms);
	if (ldap) {
		/* ldap:// only with StartTLS: credentials never cross the network in clear. */
		rc = ldap_start_tls_s(c->ld, NULL, NULL);
		if (rc != LDAP_SUCCESS)
			return fail(ret_error, "%s: StartTLS failed: %s", uri, ldap_err2string(rc));
	}
	(void)ldapi;
	if (conn_arm(c) < 0)
		return fail(
		        ret_error, "%s: timed out (timeout %" PRIu32 " ms)", uri, cfg->timeout_ms);
	if (cfg->bind == POLICY_DIRECTORY_BIND_SIMPLE) {
		_cleanup_erase_ char *pw = NULL;
		struct berval cred;

		r = read_secret(cfg->secret_file, &pw, ret_error);
		if (r < 0)
			return r;
		cred.bv_val = pw;
		cred.bv_len = strlen(pw);
		rc = ldap_sasl_bind_s(
		        c->ld, cfg->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
		if (rc != LDAP_SUCCESS)
			return fail(ret_error, "%s: simple bind as %s failed: %s", uri,
			        cfg->bind_dn, ldap_err2string(rc));
	} else if (cfg->bind == POLICY_DIRECTORY_BIND_SASL_EXTERNAL) {
		struct berval empty = {0, (char *)""};

		rc = ldap_sasl_bind_s(c->ld, NULL, "EXTERNAL", &empty, NULL, NULL, NULL);
		if (rc != LDAP_SUCCESS)
			return fail(ret_error, "%s: SASL EXTERNAL bind failed: %s", uri,
			        ldap_err2string(rc));
	} else {
		/* Anonymous: still one round trip, so a dead server is found here. */
		struct berval empty = {0, (char *)""};

		rc = ldap_sasl_bind_s(c->ld, "", LDAP_SASL_SIMPLE, &empty, NULL, NULL, NULL);
		if (rc != LDAP_SUCCESS)
			return fail(ret_error, "%s: %s", uri, ldap_err2string(rc));
	}
	return 0;
}

static void conn_close(Conn *c)
{
	if (c->ld)
		(void)ldap_unbind_ext_s(c->ld, NULL, NULL);
	c->ld = NULL;
}

/* The first server of CFG that answers within the (one, shared) deadline. */
/* Closes the connection and ends its watchdog. */
static void conn_end(Conn *c)
{
	conn_close(c);
	watchdog_stop(c);
}

static int conn_open(const PolicyDirectory *cfg, Conn *c, char **ret_error)
{
	int r = -EIO;

	c->deadline_ms = now_monotonic_ms() + cfg->timeout_ms;
	r = watchdog_start(c);
	if (r < 0)
		return fail(
		        ret_error, "the directory connection cannot be watched: %s", strerror(-r));
	for (char **u = cfg->uris; u && *u; u++) {
		r = conn_open_one(cfg, *u, c, ret_error);
		if (r >= 0)
			return 0;
		conn_close(c);
		if (now_monotonic_ms() >= c->deadline_ms)
			break;
	}
	watchdog_stop(c);
	return r;
}

static int values_of(LDAP *ld, LDAPMessage *e, const char *attr, char ***ret, char **ret_problem)
{
	struct berval **vals = ldap_get_values_len(ld, e, attr);
	char **l = NULL;
	int n = vals ? ldap_count_values_len(vals) : 0, r = 0;

	for (int i = 0; i < n && i < DIRECTORY_VALUES_MAX + 1; i++) {
		const struct berval *v = vals[i];
		_cleanup_free_ char *s = NULL;

		/* Reject per value: a huge or binary one costs only itself. */
		if (v->bv_len > DIRECTORY_VALUE_MAX || memchr(v->bv_val, 0, v->bv_len)) {
			if (ret_problem && !*ret_problem &&
			        asprintf(ret_problem, "%s value %d rejected: %s", attr, i + 1,
			                v->bv_len > DIRECTORY_VALUE_MAX ? "the value is too long"
			                                                : "binary value") < 0)
				*ret_problem = NULL;
			s = strdup("-");
		} else
			s = strndup(v->bv_val, v->bv_len);
		if (!s || strv_extend(&l, s) < 0) {
			r = -ENOMEM;
			break;
		}
	}
	if (vals)
		ldap_value_free_len(vals);
	if (r < 0) {
		strv_free(l);
		return r;
	}
	*ret = l;
	return 0;
}

int directory_fetch(const PolicyDirectory *cfg, const char *rp_id, const char *user,
        DirectoryUser **ret, char **ret_error)
{
	_cleanup_directory_user_ DirectoryUser *u = NULL;
	_cleanup_free_ char *filter = NULL, *problem = NULL;
	char *attrs[] = {cfg->attribute, (char *)DIRECTORY_ATTR_CREDENTIAL,
	        (char *)DIRECTORY_ATTR_COUNTER, NULL};
	LDAPMessage *res = NULL, *e;
	Conn c = {};
	struct timeval tv;
	uint64_t left;
	int rc, r, n;

	if (!cfg->configured || !valid_user_name(user))
		return -EINVAL;
	r = directory_user_filter(cfg->user_filter, user, &filter);
	if (r < 0)
		return r;
	r = conn_open(cfg, &c, ret_error);
	if (r < 0)
		return r;
	left = c.deadline_ms > now_monotonic_ms() ? c.deadline_ms - now_monotonic_ms() : 1;
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)((left % 1000) * 1000);
	(void)conn_arm(&c);
	/* At most 2 entries: more than one match for a user is refused, not guessed. The
	 * server-side time limit is the same bound, rounded up to a second. */
	rc = ldap_search_ext_s(
	        c.ld, cfg->base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL, &tv, 2, &res);
	if (rc != LDAP_SUCCESS) {
		r = fail(ret_error, "%s: search for %s failed: %s", c.uri, user,
		        ldap_err2string(rc));
		goto out;
	}
	u = calloc(1, sizeof(*u));
	if (!u || !(u->user = strdup(user)) || !(u->uri = strdup(c.uri))) {
		r = -ENOMEM;
		goto out;
	}
	u->fetched_ms = now_realtime_ms();
	n = ldap_count_entries(c.ld, res);
	if (n > 1) {
		r = fail(ret_error, "%s: more than one entry matches %s", c.uri, user);
		goto out;
	}
	e = ldap_first_entry(c.ld, res);
	if (e) {
		char *dn = ldap_get_dn(c.ld, e);

		u->dn = dn ? strdup(dn) : NULL;
		ldap_memfree(dn);
		if (!u->dn) {
			r = -ENOMEM;
			goto out;
		}
		r = values_of(c.ld, e, cfg->attribute, &u->values, &problem);
		if (r >= 0)
			r = values_of(
			        c.ld, e, DIRECTORY_ATTR_CREDENTIAL, &u->keyward_values, &problem);
		if (r >= 0) {
			_cleanup_strv_free_ char **counters = NULL;

			r = values_of(c.ld, e, DIRECTORY_ATTR_COUNTER, &counters, &problem);
			for (char **v = counters; r >= 0 && v && *v; v++) {
				DirectoryCounter *a;

				a = reallocarray(u->counters, u->n_counters + 1, sizeof(*a));
				if (!a) {
					r = -ENOMEM;
					break;
				}
				u->counters = a;
				if (directory_counter_parse(*v, &a[u->n_counters]) >= 0)
					u->n_counters++;
			}
		}
		if (r < 0)
			goto out;
	}
	r = directory_user_parse(u, rp_id);
	if (r >= 0 && problem)
		(void)strv_extend(&u->problems, problem);
	if (r >= 0)
		*ret = TAKE_PTR(u);
out:
	if (res)
		ldap_msgfree(res);
	conn_end(&c);
	return r;
}

/* One modify of N mods: OPS[i] (LDAP_MOD_ADD or _DELETE) of the one value VALUES[i] of
 * ATTRS[i]. All or nothing: a delete of a value no longer there fails the whole modify
 * (-ESTALE), an add of one already there too (-EEXIST). */
static int modify_values(const PolicyDirectory *cfg, const char *dn, size_t n, const int *ops,
        const char *const *attrs, const char *const *values, char **ret_error)
{
	struct berval bv[8], *vals[8][2];
	LDAPMod mod[8], *mods[9] = {};
	Conn c = {};
	int rc, r;

	if (n == 0 || n > 8)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		bv[i] = (struct berval){strlen(values[i]), (char *)values[i]};
		vals[i][0] = &bv[i];
		vals[i][1] = NULL;
		mod[i] = (LDAPMod){
		        .mod_op = ops[i] | LDAP_MOD_BVALUES, .mod_type = (char *)attrs[i]};
		mod[i].mod_vals.modv_bvals = vals[i];
		mods[i] = &mod[i];
	}
	r = conn_open(cfg, &c, ret_error);
	if (r < 0)
		return r;
	(void)conn_arm(&c);
	rc = ldap_modify_ext_s(c.ld, dn, mods, NULL, NULL);
	if (rc == LDAP_NO_SUCH_ATTRIBUTE)
		r = -ESTALE;
	else if (rc == LDAP_TYPE_OR_VALUE_EXISTS)
		r = -EEXIST;
	else if (rc != LDAP_SUCCESS)
		r = fail(ret_error, "%s: modify of %s failed: %s", c.uri, dn, ldap_err2string(rc));
	conn_end(&c);
	return r;
}

int directory_add_values(const PolicyDirectory *cfg, const char *dn, const char *attr1,
        const char *value1, const char *attr2, const char *value2, char **ret_error)
{
	const char *attrs[] = {attr1, attr2}, *values[] = {value1, value2};
	const int ops[] = {LDAP_MOD_ADD, LDAP_MOD_ADD};

	return modify_values(cfg, dn, value2 ? 2 : 1, ops, attrs, values, ret_error);
}

int directory_delete_values(const PolicyDirectory *cfg, const char *dn, const char *const *attrs,
        const char *const *values, char **ret_error)
{
	const int ops[] = {LDAP_MOD_DELETE, LDAP_MOD_DELETE, LDAP_MOD_DELETE, LDAP_MOD_DELETE,
	        LDAP_MOD_DELETE, LDAP_MOD_DELETE, LDAP_MOD_DELETE, LDAP_MOD_DELETE};
	size_t n = 0;

	while (n < ELEMENTSOF(ops) && attrs[n] && values[n])
		n++;
	return modify_values(cfg, dn, n, ops, attrs, values, ret_error);
}

int directory_modify(const PolicyDirectory *cfg, const char *dn, const char *attribute,
        const char *del_value, const char *add_value, char **ret_error)
{
	const char *attrs[] = {attribute, attribute}, *values[2];
	int ops[2];
	size_t n = 0;

	if (del_value) {
		ops[n] = LDAP_MOD_DELETE;
		values[n++] = del_value;
	}
	if (add_value) {
		ops[n] = LDAP_MOD_ADD;
		values[n++] = add_value;
	}
	return modify_values(cfg, dn, n, ops, attrs, values, ret_error);
}
