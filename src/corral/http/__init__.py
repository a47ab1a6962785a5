"""Sans-I/O HTTP/1.1: bytes in, events out; events in, bytes out."""
