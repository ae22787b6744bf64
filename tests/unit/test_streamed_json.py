"""A task's full JSON is streamed with its completedInstances in slices: the bytes must be the
JSON of the whole object, whatever the head and however many items."""

import asyncio

import orjson
import pytest
from fastapi.responses import StreamingResponse

from calor.api.deps import json_object_response


def _body(response: StreamingResponse) -> bytes:
    async def collect() -> bytes:
        return b"".join([bytes(part) async for part in response.body_iterator])

    return asyncio.run(collect())


@pytest.mark.parametrize("head", [{}, {"uuid": "u", "status": {"a": [1, 2]}}])
@pytest.mark.parametrize("count", [0, 1, 999, 1000, 2501])
def test_the_streamed_object_is_the_whole_object(head: dict[str, object], count: int) -> None:
    items = [{"instanceId": i, "state": "Success"} for i in range(count)]
    response = json_object_response(head, "completedInstances", iter(items))
    assert isinstance(response, StreamingResponse)
    assert orjson.loads(_body(response)) == {**head, "completedInstances": items}
