/* bench/audit-commit.c: keyward-bench-audit-commit — durable audit appends per second and
 * per-append latency (p50/p99) with 1 and 64 concurrent writers, the old way (fdatasync
 * per record, on the event loop) and with group commit (lib/audit.c), side by side in one
 * run on the same disk. Prints a markdown table.
 *
 * Writers are modelled as keywardd serves them: one event loop, each writer has one
 * request in flight and sends the next as soon as its previous one was acknowledged
 * (closed loop). An append's latency runs from the moment its writer sent it to the
 * moment it is acknowledged as durable (old: audit_log_append() returned, after every
 * request queued before it; group: its commit callback ran on the loop). Sinks (journald,
 * Linux audit) are off: this measures the trail and the disk.
 *
 * Usage: keyward-bench-audit-commit [--dir DIR] [--records N] [--writers 1,64] [--runs R]
 * DIR defaults to the current directory (the disk under test). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "util.h"

#define WRITERS_MAX 1024

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static atomic_ulong n_syncs;

static bool no_disk;  /* --no-sync: the CPU ceiling (nothing is durable: not a result) */
static int only = -1; /* --only old|group (profiling) */

static int counting_sync(int fd, void *userdata)
{
	atomic_fetch_add(&n_syncs, 1);
	if (no_disk)
		return 0;
	return fdatasync(fd) < 0 ? -errno : 0;
}

typedef struct Run {
	bool group;
	unsigned writers;
	unsigned long records;
	double seconds;
	uint64_t *lat_ns; /* one per record */
	unsigned long n_lat;
	unsigned long syncs;
} Run;

typedef struct Writer {
	Run *run;
	uint64_t sent_ns;    /* when its request was sent */
	uint64_t idle_since; /* when its previous one was acknowledged: it sends at once */
	bool busy;
} Writer;

static void fill_record(AuditRecord *rec, char session[static 24], unsigned long i)
{
	*rec = (AuditRecord)AUDIT_RECORD_INIT;
	snprintf(session, 24, "%lu", i);
	rec->event = AUDIT_EVENT_AUTH;
	rec->result = AUDIT_RESULT_SUCCESS;
	rec->reason = "ok";
	rec->user = "alice";
	rec->uid = 1000;
	rec->service = "sudo";
	rec->tty = "pts/3";
	rec->cred_label = "yubikey-5c-nfc";
	rec->cred_id = "qUE1Dq2g0kBGLeV0ZKS2SgLdyjzBdvNnSj1jXMN5Fk5kQ5pHbuhfYw==";
	rec->aaguid = "ee882879-721c-4913-9775-3dfcce97072a";
	rec->device = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/"
	              "0003:1050:0407.0001/hidraw/hidraw0";
	rec->rule = "/etc/keyward/keyward.conf:31";
	rec->rule_name = "admins";
	rec->detail = "sign-counter=1234";
	rec->session = session;
}

static void on_durable(int error, void *userdata)
{
	Writer *w = userdata;

	if (error < 0) {
		fprintf(stderr, "commit failed: %s\n", strerror(-error));
		exit(1);
	}
	w->idle_since = now_ns();
	w->run->lat_ns[w->run->n_lat++] = w->idle_since - w->sent_ns;
	w->busy = false;
}

static int run_one(const char *dir, Run *run)
{
	_cleanup_free_ char *log = NULL, *key = NULL, *cmd = NULL;
	AuditOptions o = {.seal_every = AUDIT_SEAL_EVERY_DEFAULT};
	static Writer w[WRITERS_MAX];
	AuditLog *l = NULL;
	unsigned long sent = 0;
	uint64_t t0;
	int r;

	if (asprintf(&log, "%s/trail-%d/audit.log", dir, (int)getpid()) < 0 ||
	        asprintf(&key, "%s/trail-%d/seal.key", dir, (int)getpid()) < 0 ||
	        asprintf(&cmd, "rm -rf '%s/trail-%d'", dir, (int)getpid()) < 0)
		return -ENOMEM;
	(void)!system(cmd);
	o.path = log;
	o.seal_key_path = key;
	o.fsync_each = !run->group; /* the old way: keywardd on main */
	o.group_commit = run->group;
	o.sync = counting_sync;
	r = audit_log_open(&o, &l, NULL);
	if (r < 0)
		return r;
	run->lat_ns = calloc(run->records, sizeof(uint64_t));
	if (!run->lat_ns)
		return -ENOMEM;
	run->n_lat = 0;
	atomic_store(&n_syncs, 0);
	t0 = now_ns();
	for (unsigned i = 0; i < run->writers; i++)
		w[i] = (Writer){.run = run, .idle_since = t0};

	while (run->n_lat < run->records) {
		/* Every idle writer sends its next request now. */
		for (unsigned i = 0; i < run->writers && sent < run->records; i++) {
			AuditRecord rec;
			char session[24];

			if (w[i].busy)
				continue;
			fill_record(&rec, session, sent);
			w[i].busy = true;
			/* Sent when it became idle: time spent waiting for the loop counts. */
			w[i].sent_ns = w[i].idle_since;
			sent++;
			if (!run->group) {
				/* fdatasync per record, in line: the others wait behind it. */
				r = audit_log_append(l, &rec);
				if (r < 0)
					return r;
				on_durable(0, &w[i]);
				continue;
			}
			r = audit_log_append_async(l, &rec, on_durable, &w[i]);
			if (r < 0)
				return r;
		}
		if (!run->group)
			continue;
		{
			struct pollfd p = {.fd = audit_log_commit_fd(l), .events = POLLIN};
			if (poll(&p, 1, -1) < 0)
				return -errno;
			r = audit_log_commit_dispatch(l);
			if (r < 0)
				return r;
		}
	}
	run->seconds = (double)(now_ns() - t0) / 1e9;
	run->syncs = run->group ? atomic_load(&n_syncs) : run->records; /* + seals' */
	audit_log_free(l);
	(void)!system(cmd);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_us(uint64_t *v, unsigned long n, double p)
{
	unsigned long i = (unsigned long)(p * (double)(n - 1) + 0.5);
	return (double)v[i] / 1000.0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"dir", required_argument, NULL, 'd'},
	        {"records", required_argument, NULL, 'n'},
	        {"writers", required_argument, NULL, 'w'},
	        {"runs", required_argument, NULL, 'r'},
	        {"no-sync", no_argument, NULL, 'S'},
	        {"only", required_argument, NULL, 'o'},
	        {},
	};
	const char *dir = ".";
	unsigned long records = 20000;
	unsigned writers[8] = {1, 64}, n_writers = 2, runs = 3;
	char load[128] = "?";
	FILE *f;
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) >= 0) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'n':
			records = strtoul(optarg, NULL, 10);
			break;
		case 'w': {
			char *save = NULL, *copy = strdup(optarg);
			n_writers = 0;
			for (char *t = strtok_r(copy, ",", &save); t && n_writers < 8;
			        t = strtok_r(NULL, ",", &save)) {
				unsigned v = (unsigned)strtoul(t, NULL, 10);
				if (v >= 1 && v <= WRITERS_MAX)
					writers[n_writers++] = v;
			}
			free(copy);
			break;
		}
		case 'r':
			runs = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'S':
			no_disk = true;
			break;
		case 'o':
			only = streq(optarg, "group") ? 1 : 0;
			break;
		default:
			fprintf(stderr,
			        "usage: %s [--dir DIR] [--records N] [--writers 1,64] "
			        "[--runs R]\n",
			        argv[0]);
			return 2;
		}
	}
	if (records < 100 || runs < 1 || n_writers == 0) {
		fprintf(stderr, "records >= 100, runs >= 1, writers 1..%d\n", WRITERS_MAX);
		return 2;
	}
	f = fopen("/proc/loadavg", "re");
	if (f) {
		if (!fgets(load, sizeof(load), f))
			strcpy(load, "?");
		load[strcspn(load, "\n")] = '\0';
		fclose(f);
	}

	printf("# audit group commit: durable appends (%lu records per run, median of %u runs, "
	       "dir %s, load %s)\n\n",
	        records, runs, dir, load);
	printf("| mode | writers | appends/s | p50 latency (µs) | p99 latency (µs) | "
	       "fdatasyncs | records per sync |\n");
	printf("|---|---:|---:|---:|---:|---:|---:|\n");
	for (unsigned wi = 0; wi < n_writers; wi++) {
		double rate[2][16], p50[2][16], p99[2][16], syncs[2][16];

		for (unsigned k = 0; k < runs && k < 16; k++)
			for (int g = 0; g < 2; g++) { /* old and new interleaved, same disk */
				Run run = {.group = g, .writers = writers[wi], .records = records};
				int r = only >= 0 && only != g ? 0 : run_one(dir, &run);

				if (only >= 0 && only != g) {
					rate[g][k] = p50[g][k] = p99[g][k] = syncs[g][k] = 1;
					continue;
				}
				if (r < 0) {
					fprintf(stderr, "run failed: %s\n", strerror(-r));
					return 1;
				}
				qsort(run.lat_ns, run.n_lat, sizeof(uint64_t), cmp_u64);
				rate[g][k] = (double)run.records / run.seconds;
				p50[g][k] = pct_us(run.lat_ns, run.n_lat, 0.50);
				p99[g][k] = pct_us(run.lat_ns, run.n_lat, 0.99);
				syncs[g][k] = (double)run.syncs;
				free(run.lat_ns);
			}
		for (int g = 0; g < 2; g++) {
			unsigned n = runs < 16 ? runs : 16;
			qsort(rate[g], n, sizeof(double), cmp_double);
			qsort(p50[g], n, sizeof(double), cmp_double);
			qsort(p99[g], n, sizeof(double), cmp_double);
			qsort(syncs[g], n, sizeof(double), cmp_double);
			printf("| %s | %u | %.0f | %.0f | %.0f | %.0f | %.1f |\n",
			        g ? "group commit" : "fdatasync per record (main)", writers[wi],
			        rate[g][n / 2], p50[g][n / 2], p99[g][n / 2], syncs[g][n / 2],
			        (double)records / syncs[g][n / 2]);
		}
	}
	printf("\nLatency: from the writer's send to its acknowledgement as durable. Old mode: "
	       "every record is synced in line, so with 64 writers each waits for those ahead "
	       "of it. fdatasyncs: the trail's (seals' key-file syncs not counted; old mode "
	       "counts one per record).\n");
	return 0;
}
