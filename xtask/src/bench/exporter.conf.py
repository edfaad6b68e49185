# Gunicorn config for the comparison with gunicorn-prometheus-exporter 0.2.4, set up as its
# README's "environment variables" option says: its worker class is passed with -k, its
# settings (PROMETHEUS_MULTIPROC_DIR, PROMETHEUS_METRICS_PORT, PROMETHEUS_BIND_ADDRESS,
# GUNICORN_WORKERS) come from the environment, and these are its default hooks.
from gunicorn_prometheus_exporter.hooks import (
    default_on_exit,
    default_on_starting,
    default_post_fork,
    default_when_ready,
    default_worker_int,
)

when_ready = default_when_ready
on_starting = default_on_starting
worker_int = default_worker_int
on_exit = default_on_exit
post_fork = default_post_fork
