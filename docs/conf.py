"""Sphinx configuration for the neuro monorepo documentation."""

from __future__ import annotations

import sys
from pathlib import Path

# Local extensions: verdicts_page regenerates the Verdicts page from the committed results.
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

project = "neuro"
author = "the neuro developers"
copyright = "2026, the neuro developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "verdicts_page",
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
# _generated holds the Verdicts tables (included by verdicts.rst) and the reports they link to.
exclude_patterns = ["_build", "_generated"]
html_theme = "alabaster"
html_static_path = ["_static"]
# The CLAIM.md and REPORT.md files the Verdicts page links to (copied there by verdicts_page).
html_extra_path = ["_generated/extra"]
html_theme_options = {"description": "brain-inspired LM mechanisms, built once, tested honestly"}
