/* ssh-test.h: what the SSH unit tests share — a CHECK that counts failures and goes on,
 * reading the files the driver (run.sh) made with the real OpenSSH, and the result. */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int failures;
static int checks;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		checks++;                                                                          \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

/* DIR/NAME's content (NUL-terminated; *ret_len without it). Missing file: the test fails
 * loudly (the driver did not make it), never skips. */
static inline char *read_in(const char *dir, const char *name, size_t *ret_len)
{
	_cleanup_free_ char *path = NULL;
	char *buf = NULL;
	size_t n = 0;
	FILE *f;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		abort();
	f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "FATAL: %s is missing (run.sh makes it with ssh-keygen)\n", path);
		exit(EXIT_FAILURE);
	}
	buf = malloc(1024 * 1024 + 1);
	if (!buf)
		abort();
	n = fread(buf, 1, 1024 * 1024, f);
	fclose(f);
	buf[n] = '\0';
	if (ret_len)
		*ret_len = n;
	return buf;
}

/* The first line of DIR/NAME without its newline. */
static inline char *read_line_in(const char *dir, const char *name)
{
	char *s = read_in(dir, name, NULL);
	s[strcspn(s, "\n")] = '\0';
	return s;
}

static inline int test_result(const char *name)
{
	if (failures) {
		fprintf(stderr, "%s: %d of %d checks FAILED\n", name, failures, checks);
		return EXIT_FAILURE;
	}
	if (checks == 0) {
		fprintf(stderr, "%s: no checks ran\n", name);
		return EXIT_FAILURE;
	}
	printf("%s: %d checks passed\n", name, checks);
	return EXIT_SUCCESS;
}
