#include "server/session_commands.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>

namespace pi_server::server {
namespace fs = std::filesystem;
using nlohmann::json;
using protocol::Response;
using reliability::Submission;

namespace {

// Relays `sub` to the agent (as the row's agent_type) and reshapes a successful answer's data.
void relay_reshaped(const Submission& sub, session::Session& session,
                    SessionCommands::Reply reply, std::function<json(const json&)> reshape) {
  session.relay(sub.envelope, [reply = std::move(reply), reshape = std::move(reshape)](Response r) {
    if (r.success) r.data = reshape(r.data.value_or(json::object()));
    reply(std::move(r));
  });
}

std::int64_t epoch_ms(fs::file_time_type t) {
  auto system = std::chrono::file_clock::to_sys(t);
  return std::chrono::duration_cast<std::chrono::milliseconds>(system.time_since_epoch()).count();
}

}  // namespace

SessionCommands::Handler SessionCommands::handler_for(std::string_view type) {
  static constexpr std::pair<std::string_view, Handler> kHandlers[] = {
      {"extension_ui_response", &SessionCommands::extension_ui_response},
      {"get_context_usage", &SessionCommands::get_context_usage},
      {"get_skills", &SessionCommands::get_skills},
      {"list_session_files", &SessionCommands::list_session_files},
      {"abort_compaction", &SessionCommands::abort_compaction},
      {"get_tools", &SessionCommands::unsupported},
      {"navigate_tree", &SessionCommands::unsupported},
  };
  for (const auto& [name, handler] : kHandlers)
    if (name == type) return handler;
  return nullptr;
}

bool SessionCommands::has_handler(std::string_view type) { return handler_for(type) != nullptr; }

void SessionCommands::execute(const Submission& sub, session::Session& session, Reply reply) {
  handler_for(sub.envelope.type)(sub, session, std::move(reply));
}

void SessionCommands::extension_ui_response(const Submission& sub, session::Session& session,
                                            Reply reply) {
  // The session tracks its open dialogs and answers (first answer wins, then not_pending).
  session.answer_ui(sub.envelope, std::move(reply));
}

void SessionCommands::get_context_usage(const Submission& sub, session::Session& session,
                                        Reply reply) {
  // pi reports it inside get_session_stats; after a compaction its fields are null.
  relay_reshaped(sub, session, std::move(reply), [](const json& stats) {
    json usage = {{"tokens", nullptr}, {"contextWindow", nullptr}, {"percent", nullptr}};
    if (auto it = stats.find("contextUsage"); it != stats.end() && it->is_object())
      for (const char* key : {"tokens", "contextWindow", "percent"})
        if (it->contains(key)) usage[key] = (*it)[key];
    return usage;
  });
}

void SessionCommands::get_skills(const Submission& sub, session::Session& session, Reply reply) {
  // pi lists each skill among its commands as {name: "skill:<name>", source: "skill", ...}.
  relay_reshaped(sub, session, std::move(reply), [](const json& data) {
    json skills = json::array();
    if (auto it = data.find("commands"); it != data.end() && it->is_array()) {
      for (const auto& command : *it) {
        if (!command.is_object() || command.value("source", "") != "skill") continue;
        std::string name = command.value("name", "");
        if (name.starts_with("skill:")) name.erase(0, 6);
        json skill = {{"name", name}, {"description", command.value("description", "")}};
        if (auto info = command.find("sourceInfo"); info != command.end() && info->is_object()) {
          if (auto path = info->find("path"); path != info->end()) skill["path"] = *path;
          skill["sourceInfo"] = *info;
        }
        skills.push_back(std::move(skill));
      }
    }
    return json{{"skills", skills}};
  });
}

void SessionCommands::list_session_files(const Submission& sub, session::Session& session,
                                         Reply reply) {
  // The agent's get_state names the current file; the files are pi's .jsonl files in the
  // session's own directory (its private agent dir excluded).
  fs::path dir = session.launch().session_dir;
  relay_reshaped(sub, session, std::move(reply), [dir](const json& state) {
    std::string current = state.value("sessionFile", "");
    json files = json::array();
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec) && it->path().filename() == "agent") {
        it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file(ec) || it->path().extension() != ".jsonl") continue;
      std::error_code stat_ec;
      auto size = fs::file_size(it->path(), stat_ec);
      auto mtime = fs::last_write_time(it->path(), stat_ec);
      if (stat_ec) continue;  // gone meanwhile
      files.push_back({{"path", it->path().string()},
                       {"size", size},
                       {"modifiedAt", epoch_ms(mtime)},
                       {"current", it->path().string() == current}});
    }
    std::sort(files.begin(), files.end(), [](const json& a, const json& b) {
      return a["modifiedAt"].get<std::int64_t>() > b["modifiedAt"].get<std::int64_t>();
    });
    return json{{"files", files}, {"currentFile", current.empty() ? json(nullptr) : json(current)}};
  });
}

void SessionCommands::abort_compaction(const Submission& sub, session::Session& session,
                                       Reply reply) {
  const auto& env = sub.envelope;
  if (!session.compacting()) {
    // Nothing to stop; sending pi's abort now could stop a run instead.
    Response r = protocol::success_response(env.type, env.id, json{{"aborted", false}});
    r.session_id = env.session_id;
    r.session_version = session.version();
    return reply(r);
  }
  relay_reshaped(sub, session, std::move(reply), [](const json&) { return json{{"aborted", true}}; });
}

void SessionCommands::unsupported(const Submission& sub, session::Session& session, Reply reply) {
  const auto& env = sub.envelope;
  auto r = protocol::error_response(
      env.type, env.id, ErrorCode::unsupported,
      "The pinned pi agent (0.87.1) has no RPC command for " + env.type +
          ", so the daemon cannot answer it" +
          (env.type == "navigate_tree" ? "; use fork or switch_session_file to move in the tree"
                                       : "; get_commands lists extension commands and skills"));
  r.session_id = env.session_id;
  reply(r);
}

}  // namespace pi_server::server
