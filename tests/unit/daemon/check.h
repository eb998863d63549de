/* check.h: tiny assertion helpers for the daemon unit tests (independent of NDEBUG). */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x);      \
			exit(EXIT_FAILURE);                                                        \
		}                                                                                  \
	} while (0)

#define CHECK_INT(a, b)                                                                            \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b) {                                                                    \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n",          \
			        __FILE__, __LINE__, #a, #b, _a, _b);                               \
			exit(EXIT_FAILURE);                                                        \
		}                                                                                  \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *_a = (a), *_b = (b);                                                   \
		if (!_a || !_b || strcmp(_a, _b) != 0) {                                           \
			fprintf(stderr,                                                            \
			        "%s:%d: CHECK failed: %s == %s\n  got:      \"%s\"\n  expected: "  \
			        "\"%s\"\n",                                                        \
			        __FILE__, __LINE__, #a, #b, _a ? _a : "(null)",                    \
			        _b ? _b : "(null)");                                               \
			exit(EXIT_FAILURE);                                                        \
		}                                                                                  \
	} while (0)
