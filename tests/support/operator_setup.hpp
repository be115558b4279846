#pragma once
// An operator's own pi setup for end-to-end tests: a pi agent dir with a provider of their own
// that points at a local mock (the project's scripted OpenAI-compatible endpoint, served on a
// thread of the test process).
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "demo/demo_model.hpp"
#include "transport/transports.hpp"

namespace pi_server::testing {
namespace fs = std::filesystem;
using nlohmann::json;

// An LLM endpoint of the operator's, on loopback, on its own thread.
class MockProvider {
 public:
  MockProvider() {
    listener_ = pi_server::transport::start_listener(io_, "127.0.0.1", 0, nullptr, model_, nullptr,
                                                     pi_server::ConnectionLimits{})
                    .value();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~MockProvider() {
    io_.stop();
    thread_.join();
  }
  std::string base_url() const { return "http://" + listener_->address() + "/v1"; }

 private:
  boost::asio::io_context io_;
  pi_server::demo::DemoModel model_;
  std::shared_ptr<pi_server::transport::Listener> listener_;
  std::thread thread_;
};

inline void write_file(const fs::path& path, const json& doc) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << doc.dump(2) << "\n";
}

// A pi provider entry of models.json with one model, m1.
inline json provider_entry(const std::string& base_url) {
  return {{"baseUrl", base_url},
          {"api", "openai-completions"},
          {"apiKey", "operator-key"},
          {"models", json::array({{{"id", "m1"}, {"name", "m1"}, {"contextWindow", 128000},
                                   {"maxTokens", 8192}, {"input", json::array({"text"})},
                                   {"reasoning", false}}})}};
}

// An operator's pi agent dir: provider "acme-local" (model m1, at `provider`) as the
// default, plus `more_providers` ({name: entry}), and an empty skills folder.
inline void write_operator_setup(const fs::path& dir, const MockProvider& provider,
                                 json more_providers = json::object()) {
  json providers = {{"acme-local", provider_entry(provider.base_url())}};
  providers.update(more_providers);
  write_file(dir / "models.json", {{"providers", providers}});
  write_file(dir / "settings.json", {{"defaultProvider", "acme-local"}, {"defaultModel", "m1"}});
  fs::create_directories(dir / "skills");
}

}  // namespace pi_server::testing
