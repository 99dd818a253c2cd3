"""``counterpoint lite build``: the course as a static JupyterLite site (docs/jupyterlite.md).

The site runs Python in the page (Pyodide, in a web worker): nothing is installed by
the learner and no server runs a kernel; any static host serves it.  It is made from the
package registries only, and fetches nothing from anywhere else when it runs:

1. **Pyodide** comes from the npm registry (the ``pyodide`` package, the version
   ``jupyterlite-pyodide-kernel`` is made for), checked against the registry's sha512.
   That package is the runtime only, none of the packages of a full Pyodide release.
2. **Wheels** come from PyPI (through pip, so the user's index settings apply): the
   pure-Python packages the kernel loads at start (micropip, IPython and what it needs,
   jedi: the versions Pyodide's own lock file names), Counterpoint (built from this
   source tree) and what it needs under Pyodide (the kernel-only dependencies carry
   ``sys_platform != "emscripten"`` markers), the Pyodide kernel's own wheels, and a
   small generated wheel whose only file makes IPython load ``%load_ext counterpoint``
   at start.  Every requirement of every wheel, with its markers evaluated as in
   Pyodide, must be met inside the site, or the build stops and names what is missing.
3. **The lock file** Pyodide loads packages by is written anew: one entry per wheel in
   the site, each with that file's sha256 (Pyodide checks it).  Packages of the full
   Pyodide release that the site does not carry are left out, so nothing in the lock
   points at a CDN.  (``jupyterlite-pyodide-kernel``'s own lock add-on needs
   ``pyodide-lock`` 0.1.3, which needs Python 3.12; this build runs on 3.11.)
4. ``jupyter lite build`` makes the site: JupyterLab, the Pyodide kernel (with the
   packages above preloaded and PyPI fallback off), the widget extensions, and the
   course notebooks with their kernel set to the Pyodide one.
"""

from __future__ import annotations

import base64
import email.parser
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

__all__ = ["LiteBuildError", "build", "pyodide_version"]

#: what the kernel loads at start (its worker's ``initPackageManager`` and ``initKernel``)
KERNEL_PACKAGES = ("micropip", "piplite", "pyodide-kernel", "ipykernel", "comm", "jedi", "ipython")
#: what the site preloads besides: Counterpoint, and the wheel that loads its extension
SITE_PACKAGES = ("counterpoint", "counterpoint-jupyterlite")
#: the Pyodide kernel's name in a notebook's metadata
PYODIDE_KERNELSPEC = {"name": "python", "display_name": "Python (Pyodide)", "language": "python"}
NPM_REGISTRY = "https://registry.npmjs.org"
IPYTHON_CONFIG = """\
# Written by `counterpoint lite build`: every kernel of the site loads Counterpoint, as
# the `counterpoint` kernel does on a real Jupyter server.
c.InteractiveShellApp.extensions = ["counterpoint"]
"""


class LiteBuildError(RuntimeError):
    """The site cannot be built; the message says what is missing and what to do."""


def pyodide_version() -> str:
    """The Pyodide version the installed ``jupyterlite-pyodide-kernel`` is made for."""
    try:
        from jupyterlite_pyodide_kernel.constants import PYODIDE_VERSION
    except ImportError as error:
        raise LiteBuildError(
            "counterpoint lite build needs JupyterLite and its Pyodide kernel: "
            "pip install 'counterpoint[lite]'"
        ) from error
    return PYODIDE_VERSION


# -- downloads ------------------------------------------------------------------------------


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.read()
    except OSError as error:  # (URLError, timeouts, resets)
        raise LiteBuildError(
            f"could not download {url}: {error}. The build needs the npm registry and "
            f"PyPI (once: downloads are kept in the cache folder)"
        ) from error


def fetch_pyodide(version: str, cache: Path) -> Path:
    """The npm package ``pyodide@version`` (its tarball, checked against the registry's
    sha512), unpacked under ``cache``; the folder of its files."""
    folder = cache / f"pyodide-{version}"
    if (folder / "pyodide.mjs").is_file():
        return folder
    meta = json.loads(_get(f"{NPM_REGISTRY}/pyodide/{version}"))
    integrity = meta["dist"]["integrity"]
    data = _get(meta["dist"]["tarball"])
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512" or base64.b64decode(expected) != hashlib.sha512(data).digest():
        raise LiteBuildError(
            f"the npm tarball of pyodide {version} does not match the registry's "
            f"integrity {integrity}; delete {cache} and build again"
        )
    partial = Path(tempfile.mkdtemp(prefix=f".pyodide-{version}-", dir=cache))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(partial, filter="data")
        try:
            (partial / "package").rename(folder)
        except OSError:  # (another build sharing the cache got there first)
            if not (folder / "pyodide.mjs").is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def pip_download(requirement: str, into: Path, python: str) -> Path:
    """The pure-Python wheel of ``requirement`` (``name==version``) from the index."""
    into.mkdir(parents=True, exist_ok=True)
    name, version = requirement.split("==")
    found = _pure_wheel(into, name, version)
    if found is not None:
        return found
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--only-binary=:all:", "--python-version", python, "--platform", "any",
        "--implementation", "py", "--abi", "none", "--dest", str(into), requirement,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    found = _pure_wheel(into, name, version)
    if done.returncode != 0 or found is None:
        raise LiteBuildError(
            f"could not download a pure-Python wheel of {requirement} for Python {python} "
            f"from the package index:\n{done.stderr.strip()}"
        )
    return found


def _pure_wheel(folder: Path, name: str, version: str) -> Path | None:
    """A ``*-none-any`` wheel of ``name`` at ``version`` in ``folder``, if there is one."""
    for wheel in sorted(folder.glob("*.whl")):
        named, at, _, tags = parse_wheel_filename(wheel.name)
        pure = any(tag.platform == "any" and tag.abi == "none" for tag in tags)
        if pure and named == canonicalize_name(name) and at == Version(version):
            return wheel
    return None


# -- wheels and their metadata ----------------------------------------------------------------


@dataclass
class Wheel:
    path: Path
    name: str  # canonical
    version: str
    requires: list[str]  # Requires-Dist lines
    imports: list[str]
    depends: list[str] = field(default_factory=list)  # what it needs in Pyodide (resolve())

    @classmethod
    def read(cls, path: Path) -> Wheel:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            info = next(n for n in names if n.endswith(".dist-info/METADATA"))
            meta = email.parser.Parser().parsestr(archive.read(info).decode())
            top = info.replace("METADATA", "top_level.txt")
            if top in names:
                imports = archive.read(top).decode().split()
            else:
                imports = sorted(
                    {
                        n.split("/")[0].removesuffix(".py")
                        for n in names
                        if "/" in n or n.endswith(".py")
                        if not n.split("/")[0].endswith((".dist-info", ".data"))
                    }
                )
        return cls(
            path,
            canonicalize_name(meta["Name"]),
            meta["Version"],
            meta.get_all("Requires-Dist") or [],
            [i for i in imports if i.isidentifier()],
        )

    def dependencies(self, environment: dict[str, str]) -> list[tuple[str, object]]:
        """(canonical name, specifier set) of each requirement that applies in Pyodide."""
        found = []
        for line in self.requires:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(
                {**environment, "extra": ""}
            ):
                continue
            found.append((canonicalize_name(requirement.name), requirement.specifier))
        return found

    def lock_entry(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "file_name": self.path.name,
            "install_dir": "site",
            "sha256": hashlib.sha256(self.path.read_bytes()).hexdigest(),
            "package_type": "package",
            "imports": self.imports,
            "depends": sorted(self.depends),
            "unvendored_tests": False,
        }


def marker_environment(lock_info: dict) -> dict[str, str]:
    """The PEP 508 environment of the Pyodide whose lock file's ``info`` this is."""
    full = lock_info["python"]
    return {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": "posix",
        "platform_machine": "wasm32",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Emscripten",
        "platform_version": "",
        "python_full_version": full,
        "python_version": ".".join(full.split(".")[:2]),
        "sys_platform": "emscripten",
    }


def startup_wheel(version: str, into: Path) -> Path:
    """A wheel whose only file is ``etc/ipython/ipython_config.py`` (Pyodide installs a
    wheel's data files under ``sys.prefix``, where IPython looks for its config): the
    site's kernels start with ``%load_ext counterpoint``."""
    name = f"counterpoint_jupyterlite-{version}"
    path = into / f"{name}-py3-none-any.whl"
    files = {
        f"{name}.data/data/etc/ipython/ipython_config.py": IPYTHON_CONFIG,
        f"{name}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: counterpoint-jupyterlite\nVersion: {version}\n"
            f"Summary: loads the counterpoint IPython extension in a JupyterLite site\n"
            f"Requires-Dist: counterpoint=={version}\n"
        ),
        f"{name}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: counterpoint lite build\n"
            "Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{name}.dist-info/top_level.txt": "",
    }
    record = [f"{n},sha256={_digest(t.encode())},{len(t.encode())}" for n, t in files.items()]
    files[f"{name}.dist-info/RECORD"] = "\n".join([*record, f"{name}.dist-info/RECORD,,"]) + "\n"
    into.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file, text in files.items():
            info = zipfile.ZipInfo(file, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, text)
    return path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def counterpoint_wheel(into: Path) -> Path:
    """Counterpoint's wheel: built from this source tree (an editable or source install),
    else downloaded at the installed version."""
    import counterpoint

    into.mkdir(parents=True, exist_ok=True)
    source = Path(counterpoint.__file__).resolve().parent.parent
    if (source / "pyproject.toml").is_file() and (source / "vm" / "lite.py").is_file():
        command = [
            sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
            "--wheel-dir", str(into), str(source),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise LiteBuildError(f"could not build Counterpoint's wheel:\n{done.stderr.strip()}")
        (built,) = into.glob("counterpoint-*.whl")  # (``into`` is the build's own folder)
        return built
    return pip_download(f"counterpoint=={counterpoint.__version__}", into, "3")


# -- the package set ----------------------------------------------------------------------------


def resolve(
    roots: list[str],
    given: dict[str, Path],
    pinned: dict[str, str],
    environment: dict[str, str],
    download,
) -> dict[str, Wheel]:
    """Every wheel the site needs, from ``roots`` through their requirements.

    A name is taken from ``given`` (wheels at hand), else downloaded at the version
    ``pinned`` names (Pyodide's lock, then the build's own environment); each version
    must meet every specifier that asks for it.  Each wheel's ``depends`` is set."""
    wheels: dict[str, Wheel] = {}
    asked: dict[str, list[tuple[str, object]]] = {}
    todo = [(canonicalize_name(r), "the site", None) for r in roots]
    while todo:
        name, by, specifier = todo.pop(0)
        asked.setdefault(name, []).append((by, specifier))
        if name not in wheels:
            if name in given:
                path = given[name]
            elif name in pinned:
                path = download(f"{name}=={pinned[name]}")
            else:
                raise LiteBuildError(
                    f"{by} needs {name}, which neither Pyodide's lock file nor this "
                    f"environment has a version of; pip install it here and build again"
                )
            wheel = wheels[name] = Wheel.read(path)
            needs = wheel.dependencies(environment)
            wheel.depends = [dep for dep, _ in needs]
            todo += [(dep, f"{name} {wheel.version}", spec) for dep, spec in needs]
    for name, wheel in wheels.items():
        for by, specifier in asked[name]:
            if specifier is not None and not specifier.contains(wheel.version, prereleases=True):
                raise LiteBuildError(
                    f"{by} needs {name}{specifier}, but the site has {name} {wheel.version}"
                )
    return wheels


def installed_versions() -> dict[str, str]:
    import importlib.metadata

    return {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions()
        if d.metadata["Name"]
    }


# -- the build ------------------------------------------------------------------------------------


def _kernel_wheels() -> dict[str, Path]:
    """The Pyodide kernel's own wheels (pyodide-kernel, piplite, the ipykernel and
    widgetsnbextension stand-ins), from its lab extension."""
    from jupyter_core.paths import jupyter_path

    for root in jupyter_path("labextensions"):
        folder = Path(root) / "@jupyterlite" / "pyodide-kernel-extension" / "static" / "pypi"
        if folder.is_dir():
            found: dict[str, Path] = {}
            for wheel in sorted(folder.glob("*.whl"), reverse=True):  # newest stand-in first
                found.setdefault(parse_wheel_filename(wheel.name)[0], wheel)
            return found
    raise LiteBuildError(
        "the Pyodide kernel's lab extension is not installed: pip install 'counterpoint[lite]'"
    )


def notebook_for_lite(source: Path, target: Path) -> None:
    """A course notebook as the site serves it: outputs kept, the kernel the Pyodide one."""
    try:
        notebook = json.loads(source.read_text(encoding="utf-8"))
        notebook.setdefault("metadata", {})["kernelspec"] = dict(PYODIDE_KERNELSPEC)
    except (ValueError, AttributeError) as error:  # (bad JSON or UTF-8; not an object)
        raise LiteBuildError(f"{source} is not a notebook: {error}") from error
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def build(
    output: Path,
    *,
    notebooks: Path | None = None,
    cache: Path | None = None,
    log: Callable[..., None] = print,
) -> dict:
    """Build the site into ``output`` (replaced); returns what was built (sizes, seconds)."""
    started = time.monotonic()
    version = pyodide_version()
    output = Path(output).resolve()
    _check_output(output)
    notebooks = Path(notebooks) if notebooks is not None else _course_folder()
    if not any(notebooks.glob("*.ipynb")):
        raise LiteBuildError(f"no notebooks (*.ipynb) in {notebooks}: pass --notebooks DIR")
    cache = Path(cache or Path.home() / ".cache" / "counterpoint" / "lite").resolve()
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="build-", dir=cache))  # (builds may share a cache)
    try:
        return _build(output, notebooks, cache, scratch, version, started, log)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _build(
    output: Path,
    notebooks: Path,
    cache: Path,
    scratch: Path,
    version: str,
    started: float,
    log: Callable[..., None],
) -> dict:
    work = scratch / "lite-dir"
    pyodide_out = work / "static" / "pyodide"

    log(f"pyodide {version} from the npm registry", flush=True)
    runtime = fetch_pyodide(version, cache)
    shutil.copytree(
        runtime,
        pyodide_out,
        ignore=shutil.ignore_patterns("*.map", "*.d.ts", "*.html", "README.md", "package.json"),
    )
    lock = json.loads((runtime / "pyodide-lock.json").read_text())
    environment = marker_environment(lock["info"])
    python = environment["python_version"]

    log("wheels from the package index", flush=True)
    wheel_cache = cache / "wheels"
    import counterpoint

    given = {**_kernel_wheels()}
    given["counterpoint"] = counterpoint_wheel(scratch / "counterpoint")
    given["counterpoint-jupyterlite"] = startup_wheel(counterpoint.__version__, scratch / "startup")
    pinned = installed_versions()
    pinned.update({canonicalize_name(n): p["version"] for n, p in lock["packages"].items()})
    wheels = resolve(
        [*KERNEL_PACKAGES, *SITE_PACKAGES],
        given,
        pinned,
        environment,
        lambda requirement: pip_download(requirement, wheel_cache, python),
    )

    packages = {}
    for name, wheel in sorted(wheels.items()):
        shutil.copy2(wheel.path, pyodide_out / wheel.path.name)
        packages[name] = wheel.lock_entry()
    lock["packages"] = packages
    (pyodide_out / "pyodide-lock.json").write_text(json.dumps(lock, indent=1, sort_keys=True))

    contents = work / "files"
    for source in sorted(notebooks.glob("*.ipynb")):
        notebook_for_lite(source, contents / source.name)
    if (notebooks / "README.md").is_file():  # (the course map)
        shutil.copy2(notebooks / "README.md", contents / "README.md")
    (work / "jupyter-lite.json").write_text(json.dumps(_lite_config(), indent=1))

    log("jupyter lite build", flush=True)
    shutil.rmtree(output, ignore_errors=True)
    command = [
        sys.executable, "-m", "jupyterlite_core", "build",
        "--lite-dir", str(work), "--output-dir", str(output), "--contents", str(contents),
        "--no-sourcemaps", "--no-unused-shared-packages",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=work, capture_output=True, text=True)
    if done.returncode != 0:
        raise LiteBuildError(
            f"jupyter lite build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    (output / ".nojekyll").touch()  # (GitHub Pages: serve the folders as they are)
    size = sum(p.stat().st_size for p in output.rglob("*") if p.is_file())
    summary = {
        "output": str(output),
        "pyodide": version,
        "python": lock["info"]["python"],
        "packages": sorted(packages),
        "notebooks": len(list(contents.glob("*.ipynb"))),
        "bytes": size,
        "seconds": round(time.monotonic() - started, 1),
    }
    (output / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")
    return summary


SUMMARY = "counterpoint-lite.json"  # what a build writes last: the folder is a site


def _check_output(output: Path) -> None:
    """The build replaces ``output``: only a folder that is empty, missing, or a site
    this command built (it has ``counterpoint-lite.json``), never anything else."""
    if not output.exists():
        return
    if not output.is_dir():
        raise LiteBuildError(f"{output} is a file, not a folder for the site")
    if any(output.iterdir()) and not (output / SUMMARY).is_file():
        raise LiteBuildError(
            f"{output} is not empty and holds no site built by counterpoint lite build "
            f"(no {SUMMARY}): the build replaces its output folder, so give a new or "
            f"empty folder"
        )


def _lite_config() -> dict:
    preload = sorted({*KERNEL_PACKAGES, *SITE_PACKAGES})
    return {
        "jupyter-lite-schema-version": 0,
        "jupyter-config-data": {
            "appName": "Counterpoint course",
            "litePluginSettings": {
                "@jupyterlite/pyodide-kernel-extension:kernel": {
                    "pyodideUrl": "./static/pyodide/pyodide.mjs",
                    "disablePyPIFallback": True,
                    "loadPyodideOptions": {"packages": preload},
                }
            },
        },
    }


def _course_folder() -> Path:
    import counterpoint

    folder = Path(counterpoint.__file__).resolve().parent.parent / "notebooks"
    if not folder.is_dir():
        raise LiteBuildError(
            "the course notebooks are not next to this installation; "
            "pass --notebooks DIR (a clone's notebooks/ folder)"
        )
    return folder
