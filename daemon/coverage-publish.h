/* coverage-publish.h: keywardd publishes the coverage snapshot of each policy it loads,
 * for pam_keyward's fallback when keywardd cannot answer (lib/coverage.h). */
#pragma once

#include "policy.h"

/* Writes the snapshot of P (loaded from CONFIG_PATH) to RUNTIME_DIR/coverage and beside the
 * last good policy copy (coverage_state_path()), both atomically, 0644. A copy that cannot
 * be written is removed, so that no stale snapshot outlives the policy it described.
 * Failures are logged; returns the first error or 0. */
int coverage_publish(const Policy *p, const char *config_path);
