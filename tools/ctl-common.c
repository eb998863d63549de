/* ctl-common.c: small helpers shared by several keywardctl verbs. */
#include "ctl.h"

#include <errno.h>
#include <stdlib.h>

#include "accounts.h"
#include "policy.h"
#include "util.h"

int ctl_policy_load(Policy **ret)
{
	PolicyDiagnostics diags = {};
	int r = policy_load_file(ctl_global.config_path, &diags, ret);

	for (size_t i = 0; i < diags.n; i++)
		if (diags.items[i].severity == POLICY_SEVERITY_ERROR)
			fprintf(stderr, "%s:%u: error: %s\n", strna(diags.items[i].file),
			        diags.items[i].line, strna(diags.items[i].message));
	policy_diagnostics_clear(&diags);
	return r;
}

int ctl_user_groups(const char *user, gid_t primary, int max, char ***ret)
{
	_cleanup_strv_free_ char **names = NULL;
	int r;

	/* The one lookup (lib/accounts.h): thread-safe and fail closed. */
	r = account_group_names(user, primary, &names);
	if (r < 0)
		return r;
	if (strv_length(names) > (size_t)max)
		return -E2BIG;
	*ret = TAKE_PTR(names);
	return 0;
}
