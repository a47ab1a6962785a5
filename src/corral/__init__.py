"""corral: a fast, strict pre-fork HTTP server for WSGI and ASGI applications."""

__version__ = "0.1.0"
__all__ = ["__version__"]
