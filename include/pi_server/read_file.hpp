#pragma once
// A whole file's bytes, or nullopt when it cannot be opened (missing, unreadable). For the
// small files the daemon reads whole: key and secret files, pi's settings and models files.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

namespace pi_server {

inline std::optional<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace pi_server
