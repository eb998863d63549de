/* attestation.h: enrollment attestation checks the policy asks for — AAGUID allow/deny
 * lists and the x5c chain to the policy's trust anchors (fido_cred_verify() checks the
 * attestation signature only, never the chain). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 0 when AAGUID passes the lists (empty allow list: any not denied); -EPERM otherwise. */
int attestation_check_aaguid(const uint8_t aaguid[16], const uint8_t (*allow)[16], size_t n_allow,
        const uint8_t (*deny)[16], size_t n_deny);

/* Verifies that the DER leaf certificate X5C chains to a certificate in one of the PEM
 * files TRUST_ANCHORS (each read with the safe-file checks; any certificate in them is a
 * trust anchor, partial chains allowed) and, when the leaf carries the FIDO AAGUID
 * extension (1.3.6.1.4.1.45724.1.1.4), that it equals AAGUID. 0 on success; else -errno
 * and *ret_why a malloc()ed sentence. */
int attestation_verify_chain(const uint8_t *x5c, size_t x5c_len, char *const *trust_anchors,
        const uint8_t aaguid[16], char **ret_why);
