"""Interactive explorers (ipywidgets), one module per topic (``course.widgets.<topic>``).

The computation behind every widget is a plain function that the tests call
without a browser; the ipywidgets wiring beside it stays thin.
"""
