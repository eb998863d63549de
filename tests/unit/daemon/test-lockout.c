/* test-lockout.c: daemon/lockout.c — failures within the window lock the user for
 * unlock_after, success clears, a damaged file is an error (never "not locked"). */
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "lockout.h"
#include "util.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

int main(void)
{
	char dir[] = "/tmp/keyward-test-lockout-XXXXXX";
	_cleanup_free_ char *path = NULL;
	uint64_t until = 1;
	bool locked = true;
	int fd;

	CHECK(mkdtemp(dir));
	CHECK_INT(lockout_check(dir, "alice", &until), 0);
	CHECK_INT(until, 0);
	/* max_failures 0: nothing is ever recorded */
	CHECK_INT(lockout_record_failure(dir, "alice", 0, 60, 60, &locked), 0);
	CHECK(!locked);
	CHECK(asprintf(&path, "%s/lockout/alice", dir) > 0);
	CHECK(access(path, F_OK) < 0);

	CHECK_INT(lockout_record_failure(dir, "alice", 3, 600, 900, &locked), 0);
	CHECK(!locked);
	CHECK_INT(lockout_record_failure(dir, "alice", 3, 600, 900, &locked), 0);
	CHECK(!locked);
	CHECK_INT(lockout_check(dir, "alice", &until), 0);
	CHECK_INT(until, 0);
	CHECK_INT(lockout_record_failure(dir, "alice", 3, 600, 900, &locked), 0);
	CHECK(locked);
	CHECK_INT(lockout_check(dir, "alice", &until), 0);
	CHECK(until > now_realtime_ms() + 899 * 1000 && until <= now_realtime_ms() + 900 * 1000);
	/* other users are not affected */
	CHECK_INT(lockout_check(dir, "bob", &until), 0);
	CHECK_INT(until, 0);
	CHECK_INT(lockout_reset(dir, "alice"), 0);
	CHECK_INT(lockout_check(dir, "alice", &until), 0);
	CHECK_INT(until, 0);

	/* a damaged file fails closed */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, "nonsense\n", 9) == 9);
	close(fd);
	CHECK_INT(lockout_check(dir, "alice", &until), -EBADMSG);
	/* so does an unsafe one */
	CHECK(chmod(path, 0666) == 0);
	CHECK_INT(lockout_check(dir, "alice", &until), -EACCES);
	CHECK_INT(lockout_check(dir, "../x", &until), -EINVAL);

	CHECK(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
	printf("test-lockout: all passed\n");
	return EXIT_SUCCESS;
}
