"""The one query language of `q`: its syntax (parsed once into a tree), its tokens, its
reference meaning, and its renderings for the upstreams. The database engines' renderings
live beside the archive's SQL (newsagg.store.fulltext)."""
