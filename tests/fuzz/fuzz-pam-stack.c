/* fuzz-pam-stack.c: libFuzzer target for the PAM stack reader (policy/pam-stack.c) that
 * doctor, report and enrolment run over /etc/pam.d: the input is the text of one stack
 * file in a scratch root (with a few fixed files to include); checks the lines it returns. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pam-stack.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char root[256];

static void die(const char *what)
{
	perror(what);
	abort();
}

static void write_at(const char *rel, const void *data, size_t size)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s%s", root, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size) || close(fd) < 0)
		die(path);
}

static void rm_tree(void)
{
	char cmd[512];

	/* Only the scratch root this process made. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz-pam-stack: could not remove %s\n", root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const dirs[] = {
	        "/etc", "/etc/pam.d", "/usr", "/usr/lib", "/usr/lib/pam.d"};
	static const char auth[] = "auth [success=1 default=ignore] pam_unix.so nullok\n"
	                           "auth requisite pam_deny.so\n";
	static const char vendor[] = "-auth optional /usr/lib/security/pam_keyward.so debug\n"
	                             "session include common-session\n";
	static const char session[] = "session required pam_unix.so\n";
	const char *tmp = getenv("TMPDIR");
	char path[512];

	snprintf(root, sizeof(root), "%s/fuzz-pam-stack.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root))
		die("mkdtemp");
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		snprintf(path, sizeof(path), "%s%s", root, dirs[i]);
		if (mkdir(path, 0755) < 0)
			die(path);
	}
	write_at("/etc/pam.d/common-auth", auth, strlen(auth));
	write_at("/etc/pam.d/common-session", session, strlen(session));
	write_at("/usr/lib/pam.d/vendor", vendor, strlen(vendor));
	atexit(rm_tree);
	return 0;
}

/* Tokens are cut at blanks, except a [...] token (libpam's _pam_StrTok() does the same
 * for every token, so an unterminated '[' takes the rest of the line). */
static bool has_blank(const char *s)
{
	return s[0] != '[' && strpbrk(s, " \t") != NULL;
}

/* What every line the reader returns must look like. */
static void check_line(const PamLine *l, const char *type)
{
	if (isempty(l->type) || has_blank(l->type) || strpbrk(l->type, "#\n"))
		abort();
	if (type && !streq(l->type, type))
		abort();
	if (isempty(l->control) || strpbrk(l->control, "#\n"))
		abort();
	if (has_blank(l->control))
		abort();
	if (isempty(l->module) || has_blank(l->module) || strpbrk(l->module, "#\n"))
		abort();
	if (streq(l->control, "include") || streq(l->control, "substack"))
		abort(); /* includes are flattened, never returned */
	if (strpbrk(l->args, "#\n") || l->args[0] == ' ' || l->args[0] == '\t')
		abort();
	if (!strneq(l->file, "/etc/pam.d/", 11) && !strneq(l->file, "/usr/lib/pam.d/", 15))
		abort();
	if (l->line == 0)
		abort();
}

static bool calls_keyward(const PamStack *s)
{
	for (size_t i = 0; i < s->n; i++) {
		const char *m = strrchr(s->lines[i].module, '/');

		if (streq(m ? m + 1 : s->lines[i].module, "pam_keyward.so"))
			return true;
	}
	return false;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && streq(s + n - k, suffix);
}

/* pam-stack.h: the files that are no service of their own. */
static bool expect_service(const char *name)
{
	return name[0] != '.' && !streq(name, "other") && !strneq(name, "common-", 7) &&
	       !strstr(name, ".dpkg-") && !strstr(name, ".ucf-") && !has_suffix(name, "~") &&
	       !has_suffix(name, ".rpmnew") && !has_suffix(name, ".rpmsave") &&
	       !has_suffix(name, ".bak") && !has_suffix(name, ".orig");
}

static bool same_line(const PamLine *a, const PamLine *b)
{
	return streq(a->type, b->type) && streq(a->control, b->control) &&
	       streq(a->module, b->module) && streq(a->args, b->args) && streq(a->file, b->file) &&
	       a->line == b->line;
}

/* The services list holds valid, unique, sorted names and never the include-only files. */
static void check_services(char **names)
{
	bool fuzz = false, vendor = false;

	for (size_t i = 0; names[i]; i++) {
		if (!pam_service_name_valid(names[i]) || names[i][0] == '.' ||
		        streq(names[i], "other") || strneq(names[i], "common-", 7))
			abort();
		if (i > 0 && strcmp(names[i - 1], names[i]) >= 0)
			abort();
		fuzz = fuzz || streq(names[i], "fuzz");
		vendor = vendor || streq(names[i], "vendor");
	}
	if (!fuzz || !vendor)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	PamStack all = {}, auth = {};
	char name[64], path[512];
	size_t k = 0;
	int r, q;

	if (size > PAM_STACK_MAX_FILE)
		return 0;
	write_at("/etc/pam.d/fuzz", data, size);

	r = pam_stack_load(root, "fuzz", NULL, &all);
	if (all.n > PAM_STACK_MAX_LINES || r == -ENOENT || r > 0)
		abort();
	for (size_t i = 0; i < all.n; i++)
		check_line(&all.lines[i], NULL);
	if (pam_stack_has(&all, "pam_keyward.so") != calls_keyward(&all))
		abort();

	/* Reading one type gives the lines of that type of the whole stack, in order. */
	q = pam_stack_load(root, "fuzz", "auth", &auth);
	for (size_t i = 0; i < auth.n; i++)
		check_line(&auth.lines[i], "auth");
	if (r == 0 && q == 0) {
		for (size_t i = 0; i < all.n; i++) {
			if (!streq(all.lines[i].type, "auth"))
				continue;
			if (k >= auth.n || !same_line(&all.lines[i], &auth.lines[k]))
				abort();
			k++;
		}
		if (k != auth.n)
			abort();
	}
	pam_stack_done(&all);
	pam_stack_done(&auth);

	/* The first line, as a file name next to the others: the service list's filters. */
	for (k = 0; k < size && k < sizeof(name) - 1 && data[k] != '\n' && data[k] != '\0'; k++)
		name[k] = (char)data[k];
	name[k] = '\0';
	if (pam_service_name_valid(name) && !streq(name, "fuzz") && !streq(name, "vendor") &&
	        !streq(name, "common-auth") && !streq(name, "common-session")) {
		_cleanup_strv_free_ char **names = NULL;

		snprintf(path, sizeof(path), "/etc/pam.d/%s", name);
		write_at(path, "", 0);
		if (pam_services_list(root, &names) < 0)
			abort();
		check_services(names);
		if (strv_contains(names, name) != expect_service(name))
			abort();
		snprintf(path, sizeof(path), "%s/etc/pam.d/%s", root, name);
		if (unlink(path) < 0)
			die(path);
	}
	return 0;
}
