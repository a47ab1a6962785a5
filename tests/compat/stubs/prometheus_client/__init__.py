"""A stand-in for prometheus_client (not installed here): just what a gunicorn config imports."""
