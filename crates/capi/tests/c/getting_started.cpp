// Roma's Getting Started (its four snippets) in one main, built against roma.hpp. Changed from
// Roma's text: the includes, the namespace (`using namespace roma`), the batch's re-declared
// `execution_obj` (renamed `batch_execution_obj`), the callbacks' bodies (they print what they
// receive), and a wait for the three callbacks before Stop, which cancels what is still queued.
#include <roma/roma.hpp>

#include <condition_variable>
#include <iostream>
#include <mutex>

using namespace roma;
using std::make_unique;
using std::move;
using std::vector;

namespace {
std::mutex mu;
std::condition_variable cv;
int answered = 0;

void Print(const std::string& what, const absl::StatusOr<ResponseObject>& resp) {
  std::lock_guard<std::mutex> lock(mu);
  if (resp.ok()) std::cout << what << ": " << resp->resp << std::endl;
  else std::cout << what << " failed: " << resp.status().message() << std::endl;
}

void Done() {
  std::lock_guard<std::mutex> lock(mu);
  ++answered;
  cv.notify_all();
}
}  // namespace

// an example of UDF
void StringInStringOutFunction(proto::FunctionBindingPayload<>& wrapper) {
  wrapper.io_proto.set_output_string(wrapper.io_proto.input_string() + " String from C++");
}

int main() {
  // create a config for roma initialization
  Config config;

  // Set the number of workers
  config.number_of_workers = 2;

  // Register UDF objects in Config
  auto function_binding_object = make_unique<FunctionBindingObjectV2<>>();
  // Binding the `StringInStringOutFunction`
  function_binding_object->function = StringInStringOutFunction;
  function_binding_object->function_name = "cool_function";
  config.RegisterFunctionBinding(move(function_binding_object));

  // Set the V8 engine resource constraints.
  config.ConfigureJsEngineResourceConstraints(1 /*initial_heap_size_in_mb*/,
                                              15 /*maximum_heap_size_in_mb*/);

  // Init Roma with above config.
  RomaService<> roma_service(std::move(config));
  auto status = roma_service.Init();
  if (!status.ok()) {
    std::cout << "Init failed: " << status.message() << std::endl;
    return 1;
  }

  auto code_obj = make_unique<CodeObject>();
  code_obj->id = "foo";
  code_obj->version_string = "v1";
  code_obj->js = R"JS_CODE(
  function Handler(input) { return "Hello world! " + JSON.stringify(input);
  }
  function CallsUdf(input) { return cool_function(input); }
  )JS_CODE";

  status = roma_service.LoadCodeObj(
      move(code_obj), [&](absl::StatusOr<ResponseObject> resp) {
        // define a callback function for response handling.
        Print("load", resp);
        Done();
      });

  // Create an invocation request.
  auto execution_obj = make_unique<InvocationStrRequest<>>();
  execution_obj->id = "foo";
  execution_obj->version_string = "v1";
  execution_obj->handler_name = "Handler";
  execution_obj->input.push_back("\"Foobar\"");

  status = roma_service.Execute(move(execution_obj),
                        [&](absl::StatusOr<ResponseObject> resp) {
                          // define a callback function for response handling.
                          Print("execute", resp);
                          Done();
                        });

  // Create a batch request and do batch execution.
  auto batch_execution_obj = InvocationStrRequest();
  batch_execution_obj.id = "foo";
  batch_execution_obj.version_string = "v1";
  batch_execution_obj.handler_name = "Handler";
  batch_execution_obj.input.push_back("\"Foobar\"");

  // Here we use the same execution object, but these could be different objects
  // with different inputs, for example.
  vector<InvocationStrRequest<>> batch(5 /*batch size*/, batch_execution_obj);
  status = roma_service.BatchExecute(
      batch, [&](const std::vector<absl::StatusOr<ResponseObject>>& batch_resp) {
        // define a callback function for response handling.
        std::cout << "batch size: " << batch_resp.size() << std::endl;
        for (const auto& r : batch_resp) Print("batch", r);
        Done();
      });

  // Not in Roma's text: a handler that calls the UDF.
  auto udf_obj = make_unique<InvocationStrRequest<>>();
  udf_obj->version_string = "v1";
  udf_obj->handler_name = "CallsUdf";
  udf_obj->input.push_back("\"Foobar\"");
  status = roma_service.Execute(move(udf_obj), [&](absl::StatusOr<ResponseObject> resp) {
    Print("udf", resp);
    Done();
  });

  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [] { return answered == 4; });
  }
  status = roma_service.Stop();
  std::cout << "stop: " << (status.ok() ? "ok" : status.ToString()) << std::endl;
  return 0;
}
