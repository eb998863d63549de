/* service-coverage.h: which PAM services and accounts a policy covers, answered once for
 * keywardd's enrollment and keywardctl doctor and report, from the PAM stacks present. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "policy.h"

/* One PAM service: present (a PAM file exists) or only named by a rule. */
typedef struct ServiceCoverageEntry {
	char *name;
	bool present;
	int error; /* present, but its stacks could not be read: negative errno; else 0 */
	bool keyward_auth, keyward_account, keyward_session; /* pam_keyward.so in that stack */
	char **rules; /* NULL-terminated: the rules whose match.services name it, in order */
} ServiceCoverageEntry;

typedef struct ServiceCoverage {
	ServiceCoverageEntry *entries; /* sorted by name */
	size_t n;
} ServiceCoverage;

/* Enumerates the PAM services present under ROOT (NULL or "": /; see pam_services_list()),
 * reads the auth, account and session stacks of each (an unreadable one is kept, with
 * .error set), and adds each service a rule of P names that has no PAM file (.present
 * false). P may be NULL (no rules). Returns 0, or a negative errno when the PAM
 * directories cannot be listed. */
int service_coverage_load(const Policy *p, const char *root, ServiceCoverage **ret);
ServiceCoverage *service_coverage_free(ServiceCoverage *c);
static inline void service_coverage_freep(ServiceCoverage **c)
{
	service_coverage_free(*c);
}
/* The entry named NAME, or NULL. */
const ServiceCoverageEntry *service_coverage_find(const ServiceCoverage *c, const char *name);

/* What keyward knows about a few services by name, for messages and for evaluating
 * tty-based rules. Not the list of what is checked: that is what is present. */
typedef struct ServiceHint {
	const char *service;
	const char *what;     /* "console login" */
	bool display_manager; /* a graphical greeter */
	const char *tty;      /* a typical PAM_TTY, or NULL */
	bool elevation;       /* may skip authentication (sudo's cached timestamp) */
} ServiceHint;

/* Every hint, up to the entry whose .service is NULL. */
extern const ServiceHint service_hints[];
/* The hint for SERVICE, or NULL. */
const ServiceHint *service_hint_lookup(const char *service);

/* Decides one request; keywardd passes its own (NSS groups, logind's Remote). */
typedef int (*ServiceCoverageEvaluate)(
        const PolicyRequest *req, PolicyDecision *ret, void *userdata);

typedef struct ServiceCoverageQuery {
	const char *user;
	uid_t uid;
	char *const *groups; /* NULL-terminated group names */
	/* Also the services a rule names that have no PAM file. Enrollment sets it: a
	 * credential serves services installed later, whose rules must accept it now. */
	bool include_absent;
	ServiceCoverageEvaluate evaluate; /* NULL: policy_evaluate() on P */
	void *userdata;
} ServiceCoverageQuery;

/* One service where the policy asks the user for a key. */
typedef struct ServiceCoverageHit {
	const ServiceCoverageEntry *entry; /* points into the ServiceCoverage */
	PolicyDecision decision;           /* require == POLICY_REQUIRE_KEY; points into P */
} ServiceCoverageHit;

/* The services of C (in name order) where P requires a key of Q->user on a local login.
 * Each is evaluated without a tty, then with its hint's tty, so that a rule on ttys does
 * not hide a covered user. Returns 0 with *ret (malloc()ed; NULL when none) and *ret_n,
 * or a negative errno: an evaluation that fails is an error, never "not covered". */
int service_coverage_user(const ServiceCoverage *c, const Policy *p, const ServiceCoverageQuery *q,
        ServiceCoverageHit **ret, size_t *ret_n);

/* The hits' service names joined with ", " (for messages); malloc()ed. */
int service_coverage_hits_join(const ServiceCoverageHit *hits, size_t n, char **ret);
