#pragma once
// The offline demo model: a small scripted OpenAI-compatible chat-completions endpoint the
// daemon serves on its own loopback port, so a fresh install streams real pi answers with
// no API key and no network. pi reaches it through the "pi-server-demo" provider that
// write_models_json() puts into pi's models.json. The last user message picks the script:
//   "stream N"   N text deltas "w0 " "w1 " ... (N <= 100000)
//   "error NNN"  HTTP status NNN with an OpenAI-style error body
//   "tool"       a bash tool call running `echo hi`; after the result: Tool said: "...". Done.
//   "pwd"        the same with `pwd` (where the agent's tools run)
//   anything else: a friendly sentence that quotes the prompt, one word per delta.
#include <filesystem>
#include <string>
#include <string_view>

#include "pi_server/connection.hpp"
#include "pi_server/result.hpp"

namespace pi_server::demo {

inline constexpr std::string_view kProvider = "pi-server-demo";
inline constexpr std::string_view kModelId = "demo-1";

class DemoModel : public HttpHandler {
 public:
  HttpAnswer handle_http(std::string_view method, std::string_view target,
                         std::string_view body) override;
};

// Writes `models_json`: the providers of `providers_from` (the operator's models.json, when it
// exists; never written) plus the demo provider at `base_url`. Fails with the reason.
Status write_models_json(const std::filesystem::path& models_json,
                         const std::filesystem::path& providers_from, std::string_view base_url);

// The SSE body answering one chat-completions request body (exposed for tests).
HttpAnswer answer_chat_completion(std::string_view request_body);

}  // namespace pi_server::demo
