"""``python -m counterpoint.kernel -f CONNECTION_FILE``: start the kernel (Jupyter
does this, from the kernelspec)."""

from ipykernel.kernelapp import IPKernelApp

from .kernel import CounterpointKernel

if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=CounterpointKernel)
