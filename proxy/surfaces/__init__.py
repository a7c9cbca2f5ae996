"""The surfaces clients see: the Gemini API, the models list, /api/v6, ops and the status page."""

# The Gemini API versions served, each under its own plain path prefix.
VERSIONS = ("v1", "v1beta", "v1alpha")
