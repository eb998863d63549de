/* ctl-common.c: small helpers shared by several keywardctl verbs. */
#include <errno.h>
#include <grp.h>
#include <stdlib.h>

#include "ctl.h"
#include "util.h"

int ctl_user_groups(const char *user, gid_t primary, int max, char ***ret)
{
	_cleanup_free_ gid_t *gids = NULL;
	_cleanup_strv_free_ char **names = NULL;
	int n = 64;

	for (;;) {
		int want = n;

		free(gids);
		gids = calloc((size_t)n, sizeof(gid_t));
		if (!gids)
			return -ENOMEM;
		if (getgrouplist(user, primary, gids, &want) >= 0) {
			n = want;
			break;
		}
		if (want <= n || want > max)
			return -E2BIG;
		n = want;
	}
	names = calloc(1, sizeof(char *));
	if (!names)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		struct group *g = getgrgid(gids[i]);
		int r;

		/* A gid without a name cannot match a name in the policy. */
		if (!g || strv_contains(names, g->gr_name))
			continue;
		r = strv_extend(&names, g->gr_name);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(names);
	return 0;
}
