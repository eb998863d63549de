/* testbed-ctl.c: the live control socket of keyward-testbed (one request line in, "ok" or
 * "error TEXT" plus output lines back) and its client, `keyward-testbed ctl`. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <glib-unix.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "testbed.h"
#include "util.h"

typedef struct CtlConn {
	Testbed *t;
	int fd;
	char buf[TESTBED_CTL_LINE_MAX];
	size_t len;
} CtlConn;

typedef int (*CtlVerbFn)(Testbed *t, char **args, GString *out, GString *err);

static int parse_key(Testbed *t, const char *s, TestbedKey **ret, GString *err)
{
	guint64 v;

	if (!s || !g_ascii_string_to_unsigned(s, 10, 0, TESTBED_MAX_KEYS - 1, &v, NULL) ||
	        v >= t->n_keys) {
		if (t->n_keys == 0)
			g_string_printf(
			        err, "no key '%s' (there are no keys; see plug-new)", strempty(s));
		else
			g_string_printf(
			        err, "no key '%s' (keys are 0..%u)", strempty(s), t->n_keys - 1);
		return -ENOENT;
	}
	*ret = t->keys[v];
	return 0;
}

static int verb_unplug(Testbed *t, char **args, GString *out, GString *err)
{
	TestbedKey *k;
	uint64_t emitted_ns = 0;
	int r = parse_key(t, args[0], &k, err);

	if (r < 0)
		return r;
	r = testbed_key_unplug(t, k, &emitted_ns);
	if (r == -EALREADY)
		g_string_printf(err, "key %u is not plugged in", k->index);
	else if (r >= 0)
		/* the emitter's clock, for bench/removal's t0 */
		g_string_printf(out, "remove_uevent_ns=%" PRIu64 "\n", emitted_ns);
	return r;
}

static int verb_plug(Testbed *t, char **args, GString *out, GString *err)
{
	TestbedKey *k;
	int r = parse_key(t, args[0], &k, err);

	if (r < 0)
		return r;
	r = testbed_key_plug(t, k);
	if (r == -EALREADY)
		g_string_printf(err, "key %u is already plugged in", k->index);
	else if (r < 0)
		g_string_printf(err, "cannot plug key %u: %s", k->index, strerror(-r));
	else
		testbed_key_describe(k, out);
	return r;
}

static int verb_plug_new(Testbed *t, char **args, GString *out, GString *err)
{
	uint8_t aaguid[16];
	TestbedKey *k;
	int r;

	memcpy(aaguid, t->aaguid, 16);
	if (args[0] && parse_aaguid(args[0], aaguid) < 0) {
		g_string_printf(err, "invalid AAGUID '%s'", args[0]);
		return -EINVAL;
	}
	r = testbed_key_add(t, aaguid, &k);
	if (r < 0) {
		g_string_printf(err, "cannot create a new key: %s", strerror(-r));
		return r;
	}
	r = testbed_key_plug(t, k);
	if (r < 0) {
		g_string_printf(err, "cannot plug key %u: %s", k->index, strerror(-r));
		return r;
	}
	testbed_key_describe(k, out);
	return 0;
}

static int verb_touch_mode(Testbed *t, char **args, GString *out, GString *err)
{
	TestbedKey *k;
	VirtKeyTouch mode;
	guint64 delay;
	int r = parse_key(t, args[0], &k, err);

	if (r < 0)
		return r;
	mode = args[1] ? virtkey_touch_from_string(args[1]) : _VIRTKEY_TOUCH_INVALID;
	if (mode < 0) {
		g_string_printf(err, "touch mode must be auto, never or deny");
		return -EINVAL;
	}
	delay = k->touch_delay_ms;
	if (args[1] && args[2] &&
	        !g_ascii_string_to_unsigned(args[2], 10, 0, 600000, &delay, NULL)) {
		g_string_printf(err, "invalid delay '%s' (milliseconds, at most 600000)", args[2]);
		return -EINVAL;
	}
	testbed_key_set_touch(k, mode, (uint32_t)delay);
	return 0;
}

static int verb_counter_mode(Testbed *t, char **args, GString *out, GString *err)
{
	VirtKeyCounter mode;
	TestbedKey *k;
	int r = parse_key(t, args[0], &k, err);

	if (r < 0)
		return r;
	mode = virtkey_counter_from_string(args[1]);
	if (mode < 0) {
		g_string_printf(err, "counter mode must be normal, zero or rewound");
		return -EINVAL;
	}
	testbed_key_set_counter(k, mode);
	return 0;
}

static int verb_list(Testbed *t, char **args, GString *out, GString *err)
{
	for (unsigned i = 0; i < t->n_keys; i++)
		testbed_key_describe(t->keys[i], out);
	return 0;
}

static const struct {
	const char *name;
	unsigned min_args, max_args;
	CtlVerbFn fn;
} ctl_verbs[] = {
        {"unplug", 1, 1, verb_unplug},
        {"plug", 1, 1, verb_plug},
        {"plug-new", 0, 1, verb_plug_new},
        {"touch-mode", 2, 3, verb_touch_mode},
        {"counter-mode", 2, 2, verb_counter_mode},
        {"list", 0, 0, verb_list},
};

static void ctl_handle_line(Testbed *t, char *line, GString *reply)
{
	g_auto(GStrv) words = NULL;
	g_autoptr(GString) out = g_string_new(NULL), err = g_string_new(NULL);
	unsigned n;

	g_strstrip(line);
	words = g_strsplit_set(line, " \t", -1);
	/* drop empty words from repeated blanks */
	n = 0;
	for (unsigned i = 0; words[i]; i++) {
		if (*words[i])
			words[n++] = words[i];
		else
			g_free(words[i]);
	}
	words[n] = NULL;

	if (n == 0) {
		g_string_assign(reply, "error empty request\n");
		return;
	}
	for (size_t i = 0; i < ELEMENTSOF(ctl_verbs); i++) {
		if (!streq(words[0], ctl_verbs[i].name))
			continue;
		if (n - 1 < ctl_verbs[i].min_args || n - 1 > ctl_verbs[i].max_args) {
			g_string_printf(
			        reply, "error wrong number of arguments for %s\n", words[0]);
			return;
		}
		if (ctl_verbs[i].fn(t, words + 1, out, err) < 0) {
			g_string_printf(reply, "error %s\n", err->len ? err->str : "failed");
			return;
		}
		g_string_printf(reply, "ok\n%s", out->str);
		return;
	}
	g_string_printf(reply, "error unknown request '%s'\n", words[0]);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static gboolean on_conn(gint fd, GIOCondition cond, gpointer userdata)
{
	CtlConn *c = userdata;
	g_autoptr(GString) reply = NULL;
	char *nl;
	ssize_t r;

	r = read(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return G_SOURCE_CONTINUE;
	if (r > 0)
		c->len += (size_t)r;
	c->buf[c->len] = 0;
	nl = strchr(c->buf, '\n');
	if (!nl && r > 0 && c->len < sizeof(c->buf) - 1)
		return G_SOURCE_CONTINUE;

	reply = g_string_new(NULL);
	if (!nl && c->len >= sizeof(c->buf) - 1)
		g_string_assign(reply, "error request too long\n");
	else {
		if (nl)
			*nl = 0;
		ctl_handle_line(c->t, c->buf, reply);
	}
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	write_all(fd, reply->str, reply->len);
	close(fd);
	g_free(c);
	return G_SOURCE_REMOVE;
}

static gboolean on_accept(gint fd, GIOCondition cond, gpointer userdata)
{
	Testbed *t = userdata;
	int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	CtlConn *c;

	if (cfd < 0)
		return G_SOURCE_CONTINUE;
	c = g_new0(CtlConn, 1);
	c->t = t;
	c->fd = cfd;
	g_unix_fd_add(cfd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_conn, c);
	return G_SOURCE_CONTINUE;
}

static int make_addr(const char *path, struct sockaddr_un *sa, socklen_t *ret_len)
{
	size_t l = strlen(path);

	if (l == 0 || l >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, l);
	*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l + 1);
	return 0;
}

int testbed_ctl_start(Testbed *t)
{
	_cleanup_close_ int fd = -EBADF;
	struct sockaddr_un sa;
	socklen_t salen;
	int r;

	r = make_addr(t->ctl_path, &sa, &salen);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, salen) < 0) {
		_cleanup_close_ int probe = -EBADF;

		if (errno != EADDRINUSE)
			return -errno;
		/* left behind by a testbed that was killed? nobody answers on a stale one */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe < 0)
			return -errno;
		if (connect(probe, (struct sockaddr *)&sa, salen) == 0 || errno != ECONNREFUSED)
			return -EADDRINUSE;
		if (unlink(t->ctl_path) < 0 || bind(fd, (struct sockaddr *)&sa, salen) < 0)
			return -errno;
	}
	if (listen(fd, 16) < 0)
		return -errno;
	t->ctl_watch = g_unix_fd_add(fd, G_IO_IN, on_accept, t);
	t->ctl_fd = TAKE_FD(fd);
	return 0;
}

void testbed_ctl_stop(Testbed *t)
{
	if (t->ctl_watch)
		g_source_remove(t->ctl_watch);
	t->ctl_watch = 0;
	if (t->ctl_fd >= 0)
		close(t->ctl_fd);
	t->ctl_fd = -EBADF;
	if (t->ctl_path)
		(void)unlink(t->ctl_path);
}

/* keyward-testbed ctl SOCKET VERB [ARGS...] */
int testbed_ctl_client(int argc, char *argv[])
{
	_cleanup_close_ int fd = -EBADF;
	g_autoptr(GString) req = g_string_new(NULL), resp = g_string_new(NULL);
	struct sockaddr_un sa;
	socklen_t salen;
	const char *path;
	char buf[4096], *body;
	ssize_t n;

	if (argc < 2) {
		fprintf(stderr, "usage: keyward-testbed ctl SOCKET VERB [ARGS...]\n");
		return 2;
	}
	path = argv[0];
	if (streq(path, "-"))
		path = getenv("KEYWARD_TESTBED_CTL");
	if (isempty(path) || make_addr(path, &sa, &salen) < 0) {
		fprintf(stderr, "keyward-testbed ctl: invalid control socket path '%s'\n",
		        strempty(path));
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		if (strpbrk(argv[i], "\n\r") || isempty(argv[i])) {
			fprintf(stderr, "keyward-testbed ctl: invalid argument '%s'\n", argv[i]);
			return 2;
		}
		g_string_append_printf(req, "%s%s", i > 1 ? " " : "", argv[i]);
	}
	g_string_append_c(req, '\n');
	if (req->len > TESTBED_CTL_LINE_MAX - 1) {
		fprintf(stderr, "keyward-testbed ctl: request too long\n");
		return 2;
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, salen) < 0) {
		fprintf(stderr,
		        "keyward-testbed ctl: cannot connect to %s: %m (is keyward-testbed "
		        "running?)\n",
		        path);
		return 1;
	}
	write_all(fd, req->str, req->len);
	(void)shutdown(fd, SHUT_WR);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "keyward-testbed ctl: cannot read the reply: %m\n");
			return 1;
		}
		if (resp->len + (size_t)n > 1024 * 1024) {
			fprintf(stderr, "keyward-testbed ctl: reply too long\n");
			return 1;
		}
		g_string_append_len(resp, buf, n);
	}
	if (g_str_has_prefix(resp->str, "ok\n")) {
		fputs(resp->str + 3, stdout);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	body = resp->str;
	if (g_str_has_prefix(body, "error "))
		body += strlen("error ");
	g_strchomp(body);
	fprintf(stderr, "keyward-testbed ctl: %s\n",
	        *body ? body : "no reply from keyward-testbed");
	return 1;
}
