/* log.c: stderr logging with syslog-level prefixes when stderr is the journal. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int max_level = LOG_INFO;

void log_set_max_level(int level)
{
	max_level = level;
}

int log_get_max_level(void)
{
	return max_level;
}

/* Whether stderr is connected to the journal ($JOURNAL_STREAM names its device:inode). */
static bool stderr_is_journal(void)
{
	static int cached = -1;
	const char *e;
	unsigned long long dev, ino;
	struct stat st;

	if (cached >= 0)
		return cached;
	e = getenv("JOURNAL_STREAM");
	cached = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
	         (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
	return cached;
}

static const char *level_word(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

int log_internal(int level, int error, const char *fmt, ...)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	char buf[2048];
	va_list ap;
	int saved = errno;

	if (level > max_level) {
		errno = saved;
		return error < 0 ? error : -abs(error);
	}
	errno = error < 0 ? -error : error;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&lock);
	if (stderr_is_journal())
		fprintf(stderr, "<%d>%s\n", level, buf);
	else
		fprintf(stderr, "keywardd[%d]: %s: %s\n", (int)getpid(), level_word(level), buf);
	fflush(stderr);
	pthread_mutex_unlock(&lock);
	errno = saved;
	return error < 0 ? error : -abs(error);
}
