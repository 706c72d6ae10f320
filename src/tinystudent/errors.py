"""Error types with messages meant for the user, so the CLI can print them without a traceback."""


class TinyStudentError(Exception):
    """Base class: the CLI prints these as one clear line and exits non-zero."""


class AssetMissingError(TinyStudentError):
    """An offline asset's package is not installed; the message names the pip command."""


class DataError(TinyStudentError):
    """Input data is missing, empty or malformed; the message names the file, row or column."""


class RecipeError(TinyStudentError):
    """A recipe has an unknown key or a wrong value; the message names the field."""
