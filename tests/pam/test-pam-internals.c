/* test-pam-internals.c: unit tests of pam_keyward.c's pure helpers (the result mapping
 * that defaults to failure, reason table, cue formatting, message sanitising, token and
 * option parsing). Includes the module source to reach its static functions. */
#include "../../pam_module/pam_keyward.c"

#include <stdio.h>

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

static void test_outcome_to_pam(void)
{
	for (Phase ph = PHASE_AUTH; ph <= PHASE_SESSION; ph++)
		for (int o = -3; o < _OUTCOME_MAX + 3; o++) {
			int code = outcome_to_pam((Outcome)o, ph);

			if (o == OUTCOME_SUCCESS)
				CHECK(code == PAM_SUCCESS);
			else if (o == OUTCOME_NOT_COVERED || o == OUTCOME_FAILOPEN ||
			         o == OUTCOME_NOTHING_TO_DO)
				CHECK(code == PAM_IGNORE);
			else
				CHECK(code != PAM_SUCCESS && code != PAM_IGNORE);
		}
	/* A fault of keyward (or anything unknown) is never "wrong password" for sudo. */
	CHECK(outcome_to_pam((Outcome)_OUTCOME_MAX, PHASE_AUTH) == PAM_SERVICE_ERR);
	CHECK(outcome_to_pam(OUTCOME_ERROR, PHASE_AUTH) == PAM_SERVICE_ERR);
	CHECK(outcome_to_pam(OUTCOME_AUTH_FAILED, PHASE_AUTH) == PAM_AUTH_ERR);
	CHECK(outcome_to_pam(OUTCOME_LOCKED_OUT, PHASE_AUTH) == PAM_MAXTRIES);
	CHECK(outcome_to_pam(OUTCOME_REFUSED, PHASE_AUTH) == PAM_PERM_DENIED);
	CHECK(outcome_to_pam(OUTCOME_SESSION_FAILED, PHASE_SESSION) == PAM_SESSION_ERR);
	/* sudo ignores PAM_SESSION_ERR from pam_open_session and reads PAM_AUTH_ERR from
	 * pam_acct_mgmt as "account locked": a refused binding or a refused cached
	 * elevation must be a code it stops on and that says what happened. */
	CHECK(outcome_to_pam(OUTCOME_SESSION_REFUSED, PHASE_SESSION) == PAM_PERM_DENIED);
	CHECK(outcome_to_pam(OUTCOME_AUTH_FAILED, PHASE_ACCOUNT) == PAM_PERM_DENIED);
	CHECK(outcome_to_pam(OUTCOME_ERROR, PHASE_ACCOUNT) == PAM_SERVICE_ERR);
	CHECK(outcome_to_pam(OUTCOME_ERROR, PHASE_SESSION) == PAM_PERM_DENIED);
	CHECK(outcome_to_pam(OUTCOME_LOCKED_OUT, PHASE_ACCOUNT) == PAM_PERM_DENIED);
}

static void test_reasons(void)
{
	CHECK(reason_to_outcome("ok") == OUTCOME_AUTH_FAILED); /* success needs granted + token */
	CHECK(reason_to_outcome("not-covered") == OUTCOME_AUTH_FAILED);
	CHECK(reason_to_outcome("") == OUTCOME_AUTH_FAILED);
	CHECK(reason_to_outcome("something-new") == OUTCOME_AUTH_FAILED);
	CHECK(reason_to_outcome("lockout") == OUTCOME_LOCKED_OUT);
	CHECK(reason_to_outcome("pin-blocked") == OUTCOME_LOCKED_OUT);
	CHECK(reason_to_outcome("policy-deny") == OUTCOME_REFUSED);
	CHECK(reason_to_outcome("remote") == OUTCOME_REFUSED);
}

static void test_cue(void)
{
	char buf[CUE_MAX], small[8];

	format_cue("Touch your security key for %u", "alice", buf, sizeof(buf));
	CHECK(streq(buf, "Touch your security key for alice"));
	format_cue("%u/%u 100%% %s %n %", "bob", buf, sizeof(buf));
	CHECK(streq(buf, "bob/bob 100% %s %n %"));
	format_cue("%u%u%u", "abcdef", small, sizeof(small));
	CHECK(streq(small, "abcdefa"));
	format_cue("", "x", buf, sizeof(buf));
	CHECK(streq(buf, ""));
}

static void test_sanitize(void)
{
	char buf[MESSAGE_MAX], small[6];

	sanitize_message("Wrong PIN; 5 tries left.", buf, sizeof(buf));
	CHECK(streq(buf, "Wrong PIN; 5 tries left."));
	sanitize_message("a\nb\x1b[2Jc\x7f", buf, sizeof(buf));
	CHECK(streq(buf, "a?b?[2Jc?"));
	/* "ab" + "é" (2 bytes) + "€" (3 bytes): cut inside the euro sign, not after it. */
	sanitize_message("ab\xc3\xa9\xe2\x82\xac", small, sizeof(small));
	CHECK(streq(small, "ab\xc3\xa9"));
	sanitize_message(NULL, buf, sizeof(buf));
	CHECK(streq(buf, ""));
}

static void test_token(void)
{
	CHECK(valid_token("00112233445566778899aabbccddeeff"));
	CHECK(!valid_token("00112233445566778899AABBCCDDEEFF"));
	CHECK(!valid_token("00112233445566778899aabbccddeef"));
	CHECK(!valid_token("00112233445566778899aabbccddeeff0"));
	CHECK(!valid_token("0011223344556677-899aabbccddeeff"));
	CHECK(!valid_token(""));
	CHECK(!valid_token(NULL));
}

static void test_options(void)
{
	const char *good[] = {
	        "debug", "nocue", "cue=Tap, %u", "config=/etc/k.conf", "timeout=1500"};
	Options o = {};
	uint32_t v = 0;

	CHECK(options_parse(NULL, (int)ELEMENTSOF(good), good, &o) == 0);
	CHECK(o.debug && o.nocue && streq(o.cue, "Tap, %u") && streq(o.config, "/etc/k.conf"));
	CHECK(o.timeout_ms == 1500);

	CHECK(parse_u32("0", &v) == 0 && v == 0);
	CHECK(parse_u32("4294967295", &v) == 0 && v == UINT32_MAX);
	CHECK(parse_u32("4294967296", &v) < 0);
	CHECK(parse_u32("-1", &v) < 0);
	CHECK(parse_u32(" 1", &v) < 0);
	CHECK(parse_u32("12a", &v) < 0);
	CHECK(parse_u32("", &v) < 0);
	CHECK(parse_u32(NULL, &v) < 0);
}

int main(void)
{
	test_outcome_to_pam();
	test_reasons();
	test_cue();
	test_sanitize();
	test_token();
	test_options();
	if (failures == 0)
		printf("PASS: pam_keyward internals\n");
	return failures ? 1 : 0;
}
