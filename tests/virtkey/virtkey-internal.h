/* virtkey-internal.h: what the virtkey core files share — the VirtKey struct, CTAP
 * constants, a small canonical CBOR writer, crypto and state helpers. Not installed. */
#pragma once

#include <cbor.h>
#include <openssl/evp.h>

#include "virtkey.h"

#define CTAPHID_BROADCAST_CID     0xffffffffu
#define CTAPHID_INIT_DATA         57
#define CTAPHID_CONT_DATA         59
#define CTAPHID_MAX_MSG           (CTAPHID_INIT_DATA + 128 * CTAPHID_CONT_DATA) /* 7609 */
#define CTAPHID_MSG_TIMEOUT_MS    500
#define CTAPHID_KEEPALIVE_MS      100
#define VK_USER_ACTION_TIMEOUT_MS 30000
#define VK_GET_NEXT_TIMEOUT_MS    30000
#define VK_RESET_WINDOW_MS        10000
#define VK_MAX_CHANNELS           32
#define VK_OUTQ_MAX               512 /* reports; one full reply is at most 129 */

enum {
	CTAPHID_PING = 0x01,
	CTAPHID_MSG = 0x03,
	CTAPHID_LOCK = 0x04,
	CTAPHID_INIT = 0x06,
	CTAPHID_WINK = 0x08,
	CTAPHID_CBOR = 0x10,
	CTAPHID_CANCEL = 0x11,
	CTAPHID_KEEPALIVE = 0x3b,
	CTAPHID_ERROR = 0x3f,
};

enum {
	CTAPHID_ERR_INVALID_CMD = 0x01,
	CTAPHID_ERR_INVALID_PAR = 0x02,
	CTAPHID_ERR_INVALID_LEN = 0x03,
	CTAPHID_ERR_INVALID_SEQ = 0x04,
	CTAPHID_ERR_MSG_TIMEOUT = 0x05,
	CTAPHID_ERR_CHANNEL_BUSY = 0x06,
	CTAPHID_ERR_INVALID_CHANNEL = 0x0b,
	CTAPHID_ERR_OTHER = 0x7f,
};

enum {
	CTAP2_OK = 0x00,
	CTAP1_ERR_INVALID_COMMAND = 0x01,
	CTAP1_ERR_INVALID_PARAMETER = 0x02,
	CTAP1_ERR_INVALID_LENGTH = 0x03,
	CTAP2_ERR_CBOR_UNEXPECTED_TYPE = 0x11,
	CTAP2_ERR_INVALID_CBOR = 0x12,
	CTAP2_ERR_MISSING_PARAMETER = 0x14,
	CTAP2_ERR_LIMIT_EXCEEDED = 0x15,
	CTAP2_ERR_CREDENTIAL_EXCLUDED = 0x19,
	CTAP2_ERR_UNSUPPORTED_ALGORITHM = 0x26,
	CTAP2_ERR_OPERATION_DENIED = 0x27,
	CTAP2_ERR_KEY_STORE_FULL = 0x28,
	CTAP2_ERR_UNSUPPORTED_OPTION = 0x2b,
	CTAP2_ERR_INVALID_OPTION = 0x2c,
	CTAP2_ERR_KEEPALIVE_CANCEL = 0x2d,
	CTAP2_ERR_NO_CREDENTIALS = 0x2e,
	CTAP2_ERR_USER_ACTION_TIMEOUT = 0x2f,
	CTAP2_ERR_NOT_ALLOWED = 0x30,
	CTAP2_ERR_PIN_INVALID = 0x31,
	CTAP2_ERR_PIN_BLOCKED = 0x32,
	CTAP2_ERR_PIN_AUTH_INVALID = 0x33,
	CTAP2_ERR_PIN_AUTH_BLOCKED = 0x34,
	CTAP2_ERR_PIN_NOT_SET = 0x35,
	CTAP2_ERR_PIN_REQUIRED = 0x36,
	CTAP2_ERR_PIN_POLICY_VIOLATION = 0x37,
	CTAP2_ERR_REQUEST_TOO_LARGE = 0x39,
	CTAP2_ERR_INVALID_SUBCOMMAND = 0x3e,
	CTAP2_ERR_UNAUTHORIZED_PERMISSION = 0x40,
	CTAP1_ERR_OTHER = 0x7f,
	/* not a wire code: the handler needs user presence; run it again once touched */
	VK_NEED_TOUCH = 0x100,
};

enum {
	CTAP_CMD_MAKE_CREDENTIAL = 0x01,
	CTAP_CMD_GET_ASSERTION = 0x02,
	CTAP_CMD_GET_INFO = 0x04,
	CTAP_CMD_CLIENT_PIN = 0x06,
	CTAP_CMD_RESET = 0x07,
	CTAP_CMD_GET_NEXT_ASSERTION = 0x08,
	CTAP_CMD_CRED_MGMT = 0x0a,
	CTAP_CMD_CRED_MGMT_PRE = 0x41, /* CTAP 2.1-PRE; libfido2 1.12 sends only this one */
};

/* authenticatorCredentialManagement subcommands (CTAP 2.1 §6.8) */
enum {
	CM_GET_CREDS_METADATA = 0x01,
	CM_ENUMERATE_RPS_BEGIN = 0x02,
	CM_ENUMERATE_RPS_NEXT = 0x03,
	CM_ENUMERATE_CREDS_BEGIN = 0x04,
	CM_ENUMERATE_CREDS_NEXT = 0x05,
	CM_DELETE_CREDENTIAL = 0x06,
	CM_UPDATE_USER = 0x07,
};

/* credProtect levels (CTAP 2.1 §12.1) */
enum {
	VK_CRED_PROTECT_NONE = 0, /* not asked for at creation: behaves as level 1 */
	VK_CRED_PROTECT_UV_OPTIONAL = 1,
	VK_CRED_PROTECT_UV_OPTIONAL_WITH_LIST = 2,
	VK_CRED_PROTECT_UV_REQUIRED = 3,
	VK_CRED_PROTECT_MAX = 3,
};

enum {
	COSE_ES256 = -7,
	COSE_EDDSA = -8,
	COSE_ECDH_ES_HKDF_256 = -25,
};

#define VK_PIN_RETRIES_MAX 8
#define VK_PIN_AUTH_BLOCK  3
#define VK_MAX_RESIDENT    25
#define VK_MAX_CREDENTIALS 1024
#define VK_MAX_ALLOW_LIST  8 /* a YubiKey 5 takes 8 */
#define VK_MAX_USER_ID     64
#define VK_MAX_NAME        128
#define VK_MAX_RP_ID       128
#define VK_CRED_ID_LEN     (2 + 12 + 32 + 16)
#define VK_TOKEN_LEN       32
#define VK_STATE_MAX       (1024 * 1024)

#define PERM_MC 0x01
#define PERM_GA 0x02
#define PERM_CM 0x04

typedef struct VkCred {
	uint8_t id[VK_CRED_ID_LEN];
	uint8_t rp_id_hash[32];
	char *rp_id;
	int alg;
	bool resident;
	uint32_t counter;
	uint64_t created; /* creation sequence, for "most recent first" */
	uint8_t user_id[VK_MAX_USER_ID];
	size_t user_id_len;
	char *user_name;
	char *user_display_name;
} VkCred;

/* A growing buffer that the CBOR writer appends to; errors stick (checked once). */
typedef struct VkBuf {
	uint8_t *data;
	size_t len, cap;
	bool failed;
} VkBuf;

typedef enum VkPhase {
	VK_PHASE_NONE,
	VK_PHASE_PROCESSING, /* processing_delay_ms before the handler runs */
	VK_PHASE_WAIT_TOUCH, /* handler asked for user presence */
} VkPhase;

struct VirtKey {
	/* options */
	uint8_t aaguid[16];
	char *state_path;
	VirtKeyTouch touch;
	uint32_t touch_delay_ms;
	bool touch_changed;
	VirtKeyCounter counter_mode;
	uint8_t pin_protocols;
	bool ctap20_only;
	uint32_t processing_delay_ms;
	bool reset_window;
	uint64_t powered_ms; /* time of the first report since power-up; UINT64_MAX: none yet */

	/* attestation (NULL: "none") */
	EVP_PKEY *att_key;
	uint8_t *att_cert;
	size_t att_cert_len;

	/* persistent state */
	uint8_t master_key[32];
	bool pin_set;
	uint8_t pin_hash[16];
	unsigned pin_retries;
	uint64_t cred_seq;
	VkCred *creds;
	size_t n_creds;

	/* volatile authenticator state (lost at power cycle) */
	EVP_PKEY *ka_key; /* key agreement, P-256 */
	uint8_t token[VK_TOKEN_LEN];
	bool token_valid;
	uint8_t token_perms;
	char *token_rp_id;
	unsigned pin_consecutive_fails;
	unsigned winks;

	/* credential management enumeration state (enumerate*Begin, then *GetNext*) */
	uint8_t cm_rps[VK_MAX_RESIDENT][32]; /* RP ID hashes */
	size_t cm_creds[VK_MAX_RESIDENT];    /* indices into creds */
	size_t cm_n, cm_pos;
	uint8_t cm_next; /* subcommand that may come next (0: none) */

	/* GetNextAssertion state */
	size_t next_idx[VK_MAX_RESIDENT];
	size_t next_n, next_pos;
	uint8_t next_cdh[32];
	uint8_t next_flags;
	uint64_t next_deadline;

	/* CTAPHID transport */
	uint32_t channels[VK_MAX_CHANNELS];
	size_t n_channels;
	uint32_t next_cid;

	bool asm_active;
	uint32_t asm_cid;
	uint8_t asm_cmd;
	uint8_t asm_seq;
	size_t asm_len, asm_got;
	uint64_t asm_last_ms;

	uint32_t lock_cid; /* CTAPHID_LOCK: only this channel until lock_until */
	uint64_t lock_until;
	uint8_t asm_buf[CTAPHID_MAX_MSG];

	VkPhase phase;
	uint32_t op_cid;
	uint8_t op_req[CTAPHID_MAX_MSG];
	size_t op_len;
	uint64_t op_deadline;  /* PROCESSING: run at; WAIT_TOUCH: touch at (UINT64_MAX: never) */
	uint64_t op_started;   /* WAIT_TOUCH start, for the user action timeout */
	uint64_t op_keepalive; /* next keepalive at */

	uint8_t outq[VK_OUTQ_MAX][VIRTKEY_REPORT_SIZE];
	size_t outq_head, outq_n;

	uint64_t now; /* time of the current call, for handlers */
};

/* CBOR writer (canonical: callers emit map keys in canonical order). */
void vk_buf_done(VkBuf *b);
void vk_cbor_head(VkBuf *b, uint8_t major, uint64_t v);
void vk_cbor_uint(VkBuf *b, uint64_t v);
void vk_cbor_int(VkBuf *b, int64_t v);
void vk_cbor_bytes(VkBuf *b, const void *p, size_t n);
void vk_cbor_text(VkBuf *b, const char *s);
void vk_cbor_bool(VkBuf *b, bool v);
#define vk_cbor_map(b, n)   vk_cbor_head((b), 5, (n))
#define vk_cbor_array(b, n) vk_cbor_head((b), 4, (n))
void vk_buf_append(VkBuf *b, const void *p, size_t n);

/* Strict pre-check of untrusted CBOR: one well-formed item filling exactly len bytes,
 * definite lengths, bounded depth and counts. 0 or -EBADMSG. */
int vk_cbor_check(const uint8_t *p, size_t len);
/* In a checked CBOR map, the encoded bytes of the value of unsigned KEY: 0, -ENOENT. */
int vk_cbor_map_value(
        const uint8_t *p, size_t len, uint64_t key, const uint8_t **ret, size_t *ret_len);

/* Typed access to libcbor items: 0, or -EBADMSG for the wrong type. */
int vk_item_uint(const cbor_item_t *it, uint64_t *ret);
int vk_item_int(const cbor_item_t *it, int64_t *ret);
int vk_item_bytes(const cbor_item_t *it, const uint8_t **ret, size_t *ret_len);
int vk_item_text(const cbor_item_t *it, size_t max, char **ret); /* -EMSGSIZE beyond max */
bool vk_item_text_eq(const cbor_item_t *it, const char *s);
int vk_item_bool(const cbor_item_t *it, bool *ret);

/* crypto */
int vk_random(void *p, size_t n);
int vk_sha256(const void *p, size_t n, uint8_t out[32]);
int vk_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[32]);
int vk_key_generate(int alg, uint8_t ret_secret[32]);
int vk_key_from_secret(int alg, const uint8_t secret[32], EVP_PKEY **ret);
/* COSE_Key encoding of the public key of PKEY (alg -7 / -8 / -25). */
int vk_cose_pubkey(VkBuf *b, EVP_PKEY *pkey, int alg);
int vk_sign(EVP_PKEY *pkey, int alg, const uint8_t *msg, size_t len, uint8_t *sig, size_t *sig_len);
/* The credential ID: SECRET sealed under MASTER, bound to the RP and to the credProtect
 * level (which the ID carries, so it holds for non-resident credentials too), and to
 * whether it is resident. */
int vk_wrap(const uint8_t master[32], int alg, unsigned cred_protect, bool resident,
        const uint8_t secret[32], const uint8_t rp_id_hash[32], uint8_t ret_id[VK_CRED_ID_LEN]);
/* ID header bit: a resident credential, valid only while the key stores it (a deleted
 * one stops working, as on a real key) */
#define VK_ID_RESIDENT 0x08
int vk_unwrap(const uint8_t master[32], const uint8_t *id, size_t id_len,
        const uint8_t rp_id_hash[32], int *ret_alg, uint8_t ret_secret[32]);
int vk_ec_generate(EVP_PKEY **ret);
/* ECDH of our P-256 key with the peer's (x, y): the raw x coordinate Z. */
int vk_ecdh(EVP_PKEY *ours, const uint8_t x[32], const uint8_t y[32], uint8_t ret_z[32]);
/* PIN/UV auth protocol 1 and 2 primitives (CTAP 2.1 §6.5.6, §6.5.7). */
int vk_pin_kdf(unsigned proto, const uint8_t z[32], uint8_t ret_secret[64], size_t *ret_len);
int vk_pin_encrypt(unsigned proto, const uint8_t *secret, const uint8_t *pt, size_t n,
        uint8_t *ret_ct, size_t *ret_len);
int vk_pin_decrypt(unsigned proto, const uint8_t *secret, const uint8_t *ct, size_t n,
        uint8_t *ret_pt, size_t *ret_len);
/* true when PARAM is authenticate(KEY, MSG) for the protocol (constant time). */
bool vk_pin_verify(unsigned proto, const uint8_t *key, size_t klen, const uint8_t *msg, size_t mlen,
        const uint8_t *param, size_t plen);
int vk_attestation_load(VirtKey *k, const char *dir);

/* state */
int vk_state_load(VirtKey *k);
int vk_state_save(VirtKey *k);
void vk_cred_clear(VkCred *c);
void vk_state_wipe(VirtKey *k); /* authenticatorReset */

/* CTAP2 helpers shared by virtkey-ctap.c and virtkey-credman.c */
typedef struct VkParams {
	const cbor_item_t *v[16]; /* by key; keys >= 16 are ignored */
} VkParams;
int vk_params_parse(const cbor_item_t *root, VkParams *p);
const cbor_item_t *vk_map_get(const cbor_item_t *m, const char *key);
bool vk_is_map(const cbor_item_t *it);
/* A user or RP name: text without NUL, cut to 64 bytes at a UTF-8 boundary. */
int vk_get_name(const cbor_item_t *it, char **ret);
/* A user entity {"id", "name"?, "displayName"?}; names are set only when present. */
int vk_parse_user(const cbor_item_t *user, const uint8_t **ret_id, size_t *ret_id_len,
        char **ret_name, char **ret_display);
/* pinUvAuthParam (present) and pinUvAuthProtocol: types, protocol supported. */
int vk_get_pin_uv(VirtKey *k, const cbor_item_t *param, const cbor_item_t *proto_it,
        const uint8_t **ret_param, size_t *ret_len, unsigned *ret_proto);
/* PARAM authenticates MSG under the current token, which has PERM (and RP_ID when the
 * token is bound to one; rp_id NULL: the token must not be bound). */
int vk_check_token(VirtKey *k, unsigned proto, const uint8_t *param, size_t plen,
        const uint8_t *msg, size_t mlen, uint8_t perm, const char *rp_id);
/* A credential descriptor {"id", "type"}: true with the id for type "public-key". */
bool vk_descriptor_id(const cbor_item_t *d, const uint8_t **ret_id, size_t *ret_len, int *ret_err);
/* The credential's private key, unsealed from its ID. */
int vk_cred_key(VirtKey *k, const VkCred *c, int *ret_alg, EVP_PKEY **ret);
VkCred *vk_cred_find(VirtKey *k, const uint8_t *id, size_t len);
void vk_cred_remove(VirtKey *k, size_t i);
/* The credProtect level of a credential (1..3; none asked counts as 1). */
unsigned vk_cred_protect(const VkCred *c);
/* CTAP2 user entity {"id", "name"?, "displayName"?} of a resident credential. */
void vk_write_user(VkBuf *b, const VkCred *c, bool details);
int vk_credman(VirtKey *k, const VkParams *p, const uint8_t *req, size_t len, VkBuf *resp);
void vk_credman_forget(VirtKey *k);

/* CTAP2 */
/* Runs one CTAP2 request; writes the CBOR body of the reply (no status byte) into resp
 * and returns the status, or VK_NEED_TOUCH (nothing changed; run again with up=true). */
int vk_ctap_handle(VirtKey *k, const uint8_t *req, size_t len, bool up, VkBuf *resp);
void vk_ctap_regen_ka(VirtKey *k);
void vk_ctap_power_up(VirtKey *k);
