/* testbed-keys.c: one emulated FIDO2 key = a virtkey behind a umockdev hidraw node with its
 * hid, usb_interface and usb_device parents; plug, unplug and the HID I/O glue. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/hidraw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "testbed.h"
#include "util.h"

#define HIDRAW_MAJOR 240
#define YUBICO_VID   0x1050
#define VIRTKEY_PID  0x0407

/* private ioctl handler (no device, no uevents) used once to meet umockdev's worker thread */
#define WORKER_SYNC_DEV        "/dev/kw-worker-sync"
#define WORKER_SYNC_TIMEOUT_MS 10000

/* One plug instance of a key: a hidraw node name is never reused. */
struct TestbedKeyNode {
	TestbedKey *key;
	char *devnode;    /* /dev/hidrawN */
	char *syspath[4]; /* hidraw, hid, usb_interface, usb_device (sysfs paths) */
	UMockdevIoctlBase *handler;
	int master_fd;                     /* pty master (umockdev's, not ours to close) */
	int drain_fd;                      /* our own pty slave handle, to drop stale wake bytes */
	bool gone;                         /* unplugged: clients still holding it open get errors */
	GWeakRef last_writer;              /* the client that wrote last */
	UMockdevIoctlClient *pending_read; /* a read issued before a report was ready */
	GSource *timer;
	uint64_t timer_deadline;
	pid_t ctty_holder;
};

/* CTAPHID report descriptor: usage page 0xF1D0, 64-byte input and output reports. */
static const uint8_t fido_report_descriptor[] = {
        0x06, 0xd0, 0xf1, /* Usage Page (FIDO Alliance) */
        0x09, 0x01,       /* Usage (CTAPHID) */
        0xa1, 0x01,       /* Collection (Application) */
        0x09, 0x20,       /*   Usage (Input Report Data) */
        0x15, 0x00,       /*   Logical Minimum (0) */
        0x26, 0xff, 0x00, /*   Logical Maximum (255) */
        0x75, 0x08,       /*   Report Size (8) */
        0x95, 0x40,       /*   Report Count (64) */
        0x81, 0x02,       /*   Input (Data, Var, Abs) */
        0x09, 0x21,       /*   Usage (Output Report Data) */
        0x15, 0x00,       /*   Logical Minimum (0) */
        0x26, 0xff, 0x00, /*   Logical Maximum (255) */
        0x75, 0x08,       /*   Report Size (8) */
        0x95, 0x40,       /*   Report Count (64) */
        0x91, 0x02,       /*   Output (Data, Var, Abs) */
        0xc0,             /* End Collection */
};

/* This process runs under umockdev's preload, which would route I/O on our own handle of
 * the pty slave back to our handler (a deadlock): raw system calls bypass it. */
static int bytes_queued(TestbedKeyNode *n)
{
	int q = 0;

	if (n->drain_fd < 0 || syscall(SYS_ioctl, n->drain_fd, FIONREAD, &q) < 0)
		return 0;
	return q;
}

static void drain_wake_bytes(TestbedKeyNode *n)
{
	uint8_t buf[256];

	if (n->drain_fd < 0)
		return;
	while (syscall(SYS_read, n->drain_fd, buf, sizeof(buf)) > 0)
		;
}

/* Makes the client's ppoll() on the pty slave return: one byte, consumed by the real read
 * that handle-read executes before it substitutes the report. */
static void post_wake_byte(TestbedKeyNode *n)
{
	static const uint8_t b = 0x4b;

	if (bytes_queued(n) > 0)
		return;
	if (syscall(SYS_write, n->master_fd, &b, 1) != 1)
		g_printerr("keyward-testbed: cannot wake clients of %s: %m\n", n->devnode);
}

static gboolean on_timer(gpointer userdata);
static void node_free(TestbedKeyNode *n);

/* A pty slave becomes the controlling terminal of a session leader that opens it, which a
 * hidraw node never does (a client's /dev/tty would then be the key). A tiny child that
 * holds it as its own controlling terminal rules that out. */
static pid_t spawn_ctty_holder(int slave_fd)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	/* child of a threaded process: async-signal-safe calls only */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	(void)prctl(PR_SET_NAME, "kw-tty-holder");
	{
		/* the parent's GLib handlers must not keep it alive */
		struct sigaction sa = {.sa_handler = SIG_DFL};
		sigset_t none;

		(void)sigaction(SIGTERM, &sa, NULL);
		(void)sigaction(SIGINT, &sa, NULL);
		(void)sigaction(SIGHUP, &sa, NULL);
		(void)sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
	}
	if (setsid() < 0 || syscall(SYS_ioctl, slave_fd, TIOCSCTTY, 0) < 0)
		_exit(EXIT_FAILURE);
	(void)syscall(SYS_close_range, 0U, ~0U, 0U);
	for (;;)
		pause();
}

static void complete_read_locked(
        TestbedKeyNode *n, UMockdevIoctlClient *client, const uint8_t report[VIRTKEY_REPORT_SIZE])
{
	UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
	size_t len = MIN((size_t)arg->data_len, (size_t)VIRTKEY_REPORT_SIZE);

	memcpy(arg->data, report, len);
	umockdev_ioctl_client_complete(client, (glong)len, 0);
}

/* Delivers ready reports to a waiting reader, wakes pollers, arms the timer for the next
 * keepalive / touch reply. Called with k->lock held. */
static void schedule_locked(TestbedKeyNode *n)
{
	TestbedKey *k = n->key;

	for (;;) {
		uint64_t now = now_monotonic_ms();
		uint64_t next = virtkey_next_event_ms(k->vk, now);

		if (next <= now) {
			if (n->pending_read) {
				uint8_t report[VIRTKEY_REPORT_SIZE];

				if (virtkey_hid_read(k->vk, report, now) <= 0)
					break;
				complete_read_locked(n, n->pending_read, report);
				g_clear_object(&n->pending_read);
				continue;
			}
			post_wake_byte(n);
			break;
		}
		if (next == UINT64_MAX)
			break;
		if (n->timer && n->timer_deadline == next)
			break;
		if (n->timer) {
			g_source_destroy(n->timer);
			g_source_unref(n->timer);
		}
		n->timer = g_timeout_source_new((guint)MIN(next - now, (uint64_t)G_MAXUINT));
		n->timer_deadline = next;
		g_source_set_callback(n->timer, on_timer, n, NULL);
		g_source_attach(n->timer, NULL); /* the main loop's context */
		break;
	}
}

static gboolean on_timer(gpointer userdata)
{
	TestbedKeyNode *n = userdata;

	g_mutex_lock(&n->key->lock);
	if (n->timer == g_main_current_source()) {
		g_source_unref(n->timer);
		n->timer = NULL;
		if (!n->gone)
			schedule_locked(n);
	}
	g_mutex_unlock(&n->key->lock);
	return G_SOURCE_REMOVE;
}

static gboolean on_ioctl(UMockdevIoctlBase *handler, UMockdevIoctlClient *client, gpointer userdata)
{
	TestbedKeyNode *n = userdata;
	UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
	gulong request = umockdev_ioctl_client_get_request(client);
	g_autoptr(GError) err = NULL;
	bool gone;

	g_mutex_lock(&n->key->lock);
	gone = n->gone;
	g_mutex_unlock(&n->key->lock);
	if (gone) {
		umockdev_ioctl_client_complete(client, -1, ENODEV);
		return TRUE;
	}

	if (request == HIDIOCGRDESCSIZE) {
		g_autoptr(UMockdevIoctlData) d =
		        umockdev_ioctl_data_resolve(arg, 0, sizeof(int), &err);

		if (!d) {
			umockdev_ioctl_client_complete(client, -1, EFAULT);
			return TRUE;
		}
		*(int *)d->data = (int)sizeof(fido_report_descriptor);
		umockdev_ioctl_client_complete(client, 0, 0);
	} else if (request == HIDIOCGRDESC) {
		g_autoptr(UMockdevIoctlData) d = umockdev_ioctl_data_resolve(
		        arg, 0, sizeof(struct hidraw_report_descriptor), &err);
		struct hidraw_report_descriptor *rd;

		if (!d) {
			umockdev_ioctl_client_complete(client, -1, EFAULT);
			return TRUE;
		}
		rd = (struct hidraw_report_descriptor *)d->data;
		if (rd->size > HID_MAX_DESCRIPTOR_SIZE) {
			umockdev_ioctl_client_complete(client, -1, EINVAL);
			return TRUE;
		}
		rd->size = MIN(rd->size, (uint32_t)sizeof(fido_report_descriptor));
		memcpy(rd->value, fido_report_descriptor, rd->size);
		umockdev_ioctl_client_complete(client, 0, 0);
	} else if (request == HIDIOCGRAWINFO) {
		g_autoptr(UMockdevIoctlData) d =
		        umockdev_ioctl_data_resolve(arg, 0, sizeof(struct hidraw_devinfo), &err);
		struct hidraw_devinfo *info;

		if (!d) {
			umockdev_ioctl_client_complete(client, -1, EFAULT);
			return TRUE;
		}
		info = (struct hidraw_devinfo *)d->data;
		info->bustype = 0x03; /* BUS_USB */
		info->vendor = YUBICO_VID;
		info->product = VIRTKEY_PID;
		umockdev_ioctl_client_complete(client, 0, 0);
	} else
		umockdev_ioctl_client_complete(client, -1, ENOTTY);
	return TRUE;
}

static gboolean on_write(UMockdevIoctlBase *handler, UMockdevIoctlClient *client, gpointer userdata)
{
	TestbedKeyNode *n = userdata;
	TestbedKey *k = n->key;
	UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
	g_autoptr(UMockdevIoctlClient) last = NULL;
	uint8_t report[VIRTKEY_REPORT_SIZE] = {};
	size_t len = (size_t)arg->data_len;

	g_mutex_lock(&k->lock);
	if (n->gone) {
		umockdev_ioctl_client_complete(client, -1, ENODEV);
		goto out;
	}
	/* Like hidraw on a device without report ids: byte 0 is the report number (0). */
	if (len < 2 || len > VIRTKEY_REPORT_SIZE + 1) {
		umockdev_ioctl_client_complete(client, -1, EINVAL);
		goto out;
	}
	last = g_weak_ref_get(&n->last_writer);
	if (last != client) {
		/* A new client talks to the key: drop what the previous one left behind. */
		g_weak_ref_set(&n->last_writer, client);
		if (n->pending_read) {
			umockdev_ioctl_client_complete(n->pending_read, -1, EIO);
			g_clear_object(&n->pending_read);
		}
		virtkey_reset_transport(k->vk);
		drain_wake_bytes(n);
	}
	memcpy(report, arg->data + 1, len - 1);
	if (virtkey_hid_write(k->vk, report, now_monotonic_ms()) < 0) {
		umockdev_ioctl_client_complete(client, -1, EIO);
		goto out;
	}
	umockdev_ioctl_client_complete(client, (glong)len, 0);
	schedule_locked(n);
out:
	g_mutex_unlock(&k->lock);
	return TRUE;
}

static gboolean on_read(UMockdevIoctlBase *handler, UMockdevIoctlClient *client, gpointer userdata)
{
	TestbedKeyNode *n = userdata;
	TestbedKey *k = n->key;
	uint8_t report[VIRTKEY_REPORT_SIZE];
	int r;

	g_mutex_lock(&k->lock);
	if (bytes_queued(n) > 0) {
		/* Let the real read() consume the wake byte(s), so ppoll() sleeps again. */
		g_autoptr(GError) err = NULL;
		int e = 0;

		(void)umockdev_ioctl_client_execute(client, &e, &err);
	}
	if (n->gone) {
		umockdev_ioctl_client_complete(client, -1, EIO);
		goto out;
	}
	r = virtkey_hid_read(k->vk, report, now_monotonic_ms());
	if (r < 0) {
		umockdev_ioctl_client_complete(client, -1, EIO);
		goto out;
	}
	if (r > 0)
		complete_read_locked(n, client, report);
	else if (n->pending_read)
		umockdev_ioctl_client_complete(client, -1, EAGAIN);
	else
		/* A blocking read with nothing ready: answer when a report is (keepalive/reply). */
		n->pending_read = g_object_ref(client);
	schedule_locked(n);
out:
	g_mutex_unlock(&k->lock);
	return TRUE;
}

int parse_aaguid(const char *s, uint8_t ret[16])
{
	uint8_t out[16];
	size_t j = 0;

	for (size_t i = 0; s[i]; i++) {
		int hi, lo;

		if (s[i] == '-')
			continue;
		if (j >= 16 || !s[i + 1])
			return -EINVAL;
		hi = g_ascii_xdigit_value(s[i]);
		lo = g_ascii_xdigit_value(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[j++] = (uint8_t)(hi << 4 | lo);
		i++;
	}
	if (j != 16)
		return -EINVAL;
	memcpy(ret, out, 16);
	return 0;
}

void format_aaguid(const uint8_t a[16], char buf[static 37])
{
	snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	        a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12],
	        a[13], a[14], a[15]);
}

int testbed_key_add(Testbed *t, const uint8_t aaguid[16], TestbedKey **ret)
{
	g_autofree char *state_path = NULL;
	VirtKeyOptions opts = {};
	TestbedKey *k;
	int r;

	if (t->n_keys >= TESTBED_MAX_KEYS)
		return -E2BIG;
	r = virtkey_attestation_ensure(t->state_dir, aaguid);
	if (r < 0)
		return r;

	state_path = g_strdup_printf("%s/key%u.state", t->state_dir, t->n_keys);
	memcpy(opts.aaguid, aaguid, 16);
	opts.state_path = state_path;
	opts.attestation_dir = t->state_dir;
	opts.initial_pin = t->initial_pin;
	opts.touch = t->touch;
	opts.touch_delay_ms = t->touch_delay_ms;
	opts.counter = VIRTKEY_COUNTER_NORMAL;

	k = g_new0(TestbedKey, 1);
	g_mutex_init(&k->lock);
	r = virtkey_new(&opts, &k->vk);
	if (r < 0) {
		g_mutex_clear(&k->lock);
		g_free(k);
		return r;
	}
	k->index = t->n_keys;
	k->touch = t->touch;
	k->touch_delay_ms = t->touch_delay_ms;
	k->counter = VIRTKEY_COUNTER_NORMAL;
	memcpy(k->aaguid, aaguid, 16);
	snprintf(k->serial, sizeof(k->serial), "VK%08u", k->index + 1);
	k->state_path = TAKE_PTR(state_path);
	k->old_nodes = g_ptr_array_new();
	t->keys[t->n_keys++] = k;
	*ret = k;
	return 0;
}

static char *hex_string(const uint8_t *p, size_t n)
{
	GString *s = g_string_sized_new(n * 2 + 1);

	for (size_t i = 0; i < n; i++)
		g_string_append_printf(s, "%02X", p[i]);
	return g_string_free(s, FALSE);
}

int testbed_key_plug(Testbed *t, TestbedKey *k)
{
	g_autofree char *usb = NULL, *intf = NULL, *hid = NULL, *hidraw = NULL, *record = NULL,
	                *rdesc = NULL;
	g_autoptr(GError) err = NULL;
	unsigned port = k->index + 1, minor, seq;
	struct termios tio;
	TestbedKeyNode *n;
	int r;

	if (k->node)
		return -EALREADY;
	minor = t->next_hidraw++;
	seq = ++t->next_hid_seq;

	usb = g_strdup_printf("/devices/pci0000:00/0000:00:14.0/usb1/1-%u", port);
	intf = g_strdup_printf("%s/1-%u:1.0", usb, port);
	hid = g_strdup_printf("%s/0003:%04X:%04X.%04X", intf, YUBICO_VID, VIRTKEY_PID, seq);
	hidraw = g_strdup_printf("%s/hidraw/hidraw%u", hid, minor);
	rdesc = hex_string(fido_report_descriptor, sizeof(fido_report_descriptor));

	record = g_strdup_printf(
	        "P: %s\n"
	        "E: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nE: DRIVER=usb\n"
	        "E: PRODUCT=%x/%x/526\nE: TYPE=0/0/0\nE: BUSNUM=001\nE: DEVNUM=%03u\n"
	        "A: idVendor=%04x\nA: idProduct=%04x\nA: bcdDevice=0526\n"
	        "A: manufacturer=Yubico\nA: product=YubiKey FIDO (keyward virtkey)\nA: serial=%s\n"
	        "A: busnum=1\nA: devnum=%u\nA: speed=12\nA: bDeviceClass=00\nA: bNumInterfaces= 1\n"
	        "A: bConfigurationValue=1\n"
	        "\n"
	        "P: %s\n"
	        "E: SUBSYSTEM=usb\nE: DEVTYPE=usb_interface\nE: DRIVER=usbhid\n"
	        "E: PRODUCT=%x/%x/526\nE: TYPE=0/0/0\nE: INTERFACE=3/0/0\n"
	        "A: bInterfaceClass=03\nA: bInterfaceSubClass=00\nA: bInterfaceProtocol=00\n"
	        "A: bInterfaceNumber=00\nA: bNumEndpoints=02\n"
	        "\n"
	        "P: %s\n"
	        "E: SUBSYSTEM=hid\nE: DRIVER=hid-generic\n"
	        "E: HID_ID=0003:%08X:%08X\nE: HID_NAME=Yubico YubiKey FIDO (keyward virtkey)\n"
	        "E: HID_PHYS=usb-0000:00:14.0-%u/input0\nE: HID_UNIQ=%s\n"
	        "E: MODALIAS=hid:b0003g0001v%08Xp%08X\n"
	        "H: report_descriptor=%s\n"
	        "\n"
	        "P: %s\n"
	        "N: hidraw%u\n"
	        "E: SUBSYSTEM=hidraw\nE: DEVNAME=/dev/hidraw%u\nE: MAJOR=%u\nE: MINOR=%u\n"
	        "A: dev=%u:%u\n"
	        "L: device=../../../0003:%04X:%04X.%04X\n",
	        usb, YUBICO_VID, VIRTKEY_PID, seq, YUBICO_VID, VIRTKEY_PID, k->serial, seq, intf,
	        YUBICO_VID, VIRTKEY_PID, hid, YUBICO_VID, VIRTKEY_PID, port, k->serial, YUBICO_VID,
	        VIRTKEY_PID, rdesc, hidraw, minor, minor, HIDRAW_MAJOR, minor, HIDRAW_MAJOR, minor,
	        YUBICO_VID, VIRTKEY_PID, seq);

	n = g_new0(TestbedKeyNode, 1);
	n->key = k;
	n->devnode = g_strdup_printf("/dev/hidraw%u", minor);
	n->syspath[0] = g_strconcat("/sys", hidraw, NULL);
	n->syspath[1] = g_strconcat("/sys", hid, NULL);
	n->syspath[2] = g_strconcat("/sys", intf, NULL);
	n->syspath[3] = g_strconcat("/sys", usb, NULL);
	n->drain_fd = -EBADF;
	n->master_fd = -EBADF;
	g_weak_ref_init(&n->last_writer, NULL);

	/* The handler is in place before the device appears: umockdev announces the device
	 * ("add" uevents, parents first) while adding it, and a client may open it at once.
	 * Our lock keeps HID I/O waiting until the pty is set up. */
	n->handler = umockdev_ioctl_base_new();
	g_signal_connect(n->handler, "handle-ioctl", G_CALLBACK(on_ioctl), n);
	g_signal_connect(n->handler, "handle-read", G_CALLBACK(on_read), n);
	g_signal_connect(n->handler, "handle-write", G_CALLBACK(on_write), n);
	if (!umockdev_testbed_attach_ioctl(t->tb, n->devnode, n->handler, &err)) {
		g_printerr("keyward-testbed: cannot attach the HID handler to %s: %s\n", n->devnode,
		        err->message);
		node_free(n);
		return -EINVAL;
	}

	g_mutex_lock(&k->lock);
	if (!umockdev_testbed_add_from_string(t->tb, record, &err)) {
		g_printerr("keyward-testbed: cannot add key %u to the testbed: %s\n", k->index,
		        err->message);
		r = -EINVAL;
		goto fail;
	}
	n->master_fd = umockdev_testbed_get_dev_fd(t->tb, n->devnode);
	if (n->master_fd < 0) {
		g_printerr("keyward-testbed: %s is not backed by a pty; this umockdev is not "
		           "supported\n",
		        n->devnode);
		r = -ENOTTY;
		goto fail;
	}
	/* Raw mode: a single wake byte makes the slave readable. */
	if (tcgetattr(n->master_fd, &tio) == 0) {
		cfmakeraw(&tio);
		tio.c_cc[VMIN] = 1;
		tio.c_cc[VTIME] = 0;
		(void)tcsetattr(n->master_fd, TCSANOW, &tio);
	}
	n->drain_fd = (int)syscall(
	        SYS_ioctl, n->master_fd, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (n->drain_fd < 0) {
		r = -errno;
		g_printerr("keyward-testbed: cannot open the pty behind %s: %m\n", n->devnode);
		goto fail;
	}
	n->ctty_holder = spawn_ctty_holder(n->drain_fd);
	if (n->ctty_holder < 0) {
		r = -errno;
		g_printerr("keyward-testbed: cannot fork: %m\n");
		goto fail;
	}
	virtkey_reset_transport(k->vk);
	k->node = n;
	g_free(k->last_devnode);
	k->last_devnode = g_strdup(n->devnode);
	g_free(k->last_syspath);
	k->last_syspath = g_strdup(n->syspath[0]);
	g_mutex_unlock(&k->lock);
	return 0;

fail:
	/* half-added: keep it as a dead node (clients that opened it get errors) */
	n->gone = true;
	g_ptr_array_add(k->old_nodes, n);
	g_mutex_unlock(&k->lock);
	return r;
}

int testbed_key_unplug(Testbed *t, TestbedKey *k, uint64_t *ret_emitted_ns)
{
	TestbedKeyNode *n;
	struct timespec ts;

	g_mutex_lock(&k->lock);
	n = TAKE_PTR(k->node);
	if (n) {
		n->gone = true;
		if (n->pending_read) {
			umockdev_ioctl_client_complete(n->pending_read, -1, EIO);
			g_clear_object(&n->pending_read);
		}
		if (n->timer) {
			g_source_destroy(n->timer);
			g_clear_pointer(&n->timer, g_source_unref);
		}
		/* Wake clients blocked in ppoll(): their read() then fails like a vanished hidraw.
		 */
		post_wake_byte(n);
		virtkey_power_cycle(k->vk);
		g_ptr_array_add(k->old_nodes, n);
	}
	g_mutex_unlock(&k->lock);
	if (!n)
		return -EALREADY;
	/* nobody can open the removed node any more: its terminal holder may go */
	if (n->ctty_holder > 0) {
		(void)kill(n->ctty_holder, SIGKILL);
		(void)waitpid(n->ctty_holder, NULL, 0);
		n->ctty_holder = 0;
	}

	/* remove uevents while sysfs still describes the device, children first; the hidraw
	 * one's emission time is bench/removal's t0 (CLOCK_MONOTONIC is shared by all
	 * processes) */
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	for (int i = 0; i < 4; i++)
		umockdev_testbed_uevent(t->tb, n->syspath[i], "remove");
	if (ret_emitted_ns)
		*ret_emitted_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	for (int i = 0; i < 4; i++)
		umockdev_testbed_remove_device(t->tb, n->syspath[i]);
	return 0;
}

void testbed_key_set_touch(TestbedKey *k, VirtKeyTouch touch, uint32_t delay_ms)
{
	g_mutex_lock(&k->lock);
	k->touch = touch;
	k->touch_delay_ms = delay_ms;
	virtkey_set_touch(k->vk, touch, delay_ms);
	if (k->node)
		schedule_locked(k->node);
	g_mutex_unlock(&k->lock);
}

void testbed_key_set_counter(TestbedKey *k, VirtKeyCounter mode)
{
	g_mutex_lock(&k->lock);
	k->counter = mode;
	virtkey_set_counter(k->vk, mode);
	g_mutex_unlock(&k->lock);
}

void testbed_key_describe(TestbedKey *k, GString *s)
{
	char aaguid[37];

	g_mutex_lock(&k->lock);
	format_aaguid(k->aaguid, aaguid);
	g_string_append_printf(s, "%u %s %s %s %s %u %s %s %s\n", k->index, strna(k->last_devnode),
	        strna(k->last_syspath), k->node ? "plugged" : "unplugged",
	        virtkey_touch_to_string(k->touch), k->touch_delay_ms,
	        virtkey_counter_to_string(k->counter), k->serial, aaguid);
	g_mutex_unlock(&k->lock);
}

static void node_free(TestbedKeyNode *n)
{
	if (!n)
		return;
	if (n->timer) {
		g_source_destroy(n->timer);
		g_source_unref(n->timer);
	}
	g_clear_object(&n->pending_read);
	g_weak_ref_clear(&n->last_writer);
	g_clear_object(&n->handler);
	if (n->ctty_holder > 0) {
		(void)kill(n->ctty_holder, SIGKILL);
		(void)waitpid(n->ctty_holder, NULL, 0);
	}
	if (n->drain_fd >= 0)
		close(n->drain_fd);
	for (size_t i = 0; i < ELEMENTSOF(n->syspath); i++)
		g_free(n->syspath[i]);
	g_free(n->devnode);
	g_free(n);
}

void testbed_key_free(TestbedKey *k)
{
	if (!k)
		return;
	node_free(k->node);
	for (guint i = 0; i < k->old_nodes->len; i++)
		node_free(k->old_nodes->pdata[i]);
	g_ptr_array_free(k->old_nodes, TRUE);
	virtkey_free(k->vk);
	g_free(k->state_path);
	g_free(k->last_devnode);
	g_free(k->last_syspath);
	g_mutex_clear(&k->lock);
	g_free(k);
}

/* umockdev (0.17.16, and its master alike) runs every ioctl handler, ours included, in one
 * worker thread that umockdev_testbed_new() starts. Finalizing the testbed only calls
 * g_main_loop_quit() on that thread's loop; nothing joins it. So the worker used to wind
 * down (or still finish a HID request: credentials and assertions use OpenSSL and libcbor)
 * while the main thread freed the keys, returned from main() and ran the exit handlers.
 * OpenSSL's atexit OPENSSL_cleanup() assumes a single thread: it frees every thread's
 * stop-handler list without a lock and deletes the thread-local key, while the exiting
 * worker's destructor frees its own list and per-thread DRBGs. Overlapping: a double free;
 * the worker too late: its two DRBGs leak (LSan: EVP_RAND_CTX_new from RAND_get0_public
 * and RAND_get0_private under on_read/on_write).
 *
 * umockdev does not expose the thread, so we meet it: a connection to a private ioctl
 * socket makes the worker emit "client-connected" for our handler, where we take a
 * reference to g_thread_self(). testbed_worker_join() joins it, as its owner should. */
static void on_worker_sync_connected(
        UMockdevIoctlBase *handler, UMockdevIoctlClient *client, gpointer userdata)
{
	Testbed *t = userdata;

	g_mutex_lock(&t->worker_lock);
	if (!t->worker)
		t->worker = g_thread_ref(g_thread_self());
	g_cond_broadcast(&t->worker_cond);
	g_mutex_unlock(&t->worker_lock);
}

int testbed_worker_grab(Testbed *t)
{
	g_autoptr(UMockdevIoctlBase) handler = umockdev_ioctl_base_new();
	g_autofree char *root = umockdev_testbed_get_root_dir(t->tb), *path = NULL;
	g_autoptr(GError) err = NULL;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -EBADF;
	gint64 deadline;
	bool found;
	int r = 0;

	g_signal_connect(handler, "client-connected", G_CALLBACK(on_worker_sync_connected), t);
	if (!umockdev_testbed_attach_ioctl(t->tb, WORKER_SYNC_DEV, handler, &err)) {
		g_printerr("keyward-testbed: cannot attach an ioctl handler: %s\n", err->message);
		return -EINVAL;
	}
	/* umockdev listens for DEV on $UMOCKDEV_DIR/ioctl/DEV (where its preload connects) */
	path = g_build_filename(root, "ioctl", WORKER_SYNC_DEV, NULL);
	if (strlen(path) >= sizeof(sa.sun_path)) {
		r = -ENAMETOOLONG;
		g_printerr("keyward-testbed: umockdev socket path too long: %s\n", path);
		goto out;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		g_printerr("keyward-testbed: cannot connect to umockdev's %s: %m\n", path);
		goto out;
	}
	deadline = g_get_monotonic_time() + WORKER_SYNC_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND;
	g_mutex_lock(&t->worker_lock);
	while (!t->worker && g_cond_wait_until(&t->worker_cond, &t->worker_lock, deadline))
		;
	found = t->worker;
	g_mutex_unlock(&t->worker_lock);
	if (!found) {
		r = -ETIMEDOUT;
		g_printerr("keyward-testbed: umockdev's worker thread did not accept a connection "
		           "within %d ms\n",
		        WORKER_SYNC_TIMEOUT_MS);
	}
out:
	/* the worker reads EOF and closes its end; the socket file goes with the handler */
	closep(&fd);
	fd = -EBADF;
	(void)umockdev_testbed_detach_ioctl(t->tb, WORKER_SYNC_DEV, NULL);
	return r;
}

void testbed_worker_join(Testbed *t)
{
	UMockdevTestbed *tb = g_steal_pointer(&t->tb);
	GThread *worker;

	if (tb) {
		/* finalizing it unregisters our handlers and quits the worker's main loop */
		g_object_add_weak_pointer(G_OBJECT(tb), (gpointer *)&tb);
		g_object_unref(tb);
	}
	g_mutex_lock(&t->worker_lock);
	worker = g_steal_pointer(&t->worker);
	g_mutex_unlock(&t->worker_lock);
	if (!worker)
		return;
	if (tb) {
		/* cannot happen: nothing else holds the testbed. Joining would hang. */
		g_printerr("keyward-testbed: the umockdev testbed is still referenced at exit\n");
		abort();
	}
	/* returns after the worker's thread-exit destructors (OpenSSL's included) ran */
	(void)g_thread_join(worker);
}
