/* Host functions: C functions JS calls, and roma_host_io_t, one call's input and output. */
#ifndef ROMA_HOST_H
#define ROMA_HOST_H

#include <roma/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/** One host-function call's input and output. Borrowed: valid only during the call, and so
 *  is every pointer read from it. */
typedef struct roma_host_io_t roma_host_io_t;

/** A host function: env as registered, the call's io, and the metadata pointer of the request
 *  whose code made the call (set with roma_request_set_metadata; NULL if none). */
typedef void (*roma_host_function_t)(void *env, roma_host_io_t *io, void *metadata);

/** An asynchronous host-function call, owned by the function it is handed to until it passes
 *  it to roma_host_call_finish. */
typedef struct roma_host_call_t roma_host_call_t;

/** An asynchronous host function: env as registered, the call, and the request's metadata
 *  pointer. It must not block for long: it runs on the worker's slot thread; hand the call to
 *  another thread and finish it there. */
typedef void (*roma_async_host_function_t)(void *env, roma_host_call_t *call, void *metadata);

/** The worker-output function: the worker's index and one line (NUL-terminated, len bytes,
 *  valid only during the call). */
typedef void (*roma_worker_output_function_t)(void *env, size_t worker, const char *line,
                                              size_t len);

/** Log levels, ordered. */
#define ROMA_LOG_DEBUG 0
#define ROMA_LOG_INFO 1
#define ROMA_LOG_WARNING 2
#define ROMA_LOG_ERROR 3

/** The logging function: a ROMA_LOG_* level, the message (NUL-terminated, len bytes, valid
 *  only during the call) and the request's metadata pointer. */
typedef void (*roma_log_function_t)(void *env, uint32_t level, const char *message, size_t len,
                                    void *metadata);

/** Frees a user pointer handed to roma. */
typedef void (*roma_user_delete_t)(void *env);

/** Kinds of input JS may pass a host function. */
#define ROMA_INPUT_NONE 0
#define ROMA_INPUT_STRING 1
#define ROMA_INPUT_LIST 2
#define ROMA_INPUT_MAP 3
#define ROMA_INPUT_BYTES 4
/** Another plain object, as JSON text (read with roma_host_io_input_string). */
#define ROMA_INPUT_JSON 5

/** The kind of the argument JS passed: a ROMA_INPUT_* value. */
uint32_t roma_host_io_input_kind(const roma_host_io_t *io);
/** The string (or JSON) input, NUL-terminated through *out, its length through *len. Not a
 *  string: ROMA_ERROR_BAD_INPUT. */
roma_error_t *roma_host_io_input_string(roma_host_io_t *io, const char **out, size_t *len);
/** Items of a list input, entries of a map input, bytes of a bytes input; else 0. */
size_t roma_host_io_input_len(const roma_host_io_t *io);
/** The string at index of a list input. Not a list or out of range: ROMA_ERROR_BAD_INPUT. */
roma_error_t *roma_host_io_input_list_get(roma_host_io_t *io, size_t index, const char **out,
                                          size_t *len);
/** The entry at index (in key order) of a map input. */
roma_error_t *roma_host_io_input_map_get(roma_host_io_t *io, size_t index, const char **key,
                                         size_t *key_len, const char **value, size_t *value_len);
/** The bytes of a Uint8Array input. */
roma_error_t *roma_host_io_input_bytes(const roma_host_io_t *io, const uint8_t **out,
                                       size_t *len);

/** Returns a string to JS (copied; must be UTF-8). */
roma_error_t *roma_host_io_set_output_string(roma_host_io_t *io, const char *s, size_t len);
/** Returns an Array of n strings to JS (copied): items[i] is lens[i] bytes. */
roma_error_t *roma_host_io_set_output_list(roma_host_io_t *io, const char *const *items,
                                           const size_t *lens, size_t n);
/** Returns a Map of n entries to JS (copied): keys[i] to values[i]. */
roma_error_t *roma_host_io_set_output_map(roma_host_io_t *io, const char *const *keys,
                                          const size_t *key_lens, const char *const *values,
                                          const size_t *value_lens, size_t n);
/** Returns a Uint8Array to JS (copied). */
roma_error_t *roma_host_io_set_output_bytes(roma_host_io_t *io, const uint8_t *bytes,
                                            size_t len);
/** Makes the JS call throw an Error with this message instead of returning the output. */
roma_error_t *roma_host_io_add_error(roma_host_io_t *io, const char *message, size_t len);

/** The call's input and output, for the roma_host_io_* functions; valid (as every pointer
 *  read from it) until roma_host_call_finish. NULL for a NULL call. */
roma_host_io_t *roma_host_call_io(roma_host_call_t *call);
/** Ends the call with the output (or errors) set on its io, so the JS Promise resolves (or
 *  rejects), and frees it. Any thread; exactly once per call. NULL is ignored. */
void roma_host_call_finish(roma_host_call_t *call);

#ifdef __cplusplus
}
#endif

#endif /* ROMA_HOST_H */
