/* virtkey-client.h: a minimal CTAP2 platform for tests that talk to the authenticator's
 * handlers directly (vk_ctap_handle): pinUvAuthTokens, signed credential management
 * requests, and small CBOR readers. Test code only; uses virtkey's own crypto. */
#pragma once

#include "virtkey-internal.h"

/* One request (command byte + CBOR) with the user's touch given. The status, and the
 * reply body in *ret_reply (parsed, NULL when empty or on error; cbor_decref it). */
int vkc_call(VirtKey *k, const uint8_t *req, size_t len, cbor_item_t **ret_reply);
/* Same, REQ being CMD followed by the CBOR in B. */
int vkc_call_buf(VirtKey *k, uint8_t cmd, const VkBuf *b, cbor_item_t **ret_reply);

/* getPinUvAuthTokenUsingPinWithPermissions (subcommand 9; PERMS 0: getPinToken, 5) with
 * PIN over PROTO; RP_ID may be NULL. Returns the CTAP status. */
int vkc_get_token(VirtKey *k, unsigned proto, const char *pin, uint8_t perms, const char *rp_id,
        uint8_t ret_token[VK_TOKEN_LEN]);
/* authenticate(token, msg) of the protocol: 16 (1) or 32 (2) bytes. */
size_t vkc_auth(unsigned proto, const uint8_t token[VK_TOKEN_LEN], const uint8_t *msg, size_t n,
        uint8_t ret[32]);
/* authenticatorCredentialManagement CMD (0x0a/0x41) SUB with PARAMS (encoded CBOR map or
 * NULL), signed with TOKEN (NULL: no pinUvAuthParam). */
int vkc_credman(VirtKey *k, uint8_t cmd, uint8_t sub, const VkBuf *params, unsigned proto,
        const uint8_t *token, cbor_item_t **ret_reply);

/* The request bytes (command byte first) of vkc_credman, for a caller that frames them. */
int vkc_credman_request(uint8_t cmd, uint8_t sub, const VkBuf *params, unsigned proto,
        const uint8_t *token, VkBuf *ret_req);
/* makeCredential (ES256) for RP and USER (also the user id); LEVEL 0: no credProtect; PIN:
 * signed with a fresh mc token over protocol 2; EXCLUDE_ID: a one-entry exclude list. */
int vkc_make_credential(VirtKey *k, const char *rp, const char *user, bool rk, unsigned level,
        const char *pin, const uint8_t *exclude_id, cbor_item_t **ret_reply);
/* KEY: [{"id": ID, "type": "public-key"}] (an allow or exclude list) */
void vkc_id_list(VkBuf *b, uint64_t key, const uint8_t id[VK_CRED_ID_LEN]);

/* The value of unsigned / text key KEY in a map, or NULL. */
const cbor_item_t *vkc_get(const cbor_item_t *map, uint64_t key);
const cbor_item_t *vkc_get_text(const cbor_item_t *map, const char *key);
