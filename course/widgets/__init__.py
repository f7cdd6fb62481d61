"""Interactive explorers (ipywidgets), one module per topic (``course.widgets.<topic>``).

The computation behind every widget is a plain function that the tests call
without a browser; the ipywidgets wiring beside it stays thin. Every explorer is
a ``course.widgets.explorer.Explorer``: its output also carries a picture of its
default view, which the book (no kernel) shows instead of an empty widget.
"""
