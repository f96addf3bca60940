"""Compare runs: pin the current run as A, change settings, pin B, C…; one table and chart across."""

from __future__ import annotations

import streamlit as st

from explorer_app import compare, runs, session
from explorer_app.widgets import page_errors, show_error
from nudge_core.comparison import command, like_for_like
from nudge_core.registry import label
from nudge_core.runspec import SpecError

session.boot()
with page_errors():  # the page's one error boundary: tracebacks go to the log
    st.title("10 · Compare runs")
    st.markdown(
        "Pin the current run as **A**, change a setting (on the Fine-tune or Data page), come back "
        "and pin **B**, then **C**… The table and chart below put the pinned runs side by side: γ, "
        "test metrics, the OOD metric, fit time and the gain over no fine-tuning with its 95% "
        "bootstrap interval. Pins are kept for this browser session only, up to "
        f"{compare.MAX_PINS}.")

    ss = st.session_state
    pinned = compare.pins()
    try:
        current = runs.current_spec()
    except SpecError as exc:
        current = None
        show_error(exc)

    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    full = len(pinned) >= compare.MAX_PINS
    clicked = c1.button(f"Pin the current run as {compare.next_label(pinned)}" if not full
                        else f"{compare.MAX_PINS} runs pinned", type="primary", key="pin_current",
                        disabled=full or current is None)
    c2.caption(f"**Current run:** {ss.source['label']}; "
               + ("settings not valid" if current is None else compare.settings_text(current))
               + (". Remove a pin to add another." if full else "."))
    if clicked:
        result = runs.current_result()  # the run the Results page shows (fitted if not cached)
        if result is None:
            st.warning("There is no run to pin yet: load a dataset on the **Data** page and fit "
                       "on the **Fine-tune** page, then come back.", icon=":material/info:")
            st.page_link("pages/finetune.py", label="Go to Fine-tune", icon=":material/tune:")
        else:
            pin, why = compare.add_pin(result)
            if why:
                st.warning(why, icon=":material/info:")
            else:
                missing = runs.pending_methods(result)  # slow methods still fitting
                notes = [("success", f"Pinned as {pin.label}.")]
                if missing:
                    notes.append(("warning", f"{', '.join(label(n) for n in missing)} had not "
                                  f"finished fitting yet; {pin.label} holds the other methods "
                                  "only (pin again when it is done to compare it too)."))
                ss["compare_notes"] = notes
                st.rerun()  # the button and the tables then show the new pin
    for kind, text in ss.pop("compare_notes", []):
        getattr(st, kind)(text)

    if not pinned:
        st.info("No run is pinned yet. Pin the current run, change a setting on the **Fine-tune** "
                "or **Data** page, come back and pin again.")
        st.stop()

    for note in like_for_like(pinned):
        st.warning(note, icon=":material/warning:")

    st.subheader("Runs × methods")
    st.dataframe(compare.table(pinned), hide_index=True, width="stretch",
                 column_config={"γ": st.column_config.NumberColumn(format="%.4g"),
                                **{c: st.column_config.NumberColumn(format="%.4f")
                                   for c in ("NDCG@10", "Recall@10", "MRR@10", "OOD NDCG@10")},
                                "fit s": st.column_config.NumberColumn(format="%.3f"),
                                "Δ NDCG@10 vs none [95% CI]": st.column_config.TextColumn(
                                    width="medium")})
    st.caption("Recall@10 is |top-10 ∩ relevant| / min(|relevant|, 10). Δ is the mean change in "
               "test NDCG@10 against no fine-tuning within the same run, with its 95% bootstrap "
               "interval and the randomization test's p.")
    st.plotly_chart(compare.figure(pinned), width="stretch")
    st.markdown("**The pinned runs**")
    st.dataframe(compare.runs_table(pinned), hide_index=True, width="stretch",
                 column_config={"settings": st.column_config.TextColumn(width="large")})

    with st.expander("Rename or remove pins"):
        labels = [p.label for p in pinned]
        r1, r2, r3, r4 = st.columns([1, 2, 1, 1], vertical_alignment="bottom")
        which = r1.selectbox("Pin", labels, key="pin_pick")
        new = r2.text_input("New name", key="pin_new_name", max_chars=compare.MAX_LABEL)
        if r3.button("Rename", key="pin_rename"):
            why = compare.rename(which, new)
            if why:
                st.error(why, icon=":material/error:")
            else:
                st.rerun()
        if r4.button("Remove", key="pin_remove"):
            compare.remove(which)
            st.rerun()
        if st.button("Remove every pin", key="pin_clear"):
            compare.remove()
            st.rerun()

    st.subheader("Downloads")
    st.caption("The JSON holds every pin's settings and numbers; the CSV is one row per run × "
               "method × metric; the chart works offline; the script reruns each pin with the "
               "command-line tool.")
    cols = st.columns(len(compare.DOWNLOADS))
    for col, (kind, (text, name, mime)) in zip(cols, compare.DOWNLOADS.items()):
        col.download_button(text, lambda kind=kind: compare.file_bytes(kind, pinned),
                            file_name=name, mime=mime, key=f"download_{kind}")
    with st.expander("Commands that rerun each pinned run"):
        for pin, spec in zip(pinned, compare.cli_specs(pinned)):
            st.code(f"# {pin.label}\n{command(pin, spec)}", language="bash", wrap_lines=True)
