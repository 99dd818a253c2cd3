"""Driving a real kernel through jupyter_client, as a notebook front end does."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import start_new_kernel

TIMEOUT = 30
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Reply:
    """What one execute_request produced."""

    status: str
    outputs: list[dict[str, Any]] = field(default_factory=list)
    ename: str | None = None
    evalue: str | None = None
    traceback: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Everything printed or shown as text/plain, in order."""
        parts = []
        for out in self.outputs:
            if out["msg_type"] == "stream":
                parts.append(out["content"]["text"])
            elif out["msg_type"] in ("execute_result", "display_data"):
                parts.append(out["content"]["data"].get("text/plain", "") + "\n")
        return "".join(parts)

    @property
    def result(self) -> dict[str, Any] | None:
        """The execute_result's data (None if the cell had no value)."""
        for out in self.outputs:
            if out["msg_type"] == "execute_result":
                return out["content"]["data"]
        return None

    @property
    def traceback_text(self) -> str:
        return _ANSI.sub("", "\n".join(self.traceback))


class Kernel:
    """A running kernel and a blocking client for it."""

    def __init__(self, name: str = "counterpoint") -> None:
        self.manager, self.client = start_new_kernel(kernel_name=name, startup_timeout=60)

    def execute(self, code: str, timeout: float = TIMEOUT, **options: Any) -> Reply:
        msg_id = self.client.execute(code, **options)
        return self.collect(msg_id, timeout)

    def collect(self, msg_id: str, timeout: float = TIMEOUT) -> Reply:
        outputs = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "status" and msg["content"]["execution_state"] == "idle":
                break
            if kind in (
                "stream",
                "execute_result",
                "display_data",
                "error",
                "comm_open",
                "comm_msg",
            ):
                outputs.append(msg)
        while True:
            reply = self.client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        content = reply["content"]
        return Reply(
            content["status"],
            outputs,
            content.get("ename"),
            content.get("evalue"),
            content.get("traceback", []),
        )

    def value(self, expression: str) -> Any:
        """Evaluate ``expression`` in the kernel and return its repr, parsed back."""
        import ast

        reply = self.execute(expression)
        assert reply.status == "ok", reply.traceback_text
        assert reply.result is not None, f"{expression!r} has no value"
        return ast.literal_eval(reply.result["text/plain"])

    def interrupt(self) -> None:
        self.manager.interrupt_kernel()

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
