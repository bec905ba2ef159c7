/* Task verification on the agent (hubtask_verify, src/agent/hubtask.c). The first byte picks
 * the mode: even, the rest is a signed task as a link would hand it in, which must never verify
 * (the fuzzer does not know the hub's key); odd, the rest is the task itself, which this target
 * signs with the test hub key, so the checks after the signature (host, expiry, fields) get
 * fuzzed too. Whatever verifies must hold what the agent relies on before it runs anything. */
#include "fuzz.h"

#include "agent/hubtask.h"
#include "agent/ledger.h"
#include "core/sec.h"
#include "core/wire.h"

#include <sodium.h>
#include <string.h>

#define HOST "web-01"
#define NOW 1700000000000LL
#define MAX_TTL (7 * 86400000LL)

static uint8_t pk[SEC_PK_BYTES], sk[SEC_SK_BYTES], other_pk[SEC_PK_BYTES];

static void keys(void)
{
	static int done;
	uint8_t seed[32], other_sk[SEC_SK_BYTES];

	if (done)
		return;
	FUZZ_CHECK(sec_init() == 0);
	memset(seed, 7, sizeof(seed));
	crypto_sign_seed_keypair(pk, sk, seed);
	memset(seed, 8, sizeof(seed));
	crypto_sign_seed_keypair(other_pk, other_sk, seed);
	done = 1;
}

static int name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 1 || n > 32)
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hubtask_verdict v;
	json_t *in = NULL, *st = NULL;
	char msg[256], *canon = NULL, *sig = NULL;
	const json_t *task;
	int rc;

	if (size < 1)
		return 0;
	keys();
	if (wire_parse((const char *)data + 1, size - 1, WIRE_MAX_DEPTH_DEFAULT, &in, msg,
	               sizeof(msg)) < 0)
		return 0;
	if (!(data[0] & 1)) {
		/* As carried: unsigned by us, so it must be refused, with a reason. */
		FUZZ_CHECK(hubtask_verify(in, pk, HOST, NOW, MAX_TTL, &v) < 0);
		FUZZ_CHECK(v.why[0] && v.state && v.code < 0);
		FUZZ_CHECK(!v.id || ledger_id_ok(v.id));
		FUZZ_CHECK(hubtask_verify(in, NULL, HOST, NOW, MAX_TTL, &v) < 0);
		goto out;
	}
	canon = sec_canonical(in);
	if (!canon)
		goto out;
	sig = sec_sign_b64(sk, canon, strlen(canon));
	st = json_pack("{s:O, s:s}", "task", in, "sig", sig);
	FUZZ_CHECK(st != NULL);
	/* Not enrolled, or another hub's key: never runs. */
	FUZZ_CHECK(hubtask_verify(st, NULL, HOST, NOW, MAX_TTL, &v) < 0);
	FUZZ_CHECK(hubtask_verify(st, other_pk, HOST, NOW, MAX_TTL, &v) < 0);
	rc = hubtask_verify(st, pk, HOST, NOW, MAX_TTL, &v);
	if (rc < 0) {
		FUZZ_CHECK(v.why[0] && v.state && v.code < 0);
		goto out;
	}
	task = json_object_get(st, "task");
	FUZZ_CHECK(json_is_object(task));
	FUZZ_CHECK(strcmp(json_string_value(json_object_get(task, "host_id")), HOST) == 0);
	FUZZ_CHECK(json_integer_value(json_object_get(task, "expires_ms")) > NOW);
	FUZZ_CHECK(json_integer_value(json_object_get(task, "expires_ms")) - NOW <= MAX_TTL);
	FUZZ_CHECK(v.id && ledger_id_ok(v.id));
	FUZZ_CHECK(name_ok(json_string_value(json_object_get(task, "plugin"))));
	FUZZ_CHECK(name_ok(json_string_value(json_object_get(task, "op"))));
	FUZZ_CHECK(json_integer_value(json_object_get(task, "issued_ms")) <= NOW + 300000);
	/* For another host, or once expired: refused. */
	FUZZ_CHECK(hubtask_verify(st, pk, "web-02", NOW, MAX_TTL, &v) < 0);
	FUZZ_CHECK(hubtask_verify(st, pk, HOST, NOW + MAX_TTL + 1, MAX_TTL, &v) < 0);
	FUZZ_CHECK(strcmp(v.state, "expired") == 0);
out:
	free(canon);
	free(sig);
	json_decref(st);
	json_decref(in);
	return 0;
}
