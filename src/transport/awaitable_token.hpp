#pragma once
// Completion token for coroutines that take errors as values. Boost 1.81 has no bare
// as_tuple token; a Boost upgrade changes this one line.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>

#include "observability/log.hpp"

namespace pi_server::transport {
inline constexpr auto kTuple = boost::asio::as_tuple(boost::asio::use_awaitable);

// Completion handler for every co_spawn (instead of asio::detached, which drops an
// exception silently): a coroutine's failure is logged and stays inside its connection,
// never reaching io_context::run.
inline void log_coroutine_failure(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    log::error("coroutine_failed", {{"error", ex.what()}});
  } catch (...) {
    log::error("coroutine_failed", {{"error", "unknown exception"}});
  }
}
}  // namespace pi_server::transport
