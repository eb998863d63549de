/* bus-names.h: the D-Bus names of keywardd (well-known name, object, interface, errors)
 * and the argument caps both sides enforce. Shared by the daemon, the PAM module and
 * keywardctl; the contract is docs/dbus-api.md. */
#pragma once

#define KEYWARD_BUS_NAME      "org.keyward.Keyward1"
#define KEYWARD_BUS_PATH      "/org/keyward/Keyward1"
#define KEYWARD_BUS_INTERFACE "org.keyward.Keyward1.Manager"

/* The PAM service name sshd uses (OpenSSH's SSHD_PAM_SERVICE): only a login of this service
 * may hand keywardd sshd's record of how it authenticated (SSH_AUTH_INFO_0). Another
 * service's PAM environment is no evidence of an SSH login. */
#define KEYWARD_SSHD_SERVICE "sshd"

#define KEYWARD_BUS_ERROR_ACCESS_DENIED  "org.keyward.Keyward1.Error.AccessDenied"
#define KEYWARD_BUS_ERROR_INVALID_ARGS   "org.keyward.Keyward1.Error.InvalidArgs"
#define KEYWARD_BUS_ERROR_NOT_FOUND      "org.keyward.Keyward1.Error.NotFound"
#define KEYWARD_BUS_ERROR_EXISTS         "org.keyward.Keyward1.Error.Exists"
#define KEYWARD_BUS_ERROR_NO_DEVICE      "org.keyward.Keyward1.Error.NoDevice"
#define KEYWARD_BUS_ERROR_POLICY_REFUSED "org.keyward.Keyward1.Error.PolicyRefused"
#define KEYWARD_BUS_ERROR_PIN_REQUIRED   "org.keyward.Keyward1.Error.PinRequired"
#define KEYWARD_BUS_ERROR_BUSY           "org.keyward.Keyward1.Error.Busy"
#define KEYWARD_BUS_ERROR_FAILED         "org.keyward.Keyward1.Error.Failed"

/* Length caps (characters) on string arguments. */
#define KEYWARD_MAX_USER        32
#define KEYWARD_MAX_SERVICE     64
#define KEYWARD_MAX_TTY         64
#define KEYWARD_MAX_RHOST       255
#define KEYWARD_MAX_LABEL       64
#define KEYWARD_MAX_ID          1024 /* credential ids, public keys, tokens, binding ids (base64) */
#define KEYWARD_MAX_SESSION_ID  64
#define KEYWARD_MAX_FLAGS       128
#define KEYWARD_MAX_RP_ID       255
#define KEYWARD_MAX_DEVICE_PATH 255
#define KEYWARD_MAX_OPTIONS     16  /* entries in an a{sv} options argument */
#define KEYWARD_MAX_PIN         255 /* bytes read from a pin_fd (CTAP2 allows 63) */
/* Bytes of a break-glass recovery code the module passes on (longer input is cut here and
 * refused by keywardd as malformed: lib/breakglass.h BREAKGLASS_INPUT_MAX is less). */
#define KEYWARD_MAX_BREAKGLASS_INPUT 255

/* Binding token: 16 random bytes as 32 lower-case hex characters. */
#define KEYWARD_TOKEN_BYTES 16
#define KEYWARD_TOKEN_CHARS (KEYWARD_TOKEN_BYTES * 2)
