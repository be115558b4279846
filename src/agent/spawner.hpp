#pragma once
// Starts a child process with posix_spawn the way an agent must be started (STYLE §5):
// stdin/stdout/stderr on fresh pipes and no other inherited descriptor, its own process
// group, default signal dispositions and an empty signal mask, an explicit environment
// and working directory, and a pidfd for exit notification.
#include <sys/types.h>

#include <string>
#include <vector>

#include "pi_server/result.hpp"

namespace pi_server::agent {

struct SpawnRequest {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH if it has no '/'
  std::vector<std::string> env;   // NAME=VALUE, the complete environment
  std::string cwd;                // empty: the daemon's cwd
};

// Descriptors the parent owns after a successful spawn (all O_CLOEXEC).
struct SpawnedProcess {
  pid_t pid = -1;
  int pidfd = -1;
  int stdin_fd = -1;   // write end
  int stdout_fd = -1;  // read end
  int stderr_fd = -1;  // read end
};

// Returns the process, or a failure whose message is the errno text of what failed
// (std::error_code::message(); an exec failure such as ENOENT or EACCES comes back here:
// glibc's posix_spawn reports it synchronously).
Result<SpawnedProcess> spawn_process(const SpawnRequest& request);

}  // namespace pi_server::agent
