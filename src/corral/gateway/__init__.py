"""Gateways between the HTTP core and applications: loading, WSGI, ASGI."""
