/* ctl.h: keywardctl's verbs. Each verb is int verb_X(int argc, char *argv[]) with argv[0]
 * the verb name; returns the process exit code. Shared option state lives in CtlGlobal. */
#pragma once

#include <stdbool.h>

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
