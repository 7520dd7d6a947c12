/* roma_service_t: the running service; load, execute (with a callback, or blocking), batch
 * execute, cancel, stop.
 *
 * A callback never runs inside the submit call that asked for it. It runs on one of roma's
 * threads, except that a request cancelled while still queued is answered on the thread
 * calling roma_service_cancel, and requests still queued at stop on the thread calling
 * roma_service_stop or roma_service_delete: a callback must not take a lock that such a
 * caller holds. Every submit that
 * returns NULL gets exactly one callback, also when the service stops first (with
 * ROMA_ERROR_CANCELLED); one that returns an error gets none. Do not stop or delete the
 * service, or call roma_service_batch_execute, from a callback (roma_service_execute_blocking
 * is refused there). */
#ifndef ROMA_SERVICE_H
#define ROMA_SERVICE_H

#include <roma/config.h>
#include <roma/code.h>
#include <roma/request.h>
#include <roma/response.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A running service, owned by the caller; free with roma_service_delete. Thread-safe. */
typedef struct roma_service_t roma_service_t;
/** An accepted execution's token, owned by the caller; free with roma_execution_token_delete. */
typedef struct roma_execution_token_t roma_execution_token_t;

/** The callback of a load or an execution: exactly one of response and error is non-NULL, and
 *  the callback owns it. */
typedef void (*roma_callback_t)(void *user_data, roma_response_t *response, roma_error_t *error);
/** The callback of a batch; it owns batch. */
typedef void (*roma_batch_callback_t)(void *user_data, roma_batch_t *batch);

/** Starts a service and its workers (blocks until they are up). config is consumed whatever
 *  the outcome. On success *service is set. */
roma_error_t *roma_service_new(roma_config_t *config, roma_service_t **service);
/** Stops: queued requests and loads get ROMA_ERROR_CANCELLED, running ones finish, workers
 *  exit, later submits fail. Idempotent; blocks briefly. */
roma_error_t *roma_service_stop(const roma_service_t *service);
/** Stops and frees the service. NULL is ignored. */
void roma_service_delete(roma_service_t *service);
/** Loads code (copied) into every worker; callback runs when all have it. Does not block. */
roma_error_t *roma_service_load(const roma_service_t *service, const roma_code_object_t *code,
                                roma_callback_t callback, void *user_data);
/** Runs a request (copied). On acceptance *token (if token is non-NULL) is set to an owned
 *  token. Refused at once with ROMA_ERROR_QUEUE_FULL when the queues are full. Does not
 *  block. */
roma_error_t *roma_service_execute(const roma_service_t *service, const roma_request_t *request,
                                   roma_callback_t callback, void *user_data,
                                   roma_execution_token_t **token);
/** Runs a request (copied) and waits on the calling thread for its answer: for room while the
 *  queues are full (up to the queue wait timeout), then for the answer (bounded by the
 *  request's timeout). When the worker it would go to is idle and nothing is queued, the
 *  calling thread runs the request itself (the direct hand-off: no roma thread is woken).
 *  On success *response is set to an owned response (free with roma_response_delete); on
 *  failure the error is returned and *response is untouched. No callback. Thread-safe.
 *  Refused with ROMA_ERROR_INVALID_ARGUMENT on the service's own threads (in its callback, or
 *  a host function run inline), where the thread it would block may be the one to answer. */
roma_error_t *roma_service_execute_blocking(const roma_service_t *service,
                                            const roma_request_t *request,
                                            roma_response_t **response);
/** Runs n requests (copied) as Roma's BatchExecute: enqueued in order as room frees (blocking
 *  while the queues are full, up to the queue wait timeout); callback runs once with one
 *  result per request, in order. */
roma_error_t *roma_service_batch_execute(const roma_service_t *service,
                                         const roma_request_t *const *requests, size_t n,
                                         roma_batch_callback_t callback, void *user_data);
/** Cancels an accepted execution (answered ROMA_ERROR_CANCELLED). False if it had finished. */
bool roma_service_cancel(const roma_service_t *service, const roma_execution_token_t *token);
/** Frees a token. NULL is ignored. */
void roma_execution_token_delete(roma_execution_token_t *token);

#ifdef __cplusplus
}
#endif

#endif /* ROMA_SERVICE_H */
