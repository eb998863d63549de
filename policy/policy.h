/* policy.h: the keyward policy engine — parse a libconfig keyward.conf into a Policy,
 * validate it, and decide per request. Pure: no logging, no device or bus I/O
 * (except policy_check_names(), for keywardctl). The grammar, in short (keyward.conf(5)):
 *
 *   settings = { rp_id; timeout (ms); failmode; audit_failure; credentials_dir; state_dir;
 *                runtime_dir; audit_log; admin_group; cue; max_credentials_per_user;
 *                max_bindings;
 *                breakglass = { services; codes; validity; argon2 = { opslimit; memlimit; };
 *                               max_attempts; window; two_person; approval_validity;
 *                               require_enroll; };
 *                audit = { rotate_size; rotate_age; keep_files; keep_age; keep_min_files;
 *                          seal_every; space_left; space_left_action; admin_space_left;
 *                          admin_space_left_action; disk_full_action; };
 *                directory = { uri; base_dn; user_filter; bind; bind_dn; secret_file;
 *                          tls_ca_file; tls_cert_file; tls_key_file; attribute; timeout;
 *                          refresh; cache_max_age; writable; }; } (all optional)
 *   rules = ( { name = "x";                                         (mandatory, unique)
 *               match = { users; groups; uids ("N" | "N-M"); services; ttys (fnmatch);
 *                         remote = true|false;
 *                         not = { users; groups; uids; services; ttys; }; };
 *               <outcome> }, ... );                 first match wins; at most 1024
 *   default = { <outcome> };                                        (mandatory)
 *   <outcome>: require = "key"|"none"|"deny" (mandatory); reason;
 *              on_remote = "deny"|"none"|"ssh-key"; remote_lifetime (s);
 *              user_verification; user_presence; aaguid_allow; aaguid_deny; attestation;
 *              trust_anchors; counter; cached_elevation; credentials; removal = { action; grace;
 * lock_verify; on_lock_failure; }; lockout = { max_failures; window; unlock_after; }; breakglass =
 * true|false (default false: the rule opts in to recovery); Lists take one string or a list/array
 * of strings; within a list any entry matches, across keys all must. A remote request whose outcome
 * is "key" resolves to on_remote (unset: deny; "ssh-key": require POLICY_REQUIRE_SSH_KEY). */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy-directory.h" /* PolicyDirectory, PolicyCredSource */
#include "policy-enums.h"     /* PolicyRequire, PolicyUV, PolicyFailMode, PolicyOnRemote */

typedef struct Policy Policy;
typedef struct PolicyRule PolicyRule;
typedef struct CoverageSnapshot CoverageSnapshot;

typedef enum PolicyAttestation {
	POLICY_ATTESTATION_NONE,     /* attestation not checked */
	POLICY_ATTESTATION_VERIFIED, /* x5c must chain to one of trust_anchors */
	_POLICY_ATTESTATION_MAX,
	_POLICY_ATTESTATION_INVALID = -EINVAL,
} PolicyAttestation;

typedef enum PolicyCounter {
	POLICY_COUNTER_STRICT,     /* deny a counter that did not increase (clone) */
	POLICY_COUNTER_ALLOW_ZERO, /* tolerate authenticators that always report 0 */
	_POLICY_COUNTER_MAX,
	_POLICY_COUNTER_INVALID = -EINVAL,
} PolicyCounter;

/* What an elevation that skipped authentication (sudo's cached timestamp) must show in
 * the PAM account phase. */
typedef enum PolicyCachedElevation {
	POLICY_CACHED_ELEVATION_SAME_KEY, /* the key of the user's last authentication is still
	                                   * plugged, proven by a silent assertion; else touch */
	POLICY_CACHED_ELEVATION_TOUCH,    /* a fresh touch every time */
	_POLICY_CACHED_ELEVATION_MAX,
	_POLICY_CACHED_ELEVATION_INVALID = -EINVAL,
} PolicyCachedElevation;

typedef enum PolicyRemoval {
	POLICY_REMOVAL_NONE,
	POLICY_REMOVAL_LOCK,
	POLICY_REMOVAL_TERMINATE,
	POLICY_REMOVAL_END_ELEVATION,
	_POLICY_REMOVAL_MAX,
	_POLICY_REMOVAL_INVALID = -EINVAL,
} PolicyRemoval;

typedef enum PolicyLockFailure {
	POLICY_LOCK_FAILURE_TERMINATE,
	POLICY_LOCK_FAILURE_ALERT,
	_POLICY_LOCK_FAILURE_MAX,
	_POLICY_LOCK_FAILURE_INVALID = -EINVAL,
} PolicyLockFailure;

typedef enum PolicyAuditFailure {
	POLICY_AUDIT_FAILURE_DENY,  /* trail unwritable: deny covered authentications (default) */
	POLICY_AUDIT_FAILURE_ALERT, /* trail unwritable: continue, alert via syslog */
	_POLICY_AUDIT_FAILURE_MAX,
	_POLICY_AUDIT_FAILURE_INVALID = -EINVAL,
} PolicyAuditFailure;

/* What keywardd does when free space under the audit trail falls below a threshold, or
 * runs out (disk_full_action: deny or rotate only). Same order as lib/audit.h's
 * AuditSpaceAction. */
typedef enum PolicyAuditSpaceAction {
	POLICY_AUDIT_SPACE_IGNORE,
	POLICY_AUDIT_SPACE_ALERT,  /* a "space" record, journald warning, once per crossing */
	POLICY_AUDIT_SPACE_ROTATE, /* alert, then remove the oldest rotated (sealed) files */
	POLICY_AUDIT_SPACE_DENY,   /* disk full: covered logins are denied (audit_failure) */
	_POLICY_AUDIT_SPACE_MAX,
	_POLICY_AUDIT_SPACE_INVALID = -EINVAL,
} PolicyAuditSpaceAction;

/* A free-space threshold: percent of the file system (1..99) or bytes (percent 0). */
typedef struct PolicySpace {
	uint64_t bytes;
	unsigned percent;
} PolicySpace;

/* The `audit` group in `settings`: rotation, retention and free space of the trail. */
typedef struct PolicyAuditSettings {
	uint64_t rotate_size;    /* bytes, default 64 MiB; 0: no rotation by size */
	uint64_t rotate_age_s;   /* default 0: no rotation by age */
	uint32_t keep_files;     /* rotated files kept, default 16; 0: no limit */
	uint64_t keep_age_s;     /* rotated files kept at most this long; 0 (default): no limit */
	uint32_t keep_min_files; /* never removed to make room, default 1 */
	uint32_t seal_every;     /* records per seal, default 64 */
	PolicySpace space_left;  /* default 5% */
	PolicyAuditSpaceAction space_left_action;       /* default alert */
	PolicySpace admin_space_left;                   /* default 1% */
	PolicyAuditSpaceAction admin_space_left_action; /* default alert */
	PolicyAuditSpaceAction disk_full_action;        /* default deny */
} PolicyAuditSettings;

/* Bounds of the break-glass settings. The Argon2id ones are libsodium's own minimums
 * (crypto_pwhash_argon2id_*_MIN, checked against its header in lib/breakglass.c); the
 * maximums keep one verification within what keywardd can afford. */
#define POLICY_BREAKGLASS_CODES_MAX        64
#define POLICY_BREAKGLASS_OPSLIMIT_MIN     1u
#define POLICY_BREAKGLASS_OPSLIMIT_MAX     32u
#define POLICY_BREAKGLASS_MEMLIMIT_MIN     UINT64_C(8192)
#define POLICY_BREAKGLASS_MEMLIMIT_MAX     (UINT64_C(1) << 30)
#define POLICY_BREAKGLASS_OPSLIMIT_DEFAULT 3u
#define POLICY_BREAKGLASS_MEMLIMIT_DEFAULT (UINT64_C(64) << 20)

/* The `breakglass` group in `settings`: recovery for a covered user who lost their key
 * (docs/breakglass.md). A rule (or `default`) must also opt in with breakglass = true. */
typedef struct PolicyBreakglass {
	char **services;              /* PAM services where it is accepted; default {"login"} */
	uint32_t codes;               /* codes per issue, default 10 */
	uint64_t validity_s;          /* how long issued codes stay valid, default 30 days */
	uint32_t argon2_opslimit;     /* Argon2id passes, default 3 */
	uint64_t argon2_memlimit;     /* Argon2id memory (bytes), default 64 MiB */
	uint32_t max_attempts;        /* attempts per user within window_s, default 5 */
	uint32_t window_s;            /* default 900 */
	bool two_person;              /* another admin's key may approve one login; default false */
	uint32_t approval_validity_s; /* how long an approval stays usable, default 900 */
	bool require_enroll;          /* after a break-glass login, no elevation until a new key is
	                               * enrolled; default true */
} PolicyBreakglass;

/* Global settings (the `settings` group). Strings owned by the Policy. */
typedef struct PolicySettings {
	char *rp_id;           /* default "pam://keyward" */
	uint32_t timeout_ms;   /* touch/PIN timeout, default 30000 */
	char *credentials_dir; /* default KEYWARD_DEFAULT_CREDENTIALS_DIR */
	char *state_dir;       /* default KEYWARD_DEFAULT_STATE_DIR */
	char *runtime_dir;     /* default KEYWARD_DEFAULT_RUNTIME_DIR */
	char *audit_log;       /* default KEYWARD_DEFAULT_AUDIT_LOG */
	PolicyFailMode failmode;
	PolicyAuditFailure audit_failure;
	char *admin_group; /* members may manage keyward over D-Bus (NULL: root only) */
	char *cue;         /* prompt text, "%u" -> user; default "Touch your security key for %u" */
	uint32_t max_credentials_per_user; /* default 16 */
	uint32_t max_bindings;             /* default 65536 */
	PolicyAuditSettings audit;
	PolicyBreakglass breakglass;
	PolicyDirectory directory; /* the `directory` group (policy-directory.h) */
} PolicySettings;

/* Everything a matching rule requires; what policy_evaluate() hands back. */
typedef struct PolicyDecision {
	PolicyRequire require;
	const char *rule_name; /* rule's name, or "default" */
	const char *file;      /* file that defined the rule */
	unsigned line;         /* line of the rule's '{' or of `default` (always in the file) */
	bool is_default;       /* no rule matched; the `default` outcome applied */
	const char *reason;    /* rule's `reason` text for deny, or NULL */

	PolicyUV user_verification;
	bool user_presence; /* true unless the rule explicitly turned it off */

	/* Authenticator restrictions: AAGUIDs as 16-byte binary arrays. */
	const uint8_t (*aaguid_allow)[16];
	size_t n_aaguid_allow; /* 0: any AAGUID not denied */
	const uint8_t (*aaguid_deny)[16];
	size_t n_aaguid_deny;
	PolicyAttestation attestation;
	char *const *trust_anchors; /* NULL-terminated PEM file paths */

	PolicyCounter counter;
	PolicyCachedElevation cached_elevation;
	PolicyCredSource credentials; /* which credential source counts */

	PolicyRemoval removal;
	uint32_t grace_ms;       /* re-plug window; 0 = act at once */
	uint32_t lock_verify_ms; /* wait for LockedHint, default 2000 */
	PolicyLockFailure on_lock_failure;

	uint32_t lockout_max_failures; /* 0 = no lockout */
	uint32_t lockout_window_s;
	uint32_t lockout_unlock_after_s;

	/* on_remote = "ssh-key": how long an elevation approved through the SSH agent lives
	 * (no removal event exists for a remote key); seconds, default 900. */
	uint32_t remote_lifetime_s;

	/* Remote handling. `remote` is the effective verdict: req->remote OR
	 * policy_is_remote(req->rhost, req->tty). When the matching outcome required a key
	 * and the login is remote, `require` holds the resolved value (DENY or NONE),
	 * `remote_resolved` is true and `reason` says why (for DENY). */
	bool remote;
	bool remote_resolved;
	bool on_remote_set;       /* the outcome stated on_remote explicitly */
	PolicyOnRemote on_remote; /* DENY when not set */

	bool breakglass; /* the outcome opts in to break-glass (policy_breakglass_allows()) */
} PolicyDecision;

/* What is being decided. Group names are resolved by the caller (getgrouplist). */
typedef struct PolicyRequest {
	const char *user;
	uid_t uid;
	char *const *groups; /* NULL-terminated; primary and supplementary group names */
	const char *service; /* PAM service */
	const char *rhost;   /* PAM_RHOST or NULL */
	const char *tty;     /* PAM_TTY or NULL */
	bool remote;         /* caller's verdict (logind Remote); policy_evaluate() ORs in
	                      * policy_is_remote(rhost, tty), so it can only add "remote" */
} PolicyRequest;

typedef enum PolicySeverity {
	POLICY_SEVERITY_WARNING,
	POLICY_SEVERITY_ERROR,
} PolicySeverity;

/* One message about the file, printed as "file:line: error: message". */
typedef struct PolicyDiagnostic {
	PolicySeverity severity;
	char *file;
	unsigned line;
	char *message;
} PolicyDiagnostic;

typedef struct PolicyDiagnostics {
	PolicyDiagnostic *items;
	size_t n;
} PolicyDiagnostics;

void policy_diagnostics_clear(PolicyDiagnostics *d);
size_t policy_diagnostics_errors(const PolicyDiagnostics *d);

/* Parses and validates PATH. Any error → returns negative (-EINVAL for content
 * errors, -errno for I/O) and *ret untouched; diagnostics (errors and warnings) are
 * appended to diags in either case. A file with any error is never returned. The file
 * must be a regular file, not a symlink; ownership/mode checks are the caller's. */
int policy_load_file(const char *path, PolicyDiagnostics *diags, Policy **ret);
/* Same from a string (tests, fuzzing); FILENAME is used in messages. */
int policy_load_string(
        const char *text, const char *filename, PolicyDiagnostics *diags, Policy **ret);
Policy *policy_free(Policy *p);

#define POLICY_REMOTE_LIFETIME_DEFAULT 900u
#define POLICY_REMOTE_LIFETIME_MAX     86400u

/* Largest policy file accepted (bytes). */
#define POLICY_FILE_MAX (1024 * 1024)
/* Where keywardd keeps a copy of the last policy that loaded from CONFIG_PATH, for a
 * restart with a broken file on disk and for pam_keyward's fallback: the state directory
 * for the default configuration, "CONFIG_PATH.last-good" beside any other. malloc()ed. */
int policy_last_good_path(const char *config_path, char **ret);
static inline void policy_freep(Policy **p)
{
	if (*p)
		policy_free(*p);
}

const PolicySettings *policy_settings(const Policy *p);
/* SHA-256 of the file content as lower-case hex (for the audit record). */
const char *policy_digest(const Policy *p);
const char *policy_path(const Policy *p);

/* First matching rule wins; no match → the `default` outcome. Fills *ret with
 * pointers into p (valid while p lives). Returns 0, or -EINVAL on a bad request. */
int policy_evaluate(const Policy *p, const PolicyRequest *req, PolicyDecision *ret);

/* Whether a login is remote, decided in one place. RHOST non-empty: local only for
 * loopback — 127.0.0.0/8, ::1, IPv4-mapped ::ffff:127.x.y.z, in any IPv6 spelling, with
 * "[addr]", "[addr]:port", "a.b.c.d:port" and "%zone" forms — and the names localhost,
 * localhost.localdomain, ip6-localhost, ip6-loopback (any case); every other name or
 * unparsable text is remote. RHOST NULL or "": the tty decides only when it names an X
 * display on another host ("host:0", "[2001:db8::1]:0.0" → remote; ":0" → local); any
 * other tty is no evidence (polkit sets no rhost): callers OR in logind's Remote. */
bool policy_is_remote(const char *rhost, const char *tty);

/* The one function in policy/ that does I/O (NSS and file-system look-ups), for
 * keywardctl: appends an error for each group (in matches and admin_group) unknown to
 * NSS, a warning for each user unknown to NSS, and a warning for each PAM service
 * with neither ROOT/etc/pam.d/<service> nor ROOT/usr/lib/pam.d/<service> (libpam's
 * vendor directory; ROOT NULL: /), and an error for each
 * trust anchor of a `verified` outcome that is not a regular file. Returns the number
 * of errors it added (>= 0) or -ENOMEM. */
int policy_check_names(const Policy *p, const char *root, PolicyDiagnostics *diags);

/* The coverage snapshot of P (lib/coverage.h): for each rule in evaluation order what
 * decides whether it applies and its outcome's requirement, then the default. The
 * snapshot borrows P's strings (valid while P lives); free it with coverage_snapshot_free(). */
int policy_coverage(const Policy *p, CoverageSnapshot **ret);

/* Whether a break-glass code or approval may stand in for a key in the login D was made
 * for, on SERVICE: D requires a key, its outcome opted in (breakglass = true) and SERVICE
 * is in settings.breakglass.services. */
bool policy_breakglass_allows(const Policy *p, const PolicyDecision *d, const char *service);

/* Every setting/rule key the parser knows (NULL-terminated), for the man page check. */
extern const char *const policy_known_keys[];

const char *policy_attestation_to_string(PolicyAttestation v);
PolicyAttestation policy_attestation_from_string(const char *s);
const char *policy_counter_to_string(PolicyCounter v);
PolicyCounter policy_counter_from_string(const char *s);
const char *policy_cached_elevation_to_string(PolicyCachedElevation v);
PolicyCachedElevation policy_cached_elevation_from_string(const char *s);
const char *policy_removal_to_string(PolicyRemoval v);
PolicyRemoval policy_removal_from_string(const char *s);
const char *policy_lock_failure_to_string(PolicyLockFailure v);
PolicyLockFailure policy_lock_failure_from_string(const char *s);
const char *policy_audit_failure_to_string(PolicyAuditFailure v);
PolicyAuditFailure policy_audit_failure_from_string(const char *s);

const char *policy_audit_space_action_to_string(PolicyAuditSpaceAction v);
PolicyAuditSpaceAction policy_audit_space_action_from_string(const char *s);
/* The effective audit settings in plain words (keywardctl policy explain --audit). */
int policy_audit_explain(const PolicyAuditSettings *a, char **ret);

/* Formats a decision in plain words (keywardctl policy explain); malloc()ed. */
int policy_decision_explain(const PolicyDecision *d, char **ret);
