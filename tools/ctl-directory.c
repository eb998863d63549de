/* ctl-directory.c: keywardctl directory status | refresh [USER...] | show USER — the
 * credential directory as this host sees it: what the cache holds and how old it is, a
 * refresh of the cache now (as keywardd's periodic refresh does), one user's entry
 * straight from the server with each rejected value, and a user's local registrations as
 * directory values (export) (keyward.conf(5) DIRECTORY). */
#include <errno.h>
#include <stdarg.h>
#include <unistd.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "directory.h"
#include "policy.h"
#include "util.h"

static int load(Policy **ret)
{
	int r = ctl_policy_load(ret);

	if (r < 0) {
		fprintf(stderr, "keywardctl: cannot load the policy %s (%s)\n",
		        ctl_global.config_path, strerror(-r));
		return r;
	}
	if (!policy_settings(*ret)->directory.configured) {
		fprintf(stderr,
		        "keywardctl: the policy %s has no 'directory' group in 'settings'\n",
		        ctl_global.config_path);
		policy_free(*ret);
		*ret = NULL;
		return -ENOENT;
	}
	return 0;
}

static void print_user(const DirectoryUser *u)
{
	printf("%s: %s%s, %zu credential(s)\n", u->user, u->dn ? "entry " : "no entry",
	        u->dn ? u->dn : "", u->set ? u->set->n : 0);
	for (size_t i = 0; u->set && i < u->set->n; i++) {
		const Credential *c = &u->set->items[i];
		const DirectoryCounter *k = directory_user_counter(u, c->id);

		printf("  %s id=%.24s%s rp_id=%s", c->label, c->id, strlen(c->id) > 24 ? "..." : "",
		        c->rp_id);
		if (k)
			printf(" sign-counter=%" PRIu32, k->value);
		printf("\n");
	}
	for (char **p = u->problems; p && *p; p++)
		printf("  rejected: %s\n", *p);
}

static int cmd_status(const Policy *p)
{
	const PolicySettings *st = policy_settings(p);
	_cleanup_strv_free_ char **users = NULL;
	uint64_t now = now_realtime_ms();
	int r;

	printf("servers: ");
	for (char **u = st->directory.uris; u && *u; u++)
		printf("%s%s", *u, u[1] ? ", " : "\n");
	printf("base: %s, attribute: %s, bind: %s, writable: %s\n", st->directory.base_dn,
	        st->directory.attribute, policy_directory_bind_to_string(st->directory.bind),
	        st->directory.writable ? "yes" : "no");
	printf("timeout %" PRIu32 " ms, refresh every %" PRIu32 " s, cache kept %" PRIu32 " s\n",
	        st->directory.timeout_ms, st->directory.refresh_s, st->directory.cache_max_age_s);
	{
		DirectoryStatus ds = {};

		if (directory_status_load(st->state_dir, &ds) >= 0) {
			if (ds.success_ms)
				printf("last answer: %" PRIu64 " s ago from %s\n",
				        now > ds.success_ms ? (now - ds.success_ms) / 1000 : 0,
				        strna(ds.success_uri));
			if (ds.error_ms)
				printf("last error: %" PRIu64 " s ago: %s\n",
				        now > ds.error_ms ? (now - ds.error_ms) / 1000 : 0,
				        strna(ds.error));
			directory_status_done(&ds);
		} else
			printf("last answer: none recorded\n");
	}
	r = directory_cache_users(st->state_dir, &users);
	if (r < 0) {
		fprintf(stderr, "keywardctl: cannot list %s/%s: %s\n", st->state_dir,
		        DIRECTORY_CACHE_SUBDIR, strerror(-r));
		return CTL_EXIT_ERROR;
	}
	printf("cache (%s/%s): %zu user(s)\n", st->state_dir, DIRECTORY_CACHE_SUBDIR,
	        strv_length(users));
	for (char **u = users; *u; u++) {
		_cleanup_directory_user_ DirectoryUser *d = NULL;
		uint64_t age;

		r = directory_cache_load(st->state_dir, *u, st->rp_id, &d);
		if (r < 0) {
			printf("  %s: unreadable cache (%s)\n", *u, strerror(-r));
			continue;
		}
		age = now > d->fetched_ms ? (now - d->fetched_ms) / 1000 : 0;
		printf("  %s: %zu credential(s), fetched %" PRIu64 " s ago from %s%s\n", *u,
		        d->set->n, age, strna(d->uri),
		        age > st->directory.cache_max_age_s ? " (TOO OLD: covered logins refused "
		                                              "while the server is unreachable)"
		                                            : "");
	}
	return CTL_EXIT_OK;
}

static int cmd_fetch(const Policy *p, char **users, bool save)
{
	const PolicySettings *st = policy_settings(p);
	_cleanup_strv_free_ char **cached = NULL;
	int ret = CTL_EXIT_OK;

	if (!users || !*users) {
		if (directory_cache_users(st->state_dir, &cached) < 0)
			return CTL_EXIT_ERROR;
		users = cached;
	}
	for (char **u = users; *u; u++) {
		_cleanup_directory_user_ DirectoryUser *d = NULL;
		_cleanup_free_ char *error = NULL;
		int r;

		if (!valid_user_name(*u)) {
			fprintf(stderr, "keywardctl: \"%s\" is not a valid user name\n", *u);
			ret = CTL_EXIT_USAGE;
			continue;
		}
		r = directory_fetch(&st->directory, st->rp_id, *u, &d, &error);
		if (r < 0) {
			fprintf(stderr, "keywardctl: %s: %s\n", *u, error ? error : strerror(-r));
			if (save)
				(void)directory_status_note(st->state_dir, NULL, strna(error));
			ret = CTL_EXIT_ERROR;
			continue;
		}
		if (save)
			(void)directory_status_note(st->state_dir, d->uri, NULL);
		print_user(d);
		if (save) {
			r = directory_cache_save(st->state_dir, d);
			if (r < 0) {
				fprintf(stderr, "keywardctl: cannot write the cache of %s: %s\n",
				        *u, strerror(-r));
				ret = CTL_EXIT_ERROR;
			}
		}
	}
	return ret;
}

/* The local credentials of USER as directory attribute values (LDIF attribute lines):
 * what an administrator adds to the user's entry to move a registration there. */
static int cmd_export(const Policy *p, const char *user)
{
	const PolicySettings *st = policy_settings(p);
	_cleanup_(credential_set_freep) CredentialSet *set = NULL;
	_cleanup_free_ char *why = NULL;
	int r;

	r = creds_load_user(st->credentials_dir, user, &set, &why);
	if (r < 0) {
		fprintf(stderr, "keywardctl: %s\n", why ? why : strerror(-r));
		return CTL_EXIT_ERROR;
	}
	for (size_t i = 0; i < set->n; i++) {
		_cleanup_free_ char *v = NULL, *k = NULL;

		if (directory_passkey_format(&set->items[i], &v) < 0 ||
		        directory_keyward_format(&set->items[i], &k) < 0) {
			fprintf(stderr, "keywardctl: %s: credential %s cannot be exported\n", user,
			        set->items[i].label);
			return CTL_EXIT_ERROR;
		}
		printf("%s: %s\n" DIRECTORY_ATTR_CREDENTIAL ": %s\n", st->directory.attribute, v,
		        k);
	}
	return CTL_EXIT_OK;
}

_printf_(4, 5) static int add_diag(
        PolicyDiagnostics *d, PolicySeverity sev, const char *file, const char *fmt, ...)
{
	PolicyDiagnostic *items = reallocarray(d->items, d->n + 1, sizeof(*items));
	char *msg = NULL, *f = strdup(file);
	va_list ap;
	int r;

	if (items)
		d->items = items;
	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (!items || !f || r < 0) {
		free(f);
		return -ENOMEM;
	}
	items[d->n++] = (PolicyDiagnostic){.severity = sev, .file = f, .line = 0, .message = msg};
	return sev == POLICY_SEVERITY_ERROR ? 1 : 0;
}

/* A file of the directory group: root's and not writable by others; SECRET: nor readable. */
static int check_file(PolicyDiagnostics *d, const char *policy_file, const char *key,
        const char *path, bool secret)
{
	const char *problem = NULL;
	int fd;

	if (!path)
		return 0;
	fd = safe_open(path,
	        SAFE_FILE_DEFAULT |
	                (secret ? SAFE_FILE_NO_GROUP_READ | SAFE_FILE_NO_WORLD_READ : 0),
	        NULL, &problem);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return add_diag(d, POLICY_SEVERITY_ERROR, policy_file,
	        "directory %s %s cannot be used: %s%s", key, path,
	        problem ? problem : strerror(-fd), secret ? " (it must be root's, mode 0600)" : "");
}

int ctl_directory_check(const Policy *p, PolicyDiagnostics *d)
{
	const PolicyDirectory *g = &policy_settings(p)->directory;
	const char *file = policy_path(p);
	const struct {
		const char *key, *path;
		bool secret;
	} files[] = {
	        {"secret_file", g->secret_file, true},
	        {"tls_key_file", g->tls_key_file, true},
	        {"tls_ca_file", g->tls_ca_file, false},
	        {"tls_cert_file", g->tls_cert_file, false},
	};
	int errors = 0, r;

	if (!g->configured)
		return 0;
	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		r = check_file(d, file, files[i].key, files[i].path, files[i].secret);
		if (r < 0)
			return r;
		errors += r;
	}
	if (!g->tls_ca_file)
		for (char **u = g->uris; u && *u; u++)
			if (strncmp(*u, "ldapi://", 8) != 0) {
				r = add_diag(d, POLICY_SEVERITY_WARNING, file,
				        "directory %s: no tls_ca_file, the CA "
				        "bundle " DIRECTORY_DEFAULT_CA_FILE
				        " decides which server certificate is trusted",
				        *u);
				if (r < 0)
					return r;
				break;
			}
	return errors;
}

int ctl_directory_revoke(const char *user, const char *label_or_id)
{
	_cleanup_(policy_freep) Policy *p = NULL;
	_cleanup_directory_user_ DirectoryUser *u = NULL;
	_cleanup_free_ char *error = NULL, *value = NULL, *kw_value = NULL;
	const char *attrs[3] = {}, *values[3] = {};
	const PolicySettings *st;
	const Credential *c;
	int r;

	if (!valid_user_name(user)) {
		fprintf(stderr, "keywardctl: \"%s\" is not a valid user name\n", user);
		return CTL_EXIT_USAGE;
	}
	if (load(&p) < 0)
		return CTL_EXIT_ERROR;
	st = policy_settings(p);
	r = directory_fetch(&st->directory, st->rp_id, user, &u, &error);
	if (r < 0) {
		fprintf(stderr, "keywardctl: revoke: %s\n", error ? error : strerror(-r));
		return CTL_EXIT_ERROR;
	}
	c = u->set ? creds_find(u->set, label_or_id) : NULL;
	if (!u->dn || !c) {
		fprintf(stderr, "keywardctl: revoke: %s has no credential '%s' in the directory\n",
		        user, label_or_id);
		return CTL_EXIT_FAILURE;
	}
	/* The exact values as stored: the passkey value whose id is C's, and its details. */
	for (char **v = u->values; v && *v && !value; v++) {
		Credential t = {};
		if (directory_passkey_parse(*v, st->rp_id, "x", &t, NULL) >= 0 &&
		        streq(t.id, c->id))
			value = strdup(*v);
		credential_done(&t);
	}
	for (char **v = u->keyward_values; v && *v && !kw_value; v++)
		if (strncmp(*v, c->id, strlen(c->id)) == 0 && (*v)[strlen(c->id)] == ' ')
			kw_value = strdup(*v);
	if (!value) {
		fprintf(stderr, "keywardctl: revoke: out of memory\n");
		return CTL_EXIT_ERROR;
	}
	attrs[0] = st->directory.attribute;
	values[0] = value;
	if (kw_value) {
		attrs[1] = DIRECTORY_ATTR_CREDENTIAL;
		values[1] = kw_value;
	}
	r = directory_delete_values(&st->directory, u->dn, attrs, values, &error);
	if (r < 0) {
		fprintf(stderr, "keywardctl: revoke: %s\n",
		        r == -ESTALE
		                ? "the credential changed in the directory meanwhile; try again"
		        : error ? error
		                : strerror(-r));
		return CTL_EXIT_ERROR;
	}
	/* This host's cache at once; the others at their next refresh. */
	directory_user_free(u);
	u = NULL;
	if (directory_fetch(&st->directory, st->rp_id, user, &u, NULL) >= 0)
		(void)directory_cache_save(st->state_dir, u);
	if (!ctl_global.quiet)
		printf("Revoked %s of %s in the directory.\n", label_or_id, user);
	return CTL_EXIT_OK;
}

int verb_directory(int argc, char *argv[])
{
	_cleanup_(policy_freep) Policy *p = NULL;

	if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
		printf("usage: keywardctl directory status\n"
		       "       keywardctl directory refresh [USER...]\n"
		       "       keywardctl directory show USER\n"
		       "       keywardctl directory export USER\n");
		return argc < 2 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
	}
	if (!streq(argv[1], "status") && !streq(argv[1], "refresh") && !streq(argv[1], "show") &&
	        !streq(argv[1], "export")) {
		fprintf(stderr, "keywardctl directory: unknown command '%s'\n", argv[1]);
		return CTL_EXIT_USAGE;
	}
	if ((streq(argv[1], "show") || streq(argv[1], "export")) && argc != 3) {
		fprintf(stderr, "keywardctl directory %s: name one user\n", argv[1]);
		return CTL_EXIT_USAGE;
	}
	if (load(&p) < 0)
		return CTL_EXIT_ERROR;
	if (streq(argv[1], "status"))
		return cmd_status(p);
	if (streq(argv[1], "export"))
		return cmd_export(p, argv[2]);
	return cmd_fetch(p, argv + 2, streq(argv[1], "refresh"));
}
