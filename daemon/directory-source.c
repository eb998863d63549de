/* directory-source.c: a login's directory look-up (worker thread, bounded, cache
 * fallback with a maximum age) and the periodic refresh of the cache (directory-source.h). */
#include "directory-source.h"

#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fido.h>

#include "fido-util.h"
#include "log.h"
#include "util.h"
#include "worker.h"

static int dup_str(const char *s, char **ret)
{
	if (!s) {
		*ret = NULL;
		return 0;
	}
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

void directory_config_done(PolicyDirectory *c)
{
	strv_free(c->uris);
	free(c->base_dn);
	free(c->user_filter);
	free(c->bind_dn);
	free(c->secret_file);
	free(c->tls_ca_file);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	free(c->attribute);
	*c = (PolicyDirectory){};
}

int directory_config_copy(const PolicyDirectory *src, PolicyDirectory *dst)
{
	PolicyDirectory c = {
	        .configured = src->configured,
	        .bind = src->bind,
	        .timeout_ms = src->timeout_ms,
	        .refresh_s = src->refresh_s,
	        .cache_max_age_s = src->cache_max_age_s,
	        .writable = src->writable,
	};
	int r = 0;

	for (char *const *u = src->uris; u && *u && r >= 0; u++)
		r = strv_extend(&c.uris, *u);
	if (r < 0 || dup_str(src->base_dn, &c.base_dn) < 0 ||
	        dup_str(src->user_filter, &c.user_filter) < 0 ||
	        dup_str(src->bind_dn, &c.bind_dn) < 0 ||
	        dup_str(src->secret_file, &c.secret_file) < 0 ||
	        dup_str(src->tls_ca_file, &c.tls_ca_file) < 0 ||
	        dup_str(src->tls_cert_file, &c.tls_cert_file) < 0 ||
	        dup_str(src->tls_key_file, &c.tls_key_file) < 0 ||
	        dup_str(src->attribute, &c.attribute) < 0) {
		directory_config_done(&c);
		return -ENOMEM;
	}
	*dst = c;
	return 0;
}

static int set_copy(const CredentialSet *src, CredentialSet **ret)
{
	CredentialSet *s = NULL;
	int r = credential_set_new(src->user, &s);

	for (size_t i = 0; r >= 0 && i < src->n; i++)
		r = creds_add(s, &src->items[i], 0);
	if (r < 0) {
		credential_set_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

/* The status file is written from the login and refresh threads: one at a time. */
static pthread_mutex_t status_lock = PTHREAD_MUTEX_INITIALIZER;

static void status_note(const char *state_dir, const char *uri, const char *error)
{
	pthread_mutex_lock(&status_lock);
	(void)directory_status_note(state_dir, uri, error);
	pthread_mutex_unlock(&status_lock);
}

static void log_problems(const DirectoryUser *u)
{
	for (char **p = u->problems; p && *p; p++)
		log_warning("Directory credential rejected: %s", *p);
}

DirectoryLogin *directory_login_free(DirectoryLogin *l)
{
	if (!l)
		return NULL;
	directory_config_done(&l->cfg);
	free(l->state_dir);
	free(l->rp_id);
	free(l->user);
	credential_set_free(l->local);
	directory_user_free(l->dir);
	free(l);
	return NULL;
}

int directory_login_new(const PolicySettings *st, const char *user, PolicyCredSource source,
        CredentialSet **local, DirectoryLogin **ret)
{
	DirectoryLogin *l = calloc(1, sizeof(*l));
	_cleanup_directory_user_ DirectoryUser *cached = NULL;
	CredentialSet *start = NULL;
	int r;

	if (!l)
		return -ENOMEM;
	l->source = source;
	if (directory_config_copy(&st->directory, &l->cfg) < 0 ||
	        dup_str(st->state_dir, &l->state_dir) < 0 || dup_str(st->rp_id, &l->rp_id) < 0 ||
	        dup_str(user, &l->user) < 0) {
		directory_login_free(l);
		return -ENOMEM;
	}
	/* Until the thread has the answer: local and what the cache says (the known-key fast
	 * path and the prompt's key count use it; the thread's answer replaces it). */
	r = set_copy(*local, &start);
	if (r >= 0 && directory_cache_load(st->state_dir, user, st->rp_id, &cached) >= 0)
		r = directory_merge(&start, cached->set, source);
	else if (r >= 0 && source == POLICY_CRED_SOURCE_DIRECTORY)
		r = directory_merge(&start, NULL, source);
	if (r < 0) {
		credential_set_free(start);
		directory_login_free(l);
		return r;
	}
	l->local = *local;
	*local = start;
	*ret = l;
	return 0;
}

int directory_cached_set(const PolicySettings *st, const char *user, CredentialSet **ret)
{
	_cleanup_directory_user_ DirectoryUser *d = NULL;

	if (st->directory.configured &&
	        directory_cache_load(st->state_dir, user, st->rp_id, &d) >= 0 && d->set) {
		*ret = TAKE_PTR(d->set);
		return 0;
	}
	return credential_set_new(user, ret);
}

static void format_age(uint64_t s, char *buf, size_t size)
{
	if (s >= 2 * 3600)
		snprintf(buf, size, "%" PRIu64 " h", s / 3600);
	else if (s >= 120)
		snprintf(buf, size, "%" PRIu64 " min", s / 60);
	else
		snprintf(buf, size, "%" PRIu64 " s", s);
}

int directory_login_run(DirectoryLogin *l, CredentialSet **set)
{
	_cleanup_free_ char *error = NULL;
	CredentialSet *merged = NULL;
	const char *uri = l->cfg.uris && l->cfg.uris[0] ? l->cfg.uris[0] : "?";
	int r;

	r = directory_fetch(&l->cfg, l->rp_id, l->user, &l->dir, &error);
	if (r >= 0) {
		l->fresh = true;
		status_note(l->state_dir, l->dir->uri, NULL);
		log_problems(l->dir);
		r = directory_cache_save(l->state_dir, l->dir);
		if (r < 0)
			log_warning_errno(r, "Cannot write the directory cache of %s in %s/%s: %m",
			        l->user, l->state_dir, DIRECTORY_CACHE_SUBDIR);
	} else if (r == -ENOMEM)
		return r;
	else {
		uint64_t now = now_realtime_ms(), age_s;
		char age[32], limit[32];

		log_warning("Directory unreachable for %s's login: %s", l->user, strna(error));
		status_note(l->state_dir, NULL, strna(error));
		r = directory_cache_load(l->state_dir, l->user, l->rp_id, &l->dir);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			snprintf(l->message, sizeof(l->message),
			        "The directory (%s) cannot be reached and no keys of %s are cached "
			        "on this host; try again when it is back, or ask an administrator.",
			        uri, l->user);
			l->refused = true;
			return -EACCES;
		}
		age_s = now > l->dir->fetched_ms ? (now - l->dir->fetched_ms) / 1000 : 0;
		if (age_s > l->cfg.cache_max_age_s) {
			format_age(age_s, age, sizeof(age));
			format_age(l->cfg.cache_max_age_s, limit, sizeof(limit));
			snprintf(l->message, sizeof(l->message),
			        "The directory (%s) cannot be reached and the cached keys of %s "
			        "are "
			        "%s old (limit %s); try again when it is back, or ask an "
			        "administrator.",
			        uri, l->user, age, limit);
			l->refused = true;
			return -EACCES;
		}
		log_info("Using the cached directory keys of %s (%" PRIu64 " s old).", l->user,
		        age_s);
	}
	r = set_copy(l->local, &merged);
	if (r >= 0)
		r = directory_merge(&merged, l->dir->set, l->source);
	if (r < 0) {
		credential_set_free(merged);
		return r;
	}
	credential_set_free(*set);
	*set = merged;
	return 0;
}

void directory_login_counter(DirectoryLogin *l, const CredentialSet *set, const fido_assert_t *as)
{
	_cleanup_free_ char *id = NULL;
	_cleanup_free_ uint8_t *pk = NULL;
	const Credential *c;
	uint32_t count;
	size_t pk_len;

	if (!l->cfg.writable || !l->fresh || !l->dir || !l->dir->dn || fido_assert_count(as) != 1 ||
	        fido_assert_id_len(as, 0) == 0 ||
	        base64_encode(fido_assert_id_ptr(as, 0), fido_assert_id_len(as, 0), &id) < 0)
		return;
	c = creds_find_id(set, id);
	if (!c || !creds_find_id(l->dir->set, id) || base64_decode(c->public_key, &pk, &pk_len) < 0)
		return; /* a local credential: its counter is local */
	if (fido_assert_verify_raw(as, 0, c->cose_alg, pk, pk_len) != FIDO_OK)
		return; /* the loop refuses it; nothing unverified touches the shared counter */
	count = fido_assert_sigcount(as, 0);
	for (unsigned try = 0; try < DIRECTORY_CAS_TRIES; try++) {
		const DirectoryCounter *cur = directory_user_counter(l->dir, id);
		_cleanup_free_ char *value = NULL, *error = NULL;
		DirectoryUser *again = NULL;
		int r;

		if (cur && count <= cur->value) {
			l->shared_clone = true;
			l->shared_value = cur->value;
			return;
		}
		if (count == 0)
			return; /* a key that does not count: the policy's counter setting decides
			         */
		if (directory_counter_format(id, count, &value) < 0)
			return;
		r = directory_modify(&l->cfg, l->dir->dn, DIRECTORY_ATTR_COUNTER,
		        cur ? cur->raw : NULL, value, &error);
		if (r >= 0 || r == -EEXIST)
			return;
		if (r != -ESTALE) {
			log_warning(
			        "The shared sign counter of %s cannot be written (%s); the local "
			        "counter alone decides.",
			        l->user, error ? error : strerror(-r));
			return;
		}
		/* Another host raised it first: read what it wrote, and compare again. */
		log_info("Shared sign counter of %s changed meanwhile (try %u); reading it again.",
		        l->user, try + 1);
		if (directory_fetch(&l->cfg, l->rp_id, l->user, &again, NULL) < 0)
			return;
		directory_user_free(l->dir);
		l->dir = again;
	}
	log_warning("The shared sign counter of %s kept changing; the local counter alone decides.",
	        l->user);
}

/* ---- the periodic refresh ---- */

typedef struct RefreshJob {
	PolicyDirectory cfg;
	char *state_dir, *rp_id;
	unsigned ok, failed;
} RefreshJob;

struct DirectoryService {
	sd_event *event;
	sd_event_source *timer;
	Worker *worker;
	RefreshJob *job;
	PolicyDirectory cfg; /* in force */
	char *state_dir, *rp_id;
};

static void refresh_job_free(RefreshJob *j)
{
	if (!j)
		return;
	directory_config_done(&j->cfg);
	free(j->state_dir);
	free(j->rp_id);
	free(j);
}

static void refresh_work(void *userdata)
{
	RefreshJob *j = ((DirectoryService *)userdata)->job;
	_cleanup_strv_free_ char **users = NULL;

	if (directory_cache_users(j->state_dir, &users) < 0)
		return;
	for (char **u = users; *u; u++) {
		_cleanup_directory_user_ DirectoryUser *d = NULL;
		_cleanup_free_ char *error = NULL;
		int r = directory_fetch(&j->cfg, j->rp_id, *u, &d, &error);

		if (r < 0) {
			j->failed++;
			log_warning("Directory refresh of %s failed: %s", *u, strna(error));
			status_note(j->state_dir, NULL, strna(error));
			continue;
		}
		status_note(j->state_dir, d->uri, NULL);
		log_problems(d);
		r = directory_cache_save(j->state_dir, d);
		if (r < 0)
			log_warning_errno(r, "Cannot write the directory cache of %s: %m", *u);
		else
			j->ok++;
	}
}

static void refresh_done(void *userdata)
{
	DirectoryService *s = userdata;

	log_debug(
	        "Directory refresh: %u user(s) refreshed, %u failed.", s->job->ok, s->job->failed);
	(void)worker_free(s->worker);
	s->worker = NULL;
	refresh_job_free(s->job);
	s->job = NULL;
}

static int on_refresh(sd_event_source *src, uint64_t usec, void *userdata)
{
	DirectoryService *s = userdata;
	RefreshJob *j;
	int r;

	(void)usec;
	(void)sd_event_source_set_time_relative(src, (uint64_t)s->cfg.refresh_s * 1000000ULL);
	(void)sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
	if (s->worker) /* the last one still runs (a slow server): skip this round */
		return 0;
	j = calloc(1, sizeof(*j));
	if (!j || directory_config_copy(&s->cfg, &j->cfg) < 0 ||
	        dup_str(s->state_dir, &j->state_dir) < 0 || dup_str(s->rp_id, &j->rp_id) < 0) {
		refresh_job_free(j);
		log_warning("Out of memory: directory refresh skipped.");
		return 0;
	}
	s->job = j;
	r = worker_start(s->event, refresh_work, refresh_done, s, &s->worker);
	if (r < 0) {
		log_warning_errno(r, "Cannot start the directory refresh: %m");
		refresh_job_free(j);
		s->job = NULL;
	}
	return 0;
}

int directory_service_new(sd_event *event, DirectoryService **ret)
{
	DirectoryService *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->event = sd_event_ref(event);
	*ret = s;
	return 0;
}

int directory_service_apply(DirectoryService *s, const PolicySettings *st)
{
	PolicyDirectory c = {};
	int r;

	if (!s)
		return 0;
	s->timer = sd_event_source_disable_unref(s->timer);
	directory_config_done(&s->cfg);
	if (!st->directory.configured)
		return 0;
	r = directory_config_copy(&st->directory, &c);
	if (r < 0)
		return r;
	s->cfg = c;
	free(s->state_dir);
	free(s->rp_id);
	if (dup_str(st->state_dir, &s->state_dir) < 0 || dup_str(st->rp_id, &s->rp_id) < 0)
		return -ENOMEM;
	r = sd_event_add_time_relative(s->event, &s->timer, CLOCK_MONOTONIC,
	        (uint64_t)c.refresh_s * 1000000ULL, 0, on_refresh, s);
	if (r < 0)
		return r;
	return sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
}

DirectoryService *directory_service_free(DirectoryService *s)
{
	if (!s)
		return NULL;
	sd_event_source_disable_unref(s->timer);
	if (s->worker && worker_free(s->worker))
		refresh_job_free(s->job);
	directory_config_done(&s->cfg);
	free(s->state_dir);
	free(s->rp_id);
	sd_event_unref(s->event);
	free(s);
	return NULL;
}

/* ---- enrolment into the directory ---- */

typedef struct EnrollJob {
	PolicyDirectory cfg;
	char *state_dir, *rp_id, *user;
	CredentialSet *add; /* the one credential */
	uint32_t max;
	int r;
	char message[384];
	Worker *worker;
	directory_write_done_fn done;
	void *userdata;
} EnrollJob;

static void enroll_job_free(EnrollJob *j)
{
	directory_config_done(&j->cfg);
	free(j->state_dir);
	free(j->rp_id);
	free(j->user);
	credential_set_free(j->add);
	free(j);
}

static void enroll_job_work(void *userdata)
{
	EnrollJob *j = userdata;
	const Credential *c = &j->add->items[0];
	_cleanup_directory_user_ DirectoryUser *u = NULL, *after = NULL;
	_cleanup_free_ char *error = NULL, *value = NULL, *kw = NULL;

	j->r = directory_fetch(&j->cfg, j->rp_id, j->user, &u, &error);
	if (j->r < 0) {
		snprintf(j->message, sizeof(j->message), "The directory cannot be reached: %s",
		        strna(error));
		return;
	}
	if (!u->dn) {
		j->r = -ENOENT;
		snprintf(j->message, sizeof(j->message),
		        "%s has no entry in the directory (%s under %s).", j->user,
		        j->cfg.user_filter, j->cfg.base_dn);
		return;
	}
	if (creds_find_id(u->set, c->id) || creds_find_label(u->set, c->label)) {
		j->r = -EEXIST;
		snprintf(j->message, sizeof(j->message),
		        "%s already has a credential with that id or label '%s' in the directory.",
		        j->user, c->label);
		return;
	}
	if (j->max > 0 && u->set->n >= j->max) {
		j->r = -E2BIG;
		snprintf(j->message, sizeof(j->message),
		        "%s already has the most credentials the policy allows (in the directory).",
		        j->user);
		return;
	}
	j->r = directory_passkey_format(c, &value);
	if (j->r >= 0)
		j->r = directory_keyward_format(c, &kw);
	if (j->r >= 0)
		j->r = directory_add_values(&j->cfg, u->dn, j->cfg.attribute, value,
		        DIRECTORY_ATTR_CREDENTIAL, kw, &error);
	if (j->r < 0) {
		snprintf(j->message, sizeof(j->message),
		        "The directory refused the registration: %s",
		        error ? error : strerror(-j->r));
		return;
	}
	/* The cache as the directory now has it (the next login here needs no round trip to
	 * see the new key when the server goes away). */
	if (directory_fetch(&j->cfg, j->rp_id, j->user, &after, NULL) >= 0)
		(void)directory_cache_save(j->state_dir, after);
}

static void enroll_job_done(void *userdata)
{
	EnrollJob *j = userdata;

	j->done(j->r, j->message, j->userdata);
	(void)worker_free(j->worker);
	enroll_job_free(j);
}

int directory_enroll_start(sd_event *event, const PolicySettings *st, const char *user,
        const Credential *c, uint32_t max, directory_write_done_fn done, void *userdata)
{
	EnrollJob *j = calloc(1, sizeof(*j));
	int r;

	if (!j)
		return -ENOMEM;
	j->max = max;
	j->done = done;
	j->userdata = userdata;
	r = directory_config_copy(&st->directory, &j->cfg);
	if (r >= 0 && (dup_str(st->state_dir, &j->state_dir) < 0 ||
	                      dup_str(st->rp_id, &j->rp_id) < 0 || dup_str(user, &j->user) < 0))
		r = -ENOMEM;
	if (r >= 0)
		r = credential_set_new(user, &j->add);
	if (r >= 0)
		r = creds_add(j->add, c, 0);
	if (r >= 0)
		r = worker_start(event, enroll_job_work, enroll_job_done, j, &j->worker);
	if (r < 0) {
		enroll_job_free(j);
		return r;
	}
	return 0;
}
