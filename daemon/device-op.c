/* device-op.c: device operations of bus requests, each in its own worker thread
 * (worker.h), completed in the order the key answered; cancellation (Cancel, caller
 * disconnect, deadline) and bounded concurrency. */
#include "device-op.h"

#include <unistd.h>

#include "log.h"
#include "util.h"

/* Extra time the loop waits past the device timeout before replying "timeout" itself. */
#define DEVICE_OP_DEADLINE_GRACE_MS 3000

int device_op_init(void)
{
	fido_init(0);
	return 0;
}

static void device_op_unlink(DeviceOp *op)
{
	DeviceOpSet *set = op->set;

	if (op->prev)
		op->prev->next = op->next;
	else if (set->head == op)
		set->head = op->next;
	if (op->next)
		op->next->prev = op->prev;
	op->next = op->prev = NULL;
	set->n--;
}

static void device_op_free(DeviceOp *op)
{
	if (!op)
		return;
	/* A thread still running happens only at shutdown: the op was cancelled; a key that
	 * ignores the cancel gets a few seconds, then the thread (and its data) are abandoned
	 * to process exit. */
	if (!worker_free(op->worker)) {
		log_warning("A device operation of %s does not finish; leaving it behind.",
		        strna(op->sender));
		return;
	}
	if (op->vtable && op->vtable->done)
		op->vtable->done(op);
	sd_event_source_disable_unref(op->deadline_source);
	sd_bus_message_unref(op->request);
	pthread_mutex_destroy(&op->lock);
	free(op->sender);
	free(op);
}

/* A caller that disconnects gives up its ops. One match on the bus driver's
 * NameOwnerChanged serves all ops and is added without waiting (sd_bus_track would ask the
 * bus synchronously whether each caller still exists: a round trip on the event loop per
 * request, which a flood of requests turns into a stall). */
static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error)
{
	DeviceOpSet *set = userdata;
	const char *name, *old_owner, *new_owner;

	if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) < 0)
		return 0;
	if (name[0] != ':' || !isempty(new_owner))
		return 0;
	for (DeviceOp *op = set->head; op; op = op->next)
		if (!op->replied && streq(op->sender, name)) {
			log_info("Caller %s disconnected: cancelling its request.", name);
			device_op_cancel(op, "cancelled");
		}
	return 0;
}

static int watch_senders(DeviceOpSet *set, sd_bus *bus)
{
	if (set->name_slot)
		return 0;
	return sd_bus_match_signal_async(bus, &set->name_slot, "org.freedesktop.DBus",
	        "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameOwnerChanged",
	        on_name_owner_changed, NULL, set);
}

int device_op_new(DeviceOpSet *set, Manager *owner, DeviceOpKind kind, const DeviceOpVTable *vt,
        sd_bus_message *request, uid_t caller_uid, uint32_t timeout_ms, void *data, DeviceOp **ret)
{
	DeviceOp *op;
	int r;

	size_t mine = 0, non_root = 0;

	for (DeviceOp *o = set->head; o; o = o->next)
		if (!o->replied) {
			mine += o->caller_uid == caller_uid;
			non_root += o->caller_uid != 0;
		}
	/* A global cap; non-root callers together never take the part kept for root (the
	 * PAM applications), and each of them a small share, so that no user starves
	 * another. */
	if (set->n >= DEVICE_OP_MAX ||
	        (caller_uid != 0 &&
	                (mine >= DEVICE_OP_MAX_PER_UID || non_root >= DEVICE_OP_MAX_NON_ROOT))) {
		/* DATA is ours even on failure. */
		DeviceOp tmp = {.set = set, .manager = owner, .vtable = vt, .data = data};
		if (vt->done)
			vt->done(&tmp);
		return -EBUSY;
	}
	op = calloc(1, sizeof(*op));
	if (!op) {
		DeviceOp tmp = {.set = set, .manager = owner, .vtable = vt, .data = data};
		if (vt->done)
			vt->done(&tmp);
		return -ENOMEM;
	}
	op->set = set;
	op->manager = owner;
	op->kind = kind;
	op->vtable = vt;
	op->data = data;
	op->caller_uid = caller_uid;
	op->timeout_ms = timeout_ms;
	pthread_mutex_init(&op->lock, NULL);
	op->request = sd_bus_message_ref(request);
	op->sender = strdup(strempty(sd_bus_message_get_sender(request)));
	if (!op->sender) {
		device_op_free(op);
		return -ENOMEM;
	}
	r = watch_senders(set, sd_bus_message_get_bus(request));
	if (r < 0) {
		device_op_free(op);
		return r;
	}
	op->next = set->head;
	if (set->head)
		set->head->prev = op;
	set->head = op;
	set->n++;
	*ret = op;
	return 0;
}

static atomic_uint_fast64_t device_op_seq = 1;

void device_op_stamp(DeviceOp *op)
{
	op->seq = atomic_fetch_add(&device_op_seq, 1);
}

static void device_op_work(void *p)
{
	DeviceOp *op = p;

	op->vtable->work(op);
	if (op->caller_uid == 0)
		atomic_fetch_sub(&op->set->root_active, 1);
	pthread_mutex_lock(&op->lock);
	op->n_active = 0; /* the work has closed its keys */
	pthread_mutex_unlock(&op->lock);
	if (op->seq == 0)
		device_op_stamp(op);
}

static void device_op_finish(DeviceOp *op)
{
	worker_join(op->worker);
	if (!op->replied) {
		op->vtable->complete(op);
		op->replied = true;
	}
	device_op_unlink(op);
	device_op_free(op);
}

static void on_worker_done(void *userdata)
{
	DeviceOp *op = userdata;
	DeviceOpSet *set = op->set;

	/* Every op whose thread has finished and that the key answered before this one is
	 * completed first (their eventfds may be pending in this same iteration). */
	for (;;) {
		DeviceOp *first = NULL;

		for (DeviceOp *o = set->head; o; o = o->next)
			if (worker_finished(o->worker) && (!first || o->seq < first->seq))
				first = o;
		if (!first || first->seq > op->seq)
			break;
		if (first == op)
			break;
		device_op_finish(first);
	}
	device_op_finish(op);
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
	DeviceOp *op = userdata;

	log_info("Request of %s passed its deadline: cancelling.", strna(op->sender));
	device_op_cancel(op, "timeout");
	return 0;
}

int device_op_start(DeviceOp *op)
{
	DeviceOpSet *set = op->set;
	uint64_t now;
	int r;

	r = sd_event_now(set->event, CLOCK_MONOTONIC, &now);
	if (r < 0)
		goto fail;
	r = sd_event_add_time(set->event, &op->deadline_source, CLOCK_MONOTONIC,
	        now + ((uint64_t)op->timeout_ms + DEVICE_OP_DEADLINE_GRACE_MS) * 1000, 0,
	        on_deadline, op);
	if (r < 0)
		goto fail;
	if (op->caller_uid == 0)
		atomic_fetch_add(&set->root_active, 1);
	r = worker_start(set->event, device_op_work, on_worker_done, op, &op->worker);
	if (r < 0) {
		if (op->caller_uid == 0)
			atomic_fetch_sub(&set->root_active, 1);
		goto fail;
	}
	return 0;
fail:
	device_op_unlink(op);
	device_op_free(op);
	return r;
}

int device_op_add_active(DeviceOp *op, fido_dev_t *dev)
{
	int r = 0;

	pthread_mutex_lock(&op->lock);
	if (op->n_active >= DEVICE_OP_MAX_ACTIVE)
		r = -EBUSY;
	else {
		op->active_devs[op->n_active++] = dev;
		if (op->cancel_requested)
			(void)fido_dev_cancel(dev);
	}
	pthread_mutex_unlock(&op->lock);
	return r;
}

void device_op_remove_active(DeviceOp *op, fido_dev_t *dev)
{
	pthread_mutex_lock(&op->lock);
	for (size_t i = 0; i < op->n_active; i++)
		if (op->active_devs[i] == dev) {
			op->active_devs[i] = op->active_devs[--op->n_active];
			break;
		}
	pthread_mutex_unlock(&op->lock);
}

bool device_op_cancelled(DeviceOp *op)
{
	bool c;

	pthread_mutex_lock(&op->lock);
	c = op->cancel_requested;
	pthread_mutex_unlock(&op->lock);
	return c;
}

void device_op_expect_root(DeviceOpSet *set, uint32_t ms)
{
	atomic_store(&set->root_expected_until_ms, now_monotonic_ms() + ms);
}

void device_op_yield_to_root(DeviceOp *op)
{
	if (op->caller_uid == 0)
		return;
	while ((atomic_load(&op->set->root_active) > 0 ||
	               now_monotonic_ms() < atomic_load(&op->set->root_expected_until_ms)) &&
	        !device_op_cancelled(op))
		(void)usleep(5000);
}

void device_op_cancel(DeviceOp *op, const char *reason)
{
	pthread_mutex_lock(&op->lock);
	op->cancel_requested = true;
	for (size_t i = 0; i < op->n_active; i++)
		(void)fido_dev_cancel(op->active_devs[i]);
	pthread_mutex_unlock(&op->lock);
	if (!op->replied) {
		op->vtable->abort(op, reason);
		op->replied = true;
	}
	/* No deadline needed any more; the thread's eventfd frees the op. */
	op->deadline_source = sd_event_source_disable_unref(op->deadline_source);
}

int device_op_cancel_sender(DeviceOpSet *set, const char *sender)
{
	int n = 0;

	for (DeviceOp *op = set->head; op; op = op->next)
		if (!op->replied && sender && streq(op->sender, sender)) {
			device_op_cancel(op, "cancelled");
			n++;
		}
	return n;
}

void device_op_cancel_all(DeviceOpSet *set)
{
	for (DeviceOp *op = set->head; op; op = op->next)
		device_op_cancel(op, "cancelled");
}

void device_op_free_all(DeviceOpSet *set)
{
	set->name_slot = sd_bus_slot_unref(set->name_slot);
	while (set->head) {
		DeviceOp *op = set->head;
		device_op_cancel(op, "cancelled");
		device_op_unlink(op);
		device_op_free(op);
	}
}
