/* testbed-exit-client.c: a small libfido2 client for exit-loop.py (issue 14: the testbed
 * exits cleanly). Run inside keyward-testbed, on the first key it finds:
 *   testbed-exit-client assert   make a credential, get an assertion, verify it; exit 0
 *   testbed-exit-client orphan   the same, then leave a child behind that keeps making
 *                                credentials and exit after a random pause of 0..30 ms:
 *                                the testbed ends (SIGTERM to the orphan) while HID
 *                                requests are in flight in umockdev's worker thread.
 * Prints nothing on success. */
#include <errno.h>
#include <fido.h>
#include <fido/es256.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define RP              "exit-loop.example"
#define ORPHAN_LIFETIME 30 /* s: the testbed ends it long before */

static void random_bytes(uint8_t *p, size_t n)
{
	if (getrandom(p, n, 0) != (ssize_t)n)
		memset(p, 0x5a, n);
}

/* Path of the first FIDO device in PATH (size N). */
static int first_key(char *path, size_t n)
{
	fido_dev_info_t *list = fido_dev_info_new(16);
	size_t found = 0;
	int r = -ENODEV;

	if (!list)
		return -ENOMEM;
	if (fido_dev_info_manifest(list, 16, &found) == FIDO_OK && found > 0) {
		snprintf(path, n, "%s", fido_dev_info_path(fido_dev_info_ptr(list, 0)));
		r = 0;
	}
	fido_dev_info_free(&list, 16);
	return r;
}

/* One credential and one assertion with it, verified; QUIET: no messages. */
static int use_key(const char *path, int quiet)
{
	fido_dev_t *dev = fido_dev_new();
	fido_cred_t *cred = fido_cred_new();
	fido_assert_t *as = fido_assert_new();
	es256_pk_t *pk = es256_pk_new();
	uint8_t cdh[32], uid[16];
	const char *what = "allocation";
	int r = FIDO_ERR_INTERNAL;

	if (!dev || !cred || !as || !pk)
		goto out;
	random_bytes(cdh, sizeof(cdh));
	random_bytes(uid, sizeof(uid));
	what = "open";
	if ((r = fido_dev_open(dev, path)) != FIDO_OK)
		goto out;
	what = "make credential";
	if ((r = fido_cred_set_type(cred, COSE_ES256)) != FIDO_OK ||
	        (r = fido_cred_set_clientdata_hash(cred, cdh, sizeof(cdh))) != FIDO_OK ||
	        (r = fido_cred_set_rp(cred, RP, NULL)) != FIDO_OK ||
	        (r = fido_cred_set_user(cred, uid, sizeof(uid), "exit-loop", NULL, NULL)) !=
	                FIDO_OK ||
	        (r = fido_dev_make_cred(dev, cred, NULL)) != FIDO_OK)
		goto out;
	what = "get assertion";
	if ((r = fido_assert_set_clientdata_hash(as, cdh, sizeof(cdh))) != FIDO_OK ||
	        (r = fido_assert_set_rp(as, RP)) != FIDO_OK ||
	        (r = fido_assert_allow_cred(as, fido_cred_id_ptr(cred), fido_cred_id_len(cred))) !=
	                FIDO_OK ||
	        (r = fido_dev_get_assert(dev, as, NULL)) != FIDO_OK)
		goto out;
	what = "verify assertion";
	if ((r = es256_pk_from_ptr(pk, fido_cred_pubkey_ptr(cred), fido_cred_pubkey_len(cred))) !=
	                FIDO_OK ||
	        (r = fido_assert_verify(as, 0, COSE_ES256, pk)) != FIDO_OK)
		goto out;
out:
	if (r != FIDO_OK && !quiet)
		fprintf(stderr, "testbed-exit-client: %s on %s: %s\n", what, path, fido_strerr(r));
	if (dev)
		(void)fido_dev_close(dev);
	es256_pk_free(&pk);
	fido_assert_free(&as);
	fido_cred_free(&cred);
	fido_dev_free(&dev);
	return r == FIDO_OK ? 0 : -EIO;
}

int main(int argc, char *argv[])
{
	char path[256];
	int orphan;
	pid_t pid;

	if (argc != 2 || (strcmp(argv[1], "assert") != 0 && strcmp(argv[1], "orphan") != 0)) {
		fprintf(stderr, "usage: testbed-exit-client assert|orphan\n");
		return 2;
	}
	orphan = strcmp(argv[1], "orphan") == 0;
	fido_init(0);
	if (first_key(path, sizeof(path)) < 0) {
		fprintf(stderr, "testbed-exit-client: no FIDO device found\n");
		return 1;
	}
	if (use_key(path, 0) < 0)
		return 1;
	if (!orphan)
		return 0;

	pid = fork();
	if (pid < 0) {
		perror("testbed-exit-client: fork");
		return 1;
	}
	if (pid == 0) {
		/* the orphan: requests until the testbed ends it (default SIGTERM action) */
		time_t end = time(NULL) + ORPHAN_LIFETIME;

		(void)signal(SIGTERM, SIG_DFL);
		while (time(NULL) < end)
			(void)use_key(path, 1);
		_exit(0);
	}
	{
		uint8_t b = 0;
		struct timespec ts;

		random_bytes(&b, 1);
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(b % 31) * 1000000L;
		(void)nanosleep(&ts, NULL);
	}
	return 0;
}
