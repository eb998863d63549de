/* intern.h: reference-counted shared copies of strings (main thread only). keywardd's
 * bindings repeat the same few values (user, key, service, rule, session), so each is
 * kept once, and two interned strings are equal exactly when their pointers are. */
#pragma once

#include <stddef.h>

/* The shared copy of S with one more reference: NULL for NULL, and NULL with errno ENOMEM
 * when out of memory. */
const char *intern_str(const char *s);
/* One more reference of S (interned, or NULL); returns S. */
const char *intern_ref(const char *s);
/* Drops one reference of S (from intern_str(), NULL allowed); the last frees it. */
void intern_unref(const char *s);
/* The shared copy of S if one exists (no reference taken), else NULL. */
const char *intern_lookup(const char *s);
/* Replaces *P (interned or NULL) by the shared copy of S: 0, or -ENOMEM (*P untouched). */
int intern_replace(const char **p, const char *s);
/* How many distinct strings are interned, and the bytes they and the table hold. */
size_t intern_count(void);
size_t intern_bytes(void);
