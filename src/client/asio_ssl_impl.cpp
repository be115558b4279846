// Asio's OpenSSL glue, compiled once (BOOST_ASIO_SEPARATE_COMPILATION, like
// src/transport/asio_beast_impl.cpp for the rest of Asio and Beast).
#include <boost/asio/ssl/impl/src.hpp>
