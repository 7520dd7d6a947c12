/*
 * roma: run untrusted JavaScript and WebAssembly in jailed V8 worker processes.
 *
 * The C API of libroma_c. Every handle is opaque and owned by whoever the function's comment
 * says; each has an explicit _delete function. Functions returning roma_error_t* return NULL
 * on success and an owned error (free it with roma_error_delete) on failure. A null pointer
 * or invalid UTF-8 passed in is an error return, and a panic inside roma becomes a
 * ROMA_ERROR_INTERNAL error. Strings go in as (pointer, length) pairs and come out
 * NUL-terminated with their length. Every handle may be used from any thread, but not
 * mutated from two at once; a service is safe to submit to from many threads at once.
 *
 * These headers are written by hand; crates/capi/tests/header_matches.rs checks them against
 * the Rust definitions.
 */
#ifndef ROMA_H
#define ROMA_H

#include <roma/error.h>
#include <roma/config.h>
#include <roma/host.h>
#include <roma/code.h>
#include <roma/request.h>
#include <roma/response.h>
#include <roma/service.h>

#endif /* ROMA_H */
