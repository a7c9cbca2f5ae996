"""Stateful upstream resources (files, cached contents): who holds each, and what a request
that names one is pinned to."""
