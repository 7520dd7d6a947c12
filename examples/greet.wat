;; Standalone WASM for roma: `greet(name) -> "Hello, " + name`, with roma's string ABI
;; (docs/wasm-abi.md). It also logs through the `roma.log` import, which the CLI prints on
;; stderr as `[info] greet: NAME`.
;;
;;   roma run examples/greet.wasm --handler greet --input '"roma"'      # prints "Hello, roma"
;;
;; greet.wasm next to this file is this text assembled (the `wat` crate; the CLI tests check
;; that the two agree: `ROMA_BLESS=1 cargo test -p roma-cli --test cli` rewrites the .wasm).
(module
  (import "roma" "log" (func $log (param $level i32) (param $ptr i32) (param $len i32)))
  (memory (export "memory") 1)
  ;; The bump allocator starts at 1024; roma treats address 0 as a failed allocation.
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 16) "Hello, ")
  (data (i32.const 32) "greet: ")
  (func $alloc (export "roma_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    ;; advance by n, rounded up to 8
    (global.set $heap
      (i32.and (i32.add (i32.add (global.get $heap) (local.get $n)) (i32.const 7))
               (i32.const -8)))
    (local.get $p))
  ;; $d points to a string descriptor: u32 ptr, u32 len. Returns a new descriptor.
  (func (export "greet") (param $d i32) (result i32)
    (local $src i32) (local $len i32) (local $out i32) (local $desc i32) (local $msg i32)
    (local.set $src (i32.load (local.get $d)))
    (local.set $len (i32.load offset=4 (local.get $d)))
    ;; log "greet: NAME" at level 1 (info)
    (local.set $msg (call $alloc (i32.add (local.get $len) (i32.const 7))))
    (memory.copy (local.get $msg) (i32.const 32) (i32.const 7))
    (memory.copy (i32.add (local.get $msg) (i32.const 7)) (local.get $src) (local.get $len))
    (call $log (i32.const 1) (local.get $msg) (i32.add (local.get $len) (i32.const 7)))
    ;; the answer: "Hello, " + NAME
    (local.set $out (call $alloc (i32.add (local.get $len) (i32.const 7))))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 7))
    (memory.copy (i32.add (local.get $out) (i32.const 7)) (local.get $src) (local.get $len))
    (local.set $desc (call $alloc (i32.const 8)))
    (i32.store (local.get $desc) (local.get $out))
    (i32.store offset=4 (local.get $desc) (i32.add (local.get $len) (i32.const 7)))
    (local.get $desc)))
