"""The instance runner's access to buckets when it runs inside the server: straight through the
bucket service, no HTTP in between."""

from collections.abc import Iterable, Iterator
from pathlib import Path

from calor.domain.ports import ObjectInfo
from calor.domain.storage import NoSuchBucket
from calor.services.buckets import BucketService

CHUNK = 1024 * 1024


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


class ServiceObjects:
    def __init__(self, buckets: BucketService) -> None:
        self.buckets = buckets

    def exists(self, user_id: int, bucket: str) -> bool:
        try:
            self.buckets.bucket(user_id, bucket)
        except NoSuchBucket:
            return False
        return True

    def list(self, user_id: int, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        after = ""
        while True:
            page = self.buckets.list_objects(user_id, bucket, prefix, "", after, 1000)
            for obj in page.objects:
                yield ObjectInfo(obj.key, obj.size, obj.etag)
            if not page.truncated or not page.objects:
                return
            after = page.objects[-1].key

    def read(self, user_id: int, bucket: str, key: str) -> Iterator[bytes]:
        return self.buckets.get_object(user_id, bucket, key).body

    def write(self, user_id: int, bucket: str, key: str, path: Path) -> int:
        if not self.exists(user_id, bucket):
            self.buckets.create_bucket(user_id, bucket)
        return self.buckets.put_object(user_id, bucket, key, _file_chunks(path)).size

    def delete(self, user_id: int, bucket: str, keys: Iterable[str]) -> None:
        self.buckets.delete_objects(user_id, bucket, list(keys))
