/* accounts.h: the one place that asks NSS about an account (its uid, primary group and
 * the names of all its groups), for the daemon, the PAM module and keywardctl. Thread-safe
 * (the _r functions) and fail closed: a lookup that fails is an error, never "no groups". */
#pragma once

#include <sys/types.h>

#define ACCOUNTS_MAX_GROUPS 65536 /* more groups than this: -E2BIG */

/* USER's uid and primary gid. -ESRCH when NSS says there is no such user; any other
 * lookup failure is a negative errno (the caller must not read it as "no such user"). */
int account_lookup(const char *user, uid_t *ret_uid, gid_t *ret_gid);

/* The names of all groups of USER (with primary group PRIMARY), without duplicates, as a
 * NULL-terminated strv. A gid that NSS knows no name for is left out (it cannot match a
 * name in the policy); any lookup error is returned as a negative errno. */
int account_group_names(const char *user, gid_t primary, char ***ret);
