/* ctl.h: keywardctl's verbs. Each verb is int verb_X(int argc, char *argv[]) with argv[0]
 * the verb name; returns the process exit code. Shared option state lives in CtlGlobal. */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>

typedef struct CtlGlobal {
	const char *config_path; /* -c/--config, default KEYWARD_DEFAULT_CONFIG */
	bool quiet;
} CtlGlobal;

extern CtlGlobal ctl_global;

/* Exit codes shared by all verbs (documented in keywardctl(8)). */
enum {
	CTL_EXIT_OK = 0,
	CTL_EXIT_FAILURE = 1,    /* the check failed / the operation was refused */
	CTL_EXIT_USAGE = 2,      /* bad command line */
	CTL_EXIT_ERROR = 3,      /* could not do it: I/O, daemon unreachable, ... */
	CTL_EXIT_NOT_PROVEN = 4, /* audit verify/report: no tampering found, but the seals
	                          * could not be proved (no verification key) */
};

/* ctl-policy.c: policy check | explain */
int verb_policy(int argc, char *argv[]);
/* ctl-doctor.c: doctor */
int verb_doctor(int argc, char *argv[]);
int verb_status(int argc, char *argv[]);
/* ctl-status-breakglass.c: status's break-glass part after ctl_breakglass_status(): each
 * user's usable codes and until when, pending approvals, users without a new key since;
 * the trail's open break-glass sessions unless the daemon listed its own. */
void ctl_status_breakglass(FILE *f, bool daemon_listed_sessions);
/* ctl-audit.c: audit verify | show */
int verb_audit(int argc, char *argv[]);
/* ctl-directory.c: directory status | refresh | show */
int verb_directory(int argc, char *argv[]);
/* `revoke --directory`: removes USER's credential LABEL_OR_ID from the directory (its
 * passkey and keywardCredential values in one modify) and refreshes the cache. */
int ctl_directory_revoke(const char *user, const char *label_or_id);
/* `policy check`: the directory group's files (secret_file and tls_key_file root's and
 * 0600, the TLS files safe) as diagnostics of P's file; the number of errors added. */
struct Policy;
struct PolicyDiagnostics;
int ctl_directory_check(const struct Policy *p, struct PolicyDiagnostics *d);
/* ctl-report.c: report */
int verb_report(int argc, char *argv[]);
/* ctl-audit.c helpers shared with ctl-report.c: the policy's trail and seal key paths
 * (compiled-in defaults when the default policy file does not exist), and the files to
 * read: ARGS if any, else the trail and its rotated files. */
int ctl_audit_paths(char **ret_trail, char **ret_key);
int ctl_audit_files(char **args, size_t n, char ***ret);

/* The one verdict on a trail, shared by `audit verify` and the report's integrity line:
 * INTACT only when the chain holds and every seal was proved with the key it needs. */
typedef enum CtlAuditVerdict {
	CTL_AUDIT_INTACT,
	CTL_AUDIT_NOT_PROVEN, /* chain intact, some seals not proved (no key for them) */
	CTL_AUDIT_TAMPERED,
	CTL_AUDIT_UNREADABLE,
	_CTL_AUDIT_VERDICT_MAX,
} CtlAuditVerdict;
struct AuditVerifyResult;
/* VERIFY_ERROR is audit_verify_files()'s return. Writes the one-line summary to BUF. */
CtlAuditVerdict ctl_audit_verdict(
        int verify_error, const struct AuditVerifyResult *res, char *buf, size_t size);
/* Machine word: "intact", "not-proven", "unreadable" or the tamper kind ("edited", ...). */
const char *ctl_audit_verdict_status(int verify_error, const struct AuditVerifyResult *res);
/* Exit code of a verdict: 0, 4, 1, 3. */
int ctl_audit_verdict_exit(CtlAuditVerdict v);
/* Loads the key that proves seals from PATH (EXPLICIT: named by the user; else the
 * policy's seal key file): a legacy static key or a verification key (epoch 0) goes into
 * *K and O. The machine's evolved key (epoch > 0) proves nothing about earlier seals: it
 * is not used. Returns 1 when a key is in O, 0 when not (*ret_note says why), -errno
 * when an explicitly named key cannot be used (message printed with PROG). */
struct AuditSealKey;
struct AuditVerifyOptions;
int ctl_audit_load_key(const char *prog, const char *path, bool explicit_path,
        struct AuditSealKey *k, struct AuditVerifyOptions *o, char **ret_note);
/* ctl-audit.c, for the multi-host report: anchors from an --anchor argument (a line or a
 * file of them), and HOST's anchors from a journal file or directory. */
struct AuditAnchor;
int ctl_audit_anchors_from_arg(const char *arg, struct AuditAnchor **list, size_t *n);
int ctl_audit_anchors_from_journal(
        const char *path, const char *host, struct AuditAnchor **list, size_t *n);
/* ctl-common.c: loads the policy of ctl_global.config_path (policy_load_file()) and prints
 * its errors as "FILE:LINE: error: MESSAGE" on stderr; on failure the caller says what it
 * could not do without it. */
struct Policy;
int ctl_policy_load(struct Policy **ret);

/* ctl-common.c: USER's group names (primary group PRIMARY and supplementary ones), from
 * account_group_names() (lib/accounts.h: thread-safe, a failed lookup is an error). New
 * code calls that directly. -E2BIG past MAX groups. *RET is NULL-terminated. */
int ctl_user_groups(const char *user, gid_t primary, int max, char ***ret);

/* ctl-creds.c PIN helpers for the verbs that talk to keywardd (ctl-breakglass.c too): a PIN
 * from /dev/tty with echo off or from one line of stdin, and a pipe holding PIN (or nothing)
 * whose read end goes into the call. (Connecting and failed calls: ctl_bus_connect(),
 * ctl_report_bus_error() below.) */
int read_pin_tty(const char *prompt, char **ret);
int read_pin_stdin(char **ret);
int pin_pipe(const char *pin, int *ret_read_fd);

/* Break-glass verbs (ctl-breakglass.c): issue, list, revoke, approve. */
int verb_breakglass(int argc, char *argv[]);
/* keywardctl status's first lines: the sessions opened with break-glass, the users with
 * unused codes. Returns how many break-glass sessions are open (>= 0), or -errno when the
 * daemon could not be asked (status says why itself). */
int ctl_breakglass_status(void);

/* Credential verbs (ctl-creds.c): talk to keywardd over the system bus. */
int verb_enroll(int argc, char *argv[]);
int verb_list(int argc, char *argv[]);
int verb_revoke(int argc, char *argv[]);
int verb_import_pam_u2f(int argc, char *argv[]);
/* Shared by the bus verbs (ctl-creds.c): connect to the system bus (message printed);
 * print a failed call's message and map it to an exit code; read an input file PATH ("-":
 * stdin) of at most MAX bytes, never through a symlink or from a device. */
int ctl_bus_connect(sd_bus **ret);
int ctl_report_bus_error(const char *what, const sd_bus_error *e, int r);
int ctl_read_input(const char *path, size_t max, char **ret, size_t *ret_len);
/* One credential of a ListCredentials reply; SSH keys (docs/ssh.md) with SSH true and
 * "ssh-sk," taken off FLAGS. */
typedef struct CtlCredentialRow {
	const char *user, *label, *id, *aaguid, *flags, *attestation;
	uint64_t created_us;
	bool ssh;
} CtlCredentialRow;
/* Prints row N (the rows printed so far); returns 1 if it printed one, 0 if it skipped. */
typedef unsigned (*CtlCredentialRowFn)(const CtlCredentialRow *c, unsigned n, void *userdata);
/* The verbs `list [USER]` and `ssh list [USER]`: ListCredentials of USER (none: everyone; a
 * non-administrator gets their own), each row through ROW; WHAT names them when there
 * are none ("No WHAT registered"). An exit code. */
int ctl_list_credentials(const char *prog, const char *what, int argc, char *argv[],
        const char *usage, CtlCredentialRowFn row, void *userdata);
/* ctl-ssh.c: ssh import | list | authorized-keys | sshd-config */
int verb_ssh(int argc, char *argv[]);
