/* The edges of roma's C API: exactly-once callbacks under load, stop with requests queued, use
 * after stop, host functions that fail, null and invalid UTF-8 arguments, metadata isolation,
 * list/map/bytes host functions, the logging function, cancel, the blocking execute. Prints "ok NAME" per check and
 * exits non-zero at the first failure. The worker library comes from $ROMA_WORKER_LIB. */
#include <roma.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counter.h"

#define S(x) x, strlen(x)

static void fail(const char *what, roma_error_t *e) {
  fprintf(stderr, "FAIL %s: %s\n", what, e ? roma_error_message(e, NULL) : "(no error)");
  exit(1);
}
static void ok(roma_error_t *e, const char *what) {
  if (e != NULL) fail(what, e);
}
static void check(int cond, const char *what) {
  if (!cond) fail(what, NULL);
}
static void expect_kind(roma_error_t *e, roma_error_kind_t kind, const char *what) {
  if (e == NULL) fail(what, NULL);
  if (roma_error_kind(e) != kind) {
    fprintf(stderr, "FAIL %s: kind %u, want %u: %s\n", what, roma_error_kind(e), kind,
            roma_error_message(e, NULL));
    exit(1);
  }
  roma_error_delete(e);
}

/* How many requests were answered (or refused): callbacks bump it, the main thread awaits. */
static long answered;

static void bump(void) { counter_bump(&answered); }
static void await_answers(long n) { counter_await(&answered, n); }
static void reset_answers(void) {
  pthread_mutex_lock(&mu);
  answered = 0;
  pthread_mutex_unlock(&mu);
}

/* One request's record: how often its callback ran, and what it got. */
typedef struct {
  atomic_int calls;
  int id;
  roma_error_kind_t kind; /* 0: a response */
  char resp[256];
} slot_t;

static void on_answer(void *data, roma_response_t *r, roma_error_t *e) {
  slot_t *s = data;
  check((r == NULL) != (e == NULL), "exactly one of response and error");
  if (r != NULL) {
    size_t len = 0;
    const char *t = roma_response_resp(r, &len);
    snprintf(s->resp, sizeof s->resp, "%.*s", (int)len, t);
    s->kind = 0;
    roma_response_delete(r);
  } else {
    s->kind = roma_error_kind(e);
    snprintf(s->resp, sizeof s->resp, "%s", roma_error_message(e, NULL));
    roma_error_delete(e);
  }
  atomic_fetch_add(&s->calls, 1);
  bump();
}

/* Host functions. */
static atomic_int metadata_mismatches;
static void meta_fn(void *env, roma_host_io_t *io, void *metadata) {
  (void)env;
  const char *in = NULL;
  size_t len = 0;
  ok(roma_host_io_input_string(io, &in, &len), "meta_fn input");
  int want = atoi(in);
  if (metadata == NULL || ((slot_t *)metadata)->id != want) atomic_fetch_add(&metadata_mismatches, 1);
  ok(roma_host_io_set_output_string(io, in, len), "meta_fn output");
}
static void fails_fn(void *env, roma_host_io_t *io, void *metadata) {
  (void)env;
  (void)metadata;
  ok(roma_host_io_add_error(io, S("the host said no")), "add_error");
  /* Invalid UTF-8 out is refused, not passed on. */
  expect_kind(roma_host_io_set_output_string(io, "\xff\xfe", 2), ROMA_ERROR_INVALID_ARGUMENT,
              "invalid UTF-8 output");
}
static void list_fn(void *env, roma_host_io_t *io, void *metadata) {
  (void)env;
  (void)metadata;
  check(roma_host_io_input_kind(io) == ROMA_INPUT_LIST, "list input kind");
  size_t n = roma_host_io_input_len(io);
  const char *items[8];
  size_t lens[8];
  check(n <= 8, "list length");
  for (size_t i = 0; i < n; i++) ok(roma_host_io_input_list_get(io, n - 1 - i, &items[i], &lens[i]), "list get");
  expect_kind(roma_host_io_input_list_get(io, n, &items[0], &lens[0]), ROMA_ERROR_BAD_INPUT, "list out of range");
  ok(roma_host_io_set_output_list(io, items, lens, n), "set list");
}
static void map_fn(void *env, roma_host_io_t *io, void *metadata) {
  (void)env;
  (void)metadata;
  check(roma_host_io_input_kind(io) == ROMA_INPUT_MAP, "map input kind");
  const char *k, *v;
  size_t kl, vl;
  ok(roma_host_io_input_map_get(io, 0, &k, &kl, &v, &vl), "map get");
  const char *keys[1] = {v}, *values[1] = {k};
  size_t klens[1] = {vl}, vlens[1] = {kl};
  ok(roma_host_io_set_output_map(io, keys, klens, values, vlens, 1), "set map");
}
static void bytes_fn(void *env, roma_host_io_t *io, void *metadata) {
  (void)env;
  (void)metadata;
  const uint8_t *b;
  size_t n;
  ok(roma_host_io_input_bytes(io, &b, &n), "bytes in");
  uint8_t out[16];
  check(n <= 16, "bytes length");
  for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(b[i] * 2);
  ok(roma_host_io_set_output_bytes(io, out, n), "bytes out");
}

/* env_delete runs on whichever thread lets go of the env last, possibly after
 * roma_service_delete returned: awaited, not checked at once. */
static long env_deleted;
static void delete_env(void *env) {
  check(env == &env_deleted, "env_delete gets env");
  counter_bump(&env_deleted);
}

static char last_log[256];
static void *last_log_meta;
static void log_fn(void *env, uint32_t level, const char *msg, size_t len, void *metadata) {
  (void)env;
  pthread_mutex_lock(&mu);
  if (level == ROMA_LOG_INFO) snprintf(last_log, sizeof last_log, "%.*s", (int)len, msg);
  last_log_meta = metadata;
  pthread_mutex_unlock(&mu);
}

static const char *JS =
    "function Handler(input) { return 'Hello world! ' + JSON.stringify(input); }\n"
    "function Meta(x) { return meta_fn(x); }\n"
    "function Throws() { return fails_fn('x'); }\n"
    "function Catches() { try { fails_fn('x'); return 'no throw'; } catch (e) { return String(e.message || e); } }\n"
    "function List() { return echo_list(['a', 'b', 'c']); }\n"
    "function MapF() { return Array.from(echo_map(new Map([['k', 'v']])).entries()); }\n"
    "function Bytes() { return Array.from(echo_bytes(new Uint8Array([1, 2, 3]))); }\n"
    "function Log(x) { console.log('log ' + x); return 1; }\n"
    "function Slow(ms) { const t = Date.now(); while (Date.now() - t < ms) {} return ms; }\n";

static roma_service_t *start(size_t workers, size_t queue) {
  roma_config_t *c = roma_config_new();
  ok(roma_config_set_number_of_workers(c, workers), "workers");
  ok(roma_config_set_worker_queue_max_items(c, queue), "queue");
  ok(roma_config_register_function(c, S("meta_fn"), meta_fn, NULL, NULL), "register");
  ok(roma_config_register_function(c, S("fails_fn"), fails_fn, &env_deleted, delete_env), "register");
  ok(roma_config_register_function(c, S("echo_list"), list_fn, NULL, NULL), "register");
  ok(roma_config_register_function(c, S("echo_map"), map_fn, NULL, NULL), "register");
  ok(roma_config_register_function(c, S("echo_bytes"), bytes_fn, NULL, NULL), "register");
  ok(roma_config_set_logging_function(c, log_fn, NULL, NULL), "logging");
  roma_service_t *s = NULL;
  ok(roma_service_new(c, &s), "service_new");
  roma_code_object_t *code = roma_code_object_new();
  ok(roma_code_object_set_version(code, S("v1")), "version");
  ok(roma_code_object_set_js(code, S(JS)), "js");
  slot_t load = {0};
  reset_answers();
  ok(roma_service_load(s, code, on_answer, &load), "load");
  roma_code_object_delete(code);
  await_answers(1);
  check(load.kind == 0, load.resp);
  return s;
}

static roma_request_t *request(const char *handler, const char *input) {
  roma_request_t *r = roma_request_new();
  ok(roma_request_set_version(r, S("v1")), "set version");
  ok(roma_request_set_handler(r, S(handler)), "set handler");
  if (input) ok(roma_request_add_input(r, S(input)), "add input");
  return r;
}

/* Runs one request and waits for its answer. */
static slot_t run_one(roma_service_t *s, const char *handler, const char *input) {
  slot_t slot = {0};
  roma_request_t *r = request(handler, input);
  reset_answers();
  ok(roma_service_execute(s, r, on_answer, &slot, NULL), handler);
  roma_request_delete(r);
  await_answers(1);
  check(atomic_load(&slot.calls) == 1, "one callback");
  return slot;
}

#define THREADS 8
#define PER_THREAD 1000
static slot_t load_slots[THREADS * PER_THREAD];
static atomic_int refused;
static roma_service_t *shared;

static void *submitter(void *arg) {
  int t = (int)(intptr_t)arg;
  char input[32];
  for (int i = 0; i < PER_THREAD; i++) {
    slot_t *slot = &load_slots[t * PER_THREAD + i];
    slot->id = t * PER_THREAD + i;
    snprintf(input, sizeof input, "\"%d\"", slot->id);
    roma_request_t *r = request("Meta", input);
    ok(roma_request_set_metadata(r, slot), "metadata");
    roma_error_t *e = roma_service_execute(shared, r, on_answer, slot, NULL);
    if (e != NULL) {
      /* Refused: no callback will come, so it counts as answered here. */
      check(roma_error_kind(e) == ROMA_ERROR_QUEUE_FULL, roma_error_message(e, NULL));
      roma_error_delete(e);
      slot->kind = ROMA_ERROR_QUEUE_FULL;
      atomic_fetch_add(&refused, 1);
      bump();
    }
    roma_request_delete(r);
  }
  return NULL;
}

static void test_exactly_once(roma_service_t *s) {
  shared = s;
  reset_answers();
  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, submitter, (void *)(intptr_t)t);
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  await_answers(THREADS * PER_THREAD);
  int answered_ok = 0;
  for (int i = 0; i < THREADS * PER_THREAD; i++) {
    slot_t *slot = &load_slots[i];
    int calls = atomic_load(&slot->calls);
    if (slot->kind == ROMA_ERROR_QUEUE_FULL && calls == 0) continue;
    check(calls == 1, "exactly one callback per accepted request");
    char want[32];
    snprintf(want, sizeof want, "\"%d\"", slot->id);
    check(slot->kind == 0 && strcmp(slot->resp, want) == 0, slot->resp);
    answered_ok++;
  }
  check(answered_ok + atomic_load(&refused) == THREADS * PER_THREAD, "every request accounted for");
  check(answered_ok > 0, "some requests ran");
  check(atomic_load(&metadata_mismatches) == 0, "metadata reaches only its request's calls");
  printf("ok exactly_once (%d ran, %d refused with queue_full) and metadata_isolation\n", answered_ok,
         atomic_load(&refused));
}

static void test_host_functions(roma_service_t *s) {
  slot_t r = run_one(s, "Throws", NULL);
  check(r.kind == ROMA_ERROR_EXECUTION && strstr(r.resp, "the host said no") != NULL, r.resp);
  r = run_one(s, "Catches", NULL);
  check(r.kind == 0 && strstr(r.resp, "the host said no") != NULL, r.resp);
  r = run_one(s, "List", NULL);
  check(r.kind == 0 && strcmp(r.resp, "[\"c\",\"b\",\"a\"]") == 0, r.resp);
  r = run_one(s, "MapF", NULL);
  check(r.kind == 0 && strcmp(r.resp, "[[\"v\",\"k\"]]") == 0, r.resp);
  r = run_one(s, "Bytes", NULL);
  check(r.kind == 0 && strcmp(r.resp, "[2,4,6]") == 0, r.resp);
  printf("ok host_functions (error, list, map, bytes)\n");
}

static void test_logging(roma_service_t *s) {
  slot_t meta = {0};
  roma_request_t *r = request("Log", "\"x\"");
  ok(roma_request_set_metadata(r, &meta), "metadata");
  reset_answers();
  ok(roma_service_execute(s, r, on_answer, &meta, NULL), "log");
  roma_request_delete(r);
  await_answers(1);
  pthread_mutex_lock(&mu);
  check(strcmp(last_log, "log x") == 0 && last_log_meta == &meta, last_log);
  pthread_mutex_unlock(&mu);
  printf("ok logging\n");
}

static void test_bad_arguments(roma_service_t *s) {
  roma_request_t *r = roma_request_new();
  expect_kind(roma_request_set_version(NULL, S("v1")), ROMA_ERROR_INVALID_ARGUMENT, "null request");
  expect_kind(roma_request_set_version(r, NULL, 3), ROMA_ERROR_INVALID_ARGUMENT, "null string");
  expect_kind(roma_request_set_version(r, "\xc3\x28", 2), ROMA_ERROR_INVALID_ARGUMENT, "invalid UTF-8");
  expect_kind(roma_request_add_input(r, "\xff", 1), ROMA_ERROR_INVALID_ARGUMENT, "invalid UTF-8 input");
  expect_kind(roma_service_execute(NULL, r, on_answer, NULL, NULL), ROMA_ERROR_INVALID_ARGUMENT, "null service");
  expect_kind(roma_service_execute(s, NULL, on_answer, NULL, NULL), ROMA_ERROR_INVALID_ARGUMENT, "null request");
  expect_kind(roma_service_execute(s, r, NULL, NULL, NULL), ROMA_ERROR_INVALID_ARGUMENT, "null callback");
  /* A request for no loaded version is refused at once, with no callback. */
  ok(roma_request_set_version(r, S("nope")), "set version");
  ok(roma_request_set_handler(r, S("Handler")), "set handler");
  expect_kind(roma_service_execute(s, r, on_answer, NULL, NULL), ROMA_ERROR_VERSION_NOT_FOUND, "unknown version");
  roma_request_delete(r);
  expect_kind(roma_config_set_number_of_workers(NULL, 1), ROMA_ERROR_INVALID_ARGUMENT, "null config");
  expect_kind(roma_config_set_sandbox(NULL, 0), ROMA_ERROR_INVALID_ARGUMENT, "null config");
  roma_config_t *c = roma_config_new();
  expect_kind(roma_config_set_sandbox(c, 99), ROMA_ERROR_INVALID_ARGUMENT, "unknown sandbox");
  expect_kind(roma_config_register_function(c, S("f"), NULL, NULL, NULL), ROMA_ERROR_INVALID_ARGUMENT, "null fn");
  ok(roma_config_set_number_of_workers(c, 0), "workers 0 is checked later");
  roma_service_t *none = NULL;
  expect_kind(roma_service_new(c, &none), ROMA_ERROR_INVALID_ARGUMENT, "0 workers");
  check(none == NULL, "no service on failure");
  expect_kind(roma_service_new(NULL, &none), ROMA_ERROR_INVALID_ARGUMENT, "null config");
  size_t len = 1;
  check(strcmp(roma_error_message(NULL, &len), "") == 0 && len == 0, "null error message");
  check(roma_error_stack(NULL, NULL) == NULL, "null error stack");
  check(roma_response_resp(NULL, NULL)[0] == '\0', "null response");
  check(!roma_service_cancel(NULL, NULL), "null cancel");
  roma_error_delete(NULL);
  roma_response_delete(NULL);
  roma_service_delete(NULL);
  printf("ok bad_arguments\n");
}

static void test_stop_with_queued(void) {
  roma_service_t *s = start(1, 100);
  enum { N = 20 };
  static slot_t slots[N + 1];
  reset_answers();
  roma_request_t *slow = request("Slow", "300");
  roma_execution_token_t *token = NULL;
  ok(roma_service_execute(s, slow, on_answer, &slots[0], NULL), "slow");
  roma_request_t *q = request("Handler", "\"q\"");
  for (int i = 1; i <= N; i++) {
    ok(roma_service_execute(s, q, on_answer, &slots[i], i == 1 ? &token : NULL), "queued");
  }
  /* Cancel one queued request by its token: it is answered Cancelled at once. */
  check(roma_service_cancel(s, token), "cancel a queued request");
  roma_execution_token_delete(token);
  ok(roma_service_stop(s), "stop");
  ok(roma_service_stop(s), "stop again");
  await_answers(N + 1);
  int cancelled = 0;
  for (int i = 0; i <= N; i++) {
    check(atomic_load(&slots[i].calls) == 1, "one callback each at stop");
    if (slots[i].kind == ROMA_ERROR_CANCELLED) cancelled++;
  }
  check(slots[1].kind == ROMA_ERROR_CANCELLED, "the cancelled request");
  check(cancelled >= N - 1, "queued requests are cancelled at stop");
  /* Use after stop: refused, and no callback. */
  slot_t after = {0};
  roma_error_t *e = roma_service_execute(s, q, on_answer, &after, NULL);
  check(e != NULL, "execute after stop is refused");
  roma_error_delete(e);
  roma_response_t *none = NULL;
  e = roma_service_execute_blocking(s, q, &none);
  check(e != NULL && none == NULL, "blocking execute after stop is refused");
  roma_error_delete(e);
  roma_code_object_t *code = roma_code_object_new();
  ok(roma_code_object_set_version(code, S("v2")), "version");
  ok(roma_code_object_set_js(code, S(JS)), "js");
  e = roma_service_load(s, code, on_answer, &after);
  check(e != NULL, "load after stop is refused");
  roma_error_delete(e);
  roma_code_object_delete(code);
  roma_request_delete(q);
  roma_request_delete(slow);
  roma_service_delete(s);
  check(atomic_load(&after.calls) == 0, "no callback for a refused request");
  counter_await(&env_deleted, 2); /* one per service started */
  printf("ok stop_with_queued (%d of %d cancelled), cancel, use_after_stop, env_delete\n", cancelled, N + 1);
}

/* The blocking execute: its answer, from many threads at once, its refusals, and its refusal
 * on the service's own threads (a callback that calls it gets ROMA_ERROR_INVALID_ARGUMENT). */
#define BLOCKING_THREADS 4
#define BLOCKING_CALLS 50
static atomic_int blocking_wrong;
static void *blocking_caller(void *arg) {
  (void)arg;
  roma_request_t *r = request("Handler", "\"Foobar\"");
  for (int i = 0; i < BLOCKING_CALLS; i++) {
    roma_response_t *resp = NULL;
    roma_error_t *e = roma_service_execute_blocking(shared, r, &resp);
    if (e != NULL || resp == NULL ||
        strcmp(roma_response_resp(resp, NULL), "\"Hello world! \\\"Foobar\\\"\"") != 0)
      atomic_fetch_add(&blocking_wrong, 1);
    roma_error_delete(e);
    roma_response_delete(resp);
  }
  roma_request_delete(r);
  return NULL;
}
static void blocking_in_callback(void *data, roma_response_t *r, roma_error_t *e) {
  slot_t *s = data;
  roma_response_delete(r);
  roma_error_delete(e);
  roma_request_t *q = request("Handler", "\"x\"");
  roma_response_t *resp = NULL;
  roma_error_t *refused_here = roma_service_execute_blocking(shared, q, &resp);
  s->kind = refused_here != NULL ? roma_error_kind(refused_here) : 0;
  check(resp == NULL, "no response when refused");
  roma_error_delete(refused_here);
  roma_request_delete(q);
  atomic_fetch_add(&s->calls, 1);
  bump();
}
static void test_execute_blocking(roma_service_t *s) {
  shared = s;
  pthread_t th[BLOCKING_THREADS];
  for (int t = 0; t < BLOCKING_THREADS; t++) pthread_create(&th[t], NULL, blocking_caller, NULL);
  for (int t = 0; t < BLOCKING_THREADS; t++) pthread_join(th[t], NULL);
  check(atomic_load(&blocking_wrong) == 0, "every blocking call answered hello world");
  roma_request_t *r = request("Handler", "\"Foobar\"");
  roma_response_t *resp = NULL;
  expect_kind(roma_service_execute_blocking(s, r, NULL), ROMA_ERROR_INVALID_ARGUMENT, "null response");
  expect_kind(roma_service_execute_blocking(NULL, r, &resp), ROMA_ERROR_INVALID_ARGUMENT, "null service");
  expect_kind(roma_service_execute_blocking(s, NULL, &resp), ROMA_ERROR_INVALID_ARGUMENT, "null request");
  roma_request_t *thrower = request("Throws", NULL);
  expect_kind(roma_service_execute_blocking(s, thrower, &resp), ROMA_ERROR_EXECUTION, "handler error");
  roma_request_delete(thrower);
  ok(roma_request_set_version(r, S("nope")), "set version");
  expect_kind(roma_service_execute_blocking(s, r, &resp), ROMA_ERROR_VERSION_NOT_FOUND, "unknown version");
  check(resp == NULL, "no response on failure");
  ok(roma_request_set_version(r, S("v1")), "set version");
  slot_t in_callback = {0};
  in_callback.kind = ROMA_ERROR_INTERNAL;
  reset_answers();
  ok(roma_service_execute(s, r, blocking_in_callback, &in_callback, NULL), "execute");
  await_answers(1);
  check(in_callback.kind == ROMA_ERROR_INVALID_ARGUMENT, "blocking execute refused in a callback");
  roma_request_delete(r);
  printf("ok execute_blocking (%d threads x %d calls, refusals, in a callback)\n", BLOCKING_THREADS,
         BLOCKING_CALLS);
}

static void test_batch(roma_service_t *s);

int main(void) {
  roma_service_t *s = start(2, 4000);
  slot_t hello = run_one(s, "Handler", "\"Foobar\"");
  check(hello.kind == 0 && strcmp(hello.resp, "\"Hello world! \\\"Foobar\\\"\"") == 0, hello.resp);
  printf("ok hello\n");
  test_bad_arguments(s);
  test_host_functions(s);
  test_logging(s);
  test_batch(s);
  test_execute_blocking(s);
  test_exactly_once(s);
  roma_service_delete(s);
  test_stop_with_queued();
  printf("all ok\n");
  return 0;
}

static atomic_int batch_calls;
static size_t batch_len;
static int batch_ok;
static void on_batch(void *data, roma_batch_t *b) {
  (void)data;
  batch_len = roma_batch_len(b);
  for (size_t i = 0; i < batch_len; i++) {
    const roma_response_t *r;
    const roma_error_t *e;
    check(roma_batch_get(b, i, &r, &e), "batch get");
    check((r == NULL) != (e == NULL), "one of response and error");
    if (r != NULL) batch_ok++;
  }
  check(!roma_batch_get(b, batch_len, NULL, NULL), "batch out of range");
  roma_batch_delete(b);
  atomic_fetch_add(&batch_calls, 1);
  bump();
}

static void test_batch(roma_service_t *s) {
  roma_request_t *r = request("Handler", "\"Foobar\"");
  const roma_request_t *batch[5] = {r, r, r, r, r};
  reset_answers();
  ok(roma_service_batch_execute(s, batch, 5, on_batch, NULL), "batch");
  await_answers(1);
  check(atomic_load(&batch_calls) == 1 && batch_len == 5 && batch_ok == 5, "batch of five");
  expect_kind(roma_service_batch_execute(s, NULL, 5, on_batch, NULL), ROMA_ERROR_INVALID_ARGUMENT, "null batch");
  roma_request_delete(r);
  printf("ok batch\n");
}
