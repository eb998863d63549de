/* log.h: keywardd's logging — one line per event on stderr (the journal picks it up
 * under systemd, with the <N> syslog-level prefix), levels, never a secret. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <syslog.h>

void log_set_max_level(int level);
int log_get_max_level(void);
/* Logs at LEVEL (LOG_ERR..LOG_DEBUG). ERROR is a -errno (or 0); it becomes errno for %m.
 * Returns ERROR (negative) for `return log_error_errno(r, ...)`. */
int log_internal(int level, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(...)            log_internal(LOG_ERR, 0, __VA_ARGS__)
#define log_warning(...)          log_internal(LOG_WARNING, 0, __VA_ARGS__)
#define log_notice(...)           log_internal(LOG_NOTICE, 0, __VA_ARGS__)
#define log_info(...)             log_internal(LOG_INFO, 0, __VA_ARGS__)
#define log_debug(...)            log_internal(LOG_DEBUG, 0, __VA_ARGS__)
#define log_error_errno(e, ...)   log_internal(LOG_ERR, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_WARNING, (e), __VA_ARGS__)
#define log_debug_errno(e, ...)   log_internal(LOG_DEBUG, (e), __VA_ARGS__)
