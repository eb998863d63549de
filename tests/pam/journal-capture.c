/* journal-capture.c: an LD_PRELOAD stand-in for sd_journal_sendv() (pam_mock_test.py):
 * appends each entry's fields, one a line, then an empty line, to $KEYWARD_TEST_JOURNAL.
 * The PAM tests see what the module sends to journald without a journald. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

int sd_journal_sendv(const struct iovec *iov, int n);

int sd_journal_sendv(const struct iovec *iov, int n)
{
	const char *path = getenv("KEYWARD_TEST_JOURNAL");
	int fd;

	if (!path)
		return -22;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -5;
	for (int i = 0; i < n; i++) {
		(void)!write(fd, iov[i].iov_base, iov[i].iov_len);
		(void)!write(fd, "\n", 1);
	}
	(void)!write(fd, "\n", 1);
	close(fd);
	return 0;
}
