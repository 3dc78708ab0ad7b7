"""The archive: every article newsagg has fetched, kept and searchable in one query language."""
