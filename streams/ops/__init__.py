"""Running the workers in production: health and readiness, consumer lag, graceful stop, `streams top`."""
