// The C++ layer's edges: a host function that throws, one that adds an error, list/map/bytes
// through io_proto, request metadata seen by the binding and the logging function, Execute
// before Init and after Stop, and an error's kinds; asynchronous bindings finished on another
// thread or rejected by a throw, per-request CPU profiles, Roma's shared-buffer settings, and
// roma's own settings checked by Init. Prints "ok NAME" per check; exits non-zero at the first
// failure.
#include <roma/roma.hpp>

#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <thread>

using namespace roma;

namespace {
using Meta = std::map<std::string, std::string>;

void Check(bool cond, const std::string& what) {
  if (!cond) {
    std::cerr << "FAIL " << what << std::endl;
    std::exit(1);
  }
}

std::mutex mu;
std::condition_variable cv;
std::string last_log;

// Runs one request and waits for its answer.
StatusOr<ResponseObject> Run(RomaService<Meta>& roma, const std::string& handler,
                             const std::string& input, Meta metadata = {}, bool profile = false) {
  auto req = std::make_unique<InvocationStrRequest<Meta>>();
  req->version_string = "v1";
  req->handler_name = handler;
  req->profile = profile;
  if (!input.empty()) req->input.push_back(input);
  req->metadata = std::move(metadata);
  std::optional<StatusOr<ResponseObject>> result;
  auto token = roma.Execute(std::move(req), [&](StatusOr<ResponseObject> r) {
    std::lock_guard<std::mutex> lock(mu);
    result.emplace(std::move(r));
    cv.notify_all();
  });
  if (!token.ok()) return token.status();
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return result.has_value(); });
  return *result;
}
}  // namespace

int main() {
  {
    RomaService<Meta> not_started;
    auto t = not_started.Execute(std::make_unique<InvocationStrRequest<Meta>>(),
                                 [](StatusOr<ResponseObject>) {});
    Check(!t.ok() && t.status().code() == StatusCode::kFailedPrecondition, "Execute before Init");
    std::cout << "ok execute_before_init" << std::endl;
  }

  // roma's own settings are checked by Init, and the error names the setting.
  for (auto [set, name] : std::vector<std::pair<void (*)(Config<Meta>&), std::string>>{
           {[](Config<Meta>& c) { c.tenant_pools = 1, c.max_tenants = 0; }, "max_tenants"},
           {[](Config<Meta>& c) { c.worker_grace_ms = 0; }, "worker_grace"},
           {[](Config<Meta>& c) { c.recycle_after_requests = 0; }, "recycle_after_requests"},
           {[](Config<Meta>& c) { c.async_binding_threads = 0; }, "async_binding_threads"},
           {[](Config<Meta>& c) { c.cgroup_pids_max = 0; }, "cgroup_pids_max"},
           {[](Config<Meta>& c) { c.cgroup_memory_max_mb = 0; }, "cgroup_memory_max_mb"},
           {[](Config<Meta>& c) { c.cgroup_cpu_quota_us = 10; }, "cgroup_cpu_max"},
       }) {
    Config<Meta> bad;
    set(bad);
    RomaService<Meta> svc(std::move(bad));
    auto s = svc.Init();
    Check(!s.ok() && s.code() == StatusCode::kInvalidArgument &&
              std::string(s.message()).rfind(name, 0) == 0,
          name + ": " + s.ToString());
  }
  std::cout << "ok settings_checked" << std::endl;

  Config<Meta> config;
  config.number_of_workers = 1;
  config.enable_profilers = true;
  config.sandbox_request_response_shared_buffer_size_mb = 2;
  config.sandbox_request_response_shared_buffer_only = true;
  config.async_binding_threads = 2;
  config.spin = false;
  auto later = std::make_unique<AsyncFunctionBindingObject<Meta>>();
  later->function_name = "later";
  later->function = [](AsyncFunctionBindingCall<Meta>& call) {
    std::thread([c = std::move(call)]() mutable {
      auto it = c.metadata.find("tenant");
      c.io_proto.set_output_string(c.io_proto.input_string() + ":" +
                                   (it == c.metadata.end() ? "none" : it->second));
      c.Finish();
    }).detach();
  };
  config.RegisterAsyncFunctionBinding(std::move(later));
  auto async_throws = std::make_unique<AsyncFunctionBindingObject<Meta>>();
  async_throws->function_name = "async_throws";
  async_throws->function = [](AsyncFunctionBindingCall<Meta>&) {
    throw std::runtime_error("async boom");
  };
  config.RegisterAsyncFunctionBinding(std::move(async_throws));
  auto async_unset = std::make_unique<AsyncFunctionBindingObject<Meta>>();
  async_unset->function_name = "async_in_place";
  // Left in place: it finishes when the function returns, with the output set here.
  async_unset->function = [](AsyncFunctionBindingCall<Meta>& call) {
    call.io_proto.set_output_string("in place");
  };
  config.RegisterAsyncFunctionBinding(std::move(async_unset));
  auto throws = std::make_unique<FunctionBindingObjectV2<Meta>>();
  throws->function_name = "throws";
  throws->function = [](FunctionBindingPayload<Meta>&) { throw std::runtime_error("boom from C++"); };
  config.RegisterFunctionBinding(std::move(throws));
  auto adds_error = std::make_unique<FunctionBindingObjectV2<Meta>>();
  adds_error->function_name = "adds_error";
  adds_error->function = [](FunctionBindingPayload<Meta>& p) {
    p.io_proto.mutable_errors()->Add("refused by the host");
  };
  config.RegisterFunctionBinding(std::move(adds_error));
  auto tenant = std::make_unique<FunctionBindingObjectV2<Meta>>();
  tenant->function_name = "tenant";
  tenant->function = [](FunctionBindingPayload<Meta>& p) {
    auto it = p.metadata.find("tenant");
    p.io_proto.set_output_string(it == p.metadata.end() ? "none" : it->second);
  };
  config.RegisterFunctionBinding(std::move(tenant));
  auto list = std::make_unique<FunctionBindingObjectV2<Meta>>();
  list->function_name = "list";
  list->function = [](FunctionBindingPayload<Meta>& p) {
    for (const auto& s : p.io_proto.input_list_of_string().data())
      p.io_proto.mutable_output_list_of_string()->mutable_data()->Add(s + "!");
  };
  config.RegisterFunctionBinding(std::move(list));
  auto map = std::make_unique<FunctionBindingObjectV2<Meta>>();
  map->function_name = "map";
  map->function = [](FunctionBindingPayload<Meta>& p) {
    for (const auto& [k, v] : p.io_proto.input_map_of_string().data())
      (*p.io_proto.mutable_output_map_of_string()->mutable_data())[v] = k;
  };
  config.RegisterFunctionBinding(std::move(map));
  auto bytes = std::make_unique<FunctionBindingObjectV2<Meta>>();
  bytes->function_name = "bytes";
  bytes->function = [](FunctionBindingPayload<Meta>& p) {
    std::string b = p.io_proto.input_bytes();
    for (auto& c : b) c = static_cast<char>(c + 1);
    p.io_proto.set_output_bytes(b);
  };
  config.RegisterFunctionBinding(std::move(bytes));
  config.SetLoggingFunction([](LogSeverity sev, const Meta& m, std::string_view msg) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = m.find("tenant");
    last_log = std::string(sev == LogSeverity::kWarning ? "warning " : "other ") +
               (it == m.end() ? "none" : it->second) + " " + std::string(msg);
  });

  RomaService<Meta> roma(std::move(config));
  auto status = roma.Init();
  Check(status.ok(), "Init: " + status.ToString());

  auto code = std::make_unique<CodeObject>();
  code->version_string = "v1";
  code->js = R"JS(
    function Throws() { return throws(); }
    function AddsError() { try { adds_error(); return "no"; } catch (e) { return "caught " + e.message; } }
    function Tenant() { return tenant(); }
    function List() { return list(["a", "b"]); }
    function MapF() { return Array.from(map(new Map([["k", "v"]])).entries()); }
    function Bytes() { return Array.from(bytes(new Uint8Array([1, 2]))); }
    function Warn(x) { console.warn("w " + x); return 1; }
    async function Later(x) { return await later(x) + "," + await async_in_place(); }
    async function AsyncThrows() { try { await async_throws(); return "no"; } catch (e) { return "caught " + e.message; } }
    function Spin() { let x = 0; for (let i = 0; i < 3e6; i++) x += i % 7; return x > 0; }
    function Len(s) { return s.length; }
  )JS";
  bool loaded = false;
  status = roma.LoadCodeObj(std::move(code), [&](StatusOr<ResponseObject> r) {
    std::lock_guard<std::mutex> lock(mu);
    Check(r.ok(), "load");
    loaded = true;
    cv.notify_all();
  });
  Check(status.ok(), "LoadCodeObj: " + status.ToString());
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return loaded; });
  }

  auto r = Run(roma, "Throws", "");
  Check(!r.ok() && r.status().roma_error_kind() == ROMA_ERROR_EXECUTION &&
            std::string(r.status().message()).find("boom from C++") != std::string::npos,
        "a throwing host function: " + r.status().ToString());
  r = Run(roma, "AddsError", "");
  Check(r.ok() && r->resp.find("caught") != std::string::npos &&
            r->resp.find("refused by the host") != std::string::npos,
        "errors from a host function");
  std::cout << "ok host_function_errors" << std::endl;

  r = Run(roma, "Tenant", "", {{"tenant", "acme"}});
  Check(r.ok() && r->resp == "\"acme\"", "metadata reaches the binding");
  r = Run(roma, "Tenant", "");
  Check(r.ok() && r->resp == "\"none\"", "another request's metadata does not");
  std::cout << "ok metadata" << std::endl;

  r = Run(roma, "List", "");
  Check(r.ok() && r->resp == "[\"a!\",\"b!\"]", "list: " + (r.ok() ? r->resp : ""));
  r = Run(roma, "MapF", "");
  Check(r.ok() && r->resp == "[[\"v\",\"k\"]]", "map: " + (r.ok() ? r->resp : ""));
  r = Run(roma, "Bytes", "");
  Check(r.ok() && r->resp == "[2,3]", "bytes: " + (r.ok() ? r->resp : ""));
  std::cout << "ok list_map_bytes" << std::endl;

  r = Run(roma, "Warn", "\"x\"", {{"tenant", "acme"}});
  {
    std::lock_guard<std::mutex> lock(mu);
    Check(last_log == "warning acme w x", "logging: " + last_log);
  }
  std::cout << "ok logging" << std::endl;

  r = Run(roma, "Later", "\"k\"", {{"tenant", "acme"}});
  Check(r.ok() && r->resp == "\"k:acme,in place\"", "async: " + (r.ok() ? r->resp : r.status().ToString()));
  r = Run(roma, "AsyncThrows", "");
  Check(r.ok() && r->resp.find("caught host function threw: async boom") != std::string::npos,
        "async throw: " + (r.ok() ? r->resp : r.status().ToString()));
  std::cout << "ok async_bindings" << std::endl;

  r = Run(roma, "Spin", "", {}, true);
  Check(r.ok() && r->resp == "true" && r->profiler_output.find("\"Spin\"") != std::string::npos,
        "a profile names the handler");
  r = Run(roma, "Spin", "");
  Check(r.ok() && r->profiler_output.empty(), "no profile unasked");
  std::cout << "ok profiles" << std::endl;

  std::string big = "\"" + std::string(3 << 20, 'a') + "\"";
  r = Run(roma, "Len", big);
  Check(!r.ok() && r.status().code() == StatusCode::kResourceExhausted,
        "over the shared buffer: " + r.status().ToString());
  r = Run(roma, "Len", "\"abc\"");
  Check(r.ok() && r->resp == "3", "a small one still runs");
  std::cout << "ok shared_buffer_only" << std::endl;

  r = Run(roma, "Missing", "");
  Check(!r.ok() && r.status().code() == StatusCode::kNotFound, "unknown handler: " + r.status().ToString());
  std::cout << "ok error_kinds" << std::endl;

  status = roma.Stop();
  Check(status.ok(), "Stop");
  r = Run(roma, "Tenant", "");
  Check(!r.ok(), "Execute after Stop is refused");
  std::cout << "ok use_after_stop" << std::endl;
  std::cout << "all ok" << std::endl;
  return 0;
}
