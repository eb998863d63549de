/* ctl-audit.c: `keywardctl audit verify` (hash chain and seals of the trail) and
 * `keywardctl audit show` (filtered, readable view of the records). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit-json.h"
#include "audit.h"
#include "ctl.h"
#include "keyward-config.h"
#include "policy.h"
#include "util.h"

int ctl_audit_paths(char **ret_trail, char **ret_key)
{
	PolicyDiagnostics diags = {};
	_cleanup_(policy_freep) Policy *p = NULL;
	_cleanup_free_ char *trail = NULL, *key = NULL;
	const char *state_dir = KEYWARD_DEFAULT_STATE_DIR, *log = KEYWARD_DEFAULT_AUDIT_LOG;
	int r;

	if (access(ctl_global.config_path, F_OK) == 0 ||
	        !streq(ctl_global.config_path, KEYWARD_DEFAULT_CONFIG)) {
		r = policy_load_file(ctl_global.config_path, &diags, &p);
		for (size_t i = 0; i < diags.n; i++)
			if (diags.items[i].severity == POLICY_SEVERITY_ERROR)
				fprintf(stderr, "%s:%u: error: %s\n", strna(diags.items[i].file),
				        diags.items[i].line, strna(diags.items[i].message));
		policy_diagnostics_clear(&diags);
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

static void verify_help(FILE *f)
{
	fprintf(f,
	        "Usage: keywardctl audit verify [--key FILE | --no-key] [--strict] [FILE...]\n\n"
	        "Checks the audit trail's hash chain and its HMAC seals. FILEs are checked as one\n"
	        "chain, in the order given; default: the policy's audit_log and its rotated "
	        "files.\n"
	        "The seal key is root-only: run as root, or pass a copy with --key.\n\n"
	        "  --key FILE  the seal key (default: <state_dir>/" AUDIT_SEAL_KEY_FILENAME ")\n"
	        "  --no-key    check the chain only; seals are NOT verified (weaker)\n"
	        "  --strict    the trail must end with a seal (archived trail, stopped daemon)\n\n"
	        "Exit: 0 intact, 1 tampered (first bad record named), 2 usage, 3 cannot read.\n");
}

static int audit_verify_cmd(int argc, char *argv[])
{
	static const struct option options[] = {{"key", required_argument, NULL, 'k'},
	        {"no-key", no_argument, NULL, 'n'}, {"strict", no_argument, NULL, 's'},
	        {"help", no_argument, NULL, 'h'}, {}};
	_cleanup_strv_free_ char **files = NULL;
	_cleanup_free_ char *default_key = NULL;
	const char *key_path = NULL, *problem = NULL;
	uint8_t key[AUDIT_SEAL_KEY_SIZE];
	AuditVerifyOptions o = {};
	AuditVerifyResult res = {};
	bool no_key = false;
	int c, r, ret;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case 'k':
			key_path = optarg;
			break;
		case 'n':
			no_key = true;
			break;
		case 's':
			o.strict = true;
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
	r = ctl_audit_files(argv + optind, (size_t)(argc - optind), &files);
	if (r < 0)
		return r == -ENOMEM ? CTL_EXIT_ERROR : CTL_EXIT_ERROR;
	if (!no_key) {
		if (!key_path) {
			r = ctl_audit_paths(NULL, &default_key);
			if (r < 0)
				return CTL_EXIT_ERROR;
			key_path = default_key;
		}
		r = audit_seal_key_load(key_path, false, key, &problem);
		if (r < 0) {
			fprintf(stderr,
			        "keywardctl audit verify: the seal key %s %s (%s).\n"
			        "Run as root, pass a copy with --key FILE, or use --no-key to "
			        "check the chain only.\n",
			        key_path, strna(problem), strerror(-r));
			return CTL_EXIT_ERROR;
		}
		o.key = key;
	}

	r = audit_verify_files(files, &o, &res);
	explicit_bzero(key, sizeof(key));
	if (r < 0) {
		fprintf(stderr, "keywardctl audit verify: cannot read %s: %s\n", strna(res.file),
		        strerror(-r));
		audit_verify_result_clear(&res);
		return CTL_EXIT_ERROR;
	}
	if (res.status != AUDIT_VERIFY_INTACT) {
		if (res.line > 0)
			printf("%s:%" PRIu64 ": TAMPERED (%s): %s\n", strna(res.file), res.line,
			        audit_verify_status_to_string(res.status), strna(res.message));
		else
			printf("%s: TAMPERED (%s): %s\n", strna(res.file),
			        audit_verify_status_to_string(res.status), strna(res.message));
		ret = CTL_EXIT_FAILURE;
	} else {
		if (!ctl_global.quiet) {
			printf("files:          %" PRIu64 " (%s)\n", res.files,
			        res.first_file_seq == 1 ? "chain starts at the genesis file"
			                                : "chain starts at a rotated file; earlier "
			                                  "files not checked");
			printf("records:        %" PRIu64 " (seq %" PRIu64 "..%" PRIu64 ")\n",
			        res.records, res.first_seq, res.last_seq);
			printf("seals:          %" PRIu64 " %s\n", res.seals,
			        o.key ? "verified" : "NOT verified (--no-key)");
			printf("unsealed tail:  %" PRIu64 " record(s) after the last seal%s\n",
			        res.unsealed_tail,
			        res.unsealed_tail ? " (chained, but not yet protected by a seal)"
			                          : "");
			if (res.torn_acknowledged)
				printf("torn lines:     %" PRIu64
				       " (crash during a write, acknowledged by torn-tail "
				       "records)\n",
				        res.torn_acknowledged);
		}
		printf("INTACT%s\n", o.key ? "" : " (chain only: seals not verified)");
		ret = CTL_EXIT_OK;
	}
	audit_verify_result_clear(&res);
	return ret;
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
	        "Usage: keywardctl audit verify [--key FILE] [--strict] [FILE...]\n"
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
	if (streq(argv[1], "-h") || streq(argv[1], "--help")) {
		audit_help(stdout);
		return CTL_EXIT_OK;
	}
	fprintf(stderr, "keywardctl audit: unknown command '%s' (verify, show)\n", argv[1]);
	return CTL_EXIT_USAGE;
}
