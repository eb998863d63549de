/* process.h: what keywardd knows about processes — start times that tell a reused pid
 * apart, ancestry, and the process tree of an elevation (the process sudo/su runs in and
 * every descendant), read from /proc. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* A process named so that a reused pid is never mistaken for it. */
typedef struct ProcessId {
	pid_t pid;
	uint64_t start; /* /proc/PID/stat field 22 */
} ProcessId;

/* At most this many processes in one elevation's tree: past it the rest is still
 * signalled by the next scan. */
#define PROCESS_TREE_MAX 4096

/* Start time of PID (clock ticks since boot, /proc/PID/stat field 22). */
int pid_start_time(pid_t pid, uint64_t *ret);
/* Parent pid, start time and state letter (R, S, Z, ...) of PID in one read; each
 * output may be NULL. -ESRCH when there is no such process. */
int pid_stat(pid_t pid, pid_t *ret_ppid, uint64_t *ret_start, char *ret_state);
/* Whether P (still the process that started at P->start) is ANCESTOR or one of its
 * descendants: 1 yes, 0 no, -errno when P is gone. */
int process_in_tree(const ProcessId *p, const ProcessId *ancestor);
/* Whether P is still the process it names and has not ended (a zombie has). */
bool process_alive(const ProcessId *p);

/* The tree rooted at ROOT: ROOT (if still alive) and every live descendant of it or of
 * the processes already in *SET (so that children reparented after their parent died
 * are still found once they were seen). New members are appended to *SET (*N entries,
 * capacity PROCESS_TREE_MAX). Returns how many were added, or -errno. */
int process_tree_collect(const ProcessId *root, ProcessId *set, size_t *n);
