"""The operations: one module per resource; every operationId in the spec resolves here.

Thin by design: take Connexion's validated arguments and the request's dependencies
(see edge.deps), make one call into the core, render the reply.
"""
