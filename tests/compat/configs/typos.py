# Misspelt settings gunicorn silently ignores: corral warns once for each and runs on.
preload = True
acceslogformat = '%(h)s "%(r)s" %(s)s'
timout = 60
workers = 1


def post_forks(server, worker):
    pass
