"""`ragq`: the command line for ragqueue, a client of its HTTP API only (so it works against a remote server)."""
