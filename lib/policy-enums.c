/* policy-enums.c: string tables of the policy enumerations shared with the PAM module and
 * the coverage snapshot (policy-enums.h). */
#include "policy-enums.h"

#include "util.h"

const char *const policy_require_table[_POLICY_REQUIRE_MAX] = {
        [POLICY_REQUIRE_NONE] = "none",
        [POLICY_REQUIRE_KEY] = "key",
        [POLICY_REQUIRE_DENY] = "deny",
        [POLICY_REQUIRE_SSH_KEY] = "ssh-key",
};
const char *const policy_uv_table[_POLICY_UV_MAX] = {
        [POLICY_UV_DISCOURAGED] = "discouraged",
        [POLICY_UV_PREFERRED] = "preferred",
        [POLICY_UV_REQUIRED] = "required",
};
const char *const policy_failmode_table[_POLICY_FAILMODE_MAX] = {
        [POLICY_FAILMODE_CLOSED] = "closed",
        [POLICY_FAILMODE_OPEN] = "open",
};
const char *const policy_on_remote_table[_POLICY_ON_REMOTE_MAX] = {
        [POLICY_ON_REMOTE_DENY] = "deny",
        [POLICY_ON_REMOTE_NONE] = "none",
        [POLICY_ON_REMOTE_SSH_KEY] = "ssh-key",
};

DEFINE_STRING_TABLE_LOOKUP(policy_require, PolicyRequire, policy_require_table)
DEFINE_STRING_TABLE_LOOKUP(policy_uv, PolicyUV, policy_uv_table)
DEFINE_STRING_TABLE_LOOKUP(policy_failmode, PolicyFailMode, policy_failmode_table)
DEFINE_STRING_TABLE_LOOKUP(policy_on_remote, PolicyOnRemote, policy_on_remote_table)
