"""The HTTP edge: one module per resource; every operationId in the spec resolves here.

Thin by design: take Connexion's validated arguments, call the core, shape the reply.
"""
