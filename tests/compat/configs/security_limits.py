# Request limits and worker recycling.
limit_request_line = 8190
limit_request_fields = 50
limit_request_field_size = 16380
max_requests = 1000
max_requests_jitter = 100
timeout = 60
graceful_timeout = 45
workers = 2
