"""costmodel's what-if dashboard: ``costmodel dashboard``, or ``streamlit run`` on this file.

The scenario sidebar is shared by every page; each page is one flat script in ``views/``. To add a page,
write ``views/<name>.py`` and add one ``st.Page`` line to ``PAGES`` (docs/dashboard.md).
"""

import components
import link
import streamlit as st

st.set_page_config(page_title="costmodel", page_icon=":material/memory:", layout="wide")

PAGES = [
    st.Page("views/memory.py", title="Memory", icon=":material/memory:", url_path="memory", default=True),
    st.Page("views/performance.py", title="Performance", icon=":material/speed:", url_path="performance"),
    st.Page(
        "views/speculative.py",
        title="Speculative decoding",
        icon=":material/fast_forward:",
        url_path="speculative",
    ),
    st.Page("views/capacity.py", title="Capacity planning", icon=":material/dns:", url_path="capacity"),
    st.Page("views/pareto.py", title="Pareto", icon=":material/stacked_line_chart:", url_path="pareto"),
    st.Page("views/compression.py", title="Compression", icon=":material/compress:", url_path="compression"),
    st.Page("views/validation.py", title="Validation", icon=":material/fact_check:", url_path="validation"),
]

page = st.navigation(PAGES)
shared = link.read()  # a shared link's parameters, before any widget reads them
components.scenario_sidebar()
notes = st.container()  # the top of the page: what the link asked for and the page ignored
try:
    page.run()
finally:  # also after a page's st.stop()
    link.check(shared)
    with notes:
        link.show()
