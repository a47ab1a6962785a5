# gunicorn 27's newer settings, each set to turn its feature off or left at a limit.
control_socket_disable = True
control_socket_mode = 0o660
http_protocols = "h1"
http2_cleartext = "off"
http2_max_concurrent_streams = 50
http2_initial_window_size = 1048576
http2_max_frame_size = 32768
http2_max_header_list_size = 32768
http_parser = "python"
protocol = "http"
uwsgi_allow_ips = "127.0.0.1"
dirty_workers = 0
dirty_apps = []
dirty_timeout = 600
enable_backlog_metric = False
workers = 1
