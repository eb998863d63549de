/* ctl-doctor.c: `keywardctl doctor` — checks an installation (or a tree given with --root)
 * and the live system: PAM stacks, policy, enrollment gaps, file modes, udev, daemon. */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>

#include "bus-names.h"
#include "creds.h"
#include "ctl.h"
#include "keyward-config.h"
#include "pam-stack.h"
#include "policy.h"
#include "service-coverage.h"
#include "util.h"

#define DOCTOR_MAX_USERS          65536 /* getpwent() entries examined */
#define DOCTOR_MAX_REPORTED_USERS 20
#define DOCTOR_GROUPS_MAX         65536
#define DOCTOR_BUS_TIMEOUT_USEC   (5 * 1000 * 1000ULL)

typedef enum Severity {
	SEVERITY_OK,
	SEVERITY_WARNING,
	SEVERITY_ERROR,
	_SEVERITY_MAX,
	_SEVERITY_INVALID = -EINVAL,
} Severity;

static const char *const severity_table[_SEVERITY_MAX] = {
        [SEVERITY_OK] = "ok",
        [SEVERITY_WARNING] = "warning",
        [SEVERITY_ERROR] = "error",
};

static DEFINE_STRING_TABLE_LOOKUP_TO_STRING(severity, Severity, severity_table)

        typedef struct Doctor {
	const char *root; /* "" for the live system */
	const char *config;
	bool offline;
	bool quiet;
	size_t n_errors;
	size_t n_warnings;
	size_t n_pam_services; /* services whose auth stack has pam_keyward */
	Policy *policy;
	ServiceCoverage *coverage; /* the PAM services present (check_pam()) */
} Doctor;

/* One finding: severity, what was found, and (for warnings/errors) what to do. */
_printf_(4, 5) static void finding(Doctor *d, Severity s, const char *todo, const char *fmt, ...)
{
	va_list ap;

	if (s == SEVERITY_ERROR)
		d->n_errors++;
	else if (s == SEVERITY_WARNING)
		d->n_warnings++;
	if (d->quiet && s == SEVERITY_OK)
		return;
	printf("%-8s ", severity_to_string(s));
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (todo && s != SEVERITY_OK)
		printf("%-8s -> %s\n", "", todo);
}

/* PATH (absolute, as on the target system) under --root. */
static char *rooted(const Doctor *d, const char *path)
{
	char *s = NULL;

	if (asprintf(&s, "%s%s", d->root, path) < 0)
		return NULL;
	return s;
}

/* A path under --root as the admin knows it (for messages). */
static const char *unrooted(const Doctor *d, const char *path)
{
	size_t n = strlen(d->root);

	if (path && n > 0 && strneq(path, d->root, n) && path[n] == '/')
		return path + n;
	return path;
}

/* Out of memory: counts as an error (the checks are incomplete). */
static void oom(Doctor *d)
{
	d->n_errors++;
	fprintf(stderr, "keywardctl doctor: out of memory; the checks are incomplete\n");
}

/* ---- PAM stacks ---------------------------------------------------------------- */

typedef enum PamAction {
	PAM_ACTION_IGNORE,
	PAM_ACTION_BAD,
	PAM_ACTION_DIE,
	PAM_ACTION_OK,
	PAM_ACTION_DONE,
	PAM_ACTION_RESET,
	PAM_ACTION_JUMP,
	_PAM_ACTION_MAX,
	_PAM_ACTION_INVALID = -EINVAL,
} PamAction;

static const char *const pam_action_table[_PAM_ACTION_MAX] = {
        [PAM_ACTION_IGNORE] = "ignore",
        [PAM_ACTION_BAD] = "bad",
        [PAM_ACTION_DIE] = "die",
        [PAM_ACTION_OK] = "ok",
        [PAM_ACTION_DONE] = "done",
        [PAM_ACTION_RESET] = "reset",
        [PAM_ACTION_JUMP] = "jump",
};

static PamAction pam_action_from_string(const char *s)
{
	if (s[0] >= '1' && s[0] <= '9' && strspn(s, "0123456789") == strlen(s))
		return PAM_ACTION_JUMP;
	for (PamAction a = 0; a < _PAM_ACTION_MAX; a++)
		if (a != PAM_ACTION_JUMP && streq(pam_action_table[a], s))
			return a;
	return _PAM_ACTION_INVALID;
}

/* The return codes a PAM module reports on failure, by their pam.conf(5) names. */
static const char *const pam_failure_codes[] = {
        "auth_err",
        "authinfo_unavail",
        "cred_insufficient",
        "maxtries",
        "perm_denied",
        "system_err",
        "service_err",
        "user_unknown",
        "buf_err",
        "conv_err",
        "abort",
        "module_unknown",
        "symbol_err",
        "open_err",
};

typedef struct PamControl {
	PamAction success;
	PamAction ignore;
	PamAction failure;        /* the least safe action among the failure codes */
	const char *failure_code; /* which code had it ("default" when from default=) */
} PamControl;

/* Parses a control field: a keyword or [value=action ...]. -EINVAL when unknown. */
static int pam_control_parse(const char *control, PamControl *ret)
{
	static const struct {
		const char *keyword;
		PamAction success, ignore, failure;
	} keywords[] = {
	        {"required", PAM_ACTION_OK, PAM_ACTION_IGNORE, PAM_ACTION_BAD},
	        {"requisite", PAM_ACTION_OK, PAM_ACTION_IGNORE, PAM_ACTION_DIE},
	        {"sufficient", PAM_ACTION_DONE, PAM_ACTION_IGNORE, PAM_ACTION_IGNORE},
	        {"optional", PAM_ACTION_OK, PAM_ACTION_IGNORE, PAM_ACTION_IGNORE},
	};
	PamAction def = PAM_ACTION_BAD, success = _PAM_ACTION_INVALID, ignore = _PAM_ACTION_INVALID;
	PamAction codes[ELEMENTSOF(pam_failure_codes)];
	_cleanup_free_ char *copy = NULL;
	char *save = NULL;
	size_t len;

	for (size_t i = 0; i < ELEMENTSOF(keywords); i++)
		if (streq(control, keywords[i].keyword)) {
			*ret = (PamControl){
			        .success = keywords[i].success,
			        .ignore = keywords[i].ignore,
			        .failure = keywords[i].failure,
			        .failure_code = "default",
			};
			return 0;
		}

	len = strlen(control);
	if (len < 2 || control[0] != '[' || control[len - 1] != ']')
		return -EINVAL;
	copy = strndup(control + 1, len - 2);
	if (!copy)
		return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(codes); i++)
		codes[i] = _PAM_ACTION_INVALID;
	for (char *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(t, '=');
		PamAction a;

		if (!eq)
			return -EINVAL;
		*eq = '\0';
		a = pam_action_from_string(eq + 1);
		if (a < 0)
			return -EINVAL;
		if (streq(t, "default"))
			def = a;
		else if (streq(t, "success"))
			success = a;
		else if (streq(t, "ignore"))
			ignore = a;
		else
			for (size_t i = 0; i < ELEMENTSOF(pam_failure_codes); i++)
				if (streq(t, pam_failure_codes[i]))
					codes[i] = a;
	}

	*ret = (PamControl){
	        .success = success >= 0 ? success : def,
	        .ignore = ignore >= 0 ? ignore : def,
	        .failure = def,
	        .failure_code = "default",
	};
	/* The least safe outcome among the failure codes: ignoring a failure (or resetting
	 * the stack) is worse than jumping, which is worse than recording it. */
	for (size_t i = 0; i < ELEMENTSOF(codes); i++) {
		PamAction a = codes[i] >= 0 ? codes[i] : def;
		bool unsafe = a == PAM_ACTION_IGNORE || a == PAM_ACTION_RESET;
		bool was_unsafe =
		        ret->failure == PAM_ACTION_IGNORE || ret->failure == PAM_ACTION_RESET;

		if ((unsafe && !was_unsafe) ||
		        (a == PAM_ACTION_JUMP && !was_unsafe && ret->failure != PAM_ACTION_JUMP)) {
			ret->failure = a;
			ret->failure_code = codes[i] >= 0 ? pam_failure_codes[i] : "default";
		}
	}
	return 0;
}

/* Modules that check the account password (the "usual" factor keyward adds to). */
static bool pam_line_is_password_module(const PamLine *l)
{
	static const char *const modules[] = {
	        "pam_unix.so",
	        "pam_sss.so",
	        "pam_ldap.so",
	        "pam_krb5.so",
	        "pam_winbind.so",
	};

	for (size_t i = 0; i < ELEMENTSOF(modules); i++)
		if (pam_line_is(l, modules[i]))
			return true;
	return false;
}

/* A PAM service being checked: its name, and what the hints know about it. */
typedef struct ServiceInfo {
	const char *service;
	const char *what; /* for messages: "console login", else the service's name */
	bool elevation;   /* may skip authentication (cached timestamps): needs the account line */
} ServiceInfo;

/* Checks one keyward auth line of SERVICE in the flattened stack. */
static void check_keyward_auth_line(
        Doctor *d, const ServiceInfo *svc, const PamStack *st, size_t i, size_t first_password)
{
	const PamLine *l = &st->lines[i];
	PamControl c;
	bool before_password = first_password != SIZE_MAX && i < first_password;

	if (pam_control_parse(l->control, &c) < 0) {
		finding(d, SEVERITY_ERROR,
		        "write a valid control (the keyward profile uses "
		        "[success=ok new_authtok_reqd=ok ignore=ignore default=die])",
		        "pam/%s: %s:%u: cannot parse the control '%s' of pam_keyward.so",
		        svc->service, l->file, l->line, l->control);
		return;
	}
	if (streq(l->control, "sufficient")) {
		finding(d, SEVERITY_ERROR,
		        "use the keyward profile: pam-auth-update --enable keyward (or the control "
		        "'requisite')",
		        "pam/%s: %s:%u: 'sufficient pam_keyward.so' lets a key alone grant %s and "
		        "ignores "
		        "a failed or missing key (keyward is not enforced)",
		        svc->service, l->file, l->line, svc->what);
		return;
	}
	if (c.failure == PAM_ACTION_IGNORE || c.failure == PAM_ACTION_RESET) {
		finding(d, SEVERITY_ERROR,
		        "make failures deny: control 'requisite' or [... default=die]",
		        "pam/%s: %s:%u: a keyward failure (%s) is ignored by control '%s': a "
		        "covered user "
		        "gets into %s without the key",
		        svc->service, l->file, l->line, c.failure_code, l->control, svc->what);
		return;
	}
	if (c.ignore != PAM_ACTION_IGNORE) {
		finding(d, SEVERITY_ERROR, "add ignore=ignore to the control (or use 'requisite')",
		        "pam/%s: %s:%u: control '%s' turns keyward's PAM_IGNORE (user not covered "
		        "by "
		        "the policy) into '%s': every uncovered user is locked out of %s",
		        svc->service, l->file, l->line, l->control, pam_action_table[c.ignore],
		        svc->what);
		return;
	}
	if (c.failure == PAM_ACTION_JUMP)
		finding(d, SEVERITY_WARNING,
		        "check that the jump lands on pam_deny.so, or use default=die",
		        "pam/%s: %s:%u: a keyward failure (%s) jumps instead of denying",
		        svc->service, l->file, l->line, c.failure_code);
	if (first_password == SIZE_MAX) {
		finding(d, SEVERITY_WARNING,
		        "make sure this is intended: %s has no password module (pam_unix.so)",
		        "pam/%s: %s:%u: pam_keyward.so is the only authentication in the stack",
		        svc->service, l->file, l->line);
		return;
	}
	if (before_password && (c.success == PAM_ACTION_DONE || c.success == PAM_ACTION_JUMP)) {
		finding(d, SEVERITY_WARNING,
		        "intended only with the keyward-keyonly profile; for key AND password: "
		        "pam-auth-update --disable keyward-keyonly --enable keyward",
		        "pam/%s: %s:%u: key-only mode: for covered users a key replaces the "
		        "password "
		        "in %s (uncovered users still use their password)",
		        svc->service, l->file, l->line, svc->what);
		return;
	}
	if (before_password) {
		finding(d, SEVERITY_WARNING,
		        "put pam_keyward.so after pam_unix.so (the keyward profile's Additional "
		        "block)",
		        "pam/%s: %s:%u: keyward runs before the password: anyone can make a "
		        "covered "
		        "user's key prompt appear without knowing the password",
		        svc->service, l->file, l->line);
		return;
	}
	finding(d, SEVERITY_OK, NULL, "pam/%s: %s:%u: key in addition to the password (%s)",
	        svc->service, l->file, l->line, l->control);
}

/* The stacks of one present service that reaches pam_keyward.so or that keyward should
 * protect (a rule names it, or the hints know it): the keyward lines and their order. */
static int check_service(Doctor *d, const ServiceInfo *svc)
{
	PamStack auth = {}, session = {}, account = {};
	size_t first_password = SIZE_MAX, n_keyward = 0;
	bool session_keyward = false, account_keyward = false;
	size_t systemd_session = SIZE_MAX, keyward_session = SIZE_MAX, n_session_keyward = 0;
	int r;

	r = pam_stack_load(d->root, svc->service, "auth", &auth);
	if (r < 0) {
		finding(d, SEVERITY_ERROR, "fix the PAM configuration",
		        "pam/%s: cannot read the PAM file of %s and its includes: %s", svc->service,
		        svc->service,
		        r == -ELOOP    ? "includes nest too deep (an include loop?)"
		        : r == -E2BIG  ? "more than 1024 lines"
		        : r == -EINVAL ? "an include names an invalid file"
		                       : strerror(-r));
		goto out;
	}
	r = pam_stack_load(d->root, svc->service, "account", &account);
	if (r < 0 && r != -ENOENT) {
		finding(d, SEVERITY_ERROR, "fix the PAM configuration",
		        "pam/%s: cannot read the account stack: %s", svc->service, strerror(-r));
		goto out;
	}
	account_keyward = pam_stack_has(&account, "pam_keyward.so");
	r = pam_stack_load(d->root, svc->service, "session", &session);
	if (r < 0 && r != -ENOENT) {
		finding(d, SEVERITY_ERROR, "fix the PAM configuration",
		        "pam/%s: cannot read the session stack: %s", svc->service, strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < session.n; i++) {
		if (pam_line_is(&session.lines[i], "pam_systemd.so"))
			systemd_session = i;
		if (pam_line_is(&session.lines[i], "pam_keyward.so")) {
			if (!session_keyward)
				keyward_session = i;
			n_session_keyward++;
			session_keyward = true;
		}
	}
	for (size_t i = 0; i < auth.n; i++)
		if (pam_line_is_password_module(&auth.lines[i])) {
			first_password = i;
			break;
		}
	for (size_t i = 0; i < auth.n; i++) {
		if (!pam_line_is(&auth.lines[i], "pam_keyward.so"))
			continue;
		n_keyward++;
		check_keyward_auth_line(d, svc, &auth, i, first_password);
	}
	if (n_keyward == 0) {
		finding(d, SEVERITY_WARNING,
		        "enable it: pam-auth-update --enable keyward (README: Enabling)",
		        "pam/%s: pam_keyward.so is not in the auth stack: keyward does not protect "
		        "%s",
		        svc->service, svc->what);
		goto out;
	}
	d->n_pam_services++;
	if (n_keyward > 1)
		finding(d, SEVERITY_WARNING,
		        "enable only one of the profiles keyward and keyward-keyonly",
		        "pam/%s: pam_keyward.so appears %zu times in the auth stack (users touch "
		        "the key %zu times)",
		        svc->service, n_keyward, n_keyward);
	if (n_session_keyward > 1)
		finding(d, SEVERITY_WARNING,
		        "enable keyward-session only together with keyward-keyonly",
		        "pam/%s: pam_keyward.so appears %zu times in the session stack",
		        svc->service, n_session_keyward);
	if (session_keyward && systemd_session != SIZE_MAX && keyward_session < systemd_session)
		finding(d, SEVERITY_WARNING,
		        "move the pam_keyward.so session line after pam_systemd.so",
		        "pam/%s: %s:%u: the pam_keyward.so session line runs before "
		        "pam_systemd.so, "
		        "which creates the logind session it binds to",
		        svc->service, session.lines[keyward_session].file,
		        session.lines[keyward_session].line);
	if (!session_keyward)
		finding(d, SEVERITY_WARNING,
		        "add the session line (the keyward profile has it): pam-auth-update "
		        "--enable keyward",
		        "pam/%s: no pam_keyward.so session line: sessions are not bound to the "
		        "key, so pulling the key out does not lock or end them",
		        svc->service);
	if (!account_keyward && svc->elevation)
		finding(d, SEVERITY_ERROR,
		        "enable the keyward profile again (its Account line): pam-auth-update "
		        "--enable keyward",
		        "pam/%s: no pam_keyward.so account line: an elevation that skips "
		        "authentication (sudo's cached timestamp) is not asked for the key",
		        svc->service);
	r = 0;
out:
	pam_stack_done(&auth);
	pam_stack_done(&account);
	pam_stack_done(&session);
	return r;
}

/* Every PAM service present (service_coverage_load()), not a fixed list: those that reach
 * pam_keyward.so, that a rule names or that the hints know are checked; a rule naming a
 * service with no PAM file and a keyward stack that no rule names are findings too. */
static void check_pam(Doctor *d)
{
	bool any_dm = false;
	int r;

	r = service_coverage_load(d->policy, d->root, &d->coverage);
	if (r < 0) {
		finding(d, SEVERITY_ERROR, "check /etc/pam.d and /usr/lib/pam.d",
		        "pam: cannot list the PAM services: %s", strerror(-r));
		return;
	}
	for (size_t i = 0; i < d->coverage->n; i++) {
		const ServiceCoverageEntry *e = &d->coverage->entries[i];
		const ServiceHint *h = service_hint_lookup(e->name);
		ServiceInfo svc = {
		        .service = e->name,
		        .what = h ? h->what : e->name,
		        .elevation = h && h->elevation,
		};
		size_t n_rules = strv_length(e->rules);

		if (!e->present) {
			finding(d, SEVERITY_WARNING,
			        "install the service, or take it out of the rule",
			        "pam/%s: rule '%s'%s names the PAM service %s, which has no "
			        "/etc/pam.d/%s or /usr/lib/pam.d/%s: not installed, so the rule "
			        "applies to no login",
			        e->name, e->rules[0], n_rules > 1 ? " (and others)" : "", e->name,
			        e->name, e->name);
			continue;
		}
		if (h && h->display_manager)
			any_dm = true;
		/* Neither keyward nor the policy nor the hints have anything to do with it. */
		if (e->error == 0 && !e->keyward_auth && n_rules == 0 && !h)
			continue;
		(void)check_service(d, &svc);
		if (e->error == 0 && e->keyward_auth && n_rules == 0)
			finding(d, SEVERITY_OK, NULL,
			        "pam/%s: pam_keyward.so runs but no rule names %s: rules without a "
			        "services condition and the default decide",
			        e->name, e->name);
	}
	for (const ServiceHint *h = service_hints; h->service; h++)
		if (!h->display_manager && !service_coverage_find(d->coverage, h->service))
			finding(d, SEVERITY_OK, NULL,
			        "pam/%s: no /etc/pam.d/%s or /usr/lib/pam.d/%s (not installed)",
			        h->service, h->service, h->service);
	if (!any_dm)
		finding(d, SEVERITY_OK, NULL,
		        "pam: no display manager PAM file (gdm-password, lightdm, sddm)");
	if (d->n_pam_services == 0)
		finding(d, SEVERITY_WARNING,
		        "when the policy is ready and keys are enrolled: pam-auth-update --enable "
		        "keyward",
		        "pam: keyward is not enabled for any service (nothing is enforced yet)");
}

/* ---- files ----------------------------------------------------------------------- */

typedef enum FileKind {
	FILE_KIND_DIR,
	FILE_KIND_FILE,
} FileKind;

/* Checks owner and mode of PATH: root-owned, no bits of FORBIDDEN_ERR (error) or
 * FORBIDDEN_WARN (warning). MISSING is the severity when it does not exist. */
static void check_path(Doctor *d, const char *label, const char *path, FileKind kind,
        mode_t forbidden_err, mode_t forbidden_warn, Severity missing, const char *missing_todo)
{
	_cleanup_free_ char *full = rooted(d, path);
	char todo[PATH_MAX + 64];
	struct stat st;
	mode_t mode;

	if (!full) {
		oom(d);
		return;
	}
	if (lstat(full, &st) < 0) {
		int e = errno;

		if (e == ENOENT)
			finding(d, missing, missing_todo, "%s: %s does not exist", label, path);
		else
			finding(d, SEVERITY_ERROR, "check the file system",
			        "%s: cannot stat %s: %s", label, path, strerror(e));
		return;
	}
	if (kind == FILE_KIND_DIR ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
		snprintf(todo, sizeof(todo), "replace %s with a %s owned by root", path,
		        kind == FILE_KIND_DIR ? "directory" : "regular file");
		finding(d, SEVERITY_ERROR, todo, "%s: %s is not a %s%s", label, path,
		        kind == FILE_KIND_DIR ? "directory" : "regular file",
		        S_ISLNK(st.st_mode) ? " (it is a symlink)" : "");
		return;
	}
	mode = st.st_mode & 07777;
	if (st.st_uid != 0) {
		snprintf(todo, sizeof(todo), "chown root:root %s", path);
		finding(d, SEVERITY_ERROR, todo, "%s: %s is owned by uid %u, not root", label, path,
		        (unsigned)st.st_uid);
		return;
	}
	if (mode & forbidden_err) {
		snprintf(todo, sizeof(todo), "chmod %04o %s",
		        (unsigned)(mode & ~forbidden_err & ~forbidden_warn), path);
		finding(d, SEVERITY_ERROR, todo, "%s: %s has mode %04o (writable by others)", label,
		        path, (unsigned)mode);
		return;
	}
	if (mode & forbidden_warn) {
		snprintf(todo, sizeof(todo), "chmod %04o %s", (unsigned)(mode & ~forbidden_warn),
		        path);
		finding(d, SEVERITY_WARNING, todo, "%s: %s has mode %04o (readable by others)",
		        label, path, (unsigned)mode);
		return;
	}
	finding(d, SEVERITY_OK, NULL, "%s: %s is root-owned, mode %04o", label, path,
	        (unsigned)mode);
}

static void check_credential_files(Doctor *d, const char *dir)
{
	_cleanup_free_ char *full = rooted(d, dir);
	DIR *dh;
	struct dirent *de;
	size_t n = 0;

	if (!full) {
		oom(d);
		return;
	}
	dh = opendir(full);
	if (!dh)
		return; /* reported by check_path() */
	while ((de = readdir(dh)) && n < CREDS_MAX_USERS) {
		_cleanup_free_ char *path = NULL;
		size_t len = strlen(de->d_name);

		if (len <= strlen(CREDS_FILE_SUFFIX) ||
		        !streq(de->d_name + len - strlen(CREDS_FILE_SUFFIX), CREDS_FILE_SUFFIX))
			continue;
		n++;
		if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
			oom(d);
			break;
		}
		check_path(d, "credentials", path, FILE_KIND_FILE, 022, 0, SEVERITY_ERROR, NULL);
	}
	closedir(dh);
}

static bool any_exists(const Doctor *d, const char *const *paths, const char **ret_found)
{
	for (const char *const *p = paths; *p; p++) {
		_cleanup_free_ char *full = rooted(d, *p);
		struct stat st;

		if (full && stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
			*ret_found = *p;
			return true;
		}
	}
	return false;
}

static void check_installation(Doctor *d)
{
	static const char *const udev_rules[] = {
	        "/etc/udev/rules.d/70-keyward.rules",
	        "/usr/lib/udev/rules.d/70-keyward.rules",
	        "/lib/udev/rules.d/70-keyward.rules",
	        NULL,
	};
	static const char *const fido_id_rules[] = {
	        "/etc/udev/rules.d/60-fido-id.rules",
	        "/usr/lib/udev/rules.d/60-fido-id.rules",
	        "/lib/udev/rules.d/60-fido-id.rules",
	        NULL,
	};
	static const char *const units[] = {
	        "/etc/systemd/system/keywardd.service",
	        "/usr/lib/systemd/system/keywardd.service",
	        "/lib/systemd/system/keywardd.service",
	        NULL,
	};
	static const char *const bus_policies[] = {
	        "/etc/dbus-1/system.d/org.keyward.Keyward1.conf",
	        "/usr/share/dbus-1/system.d/org.keyward.Keyward1.conf",
	        NULL,
	};
	static const char *const bus_services[] = {
	        "/usr/share/dbus-1/system-services/org.keyward.Keyward1.service",
	        NULL,
	};
	const char *found = NULL;
	Severity missing_module = d->n_pam_services > 0 ? SEVERITY_ERROR : SEVERITY_WARNING;

	check_path(d, "pam module", KEYWARD_PAM_MODULE_DIR "/pam_keyward.so", FILE_KIND_FILE, 022,
	        0, missing_module,
	        d->n_pam_services > 0
	                ? "reinstall keyward NOW (PAM fails for every user while a configured "
	                  "module is missing), or: pam-auth-update --remove keyward"
	                : "install keyward (the package puts it into " KEYWARD_PAM_MODULE_DIR ")");

	if (any_exists(d, udev_rules, &found))
		finding(d, SEVERITY_OK, NULL, "udev: %s labels FIDO keys (TAG keyward)", found);
	else
		finding(d, SEVERITY_WARNING, "install udev/70-keyward.rules into /lib/udev/rules.d",
		        "udev: 70-keyward.rules is missing: the installation is incomplete "
		        "(keywardd "
		        "still watches every hidraw device; FIDO keys are just not labelled)");
	if (any_exists(d, fido_id_rules, &found))
		finding(d, SEVERITY_OK, NULL, "udev: %s detects FIDO keys (ID_FIDO_TOKEN)", found);
	else
		finding(d, SEVERITY_WARNING, "install the udev package (systemd >= 244)",
		        "udev: 60-fido-id.rules is missing: no hidraw device gets ID_FIDO_TOKEN "
		        "(nor, through 70-keyward.rules, the keyward tag), and udev itself may be "
		        "missing: then keywardd sees no key come or go");
	if (any_exists(d, units, &found))
		finding(d, SEVERITY_OK, NULL, "systemd: %s", found);
	else
		finding(d, SEVERITY_WARNING, "install dist/keywardd.service",
		        "systemd: keywardd.service is missing");
	if (any_exists(d, bus_policies, &found))
		finding(d, SEVERITY_OK, NULL, "dbus: %s", found);
	else
		finding(d, SEVERITY_ERROR,
		        "install dist/org.keyward.Keyward1.conf into /usr/share/dbus-1/system.d",
		        "dbus: the bus policy org.keyward.Keyward1.conf is missing: keywardd "
		        "cannot own "
		        "its name and nobody can call it");
	if (any_exists(d, bus_services, &found))
		finding(d, SEVERITY_OK, NULL, "dbus: %s (activation)", found);
	else
		finding(d, SEVERITY_WARNING, "install dist/org.keyward.Keyward1.service",
		        "dbus: no activation file: keywardd must be started by systemd "
		        "(systemctl enable --now keywardd)");
}

static void check_dirs(Doctor *d)
{
	const PolicySettings *s = d->policy ? policy_settings(d->policy) : NULL;
	const char *creds_dir =
	        s && s->credentials_dir ? s->credentials_dir : KEYWARD_DEFAULT_CREDENTIALS_DIR;
	const char *state_dir = s && s->state_dir ? s->state_dir : KEYWARD_DEFAULT_STATE_DIR;
	const char *runtime_dir =
	        s && s->runtime_dir ? s->runtime_dir : KEYWARD_DEFAULT_RUNTIME_DIR;
	const char *audit_log = s && s->audit_log ? s->audit_log : KEYWARD_DEFAULT_AUDIT_LOG;
	_cleanup_free_ char *log_dir = strdup(audit_log), *conf_dir = strdup(d->config);
	char *slash;

	if (!log_dir || !conf_dir) {
		oom(d);
		return;
	}
	slash = strrchr(log_dir, '/');
	if (slash && slash != log_dir)
		*slash = '\0';
	slash = strrchr(conf_dir, '/');
	if (slash && slash != conf_dir)
		*slash = '\0';

	check_path(d, "config", conf_dir, FILE_KIND_DIR, 022, 0, SEVERITY_ERROR,
	        "create it: systemd-tmpfiles --create keyward.conf");
	check_path(d, "credentials", creds_dir, FILE_KIND_DIR, 022, 0, SEVERITY_WARNING,
	        "create it (0755 root): systemd-tmpfiles --create keyward.conf");
	check_credential_files(d, creds_dir);
	check_path(d, "state", state_dir, FILE_KIND_DIR, 022, 005, SEVERITY_WARNING,
	        "create it (0700 root): systemd-tmpfiles --create keyward.conf");
	check_path(d, "log", log_dir, FILE_KIND_DIR, 022, 005, SEVERITY_WARNING,
	        "create it (0750 root): systemd-tmpfiles --create keyward.conf");
	check_path(d, "audit", audit_log, FILE_KIND_FILE, 022, 004, SEVERITY_OK, NULL);
	if (!d->offline)
		check_path(d, "runtime", runtime_dir, FILE_KIND_DIR, 022, 005, SEVERITY_WARNING,
		        "it appears when keywardd starts (systemctl start keywardd)");
}

/* ---- policy and enrollment ------------------------------------------------------- */

static void check_policy(Doctor *d)
{
	_cleanup_free_ char *path = rooted(d, d->config);
	_cleanup_(policy_freep) Policy *p = NULL;
	PolicyDiagnostics diags = {};
	const char *problem = NULL;
	struct stat st;
	int r;

	if (!path) {
		oom(d);
		return;
	}
	r = safe_open(path, SAFE_FILE_DEFAULT, &st, &problem);
	if (r >= 0)
		(void)close(r);
	else if (r == -ENOENT) {
		finding(d, SEVERITY_ERROR,
		        "create it from /usr/share/doc/keyward/examples/keyward.conf, then: "
		        "keywardctl policy check",
		        "policy: %s does not exist (keywardd refuses to start without it)",
		        d->config);
		return;
	} else {
		/* safe_open()'s problem reads "is world-writable; run: chmod o-w FILE". */
		char what[128] = "is not safe", todo[PATH_MAX + 64];
		const char *run = problem ? strstr(problem, "; run: ") : NULL;

		if (problem)
			snprintf(what, sizeof(what), "%.*s",
			        (int)(run ? (size_t)(run - problem) : strlen(problem)), problem);
		if (run) {
			const char *cmd = run + strlen("; run: ");
			const char *file = strstr(cmd, "FILE");
			size_t len = file ? (size_t)(file - cmd) : strlen(cmd);

			snprintf(
			        todo, sizeof(todo), "%.*s%s", (int)len, cmd, file ? d->config : "");
		} else
			snprintf(todo, sizeof(todo),
			        "make it a regular file owned by root, mode 0644");
		finding(d, SEVERITY_ERROR, todo,
		        "policy: %s %s: keywardd and pam_keyward.so refuse to use it", d->config,
		        what);
		return;
	}

	if (!(st.st_mode & S_IROTH)) {
		char todo[PATH_MAX + 32];

		snprintf(todo, sizeof(todo), "chmod o+r %s", d->config);
		finding(d, SEVERITY_WARNING, todo,
		        "policy: %s is not world-readable: PAM in programs that run as the user "
		        "(screen lockers) cannot read it when keywardd is down, and then refuses "
		        "everyone",
		        d->config);
	}

	r = policy_load_file(path, &diags, &p);
	if (r >= 0 && policy_check_names(p, d->root, &diags) < 0)
		r = -ENOMEM;
	for (size_t i = 0; i < diags.n; i++) {
		const PolicyDiagnostic *x = &diags.items[i];
		bool error = x->severity == POLICY_SEVERITY_ERROR;

		finding(d, error ? SEVERITY_ERROR : SEVERITY_WARNING,
		        "edit the file, then: keywardctl policy check", "policy: %s:%u: %s",
		        unrooted(d, x->file), x->line, x->message);
	}
	policy_diagnostics_clear(&diags);
	if (r < 0) {
		if (r != -EINVAL)
			finding(d, SEVERITY_ERROR, "keywardctl policy check shows the details",
			        "policy: cannot load %s: %s", d->config, strerror(-r));
		else
			finding(d, SEVERITY_ERROR,
			        "fix the errors above; until then keywardd keeps "
			        "the last good policy or refuses to start",
			        "policy: %s is not valid", d->config);
		return;
	}
	finding(d, SEVERITY_OK, NULL, "policy: %s is valid", d->config);
	if (policy_settings(p)->failmode == POLICY_FAILMODE_OPEN)
		finding(d, SEVERITY_WARNING,
		        "if that is not intended: failmode = \"closed\"; keep keywardd running",
		        "policy: failmode = \"open\": while keywardd is unreachable, covered users "
		        "get "
		        "in without a key");
	d->policy = TAKE_PTR(p);
}

/* Appends a copy of NAME (if valid and below the cap); the list stays NULL-terminated. */
static int add_name(char ***names, size_t *n, size_t *alloc, const char *name)
{
	if (*n >= DOCTOR_MAX_USERS || !valid_user_name(name))
		return 0;
	if (*n + 2 > *alloc) {
		size_t a = *alloc ? *alloc * 2 : 64;
		char **l = reallocarray(*names, a, sizeof(char *));

		if (!l)
			return -ENOMEM;
		*names = l;
		*alloc = a;
	}
	(*names)[*n] = strdup(name);
	if (!(*names)[*n])
		return -ENOMEM;
	(*names)[++*n] = NULL;
	return 0;
}

/* Every user name NSS enumerates (getpwent) plus every member of an enumerated group
 * (getgrent: catches directory users that only appear in group lists), sorted, unique,
 * at most DOCTOR_MAX_USERS. */
static int collect_user_names(char ***ret, size_t *ret_n)
{
	_cleanup_strv_free_ char **names = NULL;
	size_t n = 0, alloc = 0, out = 0;
	struct passwd *pw;
	struct group *gr;
	int r = 0;

	names = calloc(1, sizeof(char *));
	if (!names)
		return -ENOMEM;
	alloc = 1;
	setpwent();
	while (r == 0 && (pw = getpwent()))
		r = add_name(&names, &n, &alloc, pw->pw_name);
	endpwent();
	setgrent();
	while (r == 0 && (gr = getgrent()))
		for (char **m = gr->gr_mem; r == 0 && m && *m; m++)
			r = add_name(&names, &n, &alloc, *m);
	endgrent();
	if (r < 0)
		return r;

	out = strv_sort_uniq(names, n);
	*ret_n = out;
	*ret = TAKE_PTR(names);
	return 0;
}

/* Evaluates the policy for every user NSS enumerates and each checked service; a user
 * who must use a key somewhere but has none enrolled would be locked out. */
static void check_enrollment(Doctor *d)
{
	const PolicySettings *s;
	_cleanup_free_ char *creds_dir = NULL;
	_cleanup_strv_free_ char **names = NULL;
	size_t n_users = 0, n_covered = 0, n_locked = 0;
	int q;

	if (!d->policy) {
		finding(d, SEVERITY_WARNING, "fix the policy first",
		        "enrollment: not checked (no valid policy)");
		return;
	}
	if (!d->coverage) {
		finding(d, SEVERITY_WARNING, "fix the PAM directories first",
		        "enrollment: not checked (the PAM services cannot be listed)");
		return;
	}
	s = policy_settings(d->policy);
	creds_dir = rooted(
	        d, s->credentials_dir ? s->credentials_dir : KEYWARD_DEFAULT_CREDENTIALS_DIR);
	if (!creds_dir) {
		oom(d);
		return;
	}

	q = collect_user_names(&names, &n_users);
	if (q < 0) {
		finding(d, SEVERITY_ERROR, "check NSS (getent passwd)",
		        "enrollment: cannot list the users: %s", strerror(-q));
		return;
	}
	for (size_t u = 0; u < n_users; u++) {
		_cleanup_strv_free_ char **groups = NULL;
		_cleanup_credential_set_ CredentialSet *set = NULL;
		_cleanup_free_ char *error = NULL, *covered = NULL;
		_cleanup_free_ ServiceCoverageHit *hits = NULL;
		size_t n_hits = 0;
		const char *rule = NULL, *file = NULL;
		unsigned line = 0;
		struct passwd *pw;
		int r;

		errno = 0;
		pw = getpwnam(names[u]);
		if (!pw) {
			finding(d, SEVERITY_WARNING, "check NSS (getent passwd)",
			        "enrollment: %s is a group member but unknown to getpwnam%s%s",
			        names[u], errno ? ": " : "", errno ? strerror(errno) : "");
			continue;
		}
		r = ctl_user_groups(pw->pw_name, pw->pw_gid, DOCTOR_GROUPS_MAX, &groups);
		if (r < 0) {
			finding(d, SEVERITY_WARNING, "check NSS (getent group)",
			        "enrollment: cannot resolve the groups of %s: %s", pw->pw_name,
			        strerror(-r));
			continue;
		}
		r = service_coverage_user(d->coverage, d->policy,
		        &(ServiceCoverageQuery){
		                .user = pw->pw_name, .uid = pw->pw_uid, .groups = groups},
		        &hits, &n_hits);
		if (r >= 0 && n_hits > 0)
			r = service_coverage_hits_join(hits, n_hits, &covered);
		if (r < 0) {
			finding(d, SEVERITY_ERROR, "check the policy and NSS",
			        "enrollment: cannot evaluate the policy for %s: %s", pw->pw_name,
			        strerror(-r));
			continue;
		}
		if (n_hits == 0)
			continue;
		rule = hits[0].decision.rule_name;
		file = hits[0].decision.file;
		line = hits[0].decision.line;
		n_covered++;
		/* creds_load_user(), not creds_count_user(): its error names the file and the fix.
		 */
		r = creds_load_user(creds_dir, pw->pw_name, &set, &error);
		if (r < 0) {
			finding(d, SEVERITY_ERROR, error ? error : "fix the credential file",
			        "enrollment: cannot read the credentials of %s (covered for %s): "
			        "%s",
			        pw->pw_name, covered, strerror(-r));
			continue;
		}
		/* SSH keys (type=ssh-sk) do not open a local key login. */
		if (set && creds_count_fido2(set) > 0)
			continue;
		n_locked++;
		if (n_locked <= DOCTOR_MAX_REPORTED_USERS) {
			char todo[128];

			snprintf(todo, sizeof(todo), "enroll a key: keywardctl enroll %s",
			        pw->pw_name);
			finding(d, SEVERITY_ERROR, todo,
			        "enrollment: %s (uid %u) must use a key for %s (rule '%s' at "
			        "%s:%u) but "
			        "has none enrolled: locked out once keyward is enabled",
			        pw->pw_name, (unsigned)pw->pw_uid, covered, strna(rule),
			        strna(unrooted(d, file)), line);
		}
	}
	if (n_locked > DOCTOR_MAX_REPORTED_USERS)
		finding(d, SEVERITY_ERROR, "keywardctl list shows who has keys",
		        "enrollment: ... and %zu more users without a key",
		        n_locked - DOCTOR_MAX_REPORTED_USERS);
	if (n_locked == 0)
		finding(d, SEVERITY_OK, NULL,
		        "enrollment: %zu of %zu users are covered by the policy; all have a key "
		        "enrolled",
		        n_covered, n_users);
}

/* ---- sudo's own configuration ------------------------------------------------------ */

#define DOCTOR_SUDOERS_MAX_FILE  (1024 * 1024)
#define DOCTOR_SUDOERS_MAX_FILES 256

typedef struct SudoScan {
	Doctor *d;
	char **covered;         /* users the policy covers for sudo */
	char ***covered_groups; /* their groups, same order */
	size_t n_covered;
} SudoScan;

/* Whether one entry of a sudoers user list ("alice", "%sudo", "ALL", "#1000") names a
 * covered user; *ret_who gets that user. Aliases are not expanded (reported apart). */
static bool sudo_entry_covers(const SudoScan *sc, const char *entry, const char **ret_who)
{
	bool neg = entry[0] == '!';

	if (neg)
		return false; /* an exclusion grants nobody */
	for (size_t i = 0; i < sc->n_covered; i++) {
		const char *u = sc->covered[i];
		bool hit = streq(entry, "ALL") || streq(entry, u) ||
		           (entry[0] == '%' && strv_contains(sc->covered_groups[i], entry + 1));

		if (hit) {
			*ret_who = u;
			return true;
		}
	}
	return false;
}

/* Whether the comma-separated user list LIST (modified) names a covered user. */
static bool sudo_list_covers(const SudoScan *sc, char *list, const char **ret_who)
{
	char *save = NULL;

	for (char *e = strtok_r(list, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
		e += strspn(e, " \t");
		e[strcspn(e, " \t")] = '\0';
		if (*e && sudo_entry_covers(sc, e, ret_who))
			return true;
	}
	return false;
}

static void sudo_check_line(const SudoScan *sc, const char *file, unsigned line, char *text)
{
	Doctor *d = sc->d;
	const char *who = NULL;

	text += strspn(text, " \t");
	if (strneq(text, "Defaults", 8)) {
		char *rest = text + 8, *settings;
		bool applies = true;

		/* Defaults:USERS applies to those users; @host, >runas and !cmnd to all. */
		if (*rest == ':') {
			_cleanup_free_ char *list = NULL;
			size_t n = strcspn(rest + 1, " \t");

			list = strndup(rest + 1, n);
			if (!list) {
				oom(d);
				return;
			}
			applies = sudo_list_covers(sc, list, &who);
			rest += 1 + n;
		} else if (*rest != ' ' && *rest != '\t')
			rest += strcspn(rest, " \t");
		settings = rest;
		if (!applies)
			return;
		if (strstr(settings, "!authenticate"))
			finding(d, SEVERITY_ERROR,
			        "remove !authenticate for accounts the keyward policy covers",
			        "sudo: %s:%u: '!authenticate' applies to %s, whom the keyward "
			        "policy "
			        "covers: sudo then starts no authentication and the key is never "
			        "asked for",
			        file, line, who ? who : "every user");
		if (strstr(settings, "!pam_acct_mgmt"))
			finding(d, SEVERITY_ERROR, "remove !pam_acct_mgmt",
			        "sudo: %s:%u: '!pam_acct_mgmt' skips the PAM account phase, where "
			        "keyward checks elevations that use sudo's cached timestamp: "
			        "covered "
			        "users elevate without the key for timestamp_timeout",
			        file, line);
		if (strstr(settings, "!pam_session"))
			finding(d, SEVERITY_ERROR, "remove !pam_session",
			        "sudo: %s:%u: '!pam_session' skips the PAM session phase: "
			        "elevations "
			        "are not bound to the key and pulling it does not end them",
			        file, line);
		if (strstr(settings, "timestamp_type=global") ||
		        strstr(settings, "timestamp_type = global"))
			finding(d, SEVERITY_WARNING,
			        "use the default timestamp_type=tty (or timestamp_timeout=0)",
			        "sudo: %s:%u: timestamp_type=global: one sudo authentication "
			        "counts "
			        "for every terminal of the user (keyward still asks for the key in "
			        "each elevation's account phase)",
			        file, line);
		if (strstr(settings, "timestamp_timeout=-") ||
		        strstr(settings, "timestamp_timeout = -"))
			finding(d, SEVERITY_WARNING, "give timestamp_timeout a limit in minutes",
			        "sudo: %s:%u: a negative timestamp_timeout never expires sudo's "
			        "cached authentication",
			        file, line);
		return;
	}
	if (strstr(text, "NOPASSWD")) {
		_cleanup_free_ char *users = strndup(text, strcspn(text, " \t"));

		if (!users) {
			oom(d);
			return;
		}
		if (strneq(text, "User_Alias", 10) || strneq(text, "Runas_Alias", 11) ||
		        strneq(text, "Host_Alias", 10) || strneq(text, "Cmnd_Alias", 10))
			return;
		if (sudo_list_covers(sc, users, &who))
			finding(d, SEVERITY_ERROR,
			        "drop NOPASSWD from rules that covered users match (keyward adds "
			        "the "
			        "key to the password, it does not replace a missing "
			        "authentication)",
			        "sudo: %s:%u: a NOPASSWD rule matches %s, whom the keyward policy "
			        "covers: that elevation runs no authentication",
			        file, line, who);
	}
}

static void sudo_check_file(const SudoScan *sc, const char *path)
{
	_cleanup_free_ char *text = NULL;
	const char *problem = NULL;
	size_t len;
	unsigned lineno = 0, start = 0;
	char *logical = NULL, *p, *save = NULL;
	size_t llen = 0;
	int r;

	r = read_full_file_safe(
	        path, SAFE_FILE_DEFAULT, DOCTOR_SUDOERS_MAX_FILE, &text, &len, &problem);
	if (r == -ENOENT)
		return;
	if (r < 0) {
		finding(sc->d, SEVERITY_WARNING,
		        "check the file's owner and mode (sudo needs root, 0440)",
		        "sudo: cannot read %s: %s", unrooted(sc->d, path), strerror(-r));
		return;
	}
	/* Logical lines: a trailing backslash continues; '#' starts a comment unless it is
	 * "#include"/"#includedir" or a uid ("#1000"). */
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t n;
		bool cont;
		char *hash;

		lineno++;
		for (hash = strchr(line, '#'); hash; hash = strchr(hash + 1, '#'))
			if (!(hash[1] >= '0' && hash[1] <= '9') && !strneq(hash, "#include", 8)) {
				*hash = '\0';
				break;
			}
		n = strlen(line);
		cont = n > 0 && line[n - 1] == '\\';
		if (cont)
			line[--n] = '\0';
		p = realloc(logical, llen + n + 2);
		if (!p) {
			free(logical);
			oom(sc->d);
			return;
		}
		logical = p;
		if (llen == 0)
			start = lineno;
		memcpy(logical + llen, line, n);
		llen += n;
		logical[llen++] = ' ';
		logical[llen] = '\0';
		if (cont)
			continue;
		sudo_check_line(sc, unrooted(sc->d, path), start, logical);
		llen = 0;
	}
	if (llen > 0)
		sudo_check_line(sc, unrooted(sc->d, path), start, logical);
	free(logical);
}

/* sudoers and sudoers.d against the policy: settings that let a covered account elevate
 * without the key, or elevations that removal cannot end. */
static void check_sudo(Doctor *d)
{
	_cleanup_free_ char *sudoers = rooted(d, "/etc/sudoers"),
	                    *dropins = rooted(d, "/etc/sudoers.d");
	_cleanup_strv_free_ char **names = NULL;
	SudoScan sc = {.d = d};
	size_t n_users = 0, errors_before = d->n_errors, warnings_before = d->n_warnings;
	struct dirent **list = NULL;
	struct stat st;
	int n, q;

	if (!sudoers || !dropins) {
		oom(d);
		return;
	}
	if (stat(sudoers, &st) < 0) {
		finding(d, SEVERITY_OK, NULL, "sudo: no /etc/sudoers (sudo not installed)");
		return;
	}
	if (!d->policy) {
		finding(d, SEVERITY_WARNING, "fix the policy first",
		        "sudo: configuration not checked (no valid policy)");
		return;
	}
	q = collect_user_names(&names, &n_users);
	if (q < 0) {
		finding(d, SEVERITY_ERROR, "check NSS (getent passwd)",
		        "sudo: cannot list the users: %s", strerror(-q));
		return;
	}
	sc.covered = calloc(n_users + 1, sizeof(char *));
	sc.covered_groups = calloc(n_users + 1, sizeof(char **));
	if (!sc.covered || !sc.covered_groups) {
		free(sc.covered);
		free(sc.covered_groups);
		oom(d);
		return;
	}
	for (size_t u = 0; u < n_users; u++) {
		char **groups = NULL;
		PolicyDecision dec = {};
		struct passwd *pw = getpwnam(names[u]);
		PolicyRequest req = {.service = "sudo", .tty = "/dev/pts/0"};

		if (!pw || ctl_user_groups(pw->pw_name, pw->pw_gid, DOCTOR_GROUPS_MAX, &groups) < 0)
			continue;
		req.user = pw->pw_name;
		req.uid = pw->pw_uid;
		req.groups = groups;
		if (policy_evaluate(d->policy, &req, &dec) >= 0 &&
		        dec.require == POLICY_REQUIRE_KEY) {
			sc.covered[sc.n_covered] = names[u];
			sc.covered_groups[sc.n_covered++] = groups;
		} else
			strv_free(groups);
	}
	sudo_check_file(&sc, sudoers);
	n = scandir(dropins, &list, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		const char *name = list[i]->d_name;
		_cleanup_free_ char *path = NULL;

		/* sudo's includedir skips names with a '.' or ending in '~'. */
		if (i < DOCTOR_SUDOERS_MAX_FILES && !strchr(name, '.') &&
		        name[strlen(name) - 1] != '~' &&
		        asprintf(&path, "%s/%s", dropins, name) >= 0)
			sudo_check_file(&sc, path);
		free(list[i]);
	}
	free(list);
	if (d->n_errors == errors_before && d->n_warnings == warnings_before)
		finding(d, SEVERITY_OK, NULL,
		        "sudo: no setting lets the %zu covered user(s) elevate without the key",
		        sc.n_covered);
	for (size_t i = 0; i < sc.n_covered; i++)
		strv_free(sc.covered_groups[i]);
	free(sc.covered_groups);
	free(sc.covered);
}

/* ---- the live daemon ------------------------------------------------------------- */

/* Prints one GetStatus entry; *ret_audit_down is set when it says the trail is not open. */
typedef struct DaemonStatus {
	bool audit_down;
	bool policy_rejected;
	char policy_error[512];
} DaemonStatus;

static void print_status_value(sd_bus_message *m, const char *key, bool quiet, DaemonStatus *st)
{
	char type;
	const char *contents = NULL;

	if (sd_bus_message_peek_type(m, &type, &contents) < 0 || type != 'v' || !contents)
		return;
	if (sd_bus_message_enter_container(m, 'v', contents) < 0)
		return;
	switch (contents[0]) {
	case 's': {
		const char *v;
		if (sd_bus_message_read_basic(m, 's', &v) < 0)
			break;
		if (streq(key, "policy_error"))
			snprintf(st->policy_error, sizeof(st->policy_error), "%s", v);
		if (!quiet)
			printf("%-8s    %s: %s\n", "", key, v);
		break;
	}
	case 'b': {
		int v;
		if (sd_bus_message_read_basic(m, 'b', &v) < 0)
			break;
		if (streq(key, "audit_ok") && !v)
			st->audit_down = true;
		if (streq(key, "policy_ok") && !v)
			st->policy_rejected = true;
		if (!quiet)
			printf("%-8s    %s: %s\n", "", key, v ? "yes" : "no");
		break;
	}
	case 'u': {
		uint32_t v;
		if (!quiet && sd_bus_message_read_basic(m, 'u', &v) >= 0)
			printf("%-8s    %s: %u\n", "", key, v);
		break;
	}
	case 't': {
		uint64_t v;
		if (!quiet && sd_bus_message_read_basic(m, 't', &v) >= 0)
			printf("%-8s    %s: %llu\n", "", key, (unsigned long long)v);
		break;
	}
	default:
		(void)sd_bus_message_skip(m, contents);
	}
	(void)sd_bus_message_exit_container(m);
}

static void check_daemon(Doctor *d)
{
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	Severity sev = d->n_pam_services > 0 ? SEVERITY_ERROR : SEVERITY_WARNING;
	DaemonStatus st = {};
	const char *todo =
	        d->n_pam_services > 0
	                ? "systemctl start keywardd; journalctl -u keywardd (until it runs, "
	                  "covered users are refused unless failmode = \"open\")"
	                : "systemctl start keywardd; journalctl -u keywardd";
	int r;

	if (d->offline) {
		finding(d, SEVERITY_OK, NULL, "daemon: not checked (--offline)");
		return;
	}
	r = sd_bus_open_system(&bus);
	if (r < 0) {
		finding(d, sev, todo, "daemon: cannot connect to the system bus: %s", strerror(-r));
		return;
	}
	r = sd_bus_set_method_call_timeout(bus, DOCTOR_BUS_TIMEOUT_USEC);
	if (r >= 0)
		r = sd_bus_call_method(bus, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH,
		        KEYWARD_BUS_INTERFACE, "GetStatus", &error, &reply, "");
	if (r < 0) {
		finding(d, sev, todo, "daemon: %s GetStatus failed: %s", KEYWARD_BUS_NAME,
		        error.message ? error.message : strerror(-r));
		return;
	}
	finding(d, SEVERITY_OK, NULL, "daemon: %s answers GetStatus", KEYWARD_BUS_NAME);
	r = sd_bus_message_enter_container(reply, 'a', "{sv}");
	if (r < 0)
		return;
	while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
		const char *key;

		if (sd_bus_message_read_basic(reply, 's', &key) < 0)
			break;
		print_status_value(reply, key, d->quiet, &st);
		if (sd_bus_message_exit_container(reply) < 0)
			break;
	}
	if (st.policy_rejected)
		finding(d, SEVERITY_ERROR,
		        "fix the file (keywardctl policy check), then: systemctl reload keywardd",
		        "daemon: the policy file on disk is REJECTED (%s); keywardd keeps "
		        "enforcing the last policy that loaded",
		        st.policy_error[0] ? st.policy_error : "no reason given");
	if (st.audit_down)
		finding(d, SEVERITY_ERROR,
		        "check /var/log/keyward (root, 0750) and journalctl -u keywardd; then "
		        "systemctl reload keywardd",
		        "daemon: the audit trail is not open: with audit_failure = \"deny\" (the "
		        "default) covered logins are refused");
}

/* ---- the verb -------------------------------------------------------------------- */

/* `keywardctl status`: the live daemon only (the last part of doctor): what it runs,
 * whether the policy file on disk is rejected, whether the trail is open. */
int verb_status(int argc, char *argv[])
{
	Doctor d = {.root = "", .config = ctl_global.config_path, .quiet = false};

	if (argc > 1) {
		bool help = streq(argv[1], "-h") || streq(argv[1], "--help");

		fprintf(help ? stdout : stderr,
		        "Usage: keywardctl status\n\nAsks keywardd for its status: version, the "
		        "policy in force and whether the policy\nfile on disk was rejected, "
		        "bindings, the audit trail.\nExit status: 0 all well, 1 a problem "
		        "(daemon unreachable, policy rejected, trail not open).\n");
		return help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
	}
	d.n_pam_services = 1; /* an unreachable daemon is an error here */
	check_daemon(&d);
	return d.n_errors > 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
}

static void doctor_usage(FILE *f)
{
	fprintf(f,
	        "Usage: keywardctl doctor [--root DIR] [-c FILE] [--offline] [--quiet]\n\n"
	        "Check the keyward installation and the live system: PAM stacks (sudo, su, login,\n"
	        "sshd, display managers, polkit), the policy, covered users without a key, file\n"
	        "owners and modes, udev rules, the PAM module, and the daemon on the system "
	        "bus.\n\n"
	        "  --root DIR       treat DIR as / for every file checked (a mounted image, a test "
	        "tree)\n"
	        "  -c, --config FILE  policy file as seen on the target (default %s)\n"
	        "  --offline        do not contact the daemon\n"
	        "  -q, --quiet      print only warnings and errors\n\n"
	        "Exit status: 0 no errors (warnings allowed), 1 errors found, 2 usage.\n",
	        KEYWARD_DEFAULT_CONFIG);
}

int verb_doctor(int argc, char *argv[])
{
	enum { ARG_ROOT = 0x100, ARG_OFFLINE };
	static const struct option options[] = {{"root", required_argument, NULL, ARG_ROOT},
	        {"config", required_argument, NULL, 'c'},
	        {"offline", no_argument, NULL, ARG_OFFLINE}, {"quiet", no_argument, NULL, 'q'},
	        {"help", no_argument, NULL, 'h'}, {}};
	_cleanup_free_ char *root = NULL, *config_abs = NULL;
	Doctor d = {
	        .root = "",
	        .config = ctl_global.config_path,
	        .quiet = ctl_global.quiet,
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:qh", options, NULL)) >= 0)
		switch (c) {
		case ARG_ROOT:
			free(root);
			root = realpath(optarg, NULL);
			if (!root) {
				fprintf(stderr, "keywardctl doctor: --root %s: %m\n", optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		case 'c':
			d.config = optarg;
			break;
		case ARG_OFFLINE:
			d.offline = true;
			break;
		case 'q':
			d.quiet = true;
			break;
		case 'h':
			doctor_usage(stdout);
			return CTL_EXIT_OK;
		default:
			doctor_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	if (optind < argc) {
		fprintf(stderr, "keywardctl doctor: unexpected argument '%s'\n", argv[optind]);
		return CTL_EXIT_USAGE;
	}
	if (root && !streq(root, "/"))
		d.root = root;
	if (d.config[0] != '/') {
		/* Relative to the working directory; under --root it must lie in the tree and
		 * is then named as on the target system. */
		size_t n = strlen(d.root);

		config_abs = realpath(d.config, NULL);
		if (!config_abs) {
			fprintf(stderr, "keywardctl doctor: -c %s: %m\n", d.config);
			return CTL_EXIT_USAGE;
		}
		if (n > 0 && !(strneq(config_abs, d.root, n) && config_abs[n] == '/')) {
			fprintf(stderr,
			        "keywardctl doctor: -c %s is not inside --root %s; give the path "
			        "as "
			        "on the target system (e.g. /etc/keyward/keyward.conf)\n",
			        d.config, d.root);
			return CTL_EXIT_USAGE;
		}
		d.config = config_abs + n;
	}

	if (!d.quiet)
		printf("keywardctl doctor: checking %s (policy %s)\n",
		        isempty(d.root) ? "/" : d.root, d.config);
	check_policy(&d);
	check_pam(&d); /* after the policy: which rules name which service */
	check_enrollment(&d);
	check_sudo(&d);
	check_dirs(&d);
	check_installation(&d);
	check_daemon(&d);

	printf("%zu error%s, %zu warning%s\n", d.n_errors, d.n_errors == 1 ? "" : "s", d.n_warnings,
	        d.n_warnings == 1 ? "" : "s");
	service_coverage_freep(&d.coverage);
	policy_freep(&d.policy);
	return d.n_errors > 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
}
