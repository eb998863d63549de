/* ctl.h: keywardctl's verbs. Each verb is int verb_X(int argc, char *argv[]) with argv[0]
 * the verb name; returns the process exit code. Shared option state lives in CtlGlobal. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct CtlGlobal {
	const char *config_path; /* -c/--config, default KEYWARD_DEFAULT_CONFIG */
	bool quiet;
} CtlGlobal;

extern CtlGlobal ctl_global;

/* Exit codes shared by all verbs (documented in keywardctl(8)). */
enum {
	CTL_EXIT_OK = 0,
	CTL_EXIT_FAILURE = 1, /* the check failed / the operation was refused */
	CTL_EXIT_USAGE = 2,   /* bad command line */
	CTL_EXIT_ERROR = 3,   /* could not do it: I/O, daemon unreachable, ... */
};

/* ctl-policy.c: policy check | explain */
int verb_policy(int argc, char *argv[]);
/* ctl-doctor.c: doctor */
int verb_doctor(int argc, char *argv[]);
int verb_status(int argc, char *argv[]);
/* ctl-audit.c: audit verify | show */
int verb_audit(int argc, char *argv[]);
/* ctl-report.c: report */
int verb_report(int argc, char *argv[]);
/* ctl-audit.c helpers shared with ctl-report.c: the policy's trail and seal key paths
 * (compiled-in defaults when the default policy file does not exist), and the files to
 * read: ARGS if any, else the trail and its rotated files. */
int ctl_audit_paths(char **ret_trail, char **ret_key);
int ctl_audit_files(char **args, size_t n, char ***ret);
/* ctl-common.c: USER's group names (primary group PRIMARY and supplementary ones), from
 * account_group_names() (lib/accounts.h: thread-safe, a failed lookup is an error). New
 * code calls that directly. -E2BIG past MAX groups. *RET is NULL-terminated. */
int ctl_user_groups(const char *user, gid_t primary, int max, char ***ret);

/* Credential verbs (ctl-creds.c): talk to keywardd over the system bus. */
int verb_enroll(int argc, char *argv[]);
int verb_list(int argc, char *argv[]);
int verb_revoke(int argc, char *argv[]);
int verb_import_pam_u2f(int argc, char *argv[]);
