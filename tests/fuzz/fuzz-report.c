/* fuzz-report.c: libFuzzer target for `keywardctl report` (tools/ctl-report.c): the input
 * is an audit trail (user names, rhosts and reasons in it are chosen by whoever logs in);
 * every format is written and checked: text without control characters, JSON that parses,
 * CSV whose cells never start a formula, HTML with only the report's own tags. The
 * accounts are a fixed table (below), not the host's. */
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_INPUT (64 * 1024)

/* keywardctl.c is not linked (it has main()): the global options it would set. */
CtlGlobal ctl_global = {.config_path = "/etc/keyward/keyward.conf"};

static char root[256], trail[300];
static int out_fd = -EBADF;

static const char policy[] =
        "settings = { rp_id = \"pam://keyward\"; };\n"
        "rules = (\n"
        "  { name = \"admins\"; match = { groups = [\"root\", \"sudo\"];\n"
        "    services = [\"sudo\", \"login\"]; }; require = \"key\"; },\n"
        "  { name = \"no-nobody\"; match = { users = [\"nobody\"]; }; require = \"deny\";\n"
        "    reason = \"no\"; }\n"
        ");\n"
        "default = { require = \"none\"; };\n";

static const char root_creds[] =
        "[credential]\n"
        "label=yubi-1\n"
        "id=AAECAwQFBgc=\n"
        "rp_id=pam://keyward\n"
        "alg=es256\n"
        "public_key=QMQcqZ5r4799hWDVgEnxoc9KlvCioNiyxLQgLaTthmorcdH70dvHIkQ7T8289qKXZ/X7+"
        "DXAdxbHph/V7gJ9nA==\n"
        "user_id=dXNlcg==\n"
        "aaguid=cb69481e-8ff7-4039-93ec-0a2729a154a8\n"
        "attestation=verified\n"
        "resident=no\n"
        "up=yes\n"
        "uv=yes\n"
        "created=2026-11-27T07:24:12.123Z\n";

static void die(const char *what)
{
	perror(what);
	abort();
}

static void write_at(const char *path, const void *data, size_t size, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size) || close(fd) < 0)
		die(path);
}

static void in_root(const char *rel, const char *text, mode_t mode)
{
	char path[512];

	snprintf(path, sizeof(path), "%s%s", root, rel);
	if (!text) {
		if (mkdir(path, mode) < 0)
			die(path);
	} else
		write_at(path, text, strlen(text), mode);
}

static void rm_tree(void)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz-report: could not remove %s\n", root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(root, sizeof(root), "%s/fuzz-report.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root))
		die("mkdtemp");
	in_root("/etc", NULL, 0755);
	in_root("/etc/keyward", NULL, 0755);
	in_root("/etc/keyward/keyward.conf", policy, 0644);
	in_root("/etc/keyward/credentials", NULL, 0700);
	in_root("/etc/keyward/credentials/root.creds", root_creds, 0600);
	in_root("/etc/keyward/credentials/ghost.creds", "[credential]\nbroken\n", 0600);
	in_root("/etc/pam.d", NULL, 0755);
	in_root("/etc/pam.d/sudo", "auth required pam_keyward.so\n@include common-auth\n", 0644);
	in_root("/etc/pam.d/login", "auth [default=die] pam_keyward.so\n", 0644);
	in_root("/etc/pam.d/common-auth", "auth required pam_unix.so\n", 0644);
	snprintf(trail, sizeof(trail), "%s/audit.log", root);
	/* The report goes to stdout: a memfd stands in for it. */
	out_fd = memfd_create("fuzz-report", MFD_CLOEXEC);
	if (out_fd < 0)
		die("memfd_create");
	atexit(rm_tree);
	return 0;
}

/* ---- a fixed account database ----
 * The report walks every account (getpwent) and its groups. The host's NSS (systemd-userdb,
 * LDAP, ...) would make the target slow and its coverage depend on the machine, so these
 * definitions stand in for glibc's (the executable's symbols win). */

static struct passwd fake_users[] = {
        {(char *)"root", (char *)"x", 0, 0, (char *)"", (char *)"/root", (char *)"/bin/sh"},
        {(char *)"daemon", (char *)"x", 1, 1, (char *)"", (char *)"/", (char *)"/bin/false"},
        {(char *)"alice", (char *)"x", 1000, 1000, (char *)"", (char *)"/home/alice",
                (char *)"/bin/sh"},
        {(char *)"bob", (char *)"x", 1001, 1001, (char *)"", (char *)"/home/bob",
                (char *)"/bin/sh"},
        {(char *)"Bad User", (char *)"x", 1002, 1001, (char *)"", (char *)"/", (char *)"/bin/sh"},
        {(char *)"nobody", (char *)"x", 65534, 65534, (char *)"", (char *)"/",
                (char *)"/bin/false"},
};
static const struct {
	gid_t gid;
	const char *name;
} fake_groups[] = {{0, "root"}, {1, "daemon"}, {27, "sudo"}, {1000, "alice"}, {1001, "bob"},
        {65534, "nogroup"}};
static size_t fake_pw_next;

void setpwent(void)
{
	fake_pw_next = 0;
}

void endpwent(void)
{
	fake_pw_next = 0;
}

struct passwd *getpwent(void)
{
	return fake_pw_next < ELEMENTSOF(fake_users) ? &fake_users[fake_pw_next++] : NULL;
}

struct passwd *getpwnam(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(fake_users); i++)
		if (streq(fake_users[i].pw_name, name))
			return &fake_users[i];
	return NULL;
}

int getgrouplist(const char *user, gid_t group, gid_t *groups, int *ngroups)
{
	gid_t l[2] = {group, 27};
	int n = streq(user, "alice") ? 2 : 1, room = *ngroups;

	*ngroups = n;
	if (room < n)
		return -1;
	memcpy(groups, l, (size_t)n * sizeof(gid_t));
	return n;
}

int getgrgid_r(gid_t gid, struct group *grp, char *buf, size_t buflen, struct group **result)
{
	*result = NULL;
	for (size_t i = 0; i < ELEMENTSOF(fake_groups); i++)
		if (fake_groups[i].gid == gid) {
			if (strlen(fake_groups[i].name) + 1 + sizeof(char *) > buflen)
				return ERANGE;
			*grp = (struct group){.gr_name = buf,
			        .gr_passwd = (char *)"x",
			        .gr_gid = gid,
			        .gr_mem = (char **)(buf + buflen - sizeof(char *))};
			strcpy(buf, fake_groups[i].name);
			grp->gr_mem[0] = NULL;
			*result = grp;
			return 0;
		}
	return 0;
}

/* ---- checks on the output ---- */

static bool utf8_valid(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3, cp = c & 0x07;
		else
			return false;
		for (size_t j = 1; j <= k; j++) {
			if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		        (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += k + 1;
	}
	return true;
}

typedef struct Json {
	const char *p, *end;
	unsigned depth;
} Json;

static bool json_value(Json *j);

static void json_ws(Json *j)
{
	while (j->p < j->end && strchr(" \t\r\n", *j->p) && *j->p)
		j->p++;
}

static bool json_lit(Json *j, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return false;
	j->p += n;
	return true;
}

static bool json_string(Json *j)
{
	if (j->p >= j->end || *j->p != '"')
		return false;
	for (j->p++; j->p < j->end; j->p++) {
		unsigned char c = (unsigned char)*j->p;

		if (c == '"') {
			j->p++;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c == '\\') {
			if (++j->p >= j->end)
				return false;
			if (*j->p == 'u') {
				for (int i = 0; i < 4; i++)
					if (++j->p >= j->end || hex_digit_value(*j->p) < 0)
						return false;
			} else if (!strchr("\"\\/bfnrt", *j->p) || !*j->p)
				return false;
		}
	}
	return false;
}

static bool json_number(Json *j)
{
	const char *start = j->p;

	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p >= j->end || *j->p < '0' || *j->p > '9')
		return false;
	if (*j->p == '0')
		j->p++;
	else
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return false;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	return j->p > start;
}

static bool json_container(Json *j, char open, char close)
{
	bool first = true;

	if (++j->depth > 64)
		return false;
	j->p++; /* open */
	for (;;) {
		json_ws(j);
		if (j->p < j->end && *j->p == close && first) {
			j->p++;
			break;
		}
		if (!first) {
			if (j->p < j->end && *j->p == close) {
				j->p++;
				break;
			}
			if (j->p >= j->end || *j->p != ',')
				return false;
			j->p++;
			json_ws(j);
		}
		first = false;
		if (open == '{') {
			if (!json_string(j))
				return false;
			json_ws(j);
			if (j->p >= j->end || *j->p != ':')
				return false;
			j->p++;
		}
		if (!json_value(j))
			return false;
	}
	j->depth--;
	return true;
}

static bool json_value(Json *j)
{
	json_ws(j);
	if (j->p >= j->end)
		return false;
	switch (*j->p) {
	case '{':
		return json_container(j, '{', '}');
	case '[':
		return json_container(j, '[', ']');
	case '"':
		return json_string(j);
	case 't':
		return json_lit(j, "true");
	case 'f':
		return json_lit(j, "false");
	case 'n':
		return json_lit(j, "null");
	default:
		return json_number(j);
	}
}

static void check_json(const char *out, size_t n)
{
	Json j = {out, out + n, 0};

	if (!json_value(&j))
		abort();
	json_ws(&j);
	if (j.p != j.end)
		abort();
}

/* No control character from the trail reaches the terminal: C0, DEL, nor C1 (U+0080 to
 * U+009F, e.g. U+009B CSI, which terminals that honour C1 take as an escape sequence). */
static void check_text(const char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];

		if ((c < 0x20 && c != '\n') || c == 0x7f)
			abort();
		if (c == 0xc2 && i + 1 < n && (unsigned char)out[i + 1] >= 0x80 &&
		        (unsigned char)out[i + 1] <= 0x9f)
			abort();
	}
}

/* RFC 4180 records, CRLF-terminated, blank lines between the tables: no cell may start
 * with what a spreadsheet runs as a formula. */
static void check_csv(const char *out, size_t n)
{
	size_t i = 0;

	while (i < n) {
		for (;;) {
			char first = 0;

			if (i < n && out[i] == '"') {
				for (i++;; i++) {
					if (i >= n)
						abort();
					if (out[i] == '"') {
						if (i + 1 < n && out[i + 1] == '"') {
							if (!first)
								first = '"';
							i++;
							continue;
						}
						i++;
						break;
					}
					if (!first)
						first = out[i];
				}
			} else
				for (; i < n && out[i] != ',' && out[i] != '\r' && out[i] != '\n';
				        i++) {
					if (out[i] == '"')
						abort();
					if (!first)
						first = out[i];
				}
			if (first && strchr("=+-@\t\r", first))
				abort();
			if (i < n && out[i] == ',') {
				i++;
				continue;
			}
			break;
		}
		if (i + 1 >= n || out[i] != '\r' || out[i + 1] != '\n')
			abort();
		i += 2;
	}
}

/* Only the tags the report writes itself. */
static void check_html(const char *out, size_t n)
{
	static const char *const tags[] = {"!DOCTYPE", "html", "head", "meta", "title", "style",
	        "body", "h1", "h2", "section", "p", "b", "span", "ul", "li", "table", "tr", "th",
	        "td", "svg", "rect", "line", "text"};

	for (const char *p = memchr(out, '<', n); p; p = memchr(p + 1, '<', out + n - p - 1)) {
		const char *name = p + 1;
		size_t len;
		bool ok = false;

		if (name < out + n && *name == '/')
			name++;
		len = strspn(
		        name, "!ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
		if (name + len >= out + n || !strchr(" >/\n", name[len]))
			abort();
		for (size_t i = 0; i < ELEMENTSOF(tags); i++)
			ok = ok || (strlen(tags[i]) == len && strneq(tags[i], name, len));
		if (!ok)
			abort();
	}
}

/* ---- the target ---- */

static const char *const formats[] = {"text", "json", "csv", "html"};

static void run_report(size_t format, uint8_t period, bool hosts)
{
	char *argv[16], host_a[300], host_b[320];
	int argc = 0, rc, saved;
	struct stat st;
	char *out;

	argv[argc++] = (char *)"report";
	argv[argc++] = (char *)"--format";
	argv[argc++] = (char *)formats[format];
	if (!hosts) {
		argv[argc++] = (char *)"--root";
		argv[argc++] = root;
	}
	if (period & 1) {
		argv[argc++] = (char *)"--since";
		argv[argc++] = (char *)"2026-11-27T07:00:00Z";
	}
	if (period & 2) {
		argv[argc++] = (char *)"--until";
		argv[argc++] = (char *)"2026-11-28";
	}
	if (hosts) {
		/* The multi-host form (tools/ctl-report-hosts.c): the trail as a host's
		 * directory and as a file, two hosts, no key (unverifiable). */
		snprintf(host_a, sizeof(host_a), "a=%s", root);
		snprintf(host_b, sizeof(host_b), "b.example=%s", trail);
		argv[argc++] = (char *)"--host";
		argv[argc++] = host_a;
		argv[argc++] = (char *)"--host";
		argv[argc++] = host_b;
	} else {
		argv[argc++] = (char *)"--audit";
		argv[argc++] = trail;
	}
	argv[argc] = NULL;

	if (ftruncate(out_fd, 0) < 0 || lseek(out_fd, 0, SEEK_SET) < 0)
		die("memfd");
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	if (saved < 0 || dup2(out_fd, STDOUT_FILENO) < 0)
		die("dup2");
	optind = 0; /* glibc: start getopt afresh */
	rc = verb_report(argc, argv);
	fflush(stdout);
	if (dup2(saved, STDOUT_FILENO) < 0 || close(saved) < 0)
		die("dup2");

	if (rc == CTL_EXIT_USAGE)
		abort();
	if (rc == CTL_EXIT_ERROR)
		return;
	if (fstat(out_fd, &st) < 0)
		die("fstat");
	out = malloc((size_t)st.st_size + 1);
	if (!out || pread(out_fd, out, (size_t)st.st_size, 0) != st.st_size)
		die("pread");
	out[st.st_size] = '\0';
	if (strlen(out) != (size_t)st.st_size)
		abort(); /* a NUL in the report */
	switch (format) {
	case 0:
		check_text(out, (size_t)st.st_size);
		break;
	case 1:
		/* audit-json.h: valid UTF-8 out, always. */
		if (!utf8_valid((unsigned char *)out, (size_t)st.st_size))
			abort();
		check_json(out, (size_t)st.st_size);
		break;
	case 2:
		check_csv(out, (size_t)st.st_size);
		break;
	default:
		check_html(out, (size_t)st.st_size);
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MAX_INPUT)
		return 0;
	write_at(trail, data, size, 0600);
	/* A first line of one letter (t, j, c or h: a malformed trail line) asks for that
	 * format only, which is four times faster; H asks for the multi-host form (--host
	 * NAME=DIR ... instead of --root/--audit) in all four; any other input is written in
	 * all four. */
	bool hosts = size >= 2 && data[0] == 'H' && data[1] == '\n';
	if (size >= 2 && data[1] == '\n')
		for (size_t f = 0; f < ELEMENTSOF(formats); f++)
			if (data[0] == formats[f][0]) {
				run_report(f, (uint8_t)(size % 4), false);
				return 0;
			}
	for (size_t f = 0; f < ELEMENTSOF(formats); f++)
		run_report(f, (uint8_t)(size % 4), hosts);
	return 0;
}
