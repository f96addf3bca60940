"""The bundled example's builders, kept out of the engine's core modules.

:mod:`nudge_core.examples.stdlib_docs` rebuilds the text of the bundled example's records
(``sample_data/stdlib``) from the running interpreter; nothing in the engine imports it.
"""
