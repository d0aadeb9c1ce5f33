"""Sphinx configuration for qiskit-rest-provider (built warning-free by ``tox -e docs``)."""

from qiskit_rest_provider.version import __version__

project = "qiskit-rest-provider"
author = "qiskit-rest-provider developers"
release = __version__
version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
suppress_warnings = ["ref.python"]


def _skip_namedtuple_aliases(app, what, name, obj, skip, options):
    """Skip the ``Alias for field number N`` properties of NamedTuples.

    Their ``Attributes:`` sections already document the fields; documenting the aliases too
    makes two descriptions of each (a warning, an error under ``-W``).
    """
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_namedtuple_aliases)
