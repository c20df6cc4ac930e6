#pragma once
// Whether a request's body framing can be trusted before it is answered on a
// kept-alive connection (RFC 9112 section 6.3). httplib reads a body only for
// the methods that usually have one and takes Content-Length as it finds it,
// so a GET with a body, or a malformed or doubled Content-Length, would leave
// bytes it never read to be parsed as the next request (request smuggling
// behind a proxy).

#include <httplib.h>

namespace hubcache {

enum class Framing {
  kOk,          // no body, or one the server reads
  kBodyUnread,  // a body the server will not read: close after the response
  kInvalid,     // bad Content-Length, or both it and Transfer-Encoding: refuse
};

// `reads_body`: whether the route this request goes to reads a body.
Framing CheckFraming(const httplib::Request& req, bool reads_body);

}  // namespace hubcache
