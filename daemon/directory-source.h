/* directory-source.h: the credential directory in keywardd — the part of a login that
 * asks the directory (on the login's worker thread, bounded by the policy's timeout, the
 * cache when it cannot answer) and the periodic refresh of every cached user (its own
 * worker thread), so that a revocation reaches this host within `refresh` seconds. The
 * event loop never waits for the directory. Adapter layer: lib/directory.h, worker.h. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "creds.h"
#include "directory.h"
#include "policy.h"

/* What one login needs from the directory; made in the loop, run in the login's thread. */
typedef struct DirectoryLogin {
	PolicyDirectory cfg; /* a deep copy: a reload may free the policy meanwhile */
	char *state_dir, *rp_id, *user;
	PolicyCredSource source;
	CredentialSet *local; /* the user's local credentials, as loaded */
	/* results (the thread's) */
	DirectoryUser *dir; /* fetched, or cached */
	bool fresh;         /* the server answered */
	bool refused;       /* neither the server nor a young enough cache */
	/* the shared sign counter (writable directories): directory_login_counter() */
	bool shared_clone;     /* the key's counter was not above the shared one */
	uint32_t shared_value; /* the shared counter it was compared with */
	char message[384];     /* the refusal, for the user and the log */
} DirectoryLogin;

/* In the loop: takes *LOCAL (the user's local set) and gives back in *LOCAL the set to
 * start with (local and the cached directory credentials, per SOURCE) until the thread
 * has the directory's answer. */
int directory_login_new(const PolicySettings *st, const char *user, PolicyCredSource source,
        CredentialSet **local, DirectoryLogin **ret);
/* In the login's thread: asks the directory (bounded), else the cache; replaces *SET by
 * the merged credentials. -EACCES (and ->refused, ->message) when the login must be
 * refused. Logs each rejected value. */
int directory_login_run(DirectoryLogin *l, CredentialSet **set);
DirectoryLogin *directory_login_free(DirectoryLogin *l);
/* In the login's thread, once the key answered with AS: when the directory is writable
 * and AS was made with one of the directory's credentials, checks AS's signature (nothing
 * unverified raises the shared counter) and raises the shared counter keywardSignCount with
 * a compare-and-swap (delete the exact old value + add the new one in ONE modify; another
 * host's change first makes it fail: re-read, retry, at most DIRECTORY_CAS_TRIES). A counter
 * not above the shared one sets ->shared_clone; the loop then refuses it as a clone, as
 * the local counter check does. A directory that cannot be written is logged, and the
 * local counter alone decides. */
#define DIRECTORY_CAS_TRIES 4
struct fido_assert;
void directory_login_counter(
        DirectoryLogin *l, const CredentialSet *set, const struct fido_assert *as);

/* The credentials the cache holds for USER (no network): for the loop's own uses (Check's
 * count, the removal proof). An empty set when there is no directory or no cache. */
int directory_cached_set(const PolicySettings *st, const char *user, CredentialSet **ret);

/* Deep copies of the policy's directory group. */
int directory_config_copy(const PolicyDirectory *src, PolicyDirectory *dst);
void directory_config_done(PolicyDirectory *c);

/* The periodic refresh. apply() (re)arms it from ST (at start and after each reload):
 * every st->directory.refresh_s seconds a thread re-fetches each user in the cache. */
typedef struct DirectoryService DirectoryService;
int directory_service_new(sd_event *event, DirectoryService **ret);
int directory_service_apply(DirectoryService *s, const PolicySettings *st);
DirectoryService *directory_service_free(DirectoryService *s);

/* Writes a new registration of USER to the directory (enrolment with `directory`): on a
 * worker thread, reads the user's entry (it must exist; the id and label must be new there;
 * at most MAX credentials), adds the passkey value and its keywardCredential value in ONE
 * modify, and refreshes the user's cache. DONE(r, message, userdata) runs in the loop
 * (message: why it failed, for the caller). */
typedef void (*directory_write_done_fn)(int r, const char *message, void *userdata);
int directory_enroll_start(sd_event *event, const PolicySettings *st, const char *user,
        const Credential *c, uint32_t max, directory_write_done_fn done, void *userdata);
