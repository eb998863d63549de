/* ssh-agent.c: a bounded-time ssh-agent client (draft-miller-ssh-agent): connect as the
 * socket's owner, list identities, ask for a signature. libc only (pam_keyward.so may
 * link it). Library code: -errno, never logs. */
#include "ssh-agent.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ssh-wire.h"
#include "util.h"

#define SSH_AGENT_FAILURE             5
#define SSH_AGENTC_REQUEST_IDENTITIES 11
#define SSH_AGENT_IDENTITIES_ANSWER   12
#define SSH_AGENTC_SIGN_REQUEST       13
#define SSH_AGENT_SIGN_RESPONSE       14

#define SSH_AGENT_MAX_KEY_BLOB (16 * 1024) /* a certificate is larger than a key */
#define SSH_AGENT_MAX_COMMENT  4096
#define SSH_AGENT_MAX_SIG      (16 * 1024)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Milliseconds left until DEADLINE (0: passed). */
static int left_ms(uint64_t deadline)
{
	uint64_t n = now_ms();

	if (n >= deadline)
		return 0;
	return deadline - n > INT32_MAX ? INT32_MAX : (int)(deadline - n);
}

static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int left = left_ms(deadline), r;

		if (left == 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		if (p.revents & (events | POLLHUP | POLLERR))
			return 0;
	}
}

/* --- connecting --------------------------------------------------------------------- */

static int connect_as(int fd, const struct sockaddr_un *sa, uid_t uid, gid_t gid)
{
	int old_uid, old_gid, r = 0;

	/* The file-system identity of this thread only; setfsuid() reports no errors, so a
	 * second call tells whether the first took. */
	old_gid = setfsgid(gid);
	if ((gid_t)setfsgid(gid) != gid) {
		setfsgid(old_gid);
		return -EPERM;
	}
	old_uid = setfsuid(uid);
	if ((uid_t)setfsuid(uid) != uid) {
		setfsuid(old_uid);
		setfsgid(old_gid);
		return -EPERM;
	}
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
		r = -errno;
	setfsuid(old_uid);
	setfsgid(old_gid);
	return r;
}

int ssh_agent_open(
        const char *path, uid_t uid, gid_t gid, int timeout_ms, int *ret_fd, char **ret_error)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -EBADF;
	struct ucred cred = {};
	socklen_t cl = sizeof(cred);
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	struct stat st;
	int r;

	if (isempty(path) || path[0] != '/' || strlen(path) >= sizeof(sa.sun_path)) {
		set_error(ret_error,
		        "the agent socket path '%s' is not an absolute path that fits "
		        "a socket address",
		        strempty(path));
		return -EINVAL;
	}
	if (lstat(path, &st) < 0) {
		r = -errno;
		set_error(ret_error, "no agent socket at %s (%s)", path, strerror(-r));
		return r;
	}
	if (!S_ISSOCK(st.st_mode)) {
		set_error(ret_error, "%s is not a socket", path);
		return -EPERM;
	}
	if (st.st_uid != uid) {
		set_error(ret_error, "the agent socket %s is owned by uid %u, not by uid %u", path,
		        (unsigned)st.st_uid, (unsigned)uid);
		return -EPERM;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	for (;;) {
		r = connect_as(fd, &sa, uid, gid);
		if (r != -EAGAIN)
			break;
		/* A full listen backlog: the agent is busy or stuck. Try again until the
		 * deadline. */
		if (left_ms(deadline) == 0) {
			r = -ETIMEDOUT;
			break;
		}
		usleep(10 * 1000);
	}
	if (r == -EINPROGRESS)
		r = wait_fd(fd, POLLOUT, deadline);
	if (r < 0) {
		set_error(ret_error, "cannot connect to the agent socket %s as uid %u: %s", path,
		        (unsigned)uid,
		        r == -ETIMEDOUT ? "the agent does not answer" : strerror(-r));
		return r;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
		r = -errno;
		set_error(ret_error, "cannot tell who serves %s: %s", path, strerror(-r));
		return r;
	}
	if (cred.uid != uid) {
		set_error(ret_error, "the agent at %s runs as uid %u, not as uid %u", path,
		        (unsigned)cred.uid, (unsigned)uid);
		return -EPERM;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* --- messages ----------------------------------------------------------------------- */

static int send_all(int fd, const uint8_t *p, size_t n, uint64_t deadline)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		int r;

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			r = wait_fd(fd, POLLOUT, deadline);
			if (r < 0)
				return r;
			continue;
		}
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int recv_all(int fd, uint8_t *p, size_t n, uint64_t deadline)
{
	while (n > 0) {
		ssize_t k = recv(fd, p, n, MSG_DONTWAIT);
		int r;

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			r = wait_fd(fd, POLLIN, deadline);
			if (r < 0)
				return r;
			continue;
		}
		if (k < 0)
			return -errno;
		if (k == 0)
			return -ECONNRESET;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Sends REQ (with its length prefix) and reads one reply body (malloc()ed). */
static int agent_call(
        int fd, const Buf *req, int timeout_ms, uint8_t **ret, size_t *ret_len, char **ret_error)
{
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	uint8_t hdr[4];
	_cleanup_free_ uint8_t *body = NULL;
	uint32_t len;
	int r;

	if (req->oom)
		return -ENOMEM;
	r = send_all(fd, req->p, req->n, deadline);
	if (r >= 0)
		r = recv_all(fd, hdr, sizeof(hdr), deadline);
	if (r < 0)
		goto fail;
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (len == 0 || len > SSH_AGENT_MAX_MESSAGE) {
		set_error(ret_error, "the agent sent a reply of %u bytes (at most %d are taken)",
		        len, SSH_AGENT_MAX_MESSAGE);
		return -EBADMSG;
	}
	body = malloc(len);
	if (!body)
		return -ENOMEM;
	r = recv_all(fd, body, len, deadline);
	if (r < 0)
		goto fail;
	*ret = TAKE_PTR(body);
	*ret_len = len;
	return 0;
fail:
	if (r == -ETIMEDOUT)
		set_error(ret_error, "the agent did not answer within %d ms", timeout_ms);
	else
		set_error(ret_error, "the agent connection failed: %s",
		        r == -ECONNRESET ? "the agent closed it" : strerror(-r));
	return r;
}

/* Starts a request: the length prefix (patched by req_finish()) and the type byte. */
static void req_start(Buf *b, uint8_t type)
{
	buf_put_u32(b, 0);
	buf_put(b, &type, 1);
}

static void req_finish(Buf *b)
{
	uint32_t n = (uint32_t)(b->n - 4);

	if (b->oom)
		return;
	b->p[0] = n >> 24;
	b->p[1] = n >> 16;
	b->p[2] = n >> 8;
	b->p[3] = n;
}

SshAgentIdentities *ssh_agent_identities_free(SshAgentIdentities *l)
{
	if (!l)
		return NULL;
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].blob);
		free(l->items[i].comment);
	}
	free(l->items);
	free(l);
	return NULL;
}

static int reply_type(
        const uint8_t *msg, size_t len, uint8_t want, const char *what, char **ret_error)
{
	if (len == 0) {
		set_error(ret_error, "the agent sent an empty reply");
		return -EBADMSG;
	}
	if (msg[0] == SSH_AGENT_FAILURE && len == 1) {
		set_error(ret_error, "the agent refused %s", what);
		return -EPROTO;
	}
	if (msg[0] != want) {
		set_error(ret_error, "the agent answered %s with message type %u", what, msg[0]);
		return -EBADMSG;
	}
	return 0;
}

int ssh_agent_parse_identities(
        const uint8_t *msg, size_t len, SshAgentIdentities **ret, char **ret_error)
{
	SshAgentIdentities *l;
	Wire w = {msg, len};
	uint32_t n;
	uint8_t t;
	int r;

	r = reply_type(msg, len, SSH_AGENT_IDENTITIES_ANSWER, "the list of keys", ret_error);
	if (r < 0)
		return r;
	(void)wire_u8(&w, &t);
	if (wire_u32(&w, &n) < 0 || n > SSH_AGENT_MAX_IDENTITIES || n > w.n / 8) {
		set_error(ret_error, "the agent's list of keys is malformed or holds more than %d",
		        SSH_AGENT_MAX_IDENTITIES);
		return -EBADMSG;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	if (n > 0) {
		l->items = calloc(n, sizeof(*l->items));
		if (!l->items) {
			free(l);
			return -ENOMEM;
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *blob, *comment;
		size_t bl, cl;

		if (wire_string(&w, &blob, &bl) < 0 || wire_string(&w, &comment, &cl) < 0 ||
		        bl == 0 || bl > SSH_AGENT_MAX_KEY_BLOB || cl > SSH_AGENT_MAX_COMMENT ||
		        memchr(comment, '\0', cl)) {
			set_error(ret_error, "key %u in the agent's list is malformed", i + 1);
			r = -EBADMSG;
			break;
		}
		l->items[i].blob = malloc(bl);
		l->items[i].comment = strndup((const char *)comment, cl);
		if (!l->items[i].blob || !l->items[i].comment) {
			free(l->items[i].blob);
			free(l->items[i].comment);
			l->items[i] = (SshAgentIdentity){};
			r = -ENOMEM;
			break;
		}
		memcpy(l->items[i].blob, blob, bl);
		l->items[i].blob_len = bl;
		l->n++;
	}
	if (r >= 0 && w.n != 0) {
		set_error(ret_error, "%zu bytes follow the agent's list of keys", w.n);
		r = -EBADMSG;
	}
	if (r < 0) {
		ssh_agent_identities_free(l);
		return r;
	}
	*ret = l;
	return 0;
}

int ssh_agent_parse_sign_response(
        const uint8_t *msg, size_t len, uint8_t **ret_sig, size_t *ret_sig_len, char **ret_error)
{
	Wire w = {msg, len};
	const uint8_t *sig;
	size_t sl;
	uint8_t t, *copy;
	int r;

	r = reply_type(msg, len, SSH_AGENT_SIGN_RESPONSE, "to sign", ret_error);
	if (r < 0)
		return r;
	(void)wire_u8(&w, &t);
	if (wire_string(&w, &sig, &sl) < 0 || sl == 0 || sl > SSH_AGENT_MAX_SIG || w.n != 0) {
		set_error(ret_error, "the agent's signature reply is malformed");
		return -EBADMSG;
	}
	copy = malloc(sl);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, sig, sl);
	*ret_sig = copy;
	*ret_sig_len = sl;
	return 0;
}

int ssh_agent_list(int fd, int timeout_ms, SshAgentIdentities **ret, char **ret_error)
{
	_cleanup_free_ uint8_t *reply = NULL;
	size_t len;
	Buf req = {};
	int r;

	req_start(&req, SSH_AGENTC_REQUEST_IDENTITIES);
	req_finish(&req);
	r = agent_call(fd, &req, timeout_ms, &reply, &len, ret_error);
	free(req.p);
	if (r < 0)
		return r;
	return ssh_agent_parse_identities(reply, len, ret, ret_error);
}

int ssh_agent_sign(int fd, const uint8_t *key_blob, size_t key_len, const uint8_t *data,
        size_t data_len, uint32_t flags, int timeout_ms, uint8_t **ret_sig, size_t *ret_sig_len,
        char **ret_error)
{
	_cleanup_free_ uint8_t *reply = NULL;
	size_t len;
	Buf req = {};
	int r;

	if (key_len == 0 || key_len > SSH_AGENT_MAX_KEY_BLOB ||
	        data_len > SSH_AGENT_MAX_MESSAGE / 2)
		return -EINVAL;
	req_start(&req, SSH_AGENTC_SIGN_REQUEST);
	buf_put_string(&req, key_blob, key_len);
	buf_put_string(&req, data, data_len);
	buf_put_u32(&req, flags);
	req_finish(&req);
	r = agent_call(fd, &req, timeout_ms, &reply, &len, ret_error);
	free(req.p);
	if (r < 0)
		return r;
	return ssh_agent_parse_sign_response(reply, len, ret_sig, ret_sig_len, ret_error);
}
