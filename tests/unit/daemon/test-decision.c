/* test-decision.c: daemon/decision.c's table — a non-root caller keeps at most
 * DECISION_MAX_PER_CALLER decisions (its own oldest goes), and no flood of non-root
 * callers pushes out a decision root's PAM application is waiting to use. */
#include "check.h"
#include "decision.h"

static Decision *make(uid_t caller_uid, const char *user)
{
	PolicyDecision pd = {
	        .require = POLICY_REQUIRE_KEY, .rule_name = "r", .file = "f", .line = 1};
	DecisionRequest req = {.user = user,
	        .uid = 1000,
	        .service = "sudo",
	        .caller_pid = 0,
	        .caller_uid = caller_uid,
	        .policy_digest = "x"};
	Decision *d = NULL;

	CHECK_INT(decision_new(&req, &pd, &d), 0);
	return d;
}

static size_t count_for(DecisionTable *t, uid_t caller_uid)
{
	size_t n = 0;

	for (Decision *d = t->head; d; d = d->next)
		n += d->caller_uid == caller_uid;
	return n;
}

int main(void)
{
	DecisionTable t = {};
	Decision *root_d, *first, *d;
	char root_id[sizeof(root_d->id)], first_id[sizeof(root_d->id)];

	/* root's decision, then a flood of one non-root caller */
	root_d = make(0, "alice");
	memcpy(root_id, root_d->id, sizeof(root_id));
	decision_table_add(&t, root_d);
	decision_unref(root_d);
	first = make(1001, "mallory");
	memcpy(first_id, first->id, sizeof(first_id));
	decision_table_add(&t, first);
	decision_unref(first);
	for (int i = 0; i < 100; i++) {
		d = make(1001, "mallory");
		decision_table_add(&t, d);
		decision_unref(d);
	}
	CHECK_INT(count_for(&t, 1001), DECISION_MAX_PER_CALLER);
	CHECK(decision_table_find(&t, first_id) == NULL); /* its own oldest went */
	CHECK(decision_table_find(&t, root_id) != NULL);

	/* many non-root callers together fill the table: still root's stays */
	for (uid_t u = 2000; u < 2000 + DECISION_TABLE_MAX / DECISION_MAX_PER_CALLER + 10; u++)
		for (int i = 0; i < DECISION_MAX_PER_CALLER; i++) {
			d = make(u, "someone");
			decision_table_add(&t, d);
			decision_unref(d);
		}
	CHECK(t.n <= DECISION_TABLE_MAX);
	CHECK(decision_table_find(&t, root_id) != NULL);

	/* a table of root's decisions only: the oldest of them goes */
	decision_table_clear(&t);
	root_d = make(0, "alice");
	memcpy(root_id, root_d->id, sizeof(root_id));
	decision_table_add(&t, root_d);
	decision_unref(root_d);
	for (int i = 0; i < DECISION_TABLE_MAX; i++) {
		d = make(0, "bob");
		decision_table_add(&t, d);
		decision_unref(d);
	}
	CHECK_INT(t.n, DECISION_TABLE_MAX);
	CHECK(decision_table_find(&t, root_id) == NULL);
	decision_table_clear(&t);
	return 0;
}
