/* pam-stack.c: reads PAM stacks the way libpam does (/etc/pam.d, then /usr/lib/pam.d,
 * includes flattened, under an optional root) and lists the services present. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pam-stack.h"
#include "util.h"

/* Where libpam looks, in its order: /etc/pam.d, then its vendor directory /usr/lib/pam.d
 * (Debian's polkit-1 and systemd-user live there). */
static const char *const pam_dirs[] = {"/etc/pam.d", "/usr/lib/pam.d"};

void pam_stack_done(PamStack *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->lines[i].type);
		free(s->lines[i].control);
		free(s->lines[i].module);
		free(s->lines[i].args);
		free(s->lines[i].file);
	}
	free(s->lines);
	*s = (PamStack){};
}

bool pam_service_name_valid(const char *name)
{
	return !isempty(name) && !strchr(name, '/') && !streq(name, ".") && !streq(name, "..") &&
	       strlen(name) <= NAME_MAX;
}

bool pam_line_is(const PamLine *l, const char *module)
{
	const char *slash = strrchr(l->module, '/');

	return streq(slash ? slash + 1 : l->module, module);
}

bool pam_stack_has(const PamStack *s, const char *module)
{
	for (size_t i = 0; i < s->n; i++)
		if (pam_line_is(&s->lines[i], module))
			return true;
	return false;
}

/* Cuts the next whitespace-separated token (a [...] control counts as one). */
static char *next_token(char **p)
{
	char *s = *p, *start;

	s += strspn(s, " \t");
	if (!*s)
		return NULL;
	start = s;
	if (*s == '[') {
		char *end = strchr(s, ']');

		s = end ? end + 1 : s + strlen(s);
	} else
		s += strcspn(s, " \t");
	if (*s)
		*s++ = '\0';
	*p = s;
	return start;
}

static int pam_stack_add(PamStack *s, const char *type, const char *control, const char *module,
        const char *args, const char *file, unsigned line)
{
	PamLine *n;

	if (s->n >= PAM_STACK_MAX_LINES)
		return -E2BIG;
	n = reallocarray(s->lines, s->n + 1, sizeof(PamLine));
	if (!n)
		return -ENOMEM;
	s->lines = n;
	n = &s->lines[s->n];
	*n = (PamLine){
	        .type = strdup(type),
	        .control = strdup(control),
	        .module = strdup(module),
	        .args = strdup(args),
	        .file = strdup(file),
	        .line = line,
	};
	s->n++;
	if (!n->type || !n->control || !n->module || !n->args || !n->file)
		return -ENOMEM;
	return 0;
}

static int pam_stack_load_depth(
        const char *root, const char *name, const char *type, unsigned depth, PamStack *s)
{
	_cleanup_free_ char *path = NULL, *shown = NULL, *text = NULL;
	_cleanup_close_ int fd = -EBADF;
	char *cursor;
	unsigned lineno = 0;
	int r;

	if (depth > PAM_STACK_MAX_DEPTH)
		return -ELOOP;
	if (!pam_service_name_valid(name))
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(pam_dirs); i++) {
		free(shown);
		free(path);
		path = NULL;
		if (asprintf(&shown, "%s/%s", pam_dirs[i], name) < 0) {
			shown = NULL;
			return -ENOMEM;
		}
		if (asprintf(&path, "%s%s", root, shown) < 0) {
			path = NULL;
			return -ENOMEM;
		}
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd >= 0 || errno != ENOENT)
			break;
	}
	if (fd < 0)
		return -errno;
	r = read_full_fd(fd, PAM_STACK_MAX_FILE, &text, NULL);
	if (r < 0)
		return r;

	cursor = text;
	/* Backslash-newline continues a line. */
	for (char *c = text; (c = strstr(c, "\\\n"));) {
		c[0] = ' ';
		c[1] = ' ';
	}
	for (char *l; (l = strsep(&cursor, "\n"));) {
		char *p = l, *hash, *t, *control, *module;

		lineno++; /* approximate after continuation lines; good enough for messages */
		hash = strchr(l, '#');
		if (hash)
			*hash = '\0';
		t = next_token(&p);
		if (!t)
			continue;
		if (streq(t, "@include")) {
			char *inc = next_token(&p);

			if (!inc)
				continue;
			r = pam_stack_load_depth(root, inc, type, depth + 1, s);
			if (r < 0 && r != -ENOENT)
				return r;
			continue;
		}
		if (t[0] == '-')
			t++;
		if (!*t)
			continue; /* a lone '-' names no type */
		if (type && !streq(t, type))
			continue;
		control = next_token(&p);
		module = next_token(&p);
		if (!control || !module)
			continue;
		if (streq(control, "include") || streq(control, "substack")) {
			r = pam_stack_load_depth(root, module, t, depth + 1, s);
			if (r < 0 && r != -ENOENT)
				return r;
			continue;
		}
		p += strspn(p, " \t");
		r = pam_stack_add(s, t, control, module, p, shown, lineno);
		if (r < 0)
			return r;
	}
	return 0;
}

int pam_stack_load(const char *root, const char *name, const char *type, PamStack *s)
{
	if (!name || !s)
		return -EINVAL;
	return pam_stack_load_depth(root ?: "", name, type, 0, s);
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && streq(s + n - k, suffix);
}

/* Files in a pam.d directory that no login names as its service. */
static bool pam_file_is_service(const char *name)
{
	static const char *const leftovers[] = {".dpkg-", ".ucf-"};
	static const char *const suffixes[] = {"~", ".rpmnew", ".rpmsave", ".bak", ".orig"};

	if (!pam_service_name_valid(name) || name[0] == '.')
		return false;
	/* common-*: pam-auth-update's include-only files; other: libpam's fallback stack,
	 * never a PAM_SERVICE of its own. */
	if (strneq(name, "common-", strlen("common-")) || streq(name, "other"))
		return false;
	for (size_t i = 0; i < ELEMENTSOF(leftovers); i++)
		if (strstr(name, leftovers[i]))
			return false;
	for (size_t i = 0; i < ELEMENTSOF(suffixes); i++)
		if (has_suffix(name, suffixes[i]))
			return false;
	return true;
}

static int list_dir(const char *root, const char *dir, char ***names, size_t *n)
{
	_cleanup_free_ char *path = NULL;
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (asprintf(&path, "%s%s", root, dir) < 0)
		return -ENOMEM;
	d = opendir(path);
	if (!d)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	for (;;) {
		struct stat st;

		errno = 0;
		de = readdir(d);
		if (!de) {
			r = errno ? -errno : 0;
			break;
		}
		if (!pam_file_is_service(de->d_name))
			continue;
		/* libpam opens the file, so a symlink to a regular file is a service. */
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (*n >= PAM_STACK_MAX_SERVICES) {
			r = -E2BIG;
			break;
		}
		r = strv_extend(names, de->d_name);
		if (r < 0)
			break;
		(*n)++;
	}
	closedir(d);
	return r;
}

int pam_services_list(const char *root, char ***ret)
{
	_cleanup_strv_free_ char **names = NULL;
	size_t n = 0;
	int r;

	if (!ret)
		return -EINVAL;
	names = calloc(1, sizeof(char *));
	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(pam_dirs); i++) {
		r = list_dir(root ?: "", pam_dirs[i], &names, &n);
		if (r < 0)
			return r;
	}
	(void)strv_sort_uniq(names, n);
	*ret = TAKE_PTR(names);
	return 0;
}
