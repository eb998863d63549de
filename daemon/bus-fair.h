/* bus-fair.h: fair service of the bus methods (bus API layer).
 *
 * Root's calls (the PAM applications: login, su, sudo, sshd, polkit's helper) are served the
 * moment they are read. Every other caller's call (a user asking for itself: a screen
 * locker, keywardctl list; or an attacker flooding) is queued per uid and served from the
 * event loop, one call per turn, round robin over the uids, each uid at most
 * BUS_FAIR_RATE_PER_S calls a second (burst BUS_FAIR_BURST). A uid with BUS_FAIR_MAX_QUEUED
 * calls waiting, or a full queue (BUS_FAIR_MAX_TOTAL), gets a Busy error — after
 * BUS_FAIR_TARPIT_MS, while at most BUS_FAIR_TARPIT_MAX such answers are held back, at
 * once beyond that. Reading a call and setting it aside costs microseconds, so the calls
 * of a flood leave dbus-daemon's queue for keywardd at once (a full queue there would
 * refuse root's calls too: it holds only max_outgoing_unix_fds = 64 messages with a file
 * descriptor), and holding the refusal back makes each flooding connection wait instead
 * of sending again at once. The one uid flooding does not slow the others.
 *
 * Who called is asked of the bus once per connection, without waiting
 * (GetConnectionCredentials; a unique name is never reused on a bus), and kept in a
 * bounded cache: the event loop never waits for dbus-daemon, however busy a flood keeps
 * it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

/* Busy answers held back hold the fds of their calls: main.c raises the fd limit. */
#define BUS_FAIR_MAX_QUEUED          8   /* calls of one non-root uid waiting */
#define BUS_FAIR_MAX_TOTAL           256 /* calls of all non-root uids waiting */
#define BUS_FAIR_RATE_PER_S          20  /* calls of one non-root uid served per second */
#define BUS_FAIR_BURST               20
#define BUS_FAIR_TARPIT_MS           1000 /* how long a Busy answer is held back */
#define BUS_FAIR_TARPIT_MAX          4096 /* Busy answers held back, all uids */
#define BUS_FAIR_CACHE_MAX           1024 /* connections whose identity is remembered */
#define BUS_FAIR_UIDS_MAX            512  /* uids whose rate is remembered */
#define BUS_FAIR_PARKED_MAX          4096 /* calls waiting to learn who sent them */
#define BUS_FAIR_LOOKUP_TIMEOUT_USEC (5 * 1000 * 1000)

typedef struct BusFair BusFair;

/* Serves a call that waited: what the dispatcher would have done, replies included. The
 * same type routes a call whose sender the bus has just named (UID (uid_t)-1: it could
 * not say; the call is to be refused). */
typedef void (*bus_fair_serve_fn)(
        sd_bus_message *msg, const void *method, uid_t uid, pid_t pid, void *userdata);

int bus_fair_new(sd_event *event, bus_fair_serve_fn serve, bus_fair_serve_fn route, void *userdata,
        BusFair **ret);
BusFair *bus_fair_free(BusFair *f);

/* The effective uid and pid of the connection that sent MSG: 1 with them when known; 0
 * when the bus is being asked (MSG is kept and handed to the route function with METHOD
 * once it answers); -EBUSY with too many calls waiting for that; -errno. */
int bus_fair_identify(
        BusFair *f, sd_bus_message *msg, const void *method, uid_t *ret_uid, pid_t *ret_pid);

/* Queues MSG of non-root UID (METHOD is handed back to the serve function). When the uid,
 * or everybody, has too many calls waiting: 0 with the Busy answer held back (replied by
 * bus-fair itself), or -EBUSY when too many are held back already: the caller replies
 * Busy now. */
int bus_fair_enqueue(BusFair *f, sd_bus_message *msg, const void *method, uid_t uid, pid_t pid);

typedef struct BusFairStats {
	uint64_t queued, served, refused_busy; /* refused_busy: held back or not */
	size_t waiting;
} BusFairStats;
void bus_fair_stats(const BusFair *f, BusFairStats *ret);
