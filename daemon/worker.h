/* worker.h: the daemon's one way to run blocking work (libfido2 calls) off the event loop:
 * a thread per job whose end is reported to the loop through an eventfd, joined there,
 * then handed to the owner's callback. Used by device-op.c (Authenticate, Enroll) and
 * removal.c (the silent proof of a returning key). Adapter layer: sd-event and pthreads. */
#pragma once

#include <stdbool.h>

#include <systemd/sd-event.h>

/* At shutdown a thread that does not end within this many seconds is left behind. */
#define WORKER_SHUTDOWN_WAIT_S 3

typedef struct Worker Worker;

typedef void (*worker_work_fn)(void *userdata); /* in the thread */
typedef void (*worker_done_fn)(void *userdata); /* in the loop, after the thread was joined */

/* Runs WORK(USERDATA) in a new thread; once it has returned, DONE(USERDATA) runs in EVENT's
 * loop. DONE may free the worker. */
int worker_start(
        sd_event *event, worker_work_fn work, worker_done_fn done, void *userdata, Worker **ret);
/* Whether WORK has returned (the thread may not be joined yet). Any thread. */
bool worker_finished(const Worker *w);
/* From the loop, for a finished worker whose DONE has not run: joins it now, and DONE will
 * not be called (the owner completes it itself, e.g. to keep an order). */
void worker_join(Worker *w);
/* Frees W. A thread still running gets WORKER_SHUTDOWN_WAIT_S to end; past that it is
 * detached and W (and what the thread uses) is left to process exit: returns false. */
bool worker_free(Worker *w);
