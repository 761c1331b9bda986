# Regenerates notebooks/tour.ipynb (run from the repository root). Edit here, not the .ipynb.
import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md("""# A tour of sandbox-kernel

This notebook runs on **Python 3 (sandboxed)**: every cell executes in a sandboxed
executor process, while a trusted kernel process speaks the Jupyter protocol and relays
outputs. Run it top to bottom; every cell is expected to succeed, including the ones that
*try* to break out (they print what stopped them)."""),
    md(
        "## What sandbox is in force?\n\n`%sandbox` is answered by the trusted kernel: the isolation level, each layer and why it is on or off, and the limits."
    ),
    code("%sandbox"),
    md(
        "## An ordinary notebook works as usual\n\nState persists between cells, and every kind of output comes through."
    ),
    code(
        "import numpy as np\nimport pandas as pd\n\nrng = np.random.default_rng(0)\ndf = pd.DataFrame({'x': np.arange(8), 'y': rng.normal(size=8).round(3)})\ndf"
    ),
    code(
        "import matplotlib.pyplot as plt\n\nplt.plot(df.x, df.y.cumsum(), marker='o')\nplt.title('inline plot from the sandbox')\nplt.show()"
    ),
    code(
        "from IPython.display import Markdown, display\n\nh = display(Markdown('**progress:** 0%'), display_id=True)\nfor pct in (25, 50, 100):\n    h.update(Markdown(f'**progress:** {pct}%'))"
    ),
    code(
        "import time\nfor i in range(3):\n    print('streaming line', i, flush=True)\n    time.sleep(0.2)"
    ),
    code("%%time\ntotal = sum(i * i for i in range(200_000))\ntotal"),
    code('!echo "shell escapes run inside the sandbox too: $(hostname)"'),
    md(
        "## Files: the workspace is writable, the rest is not\n\nThe notebook's directory is the only writable host path."
    ),
    code(
        "from pathlib import Path\n\nPath('tour-output.txt').write_text('written from the sandbox\\n')\nprint(Path('tour-output.txt').read_text())"
    ),
    code(
        "import os\n\nfor path in [os.path.expanduser('~/.ssh/id_rsa'), '/etc/shadow', os.path.expanduser('~/.jupyter/jupyter_server_config.py')]:\n    try:\n        open(path).read()\n        print('read', path)\n    except OSError as exc:\n        print(f'{path}: {exc.strerror}')"
    ),
    code(
        "import sysconfig\n\ntarget = Path(sysconfig.get_paths()['purelib']) / 'evil.pth'\ntry:\n    target.write_text('import os; os.system(\"echo pwned\")')\n    print('wrote', target)\nexcept OSError as exc:\n    print(f'cannot plant {target.name} in site-packages: {exc.strerror}')"
    ),
    md(
        "## No network\n\nThe sandbox has no route to the host's services or the internet. A blocked system call is reported by name."
    ),
    code(
        "import socket\n\ntry:\n    socket.create_connection(('151.101.0.223', 443), timeout=3)  # pypi.org\nexcept OSError as exc:\n    print('network:', exc)"
    ),
    md(
        "## Secrets stay outside\n\nThe executor's environment is an allow-list: no Jupyter or JupyterHub tokens, no connection file, no HMAC key."
    ),
    code("sorted(os.environ)"),
    md(
        "## The policy reads each cell before it runs\n\nA static check refuses the classic Python-level escapes before the executor sees them, and says why. Riskier-but-ordinary code runs with a warning (rules and their levels: `%sandbox`)."
    ),
    code(
        "# Walking the class hierarchy to reach os.system without importing it:\n[c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == 'Popen']",
        metadata={"tags": ["raises-exception"]},
    ),
    code(
        "import subprocess\n\nprint(subprocess.run(['echo', 'subprocess runs, inside the sandbox'], capture_output=True, text=True).stdout)"
    ),
    md(
        "## A crash costs one cell, not the kernel, and not your state\n\nBefore each cell the executor keeps a copy-on-write snapshot of itself. When a cell crashes, runs out of memory, hits a limit or has to be killed, the snapshot takes over: the state is exactly as it was before the cell."
    ),
    code("important = 'computed before the crash'"),
    code(
        "important = 'half-finished work of the crashing cell'\nimport faulthandler\nfaulthandler._sigsegv()  # a segmentation fault, as a buggy C extension would cause",
        metadata={"tags": ["raises-exception"]},
    ),
    md(
        "The cell above is tagged `raises-exception`, so a notebook run goes on past it. The kernel kept serving, and the crashing cell's change was rolled back:"
    ),
    code("print(important)\nprint(df.shape)"),
]
nb.metadata["kernelspec"] = {
    "name": "sandbox-python",
    "display_name": "Python 3 (sandboxed)",
    "language": "python",
}
nb.metadata["language_info"] = {"name": "python"}
nbf.write(nb, "notebooks/tour.ipynb")
