/* test-policy-manpage.c: every key the policy parser knows (policy_known_keys[]) must be
 * documented in keyward.conf(5) as a ".It Cm KEY" item. Argument: the man page. */
#include <stdio.h>
#include <string.h>

#include "policy.h"
#include "util.h"

static bool documented(const char *page, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = page; (p = strstr(p, "\n.It Cm ")); p++) {
		const char *k = p + strlen("\n.It Cm ");

		if (strneq(k, key, n) && (k[n] == '\n' || k[n] == ' '))
			return true;
	}
	return false;
}

int main(int argc, char *argv[])
{
	_cleanup_free_ char *page = NULL;
	size_t len = 0, keys = 0;
	unsigned missing = 0;
	int fd, r;

	if (argc != 2) {
		fprintf(stderr, "usage: %s keyward.conf.5\n", argv[0]);
		return 2;
	}
	fd = safe_open(argv[1], 0, NULL, NULL);
	if (fd < 0) {
		fprintf(stderr, "cannot open %s: %s\n", argv[1], strerror(-fd));
		return 1;
	}
	r = read_full_fd(fd, 1024 * 1024, &page, &len);
	close(fd);
	if (r < 0) {
		fprintf(stderr, "cannot read %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	for (const char *const *k = policy_known_keys; *k; k++, keys++)
		if (!documented(page, *k)) {
			fprintf(stderr, "%s: key '%s' is not documented (no \".It Cm %s\")\n",
			        argv[1], *k, *k);
			missing++;
		}
	if (keys < 40) {
		fprintf(stderr, "policy_known_keys[] has only %zu keys; expected the full list\n",
		        keys);
		return 1;
	}
	fprintf(stderr, "%zu keys, %u undocumented\n", keys, missing);
	return missing ? 1 : 0;
}
