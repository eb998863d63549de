/* ctl-audit.c: `keywardctl audit verify` (hash chain and seals of the trail) and
 * `keywardctl audit show` (filtered, readable view of the records). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "audit-json.h"
#include "audit.h"
#include "ctl.h"
#include "keyward-config.h"
#include "policy.h"
#include "util.h"

int ctl_audit_paths(char **ret_trail, char **ret_key)
{
	_cleanup_(policy_freep) Policy *p = NULL;
	_cleanup_free_ char *trail = NULL, *key = NULL;
	const char *state_dir = KEYWARD_DEFAULT_STATE_DIR, *log = KEYWARD_DEFAULT_AUDIT_LOG;
	int r;

	if (access(ctl_global.config_path, F_OK) == 0 ||
	        !streq(ctl_global.config_path, KEYWARD_DEFAULT_CONFIG)) {
		r = ctl_policy_load(&p);
		if (r < 0) {
			fprintf(stderr,
			        "keywardctl: cannot load the policy %s (%s); name the trail files "
			        "on the command line instead\n",
			        ctl_global.config_path, strerror(-r));
			return r;
		}
		if (policy_settings(p)->audit_log)
			log = policy_settings(p)->audit_log;
		if (policy_settings(p)->state_dir)
			state_dir = policy_settings(p)->state_dir;
	}
	trail = strdup(log);
	if (asprintf(&key, "%s/%s", state_dir, AUDIT_SEAL_KEY_FILENAME) < 0)
		key = NULL;
	if (!trail || !key)
		return -ENOMEM;
	if (ret_trail)
		*ret_trail = TAKE_PTR(trail);
	if (ret_key)
		*ret_key = TAKE_PTR(key);
	return 0;
}

int ctl_audit_files(char **args, size_t n, char ***ret)
{
	_cleanup_free_ char *trail = NULL;
	_cleanup_strv_free_ char **l = NULL;
	int r;

	if (n > 0) {
		for (size_t i = 0; i < n; i++) {
			if (access(args[i], R_OK) < 0) {
				r = -errno;
				fprintf(stderr,
				        "keywardctl: cannot read the audit trail file %s: %s\n",
				        args[i], strerror(-r));
				return r;
			}
			r = strv_extend(&l, args[i]);
			if (r < 0)
				return r;
		}
		*ret = TAKE_PTR(l);
		return 0;
	}
	r = ctl_audit_paths(&trail, NULL);
	if (r < 0)
		return r;
	r = audit_trail_files(trail, &l);
	if (r < 0) {
		fprintf(stderr, "keywardctl: cannot list the audit trail %s: %s\n", trail,
		        strerror(-r));
		return r;
	}
	*ret = TAKE_PTR(l);
	return 0;
}

/* ---- the verdict ---- */

CtlAuditVerdict ctl_audit_verdict(
        int verify_error, const AuditVerifyResult *res, char *buf, size_t size)
{
	if (verify_error < 0) {
		snprintf(buf, size, "NOT VERIFIED: cannot read %s (%s)", strna(res->file),
		        strerror(-verify_error));
		return CTL_AUDIT_UNREADABLE;
	}
	if (res->status != AUDIT_VERIFY_INTACT) {
		snprintf(buf, size, "TAMPERED (%s) at %s:%" PRIu64 ": %s",
		        audit_verify_status_to_string(res->status), strna(res->file), res->line,
		        strna(res->message));
		return CTL_AUDIT_TAMPERED;
	}
	if (res->seals_unproven > 0 || res->seals_proven == 0) {
		snprintf(buf, size,
		        "NOT PROVEN: chain intact, %" PRIu64 " records in %" PRIu64
		        " file(s), but %" PRIu64 " of %" PRIu64
		        " seals not checked (%s): records edited and re-sealed by root on the "
		        "machine would not show",
		        res->records, res->files, res->seals_unproven, res->seals,
		        res->epoch_seals > 0 ? "no verification key" : "no seal key");
		return CTL_AUDIT_NOT_PROVEN;
	}
	snprintf(buf, size,
	        "INTACT: %" PRIu64 " records in %" PRIu64 " file(s), %" PRIu64
	        " seals verified%s, %" PRIu64 " unsealed at the end",
	        res->records, res->files, res->seals_proven,
	        res->epoch_seals == res->seals ? " (forward-secure, with the verification key)"
	                                       : " (static key: whoever holds it can re-seal)",
	        res->unsealed_tail);
	return CTL_AUDIT_INTACT;
}

const char *ctl_audit_verdict_status(int verify_error, const AuditVerifyResult *res)
{
	char buf[8];

	switch (ctl_audit_verdict(verify_error, res, buf, sizeof(buf))) {
	case CTL_AUDIT_UNREADABLE:
		return "unreadable";
	case CTL_AUDIT_NOT_PROVEN:
		return "not-proven";
	default:
		return audit_verify_status_to_string(res->status);
	}
}

int ctl_audit_verdict_exit(CtlAuditVerdict v)
{
	static const int codes[_CTL_AUDIT_VERDICT_MAX] = {
	        [CTL_AUDIT_INTACT] = CTL_EXIT_OK,
	        [CTL_AUDIT_NOT_PROVEN] = CTL_EXIT_NOT_PROVEN,
	        [CTL_AUDIT_TAMPERED] = CTL_EXIT_FAILURE,
	        [CTL_AUDIT_UNREADABLE] = CTL_EXIT_ERROR,
	};
	return v < _CTL_AUDIT_VERDICT_MAX ? codes[v] : CTL_EXIT_ERROR;
}

int ctl_audit_load_key(const char *prog, const char *path, bool explicit_path, AuditSealKey *k,
        AuditVerifyOptions *o, char **ret_note)
{
	const char *problem = NULL;
	char *note = NULL;
	int r;

	r = audit_seal_key_read(path, false, k, &problem);
	if (r < 0) {
		if (explicit_path) {
			fprintf(stderr, "%s: the key %s %s (%s).\n", prog, path, strna(problem),
			        strerror(-r));
			return r;
		}
		if (asprintf(&note,
		            "Seals were not checked: the seal key %s %s (%s). Pass the "
		            "verification key with --verification-key FILE (or a legacy key "
		            "with --key FILE, or run as root).",
		            path, strna(problem), strerror(-r)) < 0)
			return -ENOMEM;
		*ret_note = note;
		return 0;
	}
	if (k->epoch == AUDIT_SEAL_EPOCH_NONE) {
		o->key = k->key;
		return 1;
	}
	if (k->epoch == 0) {
		o->verification_key = k;
		return 1;
	}
	if (asprintf(&note,
	            "Seals were not checked: %s is the machine's current forward-secure seal "
	            "key (epoch %" PRIu64
	            "); it cannot prove earlier seals. Pass the verification key from "
	            "`keywardctl audit setup-keys` with --verification-key FILE.",
	            path, k->epoch) < 0)
		return -ENOMEM;
	audit_seal_key_clear(k);
	if (explicit_path) {
		fprintf(stderr, "%s: %s\n", prog, note);
		free(note);
		return -EKEYREJECTED;
	}
	*ret_note = note;
	return 0;
}

/* ---- anchors ---- */

#define ANCHORS_MAX (1u << 20)

static int anchors_add(AuditAnchor **list, size_t *n, const AuditAnchor *a)
{
	AuditAnchor *l;

	if (*n >= ANCHORS_MAX)
		return -E2BIG;
	l = reallocarray(*list, *n + 1, sizeof(AuditAnchor));
	if (!l)
		return -ENOMEM;
	l[(*n)++] = *a;
	*list = l;
	return 0;
}

/* --anchor LINE|FILE: an anchor line, or a file of them (blank lines and # comments). */
static int anchors_from_arg(const char *arg, AuditAnchor **list, size_t *n)
{
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	uint64_t lineno = 0;
	AuditAnchor a;
	ssize_t len;
	int r;

	if (strneq(arg, "keyward-anchor ", 15)) {
		if (audit_anchor_parse(arg, &a) < 0) {
			fprintf(stderr, "keywardctl audit verify: not an anchor line: %s\n", arg);
			return -EBADMSG;
		}
		return anchors_add(list, n, &a);
	}
	f = fopen(arg, "re");
	if (!f) {
		r = -errno;
		fprintf(stderr, "keywardctl audit verify: cannot read the anchor file %s: %s\n",
		        arg, strerror(-r));
		return r;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		const char *p = line;
		lineno++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '\n' || *p == '#')
			continue;
		if (audit_anchor_parse(p, &a) < 0) {
			fprintf(stderr,
			        "keywardctl audit verify: %s:%" PRIu64 ": not an anchor line\n",
			        arg, lineno);
			return -EBADMSG;
		}
		r = anchors_add(list, n, &a);
		if (r < 0)
			return r;
	}
	return 0;
}

static int journal_field(sd_journal *j, const char *field, char **ret)
{
	const void *d;
	size_t l, fl = strlen(field);
	int r;

	r = sd_journal_get_data(j, field, &d, &l);
	if (r < 0)
		return r;
	if (l <= fl + 1 || l > fl + 1 + 256)
		return -EBADMSG;
	*ret = strndup((const char *)d + fl + 1, l - fl - 1);
	return *ret ? 0 : -ENOMEM;
}

/* --anchor-journal FILE|DIR: the anchors keywardd sent to journald (MESSAGE_ID), e.g. in
 * the collector's copy from systemd-journal-remote. HOST (if given) filters. */
static int anchors_from_journal(
        const char *path, const char *host, AuditAnchor **list, size_t *n, char ***hosts)
{
	_cleanup_(sd_journal_closep) sd_journal *j = NULL;
	uint64_t bad = 0;
	struct stat st;
	int r;

	if (stat(path, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (S_ISDIR(st.st_mode))
		r = sd_journal_open_directory(&j, path, 0);
	else {
		const char *paths[] = {path, NULL};
		r = sd_journal_open_files(&j, paths, 0);
	}
	if (r < 0)
		goto fail;
	r = sd_journal_add_match(j, "MESSAGE_ID=" AUDIT_ANCHOR_MESSAGE_ID, 0);
	if (r < 0)
		goto fail;
	SD_JOURNAL_FOREACH(j)
	{
		_cleanup_free_ char *h = NULL, *ep = NULL, *sq = NULL, *fs = NULL, *hs = NULL,
		                    *kid = NULL;
		AuditAnchor a;

		if (journal_field(j, "KEYWARD_ANCHOR_HOST", &h) < 0 ||
		        journal_field(j, "KEYWARD_ANCHOR_EPOCH", &ep) < 0 ||
		        journal_field(j, "KEYWARD_ANCHOR_SEQ", &sq) < 0 ||
		        journal_field(j, "KEYWARD_ANCHOR_FILE_SEQ", &fs) < 0 ||
		        journal_field(j, "KEYWARD_ANCHOR_HASH", &hs) < 0 ||
		        audit_anchor_from_fields(h, ep, sq, fs, hs,
		                journal_field(j, "KEYWARD_ANCHOR_KEY_ID", &kid) < 0 ||
		                                streq(kid, "-")
		                        ? NULL
		                        : kid,
		                &a) < 0) {
			bad++;
			continue;
		}
		if (host && !streq(a.host, host))
			continue;
		if (!strv_contains(*hosts, a.host) && strv_extend(hosts, a.host) < 0)
			return -ENOMEM;
		r = anchors_add(list, n, &a);
		if (r < 0)
			goto fail;
	}
	if (bad > 0)
		fprintf(stderr,
		        "keywardctl audit verify: %" PRIu64
		        " anchor message(s) in %s lack fields and were skipped\n",
		        bad, path);
	return 0;
fail:
	fprintf(stderr, "keywardctl audit verify: cannot read anchors from the journal %s: %s\n",
	        path, strerror(-r));
	return r;
}

/* For the multi-host report (ctl-report-hosts.c): a host's anchor file, and the anchors
 * of host HOST in a journal. */
int ctl_audit_anchors_from_arg(const char *arg, AuditAnchor **list, size_t *n)
{
	return anchors_from_arg(arg, list, n);
}

int ctl_audit_anchors_from_journal(
        const char *path, const char *host, AuditAnchor **list, size_t *n)
{
	_cleanup_strv_free_ char **hosts = NULL;

	return anchors_from_journal(path, host, list, n, &hosts);
}

static void verify_help(FILE *f)
{
	fprintf(f,
	        "Usage: keywardctl audit verify [--verification-key FILE | --key FILE | --no-key]\n"
	        "                               [--anchor LINE|FILE]... [--anchor-journal "
	        "FILE|DIR]...\n"
	        "                               [--anchor-host NAME] [--strict] [FILE...]\n\n"
	        "Checks the audit trail's hash chain and its seals. FILEs are checked as one\n"
	        "chain, in the order given; default: the policy's audit_log and its rotated "
	        "files.\n\n"
	        "  --verification-key FILE  the key from `keywardctl audit setup-keys`: proves\n"
	        "                           every forward-secure seal\n"
	        "  --key FILE       a legacy static seal key (default: "
	        "<state_dir>/" AUDIT_SEAL_KEY_FILENAME ")\n"
	        "  --no-key         check the chain only; seals are NOT checked\n"
	        "  --anchor L|F     a seal anchor (`keywardctl audit anchor`), or a file of them\n"
	        "  --anchor-journal F|D  anchors keywardd sent to journald (journal file or "
	        "directory)\n"
	        "  --anchor-host NAME    only the anchors of this host\n"
	        "  --strict         the trail must end with a seal (archived trail, stopped "
	        "daemon)\n\n"
	        "Exit: 0 INTACT (every seal proved), 1 TAMPERED, 2 usage, 3 cannot read,\n"
	        "      4 NOT PROVEN (no tampering found, but seals could not be checked).\n");
}

static int audit_verify_cmd(int argc, char *argv[])
{
	static const struct option options[] = {{"key", required_argument, NULL, 'k'},
	        {"verification-key", required_argument, NULL, 'V'},
	        {"no-key", no_argument, NULL, 'n'}, {"strict", no_argument, NULL, 's'},
	        {"anchor", required_argument, NULL, 'a'},
	        {"anchor-journal", required_argument, NULL, 'j'},
	        {"anchor-host", required_argument, NULL, 'H'}, {"help", no_argument, NULL, 'h'},
	        {}};
	_cleanup_strv_free_ char **files = NULL, **anchor_args = NULL, **journal_args = NULL,
	                         **hosts = NULL;
	_cleanup_free_ char *default_key = NULL, *note = NULL;
	_cleanup_free_ AuditAnchor *anchors = NULL;
	const char *key_path = NULL, *anchor_host = NULL;
	AuditSealKey key = {};
	AuditVerifyOptions o = {};
	AuditVerifyResult res = {};
	CtlAuditVerdict verdict;
	char summary[1024];
	size_t n_anchors = 0;
	bool no_key = false, vkey = false;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case 'k':
		case 'V':
			if (key_path) {
				fprintf(stderr, "keywardctl audit verify: give one key\n");
				return CTL_EXIT_USAGE;
			}
			key_path = optarg;
			vkey = c == 'V';
			break;
		case 'n':
			no_key = true;
			break;
		case 's':
			o.strict = true;
			break;
		case 'a':
			if (strv_extend(&anchor_args, optarg) < 0)
				return CTL_EXIT_ERROR;
			break;
		case 'j':
			if (strv_extend(&journal_args, optarg) < 0)
				return CTL_EXIT_ERROR;
			break;
		case 'H':
			anchor_host = optarg;
			break;
		case 'h':
			verify_help(stdout);
			return CTL_EXIT_OK;
		default:
			verify_help(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (no_key && key_path) {
		fprintf(stderr, "keywardctl audit verify: --key and --no-key exclude each other\n");
		return CTL_EXIT_USAGE;
	}
	for (char **a = anchor_args; a && *a; a++) {
		r = anchors_from_arg(*a, &anchors, &n_anchors);
		if (r < 0)
			return r == -EBADMSG ? CTL_EXIT_USAGE : CTL_EXIT_ERROR;
	}
	for (char **a = journal_args; a && *a; a++) {
		r = anchors_from_journal(*a, anchor_host, &anchors, &n_anchors, &hosts);
		if (r < 0)
			return CTL_EXIT_ERROR;
	}
	if (journal_args && n_anchors == 0) {
		fprintf(stderr,
		        "keywardctl audit verify: no keyward anchor%s%s in the journal given: "
		        "nothing to check against\n",
		        anchor_host ? " of host " : "", strempty(anchor_host));
		return CTL_EXIT_ERROR;
	}
	if (strv_length(hosts) > 1) {
		fprintf(stderr,
		        "keywardctl audit verify: the journal holds anchors of several hosts (%s, "
		        "%s, ...): name this trail's with --anchor-host NAME\n",
		        hosts[0], hosts[1]);
		return CTL_EXIT_USAGE;
	}
	o.anchors = anchors;
	o.n_anchors = n_anchors;

	r = ctl_audit_files(argv + optind, (size_t)(argc - optind), &files);
	if (r < 0)
		return CTL_EXIT_ERROR;
	if (!no_key) {
		bool explicit_path = key_path != NULL;
		if (!key_path) {
			r = ctl_audit_paths(NULL, &default_key);
			if (r < 0)
				return CTL_EXIT_ERROR;
			key_path = default_key;
		}
		r = ctl_audit_load_key(
		        "keywardctl audit verify", key_path, explicit_path, &key, &o, &note);
		if (r < 0)
			return r == -ENOMEM ? CTL_EXIT_ERROR : CTL_EXIT_ERROR;
		if (vkey && o.key) {
			fprintf(stderr,
			        "keywardctl audit verify: %s is a legacy static key, not a "
			        "verification key; pass it with --key\n",
			        key_path);
			audit_seal_key_clear(&key);
			return CTL_EXIT_USAGE;
		}
	}

	r = audit_verify_files(files, &o, &res);
	audit_seal_key_clear(&key);
	verdict = ctl_audit_verdict(r, &res, summary, sizeof(summary));
	if (verdict == CTL_AUDIT_UNREADABLE) {
		fprintf(stderr, "keywardctl audit verify: cannot read %s: %s\n", strna(res.file),
		        strerror(-r));
		audit_verify_result_clear(&res);
		return CTL_EXIT_ERROR;
	}
	if (verdict == CTL_AUDIT_TAMPERED) {
		if (res.line > 0)
			printf("%s:%" PRIu64 ": TAMPERED (%s): %s\n", strna(res.file), res.line,
			        audit_verify_status_to_string(res.status), strna(res.message));
		else
			printf("%s: TAMPERED (%s): %s\n", strna(res.file),
			        audit_verify_status_to_string(res.status), strna(res.message));
	} else {
		if (!ctl_global.quiet) {
			printf("files:          %" PRIu64 " (%s)\n", res.files,
			        res.first_file_seq == 1 ? "chain starts at the genesis file"
			                                : "chain starts at a rotated file; earlier "
			                                  "files not checked");
			printf("records:        %" PRIu64 " (seq %" PRIu64 "..%" PRIu64 ")\n",
			        res.records, res.first_seq, res.last_seq);
			printf("seals:          %" PRIu64 " (%" PRIu64 " forward-secure), %" PRIu64
			       " proved, %" PRIu64 " NOT checked\n",
			        res.seals, res.epoch_seals, res.seals_proven, res.seals_unproven);
			printf("unsealed tail:  %" PRIu64 " record(s) after the last seal%s\n",
			        res.unsealed_tail,
			        res.unsealed_tail ? " (chained, but not yet protected by a seal)"
			                          : "");
			if (res.torn_acknowledged)
				printf("torn lines:     %" PRIu64
				       " (crash during a write, acknowledged by torn-tail "
				       "records)\n",
				        res.torn_acknowledged);
			if (n_anchors == 0)
				printf("anchors:        none given: a cut back to a seal or a "
				       "restored older copy would not show\n");
			else
				printf("anchors:        %" PRIu64 " matched, %" PRIu64
				       " before the first file (not checked)%s\n",
				        res.anchors_matched, res.anchors_before,
				        res.anchors_other_chain ? "," : "");
			if (n_anchors > 0 && res.anchors_other_chain)
				printf("                %" PRIu64
				       " of another key chain (a trail started over with "
				       "setup-keys; not checked)\n",
				        res.anchors_other_chain);
			if (note)
				printf("%s\n", note);
		}
		printf("%s\n", verdict == CTL_AUDIT_INTACT ? "INTACT" : summary);
	}
	audit_verify_result_clear(&res);
	return ctl_audit_verdict_exit(verdict);
}

/* ---- setup-keys and anchor ---- */

static void setup_keys_help(FILE *f)
{
	fprintf(f,
	        "Usage: keywardctl audit setup-keys [--output FILE]\n\n"
	        "Creates the forward-secure seal key in <state_dir> before keywardd first starts,\n"
	        "and shows its verification key once (or writes it to FILE, mode 0600). Store the\n"
	        "verification key OFF this machine: it proves every seal, and nobody who later\n"
	        "takes root here can forge one with it gone.\n");
}

static int write_secret_file(const char *path, const char *text)
{
	_cleanup_close_ int fd = -EBADF;
	size_t len = strlen(text);

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
		int r = errno ? -errno : -EIO;
		(void)unlink(path);
		return r;
	}
	return 0;
}

static int audit_setup_keys_cmd(int argc, char *argv[])
{
	static const struct option options[] = {
	        {"output", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'}, {}};
	_cleanup_free_ char *trail = NULL, *key_path = NULL, *text = NULL, *dir = NULL;
	_cleanup_strv_free_ char **files = NULL;
	const char *output = NULL, *problem = NULL;
	AuditSealKey k = {};
	bool created = false;
	int c, r, ret = CTL_EXIT_ERROR;

	while ((c = getopt_long(argc, argv, "o:h", options, NULL)) >= 0) {
		switch (c) {
		case 'o':
			output = optarg;
			break;
		case 'h':
			setup_keys_help(stdout);
			return CTL_EXIT_OK;
		default:
			setup_keys_help(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		setup_keys_help(stderr);
		return CTL_EXIT_USAGE;
	}
	if (ctl_audit_paths(&trail, &key_path) < 0)
		return CTL_EXIT_ERROR;

	r = audit_seal_key_read(key_path, false, &k, &problem);
	if (r == -ENOENT) {
		struct stat st;
		/* keywardd refuses a new key for an existing trail; so do we. */
		if ((stat(trail, &st) == 0 && st.st_size > 0) ||
		        (audit_trail_files(trail, &files) >= 0 && strv_length(files) > 1)) {
			fprintf(stderr,
			        "keywardctl audit setup-keys: the trail %s exists but the seal key "
			        "%s does not: a new key cannot prove the old seals. Archive the "
			        "trail (move it and its rotated files aside) first.\n",
			        trail, key_path);
			return CTL_EXIT_FAILURE;
		}
		dir = strdup(key_path);
		if (!dir)
			return CTL_EXIT_ERROR;
		if (strrchr(dir, '/') && strrchr(dir, '/') != dir) {
			*strrchr(dir, '/') = '\0';
			(void)mkdir_parents(dir, 0700);
		}
		r = audit_seal_key_create(key_path, true, &k);
		if (r < 0) {
			fprintf(stderr, "keywardctl audit setup-keys: cannot create %s: %s\n",
			        key_path, strerror(-r));
			return CTL_EXIT_ERROR;
		}
		created = true;
	} else if (r < 0) {
		fprintf(stderr, "keywardctl audit setup-keys: the seal key %s %s (%s)\n", key_path,
		        strna(problem), strerror(-r));
		return CTL_EXIT_ERROR;
	} else if (k.epoch == AUDIT_SEAL_EPOCH_NONE) {
		fprintf(stderr,
		        "keywardctl audit setup-keys: %s is a legacy static seal key (not "
		        "forward-secure). Its seals stay verifiable with --key. To switch: stop "
		        "keywardd, archive the trail %s and the key, run setup-keys again, start "
		        "keywardd.\n",
		        key_path, trail);
		ret = CTL_EXIT_FAILURE;
		goto out;
	} else if (k.epoch > 0) {
		fprintf(stderr,
		        "keywardctl audit setup-keys: the seal key %s is at epoch %" PRIu64
		        ": its verification key (epoch 0) was erased when the first seal was "
		        "made, so it can no longer be exported. The trail so far can be checked "
		        "as a chain, and against anchors. For a provable trail: stop keywardd, "
		        "archive the trail %s and the key, run setup-keys again, start keywardd.\n",
		        key_path, k.epoch, trail);
		ret = CTL_EXIT_FAILURE;
		goto out;
	} else if (k.exported) {
		fprintf(stderr,
		        "keywardctl audit setup-keys: the verification key of %s was already "
		        "exported; it is shown only once.\n",
		        key_path);
		ret = CTL_EXIT_FAILURE;
		goto out;
	}

	k.exported = true;
	r = audit_seal_key_to_string(&k, &text);
	if (r < 0)
		goto out;
	if (output) {
		r = write_secret_file(output, text);
		if (r < 0) {
			fprintf(stderr, "keywardctl audit setup-keys: cannot write %s: %s\n",
			        output, strerror(-r));
			goto out;
		}
	}
	if (!created) {
		r = audit_seal_key_write(key_path, &k);
		if (r < 0) {
			fprintf(stderr, "keywardctl audit setup-keys: cannot update %s: %s\n",
			        key_path, strerror(-r));
			goto out;
		}
	}
	fprintf(output ? stdout : stderr,
	        "The forward-secure seal key is in %s (key id %s).\n"
	        "%s the VERIFICATION KEY. Store it OFF this machine, where the\n"
	        "compliance team keeps evidence (a password safe, a sealed envelope, the log\n"
	        "collector's vault), and delete every copy on this machine. It proves every seal\n"
	        "of the trail: keywardctl audit verify --verification-key FILE. It is shown only\n"
	        "once; without it, verify can only say NOT PROVEN.\n",
	        key_path, k.key_id, output ? "Written to the file given:" : "Below is");
	if (output)
		printf("  %s\n", output);
	else
		fputs(text, stdout);
	ret = CTL_EXIT_OK;
out:
	if (text)
		explicit_bzero(text, strlen(text));
	audit_seal_key_clear(&k);
	return ret;
}

static int audit_anchor_cmd(int argc, char *argv[])
{
	_cleanup_strv_free_ char **files = NULL;
	_cleanup_free_ char *line = NULL;
	AuditVerifyResult res = {};
	AuditAnchor a = {};
	int r;

	if (argc > 1 && (streq(argv[1], "-h") || streq(argv[1], "--help"))) {
		printf("Usage: keywardctl audit anchor [FILE...]\n\n"
		       "Prints the head of the trail's last seal as one line (host, epoch, seq,\n"
		       "file_seq, SHA-256 of the seal line). Store it off the machine; later\n"
		       "`audit verify --anchor LINE` detects a trail cut back or rolled back past "
		       "it.\n");
		return CTL_EXIT_OK;
	}
	r = ctl_audit_files(argv + 1, (size_t)(argc - 1), &files);
	if (r < 0)
		return CTL_EXIT_ERROR;
	r = audit_verify_files(files, NULL, &res);
	if (r < 0 || res.status != AUDIT_VERIFY_INTACT || res.last_seal_seq == 0) {
		char summary[1024];
		if (r >= 0 && res.status == AUDIT_VERIFY_INTACT)
			fprintf(stderr, "keywardctl audit anchor: the trail holds no seal\n");
		else {
			ctl_audit_verdict(r, &res, summary, sizeof(summary));
			fprintf(stderr,
			        "keywardctl audit anchor: no anchor for a broken trail: %s\n",
			        summary);
		}
		audit_verify_result_clear(&res);
		return r < 0 ? CTL_EXIT_ERROR : CTL_EXIT_FAILURE;
	}
	a.epoch = res.last_seal_epoch;
	a.seq = res.last_seal_seq;
	a.file_seq = res.last_seal_file_seq;
	memcpy(a.hash, res.last_seal_hash, sizeof(a.hash));
	snprintf(a.host, sizeof(a.host), "%s", res.last_seal_host);
	snprintf(a.key_id, sizeof(a.key_id), "%s", res.last_seal_key_id);
	audit_verify_result_clear(&res);
	if (audit_anchor_format(&a, &line) < 0)
		return CTL_EXIT_ERROR;
	printf("%s\n", line);
	return CTL_EXIT_OK;
}

typedef struct ShowFilter {
	const char *user;
	AuditEvent event;
	int result; /* -1: any */
	uint64_t since, until;
	bool json;
	uint64_t shown;
} ShowFilter;

static bool ctl_audit_match(
        const AuditEntry *e, const char *user, int event, uint64_t since, uint64_t until)
{
	if (user && (!e->user || !streq(e->user, user)))
		return false;
	if (event >= 0 && (int)e->event != event)
		return false;
	if (since && e->time_ms < since)
		return false;
	if (until && e->time_ms >= until)
		return false;
	return true;
}

static void print_cell(const char *s, int width)
{
	int n = 0;

	for (const char *p = strempty(s); *p && (width == 0 || n < width); p++, n++)
		putchar((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
	if (!s || !*s)
		putchar('-'), n++;
	for (; width > 0 && n < width + 1; n++)
		putchar(' ');
}

static int show_one(const AuditEntry *e, const char *file, uint64_t line, void *userdata)
{
	ShowFilter *f = userdata;
	char t[32];

	if (!ctl_audit_match(e, f->user, f->event, f->since, f->until))
		return 0;
	if (f->result >= 0 && (int)e->result != f->result)
		return 0;
	if (f->json) {
		JsonBuf b = {};
		const struct {
			const char *k, *v;
		} kv[] = {{"file", file}, {"time", e->time}, {"host", e->host},
		        {"event", audit_event_to_string(e->event)},
		        {"result", audit_result_to_string(e->result)}, {"reason", e->reason},
		        {"message", e->message}, {"user", e->user}, {"service", e->service},
		        {"tty", e->tty}, {"rhost", e->rhost}, {"cred_label", e->cred_label},
		        {"cred_id", e->cred_id}, {"aaguid", e->aaguid}, {"device", e->device},
		        {"rule", e->rule}, {"session", e->session}, {"action", e->action},
		        {"detail", e->detail}, {"actor", e->actor}, {"actor_login", e->actor_login},
		        {"actor_session", e->actor_session}, {"actor_tty", e->actor_tty},
		        {"spooled", e->spooled}, {"spool_id", e->spool_id}};

		json_buf_printf(&b, "{\"line\":%" PRIu64 ",\"seq\":%" PRIu64, line, e->seq);
		if (e->uid >= 0)
			json_buf_printf(&b, ",\"uid\":%" PRId64, e->uid);
		if (e->actor_uid >= 0)
			json_buf_printf(&b, ",\"actor_uid\":%" PRId64, e->actor_uid);
		if (e->actor_loginuid >= 0)
			json_buf_printf(&b, ",\"actor_loginuid\":%" PRId64, e->actor_loginuid);
		for (size_t i = 0; i < ELEMENTSOF(kv); i++) {
			if (!kv[i].v)
				continue;
			json_buf_printf(&b, ",\"%s\":", kv[i].k);
			json_buf_put_string(&b, kv[i].v, SIZE_MAX);
		}
		json_buf_puts(&b, "}\n");
		if (b.oom) {
			json_buf_free(&b);
			return -ENOMEM;
		}
		fputs(b.data, stdout);
		json_buf_free(&b);
	} else {
		snprintf(t, sizeof(t), "%.19s", strempty(e->time));
		if (strlen(t) > 10)
			t[10] = ' ';
		printf("%-19s %8" PRIu64 " ", t, e->seq);
		print_cell(audit_event_to_string(e->event), 15);
		print_cell(audit_result_to_string(e->result), 7);
		print_cell(e->user, 12);
		print_cell(e->service, 12);
		print_cell(e->reason, 18);
		{
			char more[256];
			snprintf(more, sizeof(more), "%s%s%s%s%s%s", e->cred_label ? "key=" : "",
			        strempty(e->cred_label), e->session ? " session=" : "",
			        strempty(e->session), e->action ? " action=" : "",
			        strempty(e->action));
			print_cell(more[0] == ' ' ? more + 1 : more, 0);
		}
		putchar('\n');
	}
	f->shown++;
	return 0;
}

static void show_help(FILE *f)
{
	fprintf(f,
	        "Usage: keywardctl audit show [--user U] [--event E] [--result R] [--since T]\n"
	        "                             [--until T] [--json] [FILE...]\n\n"
	        "Prints the trail's records that match, oldest first. T is RFC 3339 or a date\n"
	        "(2026-11-27, 2026-11-27T07:00:00Z). FILE default: the policy's audit_log and its\n"
	        "rotated files. Malformed lines are skipped and counted (use audit verify).\n");
}

static int audit_show_cmd(int argc, char *argv[])
{
	static const struct option options[] = {{"user", required_argument, NULL, 'u'},
	        {"event", required_argument, NULL, 'e'}, {"result", required_argument, NULL, 'r'},
	        {"since", required_argument, NULL, 'S'}, {"until", required_argument, NULL, 'U'},
	        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {}};
	ShowFilter f = {.event = _AUDIT_EVENT_INVALID, .result = -1};
	_cleanup_strv_free_ char **files = NULL;
	uint64_t bad = 0;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case 'u':
			f.user = optarg;
			break;
		case 'e':
			f.event = audit_event_from_string(optarg);
			if (f.event < 0) {
				fprintf(stderr, "keywardctl audit show: unknown event '%s'\n",
				        optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		case 'r':
			f.result = audit_result_from_string(optarg);
			if (f.result < 0) {
				fprintf(stderr,
				        "keywardctl audit show: unknown result '%s' (success, "
				        "failure, info)\n",
				        optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		case 'S':
		case 'U':
			if (parse_rfc3339_ms(optarg, c == 'S' ? &f.since : &f.until) < 0) {
				fprintf(stderr,
				        "keywardctl audit show: '%s' is not a date or RFC 3339 "
				        "time\n",
				        optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		case 'j':
			f.json = true;
			break;
		case 'h':
			show_help(stdout);
			return CTL_EXIT_OK;
		default:
			show_help(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	r = ctl_audit_files(argv + optind, (size_t)(argc - optind), &files);
	if (r < 0)
		return CTL_EXIT_ERROR;
	if (!f.json)
		printf("%-19s %8s %-15s %-7s %-12s %-12s %-18s %s\n", "TIME (UTC)", "SEQ", "EVENT",
		        "RESULT", "USER", "SERVICE", "REASON", "DETAILS");
	r = audit_read_files(files, show_one, &f, &bad);
	if (r < 0) {
		fprintf(stderr, "keywardctl audit show: cannot read the trail: %s\n", strerror(-r));
		return CTL_EXIT_ERROR;
	}
	if (!f.json && !ctl_global.quiet)
		printf("\n%" PRIu64 " record(s) shown.\n", f.shown);
	if (bad > 0)
		fprintf(stderr,
		        "keywardctl audit show: %" PRIu64
		        " malformed line(s) skipped; run keywardctl audit verify\n",
		        bad);
	return CTL_EXIT_OK;
}

static void audit_help(FILE *f)
{
	fprintf(f,
	        "Usage: keywardctl audit verify [--verification-key FILE | --key FILE | --no-key]\n"
	        "                               [--anchor L|F] [--anchor-journal F|D] [--strict] "
	        "[FILE...]\n"
	        "       keywardctl audit setup-keys [--output FILE]\n"
	        "       keywardctl audit anchor [FILE...]\n"
	        "       keywardctl audit show [--user U] [--event E] [--since T] [--until T] "
	        "[--json] [FILE...]\n\n"
	        "See docs/audit.md for the record format and what verify can and cannot detect.\n");
}

int verb_audit(int argc, char *argv[])
{
	if (argc < 2) {
		audit_help(stderr);
		return CTL_EXIT_USAGE;
	}
	if (streq(argv[1], "verify"))
		return audit_verify_cmd(argc - 1, argv + 1);
	if (streq(argv[1], "show"))
		return audit_show_cmd(argc - 1, argv + 1);
	if (streq(argv[1], "setup-keys"))
		return audit_setup_keys_cmd(argc - 1, argv + 1);
	if (streq(argv[1], "anchor"))
		return audit_anchor_cmd(argc - 1, argv + 1);
	if (streq(argv[1], "-h") || streq(argv[1], "--help")) {
		audit_help(stdout);
		return CTL_EXIT_OK;
	}
	fprintf(stderr,
	        "keywardctl audit: unknown command '%s' (verify, show, setup-keys, anchor)\n",
	        argv[1]);
	return CTL_EXIT_USAGE;
}
