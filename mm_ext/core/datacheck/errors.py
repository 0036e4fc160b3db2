"""The named errors for malformed data."""
from typing import Optional

__all__ = ['DataFormatError', 'MissingDataFileError']


class DataFormatError(ValueError):
    """Malformed dataset content, with where it is and what was expected.

    Attributes:
        path (str): the file holding the bad content.
        line (int | None): 1-based line number, for line-oriented files.
        field (str | None): the field/key at fault.
    """

    def __init__(self, path, problem: str, line: Optional[int] = None, field: Optional[str] = None,
                 hint: Optional[str] = None):
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        where = self.path if line is None else f'{self.path}:{line}'
        what = problem if field is None else f'field {field!r}: {problem}'
        super().__init__(f'{where}: {what}' + (f'. {hint}' if hint else ''))


class MissingDataFileError(DataFormatError, FileNotFoundError):
    """A file an annotation names does not exist (path/line = the annotation naming it)."""

    def __init__(self, path, missing, problem: Optional[str] = None, line: Optional[int] = None,
                 field: Optional[str] = None, hint: Optional[str] = None):
        self.missing = str(missing)
        super().__init__(path, problem or f'names {self.missing}, which does not exist', line=line, field=field,
                         hint=hint)
