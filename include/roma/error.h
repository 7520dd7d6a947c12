/* roma_error_t: an owned error with a typed kind, a message and an optional JS stack. */
#ifndef ROMA_ERROR_H
#define ROMA_ERROR_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/** An error, owned by the caller that received it; free with roma_error_delete. */
typedef struct roma_error_t roma_error_t;

/** What went wrong: one of the ROMA_ERROR_* codes. */
typedef uint32_t roma_error_kind_t;

/** The request or code object is malformed, or a null pointer or invalid UTF-8 was passed. */
#define ROMA_ERROR_INVALID_ARGUMENT 1
/** The code failed to compile, or its top-level run threw. */
#define ROMA_ERROR_COMPILE 2
/** The handler threw or its promise rejected. */
#define ROMA_ERROR_EXECUTION 3
/** The handler name does not resolve to a function in the loaded version. */
#define ROMA_ERROR_HANDLER_NOT_FOUND 4
/** An input is not valid for the handler. */
#define ROMA_ERROR_BAD_INPUT 5
/** The request ran past its timeout. */
#define ROMA_ERROR_TIMEOUT 6
/** The request exhausted its heap or memory limit. */
#define ROMA_ERROR_OUT_OF_MEMORY 7
/** The requested version is not loaded. */
#define ROMA_ERROR_VERSION_NOT_FOUND 8
/** The worker process died while serving the request. */
#define ROMA_ERROR_WORKER_CRASHED 9
/** The queues are at capacity. */
#define ROMA_ERROR_QUEUE_FULL 10
/** The request was cancelled, or the service stopped before running it. */
#define ROMA_ERROR_CANCELLED 11
/** A request or response is larger than the configured payload limit. */
#define ROMA_ERROR_PAYLOAD_TOO_LARGE 12
/** A bug or an unexpected condition inside roma (a caught panic, for one). */
#define ROMA_ERROR_INTERNAL 13

/** The error's kind; ROMA_ERROR_INVALID_ARGUMENT for a null error. Thread-safe. */
roma_error_kind_t roma_error_kind(const roma_error_t *error);

/** The message, NUL-terminated, its length through len (may be NULL); borrowed from the
 *  error, valid until it is deleted. "" for a null error. */
const char *roma_error_message(const roma_error_t *error, size_t *len);

/** The JS stack of an error that has one (an exception thrown by the code), else NULL;
 *  borrowed as roma_error_message's. */
const char *roma_error_stack(const roma_error_t *error, size_t *len);

/** Frees an error. NULL is ignored. */
void roma_error_delete(roma_error_t *error);

#ifdef __cplusplus
}
#endif

#endif /* ROMA_ERROR_H */
