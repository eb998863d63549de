/* test-ssh-agent.c: lib/ssh-agent.c against the real ssh-agent holding sk keys made by
 * ssh-keygen on the emulated key (run.sh): signatures through our client, verified by
 * lib/ssh-sk.c (tampered, wrong data, wrong key refused; UP and counter reported); fake
 * agents that answer garbage, too much, nothing or hang; sockets of another uid refused.
 * Usage (as root, SSH_AUTH_SOCK set): test-ssh-agent DIR. */
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "ssh-agent.h"
#include "ssh-sk.h"
#include "ssh-test.h"

#define NOBODY     65534
#define TIMEOUT_MS 5000

static const char *dir;

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void load_key(const char *name, SshKeyLine *ret)
{
	_cleanup_free_ char *line = read_line_in(dir, name), *err = NULL;

	if (ssh_key_line_parse(line, ret, &err) != 0) {
		fprintf(stderr, "FATAL: %s: %s\n", name, strna(err));
		exit(EXIT_FAILURE);
	}
}

static const SshAgentIdentity *find_identity(const SshAgentIdentities *ids, const SshKeyLine *k)
{
	for (size_t i = 0; i < ids->n; i++)
		if (ids->items[i].blob_len == k->blob_len &&
		        memcmp(ids->items[i].blob, k->blob, k->blob_len) == 0)
			return &ids->items[i];
	return NULL;
}

static void test_real_agent(void)
{
	const char *sock = getenv("SSH_AUTH_SOCK");
	SshKeyLine ec = {}, ec2 = {}, ed = {};
	_cleanup_close_ int fd = -EBADF;
	SshAgentIdentities *ids = NULL;
	_cleanup_free_ char *err = NULL;
	const SshKeyLine *keys[2];
	static const uint8_t data[] = "keyward challenge: 32 random bytes in real life";
	static const uint8_t other[] = "keyward challenge: 32 random bytes in real lifE";

	if (isempty(sock)) {
		fprintf(stderr, "FATAL: SSH_AUTH_SOCK is not set (run.sh starts ssh-agent)\n");
		exit(EXIT_FAILURE);
	}
	load_key("ecdsa.pub", &ec);
	load_key("ecdsa2.pub", &ec2);
	load_key("ed.pub", &ed);
	keys[0] = &ec;
	keys[1] = &ed;

	CHECK(ssh_agent_open(sock, getuid(), getgid(), TIMEOUT_MS, &fd, &err) == 0);
	if (fd < 0) {
		fprintf(stderr, "ssh_agent_open: %s\n", strna(err));
		return;
	}
	CHECK(ssh_agent_list(fd, TIMEOUT_MS, &ids, &err) == 0);
	CHECK(ids && ids->n == 4); /* ecdsa, ecdsa2, ed, plain */
	if (!ids)
		return;
	for (size_t i = 0; i < 2; i++) {
		const SshAgentIdentity *id = find_identity(ids, keys[i]);
		_cleanup_free_ uint8_t *sig = NULL, *sig2 = NULL;
		size_t sl = 0, sl2 = 0;
		uint8_t flags = 0;
		uint32_t counter = 0, counter2 = 0;

		CHECK(id != NULL);
		if (!id)
			continue;
		CHECK(id->comment && strstr(id->comment, i == 0 ? "alice@laptop" : "bob@desk"));
		CHECK(ssh_agent_sign(fd, id->blob, id->blob_len, data, sizeof(data), 0, TIMEOUT_MS,
		              &sig, &sl, &err) == 0);
		if (!sig) {
			fprintf(stderr, "sign: %s\n", strna(err));
			continue;
		}
		CHECK(ssh_sk_signature_verify(&keys[i]->key, sig, sl, data, sizeof(data), &flags,
		              &counter, &err) == 0);
		CHECK(flags & SSH_SK_FLAG_UP);
		CHECK(!(flags & SSH_SK_FLAG_UV));
		CHECK(counter >= 1);
		/* the second signature counts up */
		CHECK(ssh_agent_sign(fd, id->blob, id->blob_len, data, sizeof(data), 0, TIMEOUT_MS,
		              &sig2, &sl2, NULL) == 0);
		CHECK(sig2 && ssh_sk_signature_verify(&keys[i]->key, sig2, sl2, data, sizeof(data),
		                      &flags, &counter2, NULL) == 0);
		CHECK(counter2 > counter);
		/* other data, another key of the same type, the other type */
		CHECK(ssh_sk_signature_verify(&keys[i]->key, sig, sl, other, sizeof(other), NULL,
		              NULL, NULL) == -EKEYREJECTED);
		CHECK(ssh_sk_signature_verify(i == 0 ? &ec2.key : &ec.key, sig, sl, data,
		              sizeof(data), NULL, NULL,
		              NULL) == (i == 0 ? -EKEYREJECTED : -EPROTOTYPE));
		/* every bit after the type string flipped: never accepted */
		for (size_t off = 4 + strlen(ssh_sk_type_to_string(keys[i]->key.type)); off < sl;
		        off++)
			for (int bit = 0; bit < 8; bit += 3) {
				sig[off] ^= 1 << bit;
				CHECK(ssh_sk_signature_verify(&keys[i]->key, sig, sl, data,
				              sizeof(data), NULL, NULL, NULL) < 0);
				sig[off] ^= 1 << bit;
			}
		/* a trailing byte, every truncation */
		{
			_cleanup_free_ uint8_t *longer = malloc(sl + 1);
			memcpy(longer, sig, sl);
			longer[sl] = 0;
			CHECK(ssh_sk_signature_verify(&keys[i]->key, longer, sl + 1, data,
			              sizeof(data), NULL, NULL, NULL) == -EBADMSG);
			for (size_t n = 0; n < sl; n++)
				CHECK(ssh_sk_signature_verify(&keys[i]->key, sig, n, data,
				              sizeof(data), NULL, NULL, NULL) == -EBADMSG);
		}
	}
	/* a key the agent does not hold: FAILURE */
	{
		_cleanup_free_ uint8_t *blob = NULL, *sig = NULL;
		size_t bl, sl;
		SshSkKey k = {};
		CHECK(ssh_sk_key_from_blob(ec.blob, ec.blob_len, &k, NULL) == 0);
		k.application[0] = 'x'; /* "xsh:": another key */
		CHECK(ssh_sk_key_to_blob(&k, &blob, &bl) == 0);
		free(err);
		err = NULL;
		CHECK(ssh_agent_sign(fd, blob, bl, data, sizeof(data), 0, TIMEOUT_MS, &sig, &sl,
		              &err) == -EPROTO);
		CHECK(err && strstr(err, "refused"));
		ssh_sk_key_done(&k);
	}
	ssh_agent_identities_free(ids);
	ssh_key_line_done(&ec);
	ssh_key_line_done(&ec2);
	ssh_key_line_done(&ed);
}

/* --- fake agents -------------------------------------------------------------------- */

typedef enum FakeMode {
	FAKE_GARBAGE,   /* a message of an unknown type */
	FAKE_OVERSIZED, /* a length prefix of 16 MiB */
	FAKE_SILENT,    /* reads the request, never answers */
	FAKE_TRUNCATED, /* promises 100 bytes, sends 3, closes */
	FAKE_TOO_MANY,  /* IDENTITIES_ANSWER with 2^31 keys */
	FAKE_TRAILING,  /* IDENTITIES_ANSWER with 0 keys and a trailing byte */
	FAKE_SLOW_DRIP, /* one byte a second */
} FakeMode;

static void fake_serve(int lfd, FakeMode mode)
{
	static const uint8_t garbage[] = {0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
	static const uint8_t oversized[] = {0x01, 0, 0, 0, 12};
	static const uint8_t truncated[] = {0, 0, 0, 100, 12, 0, 0};
	static const uint8_t too_many[] = {0, 0, 0, 5, 12, 0x80, 0, 0, 0};
	static const uint8_t trailing[] = {0, 0, 0, 6, 12, 0, 0, 0, 0, 1};
	uint8_t buf[256];
	int fd = accept(lfd, NULL, NULL);

	if (fd < 0)
		_exit(1);
	(void)!read(fd, buf, sizeof(buf));
	switch (mode) {
	case FAKE_GARBAGE:
		(void)!write(fd, garbage, sizeof(garbage));
		break;
	case FAKE_OVERSIZED:
		(void)!write(fd, oversized, sizeof(oversized));
		break;
	case FAKE_TRUNCATED:
		(void)!write(fd, truncated, sizeof(truncated));
		_exit(0);
	case FAKE_TOO_MANY:
		(void)!write(fd, too_many, sizeof(too_many));
		break;
	case FAKE_TRAILING:
		(void)!write(fd, trailing, sizeof(trailing));
		break;
	case FAKE_SLOW_DRIP:
		for (size_t i = 0; i < sizeof(trailing); i++) {
			(void)!write(fd, trailing + i, 1);
			sleep(1);
		}
		break;
	case FAKE_SILENT:
		break;
	}
	pause();
	_exit(0);
}

/* Binds PATH (as UID when not 0) and serves one connection in a child; its pid. */
static pid_t fake_agent(const char *path, FakeMode mode, uid_t uid)
{
	int sync[2];
	pid_t pid;
	char c;

	if (pipe(sync) < 0)
		abort();
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int lfd;

		if (uid != 0 && (setgid(uid) < 0 || setuid(uid) < 0))
			_exit(1);
		unlink(path);
		strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
		lfd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		        listen(lfd, 4) < 0)
			_exit(1);
		(void)!write(sync[1], "r", 1);
		fake_serve(lfd, mode);
	}
	close(sync[1]);
	if (read(sync[0], &c, 1) != 1) {
		fprintf(stderr, "FATAL: the fake agent did not start\n");
		exit(EXIT_FAILURE);
	}
	close(sync[0]);
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_fake_agents(const char *tmp)
{
	struct {
		FakeMode mode;
		int want;
		const char *word;
	} cases[] = {
	        {FAKE_GARBAGE, -EBADMSG, "message type"},
	        {FAKE_OVERSIZED, -EBADMSG, "bytes"},
	        {FAKE_SILENT, -ETIMEDOUT, "did not answer"},
	        {FAKE_TRUNCATED, -ECONNRESET, "closed"},
	        {FAKE_TOO_MANY, -EBADMSG, "more than"},
	        {FAKE_TRAILING, -EBADMSG, "follow"},
	        {FAKE_SLOW_DRIP, -ETIMEDOUT, "did not answer"},
	};
	_cleanup_free_ char *path = NULL;

	if (asprintf(&path, "%s/fake.sock", tmp) < 0)
		abort();
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		pid_t pid = fake_agent(path, cases[i].mode, 0);
		_cleanup_close_ int fd = -EBADF;
		_cleanup_free_ char *err = NULL;
		SshAgentIdentities *ids = NULL;
		uint64_t t0;
		int r;

		CHECK(ssh_agent_open(path, 0, 0, 1000, &fd, &err) == 0);
		t0 = mono_ms();
		r = ssh_agent_list(fd, 1500, &ids, &err);
		CHECK(r == cases[i].want);
		if (r != cases[i].want)
			fprintf(stderr, "fake agent %zu: %d (%s), want %d\n", i, r, strna(err),
			        cases[i].want);
		CHECK(err && strstr(err, cases[i].word));
		CHECK(ids == NULL);
		CHECK(mono_ms() - t0 < 2500); /* bounded, also for the slow drip */
		reap(pid);
	}
}

static void test_ownership(const char *tmp)
{
	_cleanup_free_ char *path = NULL, *err = NULL, *notsock = NULL;
	_cleanup_close_ int fd = -EBADF;
	pid_t pid;
	FILE *f;

	if (getuid() != 0) {
		fprintf(stderr, "FATAL: the ownership part runs as root (it binds as uid %d)\n",
		        NOBODY);
		exit(EXIT_FAILURE);
	}
	if (asprintf(&path, "%s/nobody.sock", tmp) < 0 || asprintf(&notsock, "%s/file", tmp) < 0)
		abort();
	/* a socket bound by nobody: refused for root, accepted for nobody */
	pid = fake_agent(path, FAKE_SILENT, NOBODY);
	CHECK(ssh_agent_open(path, 0, 0, 1000, &fd, &err) == -EPERM);
	CHECK(err && strstr(err, "owned by uid 65534"));
	CHECK(fd < 0);
	CHECK(ssh_agent_open(path, NOBODY, NOBODY, 1000, &fd, &err) == 0);
	close(TAKE_FD(fd));
	reap(pid);

	/* a socket served by root but chowned to nobody: the peer is not nobody */
	pid = fake_agent(path, FAKE_SILENT, 0);
	CHECK(chown(path, NOBODY, NOBODY) == 0);
	CHECK(chmod(path, 0777) == 0);
	free(err);
	err = NULL;
	CHECK(ssh_agent_open(path, NOBODY, NOBODY, 1000, &fd, &err) == -EPERM);
	CHECK(err && strstr(err, "runs as uid 0"));
	CHECK(fd < 0);
	reap(pid);

	/* not a socket, missing, relative */
	f = fopen(notsock, "we");
	if (f)
		fclose(f);
	CHECK(ssh_agent_open(notsock, 0, 0, 1000, &fd, NULL) == -EPERM);
	unlink(path);
	CHECK(ssh_agent_open(path, 0, 0, 1000, &fd, NULL) == -ENOENT);
	CHECK(ssh_agent_open("relative/agent", 0, 0, 1000, &fd, NULL) == -EINVAL);
}

/* A socket owned by nobody in a directory only root may enter: the connect as nobody fails
 * although the process is root (the fs identity is switched). */
static void test_fsuid(const char *tmp)
{
	_cleanup_free_ char *sub = NULL, *path = NULL, *err = NULL;
	_cleanup_close_ int fd = -EBADF;
	pid_t pid;

	if (asprintf(&sub, "%s/private", tmp) < 0 || asprintf(&path, "%s/agent", sub) < 0)
		abort();
	CHECK(mkdir(sub, 0777) == 0);
	CHECK(chmod(sub, 0777) == 0);
	pid = fake_agent(path, FAKE_SILENT, NOBODY);
	CHECK(chmod(sub, 0700) == 0); /* root's, nobody cannot search it any more */
	CHECK(ssh_agent_open(path, NOBODY, NOBODY, 1000, &fd, &err) == -EACCES);
	CHECK(err && strstr(err, "as uid 65534"));
	CHECK(fd < 0);
	/* and this thread is root again afterwards */
	CHECK(access(sub, W_OK) == 0);
	reap(pid);
}

int main(int argc, char **argv)
{
	char tmp[] = "/tmp/keyward-ssh-agent-test.XXXXXX";

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR (made by run.sh)\n", argv[0]);
		return EXIT_FAILURE;
	}
	dir = argv[1];
	signal(SIGPIPE, SIG_DFL); /* a write to a closed agent must not kill us */
	if (!mkdtemp(tmp) || chmod(tmp, 01777) < 0)
		abort();
	test_real_agent();
	test_fake_agents(tmp);
	test_ownership(tmp);
	test_fsuid(tmp);
	return test_result("test-ssh-agent");
}
