/* virtkey-bench.h: what the virtkey unit tests share — check macros, a temp directory,
 * and the real libfido2 client wired to a VirtKey through fido_dev_set_io_functions(). */
#pragma once

#include <fido.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "virtkey-check.h"
#include "virtkey.h"

#define CHECK_FIDO(expr, want)                                                                     \
	do {                                                                                       \
		int _r = (expr), _w = (want);                                                      \
		if (_r != _w) {                                                                    \
			fprintf(stderr, "%s:%d: %s: %s (%d), want %s (%d)\n", __FILE__, __LINE__,  \
			        #expr, fido_strerr(_r), _r, fido_strerr(_w), _w);                  \
			exit(EXIT_FAILURE);                                                        \
		}                                                                                  \
	} while (0)

typedef struct Bench {
	VirtKeyOptions opts;
	VirtKey *key;
	fido_dev_t *dev;
	char dir[PATH_MAX];
	char state[PATH_MAX + 16];
	char att[PATH_MAX + 16];
	unsigned reads, writes, keepalives;
} Bench;

extern const uint8_t bench_aaguid[16];

/* A temp directory, default options (attestation in DIR/att, state in DIR/state when
 * persistent), the key, and an opened libfido2 device on it. */
void bench_init(Bench *b, bool persistent);
/* (Re)creates the key from b->opts and opens the device. */
void bench_start(Bench *b);
/* Closes the device and frees the key (state stays on disk). */
void bench_stop(Bench *b);
void bench_done(Bench *b);
/* Closes and re-opens the libfido2 device (a new client; CTAPHID INIT again). */
void bench_reopen_dev(Bench *b);
/* rm -r of a test directory (no symlinks followed). */
void bench_rm_tree(const char *dir);
