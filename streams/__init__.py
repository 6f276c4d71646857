"""Stream processing for AI-agent hook events on Apache Kafka."""

__version__ = "0.1.0"
