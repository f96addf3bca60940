"""NUDGE Explorer's app wing: everything the Streamlit pages share, beside the engine.

``app.py`` and the page scripts in ``pages/`` import from here; the engine (``nudge_core``) never
does. Modules: :mod:`session` (per-session defaults, navigation, the sidebar summary),
:mod:`sources` (where the data comes from: bundled example, server folder, uploads and their
private folder, OOD sets), :mod:`runs` (the split, settings and run for the current session,
cached by content), :mod:`uploads` (browser files to engine inputs), :mod:`figures` (plotly
charts) and :mod:`widgets` (small Streamlit helpers).
"""
