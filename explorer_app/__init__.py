"""NUDGE Explorer's app wing: everything the Streamlit pages share, beside the engine.

``app.py`` and the page scripts in ``pages/`` import from here; the engine (``nudge_core``) never
does. Modules: :mod:`session` (per-session defaults, navigation, the sidebar summary),
:mod:`sources` (where the data comes from: bundled example, a dataset the server offers, an
upload), :mod:`ood_sets` (the OOD query set: the dataset's own or an upload), :mod:`folders`
(the per-process upload root and session folders, the operator's allowed dataset roots,
$NUDGE_DATA_DIRS), :mod:`runs` (the split, settings and run for the current session, cached by
content), :mod:`uploads` (browser files to engine inputs, named as uploaded, within the upload
limits), :mod:`figures` (plotly charts) and :mod:`widgets` (the pages' error boundary and small
Streamlit helpers).
"""
