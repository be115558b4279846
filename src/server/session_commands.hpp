#pragma once
// Session commands the daemon answers itself (the command table's session_daemon family):
// from what the session tracks (open dialogs, compaction, its files) or by asking the agent
// another pi command (the row's agent_type) and reshaping the answer into the shape of
// protocol 1.x. Stateless; every server-side session command handler is registered here by
// name (a unit test checks every session_daemon row has one).
#include <string_view>

#include "reliability/command_pipeline.hpp"
#include "session/session.hpp"

namespace pi_server::server {

class SessionCommands {
 public:
  using Reply = reliability::Executor::Reply;

  // Runs `sub` (a session_daemon command) against its session.
  static void execute(const reliability::Submission& sub, session::Session& session, Reply reply);
  static bool has_handler(std::string_view type);

 private:
  using Handler = void (*)(const reliability::Submission&, session::Session&, Reply);
  static Handler handler_for(std::string_view type);

  static void extension_ui_response(const reliability::Submission& sub, session::Session& session,
                                    Reply reply);
  static void get_context_usage(const reliability::Submission& sub, session::Session& session,
                                Reply reply);
  static void get_skills(const reliability::Submission& sub, session::Session& session, Reply reply);
  static void list_session_files(const reliability::Submission& sub, session::Session& session,
                                 Reply reply);
  static void abort_compaction(const reliability::Submission& sub, session::Session& session,
                               Reply reply);
  static void unsupported(const reliability::Submission& sub, session::Session& session, Reply reply);
};

}  // namespace pi_server::server
