"""aigw's gateway service: the program each proxy instance runs (see gateway/app.py for the request path)."""
