"""The worker process: leases trials from the API over HTTP, runs them, reports back."""
