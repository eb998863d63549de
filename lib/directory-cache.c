/* directory-cache.c: the root-only cache of what the directory last said about a user,
 * "<state_dir>/directory-cache/<user>": the raw values with the time they were fetched,
 * replaced atomically (temp file, fsync, rename), parsed again on load by the same strict
 * parser as a fresh answer. */
#include "directory.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define CACHE_HEADER "# keyward directory cache (written by keywardd; do not edit)\n"

int directory_cache_path(const char *state_dir, const char *user, char **ret)
{
	if (!valid_user_name(user))
		return -EINVAL;
	return asprintf(ret, "%s/" DIRECTORY_CACHE_SUBDIR "/%s", state_dir, user) < 0 ? -ENOMEM : 0;
}

static void put_lines(FILE *f, const char *key, char *const *values)
{
	for (char *const *v = values; v && *v; v++)
		if (!strchr(*v, '\n'))
			fprintf(f, "%s %s\n", key, *v);
}

int directory_cache_save(const char *state_dir, const DirectoryUser *u)
{
	_cleanup_free_ char *path = NULL, *dir = NULL, *buf = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	r = directory_cache_path(state_dir, u->user, &path);
	if (r < 0)
		return r;
	if (asprintf(&dir, "%s/" DIRECTORY_CACHE_SUBDIR, state_dir) < 0)
		return -ENOMEM;
	r = mkdir_parents(dir, 0700);
	if (r < 0)
		return r;
	f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	fputs(CACHE_HEADER, f);
	fprintf(f, "fetched %" PRIu64 "\n", u->fetched_ms);
	if (u->uri)
		fprintf(f, "uri %s\n", u->uri);
	if (u->dn && !strchr(u->dn, '\n'))
		fprintf(f, "dn %s\n", u->dn);
	put_lines(f, "value", u->values);
	put_lines(f, "keyward", u->keyward_values);
	for (size_t i = 0; i < u->n_counters; i++)
		fprintf(f, "counter %s\n", u->counters[i].raw);
	if (fclose(f) != 0)
		return -ENOMEM;
	return write_file_atomic(path, buf, len, 0600);
}

int directory_cache_load(
        const char *state_dir, const char *user, const char *rp_id, DirectoryUser **ret)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	_cleanup_directory_user_ DirectoryUser *u = NULL;
	const char *problem = NULL;
	bool have_fetched = false;
	size_t len;
	char *save = NULL;
	int r;

	r = directory_cache_path(state_dir, user, &path);
	if (r < 0)
		return r;
	r = read_full_file_safe(path,
	        SAFE_FILE_DEFAULT | SAFE_FILE_NO_GROUP_READ | SAFE_FILE_NO_WORLD_READ,
	        DIRECTORY_CACHE_FILE_MAX, &text, &len, &problem);
	if (r < 0)
		return r;
	u = calloc(1, sizeof(*u));
	if (!u || !(u->user = strdup(user)))
		return -ENOMEM;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');

		if (line[0] == '#')
			continue;
		if (!sp)
			return -EBADMSG;
		*sp++ = 0;
		if (streq(line, "fetched")) {
			char *end;
			errno = 0;
			u->fetched_ms = strtoull(sp, &end, 10);
			if (errno || *end)
				return -EBADMSG;
			have_fetched = true;
		} else if (streq(line, "uri")) {
			free(u->uri);
			if (!(u->uri = strdup(sp)))
				return -ENOMEM;
		} else if (streq(line, "dn")) {
			free(u->dn);
			if (!(u->dn = strdup(sp)))
				return -ENOMEM;
		} else if (streq(line, "value")) {
			if (strv_extend(&u->values, sp) < 0)
				return -ENOMEM;
		} else if (streq(line, "keyward")) {
			if (strv_extend(&u->keyward_values, sp) < 0)
				return -ENOMEM;
		} else if (streq(line, "counter")) {
			DirectoryCounter *a =
			        reallocarray(u->counters, u->n_counters + 1, sizeof(*a));
			if (!a)
				return -ENOMEM;
			u->counters = a;
			if (directory_counter_parse(sp, &a[u->n_counters]) >= 0)
				u->n_counters++;
		} else
			return -EBADMSG;
	}
	if (!have_fetched)
		return -EBADMSG;
	r = directory_user_parse(u, rp_id);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(u);
	return 0;
}

int directory_cache_remove(const char *state_dir, const char *user)
{
	_cleanup_free_ char *path = NULL;
	int r = directory_cache_path(state_dir, user, &path);

	if (r < 0)
		return r;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int directory_cache_users(const char *state_dir, char ***ret)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_strv_free_ char **l = NULL;
	DIR *d;
	struct dirent *de;

	if (asprintf(&dir, "%s/" DIRECTORY_CACHE_SUBDIR, state_dir) < 0)
		return -ENOMEM;
	d = opendir(dir);
	if (!d && errno != ENOENT)
		return -errno;
	while (d && (de = readdir(d)) && strv_length(l) < CREDS_MAX_USERS)
		if (de->d_name[0] != '.' && valid_user_name(de->d_name) &&
		        strv_extend(&l, de->d_name) < 0) {
			closedir(d);
			return -ENOMEM;
		}
	if (d)
		closedir(d);
	if (!l && !(l = calloc(1, sizeof(char *))))
		return -ENOMEM;
	qsort(l, strv_length(l), sizeof(char *), cmp_str);
	*ret = TAKE_PTR(l);
	return 0;
}

void directory_status_done(DirectoryStatus *s)
{
	free(s->success_uri);
	free(s->error);
	*s = (DirectoryStatus){};
}

int directory_status_load(const char *state_dir, DirectoryStatus *ret)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	DirectoryStatus st = {};
	char *save = NULL;
	size_t len;
	int r;

	if (asprintf(&path, "%s/" DIRECTORY_CACHE_SUBDIR "/" DIRECTORY_STATUS_FILE, state_dir) < 0)
		return -ENOMEM;
	r = read_full_file_safe(path, SAFE_FILE_DEFAULT, 64 * 1024, &text, &len, NULL);
	if (r < 0)
		return r;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' '), *end;
		uint64_t ms;

		if (!sp)
			continue;
		*sp++ = 0;
		errno = 0;
		ms = strtoull(sp, &end, 10);
		if (errno || *end != ' ')
			continue;
		if (streq(line, "success")) {
			st.success_ms = ms;
			free(st.success_uri);
			st.success_uri = strdup(end + 1);
		} else if (streq(line, "error")) {
			st.error_ms = ms;
			free(st.error);
			st.error = strdup(end + 1);
		}
	}
	*ret = st;
	return 0;
}

int directory_status_note(const char *state_dir, const char *uri, const char *error)
{
	_cleanup_free_ char *path = NULL, *dir = NULL, *text = NULL;
	DirectoryStatus st = {};
	uint64_t now = now_realtime_ms();
	int r;

	if (asprintf(&dir, "%s/" DIRECTORY_CACHE_SUBDIR, state_dir) < 0 ||
	        asprintf(&path, "%s/" DIRECTORY_STATUS_FILE, dir) < 0)
		return -ENOMEM;
	r = mkdir_parents(dir, 0700);
	if (r < 0)
		return r;
	(void)directory_status_load(state_dir, &st);
	if (error) {
		st.error_ms = now;
		free(st.error);
		st.error = strdup(error);
	} else {
		st.success_ms = now;
		free(st.success_uri);
		st.success_uri = strdup(strempty(uri));
	}
	/* one line each: no newline of a server's message gets in */
	for (char *p = st.error; p && *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (asprintf(&text, "%s%" PRIu64 " %s\n%s%" PRIu64 " %s\n",
	            st.success_ms ? "success " : "# ", st.success_ms, strempty(st.success_uri),
	            st.error_ms ? "error " : "# ", st.error_ms, strempty(st.error)) < 0) {
		directory_status_done(&st);
		return -ENOMEM;
	}
	directory_status_done(&st);
	return write_file_atomic(path, text, strlen(text), 0600);
}
