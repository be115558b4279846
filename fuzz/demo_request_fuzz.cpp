// The daemon's own HTTP request handling: the demo model answers chat-completion request
// bodies that pi sends (any bytes must get an answer, never a crash), and the route table.
// Property: every input gets a status; a 200 is an SSE stream ending in [DONE].
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "demo/demo_model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto answer = pi_server::demo::answer_chat_completion(body);
  if (answer.status == 0) std::abort();
  if (answer.status == 200 && answer.body.find("data: [DONE]") == std::string::npos) std::abort();
  pi_server::demo::DemoModel model;
  // The first line of the input picks the method and target.
  auto nl = body.find('\n');
  std::string_view target = body.substr(0, nl == std::string_view::npos ? body.size() : nl);
  auto routed = model.handle_http("POST", target, nl == std::string_view::npos ? "" : body.substr(nl + 1));
  (void)routed;
  return 0;
}
