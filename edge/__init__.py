"""The HTTP edge's machinery: app factory, middlewares, Connexion extension points, bearer
checks, and the one table that turns core errors into HTTP answers.

`handlers/` holds the operations; this package holds what every operation shares.
Nothing in `newsagg/` or `providers/` imports from here.
"""
