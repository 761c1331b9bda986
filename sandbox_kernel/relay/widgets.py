"""What the ipywidgets frontend renders from a widget model's state, field by field.

The widget manager in JupyterLab and Notebook 7 builds a model for every
``jupyter.widget`` comm and renders its views in the page, in the server's origin.
A model's JavaScript comes from its ``_model_module`` and ``_view_module``: those
must be modules the admin trusts (``Output.widget_modules``; ipywidgets' own by
default), because a custom module runs code of its choosing with the state it is
given (anywidget runs the ``_esm`` field). For ipywidgets' own models the fields
that reach ``innerHTML`` or MathJax are known (read from the 8.x sources):

- ``value`` of ``HTMLModel`` and ``HTMLMathModel``: set as ``innerHTML``
  (``HTMLMath`` then typesets it);
- ``description`` of every description widget: ``innerHTML`` when
  ``description_allow_html`` is set (a later update may set it), typeset always;
- ``value`` of ``LabelModel``: text, but typeset;
- ``outputs`` of ``OutputModel``: output dicts the widget renders with
  JupyterLab's output area, as trusted as any output;

everything else a core view shows goes through ``textContent``, an attribute or a
CSS property. Binary buffers may not stand in for any of these fields.
"""

from __future__ import annotations

__all__ = [
    "CORE_WIDGET_MODULES",
    "HTML_FIELDS",
    "LATEX_FIELDS",
    "OUTPUT_FIELDS",
    "WIDGET_TARGETS",
]

CORE_WIDGET_MODULES = (
    "@jupyter-widgets/base",
    "@jupyter-widgets/controls",
    "@jupyter-widgets/output",
)
WIDGET_TARGETS = ("jupyter.widget", "jupyter.widget.control", "jupyter.widget.version")

# (model name or "*", field): the field's string goes through the HTML check.
HTML_FIELDS = frozenset({("HTMLModel", "value"), ("HTMLMathModel", "value"), ("*", "description")})
# Typeset by MathJax: active LaTeX commands are neutralized.
LATEX_FIELDS = frozenset(
    {("HTMLMathModel", "value"), ("LabelModel", "value"), ("*", "description")}
)
# Lists of nbformat outputs, rendered like the cell's own outputs.
OUTPUT_FIELDS = frozenset({("OutputModel", "outputs")})


def field_in(fields: frozenset[tuple[str, str]], model: str, name: str) -> bool:
    """Whether ``name`` of ``model`` is among ``fields`` ("*": a field of any model)."""
    if model == "*":
        return any(field == name for _, field in fields)
    return (model, name) in fields or ("*", name) in fields
