/* policy-internal.h: the Policy's inner layout, shared by policy.c (parser, evaluator)
 * and policy-names.c (NSS checks). Not for use outside policy/. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#include "coverage.h"

typedef CoverageUidRange UidRange;

/* The same fields in the same order as CoverageField: rule matching is coverage.c's. */
typedef enum MatchField {
	FIELD_USERS = COVERAGE_FIELD_USERS,
	FIELD_GROUPS = COVERAGE_FIELD_GROUPS,
	FIELD_SERVICES = COVERAGE_FIELD_SERVICES,
	FIELD_TTYS = COVERAGE_FIELD_TTYS,
	_FIELD_STRV_MAX = _COVERAGE_FIELD_MAX,
} MatchField;

static const char *const field_names[_FIELD_STRV_MAX] = {"users", "groups", "services", "ttys"};

typedef struct MatchSet {
	char **strv[_FIELD_STRV_MAX]; /* NULL: no condition */
	unsigned strv_line[_FIELD_STRV_MAX];
	size_t n_strv[_FIELD_STRV_MAX];
	UidRange *uids; /* NULL: no condition */
	size_t n_uids;
	unsigned uids_line;
} MatchSet;

typedef struct PolicyOutcome {
	PolicyRequire require;
	char *reason;
	bool on_remote_set;
	PolicyOnRemote on_remote;
	PolicyUV uv;
	bool up;
	uint8_t (*aaguid_allow)[16];
	size_t n_aaguid_allow;
	uint8_t (*aaguid_deny)[16];
	size_t n_aaguid_deny;
	PolicyAttestation attestation;
	char **trust_anchors;
	unsigned trust_anchors_line;
	PolicyCounter counter;
	PolicyCachedElevation cached_elevation;
	PolicyCredSource credentials;
	PolicyRemoval removal;
	uint32_t grace_ms;
	uint32_t lock_verify_ms;
	PolicyLockFailure on_lock_failure;
	uint32_t lockout_max_failures;
	uint32_t lockout_window_s;
	uint32_t lockout_unlock_after_s;
	uint32_t remote_lifetime_s;
	bool breakglass;
} PolicyOutcome;

struct PolicyRule {
	char *name;
	unsigned line;
	MatchSet match;
	MatchSet not ;
	int remote;   /* -1: no condition, else 0/1 */
	bool invalid; /* had errors of its own: skipped by the cross-rule checks */
	PolicyOutcome outcome;
};

struct Policy {
	char *path;
	char digest[2 * 32 + 1];
	PolicySettings settings;
	PolicyRule *rules;
	size_t n_rules;
	PolicyOutcome def;
	unsigned default_line;
	unsigned admin_group_line;
};
