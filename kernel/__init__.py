"""The Counterpoint Jupyter kernel (``counterpoint.kernel``): an ipykernel
``IPythonKernel`` whose cells run on one deterministic session VM.

The kernelspec (kernel name ``counterpoint``) ships in the wheel's data, so a
``pip install`` makes it visible to Jupyter; :func:`install` writes it anywhere
else (``counterpoint install``).  Importing this package does not import ipykernel.
"""

from __future__ import annotations

from .install import KERNEL_NAME, install, kernelspec

__all__ = ["KERNEL_NAME", "CounterpointKernel", "install", "kernelspec"]


def __getattr__(name: str):
    if name == "CounterpointKernel":
        from .kernel import CounterpointKernel

        return CounterpointKernel
    raise AttributeError(name)
