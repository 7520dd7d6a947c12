// roma_v8_shim.cc: the narrow C ABI between roma-v8 (Rust) and V8 14.6, the V8 inside the
// pinned official Node.js build (crates/v8/node_pin.rs).
//
// Why C++ at all: the `v8` crate downloads a prebuilt V8 at build time, which an offline build
// cannot do, so roma binds the V8 that the `node` executable exports (as it does for native
// addons); the shared library carrying this shim runs inside that executable. V8's API is C++
// with handle scopes; rather than mirror it handle by handle, this shim exposes a handful of
// coarse operations (platform, isolates from snapshots, contexts, calls, console callbacks,
// limits) as flat `extern "C"` functions, and the Rust side keeps ownership, caching and
// timeouts.
//
// Rules every entry point follows:
// - No C++ exception and no Rust panic unwinds across this boundary: every entry point is
//   `noexcept` and reports failure through its return value and a RomaOut record.
// - Strings handed to Rust are malloc'd and released with roma_v8_free; strings from Rust are
//   (pointer, length) pairs valid for the duration of the call.
// - A RomaVersion (one loaded version: an isolate plus what it was compiled from) is used by one
//   thread at a time; only roma_v8_isolate_terminate may be called from another thread.
// - The code compiles against the pinned build's headers (C++20) only: it runs inside that
//   build's V8, whose object layout those headers describe.

#include <libplatform/libplatform.h>
#include <v8-profiler.h>
#include <v8.h>

#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

// Result codes, version kinds, host-function wire kinds and the extern "C" records, generated
// by the build script from crates/v8/src/abi.rs and roma-udf's wire module.
#include "roma_abi.h"

namespace {

using v8::Array;
using v8::ArrayBuffer;
using v8::Context;
using v8::EscapableHandleScope;
using v8::Function;
using v8::FunctionCallbackInfo;
using v8::FunctionTemplate;
using v8::Global;
using v8::HandleScope;
using v8::Integer;
using v8::Isolate;
using v8::Local;
using v8::MaybeLocal;
using v8::Object;
using v8::Promise;
using v8::Script;
using v8::ScriptCompiler;
using v8::String;
using v8::TryCatch;
using v8::Uint8Array;
using v8::UnboundScript;
using v8::Value;

double NowMs() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

char* DupBytes(const char* data, size_t len) {
  char* out = static_cast<char*>(std::malloc(len + 1));
  if (out == nullptr) return nullptr;
  if (len) std::memcpy(out, data, len);
  out[len] = 0;
  return out;
}

char* DupString(const std::string& s) { return DupBytes(s.data(), s.size()); }

// An ArrayBuffer allocator that counts live bytes and refuses past a cap, so `new
// ArrayBuffer(1e10)` fails the invocation with out-of-memory instead of taking the process.
class CountingAllocator final : public ArrayBuffer::Allocator {
 public:
  explicit CountingAllocator(size_t cap) : cap_(cap) {}
  void* Allocate(size_t length) override {
    if (!Reserve(length)) return nullptr;
    void* p = std::calloc(length ? length : 1, 1);
    if (p == nullptr) Release(length);
    return p;
  }
  void* AllocateUninitialized(size_t length) override {
    if (!Reserve(length)) return nullptr;
    void* p = std::malloc(length ? length : 1);
    if (p == nullptr) Release(length);
    return p;
  }
  void Free(void* data, size_t length) override {
    std::free(data);
    Release(length);
  }
  bool exceeded() const { return exceeded_.load(); }
  void clear_exceeded() { exceeded_.store(false); }

 private:
  bool Reserve(size_t length) {
    size_t cur = used_.load();
    do {
      if (length > cap_ || cur > cap_ - length) {
        exceeded_.store(true);
        return false;
      }
    } while (!used_.compare_exchange_weak(cur, cur + length));
    return true;
  }
  void Release(size_t length) { used_.fetch_sub(length); }
  const size_t cap_;
  std::atomic<size_t> used_{0};
  std::atomic<bool> exceeded_{false};
};

struct ExecState {
  int32_t min_log_level = 1;
  RomaLogFn log_fn = nullptr;
  void* log_user = nullptr;
  RomaBindingFn binding_fn = nullptr;
  void* binding_user = nullptr;
  RomaAwaitFn await_fn = nullptr;
  // Promises of asynchronous host calls still waiting for their reply, by call id.
  std::vector<std::pair<uint64_t, Global<v8::Promise::Resolver>>> pending;
  double time_origin_ms = 0;
};

}  // namespace

// One loaded version: an isolate and what it runs. Opaque to Rust.
struct RomaVersion {
  int32_t kind = KIND_SNAPSHOT_JS;
  RomaLimits limits{};
  Isolate* isolate = nullptr;
  std::unique_ptr<CountingAllocator> allocator;
  std::string blob;  // snapshot bytes (kind 0)
  v8::StartupData startup{nullptr, 0};
  std::string source;  // JS source (kind 1), for rebuilds
  std::string array_name;
  std::vector<uint8_t> wasm;  // wasm_bin (kind 1) or the module (kind 2)
  std::vector<std::string> binding_names;
  Global<UnboundScript> script;      // kind 1: the user's script
  Global<UnboundScript> glue;        // kind 1: the WebAssembly patch; kind 2: the driver
  std::shared_ptr<v8::CompiledWasmModule> compiled;  // kinds 1 (if wasm) and 2
  Global<Context> prewarmed;
  // The prepared context's own microtask queue (every invocation's context has one; see
  // Execute). Destroyed before the isolate is disposed.
  std::unique_ptr<v8::MicrotaskQueue> prewarmed_queue;
  Global<Context> raw_context;  // benchmark baseline only
  std::atomic<bool> oom{false};
  ExecState* current = nullptr;
  uint64_t wasm_compiles = 0;
  uint64_t wasm_cache_hits = 0;
  // A snapshot load's top level read `WebAssembly` (see WasmProbeGetter).
  bool wasm_probed = false;
};

namespace {

std::unique_ptr<v8::Platform> g_platform;
std::atomic<int> g_initialized{0};

// ---- native callbacks (also external references of every snapshot) ------------------------

RomaVersion* VersionOf(Isolate* isolate) {
  return static_cast<RomaVersion*>(isolate->GetData(0));
}

std::string ToUtf8(Isolate* isolate, Local<Value> v) {
  String::Utf8Value s(isolate, v);
  return *s ? std::string(*s, s.length()) : std::string();
}

// Formats one console argument: strings as they are, objects as JSON when they can be.
std::string FormatArg(Isolate* isolate, Local<Context> ctx, Local<Value> v) {
  if (v->IsString()) return ToUtf8(isolate, v);
  if (v->IsObject() && !v->IsFunction() && !v->IsNativeError()) {
    TryCatch tc(isolate);
    Local<String> json;
    if (v8::JSON::Stringify(ctx, v).ToLocal(&json)) return ToUtf8(isolate, json);
  }
  TryCatch tc(isolate);
  Local<String> str;
  if (v->ToString(ctx).ToLocal(&str)) return ToUtf8(isolate, str);
  return "<unprintable>";
}

void ConsoleCallback(const FunctionCallbackInfo<Value>& info) {
  Isolate* isolate = info.GetIsolate();
  RomaVersion* version = VersionOf(isolate);
  if (version == nullptr || version->current == nullptr) return;
  ExecState* st = version->current;
  int32_t level = info.Data()->Int32Value(isolate->GetCurrentContext()).FromMaybe(1);
  if (level < st->min_log_level || st->log_fn == nullptr) return;
  HandleScope hs(isolate);
  Local<Context> ctx = isolate->GetCurrentContext();
  std::string msg;
  for (int i = 0; i < info.Length(); i++) {
    if (i) msg.push_back(' ');
    msg += FormatArg(isolate, ctx, info[i]);
    if (msg.size() > (1u << 20)) {  // bound one log line at 1 MiB
      msg.resize(1u << 20);
      break;
    }
  }
  st->log_fn(st->log_user, level, msg.data(), msg.size());
}

// performance.now(): milliseconds since the invocation started, coarsened to 100 us so the
// clock is no sharper a timer for side channels than a browser's without isolation.
void PerformanceNowCallback(const FunctionCallbackInfo<Value>& info) {
  Isolate* isolate = info.GetIsolate();
  RomaVersion* version = VersionOf(isolate);
  double origin = (version && version->current) ? version->current->time_origin_ms : 0;
  double t = NowMs() - origin;
  t = static_cast<double>(static_cast<int64_t>(t * 10.0)) / 10.0;
  info.GetReturnValue().Set(t);
}

// Called by the WebAssembly glue when it hands out the precompiled module.
void WasmCacheHitCallback(const FunctionCallbackInfo<Value>& info) {
  RomaVersion* version = VersionOf(info.GetIsolate());
  if (version) version->wasm_cache_hits++;
}


// ---- host functions (bindings) ------------------------------------------------------------
//
// Argument encoding (to Rust), little-endian: a RomaArgKind byte, then
//   NONE | STRING: u32 len, bytes | LIST: u32 n, n x (u32 len, bytes)
//   | MAP: u32 n, n x (key, value) as strings | BYTES: u32 len, bytes | JSON: as string.
// Reply encoding (from Rust): a RomaReplyKind byte, then
//   UNDEFINED | STRING | LIST | MAP | BYTES (as above) | ERROR: message string
//   | TYPE_ERROR: message string | PENDING: the call id as two u32, low first.
// roma-udf's wire module defines both (and the kind bytes, through roma_abi.h).

MaybeLocal<String> NewString(Isolate* isolate, const char* p, size_t len);

constexpr size_t kMaxBindingArgBytes = size_t{64} << 20;
constexpr uint32_t kMaxBindingItems = 1u << 20;

void PutU32(std::string* out, uint32_t n) {
  for (int i = 0; i < 4; i++) out->push_back(static_cast<char>((n >> (8 * i)) & 0xff));
}

void PutStr(std::string* out, const std::string& s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

void ThrowType(Isolate* isolate, const std::string& msg) {
  isolate->ThrowException(v8::Exception::TypeError(
      String::NewFromUtf8(isolate, msg.c_str(), v8::NewStringType::kNormal,
                          static_cast<int>(std::min<size_t>(msg.size(), 1u << 20)))
          .ToLocalChecked()));
}

void ThrowError(Isolate* isolate, const std::string& msg) {
  isolate->ThrowException(v8::Exception::Error(
      String::NewFromUtf8(isolate, msg.c_str(), v8::NewStringType::kNormal,
                          static_cast<int>(std::min<size_t>(msg.size(), 1u << 20)))
          .ToLocalChecked()));
}

// Encodes a binding's argument. Returns false with a JS exception thrown on a wrong type.
bool EncodeBindingArg(Isolate* isolate, Local<Context> ctx, const std::string& name,
                      Local<Value> arg, std::string* out) {
  const std::string kinds =
      "a string, an array of strings, a Map of strings to strings, a Uint8Array or a plain "
      "object";
  if (arg->IsUndefined()) {
    out->push_back(ROMA_ARG_NONE);
    return true;
  }
  if (arg->IsString()) {
    out->push_back(ROMA_ARG_STRING);
    PutStr(out, ToUtf8(isolate, arg));
  } else if (arg->IsProxy()) {
    ThrowType(isolate, "host function `" + name + "` does not take a Proxy; pass " + kinds);
    return false;
  } else if (arg->IsArray()) {
    Local<Array> a = arg.As<Array>();
    uint32_t n = a->Length();
    if (n > kMaxBindingItems) {
      ThrowType(isolate, "host function `" + name + "`: too many list items");
      return false;
    }
    out->push_back(ROMA_ARG_LIST);
    PutU32(out, n);
    for (uint32_t i = 0; i < n; i++) {
      Local<Value> item;
      if (!a->Get(ctx, i).ToLocal(&item)) return false;
      if (!item->IsString()) {
        ThrowType(isolate, "host function `" + name + "`: list item " + std::to_string(i) +
                               " is not a string");
        return false;
      }
      PutStr(out, ToUtf8(isolate, item));
      if (out->size() > kMaxBindingArgBytes) break;
    }
  } else if (arg->IsMap()) {
    Local<Array> pairs = arg.As<v8::Map>()->AsArray();
    uint32_t n = pairs->Length() / 2;
    if (n > kMaxBindingItems) {
      ThrowType(isolate, "host function `" + name + "`: too many map entries");
      return false;
    }
    out->push_back(ROMA_ARG_MAP);
    PutU32(out, n);
    for (uint32_t i = 0; i < 2 * n; i++) {
      Local<Value> item;
      if (!pairs->Get(ctx, i).ToLocal(&item)) return false;
      if (!item->IsString()) {
        ThrowType(isolate, "host function `" + name + "`: map keys and values must be strings");
        return false;
      }
      PutStr(out, ToUtf8(isolate, item));
      if (out->size() > kMaxBindingArgBytes) break;
    }
  } else if (arg->IsUint8Array()) {
    Local<v8::Uint8Array> u = arg.As<v8::Uint8Array>();
    size_t n = u->ByteLength();
    if (n > kMaxBindingArgBytes) {
      ThrowType(isolate, "host function `" + name + "`: byte array too large");
      return false;
    }
    out->push_back(ROMA_ARG_BYTES);
    PutU32(out, static_cast<uint32_t>(n));
    size_t at = out->size();
    out->resize(at + n);
    u->CopyContents(&(*out)[at], n);
  } else if (arg->IsObject() && !arg->IsFunction() && !arg->IsSymbol()) {
    Local<String> json;
    bool ok = false;
    {
      TryCatch tc(isolate);
      ok = v8::JSON::Stringify(ctx, arg).ToLocal(&json);
      if (!ok && (tc.HasTerminated() || isolate->IsExecutionTerminating())) {
        tc.ReThrow();
        return false;
      }
    }
    // Thrown after the TryCatch above is gone, so that JS sees it.
    if (!ok) {
      ThrowType(isolate, "host function `" + name +
                             "`: the object argument cannot be turned into JSON (a cycle?)");
      return false;
    }
    out->push_back(ROMA_ARG_JSON);
    PutStr(out, ToUtf8(isolate, json));
  } else {
    ThrowType(isolate, "host function `" + name + "` takes " + kinds);
    return false;
  }
  if (out->size() > kMaxBindingArgBytes) {
    ThrowType(isolate, "host function `" + name + "`: argument larger than 64 MiB");
    return false;
  }
  return true;
}

// A bounds-checked reader over a reply.
struct ReplyReader {
  const uint8_t* p;
  size_t left;
  bool U32(uint32_t* n) {
    if (left < 4) return false;
    *n = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
    p += 4;
    left -= 4;
    return true;
  }
  bool Bytes(const uint8_t** b, uint32_t* n) {
    if (!U32(n) || *n > left) return false;
    *b = p;
    p += *n;
    left -= *n;
    return true;
  }
};

bool ReplyString(Isolate* isolate, ReplyReader* r, Local<String>* s) {
  const uint8_t* b;
  uint32_t n;
  if (!r->Bytes(&b, &n)) return false;
  return NewString(isolate, reinterpret_cast<const char*>(b), n).ToLocal(s);
}

// Turns a reply into a JS value. Returns false with a JS exception thrown for an error reply or
// a malformed one. ROMA_REPLY_PENDING (an asynchronous call was started) gives the promise its
// reply will settle; it is only valid as the immediate reply of a call.
bool DecodeReplyValue(Isolate* isolate, Local<Context> ctx, const std::string& name,
                      const uint8_t* reply, size_t len, bool allow_pending, Local<Value>* value) {
  auto malformed = [&] {
    if (!isolate->IsExecutionTerminating())
      ThrowError(isolate, "host function `" + name + "` returned a malformed reply");
    return false;
  };
  if (reply == nullptr || len == 0) return malformed();
  ReplyReader r{reply + 1, len - 1};
  switch (reply[0]) {
    case ROMA_REPLY_UNDEFINED:
      *value = v8::Undefined(isolate);
      return true;
    case ROMA_REPLY_STRING: {
      Local<String> s;
      if (!ReplyString(isolate, &r, &s)) return malformed();
      *value = s;
      return true;
    }
    case ROMA_REPLY_LIST: {
      uint32_t n;
      if (!r.U32(&n) || n > r.left / 4) return malformed();
      Local<Array> a = Array::New(isolate, static_cast<int>(n));
      for (uint32_t i = 0; i < n; i++) {
        Local<String> s;
        if (!ReplyString(isolate, &r, &s) || a->Set(ctx, i, s).IsNothing()) return malformed();
      }
      *value = a;
      return true;
    }
    case ROMA_REPLY_MAP: {
      uint32_t n;
      if (!r.U32(&n) || n > r.left / 8) return malformed();
      Local<v8::Map> m = v8::Map::New(isolate);
      for (uint32_t i = 0; i < n; i++) {
        Local<String> k, val;
        if (!ReplyString(isolate, &r, &k) || !ReplyString(isolate, &r, &val)) return malformed();
        if (!m->Set(ctx, k, val).ToLocal(&m)) return false;
      }
      *value = m;
      return true;
    }
    case ROMA_REPLY_BYTES: {
      const uint8_t* b;
      uint32_t n;
      if (!r.Bytes(&b, &n)) return malformed();
      std::unique_ptr<v8::BackingStore> store = v8::ArrayBuffer::NewBackingStore(isolate, n);
      if (!store || (n > 0 && store->Data() == nullptr)) {
        ThrowError(isolate, "host function `" + name + "`: reply too large for the heap");
        return false;
      }
      if (n > 0) std::memcpy(store->Data(), b, n);
      Local<v8::ArrayBuffer> ab = v8::ArrayBuffer::New(isolate, std::move(store));
      *value = v8::Uint8Array::New(ab, 0, n);
      return true;
    }
    case ROMA_REPLY_ERROR:
    case ROMA_REPLY_TYPE_ERROR: {
      const uint8_t* b;
      uint32_t n;
      if (!r.Bytes(&b, &n)) return malformed();
      std::string msg(reinterpret_cast<const char*>(b), n);
      if (reply[0] == ROMA_REPLY_TYPE_ERROR) {
        ThrowType(isolate, msg);
      } else {
        ThrowError(isolate, msg);
      }
      return false;
    }
    case ROMA_REPLY_PENDING: {
      uint32_t lo, hi;
      if (!allow_pending || !r.U32(&lo) || !r.U32(&hi)) return malformed();
      RomaVersion* v = VersionOf(isolate);
      if (v == nullptr || v->current == nullptr) return malformed();
      Local<v8::Promise::Resolver> resolver;
      if (!v8::Promise::Resolver::New(ctx).ToLocal(&resolver)) return false;
      uint64_t id = (uint64_t(hi) << 32) | lo;
      v->current->pending.emplace_back(id, Global<v8::Promise::Resolver>(isolate, resolver));
      *value = resolver->GetPromise();
      return true;
    }
    default:
      return malformed();
  }
}

// Settles the promise of asynchronous host call `id` with its encoded reply: a value resolves
// it, an error reply rejects it. Returns false if no such call is pending.
bool SettleAsync(Isolate* isolate, Local<Context> ctx, ExecState* st, uint64_t id,
                 const uint8_t* reply, size_t len) {
  auto it = st->pending.begin();
  while (it != st->pending.end() && it->first != id) ++it;
  if (it == st->pending.end()) return false;
  HandleScope hs(isolate);
  Local<v8::Promise::Resolver> resolver = it->second.Get(isolate);
  st->pending.erase(it);
  Local<Value> value;
  bool ok;
  Local<Value> reason;
  {
    TryCatch tc(isolate);
    ok = DecodeReplyValue(isolate, ctx, "async", reply, len, false, &value);
    if (tc.HasTerminated() || isolate->IsExecutionTerminating()) {
      tc.ReThrow();
      return true;
    }
    if (!ok) reason = tc.HasCaught() ? tc.Exception() : v8::Undefined(isolate).As<Value>();
  }
  // Settling fails only when JS is being terminated; the request ends then anyway.
  v8::Maybe<bool> settled = ok ? resolver->Resolve(ctx, value) : resolver->Reject(ctx, reason);
  return settled.IsJust();
}

void BindingCallback(const FunctionCallbackInfo<Value>& info) {
  Isolate* isolate = info.GetIsolate();
  HandleScope hs(isolate);
  Local<Context> ctx = isolate->GetCurrentContext();
  RomaVersion* v = VersionOf(isolate);
  uint32_t index = info.Data()->Uint32Value(ctx).FromMaybe(UINT32_MAX);
  std::string name = (v && index < v->binding_names.size()) ? v->binding_names[index] : "?";
  if (v == nullptr || v->current == nullptr || v->current->binding_fn == nullptr) {
    ThrowError(isolate, "host function `" + name + "` can only be called while a request runs");
    return;
  }
  if (info.Length() > 1) {
    ThrowType(isolate, "host function `" + name + "` takes at most one argument, got " +
                           std::to_string(info.Length()));
    return;
  }
  std::string arg;
  Local<Value> a = info.Length() ? info[0] : v8::Undefined(isolate).As<Value>();
  if (!EncodeBindingArg(isolate, ctx, name, a, &arg)) return;
  const uint8_t* reply = nullptr;
  size_t reply_len = 0;
  ExecState* st = v->current;
  st->binding_fn(st->binding_user, index, reinterpret_cast<const uint8_t*>(arg.data()),
                 arg.size(), &reply, &reply_len);
  if (isolate->IsExecutionTerminating()) return;
  Local<Value> value;
  if (DecodeReplyValue(isolate, ctx, name, reply, reply_len, true, &value))
    info.GetReturnValue().Set(value);
}

// Creates the host functions on a context's global; a dotted name makes nested objects.
bool InstallBindings(Isolate* isolate, Local<Context> ctx, const std::vector<std::string>& names) {
  HandleScope hs(isolate);
  for (uint32_t i = 0; i < names.size(); i++) {
    const std::string& full = names[i];
    Local<Object> holder = ctx->Global();
    size_t start = 0;
    while (true) {
      size_t dot = full.find('.', start);
      std::string part = full.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      Local<String> key;
      if (!NewString(isolate, part.data(), part.size()).ToLocal(&key)) return false;
      if (dot == std::string::npos) {
        Local<FunctionTemplate> t =
            FunctionTemplate::New(isolate, BindingCallback, v8::Integer::NewFromUnsigned(isolate, i));
        Local<Function> f;
        if (!t->GetFunction(ctx).ToLocal(&f)) return false;
        f->SetName(key);
        if (holder->Set(ctx, key, f).IsNothing()) return false;
        break;
      }
      Local<Value> next;
      if (!holder->Get(ctx, key).ToLocal(&next)) return false;
      if (!next->IsObject()) {
        next = Object::New(isolate);
        if (holder->Set(ctx, key, next).IsNothing()) return false;
      }
      holder = next.As<Object>();
      start = dot + 1;
    }
  }
  return true;
}

// Stands for `WebAssembly` on the global of a snapshotting context, which has none: it records
// that the top level reached for it, so a failed snapshot load reports ROMA_NEEDS_WASM by that
// flag (not by its message), and throws the ReferenceError a missing global would.
void WasmProbeGetter(Local<v8::Name>, const v8::PropertyCallbackInfo<Value>& info) {
  Isolate* isolate = info.GetIsolate();
  RomaVersion* v = VersionOf(isolate);
  if (v != nullptr) v->wasm_probed = true;
  isolate->ThrowException(v8::Exception::ReferenceError(
      String::NewFromUtf8Literal(isolate, "WebAssembly is not defined")));
}

const intptr_t kExternalReferences[] = {
    reinterpret_cast<intptr_t>(WasmProbeGetter),
    reinterpret_cast<intptr_t>(ConsoleCallback),
    reinterpret_cast<intptr_t>(PerformanceNowCallback),
    reinterpret_cast<intptr_t>(WasmCacheHitCallback),
    reinterpret_cast<intptr_t>(BindingCallback),
    0,
};

// Installs `console` and `performance` on a context's global.
bool InstallGlobals(Isolate* isolate, Local<Context> ctx) {
  HandleScope hs(isolate);
  Context::Scope cscope(ctx);
  Local<Object> global = ctx->Global();
  Local<Object> console = Object::New(isolate);
  static const char* kNames[] = {"debug", "log", "info", "warn", "error"};
  static const int kLevels[] = {0, 1, 1, 2, 3};
  for (int i = 0; i < 5; i++) {
    Local<FunctionTemplate> t =
        FunctionTemplate::New(isolate, ConsoleCallback, Integer::New(isolate, kLevels[i]));
    Local<Function> f;
    if (!t->GetFunction(ctx).ToLocal(&f)) return false;
    if (console->Set(ctx, String::NewFromUtf8(isolate, kNames[i]).ToLocalChecked(), f)
            .IsNothing())
      return false;
  }
  if (global->Set(ctx, String::NewFromUtf8Literal(isolate, "console"), console).IsNothing())
    return false;
  Local<Object> perf = Object::New(isolate);
  Local<Function> now;
  if (!FunctionTemplate::New(isolate, PerformanceNowCallback)->GetFunction(ctx).ToLocal(&now))
    return false;
  if (perf->Set(ctx, String::NewFromUtf8Literal(isolate, "now"), now).IsNothing()) return false;
  if (perf->Set(ctx, String::NewFromUtf8Literal(isolate, "timeOrigin"), v8::Number::New(isolate, 0))
          .IsNothing())
    return false;
  if (global->Set(ctx, String::NewFromUtf8Literal(isolate, "performance"), perf).IsNothing())
    return false;
  RomaVersion* v = VersionOf(isolate);
  if (v != nullptr && !InstallBindings(isolate, ctx, v->binding_names)) return false;
  return true;
}

void SetOut(RomaOut* out, int32_t code, const std::string& message) {
  out->code = code;
  if (out->message) std::free(out->message);
  out->message = DupString(message);
}

bool Terminating(Isolate* isolate, const TryCatch& tc) {
  return tc.HasTerminated() || isolate->IsExecutionTerminating();
}

// Turns a caught exception into out->message/stack. Distinguishes termination (timeout,
// cancel or OOM: the Rust side knows which) from a JS throw.
void ReportException(Isolate* isolate, Local<Context> ctx, TryCatch& tc, RomaOut* out,
                     int32_t code, const char* prefix) {
  RomaVersion* version = VersionOf(isolate);
  if (version && (version->oom.load() || version->allocator->exceeded())) {
    SetOut(out, ROMA_OOM, "out of memory");
    return;
  }
  if (Terminating(isolate, tc)) {
    SetOut(out, ROMA_TERMINATED, "execution terminated");
    return;
  }
  HandleScope hs(isolate);
  Local<Value> ex = tc.Exception();
  std::string text;
  if (ex.IsEmpty()) {
    text = "unknown exception";
  } else if (ex->IsObject() && !ex->IsNativeError()) {
    // A thrown plain object: show it as JSON where possible.
    text = FormatArg(isolate, ctx, ex);
  } else {
    TryCatch inner(isolate);
    Local<String> s;
    text = ex->ToString(ctx).ToLocal(&s) ? ToUtf8(isolate, s) : std::string("<exception>");
  }
  std::string message = std::string(prefix) + text;
  Local<v8::Message> msg = tc.Message();
  if (!msg.IsEmpty()) {
    int line = msg->GetLineNumber(ctx).FromMaybe(0);
    out->line = line;
    if (code == ROMA_COMPILE && line > 0) message = "line " + std::to_string(line) + ": " + message;
  }
  SetOut(out, code, message);
  Local<Value> stack;
  if (tc.StackTrace(ctx).ToLocal(&stack) && stack->IsString()) {
    std::string s = ToUtf8(isolate, stack);
    if (out->stack) std::free(out->stack);
    out->stack = DupString(s);
  }
}

// Near the heap limit: mark the version out-of-memory, stop the JS, and give V8 headroom so it
// unwinds instead of aborting. The engine discards the isolate afterwards.
size_t NearHeapLimit(void* data, size_t current, size_t initial) {
  RomaVersion* version = static_cast<RomaVersion*>(data);
  version->oom.store(true);
  version->isolate->TerminateExecution();
  (void)initial;
  size_t headroom = current / 2;
  if (headroom < (64u << 20)) headroom = 64u << 20;
  return current + headroom;
}

// After every GC of a snapshot-creating isolate (created without heap constraints, so that
// the snapshot holds no limit of its own): enforce the max heap by hand.
void SnapshotGcEpilogue(Isolate* isolate, v8::GCType, v8::GCCallbackFlags, void* data) {
  RomaVersion* version = static_cast<RomaVersion*>(data);
  if (version->limits.max_heap_bytes == 0) return;
  v8::HeapStatistics stats;
  isolate->GetHeapStatistics(&stats);
  if (stats.used_heap_size() > version->limits.max_heap_bytes) {
    version->oom.store(true);
    isolate->TerminateExecution();
  }
}

// V8 cannot survive a fatal out-of-memory (one allocation larger than the heap limit plus the
// headroom NearHeapLimit grants): the process must end. It ends with this exit status, which the
// host reads as OutOfMemory rather than a crash (roma_core::WORKER_OOM_EXIT_CODE).
constexpr int kFatalOomExitCode = ROMA_FATAL_OOM_EXIT_CODE;

[[noreturn]] void FatalOom(const char* location) {
  static const char kMsg[] = "roma-v8: fatal out of memory in V8; the worker exits\n";
  (void)!write(2, kMsg, sizeof(kMsg) - 1);
  (void)location;
  _exit(kFatalOomExitCode);
}

void OnFatalOom(const char* location, const v8::OOMDetails&) { FatalOom(location); }

Isolate* NewIsolate(RomaVersion* v, v8::StartupData* snapshot) {
  v->allocator = std::make_unique<CountingAllocator>(v->limits.max_array_buffer_bytes);
  Isolate::CreateParams params;
  params.array_buffer_allocator = v->allocator.get();
  params.external_references = kExternalReferences;
  if (snapshot) params.snapshot_blob = snapshot;
  if (v->limits.max_heap_bytes) {
    params.constraints.ConfigureDefaultsFromHeapSize(v->limits.initial_heap_bytes,
                                                     v->limits.max_heap_bytes);
  }
  Isolate* isolate = Isolate::New(params);
  isolate->SetData(0, v);
  isolate->SetMicrotasksPolicy(v8::MicrotasksPolicy::kExplicit);
  isolate->AddNearHeapLimitCallback(NearHeapLimit, v);
  isolate->SetOOMErrorHandler(OnFatalOom);
  isolate->SetCaptureStackTraceForUncaughtExceptions(true, 16);
  return isolate;
}

MaybeLocal<String> NewString(Isolate* isolate, const char* p, size_t len) {
  if (len > static_cast<size_t>(String::kMaxLength)) return MaybeLocal<String>();
  return String::NewFromUtf8(isolate, p, v8::NewStringType::kNormal, static_cast<int>(len));
}

// Compiles the JS glue that makes `new WebAssembly.Module(<the wasm_bin array>)` (and
// WebAssembly.compile / instantiate of it) hand out the module compiled once at load.
const char kWasmPatch[] = R"JS(
(function (precompiled, bytes, hit) {
  'use strict';
  const W = globalThis.WebAssembly;
  if (!W) return;
  const OrigModule = W.Module, origCompile = W.compile, origInstantiate = W.instantiate;
  function Module(b) {
    if (new.target === undefined) throw new TypeError("WebAssembly.Module must be invoked with 'new'");
    if (b === bytes) { hit(); return precompiled; }
    return Reflect.construct(OrigModule, [b], new.target === Module ? OrigModule : new.target);
  }
  Module.prototype = OrigModule.prototype;
  Object.defineProperty(Module.prototype, 'constructor', { value: Module, writable: true, configurable: true });
  Module.exports = OrigModule.exports;
  Module.imports = OrigModule.imports;
  Module.customSections = OrigModule.customSections;
  W.Module = Module;
  W.compile = function compile(b) {
    if (b === bytes) { hit(); return Promise.resolve(precompiled); }
    return origCompile.call(W, b);
  };
  W.instantiate = function instantiate(b, imports) {
    if (b === bytes) {
      hit();
      return new Promise((resolve) => resolve({ module: precompiled, instance: new W.Instance(precompiled, imports) }));
    }
    return origInstantiate.call(W, b, imports);
  };
})
)JS";

// The standalone WASM driver: instantiates the precompiled module, marshals inputs into memory
// the module allocates (docs/wasm-abi.md), calls the export and reads the result back.
const char kWasmDriver[] = R"JS(
(function (mod, name, inputs, retType, log) {
  'use strict';
  const fail = (kind, message) => { const e = new Error(message); e.romaKind = kind; throw e; };
  // Bare V8 has no TextEncoder/TextDecoder: UTF-8 by hand (invalid sequences become U+FFFD).
  const encode = (s) => {
    const out = [];
    for (let i = 0; i < s.length; i++) {
      let c = s.codePointAt(i);
      if (c > 0xffff) i++;
      else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      if (c < 0x80) out.push(c);
      else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
      else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
    return Uint8Array.from(out);
  };
  const decode = (b) => {
    const parts = [];
    for (let i = 0; i < b.length;) {
      const c = b[i++];
      let cp = 0xfffd;
      const cont = (k) => i + k <= b.length && b.subarray(i, i + k).every((x) => (x & 0xc0) === 0x80);
      if (c < 0x80) cp = c;
      else if (c >= 0xc2 && c < 0xe0 && cont(1)) { cp = ((c & 31) << 6) | (b[i] & 63); i += 1; }
      else if (c >= 0xe0 && c < 0xf0 && cont(2)) { cp = ((c & 15) << 12) | ((b[i] & 63) << 6) | (b[i + 1] & 63); i += 2; }
      else if (c >= 0xf0 && c < 0xf5 && cont(3)) { cp = ((c & 7) << 18) | ((b[i] & 63) << 12) | ((b[i + 1] & 63) << 6) | (b[i + 2] & 63); i += 3; }
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0xfffd;
      parts.push(String.fromCodePoint(cp));
    }
    return parts.join('');
  };
  const text = (mem, ptr, len) => {
    if (ptr < 0 || len < 0 || ptr + len > mem.buffer.byteLength) fail('execution', 'string at ' + ptr + '+' + len + ' is outside the module memory');
    return decode(new Uint8Array(mem.buffer, ptr, len));
  };
  let instance;
  const imports = {};
  for (const imp of WebAssembly.Module.imports(mod)) {
    imports[imp.module] = imports[imp.module] || {};
    if (imp.module === 'roma' && imp.name === 'log' && imp.kind === 'function') {
      imports.roma.log = (level, ptr, len) => log(level, text(instance.exports.memory, ptr >>> 0, len >>> 0));
    } else if (imp.module === 'wasi_snapshot_preview1' && imp.name === 'proc_exit') {
      imports[imp.module][imp.name] = (code) => fail('execution', 'the module called proc_exit(' + code + ')');
    } else {
      fail('bad_input', 'the module imports ' + imp.module + '.' + imp.name + ', which roma does not provide');
    }
  }
  instance = new WebAssembly.Instance(mod, imports);
  const ex = instance.exports;
  const fn = ex[name];
  if (typeof fn !== 'function') {
    const names = Object.keys(ex).filter((k) => typeof ex[k] === 'function');
    // ROMA_HANDLER_NOT_FOUND carries only what the module has; roma-v8 names the export.
    fail('handler_not_found', 'the module exports: ' + names.join(', '));
  }
  const mem = ex.memory;
  const alloc = ex.roma_alloc;
  const view = () => new DataView(mem.buffer);
  const need = () => {
    if (!(mem instanceof WebAssembly.Memory)) fail('bad_input', 'the module exports no `memory`');
    if (typeof alloc !== 'function') fail('bad_input', 'the module exports no `roma_alloc(len) -> ptr`');
  };
  const allocate = (len) => {
    const p = alloc(len) >>> 0;
    if (p === 0 || p + len > mem.buffer.byteLength) fail('execution', 'roma_alloc(' + len + ') returned an invalid pointer ' + p);
    return p;
  };
  const writeStr = (s) => {
    const bytes = encode(s);
    const p = allocate(Math.max(bytes.length, 1));
    new Uint8Array(mem.buffer, p, bytes.length).set(bytes);
    const d = allocate(8);
    view().setUint32(d, p, true); view().setUint32(d + 4, bytes.length, true);
    return d;
  };
  const args = inputs.map((raw, i) => {
    let v;
    if (raw === '') return undefined;
    try { v = JSON.parse(raw); } catch (e) { fail('bad_input', 'input ' + i + ' is not valid JSON: ' + e.message); }
    if (typeof v === 'number' && Number.isInteger(v) && v >= -2147483648 && v <= 4294967295) return v | 0;
    if (typeof v === 'string') { need(); return writeStr(v); }
    if (Array.isArray(v) && v.every((s) => typeof s === 'string')) {
      need();
      const descs = v.map(writeStr);
      const arr = allocate(Math.max(descs.length * 4, 1));
      descs.forEach((d, j) => view().setUint32(arr + 4 * j, d, true));
      const l = allocate(8);
      view().setUint32(l, arr, true); view().setUint32(l + 4, descs.length, true);
      return l;
    }
    fail('bad_input', 'input ' + i + ' must be an int32, a string or a list of strings for a WASM handler');
  });
  const r = fn(...args);
  const readStr = (d) => {
    d = d >>> 0;
    if (d === 0 || d + 8 > mem.buffer.byteLength) fail('execution', 'result descriptor ' + d + ' is outside the module memory');
    return text(mem, view().getUint32(d, true), view().getUint32(d + 4, true));
  };
  switch (retType || 'string') {
    case 'void': return undefined;
    case 'i32': return JSON.stringify(r);
    case 'string': need(); return JSON.stringify(readStr(r));
    case 'list_of_string': {
      need();
      const l = r >>> 0;
      if (l === 0 || l + 8 > mem.buffer.byteLength) fail('execution', 'result list ' + l + ' is outside the module memory');
      const arr = view().getUint32(l, true), n = view().getUint32(l + 4, true);
      if (arr + 4 * n > mem.buffer.byteLength) fail('execution', 'result list is outside the module memory');
      const out = [];
      for (let j = 0; j < n; j++) out.push(readStr(view().getUint32(arr + 4 * j, true)));
      return JSON.stringify(out);
    }
    default: fail('bad_input', 'unknown roma.wasm.return_type `' + retType + '`');
  }
})
)JS";

bool CompileGlue(RomaVersion* v, Local<Context> ctx, const char* src, RomaOut* out) {
  Isolate* isolate = v->isolate;
  HandleScope hs(isolate);
  TryCatch tc(isolate);
  ScriptCompiler::Source source(String::NewFromUtf8(isolate, src).ToLocalChecked());
  Local<UnboundScript> s;
  if (!ScriptCompiler::CompileUnboundScript(isolate, &source).ToLocal(&s)) {
    ReportException(isolate, ctx, tc, out, ROMA_INTERNAL, "glue: ");
    return false;
  }
  v->glue.Reset(isolate, s);
  return true;
}

// Runs the bound glue script in ctx and returns the function it evaluates to.
MaybeLocal<Function> BindGlue(RomaVersion* v, Local<Context> ctx) {
  Isolate* isolate = v->isolate;
  EscapableHandleScope hs(isolate);
  Local<Value> f;
  if (!v->glue.Get(isolate)->BindToCurrentContext()->Run(ctx).ToLocal(&f) || !f->IsFunction())
    return MaybeLocal<Function>();
  return hs.Escape(f.As<Function>());
}

// Compiles wasm bytes into v->compiled (once per version).
bool CompileWasm(RomaVersion* v, Local<Context> ctx, RomaOut* out) {
  Isolate* isolate = v->isolate;
  HandleScope hs(isolate);
  TryCatch tc(isolate);
  Local<v8::WasmModuleObject> mod;
  if (!v8::WasmModuleObject::Compile(isolate, v8::MemorySpan<const uint8_t>(v->wasm.data(), v->wasm.size()))
           .ToLocal(&mod)) {
    ReportException(isolate, ctx, tc, out, ROMA_COMPILE, "WebAssembly compile failed: ");
    return false;
  }
  v->compiled = std::make_shared<v8::CompiledWasmModule>(mod->GetCompiledModule());
  v->wasm_compiles++;
  return true;
}

// A standalone module may import only what the driver provides (roma.log and WASI's
// proc_exit): checked at load, so a module that cannot run fails its load, not every call.
bool CheckWasmImports(RomaVersion* v, Local<Context> ctx, RomaOut* out) {
  Isolate* isolate = v->isolate;
  HandleScope hs(isolate);
  TryCatch tc(isolate);
  static const char kCheck[] =
      "(function (mod) { for (const i of WebAssembly.Module.imports(mod)) {"
      "  const ok = i.kind === 'function' && ((i.module === 'roma' && i.name === 'log') ||"
      "    (i.module === 'wasi_snapshot_preview1' && i.name === 'proc_exit'));"
      "  if (!ok) return i.module + '.' + i.name + ' (' + i.kind + ')'; } return ''; })";
  Local<String> src;
  Local<Script> script;
  Local<Value> fn_v, result;
  Local<v8::WasmModuleObject> mod;
  if (!v->compiled ||
      !v8::WasmModuleObject::FromCompiledModule(isolate, *v->compiled).ToLocal(&mod) ||
      !NewString(isolate, kCheck, sizeof(kCheck) - 1).ToLocal(&src) ||
      !Script::Compile(ctx, src).ToLocal(&script) || !script->Run(ctx).ToLocal(&fn_v) ||
      !fn_v->IsFunction()) {
    ReportException(isolate, ctx, tc, out, ROMA_INTERNAL, "checking the module's imports: ");
    return false;
  }
  Local<Value> argv[] = {mod};
  if (!fn_v.As<Function>()->Call(ctx, v8::Undefined(isolate), 1, argv).ToLocal(&result)) {
    ReportException(isolate, ctx, tc, out, ROMA_INTERNAL, "checking the module's imports: ");
    return false;
  }
  std::string bad = ToUtf8(isolate, result);
  if (!bad.empty()) {
    SetOut(out, ROMA_COMPILE,
           "the module imports " + bad +
               ", which roma does not provide (a module may import roma.log and "
               "wasi_snapshot_preview1.proc_exit)");
    return false;
  }
  return true;
}

// Creates a fresh context for a non-snapshot version with roma's globals installed, using
// `queue` for its microtasks (null: the isolate's default queue).
MaybeLocal<Context> NewPlainContext(RomaVersion* v, v8::MicrotaskQueue* queue = nullptr) {
  Isolate* isolate = v->isolate;
  EscapableHandleScope hs(isolate);
  Local<Context> ctx = Context::New(isolate, nullptr, {}, {}, {}, queue);
  if (ctx.IsEmpty()) return MaybeLocal<Context>();
  if (!InstallGlobals(isolate, ctx)) return MaybeLocal<Context>();
  return hs.Escape(ctx);
}

// A fresh invocation context of `v` (from its snapshot, or plain with roma's globals) whose
// microtasks go to `queue`. Each invocation gets its own queue, dropped with it: a microtask
// that an invocation leaves queued (a synchronous handler that scheduled one, a throw, a
// timeout) can never run in a later invocation, whose tenant and time it is not.
Local<Context> FreshContext(RomaVersion* v, v8::MicrotaskQueue* queue) {
  Isolate* isolate = v->isolate;
  if (v->kind == KIND_SNAPSHOT_JS) return Context::New(isolate, nullptr, {}, {}, {}, queue);
  Local<Context> ctx;
  if (!NewPlainContext(v, queue).ToLocal(&ctx)) return Local<Context>();
  return ctx;
}

// For a JS(+WASM) version without snapshot: exposes the wasm array, patches WebAssembly and runs
// the user's script in ctx. Returns false with out filled on failure.
bool PrepareUnboundContext(RomaVersion* v, Local<Context> ctx, RomaOut* out, int32_t fail_code) {
  Isolate* isolate = v->isolate;
  HandleScope hs(isolate);
  TryCatch tc(isolate);
  if (!v->array_name.empty()) {
    Local<ArrayBuffer> buf = ArrayBuffer::New(isolate, v->wasm.size());
    if (buf.IsEmpty()) {
      SetOut(out, ROMA_OOM, "out of memory copying wasm_bin");
      return false;
    }
    if (!v->wasm.empty())
      std::memcpy(buf->GetBackingStore()->Data(), v->wasm.data(), v->wasm.size());
    Local<Uint8Array> arr = Uint8Array::New(buf, 0, v->wasm.size());
    Local<String> name;
    if (!NewString(isolate, v->array_name.data(), v->array_name.size()).ToLocal(&name) ||
        ctx->Global()->Set(ctx, name, arr).IsNothing()) {
      ReportException(isolate, ctx, tc, out, ROMA_INTERNAL, "");
      return false;
    }
    if (v->compiled) {
      Local<v8::WasmModuleObject> mod;
      Local<Function> patch;
      Local<Function> hit;
      if (!v8::WasmModuleObject::FromCompiledModule(isolate, *v->compiled).ToLocal(&mod) ||
          !BindGlue(v, ctx).ToLocal(&patch) ||
          !FunctionTemplate::New(isolate, WasmCacheHitCallback)->GetFunction(ctx).ToLocal(&hit)) {
        ReportException(isolate, ctx, tc, out, ROMA_INTERNAL, "wasm patch: ");
        return false;
      }
      Local<Value> args[] = {mod, arr, hit};
      if (patch->Call(ctx, v8::Undefined(isolate), 3, args).IsEmpty()) {
        ReportException(isolate, ctx, tc, out, ROMA_INTERNAL, "wasm patch: ");
        return false;
      }
    }
  }
  Local<Value> r;
  if (!v->script.Get(isolate)->BindToCurrentContext()->Run(ctx).ToLocal(&r)) {
    ReportException(isolate, ctx, tc, out, fail_code, fail_code == ROMA_COMPILE ? "" : "Uncaught ");
    return false;
  }
  return true;
}

// Resolves a dotted handler path on the context's global. Sets receiver to the holder object.
bool ResolveHandler(Isolate* isolate, Local<Context> ctx, const std::string& path,
                    Local<Function>* fn, Local<Value>* receiver) {
  Local<Value> cur = ctx->Global();
  Local<Value> holder = cur;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->IsObject()) return false;
    Local<String> key;
    if (!NewString(isolate, part.data(), part.size()).ToLocal(&key)) return false;
    holder = cur;
    TryCatch tc(isolate);
    if (!cur.As<Object>()->Get(ctx, key).ToLocal(&cur)) return false;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (!cur->IsFunction()) return false;
  *fn = cur.As<Function>();
  *receiver = holder;
  return true;
}

// Lists the global functions, for a helpful handler-not-found message.
std::string GlobalFunctionNames(Isolate* isolate, Local<Context> ctx) {
  TryCatch tc(isolate);
  std::string names;
  Local<Array> keys;
  if (!ctx->Global()->GetOwnPropertyNames(ctx).ToLocal(&keys)) return names;
  for (uint32_t i = 0; i < keys->Length() && i < 64; i++) {
    Local<Value> k, val;
    if (!keys->Get(ctx, i).ToLocal(&k) || !ctx->Global()->Get(ctx, k).ToLocal(&val)) continue;
    if (!val->IsFunction()) continue;
    std::string n = ToUtf8(isolate, k);
    if (n == "console" || n == "performance") continue;
    if (!names.empty()) names += ", ";
    names += n;
  }
  return names;
}

// Collects a serialized CPU profile, refusing to grow past a byte cap.
class ProfileSink final : public v8::OutputStream {
 public:
  explicit ProfileSink(size_t max) : max_(max) {}
  void EndOfStream() override {}
  int GetChunkSize() override { return 64 * 1024; }
  WriteResult WriteAsciiChunk(char* data, int size) override {
    if (size < 0 || text_.size() + static_cast<size_t>(size) > max_) {
      over_ = true;
      return kAbort;
    }
    text_.append(data, static_cast<size_t>(size));
    return kContinue;
  }
  bool over() const { return over_; }
  const std::string& text() const { return text_; }

 private:
  size_t max_;
  std::string text_;
  bool over_ = false;
};

// Profiles the handler call of one request (RomaExecParams::profile): a CpuProfiler made for
// the call starts on construction, and on destruction, whichever way the call ends, stops,
// serializes the profile into out->profile and is disposed, so no profiler outlives the call
// and an unprofiled call pays only the flag check. Invariant: constructed and destroyed on the
// isolate's thread inside its Isolate::Scope.
class ProfileGuard {
 public:
  ProfileGuard(Isolate* isolate, const RomaExecParams* p, RomaOut* out)
      : isolate_(isolate), out_(out), max_(p->profile_max) {
    if (p->profile == 0) return;
    profiler_ = v8::CpuProfiler::New(isolate);
    if (profiler_ == nullptr) return;
    // Handlers run for milliseconds: sample every 100 us, at most 100,000 samples.
    profiler_->SetSamplingInterval(100);
    HandleScope hs(isolate);
    v8::CpuProfilingOptions opts(v8::kLeafNodeLineNumbers, 100000, 100);
    profiler_->StartProfiling(Title(), std::move(opts));
  }
  ProfileGuard(const ProfileGuard&) = delete;
  ProfileGuard& operator=(const ProfileGuard&) = delete;
  ~ProfileGuard() {
    if (profiler_ == nullptr) return;
    {
      HandleScope hs(isolate_);
      v8::CpuProfile* profile = profiler_->StopProfiling(Title());
      if (profile != nullptr) {
        ProfileSink sink(max_);
        profile->Serialize(&sink, v8::CpuProfile::kJSON);
        profile->Delete();
        static const char kTruncated[] = "{\"truncated\":true}";
        const std::string& text = sink.over() ? std::string(kTruncated) : sink.text();
        Store(text);
      }
    }
    profiler_->Dispose();
  }

 private:
  Local<String> Title() { return String::NewFromUtf8Literal(isolate_, "roma.request"); }
  void Store(const std::string& text) {
    std::free(out_->profile);
    out_->profile = static_cast<char*>(std::malloc(text.size() + 1));
    out_->profile_len = 0;
    if (out_->profile == nullptr) return;
    std::memcpy(out_->profile, text.data(), text.size());
    out_->profile[text.size()] = '\0';
    out_->profile_len = text.size();
  }

  Isolate* isolate_;
  RomaOut* out_;
  size_t max_;
  v8::CpuProfiler* profiler_ = nullptr;
};

void Execute(RomaVersion* v, const RomaExecParams* p, RomaOut* out) {
  Isolate* isolate = v->isolate;
  Isolate::Scope iscope(isolate);
  HandleScope hs(isolate);
  ExecState st;
  st.min_log_level = p->min_log_level;
  st.log_fn = p->log_fn;
  st.log_user = p->log_user;
  st.binding_fn = p->binding_fn;
  st.binding_user = p->binding_user;
  st.await_fn = p->await_fn;
  st.time_origin_ms = NowMs();
  v->current = &st;
  struct Clear {
    RomaVersion* v;
    ~Clear() { v->current = nullptr; }
  } clear{v};

  double t0 = NowMs();
  Local<Context> ctx;
  std::unique_ptr<v8::MicrotaskQueue> queue;
  if (!v->prewarmed.IsEmpty() && v->prewarmed_queue) {
    ctx = v->prewarmed.Get(isolate);
    v->prewarmed.Reset();
    queue = std::move(v->prewarmed_queue);
    out->prewarmed = 1;
  } else {
    queue = v8::MicrotaskQueue::New(isolate, v8::MicrotasksPolicy::kExplicit);
    ctx = FreshContext(v, queue.get());
  }
  if (ctx.IsEmpty()) {
    SetOut(out, v->oom.load() ? ROMA_OOM : ROMA_INTERNAL, "could not create a context");
    return;
  }
  Context::Scope cscope(ctx);
  out->context_ms = NowMs() - t0;
  TryCatch tc(isolate);
  std::string handler(p->handler.ptr, p->handler.len);

  if (v->kind == KIND_WASM) {
    double t1 = NowMs();
    Local<v8::WasmModuleObject> mod;
    Local<Function> driver;
    if (!v8::WasmModuleObject::FromCompiledModule(isolate, *v->compiled).ToLocal(&mod) ||
        !BindGlue(v, ctx).ToLocal(&driver)) {
      ReportException(isolate, ctx, tc, out, ROMA_INTERNAL, "wasm driver: ");
      return;
    }
    Local<Array> inputs = Array::New(isolate, static_cast<int>(p->input_count));
    for (size_t i = 0; i < p->input_count; i++) {
      Local<String> s;
      if (!NewString(isolate, p->inputs[i].ptr, p->inputs[i].len).ToLocal(&s) ||
          inputs->Set(ctx, static_cast<uint32_t>(i), s).IsNothing()) {
        SetOut(out, ROMA_BAD_INPUT, "input too large");
        return;
      }
    }
    Local<Value> log_fn;
    {
      Local<FunctionTemplate> t =
          FunctionTemplate::New(isolate, [](const FunctionCallbackInfo<Value>& info) {
            Isolate* iso = info.GetIsolate();
            RomaVersion* ver = VersionOf(iso);
            if (!ver || !ver->current || !ver->current->log_fn) return;
            int32_t level = info[0]->Int32Value(iso->GetCurrentContext()).FromMaybe(1);
            if (level < 0) level = 0;
            if (level > 3) level = 3;
            if (level < ver->current->min_log_level) return;
            std::string m = ToUtf8(iso, info[1]);
            ver->current->log_fn(ver->current->log_user, level, m.data(), m.size());
          });
      Local<Function> f;
      if (!t->GetFunction(ctx).ToLocal(&f)) {
        ReportException(isolate, ctx, tc, out, ROMA_INTERNAL, "");
        return;
      }
      log_fn = f;
    }
    Local<String> name, ret;
    if (!NewString(isolate, handler.data(), handler.size()).ToLocal(&name) ||
        !NewString(isolate, p->wasm_return_type.ptr, p->wasm_return_type.len).ToLocal(&ret)) {
      SetOut(out, ROMA_BAD_INPUT, "handler name too long");
      return;
    }
    Local<Value> args[] = {mod, name, inputs, ret, log_fn};
    out->parse_ms = NowMs() - t1;
    ProfileGuard profile(isolate, p, out);
    double t2 = NowMs();
    Local<Value> result;
    if (!driver->Call(ctx, v8::Undefined(isolate), 5, args).ToLocal(&result)) {
      // Classify the driver's tagged errors.
      if (!Terminating(isolate, tc) && !tc.Exception().IsEmpty() && tc.Exception()->IsObject()) {
        Local<Value> kind;
        if (tc.Exception().As<Object>()
                ->Get(ctx, String::NewFromUtf8Literal(isolate, "romaKind"))
                .ToLocal(&kind) &&
            kind->IsString()) {
          std::string k = ToUtf8(isolate, kind);
          int32_t code = k == "bad_input"           ? ROMA_BAD_INPUT
                         : k == "handler_not_found" ? ROMA_HANDLER_NOT_FOUND
                                                    : ROMA_EXECUTION;
          ReportException(isolate, ctx, tc, out, code, "");
          // Drop the "Error: " prefix of our own tagged errors.
          if (out->message && std::strncmp(out->message, "Error: ", 7) == 0) {
            std::string m(out->message + 7);
            SetOut(out, code, m);
          }
          out->call_ms = NowMs() - t2;
          return;
        }
      }
      ReportException(isolate, ctx, tc, out, ROMA_EXECUTION, "Uncaught ");
      out->call_ms = NowMs() - t2;
      return;
    }
    out->call_ms = NowMs() - t2;
    std::string s = result->IsString() ? ToUtf8(isolate, result) : std::string("undefined");
    out->data = DupString(s);
    out->data_len = s.size();
    out->code = ROMA_OK;
    return;
  }

  if (v->kind == KIND_UNBOUND_JS) {
    if (!PrepareUnboundContext(v, ctx, out, ROMA_EXECUTION)) return;
  }

  Local<Function> fn;
  Local<Value> receiver;
  if (!ResolveHandler(isolate, ctx, handler, &fn, &receiver)) {
    if (Terminating(isolate, tc)) {
      ReportException(isolate, ctx, tc, out, ROMA_EXECUTION, "");
      return;
    }
    // ROMA_HANDLER_NOT_FOUND carries only what the code has; roma-v8 names the handler.
    std::string names = GlobalFunctionNames(isolate, ctx);
    SetOut(out, ROMA_HANDLER_NOT_FOUND,
           "the code defines: " + (names.empty() ? std::string("(no functions)") : names));
    return;
  }

  double t1 = NowMs();
  std::vector<Local<Value>> argv;
  argv.reserve(p->input_count);
  for (size_t i = 0; i < p->input_count; i++) {
    Local<String> s;
    if (!NewString(isolate, p->inputs[i].ptr, p->inputs[i].len).ToLocal(&s)) {
      SetOut(out, ROMA_BAD_INPUT, "input " + std::to_string(i) + " is too large for a JS string");
      return;
    }
    if (p->byte_str) {
      argv.push_back(s);
      continue;
    }
    if (p->inputs[i].len == 0) {
      argv.push_back(v8::Undefined(isolate));
      continue;
    }
    Local<Value> parsed;
    if (!v8::JSON::Parse(ctx, s).ToLocal(&parsed)) {
      if (Terminating(isolate, tc)) {
        ReportException(isolate, ctx, tc, out, ROMA_EXECUTION, "");
        return;
      }
      std::string why = FormatArg(isolate, ctx, tc.Exception());
      tc.Reset();
      SetOut(out, ROMA_BAD_INPUT, "input " + std::to_string(i) + " is not valid JSON: " + why);
      return;
    }
    argv.push_back(parsed);
  }
  out->parse_ms = NowMs() - t1;

  ProfileGuard profile(isolate, p, out);
  double t2 = NowMs();
  Local<Value> result;
  if (!fn->Call(ctx, receiver, static_cast<int>(argv.size()), argv.data()).ToLocal(&result)) {
    ReportException(isolate, ctx, tc, out, ROMA_EXECUTION, "Uncaught ");
    out->call_ms = NowMs() - t2;
    return;
  }
  if (result->IsPromise()) {
    Local<Promise> promise = result.As<Promise>();
    // There is no event loop: what can settle the promise is the microtask queue. Drain it;
    // a promise still pending after that can never settle.
    queue->PerformCheckpoint(isolate);
    // Asynchronous host calls settle promises from outside: wait for their replies one by one
    // while the handler's promise is pending and some call is outstanding.
    while (promise->State() == Promise::kPending && !st.pending.empty() && st.await_fn &&
           !Terminating(isolate, tc) && !v->oom.load()) {
      uint64_t id = 0;
      const uint8_t* reply = nullptr;
      size_t reply_len = 0;
      if (st.await_fn(st.binding_user, &id, &reply, &reply_len) == 0) break;
      if (isolate->IsExecutionTerminating()) break;
      SettleAsync(isolate, ctx, &st, id, reply, reply_len);
      queue->PerformCheckpoint(isolate);
    }
    if (Terminating(isolate, tc) || v->oom.load()) {
      ReportException(isolate, ctx, tc, out, ROMA_EXECUTION, "");
      out->call_ms = NowMs() - t2;
      return;
    }
    if (promise->State() == Promise::kPending && !st.pending.empty()) {
      SetOut(out, ROMA_EXECUTION,
             "the handler's promise waits on a host call whose reply did not come");
      out->call_ms = NowMs() - t2;
      return;
    }
    if (promise->State() == Promise::kPending) {
      SetOut(out, ROMA_EXECUTION,
             "the handler's promise never settles (roma has no timers or I/O to settle it)");
      out->call_ms = NowMs() - t2;
      return;
    }
    if (promise->State() == Promise::kRejected) {
      Local<Value> reason = promise->Result();
      std::string text;
      std::string stack;
      if (reason->IsNativeError()) {
        TryCatch inner(isolate);
        Local<String> s;
        text = reason->ToString(ctx).ToLocal(&s) ? ToUtf8(isolate, s) : "<error>";
        Local<Value> st_v;
        if (reason.As<Object>()->Get(ctx, String::NewFromUtf8Literal(isolate, "stack")).ToLocal(&st_v) &&
            st_v->IsString())
          stack = ToUtf8(isolate, st_v);
      } else {
        text = FormatArg(isolate, ctx, reason);
      }
      SetOut(out, ROMA_EXECUTION, "Uncaught (in promise) " + text);
      if (!stack.empty()) out->stack = DupString(stack);
      out->call_ms = NowMs() - t2;
      return;
    }
    result = promise->Result();
  }

  if (p->byte_str) {
    if (!result->IsString()) {
      SetOut(out, ROMA_EXECUTION, "in byte-string mode the handler must return a string");
      out->call_ms = NowMs() - t2;
      return;
    }
    std::string s = ToUtf8(isolate, result);
    out->call_ms = NowMs() - t2;
    out->data = DupString(s);
    out->data_len = s.size();
    out->code = ROMA_OK;
    return;
  }
  Local<String> json;
  if (!v8::JSON::Stringify(ctx, result).ToLocal(&json)) {
    ReportException(isolate, ctx, tc, out, ROMA_EXECUTION, "the result cannot be serialised: ");
    out->call_ms = NowMs() - t2;
    return;
  }
  out->call_ms = NowMs() - t2;
  // JSON.stringify(undefined) (and of functions and symbols) yields undefined: Roma's text.
  std::string s = json->IsString() ? ToUtf8(isolate, json) : std::string("undefined");
  out->data = DupString(s);
  out->data_len = s.size();
  out->code = ROMA_OK;
}

// Whether the address space allows the WebAssembly trap handler: no RLIMIT_AS, or one with room
// for kTrapHandlerMemories full-size 32-bit memories (each reserves its guard regions) besides
// the heaps.
constexpr size_t kTrapHandlerMemories = 4;

// V8's entropy (Math.random seeds, hash seeds, heap placement): getrandom(2), which the
// worker's seccomp allow-list permits. Without a source V8 opens /dev/urandom, which the jail
// does not have, and falls back to seeding from the clock.
bool GetEntropy(unsigned char* buffer, size_t length) {
  size_t done = 0;
  while (done < length) {
    ssize_t n = getrandom(buffer + done, length - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}
bool TrapHandlerFits() {
  struct rlimit lim;
  if (getrlimit(RLIMIT_AS, &lim) != 0) return false;
  if (lim.rlim_cur == RLIM_INFINITY) return true;
  size_t one = v8::V8::GetWasmMemoryReservationSizeInBytes(v8::V8::WasmMemoryType::kMemory32,
                                                           size_t{4} << 30);
  return lim.rlim_cur / kTrapHandlerMemories > one;
}

}  // namespace

extern "C" {

// Initialises the process-wide V8 platform once, after applying `flags` (space separated).
// Returns 0 on success, 1 if already initialised (flags ignored). Invariant: called before any
// other entry point; safe to call from several threads (later callers see 1).
int32_t roma_v8_init(const char* flags, size_t flags_len) noexcept {
  int expected = 0;
  if (!g_initialized.compare_exchange_strong(expected, 1)) {
    while (g_initialized.load() != 2) {
    }
    return 1;
  }
  if (flags_len) v8::V8::SetFlagsFromString(flags, flags_len);
  // What node's own start-up would have set up and roma needs: WebAssembly bounds checks by
  // guard regions and V8's own SIGSEGV handler (the trap handler) rather than an explicit
  // check on every memory access. It must be enabled before V8::Initialize. Each memory then
  // reserves several GiB of address space, so under an RLIMIT_AS too small for a few of them
  // it stays off and V8 compiles explicit bounds checks: slower, as safe.
  if (TrapHandlerFits()) v8::V8::EnableWebAssemblyTrapHandler(/*use_v8_signal_handler=*/true);
  v8::V8::SetEntropySource(GetEntropy);
  // ICU: the build carries its full data in the executable (full-icu), so no data file is read.
  v8::V8::InitializeICU();
  g_platform = v8::platform::NewDefaultPlatform();
  v8::V8::InitializePlatform(g_platform.get());
  v8::V8::Initialize();
  g_initialized.store(2);
  return 0;
}

// The V8 version string ("14.6.202.34-node.40"). Static storage; never freed.
const char* roma_v8_version() noexcept { return v8::V8::GetVersion(); }

// Frees a string the shim returned.
void roma_v8_free(void* p) noexcept { std::free(p); }

// Frees the strings inside a RomaOut (not the record itself).
void roma_v8_out_clear(RomaOut* out) noexcept {
  std::free(out->data);
  std::free(out->message);
  std::free(out->stack);
  std::free(out->profile);
  out->data = out->message = out->stack = out->profile = nullptr;
  out->profile_len = 0;
}

// The isolate of a version, for roma_v8_isolate_terminate. Invariant: `v` is live.
void* roma_v8_version_isolate(RomaVersion* v) noexcept { return v->isolate; }

// Stops whatever JS runs in `isolate`. Thread-safe; the only entry point callable from a
// thread other than the version's. Invariant: the isolate is not disposed (the Rust watchdog
// holds its lock across dispose).
void roma_v8_isolate_terminate(void* isolate) noexcept {
  static_cast<Isolate*>(isolate)->TerminateExecution();
}

// Creates a version for plain JS: runs `src` once in a SnapshotCreator and starts an isolate
// from the snapshot. Two steps so the caller can arm a timeout on the creator's isolate:
// roma_v8_snapshot_begin returns the version with a creator isolate; roma_v8_snapshot_run runs
// the code, makes the blob and replaces the creator isolate with one started from the blob.
// Invariant: `limits` is valid; the result is freed with roma_v8_version_dispose.
RomaVersion* roma_v8_snapshot_begin(const RomaLimits* limits, v8::SnapshotCreator** creator_out) noexcept {
  RomaVersion* v = new (std::nothrow) RomaVersion();
  if (v == nullptr) return nullptr;
  v->kind = KIND_SNAPSHOT_JS;
  v->limits = *limits;
  v->allocator = std::make_unique<CountingAllocator>(limits->max_array_buffer_bytes);
  auto* creator = new (std::nothrow) v8::SnapshotCreator(kExternalReferences);
  if (creator == nullptr) {
    delete v;
    return nullptr;
  }
  v->isolate = creator->GetIsolate();
  v->isolate->SetData(0, v);
  v->isolate->AddGCEpilogueCallback(SnapshotGcEpilogue, v);
  v->isolate->AddNearHeapLimitCallback(NearHeapLimit, v);
  v->isolate->SetOOMErrorHandler(OnFatalOom);
  *creator_out = creator;
  return v;
}

// See roma_v8_snapshot_begin. Runs the top level under the caller's watchdog and returns
// ROMA_OK (the default context is set) or why not in out->code (ROMA_COMPILE for a compile error
// or top-level throw, ROMA_NEEDS_WASM for a top level that failed after reading `WebAssembly`,
// ROMA_TERMINATED, ROMA_OOM). It never disposes the creator's isolate: the
// watchdog may still terminate it until the caller disarms, so the caller disarms first and
// then calls roma_v8_snapshot_finish, which consumes `creator`.
int32_t roma_v8_snapshot_run(RomaVersion* v, v8::SnapshotCreator* creator, const char* src,
                             size_t len, RomaOut* out) noexcept {
  bool ok = false;
  {
    Isolate* isolate = creator->GetIsolate();
    HandleScope hs(isolate);
    Local<Context> ctx = Context::New(isolate);
    Context::Scope cscope(ctx);
    TryCatch tc(isolate);
    ExecState st;
    st.min_log_level = 1;
    st.time_origin_ms = NowMs();
    v->current = &st;
    Local<String> wasm_name = String::NewFromUtf8Literal(isolate, "WebAssembly");
    bool probe = !ctx->Global()->Has(ctx, wasm_name).FromMaybe(true);
    v->wasm_probed = false;
    if (!InstallGlobals(isolate, ctx) ||
        (probe && !ctx->Global()
                       ->SetNativeDataProperty(ctx, wasm_name, WasmProbeGetter, nullptr,
                                               Local<Value>(), v8::DontEnum)
                       .FromMaybe(false))) {
      SetOut(out, ROMA_INTERNAL, "could not install globals");
    } else {
      Local<String> source;
      Local<Script> script;
      Local<Value> result;
      if (!NewString(isolate, src, len).ToLocal(&source)) {
        SetOut(out, ROMA_COMPILE, "source too large");
      } else if (!Script::Compile(ctx, source).ToLocal(&script)) {
        ReportException(isolate, ctx, tc, out, ROMA_COMPILE, "");
      } else if (!script->Run(ctx).ToLocal(&result)) {
        ReportException(isolate, ctx, tc, out, ROMA_COMPILE, "");
      } else {
        isolate->PerformMicrotaskCheckpoint();
        if (Terminating(isolate, tc) || v->oom.load()) {
          ReportException(isolate, ctx, tc, out, ROMA_COMPILE, "");
        } else if (probe && !ctx->Global()->Delete(ctx, wasm_name).FromMaybe(false)) {
          SetOut(out, ROMA_INTERNAL, "could not remove the WebAssembly probe");
        } else {
          creator->SetDefaultContext(ctx);
          ok = true;
        }
      }
    }
    v->current = nullptr;
  }
  // A top level that failed after reaching for WebAssembly needs a context that has it.
  if (!ok && v->wasm_probed && out->code == ROMA_COMPILE) out->code = ROMA_NEEDS_WASM;
  if (!ok) return out->code;
  out->code = ROMA_OK;
  return ROMA_OK;
}

// Ends a snapshot load begun with roma_v8_snapshot_begin, after roma_v8_snapshot_run returned
// `run_code` and the caller disarmed its watchdog (invariant: nothing can terminate the
// creator's isolate any more, since this disposes it). On ROMA_OK it makes the blob and starts the
// version's isolate from it; otherwise it drops the creator and leaves the version without an
// isolate for the caller to dispose. `creator` is consumed in every case. Returns ROMA_OK or the
// failure, also in out->code.
int32_t roma_v8_snapshot_finish(RomaVersion* v, v8::SnapshotCreator* creator, int32_t run_code,
                                RomaOut* out) noexcept {
  if (run_code != ROMA_OK) {
    // Deleting a creator that never made a blob is fine as long as no context was added to it
    // (its destructor would reset their handles after disposing the isolate): none was.
    v->isolate->CancelTerminateExecution();
    delete creator;
    v->isolate = nullptr;
    return out->code;
  }
  // A watchdog that fired after the top level had finished (and before the disarm) left a
  // termination pending; the load succeeded, so it must not abort making the blob.
  v->isolate->CancelTerminateExecution();
  v8::StartupData blob = creator->CreateBlob(v8::SnapshotCreator::FunctionCodeHandling::kKeep);
  delete creator;
  v->isolate = nullptr;
  if (blob.data == nullptr || blob.raw_size <= 0) {
    delete[] blob.data;
    SetOut(out, ROMA_INTERNAL, "V8 could not create a snapshot of the loaded code");
    return out->code;
  }
  v->blob.assign(blob.data, static_cast<size_t>(blob.raw_size));
  delete[] blob.data;
  v->startup = v8::StartupData{v->blob.data(), static_cast<int>(v->blob.size())};
  v->oom.store(false);
  v->isolate = NewIsolate(v, &v->startup);
  out->code = ROMA_OK;
  return ROMA_OK;
}

// Creates a version without snapshot: plain JS that needs WebAssembly at top level (kind 1),
// JS with a wasm_bin array (kind 1), or a standalone module (kind 2). Only allocates; compile
// with roma_v8_version_compile after arming the timeout on its isolate.
RomaVersion* roma_v8_version_new(int32_t kind, const RomaLimits* limits, const char* src,
                                 size_t src_len, const uint8_t* wasm, size_t wasm_len,
                                 const char* array_name, size_t array_name_len) noexcept {
  RomaVersion* v = new (std::nothrow) RomaVersion();
  if (v == nullptr) return nullptr;
  v->kind = kind;
  v->limits = *limits;
  v->source.assign(src, src_len);
  v->wasm.assign(wasm, wasm + wasm_len);
  v->array_name.assign(array_name, array_name_len);
  v->isolate = NewIsolate(v, nullptr);
  return v;
}

// Compiles a kind 1 or 2 version: the wasm module once, the glue, and for kind 1 the script,
// which it also runs once in a scratch context so a top-level error fails the load.
int32_t roma_v8_version_compile(RomaVersion* v, RomaOut* out) noexcept {
  Isolate* isolate = v->isolate;
  Isolate::Scope iscope(isolate);
  HandleScope hs(isolate);
  Local<Context> ctx;
  if (!NewPlainContext(v).ToLocal(&ctx)) {
    SetOut(out, ROMA_INTERNAL, "could not create a context");
    return out->code;
  }
  Context::Scope cscope(ctx);
  if (!v->wasm.empty() && !CompileWasm(v, ctx, out)) return out->code;
  if (v->kind == KIND_WASM) {
    if (!CheckWasmImports(v, ctx, out)) return out->code;
    if (!CompileGlue(v, ctx, kWasmDriver, out)) return out->code;
    out->code = ROMA_OK;
    return ROMA_OK;
  }
  if (!v->array_name.empty() && !CompileGlue(v, ctx, kWasmPatch, out)) return out->code;
  TryCatch tc(isolate);
  Local<String> source;
  if (!NewString(isolate, v->source.data(), v->source.size()).ToLocal(&source)) {
    SetOut(out, ROMA_COMPILE, "source too large");
    return out->code;
  }
  ScriptCompiler::Source ssrc(source);
  Local<UnboundScript> script;
  if (!ScriptCompiler::CompileUnboundScript(isolate, &ssrc).ToLocal(&script)) {
    ReportException(isolate, ctx, tc, out, ROMA_COMPILE, "");
    return out->code;
  }
  v->script.Reset(isolate, script);
  ExecState st;
  st.time_origin_ms = NowMs();
  v->current = &st;
  bool ok = PrepareUnboundContext(v, ctx, out, ROMA_COMPILE);
  if (ok) {
    isolate->PerformMicrotaskCheckpoint();
    if (isolate->IsExecutionTerminating() || v->oom.load()) {
      ReportException(isolate, ctx, tc, out, ROMA_COMPILE, "");
      ok = false;
    }
  }
  v->current = nullptr;
  if (!ok) return out->code;
  out->code = ROMA_OK;
  return ROMA_OK;
}

// Names the host functions that contexts of `v` get (index i calls binding_fn with i). Call
// before roma_v8_snapshot_run / roma_v8_version_compile.
// Invariant: `names` points to `count` valid strings; `v` is not running.
void roma_v8_version_set_bindings(RomaVersion* v, const RomaStr* names, size_t count) noexcept {
  v->binding_names.clear();
  for (size_t i = 0; i < count; i++) v->binding_names.emplace_back(names[i].ptr, names[i].len);
}

// Runs one invocation in a fresh context of version `v` (or the pre-warmed one).
// Invariant: `v` has an isolate; called on the version's thread; `p` and its strings are valid.
int32_t roma_v8_execute(RomaVersion* v, const RomaExecParams* p, RomaOut* out) noexcept {
  Execute(v, p, out);
  return out->code;
}

// Prepares the next fresh context of `v` while the worker is idle, so the next call skips
// context creation. The context never runs user code before a request takes it.
int32_t roma_v8_prewarm(RomaVersion* v) noexcept {
  if (!v->prewarmed.IsEmpty()) return 0;
  Isolate* isolate = v->isolate;
  Isolate::Scope iscope(isolate);
  HandleScope hs(isolate);
  std::unique_ptr<v8::MicrotaskQueue> queue =
      v8::MicrotaskQueue::New(isolate, v8::MicrotasksPolicy::kExplicit);
  Local<Context> ctx = FreshContext(v, queue.get());
  if (ctx.IsEmpty()) return 1;
  v->prewarmed.Reset(isolate, ctx);
  v->prewarmed_queue = std::move(queue);
  return 0;
}

// Replaces a snapshot version's isolate with a fresh one started from its snapshot (after an
// out-of-memory). Returns 0, or 1 for versions without a snapshot (the caller recompiles them).
int32_t roma_v8_version_rebuild(RomaVersion* v) noexcept {
  if (v->kind != KIND_SNAPSHOT_JS || v->blob.empty()) return 1;
  if (v->isolate) {
    {
      Isolate::Scope iscope(v->isolate);
      v->prewarmed.Reset();
      v->prewarmed_queue.reset();
    }
    v->isolate->Dispose();
    v->isolate = nullptr;
  }
  v->oom.store(false);
  v->isolate = NewIsolate(v, &v->startup);
  return 0;
}

// Benchmark baselines: the bare V8 work of a call, without roma's bookkeeping, so benches can
// compare the engine against raw V8 in one run. mode 0: Context::New only; 1: Context::New,
// JSON.parse of one input, call, JSON.stringify; 2: the same call in one reused context.
// Returns the result length, or -1 on failure. Snapshot versions only.
int64_t roma_v8_raw_call(RomaVersion* v, RomaStr handler, RomaStr input, int32_t mode) noexcept {
  if (v->kind != KIND_SNAPSHOT_JS) return -1;
  Isolate* isolate = v->isolate;
  Isolate::Scope iscope(isolate);
  HandleScope hs(isolate);
  Local<Context> ctx;
  if (mode == 2) {
    if (v->raw_context.IsEmpty()) v->raw_context.Reset(isolate, Context::New(isolate));
    ctx = v->raw_context.Get(isolate);
  } else {
    ctx = Context::New(isolate);
  }
  if (ctx.IsEmpty()) return -1;
  if (mode == 0) return 0;
  Context::Scope cscope(ctx);
  TryCatch tc(isolate);
  Local<Value> fn_v;
  Local<String> name, in;
  Local<Value> arg, result;
  Local<String> json;
  if (!NewString(isolate, handler.ptr, handler.len).ToLocal(&name) ||
      !ctx->Global()->Get(ctx, name).ToLocal(&fn_v) || !fn_v->IsFunction() ||
      !NewString(isolate, input.ptr, input.len).ToLocal(&in) ||
      !v8::JSON::Parse(ctx, in).ToLocal(&arg) ||
      !fn_v.As<Function>()->Call(ctx, ctx->Global(), 1, &arg).ToLocal(&result) ||
      !v8::JSON::Stringify(ctx, result).ToLocal(&json))
    return -1;
  String::Utf8Value out(isolate, json);
  return out.length();
}

// Whether the version ran out of memory (heap or array buffers) since the last reset.
int32_t roma_v8_version_oom(RomaVersion* v) noexcept {
  return (v->oom.load() || (v->allocator && v->allocator->exceeded())) ? 1 : 0;
}

// Clears a pending termination after the JS stack has unwound.
void roma_v8_version_cancel_terminate(RomaVersion* v) noexcept {
  if (v->isolate) v->isolate->CancelTerminateExecution();
}

// Counters for tests and metrics: wasm compilations at load, precompiled-module hand-outs.
void roma_v8_version_wasm_stats(RomaVersion* v, uint64_t* compiles, uint64_t* hits) noexcept {
  *compiles = v->wasm_compiles;
  *hits = v->wasm_cache_hits;
}

// Heap statistics of the version's isolate: used and limit, in bytes.
void roma_v8_version_heap(RomaVersion* v, size_t* used, size_t* limit) noexcept {
  v8::HeapStatistics stats;
  v->isolate->GetHeapStatistics(&stats);
  *used = stats.used_heap_size();
  *limit = stats.heap_size_limit();
}

// Drops the isolate and everything compiled in it. Invariant: no thread can still terminate it
// (the Rust watchdog is disarmed before).
void roma_v8_version_dispose(RomaVersion* v) noexcept {
  if (v == nullptr) return;
  if (v->isolate) {
    {
      Isolate::Scope iscope(v->isolate);
      v->prewarmed.Reset();
      v->prewarmed_queue.reset();
      v->raw_context.Reset();
      v->script.Reset();
      v->glue.Reset();
    }
    v->isolate->Dispose();
    v->isolate = nullptr;
  }
  delete v;
}

}  // extern "C"
