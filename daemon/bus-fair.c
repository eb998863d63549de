/* bus-fair.c: per-uid queues, round robin and rate of the non-root bus calls, and the
 * cache of who is behind a connection (bus-fair.h). */
#include "bus-fair.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus-names.h"
#include "util.h"

typedef struct QueuedCall {
	sd_bus_message *msg;
	const void *method;
	pid_t pid;
	struct QueuedCall *next;
} QueuedCall;

typedef struct UidState {
	uid_t uid;
	QueuedCall *head, *tail;
	unsigned n_queued;
	uint64_t tokens_milli; /* 1000 per call it may be served */
	uint64_t refilled_us;  /* CLOCK_MONOTONIC */
	bool in_ring;
	struct UidState *next;      /* all known uids, most recently used first */
	struct UidState *ring_next; /* uids with calls waiting, in serving order */
} UidState;

typedef struct CacheEntry {
	char *sender;
	uid_t uid;
	pid_t pid;
	struct CacheEntry *bucket_next;
} CacheEntry;

#define CACHE_BUCKETS 1024

/* Calls of a connection keywardd does not know yet, waiting for the bus to say who it
 * is (GetConnectionCredentials, asynchronous). */
typedef struct Lookup {
	struct BusFair *f;
	char *sender;
	sd_bus_slot *slot;
	QueuedCall *head, *tail;
	struct Lookup *next;
} Lookup;

typedef struct HeldBack {
	sd_bus_message *msg;
	uint64_t until_us;
	struct HeldBack *next;
} HeldBack;

struct BusFair {
	sd_event *event;
	sd_event_source *defer, *timer;
	bus_fair_serve_fn serve, route;
	void *userdata;

	Lookup *lookups;
	size_t n_parked; /* calls in lookups */

	UidState *uids;
	size_t n_uids;
	UidState *ring_head, *ring_tail;
	size_t waiting;

	HeldBack *held_head, *held_tail; /* Busy answers held back, oldest first */
	size_t n_held;
	sd_event_source *held_timer;

	CacheEntry *buckets[CACHE_BUCKETS];
	CacheEntry *slots[BUS_FAIR_CACHE_MAX]; /* replaced in turn: the oldest goes */
	size_t next_slot;

	BusFairStats stats;
};

/* --- who is calling ----------------------------------------------------------------- */

static unsigned sender_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % CACHE_BUCKETS;
}

static void cache_evict(BusFair *f, CacheEntry *e)
{
	for (CacheEntry **p = &f->buckets[sender_hash(e->sender)]; *p; p = &(*p)->bucket_next)
		if (*p == e) {
			*p = e->bucket_next;
			break;
		}
	free(e->sender);
	free(e);
}

static void cache_add(BusFair *f, const char *sender, uid_t uid, pid_t pid)
{
	CacheEntry *e;
	unsigned h;

	/* Remembered for the life of the connection (a unique name is not reused). */
	e = calloc(1, sizeof(*e));
	if (!e || !(e->sender = strdup(sender))) {
		free(e);
		return; /* not cached: asked again next time */
	}
	e->uid = uid;
	e->pid = pid;
	if (f->slots[f->next_slot])
		cache_evict(f, f->slots[f->next_slot]);
	f->slots[f->next_slot] = e;
	f->next_slot = (f->next_slot + 1) % BUS_FAIR_CACHE_MAX;
	h = sender_hash(sender);
	e->bucket_next = f->buckets[h];
	f->buckets[h] = e;
}

static int read_credentials(sd_bus_message *reply, uid_t *ret_uid, pid_t *ret_pid)
{
	bool have_uid = false;
	uint32_t v;
	int r;

	*ret_pid = 0;
	r = sd_bus_message_enter_container(reply, 'a', "{sv}");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
		const char *key;

		r = sd_bus_message_read(reply, "s", &key);
		if (r < 0)
			return r;
		if (streq(key, "UnixUserID") || streq(key, "ProcessID")) {
			r = sd_bus_message_read(reply, "v", "u", &v);
			if (r < 0)
				return r;
			if (key[0] == 'U') {
				*ret_uid = (uid_t)v;
				have_uid = true;
			} else
				*ret_pid = (pid_t)v;
		} else if ((r = sd_bus_message_skip(reply, "v")) < 0)
			return r;
		r = sd_bus_message_exit_container(reply);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	return have_uid ? 0 : -ENODATA;
}

static Lookup *lookup_free(Lookup *l)
{
	while (l->head) {
		QueuedCall *c = l->head;

		l->head = c->next;
		sd_bus_message_unref(c->msg);
		free(c);
	}
	sd_bus_slot_unref(l->slot);
	free(l->sender);
	free(l);
	return NULL;
}

static int on_credentials(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	Lookup *l = userdata, **p;
	BusFair *f = l->f;
	uid_t uid = (uid_t)-1;
	pid_t pid = 0;
	int r = -EIO;

	for (p = &f->lookups; *p; p = &(*p)->next)
		if (*p == l) {
			*p = l->next;
			break;
		}
	if (!sd_bus_message_is_method_error(reply, NULL))
		r = read_credentials(reply, &uid, &pid);
	if (r >= 0)
		cache_add(f, l->sender, uid, pid);
	else
		uid = (uid_t)-1;
	/* The calls set aside go on their way (UID -1: refused, nobody knows who sent them). */
	while (l->head) {
		QueuedCall *c = l->head;

		l->head = c->next;
		f->n_parked--;
		f->route(c->msg, c->method, uid, pid, f->userdata);
		sd_bus_message_unref(c->msg);
		free(c);
	}
	lookup_free(l);
	return 0;
}

int bus_fair_identify(
        BusFair *f, sd_bus_message *msg, const void *method, uid_t *ret_uid, pid_t *ret_pid)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
	const char *sender = sd_bus_message_get_sender(msg);
	sd_bus_creds *creds = NULL;
	QueuedCall *c;
	Lookup *l;
	uid_t uid = (uid_t)-1;
	pid_t pid = 0;
	int r;

	if (!sender) {
		/* A direct connection (no bus driver to ask): its peer credentials. */
		r = sd_bus_query_sender_creds(msg, SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID, &creds);
		if (r >= 0) {
			r = sd_bus_creds_get_euid(creds, &uid);
			if (r < 0)
				r = sd_bus_creds_get_uid(creds, &uid);
			if (sd_bus_creds_get_pid(creds, &pid) < 0)
				pid = 0;
		}
		sd_bus_creds_unref(creds);
		if (r < 0)
			return r;
		*ret_uid = uid;
		*ret_pid = pid;
		return 1;
	}
	for (CacheEntry *e = f->buckets[sender_hash(sender)]; e; e = e->bucket_next)
		if (streq(e->sender, sender)) {
			*ret_uid = e->uid;
			*ret_pid = e->pid;
			return 1;
		}
	/* Ask the bus without waiting; the call waits beside the question. */
	if (f->n_parked >= BUS_FAIR_PARKED_MAX)
		return -EBUSY;
	for (l = f->lookups; l; l = l->next)
		if (streq(l->sender, sender))
			break;
	if (!l) {
		l = calloc(1, sizeof(*l));
		if (!l || !(l->sender = strdup(sender))) {
			free(l);
			return -ENOMEM;
		}
		l->f = f;
		r = sd_bus_message_new_method_call(sd_bus_message_get_bus(msg), &call,
		        "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
		        "GetConnectionCredentials");
		if (r >= 0)
			r = sd_bus_message_append(call, "s", sender);
		if (r >= 0)
			r = sd_bus_call_async(sd_bus_message_get_bus(msg), &l->slot, call,
			        on_credentials, l, BUS_FAIR_LOOKUP_TIMEOUT_USEC);
		if (r < 0) {
			lookup_free(l);
			return r;
		}
		l->next = f->lookups;
		f->lookups = l;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->msg = sd_bus_message_ref(msg);
	c->method = method;
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
	f->n_parked++;
	return 0;
}

/* --- queues ------------------------------------------------------------------------- */

static uint64_t now_us(BusFair *f)
{
	uint64_t t = 0;

	if (sd_event_now(f->event, CLOCK_MONOTONIC, &t) < 0)
		t = now_monotonic_ms() * 1000;
	return t;
}

static void refill(UidState *u, uint64_t now)
{
	uint64_t add = (now - u->refilled_us) * BUS_FAIR_RATE_PER_S / 1000;

	u->tokens_milli += add;
	if (u->tokens_milli > BUS_FAIR_BURST * 1000u)
		u->tokens_milli = BUS_FAIR_BURST * 1000u;
	if (add > 0)
		u->refilled_us = now;
}

static UidState *uid_state(BusFair *f, uid_t uid)
{
	UidState *u, **p, **last_idle = NULL;

	for (p = &f->uids; *p; p = &(*p)->next) {
		if ((*p)->uid == uid) {
			u = *p;
			*p = u->next; /* to the front */
			u->next = f->uids;
			f->uids = u;
			return u;
		}
		if (!(*p)->in_ring)
			last_idle = p;
	}
	if (f->n_uids >= BUS_FAIR_UIDS_MAX && last_idle) {
		/* Forget the uid idle the longest (it starts again with a full burst). */
		u = *last_idle;
		*last_idle = u->next;
		free(u);
		f->n_uids--;
	}
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->uid = uid;
	u->tokens_milli = BUS_FAIR_BURST * 1000u;
	u->refilled_us = now_us(f);
	u->next = f->uids;
	f->uids = u;
	f->n_uids++;
	return u;
}

static void ring_append(BusFair *f, UidState *u)
{
	u->ring_next = NULL;
	if (f->ring_tail)
		f->ring_tail->ring_next = u;
	else
		f->ring_head = u;
	f->ring_tail = u;
	u->in_ring = true;
}

static void ring_remove(BusFair *f, UidState *u)
{
	UidState *prev = NULL;

	for (UidState *x = f->ring_head; x; prev = x, x = x->ring_next)
		if (x == u) {
			if (prev)
				prev->ring_next = u->ring_next;
			else
				f->ring_head = u->ring_next;
			if (f->ring_tail == u)
				f->ring_tail = prev;
			break;
		}
	u->ring_next = NULL;
	u->in_ring = false;
}

/* Serve now (defer source) if some uid with calls waiting may be served, else wake up when
 * the first of them may. */
static void schedule(BusFair *f)
{
	uint64_t now = now_us(f), wake = UINT64_MAX;

	if (!f->ring_head) {
		(void)sd_event_source_set_enabled(f->defer, SD_EVENT_OFF);
		(void)sd_event_source_set_enabled(f->timer, SD_EVENT_OFF);
		return;
	}
	for (UidState *u = f->ring_head; u; u = u->ring_next) {
		refill(u, now);
		if (u->tokens_milli >= 1000) {
			(void)sd_event_source_set_enabled(f->timer, SD_EVENT_OFF);
			(void)sd_event_source_set_enabled(f->defer, SD_EVENT_ONESHOT);
			return;
		}
		uint64_t t = now + (1000 - u->tokens_milli) * 1000 / BUS_FAIR_RATE_PER_S + 1;
		if (t < wake)
			wake = t;
	}
	(void)sd_event_source_set_enabled(f->defer, SD_EVENT_OFF);
	(void)sd_event_source_set_time(f->timer, wake);
	(void)sd_event_source_set_enabled(f->timer, SD_EVENT_ONESHOT);
}

static int serve_next(BusFair *f)
{
	uint64_t now = now_us(f);

	for (UidState *u = f->ring_head; u; u = u->ring_next) {
		QueuedCall *c;

		refill(u, now);
		if (u->tokens_milli < 1000)
			continue;
		u->tokens_milli -= 1000;
		c = u->head;
		u->head = c->next;
		if (!u->head)
			u->tail = NULL;
		u->n_queued--;
		f->waiting--;
		/* Round robin: this uid goes to the back of the line. */
		ring_remove(f, u);
		if (u->head)
			ring_append(f, u);
		f->stats.served++;
		f->serve(c->msg, c->method, u->uid, c->pid, f->userdata);
		sd_bus_message_unref(c->msg);
		free(c);
		break;
	}
	schedule(f);
	return 0;
}

static int on_defer(sd_event_source *s, void *userdata)
{
	return serve_next(userdata);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	return serve_next(userdata);
}

static void reply_busy(sd_bus_message *msg)
{
	(void)sd_bus_reply_method_errorf(msg, KEYWARD_BUS_ERROR_BUSY,
	        "keywardd is busy with your earlier requests; try again shortly.");
}

static void held_arm(BusFair *f)
{
	if (!f->held_head) {
		(void)sd_event_source_set_enabled(f->held_timer, SD_EVENT_OFF);
		return;
	}
	(void)sd_event_source_set_time(f->held_timer, f->held_head->until_us);
	(void)sd_event_source_set_enabled(f->held_timer, SD_EVENT_ONESHOT);
}

static void held_release(BusFair *f, uint64_t now)
{
	while (f->held_head && f->held_head->until_us <= now) {
		HeldBack *h = f->held_head;

		f->held_head = h->next;
		if (!f->held_head)
			f->held_tail = NULL;
		f->n_held--;
		reply_busy(h->msg);
		sd_bus_message_unref(h->msg);
		free(h);
	}
	held_arm(f);
}

static int on_held_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	BusFair *f = userdata;

	held_release(f, now_us(f));
	return 0;
}

/* A call refused as Busy: the answer held back for a while, or -EBUSY (answer now). */
static int refuse(BusFair *f, sd_bus_message *msg)
{
	HeldBack *h;

	f->stats.refused_busy++;
	if (f->n_held >= BUS_FAIR_TARPIT_MAX || !(h = calloc(1, sizeof(*h))))
		return -EBUSY;
	h->msg = sd_bus_message_ref(msg);
	h->until_us = now_us(f) + BUS_FAIR_TARPIT_MS * 1000u;
	if (f->held_tail)
		f->held_tail->next = h;
	else
		f->held_head = h;
	f->held_tail = h;
	f->n_held++;
	if (f->n_held == 1)
		held_arm(f);
	return 0;
}

int bus_fair_enqueue(BusFair *f, sd_bus_message *msg, const void *method, uid_t uid, pid_t pid)
{
	UidState *u;
	QueuedCall *c;

	if (f->waiting >= BUS_FAIR_MAX_TOTAL)
		return refuse(f, msg);
	u = uid_state(f, uid);
	if (!u)
		return -ENOMEM;
	if (u->n_queued >= BUS_FAIR_MAX_QUEUED)
		return refuse(f, msg);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->msg = sd_bus_message_ref(msg);
	c->method = method;
	c->pid = pid;
	if (u->tail)
		u->tail->next = c;
	else
		u->head = c;
	u->tail = c;
	u->n_queued++;
	f->waiting++;
	f->stats.queued++;
	if (!u->in_ring)
		ring_append(f, u);
	schedule(f);
	return 0;
}

void bus_fair_stats(const BusFair *f, BusFairStats *ret)
{
	*ret = f->stats;
	ret->waiting = f->waiting;
}

int bus_fair_new(sd_event *event, bus_fair_serve_fn serve, bus_fair_serve_fn route, void *userdata,
        BusFair **ret)
{
	BusFair *f;
	int r;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->event = sd_event_ref(event);
	f->serve = serve;
	f->route = route;
	f->userdata = userdata;
	r = sd_event_add_defer(event, &f->defer, on_defer, f);
	if (r >= 0)
		r = sd_event_add_time(event, &f->timer, CLOCK_MONOTONIC, 0, 0, on_timer, f);
	if (r >= 0)
		r = sd_event_add_time(
		        event, &f->held_timer, CLOCK_MONOTONIC, 0, 0, on_held_timer, f);
	if (r >= 0)
		r = sd_event_source_set_enabled(f->held_timer, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_source_set_enabled(f->defer, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_source_set_enabled(f->timer, SD_EVENT_OFF);
	/* The same priority as the bus: a waiting call is served between two calls read. */
	if (r >= 0)
		r = sd_event_source_set_priority(f->defer, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0) {
		bus_fair_free(f);
		return r;
	}
	*ret = f;
	return 0;
}

BusFair *bus_fair_free(BusFair *f)
{
	if (!f)
		return NULL;
	while (f->uids) {
		UidState *u = f->uids;

		f->uids = u->next;
		while (u->head) {
			QueuedCall *c = u->head;

			u->head = c->next;
			sd_bus_message_unref(c->msg);
			free(c);
		}
		free(u);
	}
	while (f->lookups) {
		Lookup *l = f->lookups;

		f->lookups = l->next;
		lookup_free(l);
	}
	while (f->held_head) {
		HeldBack *h = f->held_head;

		f->held_head = h->next;
		sd_bus_message_unref(h->msg);
		free(h);
	}
	for (size_t i = 0; i < BUS_FAIR_CACHE_MAX; i++)
		if (f->slots[i])
			cache_evict(f, f->slots[i]);
	sd_event_source_disable_unref(f->defer);
	sd_event_source_disable_unref(f->timer);
	sd_event_source_disable_unref(f->held_timer);
	sd_event_unref(f->event);
	free(f);
	return NULL;
}
