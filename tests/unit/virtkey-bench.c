/* virtkey-bench.c: libfido2 I/O callbacks that drive a VirtKey with the real monotonic
 * clock, sleeping until virtkey_next_event_ms() or the caller's timeout. */
#include <errno.h>
#include <ftw.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "virtkey-bench.h"

const uint8_t bench_aaguid[16] = {0x6b, 0x65, 0x79, 0x77, 0x61, 0x72, 0x64, 0x2d, 0x76, 0x69, 0x72,
        0x74, 0x6b, 0x65, 0x79, 0x01};

static Bench *current;

static void *io_open(const char *path)
{
	if (!current || !current->key || !streq(path, "virtkey"))
		return NULL;
	virtkey_reset_transport(current->key);
	return current;
}

static void io_close(void *h)
{
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {
	        .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int io_read(void *h, unsigned char *buf, size_t len, int ms)
{
	Bench *b = h;
	uint64_t start = now_monotonic_ms(), deadline = ms < 0 ? UINT64_MAX : start + (uint64_t)ms;

	if (len != VIRTKEY_REPORT_SIZE)
		return -1;
	for (;;) {
		uint64_t now = now_monotonic_ms(), next;
		int r = virtkey_hid_read(b->key, buf, now);

		if (r < 0)
			return -1;
		if (r > 0) {
			b->reads++;
			if (buf[4] == (0x80 | 0x3b))
				b->keepalives++;
			return VIRTKEY_REPORT_SIZE;
		}
		if (now >= deadline)
			return -1;
		next = virtkey_next_event_ms(b->key, now);
		if (next == UINT64_MAX && deadline == UINT64_MAX)
			return -1; /* nothing will ever come */
		if (next > deadline)
			next = deadline;
		if (next > now)
			sleep_ms(next - now);
	}
}

static int io_write(void *h, const unsigned char *buf, size_t len)
{
	Bench *b = h;

	if (len != VIRTKEY_REPORT_SIZE + 1 || buf[0] != 0)
		return -1;
	if (virtkey_hid_write(b->key, buf + 1, now_monotonic_ms()) < 0)
		return -1;
	b->writes++;
	return (int)len;
}

static const fido_dev_io_t bench_io = {
        .open = io_open,
        .close = io_close,
        .read = io_read,
        .write = io_write,
};

void bench_init(Bench *b, bool persistent)
{
	const char *tmp = getenv("TMPDIR");

	memset(b, 0, sizeof(*b));
	fido_init(getenv("VIRTKEY_FIDO_DEBUG") ? FIDO_DEBUG : 0);
	snprintf(b->dir, sizeof(b->dir), "%s/virtkey-test.XXXXXX", tmp ? tmp : "/tmp");
	CHECK(mkdtemp(b->dir));
	snprintf(b->att, sizeof(b->att), "%s/att", b->dir);
	snprintf(b->state, sizeof(b->state), "%s/state", b->dir);
	memcpy(b->opts.aaguid, bench_aaguid, 16);
	b->opts.attestation_dir = b->att;
	b->opts.state_path = persistent ? b->state : NULL;
	b->opts.touch = VIRTKEY_TOUCH_AUTO;
	b->opts.touch_delay_ms = 5;
	b->opts.counter = VIRTKEY_COUNTER_NORMAL;
}

void bench_start(Bench *b)
{
	int r;

	CHECK(!b->key && !b->dev);
	r = virtkey_new(&b->opts, &b->key);
	if (r < 0) {
		fprintf(stderr, "virtkey_new: %s\n", strerror(-r));
		exit(EXIT_FAILURE);
	}
	current = b;
	b->dev = fido_dev_new();
	CHECK(b->dev);
	CHECK_FIDO(fido_dev_set_io_functions(b->dev, &bench_io), FIDO_OK);
	CHECK_FIDO(fido_dev_open(b->dev, "virtkey"), FIDO_OK);
	CHECK(fido_dev_is_fido2(b->dev));
}

void bench_reopen_dev(Bench *b)
{
	CHECK_FIDO(fido_dev_close(b->dev), FIDO_OK);
	CHECK_FIDO(fido_dev_open(b->dev, "virtkey"), FIDO_OK);
}

void bench_stop(Bench *b)
{
	if (b->dev) {
		fido_dev_close(b->dev);
		fido_dev_free(&b->dev);
	}
	b->key = virtkey_free(b->key);
	current = NULL;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)(flag == FTW_DP ? rmdir(path) : unlink(path));
	return 0;
}

void bench_rm_tree(const char *dir)
{
	(void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void bench_done(Bench *b)
{
	bench_stop(b);
	if (!getenv("VIRTKEY_KEEP_TMP"))
		bench_rm_tree(b->dir);
}
