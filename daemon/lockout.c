/* lockout.c: failure counting per user (state_dir/lockout/<user>). File format, one
 * item a line: "locked_until <ms>" and "failure <ms>" (realtime milliseconds). */
#include "lockout.h"

#include <stdio.h>

#include "util.h"

#define LOCKOUT_MAX_FILE    65536
#define LOCKOUT_MAX_ENTRIES 1000

typedef struct LockoutState {
	uint64_t locked_until;
	uint64_t failures[LOCKOUT_MAX_ENTRIES];
	size_t n;
} LockoutState;

static int lockout_path(const char *state_dir, const char *user, char **ret)
{
	if (!valid_user_name(user) || isempty(state_dir))
		return -EINVAL;
	if (asprintf(ret, "%s/lockout/%s", state_dir, user) < 0)
		return -ENOMEM;
	return 0;
}

static int lockout_load(const char *path, LockoutState *s)
{
	_cleanup_free_ char *text = NULL;
	int r;

	*s = (LockoutState){};
	r = read_full_file_safe(path, SAFE_FILE_DEFAULT, LOCKOUT_MAX_FILE, &text, NULL, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	for (char *l = text; l && *l;) {
		char *eol = strchr(l, '\n');
		unsigned long long v;

		if (eol)
			*eol = '\0';
		if (sscanf(l, "locked_until %llu", &v) == 1)
			s->locked_until = v;
		else if (sscanf(l, "failure %llu", &v) == 1 && s->n < LOCKOUT_MAX_ENTRIES)
			s->failures[s->n++] = v;
		else if (*l)
			return -EBADMSG;
		l = eol ? eol + 1 : NULL;
	}
	return 0;
}

static int lockout_save(const char *state_dir, const char *path, const LockoutState *s)
{
	_cleanup_free_ char *dir = NULL, *buf = NULL;
	size_t size = 0;
	FILE *f;
	int r;

	if (asprintf(&dir, "%s/lockout", state_dir) < 0)
		return -ENOMEM;
	r = mkdir_parents(dir, 0700);
	if (r < 0)
		return r;
	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	if (s->locked_until)
		fprintf(f, "locked_until %llu\n", (unsigned long long)s->locked_until);
	for (size_t i = 0; i < s->n; i++)
		fprintf(f, "failure %llu\n", (unsigned long long)s->failures[i]);
	if (fclose(f) != 0)
		return -ENOMEM;
	return write_file_atomic(path, buf, size, 0600);
}

int lockout_check(const char *state_dir, const char *user, uint64_t *ret_until_ms)
{
	_cleanup_free_ char *path = NULL;
	LockoutState *s;
	int r;

	r = lockout_path(state_dir, user, &path);
	if (r < 0)
		return r;
	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = lockout_load(path, s);
	if (r >= 0)
		*ret_until_ms = s->locked_until > now_realtime_ms() ? s->locked_until : 0;
	free(s);
	return r;
}

int lockout_record_failure(const char *state_dir, const char *user, uint32_t max_failures,
        uint32_t window_s, uint32_t unlock_after_s, bool *ret_locked)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ LockoutState *s = NULL;
	uint64_t now = now_realtime_ms(), since;
	size_t j = 0;
	int r;

	*ret_locked = false;
	if (max_failures == 0)
		return 0;
	r = lockout_path(state_dir, user, &path);
	if (r < 0)
		return r;
	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = lockout_load(path, s);
	if (r < 0)
		return r;
	since = now > (uint64_t)window_s * 1000 ? now - (uint64_t)window_s * 1000 : 0;
	for (size_t i = 0; i < s->n; i++)
		if (s->failures[i] >= since)
			s->failures[j++] = s->failures[i];
	s->n = j;
	if (s->n >= LOCKOUT_MAX_ENTRIES) {
		memmove(s->failures, s->failures + 1, (s->n - 1) * sizeof(uint64_t));
		s->n--;
	}
	s->failures[s->n++] = now;
	if (s->n >= max_failures && s->locked_until <= now) {
		s->locked_until = now + (uint64_t)unlock_after_s * 1000;
		s->n = 0;
		*ret_locked = true;
	}
	return lockout_save(state_dir, path, s);
}

int lockout_reset(const char *state_dir, const char *user)
{
	_cleanup_free_ char *path = NULL;
	int r;

	r = lockout_path(state_dir, user, &path);
	if (r < 0)
		return r;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}
