/* test-binding-file.c: the session binding file format of keywardd (daemon/binding-file.c):
 * round trip of every field, what is persisted of each state, and the refusals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intern.h"
#include "session.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x);      \
			exit(EXIT_FAILURE);                                                        \
		}                                                                                  \
	} while (0)

static const char *ID = "00112233445566778899aabbccddeeff";

static Binding *sample(void)
{
	Binding *b = binding_new(NULL);

	CHECK(b);
	b->user = intern_str("alice");
	b->uid = 1000;
	b->session_id = intern_str("c7");
	b->session_path = intern_str("/org/freedesktop/login1/session/c7");
	b->session_type = intern_str("wayland");
	b->pid = 4242;
	b->pid_start = 987654321;
	b->pgid = 4240;
	b->service = intern_str("gdm-password");
	b->tty = intern_str("");
	b->cred_id = intern_str("AQF5ec7gQHCA+/m35a==");
	b->cred_label = intern_str("alice-key");
	b->hidraw_path = intern_str("/dev/hidraw3");
	b->sysfs_path = intern_str(
	        "/sys/devices/pci0000:00/usb1/1-1/1-1:1.0/0003:1050:0407.0009/hidraw/hidraw3");
	b->created_ms = 1795766994222ULL;
	b->rule = intern_str("/etc/keyward/keyward.conf:74");
	b->removal = POLICY_REMOVAL_LOCK;
	b->grace_ms = 3000;
	b->lock_verify_ms = 2000;
	b->on_lock_failure = POLICY_LOCK_FAILURE_ALERT;
	b->state = BINDING_BOUND;
	return b;
}

static Binding *reparse(const Binding *b, const char **why)
{
	char *text = NULL;
	size_t len = 0;
	Binding *c = NULL;

	CHECK(binding_format(b, &text, &len) >= 0);
	CHECK(strlen(text) == len);
	if (binding_parse(NULL, ID, text, &c, why) < 0)
		c = NULL;
	free(text);
	return c;
}

static void test_round_trip(void)
{
	Binding *b = sample(), *c;
	const char *why = NULL;

	c = reparse(b, &why);
	CHECK(c);
	CHECK(strcmp(c->id, ID) == 0);
	CHECK(strcmp(c->user, "alice") == 0 && c->uid == 1000);
	CHECK(strcmp(c->session_id, "c7") == 0);
	CHECK(strcmp(c->session_path, b->session_path) == 0);
	CHECK(strcmp(c->session_type, "wayland") == 0);
	CHECK(c->pid == 4242 && c->pid_start == 987654321 && c->pgid == 4240);
	CHECK(strcmp(c->service, "gdm-password") == 0 && strcmp(c->tty, "") == 0);
	CHECK(strcmp(c->cred_id, b->cred_id) == 0 && strcmp(c->cred_label, "alice-key") == 0);
	CHECK(strcmp(c->hidraw_path, "/dev/hidraw3") == 0 &&
	        strcmp(c->sysfs_path, b->sysfs_path) == 0);
	CHECK(c->created_ms == 1795766994222ULL);
	CHECK(strcmp(c->rule, b->rule) == 0);
	CHECK(c->removal == POLICY_REMOVAL_LOCK && c->grace_ms == 3000 &&
	        c->lock_verify_ms == 2000);
	CHECK(c->on_lock_failure == POLICY_LOCK_FAILURE_ALERT);
	CHECK(c->state == BINDING_BOUND);
	CHECK(c->action_seq == 0); /* no action pending: none written, none read */
	CHECK(!c->run);            /* no run-time state: no tree, timer or call */
	binding_free(c);

	/* A removal action under way keeps the seq of its first record (the next start
	 * records it as interrupted). */
	b->action_seq = 123456789012ULL;
	c = reparse(b, &why);
	CHECK(c && c->action_seq == 123456789012ULL);
	binding_free(c);
	b->action_seq = 0;

	/* An elevation: no session. */
	intern_unref(b->session_id);
	intern_unref(b->session_path);
	intern_unref(b->session_type);
	b->session_id = b->session_path = b->session_type = NULL;
	b->removal = POLICY_REMOVAL_END_ELEVATION;
	c = reparse(b, &why);
	CHECK(c && !c->session_id && !c->session_path && c->pid == 4242);
	CHECK(c->removal == POLICY_REMOVAL_END_ELEVATION);
	binding_free(c);
	binding_free(b);
}

static void test_states(void)
{
	static const struct {
		BindingState in, out;
	} t[] = {
	        {BINDING_BOUND, BINDING_BOUND},
	        /* grace and acting are not persisted: after a restart the key is looked for
	         * again and the action runs again if it is still gone */
	        {BINDING_GRACE, BINDING_BOUND},
	        {BINDING_ACTING, BINDING_BOUND},
	        {BINDING_DONE, BINDING_DONE},
	};
	const char *why = NULL;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		Binding *b = sample(), *c;

		b->state = t[i].in;
		c = reparse(b, &why);
		CHECK(c && c->state == t[i].out);
		binding_free(c);
		binding_free(b);
	}
	for (int s = 0; s < _BINDING_STATE_MAX; s++)
		CHECK(binding_state_from_string(binding_state_to_string((BindingState)s)) == s);
	CHECK(binding_state_from_string("bogus") < 0);
}

static void test_unstorable(void)
{
	Binding *b = sample();
	char *text = NULL;
	size_t len;

	intern_unref(b->tty);
	b->tty = intern_str("/dev/pts/1\nstate=done");
	CHECK(binding_format(b, &text, &len) == -EINVAL);
	CHECK(!text);
	binding_free(b);
}

/* Replaces the first occurrence of FROM in the formatted sample by TO and parses it. */
static int parse_edited(const char *from, const char *to, const char **why)
{
	Binding *b = sample(), *c = NULL;
	char *text = NULL, *edited, *p;
	size_t len;
	int r;

	CHECK(binding_format(b, &text, &len) >= 0);
	p = strstr(text, from);
	CHECK(p);
	edited = malloc(len + strlen(to) + 1);
	CHECK(edited);
	memcpy(edited, text, (size_t)(p - text));
	strcpy(edited + (p - text), to);
	strcat(edited, p + strlen(from));
	r = binding_parse(NULL, ID, edited, &c, why);
	binding_free(c);
	binding_free(b);
	free(text);
	free(edited);
	return r;
}

static void test_refusals(void)
{
	static const struct {
		const char *from, *to;
	} t[] = {
	        {"version=1\n", "version=2\n"},
	        {"version=1\n", ""},
	        {"state=bound\n", ""},
	        {"state=bound\n", "state=grace\n"},
	        {"user=alice\n", "user=alice\nuser=bob\n"},
	        {"user=alice\n", "user=ali/ce\n"},
	        {"user=alice\n", ""},
	        {"service=gdm-password\n", ""},
	        {"uid=1000\n", "uid=-1\n"},
	        {"uid=1000\n", "uid=4294967296\n"},
	        {"grace_ms=3000\n", "grace_ms=4294967296\n"},
	        {"grace_ms=3000\n", "grace_ms=3s\n"},
	        {"pid=4242\n", "pid=2147483648\n"},
	        {"pid=4242\n", "pid=1\n"},
	        {"removal=lock\n", "removal=explode\n"},
	        {"on_lock_failure=alert\n", "on_lock_failure=ignore\n"},
	        {"tty=\n", "tty\n"},
	        {"tty=\n", "tty=\n evil=1\n"},
	        {"rule=", "colour=blue\nrule="},
	};
	const char *why = NULL;

	/* the helper itself: a harmless edit parses */
	CHECK(parse_edited("grace_ms=3000\n", "grace_ms=5\n", &why) >= 0);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		why = NULL;
		if (parse_edited(t[i].from, t[i].to, &why) >= 0) {
			fprintf(stderr, "accepted: '%s' -> '%s'\n", t[i].from, t[i].to);
			exit(EXIT_FAILURE);
		}
		CHECK(why);
	}
	/* Neither a session nor an elevated process; no device at all. */
	why = NULL;
	{
		Binding *b = sample(), *c = NULL;
		char *text = NULL;
		size_t len;

		intern_unref(b->session_id);
		b->session_id = NULL;
		b->pid = 0;
		CHECK(binding_format(b, &text, &len) >= 0);
		CHECK(binding_parse(NULL, ID, text, &c, &why) == -EBADMSG && !c && why);
		free(text);
		text = NULL;
		b->pid = 7;
		intern_unref(b->sysfs_path);
		intern_unref(b->hidraw_path);
		b->sysfs_path = b->hidraw_path = NULL;
		CHECK(binding_format(b, &text, &len) >= 0);
		CHECK(binding_parse(NULL, ID, text, &c, &why) == -EBADMSG && !c);
		free(text);
		binding_free(b);
	}
	CHECK(binding_value_ok("/sys/devices/x") && binding_value_ok(NULL) &&
	        !binding_value_ok("a\tb"));
}

static void test_action_seq_refused(void)
{
	Binding *b = sample(), *c = NULL;
	char *text = NULL, *edited = NULL;
	size_t len = 0;
	const char *why = NULL;

	CHECK(binding_format(b, &text, &len) >= 0);
	CHECK(asprintf(&edited, "%saction_seq=0\n", text) > 0);
	CHECK(binding_parse(NULL, ID, edited, &c, &why) < 0 && !c);
	free(edited);
	CHECK(asprintf(&edited, "%saction_seq=12x\n", text) > 0);
	CHECK(binding_parse(NULL, ID, edited, &c, &why) < 0 && !c);
	free(edited);
	free(text);
	binding_free(b);
}

int main(void)
{
	test_action_seq_refused();
	test_round_trip();
	test_states();
	test_unstorable();
	test_refusals();
	printf("test-binding-file: ok\n");
	return 0;
}
