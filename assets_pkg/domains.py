"""The domain packages, in the order the demo runs them."""

DOMAINS = ("ingest", "splits", "summary", "logs", "timeseries")
