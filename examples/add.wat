;; The module of examples/js_wasm.js: `add(a, b) -> a + b` on i32.
;;
;;   roma run examples/js_wasm.js --wasm-bin examples/add.wasm --wasm-array-name addModule \
;;       --input 1 --input 2                                             # prints 3
;;
;; add.wasm next to this file is this text assembled (the `wat` crate; the CLI tests check
;; that the two agree: `ROMA_BLESS=1 cargo test -p roma-cli --test cli` rewrites the .wasm).
(module
  (func (export "add") (param i32 i32) (result i32)
    local.get 0
    local.get 1
    i32.add))
