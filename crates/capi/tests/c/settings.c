/* roma's C settings beyond the basics, end to end: asynchronous host functions finished inline
 * and from another thread (with metadata, and one that rejects), CPU profiles per request,
 * recycling, the toggles (prewarm, spin, inline host functions), the worker output function
 * (fed by the debug worker's injected stderr fault) and its env_delete, payloads over the fast path refused (ROMA_OVERSIZE_REJECT), tenant pools bounded
 * by max_tenants (evicted). Prints "ok NAME" per check and exits non-zero at the first failure. The
 * worker library comes from $ROMA_WORKER_LIB. */
#include <roma.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counter.h"

#define S(x) x, strlen(x)

static void fail(const char *what, const char *why) {
  fprintf(stderr, "FAIL %s: %s\n", what, why ? why : "(no error)");
  exit(1);
}
static void ok(roma_error_t *e, const char *what) {
  if (e != NULL) fail(what, roma_error_message(e, NULL));
}
static void check(int cond, const char *what) {
  if (!cond) fail(what, NULL);
}

/* One answer: its kind (0 for a response), result text and profile. */
typedef struct {
  long done;
  roma_error_kind_t kind;
  char resp[256];
  char *profile;
  size_t profile_len;
} answer_t;

static void on_answer(void *data, roma_response_t *r, roma_error_t *e) {
  answer_t *a = data;
  pthread_mutex_lock(&mu);
  if (r != NULL) {
    size_t len = 0;
    const char *t = roma_response_resp(r, &len);
    snprintf(a->resp, sizeof a->resp, "%.*s", (int)len, t);
    t = roma_response_profiler_output(r, &a->profile_len);
    a->profile = malloc(a->profile_len + 1);
    memcpy(a->profile, t, a->profile_len + 1);
    roma_response_delete(r);
  } else {
    a->kind = roma_error_kind(e);
    snprintf(a->resp, sizeof a->resp, "%s", roma_error_message(e, NULL));
    roma_error_delete(e);
  }
  a->done++;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}
static void await_done(answer_t *a) { counter_await(&a->done, 1); }

/* Loads `js` as `id` at `version` and waits for the load's answer. */
static void load_version(roma_service_t *s, const char *id, const char *version, const char *js) {
  roma_code_object_t *code = roma_code_object_new();
  ok(roma_code_object_set_id(code, S(id)), "id");
  ok(roma_code_object_set_version(code, S(version)), "version");
  ok(roma_code_object_set_js(code, S(js)), "js");
  answer_t a = {0};
  ok(roma_service_load(s, code, on_answer, &a), "load");
  roma_code_object_delete(code);
  await_done(&a);
  check(a.kind == 0, a.resp);
  free(a.profile);
}
static void load(roma_service_t *s, const char *id, const char *js) { load_version(s, id, "v1", js); }

/* Runs a request; its answer, or the refusal's kind and message. */
static answer_t run(roma_service_t *s, roma_request_t *r) {
  answer_t a = {0};
  roma_error_t *e = roma_service_execute(s, r, on_answer, &a, NULL);
  if (e != NULL) {
    a.kind = roma_error_kind(e);
    snprintf(a.resp, sizeof a.resp, "%s", roma_error_message(e, NULL));
    roma_error_delete(e);
    return a;
  }
  await_done(&a);
  check(a.done == 1, "one callback");
  return a;
}
static roma_request_t *request_version(const char *version, const char *handler,
                                       const char *input) {
  roma_request_t *r = roma_request_new();
  ok(roma_request_set_version(r, S(version)), "set version");
  ok(roma_request_set_handler(r, S(handler)), "set handler");
  if (input) ok(roma_request_add_input(r, S(input)), "add input");
  return r;
}
static roma_request_t *request(const char *handler, const char *input) {
  return request_version("v1", handler, input);
}

/* Asynchronous host functions. `now` finishes inline; `later` hands its call to a thread of
 * its own, which answers with the request's metadata (a string); `reject` sets an error. */
static void now_fn(void *env, roma_host_call_t *call, void *metadata) {
  (void)env;
  (void)metadata;
  roma_host_io_t *io = roma_host_call_io(call);
  const char *s;
  size_t len;
  ok(roma_host_io_input_string(io, &s, &len), "now input");
  char out[64];
  snprintf(out, sizeof out, "now:%.*s", (int)len, s);
  ok(roma_host_io_set_output_string(io, S(out)), "now output");
  roma_host_call_finish(call);
}
typedef struct {
  roma_host_call_t *call;
  const char *metadata;
} later_t;
static void *later_thread(void *arg) {
  later_t *l = arg;
  roma_host_io_t *io = roma_host_call_io(l->call);
  const char *s;
  size_t len;
  ok(roma_host_io_input_string(io, &s, &len), "later input");
  char out[64];
  snprintf(out, sizeof out, "later:%.*s:%s", (int)len, s, l->metadata ? l->metadata : "none");
  ok(roma_host_io_set_output_string(io, S(out)), "later output");
  roma_host_call_finish(l->call);
  free(l);
  return NULL;
}
static void later_fn(void *env, roma_host_call_t *call, void *metadata) {
  (void)env;
  later_t *l = malloc(sizeof *l);
  l->call = call;
  l->metadata = metadata;
  pthread_t t;
  check(pthread_create(&t, NULL, later_thread, l) == 0, "thread");
  pthread_detach(t);
}
static void reject_fn(void *env, roma_host_call_t *call, void *metadata) {
  (void)env;
  (void)metadata;
  ok(roma_host_io_add_error(roma_host_call_io(call), S("no, later")), "add error");
  roma_host_call_finish(call);
}

static int output_env;
static long output_env_deleted;
static int output_plain_seen, output_raw_escape, output_bad_worker;
static void output_fn(void *env, size_t worker, const char *line, size_t len) {
  check(env == &output_env, "output env");
  pthread_mutex_lock(&mu);
  if (len == strlen("plain line") && memcmp(line, "plain line", len) == 0) output_plain_seen++;
  if (memchr(line, 0x1b, len) != NULL || strlen(line) != len) output_raw_escape++;
  if (worker != 0) output_bad_worker++;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}
static void delete_output_env(void *env) {
  check(env == &output_env, "env_delete gets env");
  counter_bump(&output_env_deleted);
}

static const char *JS =
    "function Handler(input) { return 'Hello world! ' + JSON.stringify(input); }\n"
    "function Spin() { let x = 0; for (let i = 0; i < 3e6; i++) x += i % 7; return x > 0; }\n"
    "async function Async(x) { const r = await Promise.all([later(x), now(x)]); return r.join(','); }\n"
    "async function Rejects() { try { await reject(); return 'resolved'; } catch (e) { return 'caught ' + e.message; } }\n";

static void test_async_profiles_recycling(void) {
  roma_config_t *c = roma_config_new();
  ok(roma_config_set_number_of_workers(c, 1), "workers");
  ok(roma_config_set_enable_profilers(c, true), "profilers");
  ok(roma_config_set_async_binding_threads(c, 2), "async threads");
  ok(roma_config_set_recycle_after_requests(c, 2), "recycle");
  ok(roma_config_set_prewarm(c, false), "prewarm");
  ok(roma_config_set_spin(c, false), "spin");
  ok(roma_config_set_host_functions_inline(c, true), "inline");
  ok(roma_config_set_worker_grace_ms(c, 5000), "grace");
  ok(roma_config_register_async_function(c, S("now"), now_fn, NULL, NULL), "now");
  ok(roma_config_register_async_function(c, S("later"), later_fn, NULL, NULL), "later");
  ok(roma_config_register_async_function(c, S("reject"), reject_fn, NULL, NULL), "reject");
  ok(roma_config_set_worker_output_function(c, output_fn, &output_env, delete_output_env), "output");
  roma_service_t *s = NULL;
  ok(roma_service_new(c, &s), "service_new");
  load(s, "a", JS);

  static const char meta[] = "tenant-a";
  roma_request_t *r = request("Async", "\"k\"");
  ok(roma_request_set_metadata(r, (void *)meta), "metadata");
  answer_t a = run(s, r);
  roma_request_delete(r);
  check(a.kind == 0 && strcmp(a.resp, "\"later:k:tenant-a,now:k\"") == 0, a.resp);
  free(a.profile);
  r = request("Rejects", NULL);
  a = run(s, r);
  roma_request_delete(r);
  check(a.kind == 0 && strcmp(a.resp, "\"caught no, later\"") == 0, a.resp);
  free(a.profile);
  printf("ok async_host_functions\n");

  r = request("Spin", NULL);
  ok(roma_request_set_profile(r, true), "profile");
  a = run(s, r);
  check(a.kind == 0 && strcmp(a.resp, "true") == 0, a.resp);
  check(a.profile_len > 0 && a.profile_len == strlen(a.profile), "a profile");
  check(strstr(a.profile, "\"nodes\"") != NULL && strstr(a.profile, "\"Spin\"") != NULL, a.profile);
  free(a.profile);
  ok(roma_request_set_profile(r, false), "no profile");
  a = run(s, r);
  check(a.kind == 0 && a.profile_len == 0 && a.profile[0] == '\0', "no profile unasked");
  free(a.profile);
  printf("ok profiles\n");

  /* With recycling after 2 requests, the worker has been replaced by now; requests go on. */
  for (int i = 0; i < 5; i++) {
    a = run(s, r);
    check(a.kind == 0 && strcmp(a.resp, "true") == 0, a.resp);
    free(a.profile);
  }
  roma_request_delete(r);
  printf("ok recycling_and_toggles\n");

  /* The debug worker's injected fault writes to its stderr; the lines reach the output
   * function, escaped. */
  r = request("__roma_fault_stderr", NULL);
  a = run(s, r);
  roma_request_delete(r);
  check(a.kind == 0 && strcmp(a.resp, "\"written\"") == 0, a.resp);
  free(a.profile);
  pthread_mutex_lock(&mu);
  while (output_plain_seen < 1) pthread_cond_wait(&cv, &mu);
  check(output_raw_escape == 0, "worker output is escaped");
  check(output_bad_worker == 0, "worker output names worker 0");
  pthread_mutex_unlock(&mu);
  printf("ok worker_output\n");
  roma_service_delete(s);
  counter_await(&output_env_deleted, 1);
  printf("ok worker_output_env_delete\n");
}

static void test_profiles_off(void) {
  roma_config_t *c = roma_config_new();
  ok(roma_config_set_number_of_workers(c, 1), "workers");
  ok(roma_config_set_payload_fast_path_bytes(c, 4096), "fast path");
  ok(roma_config_set_max_payload_bytes(c, 1 << 20), "max payload");
  ok(roma_config_set_oversize_payloads(c, ROMA_OVERSIZE_REJECT), "reject");
  roma_service_t *s = NULL;
  ok(roma_service_new(c, &s), "service_new");
  load(s, "a", JS);
  roma_request_t *r = request("Handler", "\"x\"");
  ok(roma_request_set_profile(r, true), "profile");
  answer_t a = run(s, r);
  check(a.kind == ROMA_ERROR_INVALID_ARGUMENT && strstr(a.resp, "enable_profilers") != NULL, a.resp);
  roma_request_delete(r);
  printf("ok profile_refused_without_enable_profilers\n");

  static char big[8192];
  memset(big, 'a', sizeof big - 1);
  big[0] = '"';
  big[sizeof big - 2] = '"';
  r = request("Handler", big);
  a = run(s, r);
  check(a.kind == ROMA_ERROR_PAYLOAD_TOO_LARGE, a.resp);
  free(a.profile);
  roma_request_delete(r);
  r = request("Handler", "\"small\"");
  a = run(s, r);
  check(a.kind == 0 && strcmp(a.resp, "\"Hello world! \\\"small\\\"\"") == 0, a.resp);
  free(a.profile);
  roma_request_delete(r);
  printf("ok oversize_reject\n");
  roma_service_delete(s);
}

static void test_tenant_pools(void) {
  roma_config_t *c = roma_config_new();
  ok(roma_config_set_tenant_pools(c, 1), "tenant pools");
  ok(roma_config_set_max_tenants(c, 1), "max tenants");
  roma_service_t *s = NULL;
  ok(roma_service_new(c, &s), "service_new");
  load(s, "a", JS);
  /* At max_tenants, a new tenant's load evicts the least recently used idle pool. */
  load_version(s, "b", "v2", JS);
  roma_request_t *r = request("Handler", "\"t\"");
  answer_t a = run(s, r);
  check(a.kind == ROMA_ERROR_VERSION_NOT_FOUND, "the evicted tenant's version is gone");
  free(a.profile);
  roma_request_delete(r);
  r = request_version("v2", "Handler", "\"t\"");
  a = run(s, r);
  check(a.kind == 0 && strcmp(a.resp, "\"Hello world! \\\"t\\\"\"") == 0, a.resp);
  free(a.profile);
  roma_request_delete(r);
  /* The evicted tenant loads again (evicting the other) and is served. */
  load(s, "a", JS);
  r = request("Handler", "\"t\"");
  a = run(s, r);
  check(a.kind == 0 && strcmp(a.resp, "\"Hello world! \\\"t\\\"\"") == 0, a.resp);
  free(a.profile);
  roma_request_delete(r);
  roma_service_delete(s);
  printf("ok tenant_pools\n");
}

int main(void) {
  test_async_profiles_recycling();
  test_profiles_off();
  test_tenant_pools();
  printf("all ok\n");
  return 0;
}
