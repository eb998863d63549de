/* util.h: small shared internals — cleanup helpers, string helpers, secret wiping,
 * safe opening of root-owned files and atomic file replacement. No logging here. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define _cleanup_(f)         __attribute__((cleanup(f)))
#define _unused_             __attribute__((unused))
#define _printf_(a, b)       __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x)   (sizeof(x) / sizeof((x)[0]))
#define streq(a, b)     (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)

/* Hand over ownership: returns the pointer and clears the variable. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _ptr_ = (p);                                                         \
		(p) = NULL;                                                                        \
		_ptr_;                                                                             \
	})
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _fd_ = (fd);                                                                   \
		(fd) = -EBADF;                                                                     \
		_fd_;                                                                              \
	})

static inline void freep(void *p)
{
	free(*(void **)p);
}
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
static inline void strv_freep(char ***p)
{
	if (*p) {
		for (char **s = *p; *s; s++)
			free(*s);
		free(*p);
	}
}
#define _cleanup_free_      _cleanup_(freep)
#define _cleanup_close_     _cleanup_(closep)
#define _cleanup_fclose_    _cleanup_(fclosep)
#define _cleanup_strv_free_ _cleanup_(strv_freep)

static inline const char *strempty(const char *s)
{
	return s ? s : "";
}
static inline const char *strna(const char *s)
{
	return s ? s : "n/a";
}
static inline bool isempty(const char *s)
{
	return !s || !*s;
}

/* Wipes and frees a secret (PIN, token). Accepts NULL. */
void erase_and_free(void *p, size_t len);
void erase_string_and_free(char *s);
static inline void erase_stringp(char **s)
{
	erase_string_and_free(*s);
}
#define _cleanup_erase_ _cleanup_(erase_stringp)

/* Constant-time comparison of two equal-length buffers: 0 when equal. */
int memcmp_const(const void *a, const void *b, size_t len);

size_t strv_length(char *const *l);
char **strv_free(char **l);
/* Appends a copy of s; returns 0 or -ENOMEM. */
int strv_extend(char ***l, const char *s);
/* Sorts the N strings of L, frees the duplicates and NULL-terminates L at the new length,
 * which it returns. */
size_t strv_sort_uniq(char **l, size_t n);
bool strv_contains(char *const *l, const char *s);

/* Table-driven *_to_string / *_from_string (systemd style): T has N entries, indexed by an
 * enum value; NULL entries are skipped. to_string: NULL when V is out of range.
 * from_string: the index, or -EINVAL when S is NULL or not in T. */
const char *string_table_lookup_to_string(const char *const *t, size_t n, int v);
int string_table_lookup_from_string(const char *const *t, size_t n, const char *s);
/* Define NAME_to_string() and/or NAME_from_string() for enum TYPE over TABLE. */
#define DEFINE_STRING_TABLE_LOOKUP_TO_STRING(name, type, table)                                    \
	const char *name##_to_string(type v)                                                       \
	{                                                                                          \
		return string_table_lookup_to_string(table, ELEMENTSOF(table), (int)v);            \
	}
#define DEFINE_STRING_TABLE_LOOKUP_FROM_STRING(name, type, table)                                  \
	type name##_from_string(const char *s)                                                     \
	{                                                                                          \
		return (type)string_table_lookup_from_string(table, ELEMENTSOF(table), s);         \
	}
#define DEFINE_STRING_TABLE_LOOKUP(name, type, table)                                              \
	DEFINE_STRING_TABLE_LOOKUP_TO_STRING(name, type, table)                                    \
	DEFINE_STRING_TABLE_LOOKUP_FROM_STRING(name, type, table)

/* Replaces *RET_ERROR (if RET_ERROR is not NULL) with a malloc()ed sentence (NULL when out
 * of memory): the error sentences library code hands its callers. Returns 0. */
int set_error(char **ret_error, const char *fmt, ...) _printf_(2, 3);

/* Hex encoding; ret gets a malloc()ed NUL-terminated lower-case string. */
int hex_encode(const void *data, size_t len, char **ret);
/* The same into OUT, which has room for 2 * LEN + 1 bytes (digits and a NUL). */
void hex_encode_to(const void *data, size_t len, char *out);
/* The value of one hex digit (either case), or -EINVAL. */
int hex_digit_value(char c);
/* Strict hex decoding (even length, [0-9a-fA-F] only). */
int hex_decode(const char *s, uint8_t **ret, size_t *ret_len);
/* RFC 4648 base64 (with padding) and its strict decoder; also accepts base64url. */
int base64_encode(const void *data, size_t len, char **ret);
int base64_decode(const char *s, uint8_t **ret, size_t *ret_len);

/* One RFC 4180 CSV cell, then ',' or (LAST) CRLF. Cells a spreadsheet would run as a
 * formula get a leading apostrophe. */
void csv_write_field(FILE *f, const char *s, bool last);

/* What safe_open() demands of a file it opens. */
typedef enum SafeFileFlags {
	SAFE_FILE_ROOT_OWNED = 1 << 0,     /* owner uid 0 */
	SAFE_FILE_NO_GROUP_WRITE = 1 << 1, /* mode & 020 == 0 */
	SAFE_FILE_NO_WORLD_WRITE = 1 << 2, /* mode & 002 == 0 */
	SAFE_FILE_NO_WORLD_READ = 1 << 3,  /* mode & 004 == 0 (secrets) */
	SAFE_FILE_NO_GROUP_READ = 1 << 4,  /* mode & 040 == 0 (secrets) */
	SAFE_FILE_DEFAULT =
	        SAFE_FILE_ROOT_OWNED | SAFE_FILE_NO_GROUP_WRITE | SAFE_FILE_NO_WORLD_WRITE,
} SafeFileFlags;

/* Opens PATH read-only with O_NOFOLLOW|O_CLOEXEC and checks that it is a regular file
 * meeting FLAGS. Errors: -ELOOP (symlink), -EBADFD (not a regular file), -EPERM
 * (wrong owner), -EACCES (unsafe mode), or the open() errno. On failure, if
 * ret_problem is given it gets a static string describing what is wrong and how
 * to fix it (static string, no allocation). */
int safe_open(const char *path, SafeFileFlags flags, struct stat *ret_st, const char **ret_problem);

/* Reads a whole (safe_open()ed) fd, at most max bytes (-EFBIG beyond). NUL-terminated. */
int read_full_fd(int fd, size_t max, char **ret, size_t *ret_len);
/* safe_open() + read_full_fd(). */
int read_full_file_safe(const char *path, SafeFileFlags flags, size_t max, char **ret,
        size_t *ret_len, const char **ret_problem);

/* Atomically replaces PATH with DATA: a temp file in the same directory created with
 * O_EXCL, written, fsync()ed, fchmod(MODE), rename()d over PATH, then the directory
 * is fsync()ed. Never leaves a partial file at PATH. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* mkdir -p with MODE for components it creates. */
int mkdir_parents(const char *path, mode_t mode);
/* fsync()s the directory PATH is in (a rename or a new file in it made durable). */
int fsync_parent_dir(const char *path);

/* Milliseconds of CLOCK_MONOTONIC / CLOCK_REALTIME. */
uint64_t now_monotonic_ms(void);
uint64_t now_realtime_ms(void);

/* RFC 3339 UTC time with milliseconds, e.g. 2026-11-27T07:24:12.123Z (buf >= 32). */
int format_rfc3339_ms(uint64_t realtime_ms, char *buf, size_t size);
/* Parses "2026-11-27", "2026-11-27T07:24:12Z", with optional .mmm, to realtime ms. */
int parse_rfc3339_ms(const char *s, uint64_t *ret);

/* The length of S cut to at most MAX bytes without splitting a UTF-8 sequence (S valid
 * UTF-8): what a bounded copy or a "%.*s" of S may take and stay valid UTF-8. */
size_t utf8_prefix_len(const char *s, size_t max);

/* Valid user/group name as shadow-utils accepts (no '/', ':', control chars, <= 32). */
bool valid_user_name(const char *s);
