"""The `course` package of "Large Language Models: From Theory to Practice".

One module per concept; each module's docstring names the chapter that builds it.
The notebooks build every idea step by step in the open; the modules hold the
finished reference versions that later chapters import.
"""

__version__ = "0.1.0"
