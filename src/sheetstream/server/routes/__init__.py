"""The HTTP routes, one module per resource: exports, imports, jobs, and the server's own (meta)."""
