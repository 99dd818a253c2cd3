"""The `counterpoint` kernel passes jupyter_kernel_test: every sample that applies to a
Python kernel (hello world, stderr, errors, completion, is_complete, inspect,
history, display data, execute_result, clear_output), some of them through the VM."""

# ruff: noqa: RUF012 - jupyter_kernel_test reads its samples from class attributes

from __future__ import annotations

import jupyter_kernel_test


class CounterpointKernelConformance(jupyter_kernel_test.KernelTests):
    kernel_name = "counterpoint"
    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"
    code_generate_error = "raise ValueError('an error')"
    code_page_something = "print?"
    code_clear_output = "from IPython.display import clear_output; clear_output()"
    code_inspect_sample = "zip"
    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        {"text": "cp.sle", "matches": {"sleep"}},  # (replaces the text after the dot)
    ]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*1"]
    invalid_code_samples = ["import = 7q"]

    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        {"code": "await sleep(3); now()", "result": "3"},  # on the session VM
        {"code": "[n*n for n in range(1, 4)]", "result": "[1, 4, 9]"},
    ]
    code_display_data = [
        {
            "code": "from IPython.display import HTML, display; display(HTML('<b>test</b>'))",
            "mime": "text/html",
        },
        {
            "code": "from IPython.display import Math, display; display(Math('\\\\frac{1}{2}'))",
            "mime": "text/latex",
        },
        {"code": "display(vm.tasks())", "mime": "text/html"},  # rich output of the VM
    ]
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "range", "search")
