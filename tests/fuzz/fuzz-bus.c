/* fuzz-bus.c: libFuzzer target for keywardd's bus argument checks (daemon/bus-util.c):
 * the string checks on raw strings from the input, and bus_read_options() on a{sv}
 * messages built from the input. Accepted values must obey docs/dbus-api.md's limits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <systemd/sd-bus.h>

#include "bus-util.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT   (16 * 1024)
#define MAX_ENTRIES 40

/* sd-bus makes messages only on a bus that was started: one end of a socketpair that
 * nothing ever reads. */
static sd_bus *fuzz_bus(void)
{
	static sd_bus *bus;
	int sv[2];

	if (bus)
		return bus;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || sd_bus_new(&bus) < 0 ||
	        sd_bus_set_fd(bus, sv[0], sv[0]) < 0 || sd_bus_start(bus) < 0)
		abort();
	return bus;
}

typedef struct Input {
	const uint8_t *p;
	size_t left;
} Input;

static uint8_t take(Input *in)
{
	if (in->left == 0)
		return 0;
	in->left--;
	return *in->p++;
}

/* A string of up to MAX bytes from the input, valid UTF-8 without NUL (what sd-bus
 * carries): bytes below 0x80 as they are (NUL as 'x'), others as "é" or "€". */
static void take_string(Input *in, char *buf, size_t max)
{
	size_t n = take(in) % (max + 1), i = 0;

	while (i < n && in->left > 0) {
		uint8_t c = take(in);

		if (c == 0)
			buf[i++] = 'x';
		else if (c < 0x80)
			buf[i++] = (char)c;
		else if (c < 0xc0 && i + 2 <= n) {
			memcpy(buf + i, "\xc3\xa9", 2);
			i += 2;
		} else if (i + 3 <= n) {
			memcpy(buf + i, "\xe2\x82\xac", 3);
			i += 3;
		} else
			break;
	}
	buf[i] = '\0';
}

/* ---- the string checks, on raw strings ---- */

static bool ctrl_free(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* docs/dbus-api.md and util.h (valid_user_name): [A-Za-z0-9._-], '$' only last, not
 * starting with '-', not "." or "..", 1..32 characters. */
static bool user_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > KEYWARD_MAX_USER || s[0] == '-' || streq(s, ".") || streq(s, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		            c == '.' || c == '_' || c == '-' || (c == '$' && i == n - 1)))
			return false;
	}
	return true;
}

static void expect(int r, sd_bus_error *e, bool ok)
{
	if (ok ? r < 0 : r >= 0)
		abort();
	if (!ok && !sd_bus_error_has_name(e, KEYWARD_BUS_ERROR_INVALID_ARGS))
		abort();
	sd_bus_error_free(e);
}

static bool string_ok(const char *s, size_t max, bool may_be_empty)
{
	return (may_be_empty || *s) && strlen(s) <= max && ctrl_free(s);
}

static void check_strings(const char *s[4])
{
	static const struct {
		size_t max;
		bool empty;
	} caps[] = {
	        {KEYWARD_MAX_SERVICE, false},
	        {KEYWARD_MAX_TTY, true},
	        {KEYWARD_MAX_RHOST, true},
	        {KEYWARD_MAX_LABEL, false},
	        {KEYWARD_MAX_ID, false},
	        {KEYWARD_MAX_DEVICE_PATH, false},
	};
	sd_bus_error e = SD_BUS_ERROR_NULL;
	bool login_ok;

	for (size_t i = 0; i < 4; i++) {
		expect(bus_check_user(s[i], &e), &e, user_ok(s[i]));
		for (size_t j = 0; j < ELEMENTSOF(caps); j++)
			expect(bus_check_string(s[i], caps[j].max, caps[j].empty, "x", &e), &e,
			        string_ok(s[i], caps[j].max, caps[j].empty));
	}
	expect(bus_check_string(NULL, 10, true, "x", &e), &e, false);
	login_ok = user_ok(s[0]) && string_ok(s[1], KEYWARD_MAX_SERVICE, false) &&
	           string_ok(s[2], KEYWARD_MAX_TTY, true) &&
	           string_ok(s[3], KEYWARD_MAX_RHOST, true);
	expect(bus_check_login(s[0], s[1], s[2], s[3], &e), &e, login_ok);
}

static void check_caller(uint8_t flags, const char *caller_user, const char *user)
{
	BusCaller c = {
	        .uid = 1000,
	        .user = (flags & 0x40) ? (char *)caller_user : NULL,
	        .is_root = flags & 0x08,
	        .is_admin = flags & 0x10,
	        .allowed = flags & 0x07,
	};
	const char *u = (flags & 0x20) ? user : NULL;
	bool want = ((c.allowed & BUS_ACCESS_ROOT) && c.is_root) ||
	            ((c.allowed & BUS_ACCESS_ADMIN) && c.is_admin) ||
	            ((c.allowed & BUS_ACCESS_SELF) && c.user && u && streq(c.user, u));

	if (bus_caller_may_act_for(&c, u) != want)
		abort();
}

/* ---- bus_read_options() on built messages ---- */

static const char *const known_sets[][4] = {
        {"cached:b", "decision:s", NULL},             /* Authenticate */
        {"resident:b", "uv:b", "device:s", NULL},     /* Enroll */
        {"list:as", "map:a{ss}", "any:v", NULL},      /* containers */
        {"cached:b", "cached:s", "decision:s", NULL}, /* one key, two types */
};

static const char *const key_names[] = {
        "cached",
        "decision",
        "resident",
        "uv",
        "device",
        "list",
        "map",
        "any",
        "cache",
        "cachedd",
        "",
        "b",
        "cached:b",
        "Cached",
        "uv:",
        "device:s",
};

static const char *const types[] = {
        "b",
        "s",
        "u",
        "i",
        "t",
        "y",
        "n",
        "d",
        "o",
        "g",
        "as",
        "a{ss}",
        "v",
        "(su)",
        "ay",
        "a{sv}",
};

typedef struct OptionsSeen {
	const char *const *known;
	unsigned calls;
	bool lazy; /* leave the value unread */
} OptionsSeen;

static bool is_known(const char *const *known, const char *key, const char *type)
{
	for (const char *const *k = known; *k; k++) {
		const char *colon = strchr(*k, ':');
		if (strlen(key) == (size_t)(colon - *k) && strneq(*k, key, strlen(key)) &&
		        streq(colon + 1, type))
			return true;
	}
	return false;
}

static int option_cb(const char *key, sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	OptionsSeen *seen = userdata;
	const char *contents = NULL;
	char type;
	int r;

	seen->calls++;
	if (seen->calls > KEYWARD_MAX_OPTIONS)
		abort(); /* the cap is checked before the callback */
	r = sd_bus_message_peek_type(msg, &type, &contents);
	if (r < 0)
		return r;
	/* Called inside the variant, for a known key of the known type only. */
	{
		char sig[64];
		if (type == SD_BUS_TYPE_ARRAY || type == SD_BUS_TYPE_STRUCT ||
		        type == SD_BUS_TYPE_VARIANT) {
			if (type == SD_BUS_TYPE_VARIANT)
				snprintf(sig, sizeof(sig), "v");
			else if (type == SD_BUS_TYPE_ARRAY)
				snprintf(sig, sizeof(sig), "a%s", contents);
			else
				snprintf(sig, sizeof(sig), "(%s)", contents);
		} else
			snprintf(sig, sizeof(sig), "%c", type);
		if (!is_known(seen->known, key, sig))
			abort();
	}
	if (seen->lazy)
		return 0;
	if (type == SD_BUS_TYPE_STRING) {
		const char *s;
		r = sd_bus_message_read(msg, "s", &s);
		if (r < 0)
			return r;
		return bus_check_string(s, KEYWARD_MAX_DEVICE_PATH, false, key, error);
	}
	if (type == SD_BUS_TYPE_BOOLEAN) {
		int b;
		return sd_bus_message_read(msg, "b", &b);
	}
	return sd_bus_message_skip(msg, NULL);
}

/* Appends a value of TYPES[T] from the input. */
static int append_value(sd_bus_message *m, unsigned t, Input *in, unsigned depth)
{
	char s[80], s2[80];
	uint8_t b = take(in);

	switch (t) {
	case 0:
		return sd_bus_message_append(m, "b", b & 1);
	case 1:
		take_string(in, s, 70);
		return sd_bus_message_append(m, "s", s);
	case 2:
		return sd_bus_message_append(m, "u", (uint32_t)b * 0x01010101u);
	case 3:
		return sd_bus_message_append(m, "i", -(int32_t)b);
	case 4:
		return sd_bus_message_append(m, "t", (uint64_t)b << 56);
	case 5:
		return sd_bus_message_append(m, "y", b);
	case 6:
		return sd_bus_message_append(m, "n", (int16_t)b);
	case 7:
		return sd_bus_message_append(m, "d", (double)b / 3.0);
	case 8:
		return sd_bus_message_append(m, "o", b & 1 ? "/org/keyward" : "/");
	case 9:
		return sd_bus_message_append(m, "g", b & 1 ? "a{sv}" : "");
	case 10:
		take_string(in, s, 20);
		take_string(in, s2, 20);
		return sd_bus_message_append(m, "as", b % 3, s, s2, "third");
	case 11:
		take_string(in, s, 20);
		return sd_bus_message_append(m, "a{ss}", b % 2, s, "v");
	case 12: {
		unsigned inner = depth < 3 ? take(in) % ELEMENTSOF(types) : 0;
		int r = sd_bus_message_open_container(m, 'v', types[inner]);
		if (r < 0)
			return r;
		r = append_value(m, inner, in, depth + 1);
		if (r < 0)
			return r;
		return sd_bus_message_close_container(m);
	}
	case 13:
		take_string(in, s, 20);
		return sd_bus_message_append(m, "(su)", s, (uint32_t)b);
	case 14:
		return sd_bus_message_append_array(m, 'y', "abcd", b % 4);
	default: /* a{sv} inside the variant */
		take_string(in, s, 20);
		return sd_bus_message_append(m, "a{sv}", b % 2, s, "b", 1);
	}
}

static void check_options(const uint8_t *data, size_t size)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	sd_bus_error e = SD_BUS_ERROR_NULL;
	static uint64_t cookie;
	Input in = {data, size};
	uint8_t flags = take(&in);
	OptionsSeen seen = {
	        .known = known_sets[flags & 3],
	        .lazy = flags & 0x40,
	};
	unsigned entries = 0;
	bool all_known = true;
	int r;

	if (sd_bus_message_new_method_call(fuzz_bus(), &m, KEYWARD_BUS_NAME, KEYWARD_BUS_PATH,
	            KEYWARD_BUS_INTERFACE, "Fuzz") < 0)
		abort();
	if (flags & 0x80) {
		/* Not an a{sv} at all. */
		if (sd_bus_message_append(m, flags & 0x04 ? "a{ss}" : "s", flags & 0x04 ? 0 : "x") <
		        0)
			abort();
		all_known = false;
		entries = 1;
	} else {
		if (sd_bus_message_open_container(m, 'a', "{sv}") < 0)
			abort();
		while (in.left > 0 && entries < MAX_ENTRIES) {
			uint8_t k = take(&in), t = take(&in) % ELEMENTSOF(types);
			char key[100];

			if (k < 0xf0)
				snprintf(key, sizeof(key), "%s",
				        key_names[k % ELEMENTSOF(key_names)]);
			else
				take_string(&in, key, 90);
			if (sd_bus_message_open_container(m, 'e', "sv") < 0 ||
			        sd_bus_message_append(m, "s", key) < 0 ||
			        sd_bus_message_open_container(m, 'v', types[t]) < 0 ||
			        append_value(m, t, &in, 0) < 0 ||
			        sd_bus_message_close_container(m) < 0 ||
			        sd_bus_message_close_container(m) < 0)
				abort();
			entries++;
			all_known = all_known && is_known(seen.known, key, types[t]);
		}
		if (sd_bus_message_close_container(m) < 0)
			abort();
	}
	if (sd_bus_message_seal(m, ++cookie, 0) < 0 || sd_bus_message_rewind(m, true) < 0)
		abort();

	r = bus_read_options(m, seen.known, option_cb, &seen, &e);
	if (sd_bus_error_is_set(&e)) {
		/* The error goes back to the caller: sd-bus must be able to send it. */
		_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
		if (sd_bus_message_new_method_error(m, &reply, &e) < 0)
			abort();
	}
	if (r >= 0) {
		/* Accepted: at most the cap, every entry known and handed over once. */
		if (!all_known || entries > KEYWARD_MAX_OPTIONS || seen.calls != entries)
			abort();
	} else if (all_known && entries <= KEYWARD_MAX_OPTIONS && !seen.lazy &&
	           !sd_bus_error_is_set(&e)) {
		/* Known keys of the right types within the cap are refused only by a value
		 * check of the callback (which sets an error). */
		abort();
	} else if (entries > KEYWARD_MAX_OPTIONS && all_known && !seen.lazy &&
	           !sd_bus_error_has_name(&e, KEYWARD_BUS_ERROR_INVALID_ARGS))
		abort();
	sd_bus_error_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy, *s[4];
	size_t at = 0;

	if (size > MAX_INPUT)
		return 0;
	copy = malloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	/* Four NUL-separated strings (missing ones are empty). */
	for (size_t i = 0; i < 4; i++) {
		s[i] = copy + at;
		if (at < size)
			at += strlen(copy + at) + 1;
		if (at > size)
			at = size;
	}
	check_strings((const char **)s);
	check_caller(size > 0 ? data[0] : 0, s[0], s[1]);
	free(copy);

	check_options(data, size);
	return 0;
}
