#include "security/path_confinement.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "daemon.hpp"


using namespace pi_server;
namespace fs = std::filesystem;
using pi_server::security::PathConfinement;

namespace {

using pi_server::testing::TempDir;

// A scratch tree:  <tmp>/root/{project/, link-out -> <tmp>/outside, link-in -> project}
//                  <tmp>/root2/   <tmp>/outside/   <tmp>/state/sessions/{mine,theirs}/
//                  <tmp>/root-link -> root
struct Tree {
  TempDir tmp;
  fs::path t{tmp.path()};
  fs::path root = fs::canonical(t) / "root";
  Tree() {
    fs::create_directories(root / "project");
    fs::create_directories(t / "root2");
    fs::create_directories(t / "outside");
    fs::create_directories(t / "state" / "sessions" / "mine");
    fs::create_directories(t / "state" / "sessions" / "theirs");
    std::ofstream(t / "state" / "pi-server.db") << "x";
    fs::create_directory_symlink(t / "outside", root / "link-out");
    fs::create_directory_symlink(root / "project", root / "link-in");
    fs::create_directory_symlink(root, t / "root-link");
  }
  static bool mine_only(std::string_view id) { return id == "mine"; }
  // "ok:<resolved>" or the wire code.
  std::string check(const PathConfinement& c, const std::string& path, fs::path base = {}) {
    auto r = c.resolve(path, base, mine_only);
    if (r) return "ok:" + r->string();
    return std::string(to_string(r.status().code().value_or(ErrorCode::agent_exited)));
  }
};

}  // namespace

TEST(PathConfinement, PathsInsideARootResolveToTheirCanonicalForm) {
  Tree t;
  PathConfinement c({t.root}, {});
  EXPECT_EQ(t.check(c, (t.root / "project").string()), "ok:" + (t.root / "project").string());
  EXPECT_EQ(t.check(c, t.root.string()), "ok:" + t.root.string());
  // A symlink that stays inside is followed, and the result names the target.
  EXPECT_EQ(t.check(c, (t.root / "link-in").string()), "ok:" + (t.root / "project").string());
  // Relative paths resolve against the base.
  EXPECT_EQ(t.check(c, "project/../project/./", t.root), "ok:" + (t.root / "project").string());
}

TEST(PathConfinement, DotDotAndSymlinkEscapesAreForbidden) {
  Tree t;
  PathConfinement c({t.root}, {});
  EXPECT_EQ(t.check(c, (t.root / ".." / "outside").string()), "forbidden");
  EXPECT_EQ(t.check(c, (t.root / "project" / ".." / ".." / "outside").string()), "forbidden");
  EXPECT_EQ(t.check(c, "../outside", t.root), "forbidden");
  EXPECT_EQ(t.check(c, (t.root / "link-out").string()), "forbidden");
  EXPECT_EQ(t.check(c, (t.root / "link-out" / "new-file.html").string()), "forbidden");
  EXPECT_EQ(t.check(c, "/etc/passwd"), "forbidden");
  EXPECT_EQ(t.check(c, "/"), "forbidden");
}

TEST(PathConfinement, APrefixOfTheRootIsNotInsideIt) {
  Tree t;
  PathConfinement c({t.root}, {});
  // <tmp>/root2 starts with the characters of <tmp>/root but is not below it.
  EXPECT_EQ(t.check(c, (t.t / "root2").string()), "forbidden");
  EXPECT_FALSE(security::is_within("/work/root2", "/work/root"));
  EXPECT_TRUE(security::is_within("/work/root/x", "/work/root"));
  EXPECT_TRUE(security::is_within("/work/root", "/work/root"));
  EXPECT_TRUE(security::is_within("/anything", "/"));
}

TEST(PathConfinement, ARootThatIsASymlinkConfinesToItsTarget) {
  Tree t;
  PathConfinement c({t.t / "root-link"}, {});
  EXPECT_EQ(t.check(c, (t.t / "root-link" / "project").string()), "ok:" + (t.root / "project").string());
  EXPECT_EQ(t.check(c, (t.root / "project").string()), "ok:" + (t.root / "project").string());
  EXPECT_EQ(t.check(c, (t.t / "root-link" / "link-out").string()), "forbidden");
  EXPECT_EQ(t.check(c, (t.t / "root-link" / ".." / "outside").string()), "forbidden");
}

TEST(PathConfinement, NonexistentPathsResolveThroughTheirDeepestExistingDirectory) {
  Tree t;
  PathConfinement c({t.root}, {});
  EXPECT_EQ(t.check(c, (t.root / "link-in" / "new" / "file.html").string()),
            "ok:" + (t.root / "project" / "new" / "file.html").string());
  EXPECT_EQ(t.check(c, (t.t / "outside" / "new").string()), "forbidden");
  // `..` below a directory that does not exist cannot be resolved the way the kernel would.
  EXPECT_EQ(t.check(c, (t.root / "missing" / ".." / ".." / "outside").string()), "forbidden");
  EXPECT_EQ(t.check(c, (t.root / "missing" / ".." / "x").string()), "forbidden");
  // A root that does not exist contains nothing.
  PathConfinement gone({t.t / "no-such-root"}, {});
  EXPECT_EQ(t.check(gone, (t.t / "no-such-root" / "x").string()), "forbidden");
}

TEST(PathConfinement, MalformedPathsAreInvalid) {
  Tree t;
  PathConfinement c({t.root}, {});
  EXPECT_EQ(t.check(c, ""), "invalid_command");
  EXPECT_EQ(t.check(c, std::string("/a\0b", 4)), "invalid_command");
  EXPECT_EQ(t.check(c, "relative/without/base"), "invalid_command");
  EXPECT_EQ(t.check(c, std::string(PATH_MAX + 1, 'a'), t.root), "invalid_command");
}

TEST(PathConfinement, InTheStateDirOnlyTheAskersSessionFoldersAreOpen) {
  Tree t;
  fs::path state = fs::canonical(t.t / "state");
  PathConfinement c({t.root, state}, state);
  EXPECT_EQ(t.check(c, (state / "sessions" / "mine" / "f.jsonl").string()),
            "ok:" + (state / "sessions" / "mine" / "f.jsonl").string());
  EXPECT_EQ(t.check(c, (state / "sessions" / "theirs" / "f.jsonl").string()), "forbidden");
  EXPECT_EQ(t.check(c, (state / "sessions" / "mine" / ".." / "theirs").string()), "forbidden");
  EXPECT_EQ(t.check(c, (state / "sessions").string()), "forbidden");
  EXPECT_EQ(t.check(c, (state / "pi-server.db").string()), "forbidden");
  EXPECT_EQ(t.check(c, state.string()), "forbidden");
  // Also when a root covers the state dir from above.
  PathConfinement wide({t.t}, state);
  EXPECT_EQ(t.check(wide, (state / "pi-server.db").string()), "forbidden");
  EXPECT_EQ(t.check(wide, (t.t / "outside").string()), "ok:" + fs::canonical(t.t / "outside").string());
}

TEST(SessionFileCwd, TheHeaderIsReadTheWayPiReadsIt) {
  Tree t;
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(t.t / name) << text;
    return t.t / name;
  };
  auto cwd_of = [](const fs::path& p) -> std::string {
    auto r = security::session_file_cwd(p);
    if (!r) return "error:" + std::string(to_string(*r.status().code()));
    return r->value_or("none");
  };
  EXPECT_EQ(cwd_of(write("a.jsonl", R"({"type":"session","id":"1","cwd":"/x"})" "\n{}\n")), "/x");
  // Blank and malformed lines before the header are skipped, as pi skips them.
  EXPECT_EQ(cwd_of(write("b.jsonl", "\n  \nnot json\n" R"({"type":"session","id":"1","cwd":"/y"})")), "/y");
  // The first line that parses decides: not a header, no cwd.
  EXPECT_EQ(cwd_of(write("c.jsonl", R"({"type":"message"})" "\n" R"({"type":"session","id":"1","cwd":"/z"})")), "none");
  EXPECT_EQ(cwd_of(write("d.jsonl", R"({"type":"session","cwd":"/z"})")), "none") << "no id: not a header";
  EXPECT_EQ(cwd_of(t.t / "missing.jsonl"), "none");
  // No decision within the first MiB: refused rather than guessed.
  EXPECT_EQ(cwd_of(write("e.jsonl", std::string((1u << 20) + 10, 'x'))), "error:forbidden");
  EXPECT_EQ(cwd_of(write("f.jsonl", std::string(100, '\n'))), "none") << "a small file without a header";
}
