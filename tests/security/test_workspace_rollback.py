"""What a rollback does to the workspace, at both levels, checked from outside.

A rollback restores the executor's state, not the workspace's files (SECURITY.md,
"Files are not rolled back", says why). So the user must be told, and nothing the
Jupyter server writes into the workspace while a cell runs may be lost or hidden by
the cell's failure and rollback: the server's save is checked with jupyter_server's
own contents manager, acting as JupyterLab's save does.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import nbformat
import pytest
from jupyter_server.services.contents.filemanager import FileContentsManager

from tests.security.conftest import OS_LAYER_ONLY, Host, Sandbox, start_sandbox
from tests.utils import strip_ansi


@pytest.fixture(scope="module", params=["namespaces", "landlock"])
def box(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, host: Host
) -> Iterator[Sandbox]:
    workspace = tmp_path_factory.mktemp(f"rollback-{request.param}")
    workspace.chmod(0o777)
    sandbox = start_sandbox(request.param, workspace, host, extra=OS_LAYER_ONLY)
    try:
        yield sandbox
    finally:
        sandbox.close()


def test_a_rollback_says_the_files_were_not_restored(box: Sandbox) -> None:
    ws = box.workspace
    (ws / "data.csv").write_text("a,b\n1,2\n")
    (ws / "other.txt").write_text("keep me?")
    (ws / "results").mkdir(exist_ok=True)
    box.run("kept = 'before'")
    code = (
        "import faulthandler, os\n"
        "kept = 'changed'\n"
        "open('data.csv', 'a').write('3,4\\n')\n"
        "os.remove('other.txt')\n"
        "os.rename('results', 'results-old')\n"
        "faulthandler._sigsegv()\n"
    )
    res = box.run(code)
    content = res.reply["content"]
    text = strip_ansi(content["evalue"])
    assert content["ename"] == "ExecutorDied", text
    assert "state was restored" in text, text
    assert "Files were not restored" in text, text
    assert res.reply["metadata"]["sandbox"]["files_restored"] is False
    # From outside: the workspace is as the cell left it, which is what the message says.
    assert (ws / "data.csv").read_text() == "a,b\n1,2\n3,4\n"
    assert not (ws / "other.txt").exists()
    assert (ws / "results-old").is_dir()
    assert box.run("kept").of_type("execute_result")[0]["data"]["text/plain"] == "'before'"
    report = box.run("%sandbox").stdout
    assert "files in the workspace are not rolled back" in report, report


def _save_during(box: Sandbox, code: str, name: str) -> tuple[str, dict]:
    """Save ``name`` with the server's contents manager while ``code`` runs; return its text."""
    marker = f"saved by the server {uuid.uuid4().hex}"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(marker)])

    def save() -> None:
        # A manager per thread: its notebook signature store is an SQLite handle.
        manager = FileContentsManager(root_dir=str(box.workspace))
        manager.save({"type": "notebook", "content": nb}, name)

    save()

    def save_later() -> None:
        time.sleep(1.0)  # the cell is running by then
        nb.cells.append(nbformat.v4.new_markdown_cell(marker + " again"))
        save()

    saver = threading.Thread(target=save_later)
    saver.start()
    res = box.run(code, timeout=120)
    saver.join()
    return marker, res.reply


@pytest.mark.parametrize(
    "ending",
    [
        pytest.param("", id="cell-ends"),
        pytest.param("import faulthandler; faulthandler._sigsegv()", id="rollback"),
    ],
)
def test_a_notebook_saved_during_a_cell_keeps_the_servers_content(
    box: Sandbox, ending: str
) -> None:
    name = f"saved-{uuid.uuid4().hex[:8]}.ipynb"
    code = f"import time\ntime.sleep(3)\nprint(open({name!r}).read()[:0])\n{ending}"
    marker, reply = _save_during(box, code, name)
    content = reply["content"]
    assert ("ExecutorDied" if ending else "ok") in (content.get("ename"), content["status"])
    saved = nbformat.read(box.workspace / name, as_version=4)
    assert [c.source for c in saved.cells] == [marker, marker + " again"]
    # And the next cell sees the server's version too.
    res = box.run(f"print(open({name!r}).read().count('again'))")
    assert res.stdout.strip() == "1", res.stdout
