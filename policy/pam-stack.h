/* pam-stack.h: the PAM configuration as libpam reads it — ROOT/etc/pam.d/NAME, else
 * ROOT/usr/lib/pam.d/NAME, with @include, include and substack flattened — and the list
 * of services present. For keywardd's enrollment and keywardctl (doctor, report). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define PAM_STACK_MAX_DEPTH    8    /* @include / include / substack nesting */
#define PAM_STACK_MAX_LINES    1024 /* lines of one flattened stack */
#define PAM_STACK_MAX_FILE     (256 * 1024)
#define PAM_STACK_MAX_SERVICES 1024 /* PAM files listed from both directories */

typedef struct PamLine {
	char *type; /* auth, account, session, password ('-' prefix dropped) */
	char *control;
	char *module; /* as written: name or path */
	char *args;
	char *file; /* path on the target system (without ROOT), for messages */
	unsigned line;
} PamLine;

typedef struct PamStack {
	PamLine *lines;
	size_t n;
} PamStack;

void pam_stack_done(PamStack *s);

/* Whether NAME can be a file in /etc/pam.d (no '/', not "." or "..", not empty). */
bool pam_service_name_valid(const char *name);

/* Whether L calls MODULE ("pam_keyward.so"), by name or by path. */
bool pam_line_is(const PamLine *l, const char *module);

/* Whether any line of S calls MODULE. */
bool pam_stack_has(const PamStack *s, const char *module);

/* Reads ROOT/etc/pam.d/NAME or else ROOT/usr/lib/pam.d/NAME (ROOT NULL or "": /) and
 * appends its lines of TYPE (NULL: all) to S, following @include, include and substack;
 * an include that does not exist is skipped, as libpam does. Errors: -ENOENT when NAME
 * does not exist, -ELOOP when includes nest deeper than PAM_STACK_MAX_DEPTH, -E2BIG for
 * more than PAM_STACK_MAX_LINES lines, -EINVAL for an invalid file name, -EFBIG for a file
 * over PAM_STACK_MAX_FILE, or the errno of open()/read(). S may hold part of the stack
 * on error; pam_stack_done() frees it either way. */
int pam_stack_load(const char *root, const char *name, const char *type, PamStack *s);

/* The PAM services present under ROOT (NULL or "": /): the names of the files in
 * /etc/pam.d and /usr/lib/pam.d (one entry per name: /etc wins, as in libpam), sorted,
 * without the include-only files (common-*), the fallback stack "other", hidden files
 * and package-manager leftovers (*~, *.dpkg-*, *.ucf-*, *.rpmnew, *.rpmsave). A missing
 * directory is empty; any other error reading one is returned (-EACCES, -EIO, ...), and
 * -E2BIG beyond PAM_STACK_MAX_SERVICES. *ret is a NULL-terminated strv. */
int pam_services_list(const char *root, char ***ret);
