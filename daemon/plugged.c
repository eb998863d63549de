/* plugged.c: the plugged FIDO keys, kept from udev (a UdevWatch of its own) so that a login
 * does not enumerate hidraw devices: each device's descriptor is read once, when it is
 * added, and the set is filled again whenever the monitor may have lost events. */
#include "plugged.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/hidraw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <fido.h>

#include "log.h"
#include "udev-watch.h"
#include "util.h"

#define HID_USAGE_PAGE_FIDO 0xf1d0

struct PluggedSet {
	struct udev *udev;
	UdevWatch *watch;
	PluggedKey items[PLUGGED_MAX];
	size_t n;
	uint64_t serial;       /* the newest generation handed out */
	uint64_t known_serial; /* the newest PluggedKnown.seq */
};

bool plugged_descriptor_is_fido(const uint8_t *desc, size_t size)
{
	size_t i = 0;

	while (i < size) {
		uint8_t prefix = desc[i];
		size_t len;

		if (prefix == 0xfe) { /* long item: size, tag, data */
			if (i + 2 >= size)
				return false;
			i += 3 + (size_t)desc[i + 1];
			continue;
		}
		len = (prefix & 0x03) == 3 ? 4 : (prefix & 0x03);
		if (i + 1 + len > size)
			return false;
		if ((prefix & 0xfc) == 0x04) { /* the first Usage Page (global item, tag 0) */
			uint32_t page = 0;

			for (size_t k = 0; k < len; k++)
				page |= (uint32_t)desc[i + 1 + k] << (8 * k);
			return page == HID_USAGE_PAGE_FIDO;
		}
		i += 1 + len;
	}
	return false;
}

int plugged_devnode_is_fido(const char *devnode)
{
	struct hidraw_report_descriptor rd = {};
	int fd, size = 0, r = 0;

	if (isempty(devnode))
		return -ENODEV;
	fd = open(devnode, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, HIDIOCGRDESCSIZE, &size) < 0)
		r = -errno;
	else if (size <= 0 || size > HID_MAX_DESCRIPTOR_SIZE)
		r = -EBADMSG;
	else {
		rd.size = (uint32_t)size;
		if (ioctl(fd, HIDIOCGRDESC, &rd) < 0)
			r = -errno;
		else
			r = plugged_descriptor_is_fido(
			        rd.value, rd.size < (uint32_t)size ? rd.size : (uint32_t)size);
	}
	close(fd);
	return r;
}

PluggedSet *plugged_new(struct udev *udev)
{
	PluggedSet *s = calloc(1, sizeof(*s));

	if (s && udev)
		s->udev = udev_ref(udev);
	return s;
}

static void plugged_known_free(PluggedKnown *k)
{
	free(k->user);
	free(k->cred_id);
	*k = (PluggedKnown){};
}

/* An entry goes: with it, everything remembered about it. */
static void plugged_key_done(PluggedKey *k)
{
	free(k->syspath);
	free(k->devnode);
	for (size_t i = 0; i < k->n_known; i++)
		plugged_known_free(&k->known[i]);
	*k = (PluggedKey){};
}

static void plugged_clear(PluggedSet *s)
{
	for (size_t i = 0; i < s->n; i++)
		plugged_key_done(&s->items[i]);
	s->n = 0;
}

PluggedSet *plugged_free(PluggedSet *s)
{
	if (!s)
		return NULL;
	udev_watch_free(s->watch);
	plugged_clear(s);
	if (s->udev)
		udev_unref(s->udev);
	free(s);
	return NULL;
}

static ssize_t plugged_find(const PluggedSet *s, const char *syspath)
{
	for (size_t i = 0; i < s->n; i++)
		if (streq(s->items[i].syspath, syspath))
			return (ssize_t)i;
	return -1;
}

int plugged_remove(PluggedSet *s, const char *syspath)
{
	ssize_t i = syspath ? plugged_find(s, syspath) : -1;

	if (i < 0)
		return 0;
	plugged_key_done(&s->items[i]);
	memmove(&s->items[i], &s->items[i + 1], (s->n - (size_t)i - 1) * sizeof(s->items[0]));
	s->n--;
	return 1;
}

int plugged_add(PluggedSet *s, const char *syspath, const char *devnode, bool is_fido)
{
	PluggedKey k = {};
	size_t at;
	int r;

	if (isempty(syspath))
		return -EINVAL;
	/* "add" again for a known device (a rescan, a replayed event): the newest wins. */
	r = plugged_remove(s, syspath);
	if (!is_fido || isempty(devnode))
		return r;
	if (s->n >= PLUGGED_MAX) {
		log_warning("More than %d FIDO devices are plugged in; %s is not used.",
		        PLUGGED_MAX, devnode);
		return r;
	}
	k.syspath = strdup(syspath);
	k.devnode = strdup(devnode);
	if (!k.syspath || !k.devnode) {
		free(k.syspath);
		free(k.devnode);
		return -ENOMEM;
	}
	k.generation = ++s->serial;
	/* Sorted by syspath, as udev lists them (and libfido2 did). */
	for (at = 0; at < s->n && strcmp(s->items[at].syspath, syspath) < 0; at++)
		;
	memmove(&s->items[at + 1], &s->items[at], (s->n - at) * sizeof(s->items[0]));
	s->items[at] = k;
	s->n++;
	return 1;
}

/* The descriptor is read once per device; a device that cannot be read is not a key we can
 * use either (libfido2 skips it the same way). */
static void plugged_add_device(PluggedSet *s, const char *syspath, const char *devnode)
{
	int fido = plugged_devnode_is_fido(devnode);

	if (fido < 0)
		log_debug_errno(fido, "Cannot read the HID descriptor of %s: %m", strna(devnode));
	if (plugged_add(s, syspath, devnode, fido > 0) < 0)
		log_warning("Out of memory: %s is not in the set of plugged keys.", strna(devnode));
	else if (fido > 0)
		log_debug("FIDO key plugged in: %s (%s)", devnode, syspath);
}

int plugged_refill(PluggedSet *s)
{
	_cleanup_strv_free_ char **present = NULL;
	int r;

	r = udev_watch_present(s->udev, &present);
	if (r < 0)
		return r;
	plugged_clear(s);
	for (char **p = present; *p; p++) {
		_cleanup_free_ char *devnode = NULL;

		if (udev_watch_devnode(s->udev, *p, &devnode) >= 0)
			plugged_add_device(s, *p, devnode);
	}
	return 0;
}

static void on_added(const char *syspath, const char *devnode, void *userdata)
{
	plugged_add_device(userdata, syspath, devnode);
}

static void on_removed(const char *syspath, const char *devnode, void *userdata)
{
	if (plugged_remove(userdata, syspath) > 0)
		log_debug("FIDO key removed: %s (%s)", strna(devnode), syspath);
}

static void on_lost(void *userdata)
{
	int r = plugged_refill(userdata);

	if (r < 0)
		log_warning_errno(r, "Cannot list the hidraw devices again: %m");
}

static const UdevWatchCallbacks plugged_callbacks = {
        .added = on_added,
        .removed = on_removed,
        .lost = on_lost,
};

int plugged_start(sd_event *event, struct udev *udev, PluggedSet **ret)
{
	PluggedSet *s;
	int r;

	s = plugged_new(udev);
	if (!s)
		return -ENOMEM;
	/* The monitor first, so that nothing plugged from now on is missed. */
	r = udev_watch_start(event, udev, &plugged_callbacks, s, &s->watch);
	if (r >= 0)
		r = plugged_refill(s);
	if (r < 0) {
		plugged_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

size_t plugged_count(const PluggedSet *s)
{
	return s ? s->n : 0;
}

const PluggedKey *plugged_get(const PluggedSet *s, size_t i)
{
	return s && i < s->n ? &s->items[i] : NULL;
}

const char *plugged_syspath(const PluggedSet *s, const char *devnode)
{
	if (!s || isempty(devnode))
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (streq(s->items[i].devnode, devnode))
			return s->items[i].syspath;
	return NULL;
}

uint64_t plugged_serial(const PluggedSet *s)
{
	return s ? s->serial : 0;
}

int plugged_remember(
        PluggedSet *s, const char *devnode, uint64_t serial, const char *user, const char *cred_id)
{
	PluggedKey *k = NULL;
	PluggedKnown n = {};

	if (!s || isempty(devnode) || isempty(user) || isempty(cred_id))
		return 0;
	for (size_t i = 0; i < s->n && !k; i++)
		if (streq(s->items[i].devnode, devnode))
			k = &s->items[i];
	if (!k || k->generation > serial)
		return 0; /* gone, or plugged (again) after the request started */
	n.user = strdup(user);
	n.cred_id = strdup(cred_id);
	if (!n.user || !n.cred_id) {
		plugged_known_free(&n);
		return -ENOMEM;
	}
	n.seq = ++s->known_serial;
	/* The same pair again moves to the front; a full list drops its oldest. */
	for (size_t i = 0; i < k->n_known; i++)
		if (streq(k->known[i].user, user) && streq(k->known[i].cred_id, cred_id)) {
			plugged_known_free(&k->known[i]);
			memmove(&k->known[i], &k->known[i + 1],
			        (k->n_known - i - 1) * sizeof(k->known[0]));
			k->n_known--;
			break;
		}
	if (k->n_known == PLUGGED_KNOWN_MAX)
		plugged_known_free(&k->known[--k->n_known]);
	memmove(&k->known[1], &k->known[0], k->n_known * sizeof(k->known[0]));
	k->known[0] = n;
	k->n_known++;
	return 1;
}

const PluggedKey *plugged_known(const PluggedSet *s, const char *user,
        bool (*usable)(const char *cred_id, void *userdata), void *userdata,
        const char **ret_cred_id)
{
	const PluggedKey *best = NULL;
	const PluggedKnown *best_known = NULL;

	if (!s || isempty(user))
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		for (size_t j = 0; j < s->items[i].n_known; j++) {
			const PluggedKnown *n = &s->items[i].known[j];

			if (!streq(n->user, user) || (best_known && n->seq < best_known->seq))
				continue;
			if (usable && !usable(n->cred_id, userdata))
				continue;
			best = &s->items[i];
			best_known = n;
		}
	if (best && ret_cred_id)
		*ret_cred_id = best_known->cred_id;
	return best;
}

int plugged_devnodes(const PluggedSet *s, char ***ret)
{
	_cleanup_strv_free_ char **l = NULL;
	int r;

	if (!s) {
		*ret = NULL;
		return 0;
	}
	l = calloc(1, sizeof(char *));
	if (!l)
		return -ENOMEM;
	for (size_t i = 0; i < s->n; i++) {
		r = strv_extend(&l, s->items[i].devnode);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(l);
	return 0;
}

int plugged_enumerate(size_t max, char ***ret)
{
	_cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
	fido_dev_info_t *devlist = fido_dev_info_new(max);
	size_t n = 0;
	int r = 0;

	if (!l || !devlist) {
		fido_dev_info_free(&devlist, max);
		return -ENOMEM;
	}
	if (fido_dev_info_manifest(devlist, max, &n) != FIDO_OK)
		n = 0;
	for (size_t i = 0; i < n && r >= 0; i++) {
		const fido_dev_info_t *di = fido_dev_info_ptr(devlist, i);

		if (di && fido_dev_info_path(di))
			r = strv_extend(&l, fido_dev_info_path(di));
	}
	fido_dev_info_free(&devlist, max);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(l);
	return 0;
}
