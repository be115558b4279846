#include "demo/demo_model.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

using namespace pi_server;

namespace {
// Concatenates the content deltas of an SSE body.
std::string streamed_text(const std::string& body) {
  std::string text;
  std::size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    auto end = body.find("\n\n", pos);
    auto payload = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (payload == "[DONE]") break;
    auto j = nlohmann::json::parse(payload);
    for (auto& c : j["choices"])
      if (c["delta"].contains("content") && c["delta"]["content"].is_string())
        text += c["delta"]["content"].get<std::string>();
  }
  return text;
}
std::string request_for(const std::string& prompt) {
  return nlohmann::json{{"model", "demo-1"},
                        {"stream", true},
                        {"messages", {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", prompt}}}}}}}}
      .dump();
}
}  // namespace

TEST(DemoModel, StreamsNScriptedDeltas) {
  auto a = demo::answer_chat_completion(request_for("stream 4"));
  EXPECT_EQ(a.status, 200u);
  EXPECT_EQ(a.content_type, "text/event-stream");
  EXPECT_EQ(streamed_text(a.body), "w0 w1 w2 w3 ");
  EXPECT_NE(a.body.find("data: [DONE]\n\n"), std::string::npos);
}

TEST(DemoModel, ScriptedHttpError) {
  auto a = demo::answer_chat_completion(request_for("error 503"));
  EXPECT_EQ(a.status, 503u);
}

TEST(DemoModel, DefaultAnswerQuotesThePrompt) {
  auto a = demo::answer_chat_completion(request_for("hi there"));
  EXPECT_NE(streamed_text(a.body).find("You said: \"hi there\""), std::string::npos);
}

TEST(DemoModel, BadRequestIs400) {
  EXPECT_EQ(demo::answer_chat_completion("{}").status, 400u);
  EXPECT_EQ(demo::answer_chat_completion("garbage").status, 400u);
}

// Found by the demo_request fuzzer: a field of another type than expected threw out of
// answer_chat_completion (json::value) instead of being ignored.
TEST(DemoModel, FieldsOfAnotherTypeAreIgnored) {
  auto a = demo::answer_chat_completion(
      R"({"model":true,"messages":[{"role":"user","content":"stream 1"}]})");
  EXPECT_EQ(a.status, 200u);
  EXPECT_EQ(streamed_text(a.body), "w0 ");
  a = demo::answer_chat_completion(
      R"({"messages":[1,"x",{"role":5,"content":{"a":1}},)"
      R"({"role":"user","content":[{"type":7,"text":"no"},{"type":"text","text":9},5,)"
      R"({"type":"text","text":"stream 2"}]}]})");
  EXPECT_EQ(a.status, 200u);
  EXPECT_EQ(streamed_text(a.body), "w0 w1 ");
  a = demo::answer_chat_completion(R"({"messages":[{"role":"tool","content":7}]})");
  EXPECT_EQ(a.status, 200u);
}

TEST(DemoModel, ModelsJsonKeepsUserProviders) {
  auto dir = std::filesystem::temp_directory_path() / ("demo-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto file = dir / "models.json";
  std::ofstream(file) << R"({"providers":{"mine":{"baseUrl":"http://x"}}})";
  ASSERT_TRUE(demo::write_models_json(file, file, "http://127.0.0.1:5").is_ok());
  std::ifstream in(file);
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["providers"]["mine"]["baseUrl"], "http://x");
  EXPECT_EQ(j["providers"]["pi-server-demo"]["baseUrl"], "http://127.0.0.1:5/v1");
  std::ofstream(file) << "not json";
  EXPECT_FALSE(demo::write_models_json(file, file, "http://127.0.0.1:5").is_ok());
  std::filesystem::remove_all(dir);
}
