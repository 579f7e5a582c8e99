"""Source listings for the notebooks: a ``unet_lib`` function or class shown highlighted.

Notebooks show the library's real code this way, so there is only one copy of it.
"""

import html
import inspect

__all__ = ["Source", "show_source"]


class Source:
    """Source code that renders highlighted in Jupyter and as plain text elsewhere."""

    def __init__(self, code: str):
        self.code = code

    def __repr__(self) -> str:
        return self.code

    def _repr_html_(self) -> str:
        try:
            from pygments import highlight
            from pygments.formatters import HtmlFormatter
            from pygments.lexers import PythonLexer
        except ImportError:   # pygments comes with IPython, but do not depend on it
            return f"<pre>{html.escape(self.code)}</pre>"
        return highlight(self.code, PythonLexer(), HtmlFormatter(noclasses=True, nobackground=True))


def show_source(obj) -> Source:
    """The source of a ``unet_lib`` class or function, for a notebook to display.

    Notebooks show the library's real code this way, so there is only one copy of it.
    """
    return Source(inspect.getsource(obj))
