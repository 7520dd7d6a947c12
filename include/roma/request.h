/* roma_request_t: an invocation of a loaded version's handler. */
#ifndef ROMA_REQUEST_H
#define ROMA_REQUEST_H

#include <roma/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A request, owned by the caller (executing copies it, so it may run many times). Not
 *  thread-safe. */
typedef struct roma_request_t roma_request_t;

/** A new request with no version, handler or input. Never NULL; the caller owns it. */
roma_request_t *roma_request_new(void);
/** Frees a request. NULL is ignored. */
void roma_request_delete(roma_request_t *request);
/** The caller's id, echoed in the response (copied). */
roma_error_t *roma_request_set_id(roma_request_t *request, const char *s, size_t len);
/** The loaded version to run (copied). */
roma_error_t *roma_request_set_version(roma_request_t *request, const char *s, size_t len);
/** The handler, by dotted path (copied). */
roma_error_t *roma_request_set_handler(roma_request_t *request, const char *s, size_t len);
/** Appends one argument: JSON text (copied). */
roma_error_t *roma_request_add_input(roma_request_t *request, const char *s, size_t len);
/** Sets a tag (copied), such as Roma's TimeoutDuration ("100ms"). */
roma_error_t *roma_request_set_tag(roma_request_t *request, const char *key, size_t key_len,
                                   const char *value, size_t value_len);
/** The request's timeout in ms (more than 0). */
roma_error_t *roma_request_set_timeout_ms(roma_request_t *request, uint64_t timeout_ms);
/** Roma's treat_input_as_byte_str. */
roma_error_t *roma_request_set_treat_input_as_byte_str(roma_request_t *request, bool on);
/** Console messages below this ROMA_LOG_* level are dropped inside the sandbox. */
roma_error_t *roma_request_set_min_log_level(roma_request_t *request, uint32_t level);
/** The metadata pointer this request's host-function calls and log lines receive, and only
 *  theirs. roma never reads it; keep it valid until the request's callback has run. */
roma_error_t *roma_request_set_metadata(roma_request_t *request, void *metadata);

/** Asks for a V8 CPU profile of the handler call (roma_response_profiler_output); the
 *  service needs roma_config_set_enable_profilers, else the request fails with
 *  ROMA_ERROR_INVALID_ARGUMENT. */
roma_error_t *roma_request_set_profile(roma_request_t *request, bool on);

#ifdef __cplusplus
}
#endif

#endif /* ROMA_REQUEST_H */
