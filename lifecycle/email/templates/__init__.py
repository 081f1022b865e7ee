"""Email templates: rendering (``render``), published versions (``versions``), sample data
(``samples``) and the checks marketers run (``checks``). Import from the module that says
what you need; the names below are the package's face."""

from lifecycle.email.templates.checks import Problem, check_templates
from lifecycle.email.templates.render import RenderedEmail, TemplateRenderError, TemplateSet
from lifecycle.email.templates.samples import sample_vars
from lifecycle.email.templates.versions import Published, load_published, publish, unpublish

__all__ = [
    "Problem",
    "Published",
    "RenderedEmail",
    "TemplateRenderError",
    "TemplateSet",
    "check_templates",
    "load_published",
    "publish",
    "sample_vars",
    "unpublish",
]
