// wss://: BasicWebSocketConnection over TLS (the definitions are in
// websocket_connection_impl.hpp). A TU of its own so the two instantiations compile apart.
#include "transport/websocket_connection_impl.hpp"

namespace pi_server::transport {
template class BasicWebSocketConnection<TlsStream>;
}  // namespace pi_server::transport
