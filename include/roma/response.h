/* roma_response_t and roma_batch_t: the answers callbacks receive. */
#ifndef ROMA_RESPONSE_H
#define ROMA_RESPONSE_H

#include <roma/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A response, owned by the callback that received it; free with roma_response_delete. */
typedef struct roma_response_t roma_response_t;
/** A batch's results, owned by the batch callback; free with roma_batch_delete. */
typedef struct roma_batch_t roma_batch_t;

/** The request's id, NUL-terminated, its length through len (may be NULL); borrowed. */
const char *roma_response_id(const roma_response_t *response, size_t *len);
/** The handler's result: JSON text, or the raw string in byte-string mode; borrowed. */
const char *roma_response_resp(const roma_response_t *response, size_t *len);
/** How many metrics the response has. */
size_t roma_response_metrics_len(const roma_response_t *response);
/** The metric at index (in name order, names like "roma.execution.duration_ms"): its name
 *  (borrowed) and value. False when out of range. */
bool roma_response_metric(const roma_response_t *response, size_t index, const char **name,
                          double *value);
/** A profiled request's V8 CPU profile (Chrome DevTools .cpuprofile JSON, at most 1 MiB),
 *  NUL-terminated, its length through len (may be NULL); empty when not profiled. Made inside
 *  the sandbox: untrusted text. Valid until the response is deleted. */
const char *roma_response_profiler_output(const roma_response_t *response, size_t *len);
/** Frees a response. NULL is ignored. */
void roma_response_delete(roma_response_t *response);

/** How many results the batch holds: one per request submitted. */
size_t roma_batch_len(const roma_batch_t *batch);
/** The result at index: exactly one of *response and *error is set non-NULL, both borrowed
 *  from the batch. False when out of range. */
bool roma_batch_get(const roma_batch_t *batch, size_t index, const roma_response_t **response,
                    const roma_error_t **error);
/** Frees a batch and its results. NULL is ignored. */
void roma_batch_delete(roma_batch_t *batch);

#ifdef __cplusplus
}
#endif

#endif /* ROMA_RESPONSE_H */
