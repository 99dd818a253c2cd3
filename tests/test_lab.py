"""`counterpoint lab`: JupyterLab on the notebooks, with the kernel, headless-friendly."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_lab_serves_the_notebooks_folder_with_the_counterpoint_kernel(tmp_path):
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    port = free_port()
    log = tmp_path / "lab.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "counterpoint", "lab", "--no-browser", "--port", str(port)],
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while not (found := re.search(rf"127\.0\.0\.1:{port}/lab\?token=(\w+)", log.read_text())):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "JupyterLab did not start: " + log.read_text()
            time.sleep(0.25)
        token = found.group(1)

        def get(path: str):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"token {token}"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()

        status, body = get("/api/kernelspecs")
        assert status == 200 and "counterpoint" in json.loads(body)["kernelspecs"]
        status, body = get("/api/contents")  # the server's root is ./notebooks
        names = [item["name"] for item in json.loads(body)["content"]]
        assert "01-tasks-and-time.ipynb" in names
        assert get("/lab")[0] == 200
        # the server extension is on: kernel websockets without Nagle's delay
        assert "counterpoint: kernel websockets send without delay" in log.read_text()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_lab_explains_a_missing_directory(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "counterpoint", "lab", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "no such directory" in done.stderr


def test_the_server_extension_sets_nodelay_before_a_kernel_websocket_opens():
    import asyncio

    from counterpoint.kernel import serverext

    calls = []

    class Handler:
        def set_nodelay(self, value):
            calls.append(("nodelay", value))

        async def open(self, kernel_id):
            calls.append(("open", kernel_id))
            return "opened"

    assert serverext.nodelay(Handler) is True
    assert serverext.nodelay(Handler) is False  # (once)
    assert asyncio.run(Handler().open("k1")) == "opened"
    assert calls == [("nodelay", True), ("open", "k1")]


def test_install_enables_the_server_extension(tmp_path):
    from counterpoint.kernel.install import install_server_config

    path = install_server_config(prefix=str(tmp_path))
    assert path == tmp_path / "etc/jupyter/jupyter_server_config.d/counterpoint.json"
    assert json.loads(path.read_text()) == {
        "ServerApp": {"jpserver_extensions": {"counterpoint.kernel.serverext": True}}
    }
    shipped = ROOT / "kernel/jupyter-config/counterpoint.json"  # the wheel's copy
    assert json.loads(shipped.read_text()) == json.loads(path.read_text())
