// Path confinement through the real daemon (docs/security.md, "Path confinement"): a session's
// cwd and the file paths commands name must resolve inside a workspace root; `..` and symlink
// escapes are forbidden; what pi gets is the resolved path.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "daemon.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// <tmp>/root/project/, <tmp>/root/escape -> <tmp>/outside, <tmp>/outside/
struct Workspace {
  TempDir tmp;
  fs::path base = fs::canonical(tmp.path());
  fs::path root = base / "root";
  fs::path project = root / "project";
  fs::path outside = base / "outside";
  Workspace() {
    fs::create_directories(project);
    fs::create_directories(outside);
    fs::create_directory_symlink(outside, root / "escape");
  }
  Daemon::Options daemon_options() const {
    Daemon::Options o;
    o.args = {"--workspace-root", root.string()};
    return o;
  }
};

json create(WsClient& c, const std::string& id, const std::string& cwd) {
  return c.request({{"type", "create_session"}, {"id", id}, {"sessionId", id}, {"cwd", cwd}},
                   std::chrono::seconds(30));
}

}  // namespace

TEST(Confinement, ACwdInsideARootWorksAndIsResolved) {
  Workspace w;
  Daemon d(w.daemon_options());
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  auto r = create(c, "in", (w.root / "." / "project" / ".." / "project").string());
  ASSERT_EQ(r["success"], true) << r.dump();
  EXPECT_EQ(r["data"]["sessionInfo"]["cwd"], w.project.string());
  // Without a cwd, a session runs in the first workspace root.
  auto dflt = c.request({{"type", "create_session"}, {"id", "d"}, {"sessionId", "d"}}, std::chrono::seconds(30));
  ASSERT_EQ(dflt["success"], true) << dflt.dump();
  EXPECT_EQ(dflt["data"]["sessionInfo"]["cwd"], w.root.string());
}

TEST(Confinement, CwdEscapesViaDotDotAndViaSymlinkAreForbidden) {
  Workspace w;
  Daemon d(w.daemon_options());
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  auto dotdot = create(c, "a", (w.root / ".." / "outside").string());
  EXPECT_EQ(dotdot["code"], "forbidden") << dotdot.dump();
  auto deep = create(c, "b", (w.project / ".." / ".." / "outside").string());
  EXPECT_EQ(deep["code"], "forbidden") << deep.dump();
  auto link = create(c, "c", (w.root / "escape").string());
  EXPECT_EQ(link["code"], "forbidden") << link.dump();
  // The refusal names the path as given, not where the symlink leads.
  EXPECT_EQ(link["error"].get<std::string>().find(w.outside.string()), std::string::npos) << link.dump();
  auto etc = create(c, "e", "/etc");
  EXPECT_EQ(etc["code"], "forbidden");
  // Outside, whether the directory exists is not told; inside, a missing one is invalid.
  EXPECT_EQ(create(c, "f", "/definitely/not/here")["code"], "forbidden");
  EXPECT_EQ(create(c, "g", (w.root / "not-here").string())["code"], "invalid_command");
  EXPECT_EQ(create(c, "h", "relative/dir")["code"], "invalid_command");
  // Nothing was created.
  auto list = c.request({{"type", "list_sessions"}, {"id", "l"}});
  EXPECT_TRUE(list["data"]["sessions"].empty()) << list.dump();
}

TEST(Confinement, FilePathsCommandsNameAreConfinedAndResolvedBeforePiSeesThem) {
  Workspace w;
  Daemon d(w.daemon_options());
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  ASSERT_EQ(create(c, "s", w.project.string())["success"], true);
  auto cmd = [&](const std::string& id, json extra) {
    json j = {{"id", id}, {"sessionId", "s"}};
    j.update(extra);
    return c.request(j);
  };
  // Relative to the session's cwd; pi gets (and here echoes) the absolute resolved path.
  auto rel = cmd("x1", {{"type", "export_html"}, {"outputPath", "out/../page.html"}});
  // "out" does not exist: `..` below a missing directory is refused.
  EXPECT_EQ(rel["code"], "forbidden") << rel.dump();
  auto plain = cmd("x2", {{"type", "export_html"}, {"outputPath", "page.html"}});
  ASSERT_EQ(plain["success"], true) << plain.dump();
  EXPECT_EQ(plain["data"]["path"], (w.project / "page.html").string());
  auto tilde = cmd("x3", {{"type", "export_html"}, {"outputPath", "~/page.html"}});
  ASSERT_EQ(tilde["success"], true) << tilde.dump();
  EXPECT_EQ(tilde["data"]["path"], (w.project / "~" / "page.html").string()) << "no ~ expansion by pi";
  EXPECT_EQ(cmd("x4", {{"type", "export_html"}, {"outputPath", "../../outside/p.html"}})["code"], "forbidden");
  EXPECT_EQ(cmd("x5", {{"type", "export_html"}, {"outputPath", (w.root / "escape" / "p.html").string()}})["code"],
            "forbidden");
  EXPECT_EQ(cmd("w1", {{"type", "switch_session_file"}, {"sessionPath", "/etc/passwd"}})["code"], "forbidden");
  EXPECT_EQ(cmd("w2", {{"type", "switch_session_file"}, {"sessionPath", "../escape/s.jsonl"}})["code"], "forbidden");
  EXPECT_EQ(cmd("n1", {{"type", "new_session"}, {"parentSession", "/tmp/../etc/x.jsonl"}})["code"], "forbidden");
  // A session file inside a root whose header would move the agent outside is refused too.
  std::ofstream(w.project / "away.jsonl") << json{{"type", "session"}, {"id", "1"}, {"cwd", w.outside.string()}}.dump()
                                          << "\n";
  std::ofstream(w.project / "home.jsonl") << json{{"type", "session"}, {"id", "2"}, {"cwd", w.project.string()}}.dump()
                                          << "\n";
  auto away = cmd("w3", {{"type", "switch_session_file"}, {"sessionPath", "away.jsonl"}});
  EXPECT_EQ(away["code"], "forbidden") << away.dump();
  // The session's version did not move for any refusal.
  auto state = cmd("g", {{"type", "get_state"}});
  EXPECT_EQ(state["sessionVersion"], 0) << state.dump();
  auto home = cmd("w4", {{"type", "switch_session_file"}, {"sessionPath", "home.jsonl"}});
  EXPECT_EQ(home["success"], true) << home.dump();
}

TEST(Confinement, InTheStateDirOnlyTheCallersSessionFoldersAreOpen) {
  Daemon d;  // default roots: the daemon's working directory and the state dir
  WsClient c(d.port());
  fs::path state = fs::canonical(d.state_dir());
  auto created = open_session(c, "s");
  // The session's folder: sessions/s, or the warm pool's folder when it took a pooled agent.
  fs::path folder =
      fs::path(created["data"]["sessionInfo"]["sessionFile"].get<std::string>()).parent_path();
  ASSERT_EQ(folder.parent_path(), state / "sessions");
  auto export_to = [&](const std::string& id, const fs::path& p) {
    return c.request({{"type", "export_html"}, {"id", id}, {"sessionId", "s"}, {"outputPath", p.string()}});
  };
  auto own = export_to("e1", folder / "page.html");
  EXPECT_EQ(own["success"], true) << own.dump();
  EXPECT_EQ(export_to("e2", state / "agent" / "auth.json")["code"], "forbidden");
  EXPECT_EQ(export_to("e3", state / "sessions" / "other" / "x.html")["code"], "forbidden");
  EXPECT_EQ(export_to("e4", state / "notes.html")["code"], "forbidden");
  EXPECT_EQ(create(c, "t", state.string())["code"], "forbidden");
  EXPECT_EQ(create(c, "u", (state / "sessions").string())["code"], "forbidden");
  auto in_own = create(c, "v", folder.string());
  EXPECT_EQ(in_own["success"], true) << in_own.dump();
}

// The packaged unit runs the daemon in its state dir, where only session folders are open.
// Without --workspace-root it works in <state dir>/workspace instead of refusing every
// create_session that names no cwd.
TEST(Confinement, ADaemonRunningInItsStateDirWorksInItsWorkspaceFolder) {
  Daemon d({.run_in_state_dir = true});
  auto logged = d.wait_log("default_workspace", std::chrono::seconds(5));
  ASSERT_TRUE(logged);
  fs::path workspace = fs::canonical(d.state_dir()) / "workspace";
  EXPECT_EQ((*logged)["path"], workspace.string());
  EXPECT_TRUE(fs::is_directory(workspace));
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  auto created = c.request({{"type", "create_session"}, {"id", "c1"}, {"sessionId", "s1"}},
                           std::chrono::seconds(30));
  ASSERT_EQ(created["success"], true) << created.dump();
  EXPECT_EQ(created["data"]["sessionInfo"]["cwd"], workspace.string());
  // The state dir itself stays closed.
  auto refused = create(c, "c2", d.state_dir());
  EXPECT_EQ(refused["code"], "forbidden") << refused.dump();
}
