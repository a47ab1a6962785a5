# Behind nginx or a load balancer: trust its headers.
forwarded_allow_ips = "*"
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
proxy_allow_ips = "127.0.0.1"
forwarder_headers = "SCRIPT_NAME,PATH_INFO,REMOTE_USER"
header_map = "refuse"
workers = 1
