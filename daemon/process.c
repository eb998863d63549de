/* process.c: /proc readers for keywardd — start times, ancestry and the process tree an
 * end-elevation signals. Nothing here signals or logs; removal.c decides. */
#include "process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define PROCESS_ANCESTRY_MAX 256 /* deeper chains are not followed */

int pid_stat(pid_t pid, pid_t *ret_ppid, uint64_t *ret_start, char *ret_state)
{
	_cleanup_free_ char *text = NULL;
	char path[64], *p, *save = NULL;
	_cleanup_close_ int fd = -EBADF;
	unsigned long long ppid = 0, start = 0;
	bool have_ppid = false, have_start = false;
	size_t len;
	int r;

	if (pid <= 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	r = read_full_fd(fd, 4096, &text, &len);
	if (r < 0)
		return r;
	/* The command name may hold spaces and ')': the fields start after the last ')'. */
	p = strrchr(text, ')');
	if (!p)
		return -EBADMSG;
	p++;
	/* Field 3 (state) is the first token; ppid is field 4, starttime field 22. */
	for (int field = 3; (p = strtok_r(field == 3 ? p : NULL, " ", &save)); field++) {
		char *end;
		unsigned long long v;

		if (field == 3 && ret_state)
			*ret_state = p[0];
		if (field != 4 && field != 22)
			continue;
		errno = 0;
		v = strtoull(p, &end, 10);
		if (errno || *end || end == p)
			return -EBADMSG;
		if (field == 4) {
			ppid = v;
			have_ppid = true;
		} else {
			start = v;
			have_start = true;
			break;
		}
	}
	if (!have_ppid || !have_start || ppid > INT32_MAX)
		return -EBADMSG;
	if (ret_ppid)
		*ret_ppid = (pid_t)ppid;
	if (ret_start)
		*ret_start = start;
	return 0;
}

int pid_start_time(pid_t pid, uint64_t *ret)
{
	return pid_stat(pid, NULL, ret, NULL);
}

bool process_alive(const ProcessId *p)
{
	uint64_t start;
	char state = '?';

	if (!p || p->pid <= 1 || p->start == 0)
		return false;
	/* A zombie has ended; only its parent's wait() is missing. */
	return pid_stat(p->pid, NULL, &start, &state) >= 0 && start == p->start && state != 'Z' &&
	       state != 'X';
}

int process_in_tree(const ProcessId *p, const ProcessId *ancestor)
{
	pid_t cur = p->pid, parent;
	uint64_t start;
	int r;

	r = pid_stat(cur, &parent, &start, NULL);
	if (r < 0)
		return r;
	if (start != p->start)
		return -ESRCH;
	for (unsigned depth = 0; depth < PROCESS_ANCESTRY_MAX; depth++) {
		if (cur == ancestor->pid)
			return start == ancestor->start;
		if (parent <= 1)
			return 0;
		cur = parent;
		r = pid_stat(cur, &parent, &start, NULL);
		if (r < 0)
			return 0;
	}
	return 0;
}

typedef struct ProcEntry {
	pid_t pid, ppid;
	uint64_t start;
} ProcEntry;

static bool set_contains(const ProcessId *set, size_t n, pid_t pid, uint64_t start)
{
	for (size_t i = 0; i < n; i++)
		if (set[i].pid == pid && set[i].start == start)
			return true;
	return false;
}

static int cmp_entry(const void *a, const void *b)
{
	pid_t x = ((const ProcEntry *)a)->pid, y = ((const ProcEntry *)b)->pid;

	return x < y ? -1 : x > y;
}

/* Whether the live parent of E (found in ALL, sorted by pid) is a member of SET: the
 * same pid AND the same start time, so a reused pid adopts nobody into the tree. */
static bool parent_in_set(
        const ProcEntry *all, size_t n_all, const ProcEntry *e, const ProcessId *set, size_t n)
{
	ProcEntry key = {.pid = e->ppid};
	const ProcEntry *parent = bsearch(&key, all, n_all, sizeof(*all), cmp_entry);

	return parent && set_contains(set, n, parent->pid, parent->start);
}

int process_tree_collect(const ProcessId *root, ProcessId *set, size_t *n)
{
	_cleanup_free_ ProcEntry *all = NULL;
	size_t n_all = 0, cap = 0, added = 0;
	struct dirent *de;
	DIR *d;

	if (!root || root->pid <= 1 || root->start == 0)
		return -EINVAL;
	if (process_alive(root) && !set_contains(set, *n, root->pid, root->start)) {
		if (*n >= PROCESS_TREE_MAX)
			return -E2BIG;
		set[(*n)++] = *root;
		added++;
	}
	d = opendir("/proc");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		unsigned long v;
		ProcEntry e;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		errno = 0;
		v = strtoul(de->d_name, &end, 10);
		if (errno || *end || v > INT32_MAX)
			continue;
		e.pid = (pid_t)v;
		if (pid_stat(e.pid, &e.ppid, &e.start, NULL) < 0)
			continue; /* gone meanwhile */
		if (n_all == cap) {
			size_t ncap = cap ? cap * 2 : 512;
			ProcEntry *na = reallocarray(all, ncap, sizeof(*all));
			if (!na) {
				closedir(d);
				return -ENOMEM;
			}
			all = na;
			cap = ncap;
		}
		all[n_all++] = e;
	}
	closedir(d);
	qsort(all, n_all, sizeof(*all), cmp_entry);
	/* Fixpoint: each pass adds the children of members; the tree is shallow. */
	for (bool grew = true; grew;) {
		grew = false;
		for (size_t i = 0; i < n_all; i++) {
			if (all[i].pid <= 1 || !parent_in_set(all, n_all, &all[i], set, *n) ||
			        set_contains(set, *n, all[i].pid, all[i].start))
				continue;
			if (*n >= PROCESS_TREE_MAX)
				return (int)added;
			set[(*n)++] = (ProcessId){all[i].pid, all[i].start};
			added++;
			grew = true;
		}
	}
	return (int)added;
}
