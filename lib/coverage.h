/* coverage.h: the coverage snapshot — what the PAM module needs to decide, with keywardd
 * unreachable, whether the policy covers a login — its text format (writer and strict
 * reader), and the one rule-matching function that policy_evaluate() uses too.
 *
 * keywardd writes the snapshot (0644, root) each time a policy is loaded: into the runtime
 * directory (RUNTIME_DIR/coverage) and beside the last good policy copy (coverage_state_path()).
 * Format, one item a line, "KEY VALUE" (VALUE: the rest of the line, printable ASCII or UTF-8,
 * no control characters), in this order:
 *
 *   keyward-coverage 1                   format version, first line
 *   digest <64 lower-case hex>           sha256 of the policy file
 *   failmode closed|open
 *   rule <name>                          each rule in evaluation order (first match wins) ...
 *   require key|none|deny                ... its outcome, mandatory, right after `rule`
 *   on-remote deny|none|ssh-key          optional, at most once
 *   reason <text>                        optional, at most once
 *   remote yes|no                        optional, at most once (match.remote)
 *   user|group|service|tty <value>       match lists, one entry a line (tty: fnmatch pattern,
 *   uid <lo>-<hi>                        may be empty)
 *   not-user|not-group|not-service|not-tty|not-uid <value>     the `not` lists
 *   default                              the default outcome: require, on-remote, reason
 *   end <number of rules>                last line; the file ends with a newline
 *
 * Anything else — unknown key, repeated single key, a line longer than COVERAGE_LINE_MAX,
 * more than COVERAGE_RULES_MAX rules or COVERAGE_LIST_MAX entries in a list, a file larger
 * than COVERAGE_FILE_MAX, a missing end line — makes the whole snapshot unusable. No
 * libconfig, no libcrypto: pam_keyward.so links this. Library code: no logging. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy-enums.h"

#define COVERAGE_FORMAT_VERSION 1
#define COVERAGE_FILE_NAME      "coverage" /* in the runtime directory */
#define COVERAGE_FILE_MAX       (4u * 1024u * 1024u)
#define COVERAGE_LINE_MAX       1100u /* "not-service " + a 1024-byte value, with room */
#define COVERAGE_VALUE_MAX      1024u
#define COVERAGE_RULES_MAX      1024u
#define COVERAGE_LIST_MAX       256u

typedef struct CoverageUidRange {
	uint32_t lo, hi;
} CoverageUidRange;

typedef enum CoverageField {
	COVERAGE_FIELD_USERS,
	COVERAGE_FIELD_GROUPS,
	COVERAGE_FIELD_SERVICES,
	COVERAGE_FIELD_TTYS, /* fnmatch(3) patterns */
	_COVERAGE_FIELD_MAX,
} CoverageField;

/* A rule's `match` or `not` conditions. Within a list any entry matches; across lists all
 * must. NULL list: no condition. */
typedef struct CoverageMatch {
	char **strv[_COVERAGE_FIELD_MAX];
	CoverageUidRange *uids;
	size_t n_uids;
} CoverageMatch;

/* The part of an outcome that decides coverage. */
typedef struct CoverageOutcome {
	PolicyRequire require;
	bool on_remote_set;
	PolicyOnRemote on_remote;
	char *reason; /* NULL: none */
} CoverageOutcome;

typedef struct CoverageRule {
	char *name;
	CoverageMatch match;
	CoverageMatch not ;
	int remote; /* -1: no condition, else 0/1 */
	CoverageOutcome outcome;
} CoverageRule;

typedef struct CoverageSnapshot {
	bool borrowed; /* strings belong to someone else (policy_coverage()): free only rules */
	char digest[2 * 32 + 1];
	PolicyFailMode failmode;
	CoverageRule *rules;
	size_t n_rules;
	CoverageOutcome def;
} CoverageSnapshot;

/* One login. What could not be looked up is marked unknown, never guessed. */
typedef struct CoverageRequest {
	const char *user;
	uid_t uid;
	bool uid_unknown;
	char *const *groups; /* NULL-terminated names */
	bool groups_unknown;
	const char *service;
	const char *tty; /* NULL: "" */
	bool remote;     /* the effective verdict (coverage_is_remote() ORed with logind's) */
} CoverageRequest;

typedef struct CoverageDecision {
	PolicyRequire require; /* after remote resolution */
	const char *rule_name; /* the rule's name or "default" */
	bool is_default;
	const char *reason;   /* for DENY: the rule's reason or why a remote login is refused */
	bool remote_resolved; /* a `key` outcome that became on_remote (remote login):
	                       * DENY, NONE or SSH_KEY */
	bool undecidable;     /* a rule that could change the answer needed an unknown uid or
	                       * groups: the login counts as covered (require KEY) */
} CoverageDecision;

CoverageSnapshot *coverage_snapshot_free(CoverageSnapshot *s);
static inline void coverage_snapshot_freep(CoverageSnapshot **s)
{
	if (*s)
		coverage_snapshot_free(*s);
}

/* Whether the conditions MATCH, NOT and REMOTE (-1: none) of one rule apply to REQ:
 * 1 yes, 0 no, -ENODATA when only an unknown uid or group list could tell. */
int coverage_rule_matches(const CoverageMatch *match, const CoverageMatch *not_, int remote,
        const CoverageRequest *req);

/* What outcome O amounts to for a login (REMOTE): require, reason, remote_resolved of *D.
 * A `key` outcome of a remote login becomes on_remote (unset: deny, with a reason). */
void coverage_outcome_resolve(const CoverageOutcome *o, bool remote, CoverageDecision *d);

/* First matching rule wins, else the default. Fills *ret with pointers into S. */
int coverage_evaluate(const CoverageSnapshot *s, const CoverageRequest *req, CoverageDecision *ret);

/* The snapshot as text (format above); malloc()ed. -EFBIG beyond COVERAGE_FILE_MAX,
 * -EINVAL for content the reader would refuse. */
int coverage_snapshot_format(const CoverageSnapshot *s, char **ret, size_t *ret_len);
/* Formats S and replaces PATH atomically with it, mode 0644. */
int coverage_snapshot_write(const CoverageSnapshot *s, const char *path);
/* Strict parser of the text format; -EBADMSG for anything unexpected. */
int coverage_snapshot_parse(const char *text, size_t len, CoverageSnapshot **ret);
/* safe_open()s PATH (root-owned, not group/world-writable, no symlink) and parses it.
 * On failure *ret_problem (if given) gets a static sentence fragment: safe_open()'s problem
 * text (with FILE for the path), "is malformed" or "is too large". */
int coverage_snapshot_load(const char *path, CoverageSnapshot **ret, const char **ret_problem);

/* Where the snapshot is kept beside the last good policy copy (policy_last_good_path()):
 * STATE_DIR/coverage for the default configuration, "CONFIG_PATH.coverage" beside any other.
 * malloc()ed. */
int coverage_state_path(const char *config_path, char **ret);

/* Whether a login is remote, decided in one place (policy_is_remote() is this): RHOST
 * non-empty: local only for loopback addresses and names; RHOST empty: remote only for a tty
 * naming an X display on another host. See policy.h. */
bool coverage_is_remote(const char *rhost, const char *tty);
