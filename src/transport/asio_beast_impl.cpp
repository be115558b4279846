// The one translation unit that compiles Asio's and Beast's non-template code
// (BOOST_ASIO_SEPARATE_COMPILATION / BOOST_BEAST_SEPARATE_COMPILATION, see CMakeLists.txt),
// Asio's SSL engine included (TLS on the listener, wss:// in the tests' client).
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
