/* testbed-exit-probe.c: LD_PRELOAD probe for exit-loop.py (issue 14). It makes "a thread
 * still running while the process exits" visible on every run instead of now and then.
 *
 * It wraps GLib's g_main_loop_run() and g_main_loop_quit(). A loop run by a thread other
 * than the main one (in keyward-testbed: umockdev's worker thread) counts as ending from
 * the moment someone asks it to quit (umockdev does when the testbed object is finalized)
 * until its thread has left g_main_loop_run(), which lingers LINGER_MS first. A process
 * that joins that thread just waits that long. One that does not reaches its exit
 * handlers while the thread is still ending: an exit handler registered first (so it runs
 * last, after OpenSSL's OPENSSL_cleanup()) then prints a line to stderr, which
 * exit-loop.py counts as an abnormal run. Loops nobody quits (GDBus's worker) never count.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define LINGER_MS 20
#define MAX_LOOPS 16

/* GLib's (GMainLoop * without GLib's headers), wrapped */
void g_main_loop_run(void *loop);
void g_main_loop_quit(void *loop);

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static struct {
	void *loop; /* run by a thread other than the main one */
	bool quit;  /* asked to quit: ending until its thread leaves g_main_loop_run() */
} loops[MAX_LOOPS];

static void *next(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

static void check_at_exit(void)
{
	static const char msg[] = "testbed-exit-probe: a thread whose main loop was asked to quit "
	                          "was still running when the process ran its exit handlers\n";
	bool ending = false;

	pthread_mutex_lock(&mutex);
	for (int i = 0; i < MAX_LOOPS; i++)
		ending = ending || (loops[i].loop && loops[i].quit);
	pthread_mutex_unlock(&mutex);
	if (ending)
		(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
}

__attribute__((constructor)) static void probe_init(void)
{
	(void)atexit(check_at_exit);
}

void g_main_loop_quit(void *loop)
{
	void (*real)(void *) = (void (*)(void *))next("g_main_loop_quit");

	pthread_mutex_lock(&mutex);
	for (int i = 0; i < MAX_LOOPS; i++)
		if (loops[i].loop == loop)
			loops[i].quit = true;
	pthread_mutex_unlock(&mutex);
	real(loop);
}

void g_main_loop_run(void *loop)
{
	void (*real)(void *) = (void (*)(void *))next("g_main_loop_run");
	struct timespec ts = {.tv_sec = 0, .tv_nsec = LINGER_MS * 1000000L};
	int slot = -1;

	if (syscall(SYS_gettid) == getpid()) {
		real(loop);
		return;
	}
	pthread_mutex_lock(&mutex);
	for (int i = 0; i < MAX_LOOPS && slot < 0; i++)
		if (!loops[i].loop) {
			slot = i;
			loops[i].loop = loop;
			loops[i].quit = false;
		}
	pthread_mutex_unlock(&mutex);
	real(loop);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	if (slot >= 0) {
		pthread_mutex_lock(&mutex);
		loops[slot].loop = NULL;
		loops[slot].quit = false;
		pthread_mutex_unlock(&mutex);
	}
}
