// JS with WASM: the CLI hands examples/add.wasm to this code as the global Uint8Array
// `addModule`; roma compiled it once at load, and `new WebAssembly.Module(addModule)` returns
// that compiled module instead of compiling again.
//
//   roma run examples/js_wasm.js --wasm-bin examples/add.wasm --wasm-array-name addModule \
//       --input 1 --input 2                                             # prints 3
const instance = new WebAssembly.Instance(new WebAssembly.Module(addModule));

function Handler(a, b) {
  return instance.exports.add(a, b);
}
