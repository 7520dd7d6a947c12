// Hostile handlers for crates/roma/tests/hostile.rs. Each tries one way to hurt the worker, the
// host or the next request; the Rust test next to each name says what must happen instead.

// --- Infinite loops: each must end with `timeout`. -------------------------------------------
function LoopSync() { while (true) {} }
async function LoopInPromiseChain() {
  await null;
  return Promise.resolve(1).then(() => { while (true) {} });
}
// A microtask that queues itself forever, behind a promise that never settles.
function LoopInMicrotasks() {
  const again = () => { Promise.resolve().then(again); };
  again();
  return new Promise(() => {});
}
// The loop hides in a getter that only JSON.stringify of the result calls.
function LoopInResultGetter() { return { ok: 1, get trap() { while (true) {} } }; }

// --- Recursion: `execution` with a RangeError. -----------------------------------------------
function DeepRecursion() { function r(n) { return r(n + 1) + 1; } return r(0); }
// A result nested so deeply that serialising it overflows the stack.
function DeepResult() { let a = []; for (let i = 0; i < 1e6; i++) a = [a]; return a; }

// --- Heap bombs (the test runs them under a 15 MB heap). -------------------------------------
function BombArrays() { const keep = []; while (true) keep.push(new Array(10000).fill({ a: 1 })); }
function BombStrings() { const keep = []; for (let i = 0; ; i++) keep.push(('x' + i).repeat(1000)); }
function BombArrayBuffers() { const keep = []; while (true) keep.push(new ArrayBuffer(1 << 20)); }
function BombStringDoubling() { let s = 'xy'; while (true) s = s + s; }
function BombRepeat() { return 'ab'.repeat(2 ** 28).length; }
function BombRepeatFlat() {
  const keep = [];
  for (let i = 0; ; i++) keep.push(String(i % 10).repeat(1 << 22).toLowerCase());
}
// One allocation far larger than the whole heap (256 MB string, 128 MB double array).
function BombOneHugeString() { return 'x'.repeat(2 ** 28).toLowerCase().length; }
function BombOneHugeArray() { return new Array(2 ** 24).fill(1.5).length; }

// --- Results that JSON cannot carry, or that lie about themselves. ---------------------------
function ReturnProxy() { return new Proxy({ a: 1 }, {}); }
function ReturnTrappingProxy() { return new Proxy({}, { ownKeys() { throw new Error('trap'); } }); }
function ReturnCycle() { const o = {}; o.self = o; return o; }
function ReturnBigInt() { return 10n; }
function ReturnSymbol() { return Symbol('s'); }
function ReturnUndefined() { return undefined; }
function ReturnFunction() { return function () {}; }
function ReturnBig() { return 'x'.repeat(4 << 20); }

// --- Throwing things that are not Errors: `execution` with the value in the message. ---------
function ThrowString() { throw 'a string'; }
function ThrowNumber() { throw 42; }
function ThrowNull() { throw null; }
function ThrowObject() { throw { code: 7 }; }
function ThrowUndefined() { throw undefined; }
async function RejectString() { throw 'rejected string'; }

// --- Thrown values whose inspection never ends: the engine formats them after the throw. ------
function ThrowStackLoop() {
  const e = new Error('x');
  Object.defineProperty(e, 'stack', { get() { while (true) {} } });
  throw e;
}
function ThrowNameLoop() {
  const e = new Error('x');
  Object.defineProperty(e, 'name', { get() { while (true) {} } });
  throw e;
}
async function RejectMessageLoop() {
  const e = new Error('x');
  Object.defineProperty(e, 'message', { get() { while (true) {} } });
  throw e;
}
function ThrowToJSONLoop() { throw { toJSON() { while (true) {} } }; }
function ThrowProxyLoop() { throw new Proxy({}, { get() { while (true) {} } }); }
function LoopyError() {
  const e = new Error('x');
  Object.defineProperty(e, 'name', { get() { while (true) {} } });
  return e;
}
function ResultGetterThrowsLoopy() { return { get a() { throw LoopyError(); } }; }
function ResultProxyKeysThrowLoopy() { return new Proxy({}, { ownKeys() { throw LoopyError(); } }); }
async function RejectProxyLoop() { throw new Proxy({}, { get() { while (true) {} } }); }
function LogProxyLoop() { console.log(new Proxy({}, { get() { while (true) {} } })); return 'logged'; }
function ThrowToStringLoop() { throw { toString() { while (true) {} } }; }
function ThrowToStringThrows() { throw { toString() { throw new Error('inner'); } }; }

// --- Hostile inputs (the inputs come from the caller's users, not from the code owner). -------
function Id(x) { return x; }
function Depth(x) { let d = 0; while (Array.isArray(x)) { x = x[0]; d++; } return d; }
function ProtoInput(x) { return [({}).polluted === undefined, Object.getPrototypeOf(x) === Object.prototype, Object.keys(x)]; }

// --- State that must not survive into the next call. -----------------------------------------
let counter = 0;
function Count() { counter += 1; return counter; }
function Pollute() {
  Object.prototype.polluted = 'yes';
  Array.prototype.push = function () { return 'hijacked'; };
  Object.defineProperty(Object.prototype, 'toJSON', { value: () => 'hijacked', configurable: true });
  JSON.parse = () => 'hijacked';
  globalThis.leak = 42;
  counter = 1000;
  return 'polluted';
}
function Inspect() {
  const o = {};
  return JSON.stringify({
    polluted: o.polluted === undefined,
    push: [].push(1) === 1,
    toJSON: !('toJSON' in o),
    parse: JSON.parse('[1]')[0] === 1,
    leak: typeof leak === 'undefined',
    counter,
  });
}

// --- Microtasks left behind by a synchronous handler. ----------------------------------------
function LeaveMicrotask() { Promise.resolve().then(() => { echo('left behind'); }); return 'done'; }
function LeaveMicrotaskLoop() { const again = () => { Promise.resolve().then(again); }; again(); return 'done'; }
async function AsyncHello() { await null; return 'async hello'; }

// --- A host function called with hostile arguments. ------------------------------------------
function CallEcho(i) {
  const cycle = {}; cycle.self = cycle;
  const cases = [
    () => echo(cycle),
    () => echo([1, {}, cycle]),
    () => echo(new Map([[cycle, cycle]])),
    () => echo(42),
    () => echo(() => 1),
    () => echo(Symbol('s')),
    () => echo(10n),
    () => echo(null),
    () => echo('a', 'b', 'c'),
    () => echo(new Proxy({}, {})),
    () => echo(new Proxy([], {})),
    () => echo(new Proxy({}, { get() { throw new Error('trap'); }, ownKeys() { throw new Error('keys'); } })),
    () => echo({ get a() { throw new Error('getter'); } }),
    // These three are valid and reach the host.
    () => echo('y'.repeat(10 << 20)),
    () => echo(new Uint8Array(5 << 20)),
    () => echo(),
  ];
  try { return 'returned ' + String(cases[i]()); } catch (e) { return 'threw ' + (e && e.name) + ': ' + (e && e.message); }
}

// --- Console abuse: many lines, and one line of 10 MB. ---------------------------------------
function LogFlood() {
  for (let i = 0; i < 10000; i++) console.log('line ' + i);
  console.log('z'.repeat(10 << 20));
  return 'logged';
}

// --- Asynchronous host functions, abused. ---------------------------------------------------
// Fire and forget: the call's reply comes after the request is over.
function FireAndForget() { later('stale'); return 'fired'; }
async function AwaitLater(key) { return await later(key); }
// Far more outstanding calls than a request may have.
async function FanOutBomb() {
  let threw = 0;
  const promises = [];
  const thrown = new Set();
  for (let i = 0; i < 10000; i++) {
    try { promises.push(later('k' + i)); } catch (e) { threw++; thrown.add(e.message); }
  }
  const settled = await Promise.allSettled(promises);
  const ok = settled.filter((s) => s.status === 'fulfilled').length;
  const reasons = new Set(settled.filter((s) => s.status === 'rejected').map((s) => s.reason.message));
  return { ok, rejected: settled.length - ok, threw, reasons: [...reasons], thrown: [...thrown] };
}
function AsyncHostileArgs() {
  const cycle = {}; cycle.self = cycle;
  try { later(cycle); return 'accepted'; } catch (e) { return e.name; }
}

// --- Ways out of the sandbox that must not exist. --------------------------------------------
function Globals() {
  const names = ['process', 'require', 'module', 'exports', 'fetch', 'Buffer', 'setTimeout',
    'setInterval', 'setImmediate', 'XMLHttpRequest', 'WebSocket', 'Worker', 'SharedWorker',
    'importScripts', 'Deno', 'Bun', 'queueMicrotask', 'global'];
  const out = {};
  for (const n of names) out[n] = typeof globalThis[n];
  out.viaFunction = Function('return typeof process')();
  try { globalThis.constructor.constructor('return process')(); out.viaConstructor = 'reached'; }
  catch (e) { out.viaConstructor = e.name; }
  return out;
}
async function DynamicImport() {
  const results = [];
  for (const spec of ['fs', 'node:child_process', 'data:text/javascript,export default 1', './x.js']) {
    try { await import(spec); results.push('imported ' + spec); }
    catch (e) { results.push('rejected'); }
  }
  return results;
}
function AtomicsWaitNotShared() {
  try { Atomics.wait(new Int32Array(4), 0, 0, 10); return 'waited'; } catch (e) { return e.name; }
}
function AtomicsWaitShort() { return Atomics.wait(new Int32Array(new SharedArrayBuffer(16)), 0, 0, 5); }
function AtomicsWaitForever() { return Atomics.wait(new Int32Array(new SharedArrayBuffer(16)), 0, 0); }
// A SharedArrayBuffer timer needs a second thread to count; there is none to start.
function SharedTimer() {
  const sab = new SharedArrayBuffer(8);
  const out = { sab: typeof SharedArrayBuffer, worker: typeof Worker };
  try { new Worker('data:,'); out.started = true; } catch (e) { out.started = e.name; }
  out.counter = new Int32Array(sab)[0];
  return out;
}
