# Metrics to a local statsd / DogStatsD agent.
bind = "0.0.0.0:8000"
workers = 2
statsd_host = "localhost:8125"
statsd_prefix = "myapp"
dogstatsd_tags = "env:prod,service:web"
accesslog = "-"
