"""HTTP/2 (RFC 9113) over the h2 library: the connection's frames in, request streams out."""
