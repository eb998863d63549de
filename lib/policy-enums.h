/* policy-enums.h: the policy's enumerations that travel outside policy/ (the Check reply,
 * the coverage snapshot), with their string tables. No libconfig: the PAM module uses it. */
#pragma once

#include <errno.h>

typedef enum PolicyRequire {
	POLICY_REQUIRE_NONE, /* not covered: the PAM module steps aside (PAM_IGNORE) */
	POLICY_REQUIRE_KEY,  /* a registered FIDO2 key must assert */
	POLICY_REQUIRE_DENY, /* refused outright */
	/* A remote login of a `key` outcome with on_remote = "ssh-key": a registered sk SSH
	 * key must prove itself (sshd's publickey, or a signature through the forwarded
	 * agent). Only ever the result of that resolution, never written as `require`. */
	POLICY_REQUIRE_SSH_KEY,
	_POLICY_REQUIRE_MAX,
	_POLICY_REQUIRE_INVALID = -EINVAL,
} PolicyRequire;

typedef enum PolicyUV {
	POLICY_UV_DISCOURAGED,
	POLICY_UV_PREFERRED,
	POLICY_UV_REQUIRED,
	_POLICY_UV_MAX,
	_POLICY_UV_INVALID = -EINVAL,
} PolicyUV;

typedef enum PolicyFailMode {
	POLICY_FAILMODE_CLOSED, /* daemon unreachable: deny covered users (default) */
	POLICY_FAILMODE_OPEN,   /* daemon unreachable: let covered users through (warned) */
	_POLICY_FAILMODE_MAX,
	_POLICY_FAILMODE_INVALID = -EINVAL,
} PolicyFailMode;

/* What a `key` requirement becomes for a remote login (a local key cannot be touched
 * over SSH). Unset in the rule: the login is denied with a reason naming the gap. */
typedef enum PolicyOnRemote {
	POLICY_ON_REMOTE_DENY,    /* refuse the remote login */
	POLICY_ON_REMOTE_NONE,    /* step aside: other PAM modules decide (e.g. sshd keys) */
	POLICY_ON_REMOTE_SSH_KEY, /* a registered sk SSH key (docs/ssh.md) */
	_POLICY_ON_REMOTE_MAX,
	_POLICY_ON_REMOTE_INVALID = -EINVAL,
} PolicyOnRemote;

/* The tables behind the functions below (the parser looks enum values up in them). */
extern const char *const policy_require_table[_POLICY_REQUIRE_MAX];
extern const char *const policy_uv_table[_POLICY_UV_MAX];
extern const char *const policy_failmode_table[_POLICY_FAILMODE_MAX];
extern const char *const policy_on_remote_table[_POLICY_ON_REMOTE_MAX];

const char *policy_require_to_string(PolicyRequire v);
PolicyRequire policy_require_from_string(const char *s);
const char *policy_uv_to_string(PolicyUV v);
PolicyUV policy_uv_from_string(const char *s);
const char *policy_failmode_to_string(PolicyFailMode v);
PolicyFailMode policy_failmode_from_string(const char *s);
const char *policy_on_remote_to_string(PolicyOnRemote v);
PolicyOnRemote policy_on_remote_from_string(const char *s);
