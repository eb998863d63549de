/* audit-test.h: what the audit unit tests share — CHECK that counts a failure and goes on
 * (every failed check of a run is reported; a test that includes daemon/check.h first keeps
 * its CHECK that stops at the first), a private temporary directory with paths in it, and
 * the end of a run. Included by one .c file per test program. */
#pragma once

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static int failures;

#ifndef CHECK
#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
			failures++;                                                                \
		}                                                                                  \
	} while (0)
#endif

static char tmpdir[] = "/tmp/keyward-audit-test.XXXXXX";

static char *path_in(const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", tmpdir, name) < 0)
		abort();
	return p;
}

/* Creates tmpdir; false (said why) when it cannot. */
static inline bool tmpdir_make(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return false;
	}
	return true;
}

static inline int tmpdir_remove_entry(
        const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	return remove(path);
}

/* Removes tmpdir and everything in it: 0, or -1 (said why). */
static inline int tmpdir_remove(void)
{
	if (nftw(tmpdir, tmpdir_remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0) {
		perror(tmpdir);
		return -1;
	}
	return 0;
}

/* The exit status of a run: how many checks failed, or that all of WHAT's passed. */
static inline int checks_result(const char *what)
{
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("all %s checks passed\n", what);
	return 0;
}
