"""Text to structure and back: the command parser and the text view."""

from incidentiq.language.parser import ParseResult, parse
from incidentiq.language.render import render_text

__all__ = ["ParseResult", "parse", "render_text"]
