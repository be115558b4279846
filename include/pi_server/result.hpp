#pragma once
// One result shape for everything that can fail (in the spirit of leveldb's Status and
// std::expected): a Status is "ok" or an error message with an optional wire error code;
// a Result<T> is a T or a failed Status (or, where a failure must carry more, a T or an E).
// Callers test it, then read value() or error().
#include <cassert>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "pi_server/error_code.hpp"

namespace pi_server {

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  static Status ok() { return Status(); }
  static Status error(std::string message) { return Status(std::nullopt, std::move(message)); }
  static Status error(ErrorCode code, std::string message) {
    return Status(code, std::move(message));
  }

  bool is_ok() const { return !failed_; }
  explicit operator bool() const { return is_ok(); }
  // Empty when ok.
  const std::string& message() const { return message_; }
  // The wire code of a failure, when it has one.
  std::optional<ErrorCode> code() const { return code_; }

 private:
  Status(std::optional<ErrorCode> code, std::string message)
      : failed_(true), code_(code), message_(std::move(message)) {}
  bool failed_ = false;
  std::optional<ErrorCode> code_;
  std::string message_;
};

template <typename T, typename E = Status>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  Result(E failure) : state_(std::in_place_index<1>, std::move(failure)) {  // NOLINT
    if constexpr (std::is_same_v<E, Status>)
      assert(!std::get<1>(state_).is_ok() && "a Result holds a value or a failure");
  }

  bool is_ok() const { return state_.index() == 0; }
  explicit operator bool() const { return is_ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  // The failure (only when !is_ok()).
  const E& failure() const { return std::get<1>(state_); }
  // For Result<T>: the failure's Status and its message.
  const Status& status() const { return failure(); }
  const std::string& error() const { return failure().message(); }

 private:
  std::variant<T, E> state_;
};

}  // namespace pi_server
