/* test-process.c: daemon/process.c on real processes forked here — start times, ancestry,
 * the elevation tree (children, grandchildren, orphans seen before their parent died),
 * zombies counted as ended, and a process group member outside the tree left alone. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "process.h"

static ProcessId self_id(pid_t pid)
{
	ProcessId p = {pid, 0};

	CHECK(pid_start_time(pid, &p.start) == 0 && p.start > 0);
	return p;
}

/* A child that forks a grandchild and then sleeps; pipe tells the grandchild's pid. */
static pid_t spawn_pair(pid_t *ret_grandchild)
{
	int fds[2];
	pid_t child;

	CHECK(pipe(fds) == 0);
	child = fork();
	if (child == 0) {
		pid_t g = fork();

		if (g == 0) {
			alarm(30); /* never outlive a failed test for long */
			pause();
			_exit(0);
		}
		(void)!write(fds[1], &g, sizeof(g));
		alarm(30);
		pause();
		_exit(0);
	}
	CHECK(read(fds[0], ret_grandchild, sizeof(*ret_grandchild)) == sizeof(*ret_grandchild));
	close(fds[0]);
	close(fds[1]);
	return child;
}

static bool set_has(const ProcessId *set, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (set[i].pid == pid)
			return true;
	return false;
}

int main(void)
{
	ProcessId *set = calloc(PROCESS_TREE_MAX, sizeof(ProcessId));
	ProcessId root, outsider_id, bogus;
	pid_t child, grandchild, outsider;
	size_t n = 0;
	pid_t ppid = -1;
	char state = 0;
	int r, status;

	CHECK(set != NULL);
	/* Orphans of our children are reparented to us, so they stay reapable here. */
	CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);

	CHECK(pid_stat(getpid(), &ppid, NULL, &state) == 0 && ppid == getppid() && state == 'R');
	CHECK(pid_stat(0, NULL, NULL, NULL) == -EINVAL);
	CHECK(pid_stat(4194304 + 7, NULL, NULL, NULL) == -ESRCH);

	child = spawn_pair(&grandchild);
	/* Same process group as ours and as the tree: must not be swept in. */
	outsider = fork();
	if (outsider == 0) {
		alarm(30);
		pause();
		_exit(0);
	}
	root = self_id(child);
	outsider_id = self_id(outsider);

	CHECK(process_alive(&root));
	bogus = root;
	bogus.start++;
	CHECK(!process_alive(&bogus)); /* a reused pid is not the process */

	{
		ProcessId g = self_id(grandchild);
		CHECK(process_in_tree(&g, &root) == 1);
		CHECK(process_in_tree(&root, &root) == 1);
		CHECK(process_in_tree(&outsider_id, &root) == 0);
		CHECK(process_in_tree(&g, &bogus) == 0);
	}

	r = process_tree_collect(&root, set, &n);
	CHECK(r == 2 && n == 2);
	CHECK(set_has(set, n, child) && set_has(set, n, grandchild) && !set_has(set, n, outsider));
	CHECK(!set_has(set, n, getpid()));
	/* A second scan adds nothing. */
	CHECK(process_tree_collect(&root, set, &n) == 0 && n == 2);
	CHECK(process_tree_collect(&bogus, set, &n) >= 0);

	/* The child dies: it is a zombie until reaped (ended), the grandchild is orphaned but
	 * was seen, so it is still a member. */
	CHECK(kill(child, SIGKILL) == 0);
	for (int i = 0; i < 200; i++) {
		if (pid_stat(child, NULL, NULL, &state) == 0 && state == 'Z')
			break;
		usleep(10000);
	}
	CHECK(state == 'Z');
	CHECK(!process_alive(&root));
	{
		ProcessId g = self_id(grandchild);
		CHECK(process_alive(&g));
	}
	CHECK(waitpid(child, &status, 0) == child);
	CHECK(kill(grandchild, SIGKILL) == 0);
	CHECK(kill(outsider, SIGKILL) == 0);
	for (int i = 0; i < 2; i++)
		(void)wait(NULL);
	CHECK(process_tree_collect(&root, set, &n) == 0);
	CHECK(process_tree_collect(&(ProcessId){1, 0}, set, &n) == -EINVAL);
	free(set);
	printf("test-process: OK\n");
	return 0;
}
