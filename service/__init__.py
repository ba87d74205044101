"""hone's study service: the FastAPI app, the study spec, narrowing, leases and storage."""
