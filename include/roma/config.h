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

/** A new configuration with every default. Never NULL; the caller owns it. */
roma_config_t *roma_config_new(void);
/** Frees a configuration never handed to roma_service_new. NULL is ignored. */
void roma_config_delete(roma_config_t *config);

/* Setters: each returns NULL, or an owned error for a null config or a bad argument. Values
 * are range-checked by roma_service_new, whose error names the setting. */

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

#ifdef __cplusplus
}
#endif

#endif /* ROMA_CONFIG_H */
