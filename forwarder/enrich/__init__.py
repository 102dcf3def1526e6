"""Enrichment: the ``assumerole`` object of SCHEMA.md, and chain resolution across records."""

from forwarder.enrich.enricher import Enricher

__all__ = ["Enricher"]
