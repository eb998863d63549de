/* ctl-ssh.c: keywardctl ssh import | list | authorized-keys | sshd-config — registering
 * OpenSSH security-key (sk) keys and wiring sshd to them (docs/ssh.md). */
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "bus-names.h"
#include "keyward-config.h"
#include "creds.h"
#include "ctl.h"
#include "policy.h"
#include "ssh-sk.h"
#include "util.h"

#define CTL_SSH_MAX_FILE       (1024 * 1024) /* an authorized_keys file */
#define CTL_SSH_MAX_KEYS       64            /* sk keys in one import */
#define CTL_SSH_REMOTE_PROBE   "192.0.2.1"   /* TEST-NET-1: "some remote host" */
#define CTL_SSH_MAX_CHALLENGE  1024
#define CTL_SSH_BUS_TIMEOUT_US (10ULL * 1000 * 1000)

/* A label from the key's comment ("alice@laptop"), else "ssh-<type>-<n>". */
static int default_label(const SshKeyLine *l, unsigned n, char **ret)
{
	char buf[65];
	size_t j = 0;

	for (const char *c = strempty(l->comment); *c && j < sizeof(buf) - 1; c++)
		buf[j++] = creds_label_valid((char[]){*c, '\0'}) ? *c : '-';
	buf[j] = '\0';
	if (j > 0 && creds_label_valid(buf))
		return (*ret = strdup(buf)) ? 0 : -ENOMEM;
	return asprintf(ret, "ssh-%s-%u", ssh_sk_type_short(l->key.type), n) < 0 ? -ENOMEM : 0;
}

static int read_binary(
        const char *what, const char *path, size_t max, uint8_t **ret, size_t *ret_len)
{
	char *data = NULL;
	int r = ctl_read_input(path, max, &data, ret_len);

	if (r < 0) {
		fprintf(stderr, "keywardctl ssh import: cannot read the %s %s: %s\n", what, path,
		        r == -EFBIG ? "too large" : strerror(-r));
		return r;
	}
	*ret = (uint8_t *)data;
	return 0;
}

typedef struct ImportArgs {
	const char *user, *label;
	uint8_t *att, *chal;
	size_t att_len, chal_len;
} ImportArgs;

static int import_one(sd_bus *bus, const ImportArgs *a, const char *line, const char *label)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
	sd_bus_error error = SD_BUS_ERROR_NULL;
	const char *id, *fp, *att;
	int r;

	r = sd_bus_message_new_method_call(
	        bus, &m, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH, KEYWARD_BUS_INTERFACE, "ImportSshKey");
	if (r >= 0)
		r = sd_bus_message_append(m, "sss", a->user, label, line);
	if (r >= 0)
		r = sd_bus_message_append_array(m, 'y', a->att, a->att_len);
	if (r >= 0)
		r = sd_bus_message_append_array(m, 'y', a->chal, a->chal_len);
	if (r < 0)
		return CTL_EXIT_ERROR;
	r = sd_bus_call(bus, m, CTL_SSH_BUS_TIMEOUT_US, &error, &reply);
	if (r < 0) {
		int code = ctl_report_bus_error(label, &error, r);
		sd_bus_error_free(&error);
		return code;
	}
	r = sd_bus_message_read(reply, "sss", &id, &fp, &att);
	if (r < 0)
		return CTL_EXIT_ERROR;
	if (!ctl_global.quiet)
		printf("Imported %s for %s: %s (attestation %s).\n", label, a->user, fp, att);
	return CTL_EXIT_OK;
}

static int ssh_import(int argc, char *argv[])
{
	enum { ARG_LABEL = 0x100, ARG_ATTESTATION, ARG_CHALLENGE };
	static const struct option options[] = {{"label", required_argument, NULL, ARG_LABEL},
	        {"attestation", required_argument, NULL, ARG_ATTESTATION},
	        {"challenge", required_argument, NULL, ARG_CHALLENGE},
	        {"help", no_argument, NULL, 'h'}, {}};
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ uint8_t *att = NULL, *chal = NULL;
	const char *att_path = NULL, *chal_path = NULL, *file;
	_cleanup_strv_free_ char **used = NULL;
	ImportArgs a = {};
	SshKeyLine keys[CTL_SSH_MAX_KEYS];
	char *lines[CTL_SSH_MAX_KEYS];
	size_t n = 0;
	unsigned lineno = 0, ordinary = 0, bad = 0, imported = 0;
	int c, r, code = CTL_EXIT_OK;

	optind = 0; /* GNU getopt: start over (options may follow the operands) */
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case ARG_LABEL:
			a.label = optarg;
			break;
		case ARG_ATTESTATION:
			att_path = optarg;
			break;
		case ARG_CHALLENGE:
			chal_path = optarg;
			break;
		case 'h':
			printf("Usage: keywardctl ssh import USER FILE|- [--label L] "
			       "[--attestation FILE --challenge FILE]\n"
			       "Registers the security-key SSH keys (ecdsa-sk, ed25519-sk) of a "
			       ".pub "
			       "or authorized_keys FILE\n"
			       "for USER; ordinary keys in it are reported and skipped. The "
			       "attestation and challenge are\n"
			       "the files of ssh-keygen -O write-attestation=FILE -O "
			       "challenge=FILE (one key only).\n");
			return CTL_EXIT_OK;
		default:
			return CTL_EXIT_USAGE;
		}
	}
	if (optind + 2 != argc) {
		fprintf(stderr, "keywardctl ssh import: expected USER and FILE (see --help)\n");
		return CTL_EXIT_USAGE;
	}
	a.user = argv[optind];
	file = argv[optind + 1];
	if (!valid_user_name(a.user)) {
		fprintf(stderr, "keywardctl ssh import: invalid user name '%s'\n", a.user);
		return CTL_EXIT_USAGE;
	}
	if (!!att_path != !!chal_path) {
		fprintf(stderr,
		        "keywardctl ssh import: --attestation and --challenge go together\n");
		return CTL_EXIT_USAGE;
	}
	if (a.label && !creds_label_valid(a.label)) {
		fprintf(stderr,
		        "keywardctl ssh import: invalid label (1-64 of A-Z a-z 0-9 . _ @ + -)\n");
		return CTL_EXIT_USAGE;
	}
	r = ctl_read_input(file, CTL_SSH_MAX_FILE, &text, NULL);
	if (r < 0) {
		fprintf(stderr, "keywardctl: cannot read %s: %s\n", file,
		        r == -ELOOP   ? "is a symbolic link"
		        : r == -EFBIG ? "too large"
		                      : strerror(-r));
		return CTL_EXIT_ERROR;
	}
	if (att_path && (read_binary("attestation", att_path, SSH_SK_MAX_ATTESTATION, &att,
	                         &a.att_len) < 0 ||
	                        read_binary("challenge", chal_path, CTL_SSH_MAX_CHALLENGE, &chal,
	                                &a.chal_len) < 0))
		return CTL_EXIT_ERROR;
	a.att = att;
	a.chal = chal;

	for (char *p = text, *eol; p; p = eol ? eol + 1 : NULL) {
		_cleanup_free_ char *err = NULL;
		SshKeyLine l = {};

		eol = strchr(p, '\n');
		if (eol)
			*eol = '\0';
		if (*p && p[strlen(p) - 1] == '\r') /* a file with CRLF line ends */
			p[strlen(p) - 1] = '\0';
		/* keywardd takes no control characters: a tab separates fields like a space
		 * (inside quotes it only changes options keyward ignores, or the comment). */
		for (char *t = p; *t; t++)
			if (*t == '\t')
				*t = ' ';
		lineno++;
		r = ssh_key_line_parse(p, &l, &err);
		if (r == -ENODATA)
			continue;
		if (r == -EPROTOTYPE) {
			fprintf(stderr,
			        "%s:%u: skipped: %s%s%s is an ordinary SSH key, not a security-key "
			        "SSH key\n",
			        file, lineno, l.key_type, l.comment ? " " : "",
			        strempty(l.comment));
			ordinary++;
			ssh_key_line_done(&l);
			continue;
		}
		if (r < 0) {
			fprintf(stderr, "%s:%u: not a valid SSH key line: %s\n", file, lineno,
			        err ? err : strerror(-r));
			bad++;
			continue;
		}
		if (n >= CTL_SSH_MAX_KEYS) {
			fprintf(stderr, "%s: more than %d security-key SSH keys\n", file,
			        CTL_SSH_MAX_KEYS);
			ssh_key_line_done(&l);
			code = CTL_EXIT_FAILURE;
			goto out;
		}
		keys[n] = l;
		lines[n++] = p;
	}
	if (n == 0) {
		fprintf(stderr,
		        "keywardctl ssh import: no security-key SSH key (ecdsa-sk, ed25519-sk) in "
		        "%s%s\n",
		        file, ordinary ? "; make one with: ssh-keygen -t ecdsa-sk" : "");
		return CTL_EXIT_FAILURE;
	}
	if (att && n != 1) {
		fprintf(stderr,
		        "keywardctl ssh import: an attestation belongs to one key; %s holds %zu\n",
		        file, n);
		code = CTL_EXIT_USAGE;
		goto out;
	}
	if (ctl_bus_connect(&bus) < 0) {
		code = CTL_EXIT_ERROR;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *label = NULL;
		int k;

		if (a.label && n == 1)
			label = strdup(a.label);
		else if (a.label && asprintf(&label, "%.60s-%zu", a.label, i + 1) < 0)
			label = NULL;
		else if (!a.label && default_label(&keys[i], (unsigned)i + 1, &label) < 0)
			label = NULL;
		if (label && strv_contains(used, label)) {
			/* two keys of the file with the same comment */
			char *l2 = NULL;
			if (asprintf(&l2, "%.60s-%zu", label, i + 1) < 0)
				l2 = NULL;
			free(label);
			label = l2;
		}
		if (!label || strv_extend(&used, label) < 0) {
			code = CTL_EXIT_ERROR;
			break;
		}
		k = import_one(bus, &a, lines[i], label);
		if (k == CTL_EXIT_OK)
			imported++;
		else if (k > code)
			code = k;
	}
	if (!ctl_global.quiet && (n > 1 || ordinary || bad))
		printf("%u security-key SSH key(s) imported, %zu failed, %u ordinary key(s) "
		       "skipped, %u malformed line(s).\n",
		        imported, n - imported, ordinary, bad);
	if (bad && code == CTL_EXIT_OK)
		code = CTL_EXIT_FAILURE;
out:
	for (size_t i = 0; i < n; i++)
		ssh_key_line_done(&keys[i]);
	return code;
}

/* "SHA256:..." from a stored ssh-sk id (base64 of the SHA-256 of the blob). */
static void id_to_fingerprint(const char *id, char *buf, size_t size)
{
	snprintf(buf, size, "SHA256:%.*s", (int)strcspn(id, "="), id);
}

static unsigned ssh_list_row(const CtlCredentialRow *c, unsigned n, void *userdata)
{
	size_t alg = strcspn(c->flags, ",");
	char fp[80];

	if (!c->ssh)
		return 0;
	if (n == 0)
		printf("%-16s %-20s %-11s %-14s %-10s %s\n", "USER", "LABEL", "TYPE", "FLAGS",
		        "ATTEST", "FINGERPRINT");
	id_to_fingerprint(c->id, fp, sizeof(fp));
	printf("%-16s %-20s %-11s %-14s %-10s %s\n", c->user, c->label,
	        strneq(c->flags, "es256", 5) ? "ecdsa-sk" : "ed25519-sk",
	        c->flags + alg + (c->flags[alg] ? 1 : 0), c->attestation, fp);
	return 1;
}

static int ssh_list(int argc, char *argv[])
{
	return ctl_list_credentials("ssh list", "security-key SSH keys", argc, argv,
	        "Usage: keywardctl ssh list [USER]\nLists the registered security-key SSH keys "
	        "with their fingerprints.\n",
	        ssh_list_row, NULL);
}

/* The policy of ctl_global.config_path; errors printed. */
static int load_policy(const char *prog, Policy **ret)
{
	int r = ctl_policy_load(ret);

	if (r < 0)
		fprintf(stderr, "%s: cannot load the policy %s: %s\n", prog, ctl_global.config_path,
		        strerror(-r));
	return r;
}

/* sshd's AuthorizedKeysCommand: stdout is read by sshd, so nothing but key lines goes
 * there, and nothing at all unless every SSH credential of USER could be read. */
static int ssh_authorized_keys(int argc, char *argv[])
{
	static const char prog[] = "keywardctl ssh authorized-keys";
	_cleanup_(policy_freep) Policy *p = NULL;
	_cleanup_credential_set_ CredentialSet *s = NULL;
	_cleanup_free_ char *why = NULL, *out = NULL;
	size_t out_size = 0;
	const char *dir;
	FILE *f;
	int r;

	if (argc != 2 || streq(argv[1], "-h") || streq(argv[1], "--help")) {
		printf("Usage: keywardctl ssh authorized-keys USER\nPrints USER's registered "
		       "security-key SSH keys as authorized_keys lines\n(sshd_config: "
		       "AuthorizedKeysCommand /usr/bin/keywardctl ssh authorized-keys %%u).\n");
		return argc == 2 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
	}
	if (!valid_user_name(argv[1])) {
		fprintf(stderr, "%s: invalid user name\n", prog);
		return CTL_EXIT_USAGE;
	}
	if (load_policy(prog, &p) < 0)
		return CTL_EXIT_ERROR;
	dir = policy_settings(p)->credentials_dir ? policy_settings(p)->credentials_dir
	                                          : KEYWARD_DEFAULT_CREDENTIALS_DIR;
	r = creds_load_user(dir, argv[1], &s, &why);
	if (r < 0) {
		fprintf(stderr, "%s: the credentials of %s cannot be used, no key is allowed: %s\n",
		        prog, argv[1], why ? why : strerror(-r));
		return CTL_EXIT_FAILURE;
	}
	f = open_memstream(&out, &out_size);
	if (!f)
		return CTL_EXIT_ERROR;
	for (size_t i = 0; i < s->n; i++) {
		const Credential *c = &s->items[i];
		_cleanup_free_ char *line = NULL, *comment = NULL;
		SshSkKey k = {};

		if (!credential_is_ssh(c))
			continue;
		r = ssh_sk_key_from_credential(c, &k);
		if (r >= 0 && asprintf(&comment, "keyward:%s", c->label) < 0)
			r = -ENOMEM;
		/* no-touch-required never: sshd then demands the touch of every login. */
		if (r >= 0)
			r = ssh_sk_key_format_line(&k, c->uv, comment, &line);
		ssh_sk_key_done(&k);
		if (r < 0) {
			fclose(f);
			fprintf(stderr,
			        "%s: the SSH key %s of %s is not usable (%s); no key is allowed\n",
			        prog, c->label, argv[1], strerror(-r));
			return CTL_EXIT_FAILURE;
		}
		fprintf(f, "%s\n", line);
	}
	if (fclose(f) != 0)
		return CTL_EXIT_ERROR;
	fputs(out, stdout);
	return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_ERROR;
}

/* Which accounts an on_remote = "ssh-key" rule covers for sshd, and whether it asks for UV:
 * the decision policy_evaluate() gives each account of the passwd database for a remote
 * sshd login. */
static int covered_accounts(const Policy *p, char ***ret_touch, char ***ret_uv)
{
	_cleanup_strv_free_ char **touch = NULL, **uv = NULL;
	struct passwd *pw;
	int r = 0;

	setpwent();
	while ((pw = getpwent())) {
		_cleanup_strv_free_ char **groups = NULL;
		PolicyDecision d;

		if (!valid_user_name(pw->pw_name))
			continue;
		r = ctl_user_groups(pw->pw_name, pw->pw_gid, 1024, &groups);
		if (r < 0) {
			fprintf(stderr,
			        "keywardctl ssh sshd-config: cannot list the groups of %s: %s\n",
			        pw->pw_name, strerror(-r));
			break;
		}
		r = policy_evaluate(p,
		        &(PolicyRequest){
		                .user = pw->pw_name,
		                .uid = pw->pw_uid,
		                .groups = groups,
		                .service = "sshd",
		                .rhost = CTL_SSH_REMOTE_PROBE,
		                .tty = "ssh",
		                .remote = true,
		        },
		        &d);
		if (r < 0)
			break;
		if (d.require == POLICY_REQUIRE_SSH_KEY)
			r = strv_extend(d.user_verification == POLICY_UV_REQUIRED ? &uv : &touch,
			        pw->pw_name);
		if (r < 0)
			break;
	}
	endpwent();
	if (r < 0)
		return r;
	*ret_touch = TAKE_PTR(touch);
	*ret_uv = TAKE_PTR(uv);
	return 0;
}

static void print_match(char **users, bool uv, const char *ctl_path)
{
	if (!users)
		return;
	printf("\nMatch User ");
	for (char **u = users; *u; u++)
		printf("%s%s", u == users ? "" : ",", *u);
	printf("\n\tAuthorizedKeysCommand %s ssh authorized-keys %%u\n"
	       "\tAuthorizedKeysCommandUser root\n"
	       "\tAuthorizedKeysFile none\n",
	        ctl_path);
	if (uv)
		printf("\tPubkeyAuthOptions verify-required\n");
}

static int ssh_sshd_config(int argc, char *argv[])
{
	static const char prog[] = "keywardctl ssh sshd-config";
	_cleanup_(policy_freep) Policy *p = NULL;
	_cleanup_strv_free_ char **touch = NULL, **uv = NULL;
	const char *ctl_path = KEYWARD_KEYWARDCTL_PATH;
	int r;

	if (argc > 1) {
		printf("Usage: keywardctl ssh sshd-config\nPrints an sshd_config drop-in "
		       "(/etc/ssh/sshd_config.d/keyward.conf) for the accounts the policy's "
		       "on_remote = \"ssh-key\" rules cover.\n");
		return streq(argv[1], "-h") || streq(argv[1], "--help") ? CTL_EXIT_OK
		                                                        : CTL_EXIT_USAGE;
	}
	if (load_policy(prog, &p) < 0)
		return CTL_EXIT_ERROR;
	r = covered_accounts(p, &touch, &uv);
	if (r < 0) {
		fprintf(stderr, "%s: cannot evaluate the policy for the accounts: %s\n", prog,
		        strerror(-r));
		return CTL_EXIT_ERROR;
	}
	printf("# /etc/ssh/sshd_config.d/keyward.conf: made by `keywardctl ssh sshd-config` from\n"
	       "# %s. Accounts an on_remote = \"ssh-key\" rule covers log in only with a\n"
	       "# security-key SSH key registered in keyward (keywardctl ssh import); their\n"
	       "# ~/.ssh/authorized_keys is not read. Make it again after changing those rules\n"
	       "# or adding accounts (docs/ssh.md), then: systemctl reload ssh\n"
	       "\n"
	       "# pam_keyward checks the key sshd accepted (SSH_AUTH_INFO_0).\n"
	       "ExposeAuthInfo yes\n",
	        ctl_global.config_path);
	if (!touch && !uv)
		printf("\n# No account is covered by an on_remote = \"ssh-key\" rule.\n");
	print_match(touch, false, ctl_path);
	print_match(uv, true, ctl_path);
	return CTL_EXIT_OK;
}

int verb_ssh(int argc, char *argv[])
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char *argv[]);
	} subs[] = {
	        {"import", ssh_import},
	        {"list", ssh_list},
	        {"authorized-keys", ssh_authorized_keys},
	        {"sshd-config", ssh_sshd_config},
	};

	if (argc >= 2)
		for (size_t i = 0; i < ELEMENTSOF(subs); i++)
			if (streq(argv[1], subs[i].name))
				return subs[i].fn(argc - 1, argv + 1);
	fprintf(argc >= 2 && !streq(argv[1], "-h") && !streq(argv[1], "--help") ? stderr : stdout,
	        "Usage: keywardctl ssh import USER FILE|- [--label L] [--attestation FILE "
	        "--challenge FILE]\n"
	        "       keywardctl ssh list [USER]\n"
	        "       keywardctl ssh authorized-keys USER\n"
	        "       keywardctl ssh sshd-config\n");
	return argc >= 2 && (streq(argv[1], "-h") || streq(argv[1], "--help")) ? CTL_EXIT_OK
	                                                                       : CTL_EXIT_USAGE;
}
