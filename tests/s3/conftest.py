"""Fixtures of the S3 gateway tests: boto3 clients of real users against a real server."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.conftest import Server

S3Client = Any  # boto3's client is dynamically typed


@dataclass
class Account:
    email: str
    token: str
    s3: S3Client


def s3_client(
    server: Server,
    email: str,
    secret: str,
    region: str = "us-east-1",
    signature_version: str | None = None,
) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=server.storage_url,
        aws_access_key_id=email,
        aws_secret_access_key=secret,
        region_name=region,
        # what the official SDK sets (contract §9.1)
        config=Config(
            user_agent="qarnot-sdk-python/v2.23.0",
            request_checksum_calculation="when_required",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            signature_version=signature_version,
        ),
    )


@pytest.fixture
def account(server: Server) -> Callable[..., Account]:
    def make(region: str = "us-east-1") -> Account:
        email = f"s3-{uuid.uuid4().hex[:8]}+x@test.local"
        token = server.new_user(email)
        return Account(email, token, s3_client(server, email, token, region))

    return make


def unique_bucket(prefix: str = "b") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
