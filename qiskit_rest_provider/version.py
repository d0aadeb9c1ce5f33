"""The package version, kept in one place so the client header and the server agree."""

__version__ = "0.1.0"
