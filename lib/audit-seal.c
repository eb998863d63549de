/* audit-seal.c: forward-secure seal keys (k_{e+1} = HMAC(k_e, label), the old key erased,
 * the key file replaced atomically) and seal anchors (text lines and journald messages). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <syslog.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <systemd/sd-journal.h>

#include "audit.h"
#include "util.h"

#define SEAL_KEY_MAGIC    "keyward-seal-key v1"
#define SEAL_EVOLVE_LABEL "keyward-audit-seal-evolve-v1"
#define ANCHOR_MAGIC      "keyward-anchor v1"
#define SEAL_KEY_FILE_MAX 512u

static int hex_decode_to(const char *hex, uint8_t *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		int v = 0;
		for (int j = 0; j < 2; j++) {
			char c = hex[2 * i + j];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= c - '0';
			else if (c >= 'a' && c <= 'f')
				v |= c - 'a' + 10;
			else
				return -EINVAL;
		}
		out[i] = (uint8_t)v;
	}
	return hex[2 * len] == '\0' ? 0 : -EINVAL;
}

static int safe_atou64(const char *s, uint64_t *ret)
{
	char *end = NULL;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || !end || *end != '\0')
		return -EINVAL;
	*ret = (uint64_t)v;
	return 0;
}

void audit_seal_key_clear(AuditSealKey *k)
{
	if (k)
		explicit_bzero(k, sizeof(*k));
}

int audit_seal_key_evolve(AuditSealKey *k)
{
	uint8_t md[32];
	unsigned n = 0;

	if (!k || k->epoch == AUDIT_SEAL_EPOCH_NONE || k->epoch == AUDIT_SEAL_EPOCH_NONE - 1)
		return -EINVAL;
	if (!HMAC(EVP_sha256(), k->key, AUDIT_SEAL_KEY_SIZE,
	            (const unsigned char *)SEAL_EVOLVE_LABEL, strlen(SEAL_EVOLVE_LABEL), md, &n) ||
	        n != sizeof(md))
		return -EIO;
	memcpy(k->key, md, AUDIT_SEAL_KEY_SIZE);
	explicit_bzero(md, sizeof(md));
	k->epoch++;
	return 0;
}

int audit_seal_key_derive(const AuditSealKey *k0, uint64_t epoch, AuditSealKey *ret)
{
	AuditSealKey k;
	int r = 0;

	if (!k0 || !ret || k0->epoch == AUDIT_SEAL_EPOCH_NONE || epoch < k0->epoch ||
	        epoch == AUDIT_SEAL_EPOCH_NONE)
		return -EINVAL;
	k = *k0;
	while (k.epoch < epoch && r >= 0)
		r = audit_seal_key_evolve(&k);
	if (r >= 0)
		*ret = k;
	audit_seal_key_clear(&k);
	return r;
}

/* The text of a key file: one line, the key in hex. Returns the length. */
static int seal_key_format(const AuditSealKey *k, char buf[static SEAL_KEY_FILE_MAX])
{
	char hex[AUDIT_SEAL_KEY_SIZE * 2 + 1];
	int n;

	hex_encode_to(k->key, AUDIT_SEAL_KEY_SIZE, hex);
	n = snprintf(buf, SEAL_KEY_FILE_MAX,
	        SEAL_KEY_MAGIC " epoch=%" PRIu64 " id=%s exported=%s key=%s\n", k->epoch, k->key_id,
	        k->exported ? "yes" : "no", hex);
	explicit_bzero(hex, sizeof(hex));
	return n > 0 && (size_t)n < SEAL_KEY_FILE_MAX ? n : -EINVAL;
}

int audit_seal_key_parse(const char *text, size_t len, AuditSealKey *ret, const char **ret_problem)
{
	AuditSealKey k = {};
	char exported[4] = {}, id[17] = {}, hex[AUDIT_SEAL_KEY_SIZE * 2 + 2] = {};
	char buf[SEAL_KEY_FILE_MAX];
	char check[17];
	int consumed = 0, r = -EBADMSG;

	if (len == AUDIT_SEAL_KEY_SIZE) {
		/* The legacy format: 32 raw bytes, a static key. */
		memcpy(k.key, text, AUDIT_SEAL_KEY_SIZE);
		k.epoch = AUDIT_SEAL_EPOCH_NONE;
		k.exported = true;
		r = audit_seal_key_id(k.key, k.key_id);
		if (r >= 0)
			*ret = k;
		audit_seal_key_clear(&k);
		return r;
	}
	if (len == 0 || len >= sizeof(buf) || text[len - 1] != '\n' || memchr(text, '\0', len))
		goto bad;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (sscanf(buf,
	            SEAL_KEY_MAGIC " epoch=%" SCNu64
	                           " id=%16[0-9a-f] exported=%3[a-z] key=%64[0-9a-f]%n",
	            &k.epoch, id, exported, hex, &consumed) != 4 ||
	        (size_t)consumed != len - 1 || strlen(id) != 16 || strlen(hex) != 64 ||
	        k.epoch == AUDIT_SEAL_EPOCH_NONE ||
	        !(streq(exported, "yes") || streq(exported, "no")) ||
	        hex_decode_to(hex, k.key, AUDIT_SEAL_KEY_SIZE) < 0)
		goto bad;
	memcpy(k.key_id, id, sizeof(id));
	k.exported = streq(exported, "yes");
	/* At epoch 0 the id is the key's own: a typo'd copy of a verification key is caught. */
	if (k.epoch == 0 && (audit_seal_key_id(k.key, check) < 0 || !streq(check, k.key_id)))
		goto bad;
	*ret = k;
	r = 0;
bad:
	if (r < 0 && ret_problem)
		*ret_problem = "is not a keyward seal key or verification key";
	explicit_bzero(buf, sizeof(buf));
	explicit_bzero(hex, sizeof(hex));
	audit_seal_key_clear(&k);
	return r;
}

int audit_seal_key_read(
        const char *path, bool require_root, AuditSealKey *ret, const char **ret_problem)
{
	SafeFileFlags flags = SAFE_FILE_NO_GROUP_WRITE | SAFE_FILE_NO_WORLD_WRITE |
	                      SAFE_FILE_NO_WORLD_READ | SAFE_FILE_NO_GROUP_READ;
	_cleanup_close_ int fd = -EBADF;
	char buf[SEAL_KEY_FILE_MAX];
	size_t len = 0;
	int r;

	if (require_root)
		flags |= SAFE_FILE_ROOT_OWNED;
	fd = safe_open(path, flags, NULL, ret_problem);
	if (fd < 0)
		return fd;
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (ret_problem)
				*ret_problem = "cannot be read";
			r = -errno;
			explicit_bzero(buf, sizeof(buf));
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	r = audit_seal_key_parse(buf, len, ret, ret_problem);
	explicit_bzero(buf, sizeof(buf));
	return r;
}

int audit_seal_key_write(const char *path, const AuditSealKey *k)
{
	char buf[SEAL_KEY_FILE_MAX];
	int n, r;

	if (!path || !k || k->epoch == AUDIT_SEAL_EPOCH_NONE)
		return -EINVAL;
	n = seal_key_format(k, buf);
	if (n < 0)
		return n;
	r = write_file_atomic(path, buf, (size_t)n, 0600);
	explicit_bzero(buf, sizeof(buf));
	return r;
}

int audit_seal_key_create(const char *path, bool exported, AuditSealKey *ret)
{
	_cleanup_close_ int fd = -EBADF;
	AuditSealKey k = {.exported = exported};
	char buf[SEAL_KEY_FILE_MAX];
	size_t done = 0;
	int n, r;

	while (done < AUDIT_SEAL_KEY_SIZE) {
		ssize_t got = getrandom(k.key + done, AUDIT_SEAL_KEY_SIZE - done, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)got;
	}
	r = audit_seal_key_id(k.key, k.key_id);
	if (r < 0)
		goto out;
	n = seal_key_format(&k, buf);
	if (n < 0) {
		r = n;
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (fchmod(fd, 0600) < 0 || write(fd, buf, (size_t)n) != n || fsync(fd) < 0) {
		r = errno ? -errno : -EIO;
		(void)unlink(path);
		goto out;
	}
	if (ret)
		*ret = k;
	r = 0;
out:
	explicit_bzero(buf, sizeof(buf));
	audit_seal_key_clear(&k);
	return r;
}

int audit_seal_key_to_string(const AuditSealKey *k, char **ret)
{
	char buf[SEAL_KEY_FILE_MAX];
	int n;

	if (!k || !ret || k->epoch == AUDIT_SEAL_EPOCH_NONE)
		return -EINVAL;
	n = seal_key_format(k, buf);
	if (n < 0)
		return n;
	*ret = strndup(buf, (size_t)n);
	explicit_bzero(buf, sizeof(buf));
	return *ret ? 0 : -ENOMEM;
}

/* ---- anchors ---- */

int audit_anchor_format(const AuditAnchor *a, char **ret)
{
	char epoch[24];
	int r;

	if (!a || !ret)
		return -EINVAL;
	if (a->epoch == AUDIT_SEAL_EPOCH_NONE)
		strcpy(epoch, "none");
	else
		snprintf(epoch, sizeof(epoch), "%" PRIu64, a->epoch);
	r = asprintf(ret,
	        ANCHOR_MAGIC " host=%s epoch=%s seq=%" PRIu64 " file_seq=%" PRIu64 " hash=%s%s%s",
	        a->host[0] ? a->host : "-", epoch, a->seq, a->file_seq, a->hash,
	        a->key_id[0] ? " key_id=" : "", a->key_id);
	return r < 0 ? -ENOMEM : 0;
}

static bool anchor_host_ok(const char *h)
{
	if (!h[0])
		return false;
	for (; *h; h++)
		if ((unsigned char)*h <= 0x20 || (unsigned char)*h >= 0x7f)
			return false;
	return true;
}

int audit_anchor_parse(const char *line, AuditAnchor *ret)
{
	AuditAnchor a = {};
	char epoch[24] = {}, hash[AUDIT_HASH_HEX_LEN + 2] = {}, key_id[18] = {};
	int consumed = 0, consumed_id = 0;
	size_t len;

	if (!line || !ret)
		return -EINVAL;
	len = strlen(line);
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (sscanf(line,
	            ANCHOR_MAGIC " host=%64s epoch=%23s seq=%" SCNu64 " file_seq=%" SCNu64
	                         " hash=%65[0-9a-f]%n",
	            a.host, epoch, &a.seq, &a.file_seq, hash, &consumed) != 5 ||
	        strlen(hash) != AUDIT_HASH_HEX_LEN || a.seq == 0 || !anchor_host_ok(a.host))
		return -EBADMSG;
	if ((size_t)consumed != len) {
		/* the optional key id */
		if (sscanf(line + consumed, " key_id=%17[0-9a-f]%n", key_id, &consumed_id) != 1 ||
		        (size_t)(consumed + consumed_id) != len || strlen(key_id) != 16)
			return -EBADMSG;
		memcpy(a.key_id, key_id, sizeof(a.key_id));
	}
	if (streq(epoch, "none"))
		a.epoch = AUDIT_SEAL_EPOCH_NONE;
	else if (safe_atou64(epoch, &a.epoch) < 0 || a.epoch == AUDIT_SEAL_EPOCH_NONE)
		return -EBADMSG;
	memcpy(a.hash, hash, sizeof(a.hash));
	*ret = a;
	return 0;
}

int audit_anchor_from_fields(const char *host, const char *epoch, const char *seq,
        const char *file_seq, const char *hash, const char *key_id, AuditAnchor *ret)
{
	AuditAnchor a = {};

	if (!host || !epoch || !seq || !file_seq || !hash || !ret)
		return -EINVAL;
	if (strlen(host) >= sizeof(a.host) || !anchor_host_ok(host) ||
	        strlen(hash) != AUDIT_HASH_HEX_LEN || safe_atou64(seq, &a.seq) < 0 || a.seq == 0 ||
	        safe_atou64(file_seq, &a.file_seq) < 0)
		return -EBADMSG;
	for (const char *p = hash; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return -EBADMSG;
	if (streq(epoch, "none"))
		a.epoch = AUDIT_SEAL_EPOCH_NONE;
	else if (safe_atou64(epoch, &a.epoch) < 0 || a.epoch == AUDIT_SEAL_EPOCH_NONE)
		return -EBADMSG;
	if (key_id) {
		if (strlen(key_id) != 16)
			return -EBADMSG;
		for (const char *p = key_id; *p; p++)
			if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
				return -EBADMSG;
		strcpy(a.key_id, key_id);
	}
	strcpy(a.host, host);
	memcpy(a.hash, hash, AUDIT_HASH_HEX_LEN + 1);
	*ret = a;
	return 0;
}

int audit_anchor_send(const AuditAnchor *a)
{
	_cleanup_free_ char *line = NULL;
	char epoch[24];
	int r;

	r = audit_anchor_format(a, &line);
	if (r < 0)
		return r;
	if (a->epoch == AUDIT_SEAL_EPOCH_NONE)
		strcpy(epoch, "none");
	else
		snprintf(epoch, sizeof(epoch), "%" PRIu64, a->epoch);
	return sd_journal_send("MESSAGE=%s", line, "MESSAGE_ID=" AUDIT_ANCHOR_MESSAGE_ID,
	        "PRIORITY=%d", LOG_INFO, "SYSLOG_FACILITY=%d", LOG_AUTHPRIV >> 3,
	        "SYSLOG_IDENTIFIER=keywardd", "KEYWARD_ANCHOR_HOST=%s", a->host,
	        "KEYWARD_ANCHOR_EPOCH=%s", epoch, "KEYWARD_ANCHOR_SEQ=%" PRIu64, a->seq,
	        "KEYWARD_ANCHOR_FILE_SEQ=%" PRIu64, a->file_seq, "KEYWARD_ANCHOR_HASH=%s", a->hash,
	        "KEYWARD_ANCHOR_KEY_ID=%s", a->key_id[0] ? a->key_id : "-", NULL);
}
