# gunicorn 27's own ASGI worker with its asgi_* settings and a root path behind a proxy.
worker_class = "asgi"
workers = 1
asgi_loop = "asyncio"
asgi_lifespan = "auto"
asgi_disconnect_grace_period = 5
root_path = "/api"
control_socket_disable = True
http_protocols = "h1"
