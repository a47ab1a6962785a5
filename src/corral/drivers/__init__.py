"""I/O drivers: the only code that moves bytes between sockets and the HTTP core."""
