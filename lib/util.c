/* util.c: shared internals — secrets, strings, encodings, safe file access, atomic
 * replacement, time. Library code: returns -errno, never logs. */
#include "util.h"

#include <stdarg.h>

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <libgen.h>
#include <time.h>

void erase_and_free(void *p, size_t len)
{
	if (!p)
		return;
	explicit_bzero(p, len);
	free(p);
}

void erase_string_and_free(char *s)
{
	if (!s)
		return;
	erase_and_free(s, strlen(s));
}

int memcmp_const(const void *a, const void *b, size_t len)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t d = 0;

	for (size_t i = 0; i < len; i++)
		d |= x[i] ^ y[i];
	return d != 0;
}

size_t strv_length(char *const *l)
{
	size_t n = 0;

	if (l)
		while (l[n])
			n++;
	return n;
}

char **strv_free(char **l)
{
	strv_freep(&l);
	return NULL;
}

static int strcmp_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t strv_sort_uniq(char **l, size_t n)
{
	size_t out = 0;

	qsort(l, n, sizeof(char *), strcmp_ptr);
	for (size_t i = 0; i < n; i++) {
		if (out > 0 && streq(l[out - 1], l[i])) {
			free(l[i]);
			continue;
		}
		l[out++] = l[i];
	}
	l[out] = NULL;
	return out;
}

int strv_extend(char ***l, const char *s)
{
	size_t n = strv_length(*l);
	char **nl;
	char *c;

	c = strdup(s);
	if (!c)
		return -ENOMEM;
	nl = reallocarray(*l, n + 2, sizeof(char *));
	if (!nl) {
		free(c);
		return -ENOMEM;
	}
	nl[n] = c;
	nl[n + 1] = NULL;
	*l = nl;
	return 0;
}

bool strv_contains(char *const *l, const char *s)
{
	for (; l && *l; l++)
		if (streq(*l, s))
			return true;
	return false;
}

const char *string_table_lookup_to_string(const char *const *t, size_t n, int v)
{
	if (v < 0 || (size_t)v >= n)
		return NULL;
	return t[v];
}

int string_table_lookup_from_string(const char *const *t, size_t n, const char *s)
{
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (t[i] && streq(t[i], s))
			return (int)i;
	return -EINVAL;
}

void hex_encode_to(const void *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *d = data;

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 0xf];
	}
	out[len * 2] = '\0';
}

int hex_encode(const void *data, size_t len, char **ret)
{
	char *s;

	if (len > SIZE_MAX / 2 - 1)
		return -EFBIG;
	s = malloc(len * 2 + 1);
	if (!s)
		return -ENOMEM;
	hex_encode_to(data, len, s);
	*ret = s;
	return 0;
}

int hex_digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -EINVAL;
}

int hex_decode(const char *s, uint8_t **ret, size_t *ret_len)
{
	size_t n = strlen(s);
	uint8_t *d;

	if (n % 2 != 0)
		return -EINVAL;
	d = malloc(n / 2 + 1);
	if (!d)
		return -ENOMEM;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hex_digit_value(s[2 * i]), lo = hex_digit_value(s[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			free(d);
			return -EINVAL;
		}
		d[i] = (uint8_t)(hi << 4 | lo);
	}
	*ret = d;
	*ret_len = n / 2;
	return 0;
}

static const char b64_table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_encode(const void *data, size_t len, char **ret)
{
	const uint8_t *d = data;
	size_t out_len, j = 0;
	char *s;

	if (len > (SIZE_MAX / 4) * 3 - 3)
		return -EFBIG;
	out_len = (len + 2) / 3 * 4;
	s = malloc(out_len + 1);
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)d[i + 1] << 8;
		if (i + 2 < len)
			v |= d[i + 2];
		s[j++] = b64_table[(v >> 18) & 63];
		s[j++] = b64_table[(v >> 12) & 63];
		s[j++] = i + 1 < len ? b64_table[(v >> 6) & 63] : '=';
		s[j++] = i + 2 < len ? b64_table[v & 63] : '=';
	}
	s[j] = '\0';
	*ret = s;
	return 0;
}

static int unb64_char(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -EINVAL;
}

/* Strict: RFC 4648 section 4 (standard alphabet, always padded) or section 5 (base64url,
 * padding optional), one alphabet per string. No whitespace, no stray or excess '=', and
 * the bits after the last byte must be zero, so every byte string has one encoding. */
int base64_decode(const char *s, uint8_t **ret, size_t *ret_len)
{
	size_t n = strlen(s), pad = 0, j = 0;
	bool standard = false, url = false;
	uint32_t acc = 0;
	int bits = 0;
	uint8_t *d;

	while (n > 0 && s[n - 1] == '=') {
		n--;
		pad++;
	}
	if (pad > 2 || n % 4 == 1)
		return -EINVAL;
	/* Padding, when present, completes the last quantum exactly. */
	if (pad > 0 && (n + pad) % 4 != 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+' || s[i] == '/')
			standard = true;
		else if (s[i] == '-' || s[i] == '_')
			url = true;
	}
	if (standard && url)
		return -EINVAL;
	if (standard && (n + pad) % 4 != 0)
		return -EINVAL;
	d = malloc(n * 3 / 4 + 1);
	if (!d)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int v = unb64_char(s[i]);
		if (v < 0) {
			free(d);
			return -EINVAL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			d[j++] = (uint8_t)(acc >> bits);
		}
	}
	/* Leftover bits must be zero (canonical encoding). */
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
		free(d);
		return -EINVAL;
	}
	*ret = d;
	*ret_len = j;
	return 0;
}

void csv_write_field(FILE *f, const char *s, bool last)
{
	bool formula;

	s = strempty(s);
	/* The characters a spreadsheet takes as the start of a formula (OWASP "CSV
	 * injection"): TAB and CR too, which some strip before looking at the rest. */
	formula = s[0] != '\0' && strchr("=+-@\t\r", s[0]);
	if (formula || strpbrk(s, ",\"\r\n")) {
		/* Quote; and defuse spreadsheet formulas with a leading apostrophe. */
		fputc('"', f);
		if (formula)
			fputc('\'', f);
		for (; *s; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fputc('"', f);
	} else
		fputs(s, f);
	fputs(last ? "\r\n" : ",", f);
}

int safe_open(const char *path, SafeFileFlags flags, struct stat *ret_st, const char **ret_problem)
{
	_cleanup_close_ int fd = -EBADF;
	const char *problem = NULL;
	struct stat st;
	int r;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		if (r == -ELOOP)
			problem = "is a symbolic link; replace it with a regular file";
		else if (r == -ENOENT)
			problem = "does not exist";
		else if (r == -EACCES || r == -EPERM)
			problem = "cannot be read (permission denied)";
		else
			problem = "cannot be opened";
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		problem = "cannot be examined (fstat failed)";
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EBADFD;
		problem = "is not a regular file";
		goto out;
	}
	if ((flags & SAFE_FILE_ROOT_OWNED) && st.st_uid != 0) {
		r = -EPERM;
		problem = "is not owned by root; run: chown root:root FILE";
		goto out;
	}
	if ((flags & SAFE_FILE_NO_WORLD_WRITE) && (st.st_mode & S_IWOTH)) {
		r = -EACCES;
		problem = "is world-writable; run: chmod o-w FILE";
		goto out;
	}
	if ((flags & SAFE_FILE_NO_GROUP_WRITE) && (st.st_mode & S_IWGRP)) {
		r = -EACCES;
		problem = "is group-writable; run: chmod g-w FILE";
		goto out;
	}
	if ((flags & SAFE_FILE_NO_WORLD_READ) && (st.st_mode & S_IROTH)) {
		r = -EACCES;
		problem = "is world-readable but holds a secret; run: chmod 600 FILE";
		goto out;
	}
	if ((flags & SAFE_FILE_NO_GROUP_READ) && (st.st_mode & S_IRGRP)) {
		r = -EACCES;
		problem = "is group-readable but holds a secret; run: chmod 600 FILE";
		goto out;
	}
	/* Back to blocking reads. */
	if (fcntl(fd, F_SETFL, 0) < 0) {
		r = -errno;
		problem = "cannot be opened";
		goto out;
	}
	if (ret_st)
		*ret_st = st;
	return TAKE_FD(fd);
out:
	if (ret_problem)
		*ret_problem = problem;
	return r;
}

int read_full_fd(int fd, size_t max, char **ret, size_t *ret_len)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, alloc = 0;

	for (;;) {
		ssize_t n;

		if (alloc - len < 4096) {
			size_t na = alloc ? alloc * 2 : 4096;
			char *nb;
			if (na > max + 1)
				na = max + 1;
			if (na <= len)
				return -EFBIG;
			nb = realloc(buf, na + 1);
			if (!nb)
				return -ENOMEM;
			buf = nb;
			alloc = na;
		}
		n = read(fd, buf + len, alloc - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return -EFBIG;
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf)
			return -ENOMEM;
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	if (ret_len)
		*ret_len = len;
	return 0;
}

int read_full_file_safe(const char *path, SafeFileFlags flags, size_t max, char **ret,
        size_t *ret_len, const char **ret_problem)
{
	_cleanup_close_ int fd = -EBADF;
	int r;

	fd = safe_open(path, flags, NULL, ret_problem);
	if (fd < 0)
		return fd;
	r = read_full_fd(fd, max, ret, ret_len);
	if (r < 0 && ret_problem)
		*ret_problem =
		        r == -EFBIG ? "is larger than allowed" : "cannot be read (I/O error)";
	return r;
}

static int dir_of(const char *path, char **ret)
{
	_cleanup_free_ char *copy = strdup(path);
	char *d;

	if (!copy)
		return -ENOMEM;
	d = strdup(dirname(copy));
	if (!d)
		return -ENOMEM;
	*ret = d;
	return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	_cleanup_free_ char *tmp = NULL, *dir = NULL;
	_cleanup_close_ int fd = -EBADF, dfd = -EBADF;
	const uint8_t *p = data;
	size_t left = len;
	int r;

	r = dir_of(path, &dir);
	if (r < 0)
		return r;
	for (int attempt = 0;; attempt++) {
		uint64_t rnd =
		        now_monotonic_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)attempt * 7919;
		free(tmp);
		if (asprintf(&tmp, "%s.tmp-%016llx", path, (unsigned long long)rnd) < 0) {
			tmp = NULL;
			return -ENOMEM;
		}
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			break;
		if (errno != EEXIST || attempt > 16)
			return -errno;
	}
	while (left > 0) {
		ssize_t n = write(fd, p, left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto fail;
		}
		p += n;
		left -= (size_t)n;
	}
	if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
		r = -errno;
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto fail;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		(void)fsync(dfd);
	return 0;
fail:
	(void)unlink(tmp);
	return r;
}

int mkdir_parents(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST)
				return -errno;
			*s = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

uint64_t now_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t now_realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int format_rfc3339_ms(uint64_t realtime_ms, char *buf, size_t size)
{
	time_t t = (time_t)(realtime_ms / 1000);
	struct tm tm;
	int n;

	if (!gmtime_r(&t, &tm))
		return -EINVAL;
	n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
	        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	        (unsigned)(realtime_ms % 1000));
	if (n < 0 || (size_t)n >= size)
		return -ENOBUFS;
	return 0;
}

int parse_rfc3339_ms(const char *s, uint64_t *ret)
{
	struct tm tm = {};
	unsigned ms = 0;
	const char *e;
	time_t t;

	e = strptime(s, "%Y-%m-%d", &tm);
	if (!e)
		return -EINVAL;
	if (*e == 'T' || *e == ' ') {
		e = strptime(e + 1, "%H:%M:%S", &tm);
		if (!e)
			return -EINVAL;
		if (*e == '.') {
			int digits = 0;
			for (e++; isdigit((unsigned char)*e); e++, digits++)
				if (digits < 3)
					ms = ms * 10 + (unsigned)(*e - '0');
			if (digits == 0)
				return -EINVAL;
			for (; digits < 3; digits++)
				ms *= 10;
		}
		if (*e == 'Z')
			e++;
	}
	if (*e != '\0')
		return -EINVAL;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*ret = (uint64_t)t * 1000 + ms;
	return 0;
}

size_t utf8_prefix_len(const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	/* s[n] is the NUL or the first byte cut off: back off while it continues a sequence */
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

bool valid_user_name(const char *s)
{
	size_t n;

	if (isempty(s))
		return false;
	n = strlen(s);
	if (n > 32 || s[0] == '-' || streq(s, ".") || streq(s, ".."))
		return false;
	for (const char *c = s; *c; c++)
		if (!(isalnum((unsigned char)*c) || *c == '_' || *c == '-' || *c == '.' ||
		            (*c == '$' && c[1] == '\0')))
			return false;
	return true;
}

int fsync_parent_dir(const char *path)
{
	_cleanup_free_ char *d = strdup(path);
	_cleanup_close_ int fd = -EBADF;
	char *slash;

	if (!d)
		return -ENOMEM;
	slash = strrchr(d, '/');
	if (!slash)
		strcpy(d, ".");
	else if (slash == d)
		d[1] = '\0';
	else
		*slash = '\0';
	fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return fsync(fd) < 0 ? -errno : 0;
}

int set_error(char **ret_error, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (!ret_error)
		return 0;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	free(*ret_error);
	*ret_error = s;
	return 0;
}
