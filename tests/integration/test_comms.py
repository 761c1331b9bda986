"""Comm messages both ways, so ipywidgets work."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from jupyter_client.blocking.client import BlockingKernelClient

from tests.utils import execute, execute_until_idle, running_kernel


def test_widget_comm_open_reaches_frontend_and_updates_come_back(kc: BlockingKernelClient) -> None:
    res = execute(kc, "import ipywidgets as w\nslider = w.IntSlider(value=3)\nslider")
    opens = res.of_type("comm_open")
    assert opens, "no comm_open reached the frontend"
    [view] = res.of_type("execute_result")
    model_id = view["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert model_id in {o["comm_id"] for o in opens}
    slider_open = next(o for o in opens if o["comm_id"] == model_id)
    assert slider_open["target_name"] == "jupyter.widget"
    assert slider_open["data"]["state"]["value"] == 3
    # As ipykernel sends it: JupyterLab's widget manager reads the protocol version from
    # the message's metadata and refuses the comm without it.
    assert "metadata" not in slider_open
    [message] = [
        m
        for m in res.outputs
        if m["msg_type"] == "comm_open" and m["content"]["comm_id"] == model_id
    ]
    assert message["metadata"]["version"].split(".")[0] == "2"

    # The frontend moves the slider: a comm_msg with a state update.
    msg = kc.session.msg(
        "comm_msg",
        {
            "comm_id": model_id,
            "data": {"method": "update", "state": {"value": 7}, "buffer_paths": []},
        },
    )
    kc.shell_channel.send(msg)
    execute_until_idle(kc, msg_id=msg["header"]["msg_id"], reply=False)
    res = execute(kc, "slider.value")
    assert res.of_type("execute_result")[0]["data"]["text/plain"] == "7"


def test_widget_callback_output_goes_to_the_comm_message(kc: BlockingKernelClient) -> None:
    execute(
        kc,
        "import ipywidgets as w\nbutton_seen = []\nbox = w.IntText(value=0)\n"
        "box.observe(lambda change: print('changed to', change['new']), names='value')\nbox",
    )
    model_id = (
        execute(kc, "box.model_id").of_type("execute_result")[0]["data"]["text/plain"].strip("'")
    )
    msg = kc.session.msg(
        "comm_msg",
        {
            "comm_id": model_id,
            "data": {"method": "update", "state": {"value": 5}, "buffer_paths": []},
        },
    )
    kc.shell_channel.send(msg)
    messages = execute_until_idle(kc, msg_id=msg["header"]["msg_id"], reply=False).own()
    streams = [m["content"]["text"] for m in messages if m["msg_type"] == "stream"]
    assert "changed to 5\n" in "".join(streams)


def test_frontend_opened_comm_and_comm_info(kc: BlockingKernelClient) -> None:
    execute(
        kc,
        "received = []\n"
        "def target(comm, open_msg):\n"
        "    received.append(open_msg['content']['data'])\n"
        "    comm.on_msg(lambda m: received.append(m['content']['data']))\n"
        "get_ipython().kernel.comm_manager.register_target('echo', target)",
    )
    comm_id = uuid.uuid4().hex
    msg = kc.session.msg(
        "comm_open", {"comm_id": comm_id, "target_name": "echo", "data": {"hello": 1}}
    )
    kc.shell_channel.send(msg)
    execute_until_idle(kc, msg_id=msg["header"]["msg_id"], reply=False)
    msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"n": 2}})
    kc.shell_channel.send(msg)
    execute_until_idle(kc, msg_id=msg["header"]["msg_id"], reply=False)
    res = execute(kc, "received")
    assert res.of_type("execute_result")[0]["data"]["text/plain"] == "[{'hello': 1}, {'n': 2}]"

    kc.comm_info(target_name="echo")
    reply = kc.get_shell_msg(timeout=10)
    assert reply["content"]["comms"] == {comm_id: {"target_name": "echo"}}


def test_a_comm_to_another_target_is_refused_audited_and_counted(tmp_path: Path) -> None:
    """Refused with one note in the cell (issue 9: a refusal is visible), recorded in the
    audit log and counted in the reply's sandbox metadata (%sandbox's last cell)."""
    audit = tmp_path / "audit.jsonl"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with running_kernel(workspace, extra_arguments=[f"--Policy.audit_log={audit}"]) as (_, kc):
        res = execute(kc, "from comm import create_comm\nc = create_comm(target_name='bin')")
        assert not res.of_type("comm_open"), "a comm to an unknown frontend target was opened"
        assert "comm to the frontend target 'bin' was refused" in res.stderr
        assert "Output.comm_targets" in res.stderr
        assert res.stdout == ""
        assert res.reply["metadata"]["sandbox"]["comms_refused"] == 1
        res = execute(kc, "c.send({'x': 1}); c.close()")
        assert not res.of_type("comm_msg")
        assert not res.of_type("comm_close")
        assert res.stderr == ""
        assert not res.reply["metadata"]["sandbox"].get("comms_refused")
    [record] = [
        r
        for r in map(json.loads, audit.read_text().splitlines())
        if r.get("event") == "comm_refused"
    ]
    assert record["reported_by"] == "kernel"
    assert record["rules"] == ["Output.comm_targets"]
    assert record["verdict"] == "denied"
    assert "'bin'" in record["detail"]
    assert record["cell_sha256"]


def test_binary_buffers_travel_both_ways(module_workspace: Path) -> None:
    allow_bin = "--Output.comm_targets=['jupyter.widget', 'bin']"
    with running_kernel(module_workspace, extra_arguments=[allow_bin]) as (_, kc):
        _binary_buffers_travel_both_ways(kc)


def _binary_buffers_travel_both_ways(kc: BlockingKernelClient) -> None:
    execute(
        kc,
        "from comm import create_comm\n"
        "got = []\n"
        "c = create_comm(target_name='bin')\n"
        "c.on_msg(lambda m: got.append([bytes(b) for b in m['buffers']]))",
    )
    res = execute(kc, "c.send({'x': 1}, buffers=[b'\\x00\\x01binary'])")
    [sent] = res.of_type("comm_msg")
    [out_msg] = [m for m in res.outputs if m["msg_type"] == "comm_msg"]
    assert bytes(out_msg["buffers"][0]) == b"\x00\x01binary"
    comm_id = sent["comm_id"]
    msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {}})
    kc.session.send(kc.shell_channel.socket, msg, buffers=[b"\xffback"])
    execute_until_idle(kc, msg_id=msg["header"]["msg_id"], reply=False)
    res = execute(kc, "got")
    assert res.of_type("execute_result")[0]["data"]["text/plain"] == "[[b'\\xffback']]"
