"""Routes.  Only this package parses HTTP requests and shapes responses."""
