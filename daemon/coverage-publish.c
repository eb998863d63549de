/* coverage-publish.c: writes the coverage snapshot (lib/coverage.h) of the policy in force,
 * where pam_keyward.so looks for it when keywardd does not answer. */
#include "coverage-publish.h"

#include "coverage.h"
#include "log.h"
#include "util.h"

static int publish_one(const CoverageSnapshot *s, const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	int r;

	if (!dir)
		return log_error_errno(-ENOMEM, "Out of memory.");
	if (slash && slash != dir) {
		*slash = '\0';
		(void)mkdir_parents(dir, 0755);
	}
	r = coverage_snapshot_write(s, path);
	if (r < 0) {
		log_error_errno(r, "Cannot write the coverage snapshot %s: %m", path);
		/* A stale snapshot would make pam_keyward decide from a policy no longer in
		 * force; without one it refuses only accounts with enrolled keys. */
		if (unlink(path) < 0 && errno != ENOENT)
			log_error_errno(
			        -errno, "Cannot remove the stale coverage snapshot %s: %m", path);
		return r;
	}
	log_debug("Coverage snapshot written to %s.", path);
	return 0;
}

int coverage_publish(const Policy *p, const char *config_path)
{
	_cleanup_(coverage_snapshot_freep) CoverageSnapshot *s = NULL;
	_cleanup_free_ char *runtime_path = NULL, *state_path = NULL;
	const PolicySettings *settings = policy_settings(p);
	int r, ret = 0;

	if (!p || !config_path)
		return -EINVAL;
	if (asprintf(&runtime_path, "%s/%s", settings->runtime_dir, COVERAGE_FILE_NAME) < 0)
		return log_error_errno(-ENOMEM, "Out of memory.");
	r = coverage_state_path(config_path, &state_path);
	if (r < 0)
		return log_error_errno(
		        r, "Cannot name the coverage snapshot of %s: %m", config_path);

	r = policy_coverage(p, &s);
	if (r < 0) {
		log_error_errno(r, "Cannot build the coverage snapshot of %s: %m", config_path);
		(void)unlink(runtime_path);
		(void)unlink(state_path);
		return r;
	}
	r = publish_one(s, runtime_path);
	if (r < 0)
		ret = r;
	r = publish_one(s, state_path);
	if (r < 0 && ret == 0)
		ret = r;
	return ret;
}
