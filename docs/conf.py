"""Sphinx configuration for the neuro monorepo documentation."""

from __future__ import annotations

project = "neuro"
author = "the neuro developers"
copyright = "2026, the neuro developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Attributes sections as :ivar: fields, so NamedTuple fields are not described twice.
napoleon_use_ivar = True
# Components share names re-exported from several modules; they are documented where defined.
suppress_warnings = ["ref.python", "autodoc.import_object"]
nitpicky = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = ["_static"]
html_theme_options = {"description": "brain-inspired LM mechanisms, built once, tested honestly"}
