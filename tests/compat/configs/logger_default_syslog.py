# gunicorn's default logger class spelt out, and syslog-style settings.
logger_class = "gunicorn.glogging.Logger"
syslog_addr = "udp://localhost:514"
syslog_prefix = "myapp"
syslog_facility = "local0"
disable_redirect_access_to_syslog = True
access_log_format = '%({x-forwarded-for}i)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s %(L)s'
accesslog = "-"
workers = 1
