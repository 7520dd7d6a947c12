/* roma_config_t: the settings a service is built from (docs/config.md lists their defaults). */
#ifndef ROMA_CONFIG_H
#define ROMA_CONFIG_H

#include <roma/error.h>
#include <roma/host.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A configuration, owned by the caller until roma_service_new consumes it. Not thread-safe. */
typedef struct roma_config_t roma_config_t;

/** roma's own jail: namespaces, seccomp-bpf, rlimits (the default). */
#define ROMA_SANDBOX_NAMESPACES 0
/** birdcage (only in a library built with roma's birdcage feature, GPL-3.0-or-later). */
#define ROMA_SANDBOX_BIRDCAGE 1
/** No jail: a plain child process. For debugging only. */
#define ROMA_SANDBOX_NONE 2

/** A memfd region per direction with a futex doorbell (the default). */
#define ROMA_TRANSPORT_SHARED_MEMORY 0
/** A socketpair. */
#define ROMA_TRANSPORT_SOCKET 1

/** A payload larger than the fast-path size takes the socket (the default). */
#define ROMA_OVERSIZE_SLOW_PATH 0
/** A payload larger than the fast-path size fails with ROMA_ERROR_PAYLOAD_TOO_LARGE. */
#define ROMA_OVERSIZE_REJECT 1

/** A new configuration with every default. Never NULL; the caller owns it. */
roma_config_t *roma_config_new(void);
/** Frees a configuration never handed to roma_service_new. NULL is ignored. */
void roma_config_delete(roma_config_t *config);

/* Setters: each returns NULL, or an owned error for a null config or a bad argument. Values
 * are range-checked by roma_service_new (as roma::Config is by RomaService::new), whose
 * ROMA_ERROR_INVALID_ARGUMENT message starts with the setting's name. */

/** Worker processes to start (at least 1). Default: one per available core. */
roma_error_t *roma_config_set_number_of_workers(roma_config_t *config, size_t value);
/** Executions that may wait per worker (at least 1). Default 100. */
roma_error_t *roma_config_set_worker_queue_max_items(roma_config_t *config, size_t value);
/** Compiled versions each worker keeps (at least 1). Default 64. */
roma_error_t *roma_config_set_code_version_cache_size(roma_config_t *config, size_t value);
/** Roma's ConfigureJsEngineResourceConstraints: initial and maximum V8 heap of each isolate,
 *  in MB; 0 keeps V8's size. */
roma_error_t *roma_config_set_js_engine_resource_constraints(roma_config_t *config,
                                                             size_t initial_heap_size_in_mb,
                                                             size_t maximum_heap_size_in_mb);
/** RLIMIT_AS of each worker process, in MiB (Roma's max_worker_virtual_memory_mb); keep it at
 *  10240 or more, as V8 reserves much address space up front. Default: no limit. */
roma_error_t *roma_config_set_worker_address_space_mb(roma_config_t *config, uint64_t value);
/** The cap on ArrayBuffer memory per isolate, in MB (at least 1). */
roma_error_t *roma_config_set_max_array_buffer_mb(roma_config_t *config, size_t value);
/** The cap on WebAssembly memory, in 64 KiB pages (at least 1). */
roma_error_t *roma_config_set_max_wasm_memory_pages(roma_config_t *config, uint32_t value);
/** The timeout of an invocation that sets none, in ms (more than 0). Default 5000. */
roma_error_t *roma_config_set_default_timeout_ms(roma_config_t *config, uint64_t value);
/** How long a load may take until every worker has it, in ms. Default 30000. */
roma_error_t *roma_config_set_load_timeout_ms(roma_config_t *config, uint64_t value);
/** How long a worker may take to start, in ms. Default 30000. */
roma_error_t *roma_config_set_worker_startup_timeout_ms(roma_config_t *config, uint64_t value);
/** How long roma_service_batch_execute waits for room in full queues, in ms; 0: never. */
roma_error_t *roma_config_set_queue_wait_timeout_ms(roma_config_t *config, uint64_t value);
/** RLIMIT_DATA of each worker process, in MiB: the private writable memory it may use (at
 *  least 1). Default 4096. */
roma_error_t *roma_config_set_worker_data_limit_mb(roma_config_t *config, uint64_t value);
/** Removes the workers' RLIMIT_DATA limit. */
roma_error_t *roma_config_unset_worker_data_limit_mb(roma_config_t *config);
/** Added to a request's timeout before the host gives up on a worker that does not answer
 *  and replaces it, in ms (more than 0). Default 2000. */
roma_error_t *roma_config_set_worker_grace_ms(roma_config_t *config, uint64_t value);
/** The payload size that takes the fast path (the shared-memory region), in bytes (at least
 *  1, at most the max payload size). Default 1 MiB. */
roma_error_t *roma_config_set_payload_fast_path_bytes(roma_config_t *config, size_t value);
/** The largest message either side may send, in bytes (at least the fast-path size).
 *  Default 64 MiB. */
roma_error_t *roma_config_set_max_payload_bytes(roma_config_t *config, size_t value);
/** What a larger payload than the fast path does: a ROMA_OVERSIZE_* value; another is
 *  ROMA_ERROR_INVALID_ARGUMENT. */
roma_error_t *roma_config_set_oversize_payloads(roma_config_t *config, uint32_t policy);
/** Whether a worker prepares its next context while idle. Default on. */
roma_error_t *roma_config_set_prewarm(roma_config_t *config, bool value);
/** Whether requests may ask for a V8 CPU profile (roma_request_set_profile; Roma's
 *  enable_profilers). Off, a request asking for one fails. Default off. */
roma_error_t *roma_config_set_enable_profilers(roma_config_t *config, bool value);
/** Whether synchronous host functions run on the worker's slot thread itself: two thread
 *  wake-ups fewer per request that calls them, but only for host functions that never
 *  block. Default off. */
roma_error_t *roma_config_set_host_functions_inline(roma_config_t *config, bool value);
/** Whether the host and the workers busy-poll briefly for an answer expected within
 *  microseconds. Default on. */
roma_error_t *roma_config_set_spin(roma_config_t *config, bool value);
/** Threads that run asynchronous host functions (at least 1). Default 16. */
roma_error_t *roma_config_set_async_binding_threads(roma_config_t *config, size_t value);
/** The uid (and gid) the jail runs as when the host is root (at least 1). Default 65534. */
roma_error_t *roma_config_set_worker_uid(roma_config_t *config, uint32_t value);
/** Recycling: replace each worker after this many requests (at least 1). Default: never. */
roma_error_t *roma_config_set_recycle_after_requests(roma_config_t *config, uint64_t value);
/** Recycling: replace each worker once it is this old, in ms (more than 0). Default: never. */
roma_error_t *roma_config_set_recycle_after_age_ms(roma_config_t *config, uint64_t value);
/** Recycling: replace a worker that used more CPU than this per second while it had no
 *  request, in ms (more than 0). Default 500. */
roma_error_t *roma_config_set_recycle_idle_cpu_per_sec_ms(roma_config_t *config, uint64_t value);
/** Turns off recycling a worker for its idle CPU use. */
roma_error_t *roma_config_unset_recycle_idle_cpu_per_sec(roma_config_t *config);
/** Tenant pools: each tenant (its "roma.tenant" tag, else its code id) gets its own value
 *  worker processes, started on its first load; number_of_workers is then unused (at least
 *  1). Default off. */
roma_error_t *roma_config_set_tenant_pools(roma_config_t *config, size_t value);
/** With tenant pools, how many tenants may have a pool (at least 1). Default 16. */
roma_error_t *roma_config_set_max_tenants(roma_config_t *config, size_t value);
/** Gives each worker a cgroup of its own with this memory limit in MiB (at least 1). Default
 *  none (no cgroup). */
roma_error_t *roma_config_set_cgroup_memory_max_mb(roma_config_t *config, uint64_t value);
/** The most processes and threads each worker's cgroup may hold (at least 1). Default none. */
roma_error_t *roma_config_set_cgroup_pids_max(roma_config_t *config, uint64_t value);
/** The CPU bandwidth of each worker's cgroup: quota_us of CPU time per period_us (quota at
 *  least 1 ms, period 1 ms to 1 s). Default none. */
roma_error_t *roma_config_set_cgroup_cpu_max(roma_config_t *config, uint64_t quota_us,
                                             uint64_t period_us);
/** cgroup v2 only: the cgroup (absolute path under the cgroup2 mount) to make worker cgroups
 *  in (copied). Default: the host's own cgroup. */
roma_error_t *roma_config_set_cgroup_parent(roma_config_t *config, const char *path, size_t len);
/** The low-latency mode: idle threads poll up to this many ms before they sleep (0: off; more
 *  is held to 50). Default off. */
roma_error_t *roma_config_set_low_latency_ms(roma_config_t *config, uint64_t value);
/** The jail: a ROMA_SANDBOX_* value; another is ROMA_ERROR_INVALID_ARGUMENT. */
roma_error_t *roma_config_set_sandbox(roma_config_t *config, uint32_t kind);
/** The transport: a ROMA_TRANSPORT_* value; another is ROMA_ERROR_INVALID_ARGUMENT. */
roma_error_t *roma_config_set_transport(roma_config_t *config, uint32_t kind);
/** Adds a V8 flag for every worker (copied), e.g. "--single-threaded-gc". */
roma_error_t *roma_config_add_v8_flag(roma_config_t *config, const char *flag, size_t len);
/** The worker library libroma_worker.so (copied). Default: $ROMA_WORKER_LIB, else next to the
 *  executable. */
roma_error_t *roma_config_set_worker_library(roma_config_t *config, const char *path, size_t len);
/** The pinned node executable whose V8 the workers run (copied). Default: $ROMA_NODE, else the
 *  build `cargo xtask setup` unpacked. */
roma_error_t *roma_config_set_node_binary(roma_config_t *config, const char *path, size_t len);

/** Registers a host function that JS calls by name (copied; a dotted name creates nested
 *  objects). It runs on roma's threads, several calls possibly at once, with env and the
 *  calling request's metadata pointer. env_delete (may be NULL) is called once with env when
 *  nothing uses it any more: when this configuration is freed unused, or once the service's
 *  threads have let go of it, which may be shortly after roma_service_delete returns, on a
 *  roma thread. Names are checked by
 *  roma_service_new. The function must not unwind (no C++ exception may leave it). */
roma_error_t *roma_config_register_function(roma_config_t *config, const char *name,
                                            size_t name_len, roma_host_function_t function,
                                            void *env, roma_user_delete_t env_delete);

/** Sets where the code's console output goes (console.log/warn/error, uncaught errors); the
 *  function runs on roma's threads. env and env_delete as for roma_config_register_function.
 *  Without one, console output is dropped. */
roma_error_t *roma_config_set_logging_function(roma_config_t *config,
                                               roma_log_function_t function, void *env,
                                               roma_user_delete_t env_delete);

/** Registers an asynchronous host function that JS calls by name: in JS it returns a Promise
 *  at once. function runs on roma's threads with env, an owned roma_host_call_t and the
 *  request's metadata pointer; read the input and set the output through
 *  roma_host_call_io(call), then call roma_host_call_finish(call) exactly once, from any
 *  thread, during the call or later (the Promise settles then). Until then the call holds one
 *  of the async threads. env and env_delete as for roma_config_register_function. The
 *  function must not unwind (no C++ exception may leave it). */
roma_error_t *roma_config_register_async_function(roma_config_t *config, const char *name,
                                                  size_t name_len,
                                                  roma_async_host_function_t function, void *env,
                                                  roma_user_delete_t env_delete);

/** Sets where what workers write to their stderr goes (V8's fatal-error reports, jail setup
 *  failures): function runs on roma's threads with env, the worker's index and one line, cut
 *  to 4 KiB, control characters escaped, at most 100 lines per second per worker. The lines
 *  come from a process running untrusted code: treat them as its data. env and env_delete
 *  as for roma_config_register_function. Without one, lines go to stderr as
 *  "roma-worker N: ...". The function must not unwind. */
roma_error_t *roma_config_set_worker_output_function(roma_config_t *config,
                                                     roma_worker_output_function_t function,
                                                     void *env, roma_user_delete_t env_delete);

#ifdef __cplusplus
}
#endif

#endif /* ROMA_CONFIG_H */
