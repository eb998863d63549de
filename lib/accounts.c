/* accounts.c: NSS lookups of accounts and their groups (accounts.h). */
#include "accounts.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>

#include "util.h"

#define NSS_BUF_START 1024
#define NSS_BUF_MAX   (1024 * 1024)

int account_lookup(const char *user, uid_t *ret_uid, gid_t *ret_gid)
{
	_cleanup_free_ char *buf = NULL;
	struct passwd pw, *pwp = NULL;
	size_t size = NSS_BUF_START;
	int r;

	if (!user || !*user)
		return -EINVAL;
	for (;;) {
		char *b = realloc(buf, size);

		if (!b)
			return -ENOMEM;
		buf = b;
		errno = 0;
		r = getpwnam_r(user, &pw, buf, size, &pwp);
		if (r < 0) /* some NSS shims (nss_wrapper) return -1 and set errno */
			r = errno > 0 ? errno : EIO;
		if (r != ERANGE)
			break;
		if (size >= NSS_BUF_MAX)
			return -ERANGE;
		size *= 2;
	}
	/* getpwnam_r reports "not found" as 0 with no result, or (some modules) ENOENT,
	 * ESRCH, EBADF or EPERM; everything else is a failed lookup. */
	if (r == 0 && !pwp)
		return -ESRCH;
	if (r == ENOENT || r == ESRCH)
		return -ESRCH;
	if (r != 0)
		return -r;
	if (ret_uid)
		*ret_uid = pw.pw_uid;
	if (ret_gid)
		*ret_gid = pw.pw_gid;
	return 0;
}

int account_group_names(const char *user, gid_t primary, char ***ret)
{
	_cleanup_free_ gid_t *gids = NULL;
	_cleanup_free_ char *buf = NULL;
	_cleanup_strv_free_ char **names = NULL;
	size_t size = NSS_BUF_START;
	int n = 64, r;

	if (!user || !*user || !ret)
		return -EINVAL;
	for (;;) {
		int want = n;
		gid_t *g = reallocarray(gids, (size_t)n, sizeof(gid_t));

		if (!g)
			return -ENOMEM;
		gids = g;
		if (getgrouplist(user, primary, gids, &want) >= 0) {
			n = want;
			break;
		}
		if (want <= n || want > ACCOUNTS_MAX_GROUPS)
			return -E2BIG;
		n = want;
	}
	names = calloc(1, sizeof(char *));
	buf = malloc(size);
	if (!names || !buf)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		struct group gr, *grp = NULL;

		for (;;) {
			errno = 0;
			r = getgrgid_r(gids[i], &gr, buf, size, &grp);
			if (r < 0) /* some NSS shims (nss_wrapper) return -1 and set errno */
				r = errno > 0 ? errno : EIO;
			if (r != ERANGE)
				break;
			if (size >= NSS_BUF_MAX)
				return -ERANGE;
			size *= 2;
			free(buf);
			buf = malloc(size);
			if (!buf)
				return -ENOMEM;
		}
		if (r == ENOENT || r == ESRCH)
			continue; /* no name for this gid */
		if (r != 0)
			return -r;
		if (!grp || strv_contains(names, grp->gr_name))
			continue;
		r = strv_extend(&names, grp->gr_name);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(names);
	return 0;
}
