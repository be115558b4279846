// The --config reader (toml++ into CLI11). Properties: any bytes as a config file never
// crash or escape as an exception; a refusal is exit 2 with exactly one line; an accepted file
// printed by --print-config reads back to the same effective configuration.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/flags.hpp"

namespace {

// The bytes as a file the parser can open by name.
std::string as_file(const std::uint8_t* data, std::size_t size, int& fd) {
  fd = ::memfd_create("config", 0);
  if (fd < 0 || ::write(fd, data, size) != static_cast<ssize_t>(size)) std::abort();
  return "/proc/self/fd/" + std::to_string(fd);
}

std::vector<pi_server::config::Setting> settings_of(const std::string& path) {
  auto r = pi_server::config::parse_arguments({"--state-dir", "/nonexistent", "--config", path});
  if (!r) std::abort();
  return r->settings;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  int fd = -1;
  std::string path = as_file(data, size, fd);
  auto r = pi_server::config::parse_arguments({"--state-dir", "/nonexistent", "--config", path});
  ::close(fd);
  if (!r) {
    const auto& stop = r.failure();
    if (stop.exit_code != 2 || stop.output.empty() || stop.output.find('\n') != stop.output.size() - 1)
      std::abort();
    return 0;
  }
  // Round trip through --print-config (secrets masked: agent-env values come back as ***,
  // so compare only when there are none).
  auto printed = pi_server::config::parse_arguments(
      {"--state-dir", "/nonexistent", "--config", path = as_file(data, size, fd), "--print-config"});
  ::close(fd);
  if (printed || printed.failure().exit_code != 0) std::abort();
  const std::string& text = printed.failure().output;
  if (text.find("***") != std::string::npos) return 0;
  int fd2 = -1;
  auto again = settings_of(as_file(reinterpret_cast<const std::uint8_t*>(text.data()), text.size(), fd2));
  ::close(fd2);
  const auto& first = r->settings;
  if (again.size() != first.size()) std::abort();
  for (std::size_t i = 0; i < first.size(); ++i)
    if (again[i].key != first[i].key || again[i].value != first[i].value) std::abort();
  return 0;
}
