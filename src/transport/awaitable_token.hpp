#pragma once
// Completion token for coroutines that take errors as values. Boost 1.81 has no bare
// as_tuple token; a Boost upgrade changes this one line.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace pi_server::transport {
inline constexpr auto kTuple = boost::asio::as_tuple(boost::asio::use_awaitable);
}  // namespace pi_server::transport
