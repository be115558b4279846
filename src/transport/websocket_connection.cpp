// ws://: BasicWebSocketConnection over plain TCP (the definitions are in
// websocket_connection_impl.hpp; TLS is instantiated in websocket_connection_tls.cpp).
#include "transport/websocket_connection_impl.hpp"

namespace pi_server::transport {
template class BasicWebSocketConnection<boost::asio::ip::tcp::socket>;
}  // namespace pi_server::transport
