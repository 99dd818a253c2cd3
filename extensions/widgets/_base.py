"""What every Counterpoint widget shares: the JavaScript it ships, the static picture in
its mime bundle, a repr without memory addresses, and request/reply messages.

The JavaScript is plain ES modules shipped as files in the package (``js/``): no npm, no
build step.  Each widget's module is ``js/common.js`` followed by its own file (an
anywidget module is one source text, so shared code is concatenated, not imported).

Requests: the browser asks the kernel for what it shows (a window of records, a state
view) with ``{"type": "request", "id": N, "what": NAME, ...}``; the kernel answers with
``{"type": "reply", "id": N, ...}`` and binary buffers, computed by ``_answer_NAME``.
The kernel owns every rule; the JavaScript only draws what it is sent.  Like every
inbound widget message, a request is handled when the kernel is idle.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import anywidget
import traitlets

_JS = resources.files(__package__).joinpath("js")


def bundle(*names: str) -> str:
    """The ES module made of ``js/common.js`` and ``names`` (files under ``js/``)."""
    return "\n".join(
        _JS.joinpath(name).read_text(encoding="utf-8") for name in ("common.js", *names)
    )


CSS = _JS.joinpath("widgets.css").read_text(encoding="utf-8")


class StaticPicture:
    """A mixin: the mime bundle also holds ``text/html`` (the static picture, inline SVG
    without script) and the repr says what is shown, never where in memory."""

    def _picture(self) -> str:  # the static picture: inline SVG, same bytes every run
        raise NotImplementedError

    def _describe(self) -> str:  # the repr's words after the class name
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle_ = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        data, metadata = bundle_ if isinstance(bundle_, tuple) else (bundle_, {})
        data = dict(data or {})
        data["text/plain"] = repr(self)
        data["text/html"] = self._picture()
        return data, metadata


class Widget(StaticPicture, anywidget.AnyWidget):
    """The base of Counterpoint's anywidgets (see the module's docstring)."""

    _css = CSS
    error = traitlets.Unicode("").tag(sync=True)  # the last request that failed, in words

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_msg(self._on_message)

    def _on_message(self, _widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "request":
            return
        ident, what = content.get("id"), content.get("what")
        handler = getattr(self, f"_answer_{what}", None) if isinstance(what, str) else None
        try:
            if handler is None:
                raise ValueError(f"this widget answers no request {what!r}")
            reply, out = handler(content)
        except Exception as error:  # the browser shows it; the kernel goes on
            self.error = f"{what}: {type(error).__name__}: {error}"
            reply, out = {"error": self.error}, []
        self.send({"type": "reply", "id": ident, **reply}, out)
