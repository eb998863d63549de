/* lockout.h: per-user failure counting for the policy's lockout settings, kept in
 * "<state_dir>/lockout/<user>" (failure times and a locked-until time), replaced
 * atomically. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* *ret_until_ms: realtime ms until which USER is locked out (0 when not locked). */
int lockout_check(const char *state_dir, const char *user, uint64_t *ret_until_ms);
/* Records one failure; locks USER for unlock_after_s when max_failures happened within
 * window_s. *ret_locked says whether this failure started a lockout. max_failures 0:
 * nothing recorded. */
int lockout_record_failure(const char *state_dir, const char *user, uint32_t max_failures,
        uint32_t window_s, uint32_t unlock_after_s, bool *ret_locked);
int lockout_reset(const char *state_dir, const char *user);
