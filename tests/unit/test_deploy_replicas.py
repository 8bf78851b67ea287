"""The deployment runner's ways to run more than deployment_config.json lists: `ComponentSpec.derive`
(a renamed or reconfigured entry, e.g. a second info process) and `Deployment.start(defer=...)` (an
entry started later with `start_component`). Fake components, as in test_deploy.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optivex.deploy import Deployment, DeploymentError

from .test_deploy import _can_connect, _fake_specs, fake_bin  # noqa: F401 (fake_bin: a fixture)


def test_derive_renames_and_overrides_a_copy() -> None:
    front = next(s for s in _fake_specs() if s.name == "front")
    replica = front.derive(name="front_b", config={"maxUnsentBytes": 65536, "logLevel": "DEBUG"})
    assert (replica.name, replica.package_name, replica.protocols, replica.auth_required) == (
        "front_b",
        front.package_name,
        front.protocols,
        front.auth_required,
    )
    assert replica.config == {**front.config, "maxUnsentBytes": 65536, "logLevel": "DEBUG"}
    assert replica.connect_to == front.connect_to == ("order_book",)
    replica.config["connectTo"]["order_book"]["port"] = 9  # a deep copy: the original is untouched
    assert front.config["connectTo"]["order_book"]["port"] == 1
    assert "maxUnsentBytes" not in front.config
    assert front.derive() == front and front.derive() is not front


@pytest.mark.usefixtures("fake_bin")
def test_a_deferred_component_starts_when_told(tmp_path: Path) -> None:
    specs = [*_fake_specs(), next(s for s in _fake_specs() if s.name == "front").derive(name="front_b")]
    deployment = Deployment(specs, tmp_path / "work")
    with pytest.raises(DeploymentError, match="no component named 'nope'"):
        deployment.start(defer=("nope",))
    assert not deployment.running
    deployment.start(defer=("front_b",))
    try:
        late = deployment.component("front_b")
        assert late.port != 0 and late.process is None and not _can_connect(late.address)
        assert all(_can_connect(c.address) for c in deployment.components if c is not late)
        assert deployment.address("admin") == deployment.component("front").address  # the first provider
        deployment.start_component("front_b")
        assert _can_connect(late.address)
        written = json.loads(late.config_path.read_text(encoding="utf-8"))
        assert written["connectTo"]["order_book"]["port"] == deployment.component("order_book").port
        with pytest.raises(DeploymentError, match="still running"):
            deployment.start_component("front_b")
    finally:
        codes = deployment.stop()
    assert codes == {"order_book": 0, "front": 0, "trading": 0, "front_b": 0}


@pytest.mark.usefixtures("fake_bin")
def test_a_component_deferred_and_never_started(tmp_path: Path) -> None:
    with Deployment(_fake_specs(), tmp_path / "work").start(defer=("trading",)) as deployment:
        assert deployment.component("trading").process is None
    assert deployment.exit_codes == {"order_book": 0, "front": 0, "trading": None}
