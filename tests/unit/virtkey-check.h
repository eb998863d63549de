/* virtkey-check.h: the CHECK and CHECK_EQ macros of the virtkey unit tests (without
 * libfido2, whose COSE_* macros clash with virtkey-internal.h). */
#pragma once

#include <stdio.h>
#include <stdlib.h>

#define CHECK(expr)                                                                                \
	do {                                                                                       \
		if (!(expr)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr);   \
			exit(EXIT_FAILURE);                                                        \
		}                                                                                  \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b) {                                                                    \
			fprintf(stderr, "%s:%d: %s == %lld, want %s == %lld\n", __FILE__,          \
			        __LINE__, #a, _a, #b, _b);                                         \
			exit(EXIT_FAILURE);                                                        \
		}                                                                                  \
	} while (0)
