/* roma_code_object_t: a version of JavaScript or WebAssembly to load. */
#ifndef ROMA_CODE_H
#define ROMA_CODE_H

#include <roma/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A code object, owned by the caller (roma_service_load copies it). Not thread-safe. */
typedef struct roma_code_object_t roma_code_object_t;

/** A new, empty code object. Never NULL; the caller owns it. */
roma_code_object_t *roma_code_object_new(void);
/** Frees a code object. NULL is ignored. */
void roma_code_object_delete(roma_code_object_t *code);
/** The caller's id, echoed in the load's response (copied). */
roma_error_t *roma_code_object_set_id(roma_code_object_t *code, const char *s, size_t len);
/** The version the code is loaded as (copied). */
roma_error_t *roma_code_object_set_version(roma_code_object_t *code, const char *s, size_t len);
/** The JavaScript source (copied). */
roma_error_t *roma_code_object_set_js(roma_code_object_t *code, const char *s, size_t len);
/** The WebAssembly module (copied): standalone, or, after set_js, for the JS to instantiate. */
roma_error_t *roma_code_object_set_wasm(roma_code_object_t *code, const uint8_t *wasm,
                                        size_t len);
/** Sets a tag (copied). */
roma_error_t *roma_code_object_set_tag(roma_code_object_t *code, const char *key,
                                       size_t key_len, const char *value, size_t value_len);

#ifdef __cplusplus
}
#endif

#endif /* ROMA_CODE_H */
