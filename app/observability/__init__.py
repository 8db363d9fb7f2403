"""Observability: request ids on every log line, structured logs and Prometheus metrics."""
