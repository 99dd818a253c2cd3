"""A simulated Binder build: a fresh virtual environment, `pip install -r
binder/requirements.txt` from the repository's root (as repo2docker runs it), a
Jupyter server on localhost, and the first notebook run cell by cell through the
server's kernel API with the `counterpoint` kernel."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).parent.parent
NOTEBOOK = "notebooks/01-tasks-and-time.ipynb"

pytestmark = pytest.mark.slow


def copy_repository(target: Path) -> Path:
    """The tracked files, as repo2docker copies a repository into the image."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, python: Path, root: Path, log: Path) -> None:
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.log = log
        with log.open("wb") as errors:  # (a file, not a pipe: the server logs a lot)
            self.process = subprocess.Popen(
                [
                    str(python),
                    "-m",
                    "jupyter_server",
                    "--no-browser",
                    f"--port={self.port}",
                    "--ip=127.0.0.1",
                    f"--ServerApp.token={self.token}",
                    f"--ServerApp.root_dir={root}",
                    *(["--allow-root"] if os.geteuid() == 0 else []),  # (containers, CI)
                ],
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/api/status")
                return
            except OSError:
                assert self.process.poll() is None, self.log.read_text()
                assert time.monotonic() < deadline, "the Jupyter server did not start"
                time.sleep(0.25)

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else {}

    def get(self, path: str) -> dict:
        return self.request("GET", path)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def websocket_timeout() -> type[Exception]:
    import websocket

    return websocket.WebSocketTimeoutException


def execute(ws, code: str) -> list[dict]:
    """Run ``code`` over the kernel's websocket; return its outputs as notebook outputs."""
    return collect(ws, send(ws, code))


def send(ws, code: str) -> str:
    """Send an execute_request over the kernel's websocket; return its msg_id."""
    msg_id = uuid.uuid4().hex
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "binder-test",
                    "session": "binder-test",
                    "date": "",
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "content": {"code": code, "silent": False, "store_history": True},
                "channel": "shell",
                "buffers": [],
            }
        )
    )
    return msg_id


def collect(ws, msg_id: str, timeout: float = 60, grace: float = 0.5) -> list[dict]:
    """The outputs of the request ``msg_id``, until the kernel is idle again (and then for
    ``grace`` seconds more: on a loaded machine ipykernel may flush a stream late).
    Consecutive stream chunks are joined, as a notebook stores them."""
    outputs: list[dict] = []
    deadline = time.monotonic() + timeout
    idle = None
    blocking = ws.gettimeout()
    while True:
        now = time.monotonic()
        if idle is not None and now >= idle + grace:
            return outputs
        assert now < deadline, f"no reply within {timeout} s: {outputs}"
        ws.settimeout(max(0.05, (idle + grace - now) if idle is not None else deadline - now))
        try:
            msg = json.loads(ws.recv())
        except websocket_timeout():
            continue
        finally:
            ws.settimeout(blocking)
        if msg.get("parent_header", {}).get("msg_id") != msg_id or msg["channel"] != "iopub":
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "status" and content["execution_state"] == "idle":
            idle = time.monotonic()
        elif kind == "stream":
            last = outputs[-1] if outputs else None
            if last and last["output_type"] == "stream" and last["name"] == content["name"]:
                last["text"] += content["text"]
            else:
                outputs.append(
                    {"output_type": "stream", "name": content["name"], "text": content["text"]}
                )
        elif kind in ("execute_result", "display_data"):
            outputs.append({"output_type": kind, "data": content["data"]})
        elif kind == "error":
            outputs.append({"output_type": "error", "ename": content["ename"]})


def comparable(outputs: list) -> list:
    """What nbval compares: the text of streams, text/plain and text/html, error names."""
    out = []
    for o in outputs:
        if o["output_type"] == "stream":
            out.append(("stream", o["name"], o["text"]))
        elif o["output_type"] == "error":
            out.append(("error", o["ename"]))
        else:
            out.append((o["output_type"], o["data"].get("text/plain"), o["data"].get("text/html")))
    return out


def test_the_binder_setup_builds_and_runs_the_first_notebook_with_the_kernel(tmp_path):
    import websocket  # websocket-client, a jupyter_server dependency

    repo = copy_repository(tmp_path / "repo")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    # the kernelspec came with the install, into the environment
    assert (venv / "share/jupyter/kernels/counterpoint/kernel.json").is_file()

    server = Server(python, repo, tmp_path / "server.log")
    try:
        specs = server.get("/api/kernelspecs")["kernelspecs"]
        assert specs["counterpoint"]["spec"]["display_name"] == "Counterpoint (deterministic VM)"
        kernel = server.request("POST", "/api/kernels", {"name": "counterpoint"})
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{server.port}/api/kernels/{kernel['id']}/channels"
            f"?token={server.token}",
            timeout=60,
        )
        try:
            nb = nbformat.read(repo / NOTEBOOK, as_version=4)
            for cell in nb.cells:
                if cell.cell_type == "code":
                    got = comparable(execute(ws, cell.source))
                    assert got == comparable(cell.outputs), cell.source
            # the stop button, in this installed layout: a cell looping in its own code
            looping = send(ws, "await sleep(1)\nwhile True:\n    pass")
            time.sleep(1.5)
            server.request("POST", f"/api/kernels/{kernel['id']}/interrupt")
            assert comparable(collect(ws, looping)) == [("error", "KeyboardInterrupt")]
            assert comparable(execute(ws, "await sleep(1)\n'the next cell works'"))[0][1] == (
                "'the next cell works'"
            )
        finally:
            ws.close()
        server.request("DELETE", f"/api/kernels/{kernel['id']}")
    finally:
        server.stop()
