"""Protocol conformance through jupyter_kernel_test, with every sample filled in."""

from __future__ import annotations

import os
import tempfile
import unittest

import jupyter_kernel_test
from jupyter_client.manager import start_new_kernel

from tests.utils import KERNEL_NAME, execute_until_idle


class SandboxKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = KERNEL_NAME
    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"

    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        {"text": "import itertools; itertools.chai", "matches": {"chain"}},
    ]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2", "for i in range(3):"]
    invalid_code_samples = ["import = 7q"]

    code_page_something = "print?"
    code_generate_error = "raise ValueError('boom')"
    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        {"code": "[n*n for n in range(4)]", "result": "[0, 1, 4, 9]"},
        {"code": "'sand' + 'box'", "result": "'sandbox'"},
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
        {
            "code": "from IPython.display import Markdown, display; display(Markdown('*hi*'))",
            "mime": "text/markdown",
        },
        {
            "code": "from IPython.display import JSON, display; display(JSON({'a': 1}))",
            "mime": "application/json",
        },
        {
            "code": "from IPython.display import SVG, display; display(SVG('<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>'))",
            "mime": "image/svg+xml",
        },
    ]
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "zip"
    code_clear_output = "from IPython.display import clear_output; clear_output()"

    @classmethod
    def setUpClass(cls) -> None:
        # A workspace of our own, not the repository: the kernel runs cells there.
        cls._workspace = tempfile.TemporaryDirectory()
        os.chmod(cls._workspace.name, 0o755)
        cls.km, cls.kc = start_new_kernel(kernel_name=cls.kernel_name, cwd=cls._workspace.name)

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        cls._workspace.cleanup()

    def assert_input_request(self, request: dict, msg_id: str) -> None:
        # Not validate_message: jupyter_kernel_test 0.7's schema types
        # "password" as a number, while the messaging spec (and ipykernel) send
        # a boolean. Everything else is checked as the schema would.
        assert request["msg_type"] == "input_request"
        assert request["header"]["msg_type"] == "input_request"
        assert request["parent_header"]["msg_id"] == msg_id
        assert set(request["content"]) == {"prompt", "password"}
        assert isinstance(request["content"]["prompt"], str)

    def test_stdin(self) -> None:
        """input() becomes an input_request on the stdin channel, and the reply returns to the cell."""
        self.flush_channels()
        msg_id = self.kc.execute("name = input('who? '); print('hi', name)", allow_stdin=True)
        request = self.kc.get_stdin_msg(timeout=30)
        self.assert_input_request(request, msg_id)
        assert request["content"]["prompt"] == "who? "
        assert request["content"]["password"] is False
        self.kc.input("sandbox")
        reply = self.kc.get_shell_msg(timeout=30)
        jupyter_kernel_test.validate_message(reply, "execute_reply", msg_id)
        assert reply["content"]["status"] == "ok"
        # Streams of any parent: nothing else may have printed.
        run = execute_until_idle(self.kc, msg_id=msg_id, reply=False, timeout=30)
        output = [m["content"]["text"] for m in run.iopub if m["msg_type"] == "stream"]
        assert "".join(output) == "hi sandbox\n"

    def test_getpass(self) -> None:
        """getpass() asks with password=True."""
        self.flush_channels()
        msg_id = self.kc.execute(
            "import getpass; secret = getpass.getpass('pw: '); print(len(secret))", allow_stdin=True
        )
        request = self.kc.get_stdin_msg(timeout=30)
        self.assert_input_request(request, msg_id)
        assert request["content"]["password"] is True
        self.kc.input("12345")
        reply = self.kc.get_shell_msg(timeout=30)
        assert reply["content"]["status"] == "ok"


class SandboxIopubWelcomeTests(jupyter_kernel_test.IopubWelcomeTests):
    kernel_name = KERNEL_NAME
    support_iopub_welcome = True


if __name__ == "__main__":
    unittest.main()
