"""Reference solutions of the exercises, one module per chapter (``chNN_topic.py``).

The book shows these functions inside collapsed solution boxes, the teacher
edition imports them so the rest of a chapter runs, and the tests prove that
each one passes its check while the blank stub in the notebook fails it.
"""
