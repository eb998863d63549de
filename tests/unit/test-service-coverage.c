/* test-service-coverage.c: the PAM-stack reader and service_coverage_*() on a fixture root —
 * which services are present, which reach pam_keyward.so, which rules name them, and where
 * a user must use a key (the answer keywardd's Enroll, keywardctl doctor and report share). */
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pam-stack.h"
#include "policy.h"
#include "service-coverage.h"
#include "util.h"

static unsigned failures, checks;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		checks++;                                                                          \
		if (!(cond)) {                                                                     \
			failures++;                                                                \
			fprintf(stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__, #cond);           \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
		}                                                                                  \
	} while (0)

static char root[] = "/tmp/test-service-coverage.XXXXXX";

_printf_(2, 3) static void put(const char *path, const char *fmt, ...)
{
	_cleanup_free_ char *full = NULL, *text = NULL;
	va_list ap;
	FILE *f;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		abort();
	va_end(ap);
	if (asprintf(&full, "%s%s", root, path) < 0)
		abort();
	f = fopen(full, "we");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "cannot write %s: %m\n", full);
		abort();
	}
}

static void mkdirs(void)
{
	static const char *const dirs[] = {
	        "/etc", "/etc/pam.d", "/usr", "/usr/lib", "/usr/lib/pam.d"};

	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		_cleanup_free_ char *p = NULL;

		if (asprintf(&p, "%s%s", root, dirs[i]) < 0 || mkdir(p, 0755) < 0)
			abort();
	}
}

static const char *const stack =
        "#%PAM-1.0\n@include common-auth\n@include common-account\n@include common-session\n";

static void make_tree(void)
{
	mkdirs();
	put("/etc/pam.d/common-auth", "auth [success=1 default=ignore] pam_unix.so\n"
	                              "auth requisite pam_deny.so\n"
	                              "auth required pam_permit.so\n"
	                              "-auth [success=ok ignore=ignore default=die] "
	                              "/lib/security/pam_keyward.so\n");
	put("/etc/pam.d/common-account", "account required pam_unix.so\n"
	                                 "account required pam_keyward.so\n");
	put("/etc/pam.d/common-session", "session optional pam_systemd.so \\\n"
	                                 "  class=user\nsession optional pam_keyward.so\n");
	put("/etc/pam.d/common-password", "password required pam_unix.so\n");
	put("/etc/pam.d/other", "@include common-auth\n");
	for (const char *const *s = (const char *const[]){"sudo", "sudo-i", "login", "sddm",
	             "lightdm", "chfn", NULL};
	        *s; s++) {
		_cleanup_free_ char *p = NULL;

		if (asprintf(&p, "/etc/pam.d/%s", *s) < 0)
			abort();
		put(p, "%s", stack);
	}
	/* Not services: package leftovers, hidden and backup files. */
	put("/etc/pam.d/sudo.dpkg-old", "%s", stack);
	put("/etc/pam.d/.sudo.swp", "x\n");
	put("/etc/pam.d/login~", "%s", stack);
	/* No keyward; a substack; an include loop. */
	put("/etc/pam.d/cron", "account required pam_unix.so\nsession required pam_unix.so\n");
	put("/etc/pam.d/su", "auth substack common-auth\naccount include common-account\n");
	put("/etc/pam.d/loop", "auth include loop\n");
	/* Vendor directory: polkit-1 only there; sddm there too, but /etc wins. */
	put("/usr/lib/pam.d/polkit-1", "auth include common-auth\n");
	put("/usr/lib/pam.d/sddm", "auth required pam_deny.so\n");
}

static void test_reader(void)
{
	_cleanup_strv_free_ char **names = NULL;
	const char *want[] = {"chfn", "cron", "lightdm", "login", "loop", "polkit-1", "sddm", "su",
	        "sudo", "sudo-i", NULL};
	PamStack s = {};
	int r;

	r = pam_services_list(root, &names);
	CHECK(r == 0, "pam_services_list: %d", r);
	for (size_t i = 0; want[i] || (names && names[i]); i++)
		CHECK(names && want[i] && names[i] && streq(names[i], want[i]),
		        "service %zu: %s, want %s", i, names && names[i] ? names[i] : "(end)",
		        want[i] ? want[i] : "(end)");

	r = pam_stack_load(root, "sudo", "auth", &s);
	CHECK(r == 0 && s.n == 4, "sudo auth: %d, %zu lines", r, s.n);
	CHECK(s.n == 4 && pam_line_is(&s.lines[3], "pam_keyward.so") &&
	                streq(s.lines[3].file, "/etc/pam.d/common-auth") && s.lines[3].line == 4,
	        "keyward line found by path, named as on the target");
	pam_stack_done(&s);
	r = pam_stack_load(root, "sddm", "auth", &s);
	CHECK(r == 0 && pam_stack_has(&s, "pam_keyward.so"), "sddm read from /etc, not /usr/lib");
	pam_stack_done(&s);
	r = pam_stack_load(root, "su", "auth", &s);
	CHECK(r == 0 && pam_stack_has(&s, "pam_keyward.so"), "substack followed");
	pam_stack_done(&s);
	r = pam_stack_load(root, "session-check", NULL, &s);
	CHECK(r == -ENOENT, "missing service: %d", r);
	pam_stack_done(&s);
	r = pam_stack_load(root, "loop", "auth", &s);
	CHECK(r == -ELOOP, "include loop: %d", r);
	pam_stack_done(&s);
	r = pam_stack_load(root, "../passwd", "auth", &s);
	CHECK(r == -EINVAL, "invalid name: %d", r);
	pam_stack_done(&s);
	r = pam_stack_load(root, "login", "session", &s);
	CHECK(r == 0 && s.n == 2 && streq(s.lines[0].args, "class=user"),
	        "continuation line: %d, %zu", r, s.n);
	pam_stack_done(&s);
}

/* clang-format off */
static const char policy_text[] =
	"rules = (\n"
	"  { name = \"wheel-ssh\"; match = { groups = [\"wheel\"]; services = [\"sshd\"]; };\n"
	"    require = \"deny\"; },\n"
	"  { name = \"admins\"; match = { groups = [\"wheel\"];\n"
	"    services = [\"sudo\", \"sudo-i\", \"login\", \"sddm\", \"lightdm\", \"polkit-1\", \"doas\"]; };\n"
	"    require = \"key\"; },\n"
	"  { name = \"console\"; match = { users = [\"bob\"]; ttys = [\"/dev/tty[0-9]*\"]; };\n"
	"    require = \"key\"; }\n"
	");\n"
	"default = { require = \"none\"; };\n";
/* clang-format on */

static int failing_evaluate(const PolicyRequest *req, PolicyDecision *ret, void *userdata)
{
	return -EIO;
}

static char *hits_string(const ServiceCoverage *c, const Policy *p, const char *user,
        char *const *groups, bool include_absent)
{
	_cleanup_free_ ServiceCoverageHit *hits = NULL;
	size_t n = 0;
	char *s = NULL;
	int r;

	r = service_coverage_user(c, p,
	        &(ServiceCoverageQuery){.user = user,
	                .uid = 1000,
	                .groups = groups,
	                .include_absent = include_absent},
	        &hits, &n);
	if (r < 0 || service_coverage_hits_join(hits, n, &s) < 0)
		return NULL;
	return s;
}

static void test_coverage(void)
{
	PolicyDiagnostics diags = {};
	_cleanup_(policy_freep) Policy *p = NULL;
	_cleanup_(service_coverage_freep) ServiceCoverage *c = NULL;
	_cleanup_free_ char *carol = NULL, *carol_enroll = NULL, *bob = NULL, *nobody = NULL;
	_cleanup_free_ ServiceCoverageHit *hits = NULL;
	char *wheel[] = {"carol", "wheel", NULL}, *none[] = {"bob", NULL};
	const ServiceCoverageEntry *e;
	size_t n = 0;
	int r;

	r = policy_load_string(policy_text, "keyward.conf", &diags, &p);
	CHECK(r == 0, "policy: %d", r);
	policy_diagnostics_clear(&diags);
	if (!p)
		return;
	r = service_coverage_load(p, root, &c);
	CHECK(r == 0 && c, "service_coverage_load: %d", r);
	if (!c)
		return;

	e = service_coverage_find(c, "sddm");
	CHECK(e && e->present && e->keyward_auth && e->keyward_account && e->keyward_session &&
	                e->error == 0 && e->rules[0] && streq(e->rules[0], "admins") &&
	                !e->rules[1],
	        "sddm");
	e = service_coverage_find(c, "chfn");
	CHECK(e && e->present && e->keyward_auth && !e->rules[0], "chfn: keyward, no rule");
	e = service_coverage_find(c, "cron");
	CHECK(e && e->present && !e->keyward_auth && e->error == 0, "cron: no keyward");
	e = service_coverage_find(c, "loop");
	CHECK(e && e->present && e->error == -ELOOP, "loop: error kept");
	e = service_coverage_find(c, "doas");
	CHECK(e && !e->present && streq(e->rules[0], "admins"), "doas: named, absent");
	e = service_coverage_find(c, "sshd");
	CHECK(e && !e->present && streq(e->rules[0], "wheel-ssh"), "sshd: named, absent");
	CHECK(!service_coverage_find(c, "common-auth") && !service_coverage_find(c, "other"),
	        "include-only files are not services");
	for (size_t i = 1; i < c->n; i++)
		CHECK(strcmp(c->entries[i - 1].name, c->entries[i].name) < 0, "sorted at %zu", i);

	carol = hits_string(c, p, "carol", wheel, false);
	CHECK(carol && streq(carol, "lightdm, login, polkit-1, sddm, sudo, sudo-i"), "carol: %s",
	        strna(carol));
	carol_enroll = hits_string(c, p, "carol", wheel, true);
	CHECK(carol_enroll &&
	                streq(carol_enroll, "doas, lightdm, login, polkit-1, sddm, sudo, sudo-i"),
	        "carol, enrollment: %s", strna(carol_enroll));
	/* A rule on console ttys: found through the hints' typical tty (lightdm's is ":0"). */
	bob = hits_string(c, p, "bob", none, false);
	CHECK(bob && streq(bob, "login, sddm"), "bob: %s", strna(bob));
	nobody = hits_string(c, p, "nobody", NULL, true);
	CHECK(nobody && streq(nobody, ""), "nobody: %s", strna(nobody));

	r = service_coverage_user(c, p,
	        &(ServiceCoverageQuery){
	                .user = "carol", .groups = wheel, .evaluate = failing_evaluate},
	        &hits, &n);
	CHECK(r == -EIO, "a failed evaluation is an error, not 'not covered': %d", r);
	r = service_coverage_user(c, p, &(ServiceCoverageQuery){.user = ""}, &hits, &n);
	CHECK(r == -EINVAL, "empty user: %d", r);
}

static void test_no_tree(void)
{
	_cleanup_(service_coverage_freep) ServiceCoverage *c = NULL;
	_cleanup_free_ char *empty = NULL;
	int r;

	if (asprintf(&empty, "%s/nothing", root) < 0)
		abort();
	r = service_coverage_load(NULL, empty, &c);
	CHECK(r == 0 && c && c->n == 0, "no pam.d: %d", r);
	CHECK(service_hint_lookup("sudo-i") && service_hint_lookup("sudo-i")->elevation,
	        "sudo -i skips authentication like sudo");
	CHECK(!service_hint_lookup("cron"), "no hint for cron");
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	if (!mkdtemp(root))
		return 2;
	make_tree();
	test_reader();
	test_coverage();
	test_no_tree();
	if (nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "cannot remove %s: %m\n", root);
	fprintf(stderr, "test-service-coverage: %u checks, %u failed\n", checks, failures);
	return failures ? 1 : 0;
}
