"""CloudTrail AssumeRole forwarder: who really stands behind every role assumption."""

__version__ = "0.1.0"
