#include "demo/demo_model.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "protocol/frames.hpp"

namespace pi_server::demo {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// `j[key]` when `j` is an object holding a string there, else `fallback`. A request body is
// whatever the client sent: json::value() throws on a field of another type.
std::string string_field(const json& j, const char* key, std::string fallback = {}) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

json field(const json& j, const char* key) {
  if (!j.is_object()) return json();
  auto it = j.find(key);
  return it != j.end() ? *it : json();
}

std::string text_of(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (content.is_array())
    for (const auto& part : content)
      if (string_field(part, "type") == "text") out += string_field(part, "text");
  return out;
}

class SseWriter {
 public:
  explicit SseWriter(std::string model) : model_(std::move(model)) {}
  void chunk(const json& delta, const json& finish_reason = nullptr) {
    json c = {{"id", "chatcmpl-demo"},
              {"object", "chat.completion.chunk"},
              {"created", 0},
              {"model", model_},
              {"choices", json::array({{{"index", 0}, {"delta", delta}, {"finish_reason", finish_reason}}})}};
    body_ += "data: " + protocol::dump(c) + "\n\n";
  }
  std::string finish(int completion_tokens) {
    json usage = {{"prompt_tokens", 100},
                  {"completion_tokens", completion_tokens},
                  {"total_tokens", 100 + completion_tokens}};
    json c = {{"id", "chatcmpl-demo"}, {"object", "chat.completion.chunk"}, {"created", 0},
              {"model", model_},       {"choices", json::array()},           {"usage", usage}};
    body_ += "data: " + protocol::dump(c) + "\n\ndata: [DONE]\n\n";
    return std::move(body_);
  }

 private:
  std::string model_;
  std::string body_;
};

HttpAnswer sse(std::string body) {
  HttpAnswer a;
  a.status = 200;
  a.content_type = "text/event-stream";
  a.body = std::move(body);
  return a;
}

HttpAnswer stream_text(const std::string& model, const std::vector<std::string>& pieces) {
  SseWriter w(model);
  w.chunk({{"role", "assistant"}, {"content", ""}});
  for (const auto& p : pieces) w.chunk({{"content", p}});
  w.chunk(json::object(), "stop");
  return sse(w.finish(static_cast<int>(pieces.size())));
}

}  // namespace

HttpAnswer answer_chat_completion(std::string_view request_body) {
  json req = json::parse(request_body, nullptr, false);
  if (req.is_discarded() || !req.is_object() || !req.contains("messages") ||
      !req["messages"].is_array()) {
    HttpAnswer a;
    a.status = 400;
    a.body = R"({"error":{"message":"expected a chat.completions request","type":"invalid_request_error"}})";
    return a;
  }
  std::string model = string_field(req, "model", std::string(kModelId));
  const json& messages = req["messages"];
  const json* last = messages.empty() ? nullptr : &messages.back();
  if (last && string_field(*last, "role") == "tool") {
    std::string result = text_of(field(*last, "content"));
    while (!result.empty() && (result.back() == '\n' || result.back() == ' ')) result.pop_back();
    return stream_text(model, {"Tool said: \"", result, "\". Done."});
  }
  std::string prompt;
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    if (string_field(*it, "role") == "user") {
      prompt = text_of(field(*it, "content"));
      break;
    }
  }

  unsigned n = 0;
  // Bounded: the whole answer is built in memory on the event loop.
  constexpr unsigned kMaxDeltas = 100000;
  if (std::sscanf(prompt.c_str(), "stream %u", &n) == 1 && n <= kMaxDeltas) {
    std::vector<std::string> pieces;
    pieces.reserve(n);
    for (unsigned i = 0; i < n; ++i) pieces.push_back("w" + std::to_string(i) + " ");
    return stream_text(model, pieces);
  }
  unsigned status = 0;
  if (std::sscanf(prompt.c_str(), "error %u", &status) == 1 && status >= 400 && status < 600) {
    HttpAnswer a;
    a.status = status;
    a.body = protocol::dump(json{{"error",
                                  {{"message", "demo error " + std::to_string(status)},
                                   {"type", "server_error"},
                                   {"code", std::to_string(status)}}}});
    return a;
  }
  if (prompt == "tool" || prompt == "pwd") {
    // One bash tool call: `echo hi`, or `pwd` (where the agent's tools run).
    std::string arguments = prompt == "pwd" ? R"({"command":"pwd"})" : R"({"command":"echo hi"})";
    SseWriter w(model);
    w.chunk({{"role", "assistant"}, {"content", nullptr}});
    w.chunk({{"tool_calls", json::array({{{"index", 0},
                                          {"id", "call_demo_1"},
                                          {"type", "function"},
                                          {"function", {{"name", "bash"}, {"arguments", ""}}}}})}});
    w.chunk({{"tool_calls",
              json::array({{{"index", 0}, {"function", {{"arguments", arguments}}}}})}});
    w.chunk(json::object(), "tool_calls");
    return sse(w.finish(20));
  }

  std::string reply = "Hello from pi-server's offline demo model. You said: \"" + prompt +
                      "\". Configure a real provider to get real answers.";
  std::vector<std::string> words;
  std::istringstream in(reply);
  for (std::string w; in >> w;) words.push_back(w + " ");
  return stream_text(model, words);
}

HttpAnswer DemoModel::handle_http(std::string_view method, std::string_view target,
                                  std::string_view body) {
  auto path = target.substr(0, target.find('?'));
  if (method == "POST" && path == "/v1/chat/completions") return answer_chat_completion(body);
  if (method == "GET" && path == "/v1/models") {
    HttpAnswer a;
    a.status = 200;
    a.body = protocol::dump(json{{"object", "list"},
                                 {"data", json::array({{{"id", kModelId}, {"object", "model"}}})}});
    return a;
  }
  return HttpAnswer{};
}

Status write_models_json(const fs::path& models_json, const fs::path& providers_from,
                         std::string_view base_url) {
  json doc = json::object();
  std::error_code ec;
  if (fs::exists(providers_from, ec)) {
    std::ifstream in(providers_from);
    std::stringstream ss;
    ss << in.rdbuf();
    doc = json::parse(ss.str(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object())
      return Status::error(providers_from.string() + " is not a JSON object; fix or remove it");
  }
  if (!doc.contains("providers") || !doc["providers"].is_object()) doc["providers"] = json::object();
  doc["providers"][std::string(kProvider)] = {
      {"baseUrl", std::string(base_url) + "/v1"},
      {"api", "openai-completions"},
      {"apiKey", "pi-server-demo"},
      {"models", json::array({{{"id", kModelId},
                               {"name", "pi-server offline demo"},
                               {"contextWindow", 128000},
                               {"maxTokens", 8192},
                               {"input", json::array({"text"})},
                               {"reasoning", false}}})}};
  fs::create_directories(models_json.parent_path(), ec);
  // Write beside it and rename: a pi starting right now never reads half a file.
  fs::path tmp = models_json;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << doc.dump(2) << "\n";
    if (!out) return Status::error("cannot write " + tmp.string());
  }
  fs::rename(tmp, models_json, ec);
  if (ec) return Status::error("cannot replace " + models_json.string() + ": " + ec.message());
  return Status::ok();
}

}  // namespace pi_server::demo
