/* sync-shim.c: LD_PRELOAD for keywardd in the daemon tests — a disk whose fdatasync() of a
 * file whose path contains $KEYWARD_TEST_SYNC_MATCH (the audit trail's commit) waits while
 * $KEYWARD_TEST_SYNC_HOLD exists and fails with EIO while $KEYWARD_TEST_SYNC_FAIL exists. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int fdatasync(int fd)
{
	static int (*real)(int);
	const char *hold = getenv("KEYWARD_TEST_SYNC_HOLD");
	const char *fail = getenv("KEYWARD_TEST_SYNC_FAIL");

	const char *match = getenv("KEYWARD_TEST_SYNC_MATCH");
	char link[64], target[4096];
	ssize_t n;

	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = '\0';
	if (match && !strstr(target, match))
		hold = fail = NULL;
	while (hold && access(hold, F_OK) == 0)
		nanosleep(&(struct timespec){.tv_nsec = 5 * 1000 * 1000}, NULL);
	if (fail && access(fail, F_OK) == 0) {
		errno = EIO;
		return -1;
	}
	return real ? real(fd) : (errno = ENOSYS, -1);
}
