/* worker.c: one thread per blocking job, its end reported through an eventfd (worker.h). */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct Worker {
	worker_work_fn work;
	worker_done_fn done;
	void *userdata;
	int done_fd; /* the thread writes 1 when WORK has returned */
	sd_event_source *done_source;
	pthread_t thread;
	bool thread_started; /* and not joined yet */
	atomic_bool finished;
};

static void *worker_thread(void *p)
{
	Worker *w = p;
	uint64_t one = 1;

	w->work(w->userdata);
	atomic_store(&w->finished, true);
	while (write(w->done_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	return NULL;
}

static int on_worker_done(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Worker *w = userdata;

	worker_join(w);
	w->done(w->userdata);
	return 0;
}

static void worker_release(Worker *w)
{
	sd_event_source_disable_unref(w->done_source);
	if (w->done_fd >= 0)
		close(w->done_fd);
	free(w);
}

int worker_start(
        sd_event *event, worker_work_fn work, worker_done_fn done, void *userdata, Worker **ret)
{
	Worker *w;
	int r;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->work = work;
	w->done = done;
	w->userdata = userdata;
	w->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->done_fd < 0) {
		r = -errno;
		worker_release(w);
		return r;
	}
	r = sd_event_add_io(event, &w->done_source, w->done_fd, EPOLLIN, on_worker_done, w);
	if (r >= 0)
		r = -pthread_create(&w->thread, NULL, worker_thread, w);
	if (r < 0) {
		worker_release(w);
		return r;
	}
	w->thread_started = true;
	*ret = w;
	return 0;
}

bool worker_finished(const Worker *w)
{
	return w && atomic_load(&w->finished);
}

void worker_join(Worker *w)
{
	if (w->thread_started) {
		(void)pthread_join(w->thread, NULL);
		w->thread_started = false;
	}
	/* Nothing more to hear from the thread. */
	w->done_source = sd_event_source_disable_unref(w->done_source);
}

bool worker_free(Worker *w)
{
	if (!w)
		return true;
	if (w->thread_started) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += WORKER_SHUTDOWN_WAIT_S;
		if (pthread_timedjoin_np(w->thread, NULL, &ts) != 0) {
			(void)pthread_detach(w->thread);
			return false; /* W stays: the thread still writes to it */
		}
		w->thread_started = false;
	}
	worker_release(w);
	return true;
}
