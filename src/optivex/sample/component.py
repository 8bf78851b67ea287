"""An echo service: copy this file to start a new component.

It speaks the `sample` protocol (proto/sample.proto): after a login,
EchoRequest(text) is answered with EchoResponse(text). Run it with
`optivex-sample-app -c configs/sample-app.json`.

A handler (sync, or ``async def``) gets the request's Reply and answers
through it once: ``reply.send(response)`` or ``reply.error(text)``; see
optivex.app.component. Client strings it logs go through
optivex.logsafe.loggable.
"""

from __future__ import annotations

from optivex.app.component import Component, Reply, handles
from optivex.proto import sample_pb2


class SampleApp(Component):
    """Echoes text back to logged-in clients."""

    name = "sample-app"
    protocols = ("sample",)

    @handles(sample_pb2.EchoRequest)
    def echo(self, reply: Reply, request: sample_pb2.EchoRequest) -> None:
        reply.send(sample_pb2.EchoResponse(request_id=request.request_id, text=request.text))
