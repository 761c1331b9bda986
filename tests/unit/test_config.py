"""Configuration: defaults documented in SECURITY.md, validation with actionable messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from traitlets import TraitError

from sandbox_kernel.config import PRESETS, Isolation, Limits, Output, Policy, level_rank

SECURITY_MD = Path(__file__).parents[2] / "SECURITY.md"


def _documented_defaults() -> dict[str, str]:
    text = SECURITY_MD.read_text()
    section = text.split("## Defaults", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([A-Za-z]+\.[a-z_]+)` \| `([^`]*)` \|$", section, re.M))


def test_security_md_quotes_the_real_defaults() -> None:
    documented = _documented_defaults()
    assert len(documented) >= 10
    classes = {"Isolation": Isolation(), "Limits": Limits(), "Output": Output(), "Policy": Policy()}
    for name, value in documented.items():
        cls, trait = name.split(".")
        assert str(getattr(classes[cls], trait)) == value, f"SECURITY.md says {name} = {value}"


def test_levels_are_ordered() -> None:
    assert level_rank("namespaces") > level_rank("landlock") > level_rank("none")


def test_weakening_booleans_default_to_false() -> None:
    iso = Isolation()
    assert iso.allow_network is False


@pytest.mark.parametrize("entry", ["relative/path:ro", "/srv/data", "/srv/data:rx", "/srv/data:"])
def test_extra_mounts_are_validated(entry: str) -> None:
    with pytest.raises(TraitError, match="must be an absolute path followed by"):
        Isolation(extra_mounts=[entry])


def test_every_trait_has_help() -> None:
    for cls in (Isolation, Limits, Output):
        for name, trait in cls.class_traits(config=True).items():
            assert len(trait.help or "") > 20, f"{cls.__name__}.{name} lacks a help string"


def test_presets_only_name_real_settings() -> None:
    classes = {"Isolation": Isolation, "Limits": Limits, "Output": Output}
    for preset, sections in PRESETS.items():
        for section, values in sections.items():
            if section not in classes:
                continue
            for key in values:
                assert key in classes[section].class_trait_names(config=True), (
                    f"{preset}: {section}.{key}"
                )
