/* ctl-status-breakglass.c: the first part of `keywardctl status` — break-glass state: who
 * holds usable codes until when, pending two-person approvals, break-glass sessions open. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include "audit.h"
#include "breakglass.h"
#include "ctl-report.h"
#include "ctl.h"
#include "keyward-config.h"
#include "policy.h"
#include "util.h"

#define STATUS_BG_MAX_USERS 4096u

/* A user's file in directory D: a regular file with a user's name (keywardd keeps its
 * own directories beside them: approvals, rate, last-use). */
static bool user_file(DIR *d, const struct dirent *de)
{
	struct stat st;

	if (!valid_user_name(de->d_name))
		return false;
	if (de->d_type != DT_UNKNOWN)
		return de->d_type == DT_REG;
	return fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static void fmt_s(uint64_t s, char *buf, size_t size)
{
	if (s > UINT64_MAX / 1000 || format_rfc3339_ms(s * 1000, buf, size) < 0)
		snprintf(buf, size, "?");
}

/* The policy's state directory (the compiled-in one when the default policy is absent). */
static int status_state_dir(char **ret)
{
	PolicyDiagnostics diags = {};
	_cleanup_(policy_freep) Policy *p = NULL;
	const char *dir = KEYWARD_DEFAULT_STATE_DIR;
	int r;

	if (access(ctl_global.config_path, F_OK) == 0 ||
	        !streq(ctl_global.config_path, KEYWARD_DEFAULT_CONFIG)) {
		r = policy_load_file(ctl_global.config_path, &diags, &p);
		policy_diagnostics_clear(&diags);
		if (r < 0)
			return r;
		if (policy_settings(p)->state_dir)
			dir = policy_settings(p)->state_dir;
	}
	*ret = strdup(dir);
	return *ret ? 0 : -ENOMEM;
}

/* One line per user with a codes file: usable codes and until when. Returns the number of
 * users with usable codes, or -errno when the directory cannot be read. */
static int status_codes(FILE *f, const char *state_dir, uint64_t now_s)
{
	_cleanup_free_ char *dir = NULL;
	DIR *d;
	struct dirent *de;
	unsigned n = 0, usable_users = 0;

	if (asprintf(&dir, "%s/breakglass", state_dir) < 0)
		return -ENOMEM;
	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT) {
			fprintf(f, "  codes: none issued\n");
			return 0;
		}
		fprintf(f, "  codes: cannot read %s: %m\n", dir);
		return -errno;
	}
	while ((de = readdir(d)) && n < STATUS_BG_MAX_USERS) {
		_cleanup_(breakglass_set_freep) BreakglassSet *s = NULL;
		uint64_t until = 0;
		size_t usable;
		char t[40];
		int r;

		if (!user_file(d, de))
			continue;
		n++;
		r = breakglass_load(state_dir, de->d_name, &s);
		if (r < 0) {
			fprintf(f, "  codes: %s: cannot be read (%s)\n", de->d_name, strerror(-r));
			continue;
		}
		usable = breakglass_usable(s, now_s);
		for (size_t i = 0; i < s->n; i++)
			if (s->codes[i].state == BREAKGLASS_STATE_UNUSED &&
			        s->codes[i].expires_s > now_s && s->codes[i].expires_s > until)
				until = s->codes[i].expires_s;
		if (usable == 0) {
			fprintf(f, "  codes: %s: none usable (%zu used or expired)\n", de->d_name,
			        s->n);
			continue;
		}
		usable_users++;
		fmt_s(until, t, sizeof(t));
		fprintf(f, "  codes: %s: %zu unused of %zu, valid until %s\n", de->d_name, usable,
		        s->n, t);
	}
	closedir(d);
	if (n == 0)
		fprintf(f, "  codes: none issued\n");
	return (int)usable_users;
}

/* Pending two-person approvals (not yet used, not expired). */
static void status_approvals(FILE *f, const char *state_dir, uint64_t now_s)
{
	_cleanup_free_ char *dir = NULL;
	DIR *d;
	struct dirent *de;
	unsigned n = 0, seen = 0;

	if (asprintf(&dir, "%s/breakglass/approvals", state_dir) < 0)
		return;
	d = opendir(dir);
	if (!d) {
		if (errno != ENOENT)
			fprintf(f, "  approvals: cannot read %s: %m\n", dir);
		else
			fprintf(f, "  approvals pending: none\n");
		return;
	}
	while ((de = readdir(d)) && seen++ < STATUS_BG_MAX_USERS) {
		BreakglassApproval a = {};
		char t[40];
		int r;

		if (!user_file(d, de))
			continue;
		r = breakglass_approval_load(state_dir, de->d_name, &a);
		if (r == -ENOENT)
			continue;
		if (r < 0) {
			fprintf(f, "  approval: %s: cannot be read (%s)\n", de->d_name,
			        strerror(-r));
			continue;
		}
		fmt_s(a.expires_s, t, sizeof(t));
		if (a.expires_s <= now_s) {
			fprintf(f, "  approval: %s by %s expired at %s (not used)\n", a.user,
			        a.approver, t);
			continue;
		}
		n++;
		fprintf(f,
		        "  approval pending: %s, approved by %s, usable for one login until %s\n",
		        a.user, a.approver, t);
	}
	closedir(d);
	if (n == 0)
		fprintf(f, "  approvals pending: none\n");
}

static int status_collect(const AuditEntry *e, const char *file, uint64_t line, void *userdata)
{
	(void)file, (void)line;
	return breakglass_report_collect(userdata, e);
}

/* A logind session id from the trail is still there (an elevation "pid:N" is not
 * logind's to answer, nor anything without logind: the trail's word stands). */
static bool session_alive(const char *session)
{
	_cleanup_free_ char *state = NULL;

	if (!session || strchr(session, ':') || sd_booted() <= 0)
		return true; /* no logind to ask (not booted with systemd): the trail's word */
	return sd_session_get_state(session, &state) >= 0 && !streq(state, "closing");
}

/* Sessions a break-glass login opened that the trail does not show closed (and logind
 * still knows), unless the daemon listed its own (LISTED); the users who have not enrolled
 * a key since. */
static void status_sessions(FILE *f, bool listed)
{
	_cleanup_strv_free_ char **files = NULL;
	BreakglassReport *b = NULL;
	uint64_t bad = 0;
	int r;

	r = ctl_audit_files(NULL, 0, &files);
	if (r >= 0)
		r = breakglass_report_new(&b);
	if (r >= 0)
		r = audit_read_files(files, status_collect, b, &bad);
	if (r < 0)
		fprintf(f,
		        "  sessions opened by break-glass: the audit trail cannot be read (%s)\n",
		        strerror(-r));
	else
		breakglass_report_open_sessions(b, f, listed ? NULL : session_alive, !listed);
	breakglass_report_free(b);
}

void ctl_status_breakglass(FILE *f, bool daemon_listed_sessions)
{
	_cleanup_free_ char *state_dir = NULL;
	uint64_t now_s = now_realtime_ms() / 1000;
	int r;

	fprintf(f, "Break-glass recovery (docs/breakglass.md):\n");
	r = status_state_dir(&state_dir);
	if (r < 0)
		fprintf(f, "  the policy %s cannot be loaded (%s): codes and approvals not shown\n",
		        ctl_global.config_path, strerror(-r));
	else {
		(void)status_codes(f, state_dir, now_s);
		status_approvals(f, state_dir, now_s);
	}
	status_sessions(f, daemon_listed_sessions);
	fputc('\n', f);
}
