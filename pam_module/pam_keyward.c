/* pam_keyward.c: pam_keyward.so, a thin PAM client of keywardd on the system bus (sd-bus).
 * It asks Check/Authenticate, relays the cue and the PIN, and maps the answer to a PAM code. */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <syslog.h>
#include <time.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <sys/uio.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-journal.h>
#include <systemd/sd-login.h>

#include "accounts.h"
#include "bus-names.h"
#include "coverage.h"
#include "keyward-config.h"
#include "ssh-agent.h"
#include "util.h"

/* Client-side timeouts. The option timeout= caps all of them (tests use it). */
#define CHECK_TIMEOUT_MS        5000u
#define SESSION_TIMEOUT_MS      5000u
#define AUTH_MARGIN_MS          3000u          /* on top of the policy's touch/PIN timeout */
#define AUTH_DEFAULT_TIMEOUT_MS 30000u         /* if the daemon names none */
#define AUTH_MAX_TIMEOUT_MS     (600u * 1000u) /* whatever the daemon says */
#define CACHED_CUE_DELAY_MS     400u           /* a silent proof answers well within this */

#define MESSAGE_MAX 512u /* bytes of a daemon message we show */
#define CUE_MAX     256u /* bytes of the formatted cue */

#define DATA_TOKEN      "keyward_token"
#define DATA_TOKEN_USER "keyward_token_user" /* PAM_USER when the token was issued */
#define DATA_BINDING    "keyward_binding"
#define DATA_SSH_LOGIN  "keyward_ssh_login" /* sshd's login proved its SSH key on this handle */

#define DEFAULT_CUE "Touch your security key for %u"
#define MSG_DAEMON_DOWN                                                                            \
	"keyward: the keyward daemon is not running; access for covered accounts is denied. "      \
	"Start it with: systemctl start keywardd"
#define MSG_DAEMON_HUNG                                                                            \
	"keyward: the keyward daemon is not responding; access for covered accounts is denied. "   \
	"Check it with: systemctl status keywardd"

#define NAME_OWNER_MATCH                                                                           \
	"type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"                \
	"interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" KEYWARD_BUS_NAME "'"

/* What happened, independent of the PAM phase; outcome_to_pam() is the one place that turns
 * it into a PAM code, and everything it does not know is a failure. */
typedef enum Outcome {
	OUTCOME_SUCCESS,         /* granted, account usable, session bound */
	OUTCOME_NOT_COVERED,     /* the policy does not cover this login */
	OUTCOME_FAILOPEN,        /* daemon unreachable and the policy says failmode=open */
	OUTCOME_NOTHING_TO_DO,   /* pam_sm_setcred */
	OUTCOME_AUTH_FAILED,     /* the key did not prove presence/identity */
	OUTCOME_REFUSED,         /* the policy refuses (deny rule, not enrolled, remote) */
	OUTCOME_LOCKED_OUT,      /* lockout or PIN blocked */
	OUTCOME_USER_UNKNOWN,    /* invalid or unknown user name */
	OUTCOME_CONV_FAILED,     /* the application's conversation failed */
	OUTCOME_SESSION_FAILED,  /* unbinding a covered session failed */
	OUTCOME_SESSION_REFUSED, /* binding a covered session failed: it must not run */
	OUTCOME_ERROR,           /* anything else */
	_OUTCOME_MAX,
} Outcome;

typedef enum Phase {
	PHASE_AUTH,
	PHASE_ACCOUNT,
	PHASE_SESSION,
} Phase;

/* Why the daemon could not answer Check. */
typedef enum DaemonFailure {
	DAEMON_DOWN,    /* no bus, name not owned, connection refused */
	DAEMON_HUNG,    /* no answer before the deadline */
	DAEMON_REFUSED, /* it answered with an error */
} DaemonFailure;

/* Module options, parsed per call; strings point into argv. */
typedef struct Options {
	bool debug;
	bool nocue;
	const char *cue;
	const char *config;
	const char *runtime_dir; /* keywardd's, where the coverage snapshot is (fallback) */
	uint32_t timeout_ms;     /* 0: no client-side cap */
} Options;

typedef struct Ctx {
	pam_handle_t *pamh;
	int flags;
	Phase phase;
	Options opt;
	const char *user, *service, *tty, *rhost;

	sd_bus *bus;
	sd_bus_slot *owner_match;
	char *daemon_owner;   /* unique name that answered Check */
	bool daemon_vanished; /* NameOwnerChanged took the name away from it */
	bool cue_shown;       /* once per phase, also when the PIN is asked for a retry */
	/* A cue to show only if the pending call has not answered by cue_at_ms (0: none):
	 * a cached elevation proved silently, or refused because no key is plugged in,
	 * must not have told the user to touch a key. */
	char late_cue[CUE_MAX];
	uint64_t cue_at_ms;
} Ctx;

/* The daemon's answer to Check; strings point into reply. */
typedef struct CheckReply {
	sd_bus_message *reply;
	PolicyRequire require;
	PolicyUV uv;
	bool up;
	uint32_t timeout_ms;
	const char *rule;
	const char *message;
	uint32_t n_credentials;
	const char *decision; /* id of the login's decision ("" from an older keywardd) */
} CheckReply;

/* What an Authenticate call carries for a login whose rule wants a security-key SSH key
 * (on_remote = "ssh-key", docs/ssh.md); NULL for a key login. */
typedef struct SshAuth {
	const char *auth_info;    /* sshd's SSH_AUTH_INFO_0 */
	const char *challenge_id; /* AgentChallenge's id, with the agent's signature */
	const uint8_t *signature;
	size_t signature_len;
	const char *failure; /* why the module got no signature (the daemon records it) */
	bool quiet;          /* the module said why already: no second message */
	bool keep_token;     /* an elevation (bound in the session phase); not sshd's login */
} SshAuth;

/* Built with hidden visibility; the version script lists the same five names. */
#define _public_ __attribute__((visibility("default")))

#define log_debug(c, ...)                                                                          \
	do {                                                                                       \
		if ((c)->opt.debug)                                                                \
			pam_syslog((c)->pamh, LOG_DEBUG, __VA_ARGS__);                             \
	} while (0)

/* The PAM code for an outcome in a phase. Errors the application must not ignore: sudo
 * treats PAM_SESSION_ERR from the session phase as harmless, and PAM_AUTH_ERR from the
 * account phase as "is your account locked?", so refusals there are PAM_PERM_DENIED. */
static int outcome_to_pam(Outcome o, Phase phase)
{
	switch (o) {
	case OUTCOME_SUCCESS:
		return PAM_SUCCESS;
	case OUTCOME_NOT_COVERED:
	case OUTCOME_FAILOPEN:
	case OUTCOME_NOTHING_TO_DO:
		return PAM_IGNORE;
	case OUTCOME_REFUSED:
	case OUTCOME_SESSION_REFUSED:
		return PAM_PERM_DENIED;
	case OUTCOME_LOCKED_OUT:
		return phase == PHASE_AUTH ? PAM_MAXTRIES : PAM_PERM_DENIED;
	case OUTCOME_USER_UNKNOWN:
		return PAM_USER_UNKNOWN;
	case OUTCOME_CONV_FAILED:
		return PAM_CONV_ERR;
	case OUTCOME_SESSION_FAILED:
		return PAM_SESSION_ERR;
	case OUTCOME_AUTH_FAILED:
		return phase == PHASE_AUTH ? PAM_AUTH_ERR : PAM_PERM_DENIED;
	case OUTCOME_ERROR:
	default:
		/* sudo counts PAM_AUTH_ERR as a wrong password ("Sorry, try again.") and logs
		 * an incorrect password attempt. A fault of keyward is PAM_SERVICE_ERR: sudo
		 * ends with "PAM authentication error: Error in service module" after our
		 * message saying why, su says "Error in service module". (PAM_SYSTEM_ERR would
		 * do too, but sudo prints strerror(errno) for it, and libpam's own calls after
		 * the module leave errno meaningless: "Unknown error -1".) */
		return phase == PHASE_SESSION ? PAM_PERM_DENIED : PAM_SERVICE_ERR;
	}
}

/* Authenticate's one-word reasons that mean something other than a plain failure. */
static const struct {
	const char *reason;
	Outcome outcome;
} reason_table[] = {
        {"policy-deny", OUTCOME_REFUSED},
        {"remote", OUTCOME_REFUSED},
        {"not-enrolled", OUTCOME_REFUSED},
        {"enroll-required", OUTCOME_REFUSED},     /* break-glass login, no new key yet */
        {"service-not-allowed", OUTCOME_REFUSED}, /* break-glass not allowed here */
        {"lockout", OUTCOME_LOCKED_OUT},
        {"pin-blocked", OUTCOME_LOCKED_OUT},
        {"audit-unavailable", OUTCOME_ERROR},
        {"directory-unavailable", OUTCOME_ERROR}, /* the directory and its cache: not the user */
        {"error", OUTCOME_ERROR},
};

static Outcome reason_to_outcome(const char *reason)
{
	for (size_t i = 0; i < ELEMENTSOF(reason_table); i++)
		if (streq(reason_table[i].reason, reason))
			return reason_table[i].outcome;
	return OUTCOME_AUTH_FAILED;
}

static void ctx_done(Ctx *c)
{
	c->owner_match = sd_bus_slot_unref(c->owner_match);
	/* Closing without flush: every call we made has been answered or abandoned, and a
	 * flush has no timeout. */
	c->bus = sd_bus_close_unref(c->bus);
	free(c->daemon_owner);
	c->daemon_owner = NULL;
}

static int parse_u32(const char *s, uint32_t *ret)
{
	char *end = NULL;
	unsigned long v;

	if (isempty(s) || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || !end || *end != '\0' || v > UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int options_parse(pam_handle_t *pamh, int argc, const char **argv, Options *ret)
{
	Options o = {};

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (!a)
			continue;
		if (streq(a, "debug"))
			o.debug = true;
		else if (streq(a, "nocue"))
			o.nocue = true;
		else if (strneq(a, "cue=", 4)) {
			if (strlen(a + 4) >= CUE_MAX) {
				pam_syslog(pamh, LOG_ERR, "option cue= is longer than %u bytes",
				        CUE_MAX - 1);
				return -EINVAL;
			}
			o.cue = a + 4;
		} else if (strneq(a, "config=", 7)) {
			if (a[7] != '/') {
				pam_syslog(pamh, LOG_ERR,
				        "option config= needs an absolute path: %s", a + 7);
				return -EINVAL;
			}
			o.config = a + 7;
		} else if (strneq(a, "runtime_dir=", 12)) {
			if (a[12] != '/') {
				pam_syslog(pamh, LOG_ERR,
				        "option runtime_dir= needs an absolute path: %s", a + 12);
				return -EINVAL;
			}
			o.runtime_dir = a + 12;
		} else if (strneq(a, "timeout=", 8)) {
			if (parse_u32(a + 8, &o.timeout_ms) < 0 || o.timeout_ms == 0) {
				pam_syslog(pamh, LOG_ERR,
				        "option timeout= needs milliseconds > 0: %s", a + 8);
				return -EINVAL;
			}
		} else
			pam_syslog(pamh, LOG_WARNING, "ignoring unknown option: %s", a);
	}
	*ret = o;
	return 0;
}

static uint32_t cap_timeout(const Ctx *c, uint32_t ms)
{
	if (c->opt.timeout_ms > 0 && c->opt.timeout_ms < ms)
		return c->opt.timeout_ms;
	return ms;
}

/* Copies a daemon-supplied sentence for display: bounded, control characters replaced,
 * cut at a UTF-8 character boundary. */
static void sanitize_message(const char *in, char *out, size_t size)
{
	size_t n = in ? utf8_prefix_len(in, size - 1) : 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		out[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	out[n] = '\0';
}

static void show_error(Ctx *c, const char *text)
{
	char buf[MESSAGE_MAX];

	sanitize_message(text, buf, sizeof(buf));
	(void)pam_error(c->pamh, "%s", buf);
}

static void show_info(Ctx *c, const char *text)
{
	char buf[MESSAGE_MAX];

	if (c->flags & PAM_SILENT)
		return;
	sanitize_message(text, buf, sizeof(buf));
	(void)pam_info(c->pamh, "%s", buf);
}

/* The cue text: "%u" becomes the user name, "%%" a percent sign; nothing else expands. */
static void format_cue(const char *tmpl, const char *user, char *out, size_t size)
{
	size_t n = 0;

	for (const char *p = tmpl; *p && n + 1 < size; p++) {
		if (p[0] == '%' && p[1] == 'u') {
			for (const char *u = user; *u && n + 1 < size; u++)
				out[n++] = *u;
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			out[n++] = '%';
			p++;
		} else
			out[n++] = *p;
	}
	out[n] = '\0';
}

static void secret_data_cleanup(pam_handle_t *pamh, void *data, int error_status)
{
	erase_string_and_free(data);
}

static void plain_data_cleanup(pam_handle_t *pamh, void *data, int error_status)
{
	free(data);
}

static int ctx_init(Ctx *c, pam_handle_t *pamh, int flags, Phase phase, int argc, const char **argv)
{
	const void *item;
	int r;

	c->pamh = pamh;
	c->flags = flags;
	c->phase = phase;
	r = options_parse(pamh, argc, argv, &c->opt);
	if (r < 0) {
		(void)pam_error(pamh,
		        "keyward: the module options of this PAM service are invalid; "
		        "access is denied. See the system log.");
		return r;
	}

	r = pam_get_user(pamh, &c->user, NULL);
	if (r != PAM_SUCCESS || isempty(c->user)) {
		pam_syslog(
		        pamh, LOG_ERR, "cannot determine the user name: %s", pam_strerror(pamh, r));
		return -ESRCH;
	}
	if (!valid_user_name(c->user)) {
		pam_syslog(pamh, LOG_NOTICE, "refusing an invalid user name");
		return -ESRCH;
	}

	item = NULL;
	if (pam_get_item(pamh, PAM_SERVICE, &item) != PAM_SUCCESS)
		item = NULL;
	c->service = strempty(item);
	item = NULL;
	if (pam_get_item(pamh, PAM_TTY, &item) != PAM_SUCCESS)
		item = NULL;
	c->tty = strempty(item);
	item = NULL;
	if (pam_get_item(pamh, PAM_RHOST, &item) != PAM_SUCCESS)
		item = NULL;
	c->rhost = strempty(item);
	return 0;
}

/* A setup failure: in the session phase it refuses only a session that a key
 * authenticated on this handle (it could not be bound). */
static Outcome init_failure(pam_handle_t *pamh, int r, Phase phase)
{
	const void *token = NULL;

	if (phase != PHASE_SESSION)
		return r == -ESRCH ? OUTCOME_USER_UNKNOWN : OUTCOME_ERROR;
	if (pam_get_data(pamh, DATA_TOKEN, &token) == PAM_SUCCESS && token)
		return OUTCOME_SESSION_REFUSED;
	return OUTCOME_SESSION_FAILED;
}

/* --- the bus ------------------------------------------------------------------------ */

static int name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	Ctx *c = userdata;
	const char *name, *old_owner, *new_owner;

	if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
		return 0;
	if (!streq(name, KEYWARD_BUS_NAME))
		return 0;
	/* Before Check answered we do not know the owner: losing the name is enough. */
	if (c->daemon_owner ? streq(old_owner, c->daemon_owner) : isempty(new_owner)) {
		log_debug(c, "keywardd's bus name changed owner ('%s' -> '%s')", old_owner,
		        new_owner);
		c->daemon_vanished = true;
	}
	return 0;
}

static int match_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	Ctx *c = userdata;

	if (sd_bus_message_is_method_error(m, NULL))
		pam_syslog(c->pamh, LOG_WARNING, "cannot watch keywardd's bus name: %s",
		        strna(sd_bus_message_get_error(m)->message));
	return 0;
}

static int bus_connect(Ctx *c)
{
	int r;

	if (c->bus)
		return 0;
	r = sd_bus_open_system(&c->bus);
	if (r < 0)
		return r;
	r = sd_bus_set_method_call_timeout(
	        c->bus, (uint64_t)cap_timeout(c, CHECK_TIMEOUT_MS) * 1000);
	if (r < 0)
		return r;
	/* Sent before any call: the bus applies it before it routes our first call. */
	return sd_bus_add_match_async(
	        c->bus, &c->owner_match, NAME_OWNER_MATCH, name_owner_changed, match_installed, c);
}

typedef struct PendingCall {
	bool done;
	sd_bus_message *reply;
} PendingCall;

static void pending_call_done(PendingCall *p)
{
	p->reply = sd_bus_message_unref(p->reply);
}

static int call_replied(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	PendingCall *p = userdata;

	p->reply = sd_bus_message_ref(m);
	p->done = true;
	return 0;
}

/* The one poll(): waits for bus I/O, no later than deadline_ms (CLOCK_MONOTONIC). */
static int bus_wait_until(sd_bus *bus, uint64_t deadline_ms)
{
	struct pollfd pfd = {};
	uint64_t now = now_monotonic_ms(), until_usec = UINT64_MAX, wait_ms;
	int r;

	if (now >= deadline_ms)
		return -ETIMEDOUT;
	wait_ms = deadline_ms - now;
	r = sd_bus_get_timeout(bus, &until_usec);
	if (r < 0)
		return r;
	if (until_usec != UINT64_MAX) {
		uint64_t until_ms = (until_usec + 999) / 1000;
		wait_ms =
		        until_ms <= now ? 0 : (until_ms - now < wait_ms ? until_ms - now : wait_ms);
	}
	pfd.fd = sd_bus_get_fd(bus);
	if (pfd.fd < 0)
		return pfd.fd;
	r = sd_bus_get_events(bus);
	if (r < 0)
		return r;
	pfd.events = (short)r;
	r = poll(&pfd, 1, wait_ms > INT_MAX ? INT_MAX : (int)wait_ms);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	return 0;
}

/* Sends m and drives the bus until its reply, the deadline, or the daemon vanishing.
 * Returns 0 with *ret_reply set (never a method error), -ETIMEDOUT, -ECONNABORTED (the
 * daemon left), a bus errno, or, for a method error, its errno with ret_error filled. */
static void show_cue(Ctx *c, const char *cue)
{
	char msg[MESSAGE_MAX];

	/* Shown even under PAM_SILENT (sudo's default): it asks the person to act, like a
	 * prompt; without it a sudo user faces a terminal that seems to hang. */
	sanitize_message(cue, msg, sizeof(msg));
	(void)pam_info(c->pamh, "%s", msg);
	c->cue_shown = true;
}

static int bus_call_once(Ctx *c, sd_bus_message *m, uint64_t deadline_ms,
        sd_bus_message **ret_reply, sd_bus_error *ret_error)
{
	_cleanup_(pending_call_done) PendingCall p = {};
	_cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
	uint64_t now = now_monotonic_ms();
	int r;

	if (now >= deadline_ms)
		return -ETIMEDOUT;
	r = sd_bus_call_async(c->bus, &slot, m, call_replied, &p, (deadline_ms - now) * 1000);
	if (r < 0)
		return r;
	for (;;) {
		r = sd_bus_process(c->bus, NULL);
		if (r < 0)
			return r;
		if (p.done)
			break;
		if (c->daemon_vanished)
			return -ECONNABORTED;
		/* Busy or idle, the deadline holds: a peer flooding us cannot stretch it. */
		now = now_monotonic_ms();
		if (now >= deadline_ms)
			return -ETIMEDOUT;
		if (c->cue_at_ms > 0 && now >= c->cue_at_ms) {
			c->cue_at_ms = 0;
			show_cue(c, c->late_cue);
		}
		if (r > 0)
			continue;
		r = bus_wait_until(c->bus, c->cue_at_ms > 0 && c->cue_at_ms < deadline_ms
		                                   ? c->cue_at_ms
		                                   : deadline_ms);
		if (r < 0)
			return r;
	}
	if (sd_bus_message_is_method_error(p.reply, NULL)) {
		const sd_bus_error *e = sd_bus_message_get_error(p.reply);

		r = sd_bus_error_copy(ret_error, e);
		return r < 0 ? r : -EIO;
	}
	*ret_reply = TAKE_PTR(p.reply);
	return 0;
}

/* Like bus_call_once(), but a call the bus refused because the daemon's queue was full
 * (LimitsExceeded: dbus-daemon holds at most max_outgoing_unix_fds/bytes for a
 * connection, and a local user can fill that with calls of its own) is sent again, after
 * a short pause, until the deadline: a full queue is a moment, not an answer. */
static int bus_call_wait(Ctx *c, sd_bus_message *m, uint64_t deadline_ms,
        sd_bus_message **ret_reply, sd_bus_error *ret_error)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *again = NULL;
	uint64_t pause_ms = 10;
	int r;

	for (;;) {
		r = bus_call_once(c, again ? again : m, deadline_ms, ret_reply, ret_error);
		if (r >= 0 || !sd_bus_error_has_name(ret_error, SD_BUS_ERROR_LIMITS_EXCEEDED) ||
		        now_monotonic_ms() + pause_ms >= deadline_ms)
			return r;
		log_debug(c, "the bus refused the call (%s); trying again in %" PRIu64 " ms",
		        ret_error->message ? ret_error->message : "queue full", pause_ms);
		sd_bus_error_free(ret_error);
		(void)usleep(pause_ms * 1000);
		pause_ms = pause_ms * 2 > 200 ? 200 : pause_ms * 2;
		/* A sent message is sealed: the same call again is a copy. */
		again = sd_bus_message_unref(again);
		r = sd_bus_message_new_method_call(c->bus, &again,
		        sd_bus_message_get_destination(m), sd_bus_message_get_path(m),
		        sd_bus_message_get_interface(m), sd_bus_message_get_member(m));
		if (r >= 0)
			r = sd_bus_message_rewind(m, true);
		if (r >= 0)
			r = sd_bus_message_copy(again, m, true);
		if (r >= 0)
			r = sd_bus_message_set_expect_reply(again, true);
		if (r < 0)
			return r;
	}
}

static bool bus_error_is_unreachable(int r, const sd_bus_error *e)
{
	if (sd_bus_error_is_set(e))
		return sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN,
		               SD_BUS_ERROR_NAME_HAS_NO_OWNER, SD_BUS_ERROR_NO_REPLY,
		               SD_BUS_ERROR_TIMEOUT, SD_BUS_ERROR_DISCONNECTED,
		               SD_BUS_ERROR_NO_SERVER, "org.freedesktop.DBus.Error.TimedOut") ||
		       strneq(e->name, "org.freedesktop.DBus.Error.Spawn.", 33) ||
		       /* bus activation through systemd failed: masked, missing, failed */
		       strneq(e->name, "org.freedesktop.systemd1.", 25);
	return r == -ETIMEDOUT || r == -ECONNREFUSED || r == -ENOENT || r == -ECONNRESET ||
	       r == -ENOTCONN || r == -ECONNABORTED || r == -ESHUTDOWN || r == -EHOSTDOWN ||
	       r == -EHOSTUNREACH || r == -ENXIO || r == -EPIPE;
}

static bool bus_error_is_timeout(int r, const sd_bus_error *e)
{
	if (sd_bus_error_is_set(e))
		return sd_bus_error_has_names(
		               e, SD_BUS_ERROR_TIMEOUT, "org.freedesktop.DBus.Error.TimedOut") ||
		       (r == -ETIMEDOUT && sd_bus_error_has_name(e, SD_BUS_ERROR_NO_REPLY) &&
		               !isempty(e->message) && strstr(e->message, "timed out"));
	return r == -ETIMEDOUT;
}

static void check_reply_done(CheckReply *ck)
{
	ck->reply = sd_bus_message_unref(ck->reply);
}

/* Asks the daemon what the policy wants of this login. On failure *ret_failure says why. */
static int daemon_check(
        Ctx *c, CheckReply *ret, DaemonFailure *ret_failure, sd_bus_error *ret_error)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
	const char *require, *uv, *rule, *message, *sender;
	uint32_t timeout_ms, n_credentials;
	int up, r;

	*ret_failure = DAEMON_DOWN;
	r = bus_connect(c);
	if (r < 0)
		return r;
	r = sd_bus_message_new_method_call(
	        c->bus, &m, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH, KEYWARD_BUS_INTERFACE, "Check");
	if (r < 0)
		return r;
	r = sd_bus_message_append(m, "ssss", c->user, c->service, c->tty, c->rhost);
	if (r < 0)
		return r;
	r = bus_call_wait(
	        c, m, now_monotonic_ms() + cap_timeout(c, CHECK_TIMEOUT_MS), &reply, ret_error);
	if (r < 0) {
		if (bus_error_is_timeout(r, ret_error))
			*ret_failure = DAEMON_HUNG;
		else if (!bus_error_is_unreachable(r, ret_error))
			*ret_failure = DAEMON_REFUSED;
		return r;
	}

	*ret_failure = DAEMON_REFUSED;
	r = sd_bus_message_read(
	        reply, "ssbussu", &require, &uv, &up, &timeout_ms, &rule, &message, &n_credentials);
	if (r < 0)
		return r;
	/* The id of the decision the daemon made for this login; Authenticate passes it back
	 * so that the login is decided once. An older keywardd does not send it. */
	ret->decision = "";
	if (sd_bus_message_peek_type(reply, NULL, NULL) > 0) {
		r = sd_bus_message_read(reply, "s", &ret->decision);
		if (r < 0)
			return r;
	}
	sender = sd_bus_message_get_sender(reply);
	if (isempty(sender))
		return -EBADMSG;

	free(c->daemon_owner);
	c->daemon_owner = strdup(sender);
	if (!c->daemon_owner)
		return -ENOMEM;

	ret->require = policy_require_from_string(require);
	ret->uv = policy_uv_from_string(uv);
	if (ret->require < 0 || ret->uv < 0)
		return -EBADMSG;
	ret->up = up;
	ret->timeout_ms = timeout_ms;
	ret->rule = rule;
	ret->message = message;
	ret->n_credentials = n_credentials;
	ret->reply = TAKE_PTR(reply);
	return 0;
}

/* --- fallback: the daemon cannot answer, its coverage snapshot decides coverage ----- */

static bool logind_says_remote(void)
{
	_cleanup_free_ char *session = NULL;

	if (sd_pid_get_session(0, &session) < 0)
		return false;
	return sd_session_is_remote(session) > 0;
}

/* "its coverage snapshot PATH <problem>", with the FILE placeholder of safe_open()'s
 * problem text replaced by the path, into OUT. */
static void format_snapshot_problem(
        const char *lead, const char *path, const char *problem, char *out, size_t size)
{
	const char *file = strstr(strempty(problem), "FILE");

	if (file)
		(void)snprintf(out, size, "%s its coverage snapshot %s %.*s%s%s; access is denied.",
		        lead, path, (int)(file - problem), problem, path, file + 4);
	else
		(void)snprintf(out, size, "%s its coverage snapshot %s %s; access is denied.", lead,
		        path, problem ?: "cannot be read");
}

/* Loads the coverage snapshot keywardd wrote with the policy in force (lib/coverage.h): the
 * copy in the runtime directory, then the one beside the last good policy (it survives a
 * reboot). On failure logs why and leaves in WHY (for the user, if they turn out to be
 * covered) a sentence naming the first problem that is more than a missing file. */
static int fallback_load(Ctx *c, const char *lead, const char *config, CoverageSnapshot **ret,
        char *why, size_t why_size)
{
	_cleanup_free_ char *runtime = NULL, *state = NULL;
	bool why_is_enoent = true;
	int r = -ENOENT;

	/* The runtime directory is a setting of keyward.conf, which the module does not
	 * parse: the default one for the default configuration, else option runtime_dir=. */
	if (c->opt.runtime_dir) {
		if (asprintf(&runtime, "%s/" COVERAGE_FILE_NAME, c->opt.runtime_dir) < 0)
			return -ENOMEM;
	} else if (streq(config, KEYWARD_DEFAULT_CONFIG)) {
		runtime = strdup(KEYWARD_DEFAULT_RUNTIME_DIR "/" COVERAGE_FILE_NAME);
		if (!runtime)
			return -ENOMEM;
	}
	r = coverage_state_path(config, &state);
	if (r < 0)
		return r;

	for (size_t i = 0; i < 2; i++) {
		const char *path = i == 0 ? runtime : state, *problem = NULL;

		if (!path)
			continue;
		r = coverage_snapshot_load(path, ret, &problem);
		if (r >= 0) {
			log_debug(c, "deciding coverage from the snapshot %s", path);
			return 0;
		}
		pam_syslog(c->pamh, LOG_ERR, "cannot use the coverage snapshot %s: %s (%s)", path,
		        strna(problem), strerror(-r));
		if (why_is_enoent) {
			format_snapshot_problem(lead, path, problem, why, why_size);
			why_is_enoent = r == -ENOENT;
		}
	}
	return r;
}

/* With no usable policy at all, who is covered cannot be known: an account with keys
 * enrolled (a USER.creds file in the credentials directory beside the policy file, as
 * /etc/keyward/credentials is beside /etc/keyward/keyward.conf) counts as covered (fail
 * closed), any other is not (keyward's fault must not lock it out). "Cannot tell"
 * (EACCES, EIO) counts as covered. */
static bool has_enrolled_keys(const char *config_path, const char *user)
{
	const char *slash = strrchr(config_path, '/');
	char path[PATH_MAX];
	struct stat st;

	if (!slash || snprintf(path, sizeof(path), "%.*s/credentials/%s.creds",
	                      (int)(slash - config_path), config_path, user) >= (int)sizeof(path))
		return true;
	return lstat(path, &st) == 0 || errno != ENOENT;
}

#define JOURNAL_FIELDS 16

/* The module's own decision while keywardd cannot answer goes to the journal as a record:
 * the KEYWARD_* fields of keywardd's records (docs/audit.md) and
 * KEYWARD_DECIDED_BY=pam_keyward, since the trail (keywardd's) cannot take it. RESULT is
 * "failure" for a refusal, "success" for failmode=open; RULE and POLICY may be NULL. */
static void journal_decision(Ctx *c, DaemonFailure why, const char *result, const char *reason,
        const char *rule, const char *policy)
{
	const char *event = c->phase == PHASE_ACCOUNT ? "account" : "auth";
	const char *daemon = why == DAEMON_REFUSED ? "refused"
	                     : why == DAEMON_HUNG  ? "hung"
	                                           : "down";
	char *strs[JOURNAL_FIELDS] = {};
	struct iovec iov[JOURNAL_FIELDS];
	int n = 0, prio = streq(result, "failure") ? LOG_WARNING : LOG_NOTICE;
	bool oom = false;

#define ADD(...)                                                                                   \
	do {                                                                                       \
		if (!oom && n < JOURNAL_FIELDS && asprintf(&strs[n], __VA_ARGS__) >= 0)            \
			n++;                                                                       \
		else                                                                               \
			oom = true;                                                                \
	} while (0)
	ADD("MESSAGE=keyward %s %s user=%s service=%s reason=%s (decided by pam_keyward: "
	    "keywardd %s)",
	        event, result, c->user, c->service, reason, daemon);
	ADD("PRIORITY=%d", prio);
	ADD("SYSLOG_FACILITY=%d", LOG_AUTHPRIV >> 3);
	ADD("SYSLOG_IDENTIFIER=pam_keyward");
	ADD("KEYWARD_EVENT=%s", event);
	ADD("KEYWARD_RESULT=%s", result);
	ADD("KEYWARD_REASON=%s", reason);
	ADD("KEYWARD_USER=%s", c->user);
	ADD("KEYWARD_SERVICE=%s", c->service);
	if (!isempty(c->tty))
		ADD("KEYWARD_TTY=%s", c->tty);
	if (!isempty(c->rhost))
		ADD("KEYWARD_RHOST=%s", c->rhost);
	if (!isempty(rule))
		ADD("KEYWARD_RULE_NAME=%s", rule);
	if (!isempty(policy))
		ADD("KEYWARD_POLICY=%s", policy);
	ADD("KEYWARD_DAEMON=%s", daemon);
	ADD("KEYWARD_DECIDED_BY=pam_keyward");
#undef ADD
	for (int i = 0; i < n; i++)
		iov[i] = (struct iovec){.iov_base = strs[i], .iov_len = strlen(strs[i])};
	/* The pam_syslog() lines stay; without journald this is what is lost. */
	if (oom || sd_journal_sendv(iov, n) < 0)
		pam_syslog(c->pamh, LOG_ERR, "cannot send the %s record of %s to the journal",
		        reason, c->user);
	for (int i = 0; i < n; i++)
		free(strs[i]);
}

static Outcome fallback(Ctx *c, DaemonFailure why, const sd_bus_error *error)
{
	_cleanup_(coverage_snapshot_freep) CoverageSnapshot *snapshot = NULL;
	_cleanup_strv_free_ char **groups = NULL;
	const char *path = c->opt.config ? c->opt.config : KEYWARD_DEFAULT_CONFIG;
	const char *lead;
	CoverageRequest req = {};
	CoverageDecision d = {};
	char msg[MESSAGE_MAX], why_text[MESSAGE_MAX] = "";
	/* The account phase of a program running as root (su by root, cron, sshd after its
	 * own authentication) elevates nobody: with the daemon up it asks no key either. */
	bool account_as_root = c->phase == PHASE_ACCOUNT && getuid() == 0;
	uid_t uid = 0;
	gid_t gid = 0;
	int r;

	lead = why == DAEMON_REFUSED ? "keyward: the keyward daemon refused the request and"
	       : why == DAEMON_HUNG  ? "keyward: the keyward daemon is not responding and"
	                             : "keyward: the keyward daemon is not running and";
	if (why == DAEMON_REFUSED)
		pam_syslog(c->pamh, LOG_ERR, "keywardd refused Check for %s: %s", c->user,
		        error && error->message ? error->message : "no reply");
	else
		pam_syslog(c->pamh, LOG_ERR,
		        "keywardd is %s; deciding coverage of %s from its coverage snapshot",
		        why == DAEMON_HUNG ? "not responding" : "not reachable", c->user);

	/* The snapshot keywardd wrote of the policy in force; if there is none, enrolled keys. */
	r = fallback_load(c, lead, path, &snapshot, why_text, sizeof(why_text));
	if (r < 0) {
		if (account_as_root) {
			pam_syslog(c->pamh, LOG_WARNING,
			        "no usable policy; the account phase of a program running as root "
			        "asks nothing of %s",
			        c->user);
			return OUTCOME_NOT_COVERED;
		}
		if (!has_enrolled_keys(path, c->user)) {
			pam_syslog(c->pamh, LOG_WARNING,
			        "no usable policy: %s has no enrolled key, so is not treated as "
			        "covered",
			        c->user);
			return OUTCOME_NOT_COVERED;
		}
		journal_decision(c, why, "failure", "no-policy", NULL, NULL);
		show_error(c, isempty(why_text) ? MSG_DAEMON_DOWN : why_text);
		return OUTCOME_ERROR;
	}

	/* What cannot be looked up stays unknown: a rule that needs it counts as covering the
	 * login (coverage_evaluate()), rules that do not are still decided. */
	r = account_lookup(c->user, &uid, &gid);
	if (r == -ESRCH) {
		pam_syslog(c->pamh, LOG_NOTICE, "user %s is unknown", c->user);
		return OUTCOME_USER_UNKNOWN;
	}
	if (r < 0) {
		pam_syslog(c->pamh, LOG_ERR, "cannot look up user %s: %s", c->user, strerror(-r));
		req.uid_unknown = req.groups_unknown = true;
	} else {
		r = account_group_names(c->user, gid, &groups);
		if (r < 0 || !groups) {
			r = r < 0 ? r : -EIO;
			pam_syslog(c->pamh, LOG_ERR, "cannot look up the groups of %s: %s", c->user,
			        strerror(-r));
			req.groups_unknown = true;
		}
	}
	req.user = c->user;
	req.uid = uid;
	req.groups = groups;
	req.service = c->service;
	req.tty = c->tty;
	req.remote = logind_says_remote() || coverage_is_remote(isempty(c->rhost) ? NULL : c->rhost,
	                                             isempty(c->tty) ? NULL : c->tty);
	r = coverage_evaluate(snapshot, &req, &d);
	if (r < 0) {
		pam_syslog(c->pamh, LOG_ERR, "cannot evaluate the coverage snapshot for %s: %s",
		        c->user, strerror(-r));
		journal_decision(c, why, "failure", "error", NULL, snapshot->digest);
		show_error(c, "keyward: the policy cannot be evaluated for this login; access is "
		              "denied.");
		return OUTCOME_ERROR;
	}
	if (d.require == POLICY_REQUIRE_NONE) {
		log_debug(c, "%s is not covered (rule %s, policy sha256 %s); stepping aside",
		        c->user, strna(d.rule_name), snapshot->digest);
		return OUTCOME_NOT_COVERED;
	}
	if (d.undecidable)
		pam_syslog(c->pamh, LOG_ERR,
		        "rule %s may cover %s and the account lookup failed: treating %s as "
		        "covered",
		        strna(d.rule_name), c->user, c->user);
	if (d.require == POLICY_REQUIRE_KEY && account_as_root) {
		log_debug(c,
		        "keywardd unreachable; the account phase of a program running as root "
		        "asks no key of %s",
		        c->user);
		return OUTCOME_SUCCESS;
	}
	/* failmode=open is for a daemon that is absent (not running, its name not owned,
	 * activation failed), never for one that is busy or slow: a caller flooding keywardd
	 * must not turn covered logins into logins without a key. */
	if (d.require == POLICY_REQUIRE_KEY && !d.undecidable && why == DAEMON_DOWN &&
	        snapshot->failmode == POLICY_FAILMODE_OPEN) {
		pam_syslog(c->pamh, LOG_WARNING,
		        "failmode=open: letting covered user %s through without a security key",
		        c->user);
		journal_decision(c, why, "success", "failmode-open", d.rule_name, snapshot->digest);
		show_info(c, "keyward: WARNING: the keyward daemon is not running; the policy "
		             "(failmode=open) lets this login continue without a security key.");
		return OUTCOME_FAILOPEN;
	}
	pam_syslog(c->pamh, LOG_NOTICE,
	        "denying covered user %s (rule %s, policy sha256 %s): daemon %s", c->user,
	        strna(d.rule_name), snapshot->digest,
	        why == DAEMON_REFUSED ? "refused" : "unavailable");
	journal_decision(c, why, "failure",
	        d.undecidable                      ? "account-unknown"
	        : d.require == POLICY_REQUIRE_DENY ? "policy-deny"
	                                           : "daemon-unavailable",
	        d.rule_name, snapshot->digest);
	if (d.undecidable)
		show_error(c, "keyward: cannot look up your account; access is denied.");
	else if (d.require == POLICY_REQUIRE_DENY && !isempty(d.reason))
		show_error(c, d.reason);
	else if (why == DAEMON_REFUSED) {
		(void)snprintf(msg, sizeof(msg),
		        "keyward: the keyward daemon refused the request (%s); access for "
		        "covered accounts is denied.",
		        error && error->message ? error->message : "no reason given");
		show_error(c, msg);
	} else
		show_error(c, why == DAEMON_HUNG ? MSG_DAEMON_HUNG : MSG_DAEMON_DOWN);
	if (d.require == POLICY_REQUIRE_DENY)
		return OUTCOME_REFUSED;
	/* The key was never asked: keyward's fault, not the user's. */
	return OUTCOME_ERROR;
}

/* --- authentication ------------------------------------------------------------------ */

static void show_not_enrolled(Ctx *c)
{
	char msg[MESSAGE_MAX];

	(void)snprintf(msg, sizeof(msg),
	        "No security key is enrolled for %s. An administrator can enroll one with: "
	        "keywardctl enroll %s",
	        c->user, c->user);
	show_error(c, msg);
}

static Outcome check_denied(Ctx *c, const CheckReply *ck)
{
	char msg[MESSAGE_MAX];

	pam_syslog(c->pamh, LOG_NOTICE, "policy denies %s for %s (rule %s)", c->user, c->service,
	        strna(ck->rule));
	if (!isempty(ck->message))
		show_error(c, ck->message);
	else {
		(void)snprintf(msg, sizeof(msg), "keyward: access denied by policy rule %s.",
		        strna(ck->rule));
		show_error(c, msg);
	}
	return OUTCOME_REFUSED;
}

/* Makes a pipe that holds the PIN (or nothing) and returns its read end. The PIN is read
 * through the conversation and wiped once written. BREAKGLASS: a recovery code is asked
 * instead (passed on cut to KEYWARD_MAX_BREAKGLASS_INPUT bytes, never refused here: the
 * daemon counts and records every attempt). */
static int pin_pipe(Ctx *c, bool ask, bool breakglass, int *ret_fd)
{
	_cleanup_close_ int rfd = -EBADF, wfd = -EBADF;
	_cleanup_erase_ char *pin = NULL;
	int fds[2], r;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	rfd = fds[0];
	wfd = fds[1];
	if (ask) {
		size_t len, done = 0;

		if (breakglass)
			r = pam_prompt(
			        c->pamh, PAM_PROMPT_ECHO_OFF, &pin, "Break-glass recovery code: ");
		else
			r = pam_prompt(c->pamh, PAM_PROMPT_ECHO_OFF, &pin,
			        "Security key PIN for %s: ", c->user);
		if (r != PAM_SUCCESS || !pin)
			return -ECANCELED;
		len = strlen(pin);
		if (breakglass && len > KEYWARD_MAX_BREAKGLASS_INPUT)
			len = KEYWARD_MAX_BREAKGLASS_INPUT;
		else if (len > KEYWARD_MAX_PIN)
			return -E2BIG;
		/* A pipe holds far more than KEYWARD_MAX_PIN bytes: this never blocks. */
		while (done < len) {
			ssize_t k = write(wfd, pin + done, len - done);
			if (k < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			done += (size_t)k;
		}
	}
	*ret_fd = TAKE_FD(rfd);
	return 0;
}

static bool valid_token(const char *t)
{
	if (!t || strlen(t) != KEYWARD_TOKEN_CHARS)
		return false;
	for (const char *p = t; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static void cancel_pending(Ctx *c)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;

	if (!c->daemon_owner || c->daemon_vanished)
		return;
	if (sd_bus_message_new_method_call(c->bus, &m, c->daemon_owner, KEYWARD_BUS_PATH,
	            KEYWARD_BUS_INTERFACE, "Cancel") < 0)
		return;
	(void)sd_bus_message_set_expect_reply(m, false);
	/* sd_bus_send() writes at once when the queue is empty; closing the connection is
	 * the daemon's cue to cancel anyway. */
	(void)sd_bus_send(c->bus, m, NULL);
}

/* One Authenticate call. When no PIN was asked and the daemon answers `pin-required` (a
 * credential enrolled with user verification under a policy that only prefers it),
 * *ret_retry_with_pin is set and nothing is shown: the caller asks the PIN and tries once
 * more. When it answers `breakglass-available` (no key for the user, and the policy allows
 * break-glass here), its message is shown and *ret_breakglass (if given) set: the caller asks
 * for a recovery code and calls once more with BREAKGLASS (the code goes through the pipe).
 * SSH (a `ssh-key` decision): what proves the SSH key, instead of a key search. */
static Outcome authenticate_once(Ctx *c, const CheckReply *ck, bool cached, bool ask_pin,
        bool breakglass, const SshAuth *ssh, bool *ret_retry_with_pin, bool *ret_breakglass)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_close_ int pin_fd = -EBADF;
	const char *reason, *message, *token, *credential, *device;
	char cue[CUE_MAX], msg[MESSAGE_MAX];
	uint32_t timeout_ms;
	char *copy;
	int granted, r;

	r = pin_pipe(c, ask_pin || breakglass, breakglass, &pin_fd);
	if (r == -ECANCELED) {
		pam_syslog(c->pamh, LOG_NOTICE, "no %s was entered for %s",
		        breakglass ? "recovery code" : "PIN", c->user);
		return OUTCOME_CONV_FAILED;
	}
	if (r == -E2BIG) {
		show_error(c, "keyward: the PIN is too long; access denied.");
		return OUTCOME_AUTH_FAILED;
	}
	if (r < 0) {
		pam_syslog(c->pamh, LOG_ERR, "cannot pass the PIN: %s", strerror(-r));
		return OUTCOME_ERROR;
	}

	r = sd_bus_message_new_method_call(c->bus, &m, c->daemon_owner, KEYWARD_BUS_PATH,
	        KEYWARD_BUS_INTERFACE, "Authenticate");
	if (r >= 0)
		r = sd_bus_message_append(
		        m, "ssssh", c->user, c->service, c->tty, c->rhost, pin_fd);
	if (r >= 0)
		r = sd_bus_message_open_container(m, 'a', "{sv}");
	if (r >= 0 && cached)
		r = sd_bus_message_append(m, "{sv}", "cached", "b", 1);
	if (r >= 0 && !isempty(ck->decision))
		r = sd_bus_message_append(m, "{sv}", "decision", "s", ck->decision);
	/* A pin-required answer to a PIN the user was asked for is a refusal, not a prompt. */
	if (r >= 0 && ask_pin)
		r = sd_bus_message_append(m, "{sv}", "pin-asked", "b", 1);
	if (r >= 0 && breakglass)
		r = sd_bus_message_append(m, "{sv}", "breakglass", "b", 1);
	if (r >= 0 && ssh && ssh->auth_info)
		r = sd_bus_message_append(m, "{sv}", "ssh_auth_info", "s", ssh->auth_info);
	if (r >= 0 && ssh && ssh->failure)
		r = sd_bus_message_append(m, "{sv}", "agent_failure", "s", ssh->failure);
	if (r >= 0 && ssh && ssh->challenge_id) {
		r = sd_bus_message_append(m, "{sv}", "agent_challenge", "s", ssh->challenge_id);
		if (r >= 0)
			r = sd_bus_message_open_container(m, 'e', "sv");
		if (r >= 0)
			r = sd_bus_message_append(m, "s", "agent_signature");
		if (r >= 0)
			r = sd_bus_message_open_container(m, 'v', "ay");
		if (r >= 0)
			r = sd_bus_message_append_array(m, 'y', ssh->signature, ssh->signature_len);
		if (r >= 0)
			r = sd_bus_message_close_container(m);
		if (r >= 0)
			r = sd_bus_message_close_container(m);
	}
	if (r >= 0)
		r = sd_bus_message_close_container(m);
	if (r < 0) {
		pam_syslog(
		        c->pamh, LOG_ERR, "cannot build the Authenticate call: %s", strerror(-r));
		return OUTCOME_ERROR;
	}
	/* The message holds its own copy of the descriptor. */
	closep(&pin_fd);
	pin_fd = -EBADF;

	/* (an SSH proof awaits no touch here: the agent's cue came before its signature) */
	if (ck->up && !breakglass && !ssh && !c->opt.nocue && !c->cue_shown) {
		format_cue(c->opt.cue ? c->opt.cue : DEFAULT_CUE, c->user, cue, sizeof(cue));
		if (cached) {
			/* Only if a touch is really awaited (see Ctx.cue_at_ms). */
			memcpy(c->late_cue, cue, sizeof(c->late_cue));
			c->cue_at_ms = now_monotonic_ms() + CACHED_CUE_DELAY_MS;
		} else
			show_cue(c, cue);
	}

	timeout_ms = ck->timeout_ms > 0 ? ck->timeout_ms : AUTH_DEFAULT_TIMEOUT_MS;
	if (timeout_ms > AUTH_MAX_TIMEOUT_MS)
		timeout_ms = AUTH_MAX_TIMEOUT_MS;
	timeout_ms = cap_timeout(c, timeout_ms + AUTH_MARGIN_MS);
	log_debug(
	        c, "Authenticate %s for %s, waiting up to %u ms", c->user, c->service, timeout_ms);

	r = bus_call_wait(c, m, now_monotonic_ms() + timeout_ms, &reply, &error);
	c->cue_at_ms = 0; /* answered (or failed) before the late cue: it is not shown */
	if (r < 0) {
		if (r == -ECONNABORTED ||
		        (sd_bus_error_is_set(&error) && bus_error_is_unreachable(r, &error) &&
		                !bus_error_is_timeout(r, &error))) {
			pam_syslog(c->pamh, LOG_ERR,
			        "keywardd went away during Authenticate for %s", c->user);
			show_error(c,
			        "keyward: the keyward daemon stopped during the authentication; "
			        "access denied. Check it with: systemctl status keywardd");
		} else if (bus_error_is_timeout(r, &error)) {
			pam_syslog(c->pamh, LOG_ERR,
			        "keywardd did not answer Authenticate for %s "
			        "within %u ms",
			        c->user, timeout_ms);
			cancel_pending(c);
			show_error(c, "keyward: the keyward daemon did not answer in time; access "
			              "denied.");
		} else {
			pam_syslog(c->pamh, LOG_ERR, "Authenticate for %s failed: %s", c->user,
			        error.message ? error.message : strerror(-r));
			(void)snprintf(msg, sizeof(msg),
			        "keyward: the security key check failed: %s",
			        error.message ? error.message : strerror(-r));
			show_error(c, msg);
		}
		return OUTCOME_ERROR;
	}

	r = sd_bus_message_read(
	        reply, "bsssss", &granted, &reason, &message, &token, &credential, &device);
	if (r < 0) {
		pam_syslog(c->pamh, LOG_ERR, "malformed Authenticate reply: %s", strerror(-r));
		return OUTCOME_ERROR;
	}
	if (!granted && !ask_pin && streq(reason, "pin-required")) {
		log_debug(c, "keywardd wants the PIN of %s's key: asking", c->user);
		*ret_retry_with_pin = true;
		return OUTCOME_AUTH_FAILED;
	}
	if (!granted && !breakglass && streq(reason, "breakglass-available")) {
		pam_syslog(c->pamh, LOG_NOTICE, "no security key for %s: break-glass offered",
		        c->user);
		show_info(c, message);
		if (ret_breakglass)
			*ret_breakglass = true;
		return OUTCOME_AUTH_FAILED;
	}
	if (!granted) {
		pam_syslog(c->pamh, LOG_NOTICE,
		        "security key authentication of %s for %s denied: %s", c->user, c->service,
		        reason);
		if (ssh && ssh->quiet)
			; /* the module has said why */
		else if (streq(reason, "not-enrolled") && !ssh)
			show_not_enrolled(c);
		else if (!isempty(message))
			show_error(c, message);
		else {
			(void)snprintf(msg, sizeof(msg),
			        "keyward: security key authentication failed (%s).", reason);
			show_error(c, msg);
		}
		return reason_to_outcome(reason);
	}
	/* "breakglass": let in with a recovery code or an approval, no key (the message
	 * tells the user to enroll a new one). */
	if (breakglass && streq(reason, "breakglass") && valid_token(token)) {
		pam_syslog(c->pamh, LOG_WARNING,
		        "%s authenticated for %s with break-glass recovery", c->user, c->service);
		if (!isempty(message))
			show_info(c, message);
	} else if (!streq(reason, "ok") || !valid_token(token)) {
		pam_syslog(c->pamh, LOG_ERR, "keywardd granted %s with an invalid reply; refusing",
		        c->user);
		return OUTCOME_ERROR;
	}
	if (ssh && (ssh->failure || (!ssh->keep_token && !ssh->auth_info))) {
		pam_syslog(c->pamh, LOG_ERR, "keywardd granted %s without an SSH proof; refusing",
		        c->user);
		return OUTCOME_ERROR;
	}
	if (ssh && !ssh->keep_token) {
		/* sshd's login: nothing is bound (no key here to remove) */
		pam_syslog(c->pamh, LOG_INFO,
		        "%s logged in through %s with security-key SSH key '%s'", c->user,
		        c->service, credential);
		return OUTCOME_SUCCESS;
	}

	/* The user the token was issued for goes with it: sudo changes PAM_USER to the
	 * target user before the session phase. */
	copy = strdup(c->user);
	if (!copy)
		return OUTCOME_ERROR;
	r = pam_set_data(c->pamh, DATA_TOKEN_USER, copy, plain_data_cleanup);
	if (r != PAM_SUCCESS) {
		free(copy);
		return OUTCOME_ERROR;
	}
	copy = strdup(token);
	if (!copy)
		return OUTCOME_ERROR;
	r = pam_set_data(c->pamh, DATA_TOKEN, copy, secret_data_cleanup);
	if (r != PAM_SUCCESS) {
		erase_string_and_free(copy);
		pam_syslog(c->pamh, LOG_ERR, "cannot keep the binding token: %s",
		        pam_strerror(c->pamh, r));
		return OUTCOME_ERROR;
	}
	if (!breakglass)
		pam_syslog(c->pamh, LOG_INFO,
		        "%s authenticated for %s with security key credential '%s'", c->user,
		        c->service, credential);
	return OUTCOME_SUCCESS;
}

static Outcome daemon_authenticate(Ctx *c, const CheckReply *ck, bool cached)
{
	bool ask_pin = ck->uv == POLICY_UV_REQUIRED, retry = false, breakglass = false;
	Outcome o;

	o = authenticate_once(c, ck, cached, ask_pin, false, NULL, &retry, &breakglass);
	if (retry)
		o = authenticate_once(c, ck, cached, true, false, NULL, &retry, &breakglass);
	if (breakglass)
		o = authenticate_once(c, ck, cached, false, true, NULL, &retry, &breakglass);
	return o;
}

/* Covered, and Check counted no enrolled key. The refusal is the daemon's to record:
 * Authenticate with the login's decision answers not-enrolled and writes the record,
 * under the same decision (no PIN asked, no touch cue: no key is awaited). */
static Outcome refuse_not_enrolled(Ctx *c, const CheckReply *ck, bool cached)
{
	CheckReply quiet = *ck;
	bool retry = false, breakglass = false;
	Outcome o;

	pam_syslog(c->pamh, LOG_NOTICE, "%s is covered but has no enrolled key", c->user);
	quiet.up = false;
	quiet.reply = NULL; /* borrowed from CK, which keeps it */
	o = authenticate_once(c, &quiet, cached, false, false, NULL, &retry, &breakglass);
	/* No key, and the policy allows break-glass here: a recovery code or approval. */
	if (breakglass)
		o = authenticate_once(c, &quiet, cached, false, true, NULL, &retry, &breakglass);
	return o;
}

/* --- security-key SSH keys (on_remote = "ssh-key", docs/ssh.md) ---------------------- */

#define SSH_CUE               "Touch your security key (through your SSH agent) for %u"
#define SSH_AGENT_CONNECT_MS  2000u
#define SSH_AGENT_LIST_MS     5000u
#define SSH_AGENT_MAX_OFFERED 64u
#define SSH_CHALLENGE_MIN     16u
#define SSH_CHALLENGE_MAX     64u

/* Whether this handle is sshd's: by its service name only. sshd puts SSH_AUTH_INFO_0 (empty
 * until the session phase for a publickey login) into the PAM environment, but a PAM
 * environment can hold anything another module put there: it never makes a handle sshd's
 * (keywardd refuses the record from any other service too). */
static bool handle_is_sshd(Ctx *c)
{
	return streq(c->service, KEYWARD_SSHD_SERVICE);
}

/* sshd's login: keywardd checks that sshd authenticated it with a security-key SSH key
 * registered for the user (INFO: SSH_AUTH_INFO_0, "" when sshd set none). */
static Outcome ssh_login(Ctx *c, const CheckReply *ck, const char *info)
{
	SshAuth ssh = {.auth_info = info};
	bool retry = false;
	char *flag;
	Outcome o;

	o = authenticate_once(c, ck, false, false, false, &ssh, &retry, NULL);
	if (o != OUTCOME_SUCCESS)
		return o;
	flag = strdup("1");
	if (!flag ||
	        pam_set_data(c->pamh, DATA_SSH_LOGIN, flag, plain_data_cleanup) != PAM_SUCCESS) {
		free(flag);
		return OUTCOME_ERROR;
	}
	return OUTCOME_SUCCESS;
}

/* No signature from the agent (WORD, for the record): TEXT says why; keywardd records the
 * refusal (it never grants one). */
static Outcome ssh_agent_refuse(
        Ctx *c, const CheckReply *ck, bool cached, const char *word, const char *text)
{
	SshAuth ssh = {.failure = word, .quiet = !isempty(text), .keep_token = true};
	bool retry = false;
	Outcome o;

	pam_syslog(c->pamh, LOG_NOTICE, "no SSH agent signature for %s (%s): %s", c->user, word,
	        strna(text));
	if (!isempty(text))
		show_error(c, text);
	o = authenticate_once(c, ck, cached, false, false, &ssh, &retry, NULL);
	if (o == OUTCOME_SUCCESS) { /* (authenticate_once() refuses it already) */
		(void)pam_set_data(c->pamh, DATA_TOKEN, NULL, NULL);
		return OUTCOME_ERROR;
	}
	return o;
}

static void agent_error_text(
        Ctx *c, const char *what, int r, const char *err, char *out, size_t size)
{
	(void)snprintf(out, size, "keyward: the SSH agent %s: %s; access denied.", what,
	        err ? err : strerror(-r));
	pam_syslog(c->pamh, LOG_NOTICE, "SSH agent of %s %s: %s", c->user, what,
	        err ? err : strerror(-r));
}

/* AgentChallenge: which of the agent's keys (IDS) to sign with and what. On success
 * *ret_reply holds the answer, *ret_key_index the identity. */
static int agent_challenge(Ctx *c, const CheckReply *ck, const SshAgentIdentities *ids,
        sd_bus_message **ret_reply, size_t *ret_key_index, sd_bus_error *error)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
	const char *key = NULL;
	int r;

	r = sd_bus_message_new_method_call(c->bus, &m, c->daemon_owner, KEYWARD_BUS_PATH,
	        KEYWARD_BUS_INTERFACE, "AgentChallenge");
	if (r >= 0)
		r = sd_bus_message_append(m, "ssss", c->user, c->service, c->tty, c->rhost);
	if (r >= 0)
		r = sd_bus_message_open_container(m, 'a', "{sv}");
	if (r >= 0)
		r = sd_bus_message_append(m, "{sv}", "decision", "s", ck->decision);
	if (r >= 0)
		r = sd_bus_message_open_container(m, 'e', "sv");
	if (r >= 0)
		r = sd_bus_message_append(m, "s", "keys");
	if (r >= 0)
		r = sd_bus_message_open_container(m, 'v', "as");
	if (r >= 0)
		r = sd_bus_message_open_container(m, 'a', "s");
	for (size_t i = 0; r >= 0 && i < ids->n && i < SSH_AGENT_MAX_OFFERED; i++) {
		_cleanup_free_ char *b64 = NULL;

		r = base64_encode(ids->items[i].blob, ids->items[i].blob_len, &b64);
		if (r >= 0)
			r = sd_bus_message_append(m, "s", b64);
	}
	for (int k = 0; r >= 0 && k < 4; k++)
		r = sd_bus_message_close_container(m);
	if (r < 0)
		return r;
	r = bus_call_wait(
	        c, m, now_monotonic_ms() + cap_timeout(c, CHECK_TIMEOUT_MS), &reply, error);
	if (r < 0)
		return r;
	r = sd_bus_message_read(reply, "s", &key);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ids->n && i < SSH_AGENT_MAX_OFFERED; i++) {
		_cleanup_free_ char *b64 = NULL;

		if (base64_encode(ids->items[i].blob, ids->items[i].blob_len, &b64) >= 0 &&
		        streq(b64, key)) {
			*ret_key_index = i;
			*ret_reply = TAKE_PTR(reply);
			return 0;
		}
	}
	return -EBADMSG; /* not one of the keys offered */
}

#define ENVIRON_MAX (256u * 1024u)

/* Where the forwarded agent is: SSH_AUTH_SOCK of the process environment, or, where the
 * program reset that (sudo points environ at its own reset copy before PAM runs), of the
 * environment it was started with (/proc/self/environ): the invoking user's either way,
 * and trusted no further than that (ssh_agent_approve()). OUT gets the path or "". */
static void agent_socket_path(char *out, size_t size)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	const char *v = getenv("SSH_AUTH_SOCK");
	size_t n = 0;

	out[0] = '\0';
	if (v) {
		if (strlen(v) < size)
			memcpy(out, v, strlen(v) + 1);
		return;
	}
	fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC | O_NOCTTY);
	buf = malloc(ENVIRON_MAX + 1);
	if (fd < 0 || !buf)
		return;
	while (n < ENVIRON_MAX) {
		ssize_t k = read(fd, buf + n, ENVIRON_MAX - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	buf[n] = '\0';
	for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
		if (strneq(buf + i, "SSH_AUTH_SOCK=", 14)) {
			if (strlen(buf + i + 14) < size)
				memcpy(out, buf + i + 14, strlen(buf + i + 14) + 1);
			return;
		}
}

/* An elevation inside an SSH session (sudo, su): a fresh signature of the user's
 * registered security-key SSH key through the forwarded agent, over keywardd's challenge.
 * The agent is reached as the invoking user (the real uid), who must be the user the
 * daemon decided for; its socket path comes from the environment (agent_socket_path()):
 * whatever it names is opened with that user's rights only and must be that user's socket
 * (lib/ssh-agent.h). */
static Outcome ssh_agent_approve(Ctx *c, const CheckReply *ck, bool cached)
{
	_cleanup_(ssh_agent_identities_freep) SshAgentIdentities *ids = NULL;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *challenge = NULL;
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_free_ char *err = NULL;
	_cleanup_free_ uint8_t *sig = NULL;
	_cleanup_close_ int fd = -EBADF;
	const char *id = NULL;
	char sock[PATH_MAX];
	const void *ruser = NULL, *chal = NULL;
	char text[MESSAGE_MAX], cue[CUE_MAX];
	uint32_t timeout_ms;
	size_t key = 0, chal_len = 0, sig_len = 0;
	uid_t uid = 0;
	gid_t gid = 0;
	SshAuth ssh = {.keep_token = true};
	bool retry = false;
	int r;

	if (ck->n_credentials == 0) /* keywardd says so, and records it */
		return ssh_agent_refuse(c, ck, cached, "no-key", NULL);
	agent_socket_path(sock, sizeof(sock));
	r = account_lookup(c->user, &uid, &gid);
	if (r < 0) {
		pam_syslog(c->pamh, LOG_ERR, "cannot look up %s: %s", c->user, strerror(-r));
		return OUTCOME_ERROR;
	}
	if (pam_get_item(c->pamh, PAM_RUSER, &ruser) != PAM_SUCCESS)
		ruser = NULL;
	if (uid != getuid() || (!isempty(ruser) && !streq(ruser, c->user))) {
		(void)snprintf(text, sizeof(text),
		        "keyward: only %s may approve this through the SSH agent, and this "
		        "command runs for uid %u; access denied.",
		        c->user, (unsigned)getuid());
		return ssh_agent_refuse(c, ck, cached, "wrong-user", text);
	}
	if (isempty(sock)) {
		(void)snprintf(text, sizeof(text),
		        "No SSH agent is forwarded: connect with ssh -A (or ForwardAgent yes) and "
		        "use the security-key SSH key registered for %s.",
		        c->user);
		return ssh_agent_refuse(c, ck, cached, "no-agent", text);
	}
	r = ssh_agent_open(
	        sock, getuid(), getgid(), (int)cap_timeout(c, SSH_AGENT_CONNECT_MS), &fd, &err);
	if (r == -ENOENT || r == -ECONNREFUSED) {
		(void)snprintf(text, sizeof(text),
		        "No SSH agent is forwarded (%s is gone): connect with ssh -A (or "
		        "ForwardAgent yes) and use the security-key SSH key registered for %s.",
		        sock, c->user);
		return ssh_agent_refuse(c, ck, cached, "no-agent", text);
	}
	if (r < 0) {
		agent_error_text(c, "cannot be used", r, err, text, sizeof(text));
		return ssh_agent_refuse(
		        c, ck, cached, r == -ETIMEDOUT ? "timeout" : "agent-unavailable", text);
	}
	r = ssh_agent_list(fd, (int)cap_timeout(c, SSH_AGENT_LIST_MS), &ids, &err);
	if (r < 0) {
		agent_error_text(c,
		        r == -ETIMEDOUT ? "did not list its keys in time" : "did not list its keys",
		        r, err, text, sizeof(text));
		return ssh_agent_refuse(
		        c, ck, cached, r == -ETIMEDOUT ? "timeout" : "agent-unavailable", text);
	}
	if (!ids || ids->n == 0) {
		(void)snprintf(text, sizeof(text),
		        "keyward: your SSH agent holds no keys: add the security-key SSH key "
		        "registered for %s (ssh-add) and try again.",
		        c->user);
		return ssh_agent_refuse(c, ck, cached, "no-key", text);
	}
	r = agent_challenge(c, ck, ids, &challenge, &key, &error);
	if (r < 0 && sd_bus_error_has_name(&error, "org.keyward.Keyward1.Error.NotFound")) {
		(void)snprintf(text, sizeof(text), "keyward: %s", error.message);
		return ssh_agent_refuse(c, ck, cached, "no-key", text);
	}
	if (r >= 0)
		r = sd_bus_message_read_array(challenge, 'y', &chal, &chal_len);
	if (r >= 0)
		r = sd_bus_message_read(challenge, "s", &id);
	if (r >= 0 &&
	        (chal_len < SSH_CHALLENGE_MIN || chal_len > SSH_CHALLENGE_MAX || !valid_token(id)))
		r = -EBADMSG;
	if (r < 0) {
		pam_syslog(c->pamh, LOG_ERR, "AgentChallenge for %s failed: %s", c->user,
		        error.message ? error.message : strerror(-r));
		(void)snprintf(text, sizeof(text),
		        "keyward: the keyward daemon gave no challenge for the SSH agent (%s); "
		        "access denied.",
		        error.message ? error.message : strerror(-r));
		show_error(c, text);
		return OUTCOME_ERROR;
	}

	if (!c->opt.nocue) {
		format_cue(SSH_CUE, c->user, cue, sizeof(cue));
		show_cue(c, cue);
	}
	timeout_ms = ck->timeout_ms > 0 ? ck->timeout_ms : AUTH_DEFAULT_TIMEOUT_MS;
	if (timeout_ms > AUTH_MAX_TIMEOUT_MS)
		timeout_ms = AUTH_MAX_TIMEOUT_MS;
	timeout_ms = cap_timeout(c, timeout_ms);
	r = ssh_agent_sign(fd, ids->items[key].blob, ids->items[key].blob_len, chal, chal_len, 0,
	        (int)timeout_ms, &sig, &sig_len, &err);
	if (r == -ETIMEDOUT) {
		(void)snprintf(text, sizeof(text),
		        "keyward: your security key was not touched (through the SSH agent) within "
		        "%u seconds; access denied.",
		        (timeout_ms + 999) / 1000);
		return ssh_agent_refuse(c, ck, cached, "timeout", text);
	}
	if (r == -EPROTO) {
		(void)snprintf(text, sizeof(text),
		        "keyward: the SSH agent refused to sign (was the security key touched?); "
		        "access denied.");
		return ssh_agent_refuse(c, ck, cached, "agent-refused", text);
	}
	if (r < 0) {
		agent_error_text(c, "did not sign", r, err, text, sizeof(text));
		return ssh_agent_refuse(c, ck, cached, "agent-unavailable", text);
	}
	ssh.challenge_id = id;
	ssh.signature = sig;
	ssh.signature_len = sig_len;
	return authenticate_once(c, ck, cached, false, false, &ssh, &retry, NULL);
}

/* The session phase of sshd (a publickey login shows its key to PAM only now): nothing
 * covered may start without the SSH key check. */
static Outcome ssh_session_check(Ctx *c)
{
	_cleanup_(check_reply_done) CheckReply ck = {};
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	const void *done = NULL;
	const char *info = pam_getenv(c->pamh, "SSH_AUTH_INFO_0");
	DaemonFailure why;
	int r;

	if (pam_get_data(c->pamh, DATA_SSH_LOGIN, &done) == PAM_SUCCESS && done)
		return OUTCOME_SUCCESS;
	r = daemon_check(c, &ck, &why, &error);
	if (r < 0) {
		Outcome o = fallback(c, why, &error);
		/* Only a refusal stops the session; a covered key login is not asked here. */
		return o == OUTCOME_ERROR || o == OUTCOME_REFUSED ? OUTCOME_SESSION_REFUSED
		                                                  : OUTCOME_SUCCESS;
	}
	/* (the account phase's refusal of a covered account without keys, now) */
	if (ck.require == POLICY_REQUIRE_KEY && ck.n_credentials == 0)
		return refuse_not_enrolled(c, &ck, true) == OUTCOME_SUCCESS
		               ? OUTCOME_SUCCESS
		               : OUTCOME_SESSION_REFUSED;
	if (ck.require != POLICY_REQUIRE_SSH_KEY)
		return OUTCOME_SUCCESS;
	return ssh_login(c, &ck, strempty(info)) == OUTCOME_SUCCESS ? OUTCOME_SUCCESS
	                                                            : OUTCOME_SESSION_REFUSED;
}

static Outcome do_authenticate(Ctx *c)
{
	_cleanup_(check_reply_done) CheckReply ck = {};
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	DaemonFailure why;
	int r;

	/* A token from an earlier round on this handle must not outlive a failure of this one. */
	(void)pam_set_data(c->pamh, DATA_TOKEN, NULL, NULL);

	r = daemon_check(c, &ck, &why, &error);
	if (r < 0)
		return fallback(c, why, &error);
	log_debug(c, "Check %s/%s: require=%s uv=%s up=%d rule=%s credentials=%u", c->user,
	        c->service, policy_require_to_string(ck.require), policy_uv_to_string(ck.uv), ck.up,
	        ck.rule, ck.n_credentials);

	switch (ck.require) {
	case POLICY_REQUIRE_NONE:
		return OUTCOME_NOT_COVERED;
	case POLICY_REQUIRE_DENY:
		return check_denied(c, &ck);
	case POLICY_REQUIRE_KEY:
		break;
	case POLICY_REQUIRE_SSH_KEY:
		/* sshd runs this phase for password and keyboard-interactive only (and for a
		 * second method after publickey: then SSH_AUTH_INFO_0 names the key) */
		if (handle_is_sshd(c)) {
			Outcome o =
			        ssh_login(c, &ck, strempty(pam_getenv(c->pamh, "SSH_AUTH_INFO_0")));

			/* The key was proven by sshd's publickey method; this phase proves
			 * nothing more (a password sshd asks for after it stays the rest of the
			 * stack's to check): step aside rather than end the stack. */
			return o == OUTCOME_SUCCESS ? OUTCOME_NOTHING_TO_DO : o;
		}
		return ssh_agent_approve(c, &ck, false);
	default:
		return OUTCOME_ERROR;
	}
	if (ck.n_credentials == 0)
		return refuse_not_enrolled(c, &ck, false);
	return daemon_authenticate(c, &ck, false);
}

/* The account phase. After pam_authenticate on this handle it has nothing to add. Without
 * it, a covered account's program skipped authentication: sudo within its
 * timestamp_timeout does (and always runs this phase, and honours its failure). When the
 * program runs with a real uid other than root, that is an elevation without the key:
 * the daemon decides (cached_elevation) between a silent proof that the key of the last
 * authentication is still plugged in and a fresh touch, and the token it issues binds
 * the elevation like any other. Programs running as root (login, sshd, cron, systemd)
 * elevate nobody and are not asked. */
static Outcome do_account(Ctx *c)
{
	_cleanup_(check_reply_done) CheckReply ck = {};
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	const void *token = NULL;
	DaemonFailure why;
	int r;

	if (pam_get_data(c->pamh, DATA_TOKEN, &token) == PAM_SUCCESS && token) {
		log_debug(c, "%s authenticated with a key on this handle", c->user);
		return OUTCOME_SUCCESS;
	}
	if (pam_get_data(c->pamh, DATA_SSH_LOGIN, &token) == PAM_SUCCESS && token) {
		log_debug(c, "%s's SSH key was checked on this handle", c->user);
		return OUTCOME_SUCCESS;
	}

	r = daemon_check(c, &ck, &why, &error);
	if (r < 0)
		return fallback(c, why, &error);

	switch (ck.require) {
	case POLICY_REQUIRE_NONE:
		return OUTCOME_NOT_COVERED;
	case POLICY_REQUIRE_DENY:
		return check_denied(c, &ck);
	case POLICY_REQUIRE_KEY:
		/* sshd's account phase comes before logind knows the login's session: a login
		 * from loopback may still turn out remote (on_remote) in the session phase,
		 * which decides then (ssh_session_check()). */
		if (ck.n_credentials == 0 && handle_is_sshd(c) && getuid() == 0) {
			log_debug(c, "sshd's login of %s: decided in the session phase", c->user);
			return OUTCOME_SUCCESS;
		}
		if (ck.n_credentials == 0)
			return refuse_not_enrolled(c, &ck, true);
		if (getuid() == 0)
			return OUTCOME_SUCCESS;
		pam_syslog(c->pamh, LOG_INFO,
		        "%s elevates through %s without authenticating: asking for the key",
		        c->user, c->service);
		return daemon_authenticate(c, &ck, true);
	case POLICY_REQUIRE_SSH_KEY:
		if (handle_is_sshd(c)) {
			const char *info = pam_getenv(c->pamh, "SSH_AUTH_INFO_0");

			/* A publickey login's key reaches PAM only in the session phase
			 * (ssh_session_check()); a second method's shows here. */
			if (!isempty(info))
				return ssh_login(c, &ck, info);
			log_debug(c,
			        "sshd's login of %s: its SSH key is checked in the session "
			        "phase",
			        c->user);
			return OUTCOME_SUCCESS;
		}
		if (getuid() == 0)
			return OUTCOME_SUCCESS;
		pam_syslog(c->pamh, LOG_INFO,
		        "%s elevates through %s without authenticating: asking the SSH agent",
		        c->user, c->service);
		return ssh_agent_approve(c, &ck, true);
	default:
		return OUTCOME_ERROR;
	}
}

/* --- sessions ------------------------------------------------------------------------ */

static Outcome session_call(Ctx *c, const char *what, sd_bus_message *m, sd_bus_message **ret)
{
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	int r;

	r = bus_call_wait(
	        c, m, now_monotonic_ms() + cap_timeout(c, SESSION_TIMEOUT_MS), ret, &error);
	if (r < 0) {
		pam_syslog(c->pamh, LOG_ERR, "%s for %s failed: %s", what, c->user,
		        error.message ? error.message : strerror(-r));
		return OUTCOME_SESSION_FAILED;
	}
	return OUTCOME_SUCCESS;
}

/* The logind session this process belongs to: from its cgroup (sd_pid_get_session), else
 * by asking logind (GetSessionByPID, then the session's Id). -ENXIO when there is none
 * (an elevation outside any session). */
static int logind_session_of_self(Ctx *c, char **ret)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL, *get = NULL,
	                                                *value = NULL;
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_free_ char *session = NULL;
	const char *path = NULL, *id = NULL; /* point into reply and value */
	int r;

	if (sd_pid_get_session(0, &session) >= 0 && !isempty(session)) {
		*ret = TAKE_PTR(session);
		return 0;
	}

	r = sd_bus_message_new_method_call(c->bus, &m, "org.freedesktop.login1",
	        "/org/freedesktop/login1", "org.freedesktop.login1.Manager", "GetSessionByPID");
	if (r >= 0)
		r = sd_bus_message_append(m, "u", (uint32_t)getpid());
	if (r >= 0)
		r = bus_call_wait(c, m, now_monotonic_ms() + cap_timeout(c, SESSION_TIMEOUT_MS),
		        &reply, &error);
	if (r >= 0)
		r = sd_bus_message_read(reply, "o", &path);
	if (r < 0) {
		log_debug(c, "no logind session for pid %d: %s", (int)getpid(),
		        error.message ? error.message : strerror(-r));
		return -ENXIO;
	}

	r = sd_bus_message_new_method_call(c->bus, &get, "org.freedesktop.login1", path,
	        "org.freedesktop.DBus.Properties", "Get");
	if (r >= 0)
		r = sd_bus_message_append(get, "ss", "org.freedesktop.login1.Session", "Id");
	if (r >= 0)
		r = bus_call_wait(c, get, now_monotonic_ms() + cap_timeout(c, SESSION_TIMEOUT_MS),
		        &value, &error);
	if (r >= 0)
		r = sd_bus_message_read(value, "v", "s", &id);
	if (r < 0 || isempty(id) || strlen(id) > KEYWARD_MAX_SESSION_ID) {
		log_debug(c, "cannot read the Id of logind session %s", path);
		return -ENXIO;
	}
	session = strdup(id);
	if (!session)
		return -ENOMEM;
	*ret = TAKE_PTR(session);
	return 0;
}

static Outcome do_open_session(Ctx *c)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
	_cleanup_free_ char *logind_session = NULL;
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	const char *token = NULL, *token_user = NULL, *session_id, *binding;
	const void *data = NULL, *udata = NULL;
	char *copy, msg[MESSAGE_MAX];
	Outcome o = OUTCOME_SESSION_REFUSED;
	int r;

	if (pam_get_data(c->pamh, DATA_TOKEN, &data) != PAM_SUCCESS || !data) {
		if (handle_is_sshd(c))
			return ssh_session_check(c);
		log_debug(c, "no keyward token for %s: the session is not bound", c->user);
		return OUTCOME_SUCCESS;
	}
	token = data;
	if (pam_get_data(c->pamh, DATA_TOKEN_USER, &udata) != PAM_SUCCESS || !udata) {
		pam_syslog(c->pamh, LOG_ERR, "keyward token without its user; refusing");
		return OUTCOME_SESSION_REFUSED;
	}
	token_user = udata;

	r = bus_connect(c);
	session_id = pam_getenv(c->pamh, "XDG_SESSION_ID");
	if (isempty(session_id) && r >= 0 && logind_session_of_self(c, &logind_session) >= 0)
		session_id = logind_session;
	session_id = strempty(session_id);

	if (r >= 0)
		r = sd_bus_message_new_method_call(c->bus, &m, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH,
		        KEYWARD_BUS_INTERFACE, "BindSession");
	if (r >= 0)
		r = sd_bus_message_append(m, "ssusss", token, session_id, (uint32_t)getpid(),
		        c->service, c->tty, token_user);
	if (r < 0)
		pam_syslog(c->pamh, LOG_ERR, "cannot reach keywardd to bind the session of %s: %s",
		        token_user, strerror(-r));
	else {
		r = bus_call_wait(c, m, now_monotonic_ms() + cap_timeout(c, SESSION_TIMEOUT_MS),
		        &reply, &error);
		if (r < 0)
			pam_syslog(c->pamh, LOG_ERR, "BindSession for %s failed: %s", token_user,
			        error.message ? error.message : strerror(-r));
		else if (sd_bus_message_read(reply, "s", &binding) < 0 || isempty(binding) ||
		         strlen(binding) > KEYWARD_MAX_ID) {
			pam_syslog(c->pamh, LOG_ERR, "malformed BindSession reply");
			r = -EBADMSG;
		} else
			o = OUTCOME_SUCCESS;
	}
	if (o != OUTCOME_SUCCESS) {
		/* A covered session or elevation that removing the key could not end must not
		 * start: this phase's failure is fatal to sudo, su and login alike. */
		(void)snprintf(msg, sizeof(msg),
		        "keyward: this session could not be bound to your security key (%s), so "
		        "it is not started. Check: systemctl status keywardd",
		        error.message ? error.message : strerror(-r));
		show_error(c, msg);
		return o;
	}
	copy = strdup(binding);
	if (!copy)
		return OUTCOME_SESSION_REFUSED;
	r = pam_set_data(c->pamh, DATA_BINDING, copy, plain_data_cleanup);
	if (r != PAM_SUCCESS) {
		free(copy);
		return OUTCOME_SESSION_REFUSED;
	}
	log_debug(c, "session '%s' of %s (as %s) bound as %s", session_id, token_user, c->user,
	        binding);
	return OUTCOME_SUCCESS;
}

static Outcome do_close_session(Ctx *c)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
	const void *data = NULL;
	Outcome o;
	int r;

	if (pam_get_data(c->pamh, DATA_BINDING, &data) != PAM_SUCCESS || !data) {
		log_debug(c, "no keyward binding for %s: nothing to unbind", c->user);
		return OUTCOME_SUCCESS;
	}
	r = bus_connect(c);
	if (r >= 0)
		r = sd_bus_message_new_method_call(c->bus, &m, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH,
		        KEYWARD_BUS_INTERFACE, "UnbindSession");
	if (r >= 0)
		r = sd_bus_message_append(m, "s", (const char *)data);
	if (r < 0) {
		pam_syslog(c->pamh, LOG_ERR,
		        "cannot reach keywardd to unbind the session of %s: %s", c->user,
		        strerror(-r));
		return OUTCOME_SESSION_FAILED;
	}
	o = session_call(c, "UnbindSession", m, &reply);
	if (o == OUTCOME_SUCCESS)
		(void)pam_set_data(c->pamh, DATA_BINDING, NULL, NULL);
	return o;
}

/* --- entry points -------------------------------------------------------------------- */

/* One PAM phase: set up the context, run DO_PHASE on it (or map the setup failure), and
 * turn the outcome into a PAM code. */
static int run_phase(pam_handle_t *pamh, int flags, Phase phase, int argc, const char **argv,
        Outcome (*do_phase)(Ctx *c))
{
	Ctx c = {};
	int code, r;

	r = ctx_init(&c, pamh, flags, phase, argc, argv);
	code = outcome_to_pam(r < 0 ? init_failure(pamh, r, phase) : do_phase(&c), phase);
	ctx_done(&c);
	return code;
}

_public_ PAM_EXTERN int pam_sm_authenticate(
        pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return run_phase(pamh, flags, PHASE_AUTH, argc, argv, do_authenticate);
}

_public_ PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	/* keyward establishes no credentials; the binding happens in the session phase. */
	return outcome_to_pam(OUTCOME_NOTHING_TO_DO, PHASE_AUTH);
}

_public_ PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return run_phase(pamh, flags, PHASE_ACCOUNT, argc, argv, do_account);
}

_public_ PAM_EXTERN int pam_sm_open_session(
        pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return run_phase(pamh, flags, PHASE_SESSION, argc, argv, do_open_session);
}

_public_ PAM_EXTERN int pam_sm_close_session(
        pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return run_phase(pamh, flags, PHASE_SESSION, argc, argv, do_close_session);
}
