"""The sample component: the framework's smallest service, started like any other."""

from __future__ import annotations

import json
from pathlib import Path

from optivex.client import RequestFailed, SyncClient
from optivex.deploy import ComponentSpec, Deployment
from optivex.proto import sample_pb2

ROOT = Path(__file__).resolve().parents[2]


def test_echo_after_login(tmp_path: Path) -> None:
    config = json.loads((ROOT / "configs" / "sample-app.json").read_text())
    spec = ComponentSpec("sample", "optivex-sample-app", ("sample",), True, config)
    with Deployment([spec], tmp_path).start() as deployment:
        host, port = deployment.address("sample")
        with SyncClient(host, port, "sample") as client:
            refused = client.request(sample_pb2.EchoRequest(text="hi"))
            assert isinstance(refused, sample_pb2.EchoResponse)
            assert refused.error_message and not refused.text
            try:
                client.login("alice", "wrong")
            except RequestFailed as exc:
                assert "password" in str(exc)
            else:
                raise AssertionError("a wrong password was accepted")
            client.login("alice", "alice")
            echoed = client.request(sample_pb2.EchoRequest(request_id=42, text="hello"))
            assert isinstance(echoed, sample_pb2.EchoResponse)
            assert (echoed.request_id, echoed.error_message, echoed.text) == (42, "", "hello")
        assert deployment.stop() == {"sample": 0}
