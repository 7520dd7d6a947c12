// roma.hpp: a header-only C++ layer over roma's C API with Google Roma's names, so a Roma user
// moves to roma by changing includes and a namespace (google::scp::roma becomes roma).
//
// Needs C++17 and libroma_c (pkg-config --cflags --libs roma). Without Abseil: the Status and
// StatusOr here are roma's own, also reachable as roma::absl::Status and roma::absl::StatusOr
// so that Roma code written against absl::StatusOr<ResponseObject> compiles after
// `using namespace roma;`. (A program that also includes Abseil then names the real ones as
// ::absl::StatusOr.) Callbacks run on roma's threads; an exception thrown by a callback is
// caught and dropped, one thrown by a host function becomes a JS exception.
#ifndef ROMA_ROMA_HPP
#define ROMA_ROMA_HPP

#include <roma.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace roma {

/// Status codes, numbered as absl::StatusCode.
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kInternal = 13,
  kUnavailable = 14,
};

/// An absl::Status look-alike that also keeps roma's error kind (ROMA_ERROR_*, 0 when ok).
class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message, roma_error_kind_t kind = 0)
      : code_(code), message_(std::move(message)), kind_(kind) {}
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  std::string_view message() const { return message_; }
  roma_error_kind_t roma_error_kind() const { return kind_; }
  std::string ToString() const { return ok() ? "OK" : message_; }

  /// An owned C error taken over (and freed); null is OK.
  static Status FromC(roma_error_t* e) {
    if (e == nullptr) return Status();
    size_t len = 0;
    const char* m = roma_error_message(e, &len);
    roma_error_kind_t kind = ::roma_error_kind(e);
    Status s(CodeOf(kind), std::string(m, len), kind);
    roma_error_delete(e);
    return s;
  }
  /// A borrowed C error, copied.
  static Status CopyC(const roma_error_t* e) {
    size_t len = 0;
    const char* m = roma_error_message(e, &len);
    roma_error_kind_t kind = ::roma_error_kind(e);
    return Status(CodeOf(kind), std::string(m, len), kind);
  }
  static StatusCode CodeOf(roma_error_kind_t kind) {
    switch (kind) {
      case ROMA_ERROR_INVALID_ARGUMENT:
      case ROMA_ERROR_BAD_INPUT:
        return StatusCode::kInvalidArgument;
      case ROMA_ERROR_HANDLER_NOT_FOUND:
      case ROMA_ERROR_VERSION_NOT_FOUND:
        return StatusCode::kNotFound;
      case ROMA_ERROR_TIMEOUT:
        return StatusCode::kDeadlineExceeded;
      case ROMA_ERROR_QUEUE_FULL:
      case ROMA_ERROR_OUT_OF_MEMORY:
      case ROMA_ERROR_PAYLOAD_TOO_LARGE:
        return StatusCode::kResourceExhausted;
      case ROMA_ERROR_CANCELLED:
        return StatusCode::kCancelled;
      default:
        return StatusCode::kInternal;
    }
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  roma_error_kind_t kind_ = 0;
};

inline Status OkStatus() { return Status(); }

/// An absl::StatusOr look-alike: a value or a non-OK status.
template <typename T>
class StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}
  StatusOr(Status status) : status_(std::move(status)) {
    if (status_.ok()) status_ = Status(StatusCode::kInternal, "StatusOr made from an OK status");
  }
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  const T& value() const& { return *value_; }
  T& value() & { return *value_; }
  T&& value() && { return std::move(*value_); }
  const T& operator*() const& { return *value_; }
  T& operator*() & { return *value_; }
  const T* operator->() const { return &*value_; }
  T* operator->() { return &*value_; }
  /// Its status, so `status = service.Execute(...)` compiles as in Roma's Getting Started.
  operator Status() const { return status_; }

 private:
  std::optional<T> value_;
  Status status_;
};

namespace absl {
using ::roma::OkStatus;
using ::roma::Status;
using ::roma::StatusCode;
using ::roma::StatusOr;
}  // namespace absl

/// Roma's default metadata type.
using DefaultMetadata = std::map<std::string, std::string>;

/// Log severities of the logging function, as absl::LogSeverity.
enum class LogSeverity : int { kInfo = 0, kWarning = 1, kError = 2, kFatal = 3 };

struct ResponseObject {
  std::string id;
  std::string resp;
  std::map<std::string, double> metrics;
  /// A profiled request's V8 CPU profile (.cpuprofile JSON, at most 1 MiB; made inside the
  /// sandbox, so untrusted text); empty otherwise.
  std::string profiler_output;
};

struct CodeObject {
  std::string id;
  std::string version_string;
  std::string js;
  std::string wasm;
  std::vector<std::uint8_t> wasm_bin;
  std::map<std::string, std::string> tags;
};

struct ExecutionToken {
  std::string value;
  std::shared_ptr<roma_execution_token_t> handle;
};

template <typename TMetadata = DefaultMetadata>
struct InvocationStrRequest {
  std::string id;
  std::string version_string;
  std::string handler_name;
  std::map<std::string, std::string> tags;
  std::vector<std::string> input;
  bool treat_input_as_byte_str = false;
  /// roma's: return a V8 CPU profile of the handler call in ResponseObject::profiler_output
  /// (needs Config::enable_profilers).
  bool profile = false;
  TMetadata metadata{};
};

namespace proto {

/// A repeated string field: a vector with protobuf's Add.
class RepeatedString : public std::vector<std::string> {
 public:
  void Add(std::string s) { push_back(std::move(s)); }
};
/// A string map field.
using StringMap = std::map<std::string, std::string>;

class ListOfStringProto {
 public:
  const RepeatedString& data() const { return data_; }
  RepeatedString* mutable_data() { return &data_; }

 private:
  RepeatedString data_;
};

class MapOfStringProto {
 public:
  const StringMap& data() const { return data_; }
  StringMap* mutable_data() { return &data_; }

 private:
  StringMap data_;
};

/// Roma's FunctionBindingIoProto without protobuf: the input JS passed, the output to return,
/// and errors to throw in JS instead.
class FunctionBindingIoProto {
 public:
  enum class Kind { kNone, kString, kList, kMap, kBytes };

  bool has_input_string() const { return in_ == Kind::kString; }
  bool has_input_list_of_string() const { return in_ == Kind::kList; }
  bool has_input_map_of_string() const { return in_ == Kind::kMap; }
  bool has_input_bytes() const { return in_ == Kind::kBytes; }
  const std::string& input_string() const { return in_string_; }
  const ListOfStringProto& input_list_of_string() const { return in_list_; }
  const MapOfStringProto& input_map_of_string() const { return in_map_; }
  const std::string& input_bytes() const { return in_bytes_; }
  void set_input_string(std::string s) { in_ = Kind::kString; in_string_ = std::move(s); }
  ListOfStringProto* mutable_input_list_of_string() { in_ = Kind::kList; return &in_list_; }
  MapOfStringProto* mutable_input_map_of_string() { in_ = Kind::kMap; return &in_map_; }
  void set_input_bytes(std::string b) { in_ = Kind::kBytes; in_bytes_ = std::move(b); }

  bool has_output_string() const { return out_ == Kind::kString; }
  bool has_output_list_of_string() const { return out_ == Kind::kList; }
  bool has_output_map_of_string() const { return out_ == Kind::kMap; }
  bool has_output_bytes() const { return out_ == Kind::kBytes; }
  const std::string& output_string() const { return out_string_; }
  const ListOfStringProto& output_list_of_string() const { return out_list_; }
  const MapOfStringProto& output_map_of_string() const { return out_map_; }
  const std::string& output_bytes() const { return out_bytes_; }
  void set_output_string(std::string s) { out_ = Kind::kString; out_string_ = std::move(s); }
  ListOfStringProto* mutable_output_list_of_string() { out_ = Kind::kList; return &out_list_; }
  MapOfStringProto* mutable_output_map_of_string() { out_ = Kind::kMap; return &out_map_; }
  void set_output_bytes(std::string b) { out_ = Kind::kBytes; out_bytes_ = std::move(b); }

  const RepeatedString& errors() const { return errors_; }
  RepeatedString* mutable_errors() { return &errors_; }

 private:
  Kind in_ = Kind::kNone, out_ = Kind::kNone;
  std::string in_string_, out_string_, in_bytes_, out_bytes_;
  ListOfStringProto in_list_, out_list_;
  MapOfStringProto in_map_, out_map_;
  RepeatedString errors_;
};

}  // namespace proto

template <typename TMetadata = DefaultMetadata>
struct FunctionBindingPayload {
  proto::FunctionBindingIoProto& io_proto;
  const TMetadata& metadata;
};

namespace proto {
// Roma's Getting Started names the payload proto::FunctionBindingPayload<>.
template <typename TMetadata = DefaultMetadata>
using FunctionBindingPayload = ::roma::FunctionBindingPayload<TMetadata>;
}  // namespace proto

template <typename TMetadata = DefaultMetadata>
struct FunctionBindingObjectV2 {
  std::string function_name;
  std::function<void(FunctionBindingPayload<TMetadata>&)> function;
};

/// One asynchronous host-function call (roma's; Roma has none): the input read into
/// io_proto, a copy of the request's metadata, and the duty to end the call. The function
/// gets it by reference: move it to another thread, set the output on io_proto there and call
/// Finish(). A call destroyed unfinished finishes itself (with whatever io_proto holds), so
/// the JS Promise always settles; one left unmoved when the function returns finishes then,
/// and one left unmoved when the function throws rejects with the exception's message.
template <typename TMetadata = DefaultMetadata>
class AsyncFunctionBindingCall {
 public:
  proto::FunctionBindingIoProto io_proto;
  TMetadata metadata;

  AsyncFunctionBindingCall(roma_host_call_t* call, proto::FunctionBindingIoProto io, TMetadata md)
      : io_proto(std::move(io)), metadata(std::move(md)), call_(call) {}
  AsyncFunctionBindingCall(AsyncFunctionBindingCall&& o) noexcept
      : io_proto(std::move(o.io_proto)), metadata(std::move(o.metadata)), call_(o.call_) {
    o.call_ = nullptr;
  }
  AsyncFunctionBindingCall& operator=(AsyncFunctionBindingCall&& o) noexcept {
    if (this != &o) {
      Finish();
      io_proto = std::move(o.io_proto);
      metadata = std::move(o.metadata);
      call_ = o.call_;
      o.call_ = nullptr;
    }
    return *this;
  }
  AsyncFunctionBindingCall(const AsyncFunctionBindingCall&) = delete;
  AsyncFunctionBindingCall& operator=(const AsyncFunctionBindingCall&) = delete;
  ~AsyncFunctionBindingCall() { Finish(); }

  /// Returns io_proto's output (or errors) to JS; later calls do nothing.
  void Finish() noexcept;
  /// Whether the call was finished (or moved from).
  bool finished() const { return call_ == nullptr; }

 private:
  roma_host_call_t* call_;
};

/// An asynchronous host function under the name JS calls it by (roma's; in JS it returns a
/// Promise). `function` runs on the worker's slot thread: it must hand the call on (to a
/// thread of its own) rather than block.
template <typename TMetadata = DefaultMetadata>
struct AsyncFunctionBindingObject {
  std::string function_name;
  std::function<void(AsyncFunctionBindingCall<TMetadata>&)> function;
};

/// Roma's Config. The public fields keep Roma's names; 0 (or empty) keeps roma's default.
/// roma's own settings are std::optional: unset keeps roma's default, a set value is checked
/// by Init() as roma::Config is by RomaService::new (the error names the setting).
template <typename TMetadata = DefaultMetadata>
class Config {
 public:
  using LoggingFunction = std::function<void(LogSeverity, const TMetadata&, std::string_view)>;
  /// What a worker writes to its stderr: its index and one line (untrusted text).
  using WorkerOutputFunction = std::function<void(size_t, std::string_view)>;

  size_t number_of_workers = 0;
  size_t worker_queue_max_items = 0;
  size_t code_version_cache_size = 0;
  size_t max_wasm_memory_number_of_pages = 0;
  size_t max_worker_virtual_memory_mb = 0;
  /// The shared-memory buffer each way, in MB (roma's payload fast path); 0: 1 MB.
  size_t sandbox_request_response_shared_buffer_size_mb = 0;
  /// A payload larger than the buffer fails (ResourceExhausted) instead of taking the socket.
  bool sandbox_request_response_shared_buffer_only = false;
  /// Let requests ask for a V8 CPU profile (InvocationStrRequest::profile).
  bool enable_profilers = false;
  /// roma's own settings beyond Roma's.
  std::uint64_t default_timeout_ms = 0;
  std::uint64_t load_timeout_ms = 0;
  std::optional<std::uint32_t> sandbox;    // ROMA_SANDBOX_*
  std::optional<std::uint32_t> transport;  // ROMA_TRANSPORT_*
  std::vector<std::string> v8_flags;
  std::string worker_library;  // libroma_worker.so; default $ROMA_WORKER_LIB
  std::string node_binary;     // the pinned node; default $ROMA_NODE
  std::optional<std::uint64_t> worker_startup_timeout_ms;
  std::optional<std::uint64_t> queue_wait_timeout_ms;  // 0: BatchExecute never waits
  std::optional<std::uint64_t> worker_grace_ms;
  std::optional<size_t> max_array_buffer_mb;
  std::optional<std::uint64_t> worker_data_limit_mb;  // RLIMIT_DATA; default 4096
  bool no_worker_data_limit = false;                  // no RLIMIT_DATA at all
  std::optional<size_t> payload_fast_path_bytes;      // wins over the buffer size in MB
  std::optional<size_t> max_payload_bytes;
  std::optional<bool> prewarm;
  std::optional<bool> host_functions_inline;
  std::optional<bool> spin;
  std::optional<size_t> async_binding_threads;
  std::optional<std::uint32_t> worker_uid;
  std::optional<std::uint64_t> recycle_after_requests;
  std::optional<std::uint64_t> recycle_after_age_ms;
  std::optional<std::uint64_t> recycle_idle_cpu_per_sec_ms;
  bool no_recycle_idle_cpu = false;  // never recycle a worker for its idle CPU use
  std::optional<size_t> tenant_pools;  // workers per tenant
  std::optional<size_t> max_tenants;
  std::optional<std::uint64_t> cgroup_memory_max_mb;  // each worker in a cgroup of its own
  std::optional<std::uint64_t> cgroup_pids_max;
  std::optional<std::uint64_t> cgroup_cpu_quota_us;   // per cgroup_cpu_period_us
  std::uint64_t cgroup_cpu_period_us = 100000;
  std::string cgroup_parent;                          // cgroup v2 only; default the host's
  std::optional<std::uint64_t> low_latency_ms;        // idle poll bound; 0 or unset: off

  void RegisterFunctionBinding(std::unique_ptr<FunctionBindingObjectV2<TMetadata>> binding) {
    bindings_.push_back(std::move(binding));
  }
  void ConfigureJsEngineResourceConstraints(size_t initial_heap_size_in_mb,
                                            size_t maximum_heap_size_in_mb) {
    heap_ = {initial_heap_size_in_mb, maximum_heap_size_in_mb};
  }
  void SetLoggingFunction(LoggingFunction f) { logging_ = std::move(f); }
  /// roma's: registers an asynchronous host function.
  void RegisterAsyncFunctionBinding(std::unique_ptr<AsyncFunctionBindingObject<TMetadata>> binding) {
    async_bindings_.push_back(std::move(binding));
  }
  /// roma's: where what workers write to their stderr goes (default: this process's stderr).
  void SetWorkerOutputFunction(WorkerOutputFunction f) { worker_output_ = std::move(f); }

 private:
  template <typename>
  friend class RomaService;
  std::vector<std::unique_ptr<FunctionBindingObjectV2<TMetadata>>> bindings_;
  std::vector<std::unique_ptr<AsyncFunctionBindingObject<TMetadata>>> async_bindings_;
  std::optional<std::pair<size_t, size_t>> heap_;
  LoggingFunction logging_;
  WorkerOutputFunction worker_output_;
};

namespace detail {
inline proto::FunctionBindingIoProto ReadInput(roma_host_io_t* io) {
  proto::FunctionBindingIoProto p;
  const char* s = nullptr;
  size_t len = 0;
  switch (roma_host_io_input_kind(io)) {
    case ROMA_INPUT_STRING:
    case ROMA_INPUT_JSON:
      if (roma_error_t* e = roma_host_io_input_string(io, &s, &len)) roma_error_delete(e);
      else p.set_input_string(std::string(s, len));
      break;
    case ROMA_INPUT_LIST: {
      auto* l = p.mutable_input_list_of_string()->mutable_data();
      for (size_t i = 0, n = roma_host_io_input_len(io); i < n; ++i) {
        if (roma_error_t* e = roma_host_io_input_list_get(io, i, &s, &len)) roma_error_delete(e);
        else l->Add(std::string(s, len));
      }
      break;
    }
    case ROMA_INPUT_MAP: {
      auto* m = p.mutable_input_map_of_string()->mutable_data();
      const char* v = nullptr;
      size_t vlen = 0;
      for (size_t i = 0, n = roma_host_io_input_len(io); i < n; ++i) {
        if (roma_error_t* e = roma_host_io_input_map_get(io, i, &s, &len, &v, &vlen))
          roma_error_delete(e);
        else (*m)[std::string(s, len)] = std::string(v, vlen);
      }
      break;
    }
    case ROMA_INPUT_BYTES: {
      const std::uint8_t* b = nullptr;
      if (roma_error_t* e = roma_host_io_input_bytes(io, &b, &len)) roma_error_delete(e);
      else p.set_input_bytes(std::string(reinterpret_cast<const char*>(b), len));
      break;
    }
    default:
      break;
  }
  return p;
}

inline void Check(roma_error_t* e) { roma_error_delete(e); }

inline void WriteOutput(roma_host_io_t* io, const proto::FunctionBindingIoProto& p) {
  for (const auto& e : p.errors()) Check(roma_host_io_add_error(io, e.data(), e.size()));
  if (!p.errors().empty()) return;
  if (p.has_output_string()) {
    // A string that is not UTF-8 fails the JS call rather than being dropped silently.
    if (roma_error_t* e =
            roma_host_io_set_output_string(io, p.output_string().data(), p.output_string().size())) {
      size_t len = 0;
      const char* m = roma_error_message(e, &len);
      Check(roma_host_io_add_error(io, m, len));
      roma_error_delete(e);
    }
  } else if (p.has_output_list_of_string()) {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const auto& s : p.output_list_of_string().data()) {
      ptrs.push_back(s.data());
      lens.push_back(s.size());
    }
    Check(roma_host_io_set_output_list(io, ptrs.data(), lens.data(), ptrs.size()));
  } else if (p.has_output_map_of_string()) {
    std::vector<const char*> ks, vs;
    std::vector<size_t> kl, vl;
    for (const auto& [k, v] : p.output_map_of_string().data()) {
      ks.push_back(k.data());
      kl.push_back(k.size());
      vs.push_back(v.data());
      vl.push_back(v.size());
    }
    Check(roma_host_io_set_output_map(io, ks.data(), kl.data(), vs.data(), vl.data(), ks.size()));
  } else if (p.has_output_bytes()) {
    const auto& b = p.output_bytes();
    Check(roma_host_io_set_output_bytes(io, reinterpret_cast<const std::uint8_t*>(b.data()),
                                        b.size()));
  }
}

inline ResponseObject ToResponse(const roma_response_t* r) {
  ResponseObject out;
  size_t len = 0;
  const char* s = roma_response_id(r, &len);
  out.id.assign(s, len);
  s = roma_response_resp(r, &len);
  out.resp.assign(s, len);
  s = roma_response_profiler_output(r, &len);
  out.profiler_output.assign(s, len);
  for (size_t i = 0, n = roma_response_metrics_len(r); i < n; ++i) {
    const char* name = nullptr;
    double v = 0;
    if (roma_response_metric(r, i, &name, &v)) out.metrics[name] = v;
  }
  return out;
}

/// Builds a C request from a C++ one; the metadata pointer is set by the caller.
template <typename TMetadata>
Status ToRequest(const InvocationStrRequest<TMetadata>& r, roma_request_t* c) {
  Status s = Status::FromC(roma_request_set_id(c, r.id.data(), r.id.size()));
  if (s.ok()) s = Status::FromC(roma_request_set_version(c, r.version_string.data(), r.version_string.size()));
  if (s.ok()) s = Status::FromC(roma_request_set_handler(c, r.handler_name.data(), r.handler_name.size()));
  for (const auto& in : r.input)
    if (s.ok()) s = Status::FromC(roma_request_add_input(c, in.data(), in.size()));
  for (const auto& [k, v] : r.tags)
    if (s.ok()) s = Status::FromC(roma_request_set_tag(c, k.data(), k.size(), v.data(), v.size()));
  if (s.ok()) s = Status::FromC(roma_request_set_treat_input_as_byte_str(c, r.treat_input_as_byte_str));
  if (s.ok() && r.profile) s = Status::FromC(roma_request_set_profile(c, true));
  return s;
}

struct RequestDeleter {
  void operator()(roma_request_t* r) const { roma_request_delete(r); }
};
using RequestPtr = std::unique_ptr<roma_request_t, RequestDeleter>;
}  // namespace detail

template <typename TMetadata>
void AsyncFunctionBindingCall<TMetadata>::Finish() noexcept {
  if (call_ == nullptr) return;
  roma_host_call_t* call = call_;
  call_ = nullptr;
  try {
    detail::WriteOutput(roma_host_call_io(call), io_proto);
  } catch (...) {
    static const char kMsg[] = "asynchronous host function: its output could not be set";
    detail::Check(roma_host_io_add_error(roma_host_call_io(call), kMsg, sizeof kMsg - 1));
  }
  roma_host_call_finish(call);
}

/// Roma's RomaService: Init, LoadCodeObj, Execute, BatchExecute, Cancel, Stop.
template <typename TMetadata = DefaultMetadata>
class RomaService {
 public:
  using Callback = std::function<void(StatusOr<ResponseObject>)>;
  using BatchCallback = std::function<void(const std::vector<StatusOr<ResponseObject>>&)>;

  explicit RomaService(Config<TMetadata> config = Config<TMetadata>()) : config_(std::move(config)) {}
  RomaService(const RomaService&) = delete;
  RomaService& operator=(const RomaService&) = delete;
  /// Stops the service (queued requests are answered Cancelled) and frees it.
  ~RomaService() { roma_service_delete(service_); }

  /// Starts the workers; blocks until they are up.
  Status Init() {
    if (service_ != nullptr) return Status(StatusCode::kFailedPrecondition, "Init was already called");
    roma_config_t* c = roma_config_new();
    Status s;
    auto set = [&](roma_error_t* e) {
      if (s.ok()) s = Status::FromC(e);
      else roma_error_delete(e);
    };
    if (config_.number_of_workers) set(roma_config_set_number_of_workers(c, config_.number_of_workers));
    if (config_.worker_queue_max_items)
      set(roma_config_set_worker_queue_max_items(c, config_.worker_queue_max_items));
    if (config_.code_version_cache_size)
      set(roma_config_set_code_version_cache_size(c, config_.code_version_cache_size));
    if (config_.max_wasm_memory_number_of_pages)
      set(roma_config_set_max_wasm_memory_pages(
          c, static_cast<std::uint32_t>(config_.max_wasm_memory_number_of_pages)));
    if (config_.max_worker_virtual_memory_mb)
      set(roma_config_set_worker_address_space_mb(c, config_.max_worker_virtual_memory_mb));
    if (config_.default_timeout_ms) set(roma_config_set_default_timeout_ms(c, config_.default_timeout_ms));
    if (config_.load_timeout_ms) set(roma_config_set_load_timeout_ms(c, config_.load_timeout_ms));
    if (config_.sandbox) set(roma_config_set_sandbox(c, *config_.sandbox));
    if (config_.transport) set(roma_config_set_transport(c, *config_.transport));
    for (const auto& f : config_.v8_flags) set(roma_config_add_v8_flag(c, f.data(), f.size()));
    if (!config_.worker_library.empty())
      set(roma_config_set_worker_library(c, config_.worker_library.data(), config_.worker_library.size()));
    if (!config_.node_binary.empty())
      set(roma_config_set_node_binary(c, config_.node_binary.data(), config_.node_binary.size()));
    if (config_.heap_)
      set(roma_config_set_js_engine_resource_constraints(c, config_.heap_->first, config_.heap_->second));
    if (config_.sandbox_request_response_shared_buffer_size_mb)
      set(roma_config_set_payload_fast_path_bytes(
          c, config_.sandbox_request_response_shared_buffer_size_mb << 20));
    if (config_.sandbox_request_response_shared_buffer_only)
      set(roma_config_set_oversize_payloads(c, ROMA_OVERSIZE_REJECT));
    if (config_.enable_profilers) set(roma_config_set_enable_profilers(c, true));
    if (config_.worker_startup_timeout_ms)
      set(roma_config_set_worker_startup_timeout_ms(c, *config_.worker_startup_timeout_ms));
    if (config_.queue_wait_timeout_ms)
      set(roma_config_set_queue_wait_timeout_ms(c, *config_.queue_wait_timeout_ms));
    if (config_.worker_grace_ms) set(roma_config_set_worker_grace_ms(c, *config_.worker_grace_ms));
    if (config_.max_array_buffer_mb)
      set(roma_config_set_max_array_buffer_mb(c, *config_.max_array_buffer_mb));
    if (config_.worker_data_limit_mb)
      set(roma_config_set_worker_data_limit_mb(c, *config_.worker_data_limit_mb));
    if (config_.no_worker_data_limit) set(roma_config_unset_worker_data_limit_mb(c));
    if (config_.payload_fast_path_bytes)
      set(roma_config_set_payload_fast_path_bytes(c, *config_.payload_fast_path_bytes));
    if (config_.max_payload_bytes) set(roma_config_set_max_payload_bytes(c, *config_.max_payload_bytes));
    if (config_.prewarm) set(roma_config_set_prewarm(c, *config_.prewarm));
    if (config_.host_functions_inline)
      set(roma_config_set_host_functions_inline(c, *config_.host_functions_inline));
    if (config_.spin) set(roma_config_set_spin(c, *config_.spin));
    if (config_.async_binding_threads)
      set(roma_config_set_async_binding_threads(c, *config_.async_binding_threads));
    if (config_.worker_uid) set(roma_config_set_worker_uid(c, *config_.worker_uid));
    if (config_.recycle_after_requests)
      set(roma_config_set_recycle_after_requests(c, *config_.recycle_after_requests));
    if (config_.recycle_after_age_ms)
      set(roma_config_set_recycle_after_age_ms(c, *config_.recycle_after_age_ms));
    if (config_.recycle_idle_cpu_per_sec_ms)
      set(roma_config_set_recycle_idle_cpu_per_sec_ms(c, *config_.recycle_idle_cpu_per_sec_ms));
    if (config_.no_recycle_idle_cpu) set(roma_config_unset_recycle_idle_cpu_per_sec(c));
    if (config_.tenant_pools) set(roma_config_set_tenant_pools(c, *config_.tenant_pools));
    if (config_.max_tenants) set(roma_config_set_max_tenants(c, *config_.max_tenants));
    if (config_.cgroup_memory_max_mb)
      set(roma_config_set_cgroup_memory_max_mb(c, *config_.cgroup_memory_max_mb));
    if (config_.cgroup_pids_max) set(roma_config_set_cgroup_pids_max(c, *config_.cgroup_pids_max));
    if (config_.cgroup_cpu_quota_us)
      set(roma_config_set_cgroup_cpu_max(c, *config_.cgroup_cpu_quota_us,
                                         config_.cgroup_cpu_period_us));
    if (!config_.cgroup_parent.empty())
      set(roma_config_set_cgroup_parent(c, config_.cgroup_parent.data(),
                                        config_.cgroup_parent.size()));
    if (config_.low_latency_ms) set(roma_config_set_low_latency_ms(c, *config_.low_latency_ms));
    for (auto& b : config_.bindings_) {
      auto* fn = new std::function<void(FunctionBindingPayload<TMetadata>&)>(std::move(b->function));
      set(roma_config_register_function(c, b->function_name.data(), b->function_name.size(),
                                        &HostTrampoline, fn, &DeleteBinding));
    }
    config_.bindings_.clear();
    for (auto& b : config_.async_bindings_) {
      auto* fn = new AsyncFn(std::move(b->function));
      set(roma_config_register_async_function(c, b->function_name.data(), b->function_name.size(),
                                              &AsyncTrampoline, fn, &DeleteAsyncBinding));
    }
    config_.async_bindings_.clear();
    if (config_.worker_output_) {
      auto* fn = new typename Config<TMetadata>::WorkerOutputFunction(std::move(config_.worker_output_));
      set(roma_config_set_worker_output_function(c, &WorkerOutputTrampoline, fn, &DeleteWorkerOutput));
    }
    if (config_.logging_) {
      auto* fn = new typename Config<TMetadata>::LoggingFunction(std::move(config_.logging_));
      set(roma_config_set_logging_function(c, &LogTrampoline, fn, &DeleteLogger));
    }
    if (!s.ok()) {
      roma_config_delete(c);
      return s;
    }
    return Status::FromC(roma_service_new(c, &service_));
  }

  /// Loads a code object into every worker; `callback` runs once all have it.
  template <typename F>
  Status LoadCodeObj(std::unique_ptr<CodeObject> code, F&& callback) {
    if (code == nullptr) return Status(StatusCode::kInvalidArgument, "code object is null");
    if (service_ == nullptr) return NotStarted();
    roma_code_object_t* c = roma_code_object_new();
    Status s = Status::FromC(roma_code_object_set_id(c, code->id.data(), code->id.size()));
    if (s.ok()) s = Status::FromC(roma_code_object_set_version(c, code->version_string.data(), code->version_string.size()));
    if (s.ok() && !code->js.empty()) s = Status::FromC(roma_code_object_set_js(c, code->js.data(), code->js.size()));
    if (s.ok() && !code->wasm.empty())
      s = Status::FromC(roma_code_object_set_wasm(c, reinterpret_cast<const std::uint8_t*>(code->wasm.data()), code->wasm.size()));
    if (s.ok() && !code->wasm_bin.empty())
      s = Status::FromC(roma_code_object_set_wasm(c, code->wasm_bin.data(), code->wasm_bin.size()));
    for (const auto& [k, v] : code->tags)
      if (s.ok()) s = Status::FromC(roma_code_object_set_tag(c, k.data(), k.size(), v.data(), v.size()));
    if (s.ok()) {
      auto* pending = new Pending{Callback(std::forward<F>(callback)), nullptr};
      s = Status::FromC(roma_service_load(service_, c, &Answer, pending));
      if (!s.ok()) delete pending;
    }
    roma_code_object_delete(c);
    return s;
  }

  /// Runs a request; `callback` runs once with its response. The token cancels it.
  template <typename F>
  StatusOr<ExecutionToken> Execute(std::unique_ptr<InvocationStrRequest<TMetadata>> request, F&& callback) {
    if (request == nullptr) return Status(StatusCode::kInvalidArgument, "request is null");
    if (service_ == nullptr) return NotStarted();
    detail::RequestPtr c(roma_request_new());
    Status s = detail::ToRequest(*request, c.get());
    if (!s.ok()) return s;
    auto* pending = new Pending{Callback(std::forward<F>(callback)),
                                std::make_unique<TMetadata>(std::move(request->metadata))};
    Check(roma_request_set_metadata(c.get(), pending->metadata.get()));
    roma_execution_token_t* token = nullptr;
    s = Status::FromC(roma_service_execute(service_, c.get(), &Answer, pending, &token));
    if (!s.ok()) {
      delete pending;
      return s;
    }
    ExecutionToken t;
    t.value = request->id;
    t.handle.reset(token, &roma_execution_token_delete);
    return t;
  }

  /// Roma's BatchExecute: blocks until every request is enqueued; `callback` runs once with
  /// one result per request, in order.
  template <typename F>
  Status BatchExecute(std::vector<InvocationStrRequest<TMetadata>>& batch, F&& callback) {
    if (service_ == nullptr) return NotStarted();
    auto* pending = new BatchPending{BatchCallback(std::forward<F>(callback)), {}};
    std::vector<detail::RequestPtr> owned;
    std::vector<const roma_request_t*> ptrs;
    for (auto& r : batch) {
      owned.emplace_back(roma_request_new());
      Status s = detail::ToRequest(r, owned.back().get());
      if (!s.ok()) {
        delete pending;
        return s;
      }
      pending->metadata.push_back(std::make_unique<TMetadata>(r.metadata));
      Check(roma_request_set_metadata(owned.back().get(), pending->metadata.back().get()));
      ptrs.push_back(owned.back().get());
    }
    Status s = Status::FromC(
        roma_service_batch_execute(service_, ptrs.data(), ptrs.size(), &BatchAnswer, pending));
    if (!s.ok()) delete pending;
    return s;
  }

  /// Cancels an accepted execution: it is answered Cancelled unless it already finished.
  void Cancel(const ExecutionToken& token) {
    if (token.handle) roma_service_cancel(service_, token.handle.get());
  }

  /// Stops the service: queued requests are answered Cancelled, workers exit.
  Status Stop() {
    if (service_ == nullptr) return Status();
    return Status::FromC(roma_service_stop(service_));
  }

 private:
  struct Pending {
    Callback callback;
    std::unique_ptr<TMetadata> metadata;
  };
  struct BatchPending {
    BatchCallback callback;
    std::vector<std::unique_ptr<TMetadata>> metadata;
  };

  static void Check(roma_error_t* e) { roma_error_delete(e); }
  static Status NotStarted() {
    return Status(StatusCode::kFailedPrecondition, "Init was not called, or failed",
                  ROMA_ERROR_INVALID_ARGUMENT);
  }

  static void Answer(void* data, roma_response_t* r, roma_error_t* e) noexcept {
    std::unique_ptr<Pending> p(static_cast<Pending*>(data));
    try {
      if (r != nullptr) {
        ResponseObject out = detail::ToResponse(r);
        roma_response_delete(r);
        p->callback(StatusOr<ResponseObject>(std::move(out)));
      } else {
        p->callback(StatusOr<ResponseObject>(Status::FromC(e)));
      }
    } catch (...) {
      // An exception must not unwind into roma's threads; the callback had its chance.
    }
  }

  static void BatchAnswer(void* data, roma_batch_t* b) noexcept {
    std::unique_ptr<BatchPending> p(static_cast<BatchPending*>(data));
    try {
      std::vector<StatusOr<ResponseObject>> out;
      for (size_t i = 0, n = roma_batch_len(b); i < n; ++i) {
        const roma_response_t* r = nullptr;
        const roma_error_t* e = nullptr;
        roma_batch_get(b, i, &r, &e);
        if (r != nullptr) out.emplace_back(detail::ToResponse(r));
        else out.emplace_back(Status::CopyC(e));
      }
      roma_batch_delete(b);
      b = nullptr;
      p->callback(out);
    } catch (...) {
    }
    roma_batch_delete(b);
  }

  static void HostTrampoline(void* env, roma_host_io_t* io, void* metadata) noexcept {
    static const TMetadata kNoMetadata{};
    auto* fn = static_cast<std::function<void(FunctionBindingPayload<TMetadata>&)>*>(env);
    try {
      proto::FunctionBindingIoProto p = detail::ReadInput(io);
      const TMetadata& md = metadata != nullptr ? *static_cast<const TMetadata*>(metadata) : kNoMetadata;
      FunctionBindingPayload<TMetadata> payload{p, md};
      (*fn)(payload);
      detail::WriteOutput(io, p);
    } catch (const std::exception& ex) {
      std::string m = std::string("host function threw: ") + ex.what();
      Check(roma_host_io_add_error(io, m.data(), m.size()));
    } catch (...) {
      static const char kMsg[] = "host function threw a non-std exception";
      Check(roma_host_io_add_error(io, kMsg, sizeof kMsg - 1));
    }
  }
  static void DeleteBinding(void* env) noexcept {
    delete static_cast<std::function<void(FunctionBindingPayload<TMetadata>&)>*>(env);
  }

  using AsyncFn = std::function<void(AsyncFunctionBindingCall<TMetadata>&)>;
  static void AsyncTrampoline(void* env, roma_host_call_t* call, void* metadata) noexcept {
    auto* fn = static_cast<AsyncFn*>(env);
    std::optional<AsyncFunctionBindingCall<TMetadata>> c;
    auto reject = [&](const char* what, size_t len) {
      if (c && c->finished()) return;  // the user's function took the call
      if (c) {
        c->io_proto.mutable_errors()->Add(std::string(what, len));
        c->Finish();
      } else {
        Check(roma_host_io_add_error(roma_host_call_io(call), what, len));
        roma_host_call_finish(call);
      }
    };
    try {
      // The metadata is copied: the call may outlive its request (a timeout answers the
      // request while the call still runs), and with it the metadata roma points to.
      c.emplace(call, detail::ReadInput(roma_host_call_io(call)),
                metadata != nullptr ? *static_cast<const TMetadata*>(metadata) : TMetadata{});
      (*fn)(*c);
    } catch (const std::exception& ex) {
      std::string m = std::string("host function threw: ") + ex.what();
      reject(m.data(), m.size());
    } catch (...) {
      static const char kMsg[] = "host function threw a non-std exception";
      reject(kMsg, sizeof kMsg - 1);
    }
    // A call the function left in place finishes as c goes out of scope.
  }
  static void DeleteAsyncBinding(void* env) noexcept { delete static_cast<AsyncFn*>(env); }

  static void WorkerOutputTrampoline(void* env, size_t worker, const char* line, size_t len) noexcept {
    try {
      (*static_cast<typename Config<TMetadata>::WorkerOutputFunction*>(env))(
          worker, std::string_view(line, len));
    } catch (...) {
    }
  }
  static void DeleteWorkerOutput(void* env) noexcept {
    delete static_cast<typename Config<TMetadata>::WorkerOutputFunction*>(env);
  }

  static void LogTrampoline(void* env, std::uint32_t level, const char* msg, size_t len,
                            void* metadata) noexcept {
    static const TMetadata kNoMetadata{};
    auto* fn = static_cast<typename Config<TMetadata>::LoggingFunction*>(env);
    LogSeverity sev = level >= ROMA_LOG_ERROR     ? LogSeverity::kError
                      : level == ROMA_LOG_WARNING ? LogSeverity::kWarning
                                                  : LogSeverity::kInfo;
    try {
      (*fn)(sev, metadata != nullptr ? *static_cast<const TMetadata*>(metadata) : kNoMetadata,
            std::string_view(msg, len));
    } catch (...) {
    }
  }
  static void DeleteLogger(void* env) noexcept {
    delete static_cast<typename Config<TMetadata>::LoggingFunction*>(env);
  }

  Config<TMetadata> config_;
  roma_service_t* service_ = nullptr;
};

}  // namespace roma

#endif  // ROMA_ROMA_HPP
