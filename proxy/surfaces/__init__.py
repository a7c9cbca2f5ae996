"""The surfaces clients see: the Gemini API, the models list, /api/v6, ops and the status page."""
