"""Typed errors raised at the engine's boundaries.

Every error names what it is about (a file and line, an index, a model path) so a
user can act on it without reading a traceback.
"""


class RetrieverError(Exception):
    """Base class for every error this package raises on purpose."""


class InputError(RetrieverError):
    """Malformed user input: a bad line in a corpus file, an empty or duplicate id.

    Args:
        message: what is wrong.
        path: the file it was found in, if any.
        line: the 1-based line number in ``path``, if any.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path, self.line = path, line
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(where + message)


class IndexFormatError(RetrieverError):
    """An index or engine directory that is missing, incomplete or inconsistent."""


class MissingResourceError(RetrieverError):
    """A model, dataset or optional backend that is not available offline."""


class SpecError(RetrieverError):
    """A spec string (index spec, fusion spec) that does not parse."""


class SettingError(SpecError):
    """A setting of a component (index kind, fusion, reranker, trainer) that is unknown or has a bad value.

    Args:
        component: the component (``bm25``, ``rrf``, ``train sparse``).
        setting: the setting's name.
        problem: what is wrong (``must be a number, got 'abc'``).
        prefix: start the message with ``setting 'NAME'`` (False when ``problem`` names it).
    """

    def __init__(self, component: str, setting: str, problem: str, prefix: bool = True):
        self.component, self.setting = component, setting
        super().__init__(f"{component}: " + (f"setting {setting!r} {problem}" if prefix else problem))


class GenerationError(RetrieverError):
    """A language-model backend that failed: unreachable endpoint, HTTP error, malformed reply."""
