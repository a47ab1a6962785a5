"""A minimal real Django project served by corral's WSGI and ASGI workers in the e2e tests."""
