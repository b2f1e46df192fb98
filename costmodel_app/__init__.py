"""costmodel's what-if dashboard (Streamlit), shipped in the same wheel as the library.

``costmodel dashboard`` (or ``python -m costmodel_app``) starts it through :func:`costmodel_app.launch.main`;
``streamlit run costmodel_app/streamlit_app.py`` works too. The library (``costmodel``) never imports this
package: ``costmodel dashboard`` finds it as the installed entry point ``dashboard`` of ``costmodel.apps``.
Importing this package imports neither streamlit nor plotly; only the scripts Streamlit runs do.
"""
