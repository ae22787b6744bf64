"""The instance runner's access to buckets from another machine (a Dask worker): over the S3
gateway with boto3, signed with the task owner's storage credentials."""

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from calor.domain.ports import ObjectInfo

CHUNK = 1024 * 1024


class S3Objects:
    """One user's buckets through the gateway (``user_id`` arguments are the port's; the
    credentials already say who the user is)."""

    def __init__(self, endpoint: str, access_key: str, secret: str) -> None:
        import boto3  # only where instances run remotely

        self._known_buckets: set[str] = set()
        self.s3: Any = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                request_checksum_calculation="when_required",
                retries={"max_attempts": 5, "mode": "standard"},
            ),
        )

    def exists(self, user_id: int, bucket: str) -> bool:
        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                return False
            raise
        return True

    def list(self, user_id: int, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                yield ObjectInfo(obj["Key"], int(obj["Size"]), str(obj["ETag"]).strip('"'))

    def read(self, user_id: int, bucket: str, key: str) -> Iterator[bytes]:
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            while chunk := body.read(CHUNK):
                yield chunk
        finally:
            body.close()

    def write(self, user_id: int, bucket: str, key: str, path: Path) -> int:
        # one request per file in the usual case: the bucket is checked once per client
        if bucket not in self._known_buckets:
            if not self.exists(user_id, bucket):
                self.s3.create_bucket(Bucket=bucket)
            self._known_buckets.add(bucket)
        size = path.stat().st_size
        self.s3.upload_file(str(path), bucket, key)
        return size

    def delete(self, user_id: int, bucket: str, keys: Iterable[str]) -> None:
        batch = [{"Key": k} for k in keys]
        for i in range(0, len(batch), 1000):
            self.s3.delete_objects(Bucket=bucket, Delete={"Objects": batch[i : i + 1000]})
