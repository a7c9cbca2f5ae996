"""L104 Proxy: a Gemini-compatible reverse proxy that rotates along YAML model chains."""

__version__ = "0.1.0"
