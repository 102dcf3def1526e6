"""Where the project's data folders (mappings/, sigma/) are: in the source tree, or installed.

They sit at the repository's top level (the layout users expect); a wheel installs them as
data files under ``<prefix>/share/forwarder/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_SOURCE_TREE = Path(__file__).resolve().parents[1]
_INSTALLED = Path(sys.prefix) / "share" / "forwarder"


def project_dir(name: str) -> Path:
    """The folder ``name`` (``mappings`` or ``sigma``) of this installation."""
    # The checkout is told by its pyproject.toml: in an installed wheel the folder beside the
    # package is site-packages, where pySigma's own "sigma" package lives.
    return _SOURCE_TREE / name if (_SOURCE_TREE / "pyproject.toml").is_file() else _INSTALLED / name
