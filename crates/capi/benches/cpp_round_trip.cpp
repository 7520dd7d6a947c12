// The C++ side of `cargo bench -p roma-capi`: a roma::RomaService<> (roma.hpp, over libroma_c)
// with Roma's Getting Started handler, and one hello-world round trip the way a Roma user
// writes it (Execute with a callback, the answer awaited). The bench compiles this into a
// shared library against libroma_c.so and calls these three functions beside its other
// contenders (round_trip.rs).
#include <roma/roma.hpp>

#include <condition_variable>
#include <memory>
#include <mutex>

namespace {
// A one-shot answer: set by the callback on roma's thread, awaited by the caller.
struct Answer {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool ok = false;

  // Notifies after unlocking, so the woken thread does not wake into a mutex still held (a
  // second sleep and wake-up on a machine with few cores).
  void Set(bool result) {
    {
      std::lock_guard<std::mutex> lock(mu);
      ok = result;
      done = true;
    }
    cv.notify_all();
  }
};
}  // namespace

extern "C" {

// Starts a one-worker service with the handler loaded; null on failure.
void* bench_cpp_start(const char* worker_library) noexcept {
  try {
    roma::Config<> config;
    config.number_of_workers = 1;
    config.worker_library = worker_library;
    auto svc = std::make_unique<roma::RomaService<>>(std::move(config));
    if (!svc->Init().ok()) return nullptr;
    auto code = std::make_unique<roma::CodeObject>();
    code->id = "foo";
    code->version_string = "v1";
    code->js = R"JS(function Handler(input) { return "Hello world! " + JSON.stringify(input); })JS";
    Answer a;
    auto s = svc->LoadCodeObj(std::move(code), [&](roma::StatusOr<roma::ResponseObject> r) {
      a.Set(r.ok());
    });
    if (!s.ok()) return nullptr;
    std::unique_lock<std::mutex> lock(a.mu);
    a.cv.wait(lock, [&] { return a.done; });
    return a.ok ? svc.release() : nullptr;
  } catch (...) {
    return nullptr;
  }
}

// One hello-world round trip; false if it failed.
bool bench_cpp_call(void* service) noexcept {
  try {
    auto* svc = static_cast<roma::RomaService<>*>(service);
    auto req = std::make_unique<roma::InvocationStrRequest<>>();
    req->id = "foo";
    req->version_string = "v1";
    req->handler_name = "Handler";
    req->input.push_back("\"Foobar\"");
    auto a = std::make_shared<Answer>();
    auto t = svc->Execute(std::move(req), [a](roma::StatusOr<roma::ResponseObject> r) {
      a->Set(r.ok() && r->resp == R"("Hello world! \"Foobar\"")");
    });
    if (!t.ok()) return false;
    std::unique_lock<std::mutex> lock(a->mu);
    a->cv.wait(lock, [&] { return a->done; });
    return a->ok;
  } catch (...) {
    return false;
  }
}

// Stops and frees the service.
void bench_cpp_stop(void* service) noexcept { delete static_cast<roma::RomaService<>*>(service); }
}
