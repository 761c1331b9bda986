"""What the kernel gives the sandbox for the network: mounts, environment, the package dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox_kernel.config import Isolation
from sandbox_kernel.network.kernel_side import KernelNetwork


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".config" / "pip" / "pip.conf").write_text(
        "[global]\nindex-url = https://mirror.example.edu/simple\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("PIP_CONFIG_FILE", raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "https://user:s3cret@mirror.example.edu/simple")
    return home


def test_the_users_pip_conf_goes_in_as_a_copy(home: Path, tmp_path: Path) -> None:
    net = KernelNetwork(
        Isolation(allowed_hosts=["pypi"]), private_dir=str(tmp_path), audit=lambda r: None
    )
    net.start()
    try:
        mounts = [path for path, _ in net.mounts()]
        # Never a path under HOME (a protected ~/.config would swallow it).
        assert not [p for p in mounts if p.startswith(str(home))]
        spec = net.spec()
        conf = spec["env"]["PIP_CONFIG_FILE"]
        assert Path(conf).read_text().startswith("[global]")
        assert os.path.dirname(conf) in mounts
        # An index URL with credentials is not passed on.
        assert "PIP_INDEX_URL" not in spec["env"]
        assert "s3cret" not in repr(spec)
        assert spec["env"]["HTTPS_PROXY"] == "http://127.0.0.1:3128"
        assert [net.prefix, "rw"] in net.mounts()
        assert net.socket_path is not None
        assert os.path.exists(net.socket_path)
    finally:
        net.stop()
    assert net.socket_dir is None
    assert net.conf_dir is None


def test_nothing_allowed_runs_no_proxy(home: Path, tmp_path: Path) -> None:
    net = KernelNetwork(Isolation(), private_dir=str(tmp_path), audit=lambda r: None)
    net.start()
    try:
        spec = net.spec()
        assert net.proxy is None
        assert spec["proxy_socket"] is None
        assert "HTTPS_PROXY" not in spec["env"]
        assert spec["env"]["PIP_RETRIES"] == "0"
        assert "the network is off in this sandbox" in spec["off_message"]
    finally:
        net.stop()


def test_allow_network_overrides_the_list(home: Path, tmp_path: Path) -> None:
    net = KernelNetwork(
        Isolation(allow_network=True, allowed_hosts=["pypi"]),
        private_dir=str(tmp_path),
        audit=lambda r: None,
    )
    net.start()
    try:
        assert net.proxy is None
        spec = net.spec()
        # %pip and pip work as on the host: nothing says the network is off.
        assert spec["off_message"] == ""
        assert "PIP_RETRIES" not in spec["env"]
        assert spec["index_allowed"] == spec["index_hosts"]
    finally:
        net.stop()


def test_local_index_and_wheelhouse_of_pips_config_are_made_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the landlock level nothing outside the code and workspace is readable unless listed."""
    from sandbox_kernel.network.kernel_side import _pip_referenced_files

    wheels, index = tmp_path / "wheels", tmp_path / "local index"
    wheels.mkdir()
    index.mkdir()
    conf = tmp_path / "pip.conf"
    conf.write_text(
        f"[global]\nfind-links = {wheels}\n"
        f"extra-index-url = file://{str(index).replace(' ', '%20')} https://x.example/simple "
        f"file://{tmp_path}/missing\ncert = {conf}\n"
    )
    for name in (
        "PIP_FIND_LINKS",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "PIP_CERT",
        "PIP_CONSTRAINT",
    ):
        monkeypatch.delenv(name, raising=False)
    found = _pip_referenced_files([str(conf)])
    assert sorted(found) == sorted([str(wheels), str(index), str(conf)])
