"""``calor bucket …`` over the S3 gateway, as the SDK reaches it: the user's e-mail and API
token as SigV4 keys, at the URL ``GET /settings`` gives (contract §9)."""

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import boto3
import botocore.exceptions
import typer
from botocore.config import Config

from calor.cli.client import CliError
from calor.cli.common import (
    Json,
    Token,
    Url,
    api,
    console,
    err,
    handles_errors,
    print_json,
    table,
)

app = typer.Typer(help="Buckets: files in and out of tasks (S3)", no_args_is_help=True)

T = TypeVar("T")


@contextmanager
def s3(url: str | None, token: str | None) -> Iterator[Any]:
    with api(url, token) as client:
        endpoint = client.json("GET", "/settings").get("storage")
        email = client.json("GET", "/info")["email"]
        secret = client.target.token
    if not endpoint:
        raise CliError("this server has no object storage")
    yield boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=email,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


def call(fn: Callable[..., T], **kwargs: Any) -> T:
    """An S3 call whose failure becomes the gateway's message."""
    try:
        return fn(**kwargs)
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise CliError(f"{error.get('Code')}: {error.get('Message')}") from None
    except botocore.exceptions.EndpointConnectionError as exc:
        raise CliError(f"cannot reach the storage gateway: {exc}") from None


def objects(client: Any, bucket: str, prefix: str = "") -> Iterator[dict[str, Any]]:
    token = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kwargs["ContinuationToken"] = token
        page = call(client.list_objects_v2, **kwargs)
        yield from page.get("Contents", [])
        if not page.get("IsTruncated"):
            return
        token = page["NextContinuationToken"]


def local_files(root: Path) -> dict[str, Path]:
    if root.is_file():
        return {root.name: root}
    if not root.is_dir():
        raise CliError(f"{root} is neither a file nor a directory", 2)
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@app.command("create")
@handles_errors
def create(names: list[str], url: Url = None, token: Token = None) -> None:
    """Create buckets (a bucket you already have is fine)."""
    with s3(url, token) as client:
        for name in names:
            call(client.create_bucket, Bucket=name)
            err.print(f"created {name}", highlight=False)


@app.command("list")
@handles_errors
def list_(
    bucket: Annotated[str | None, typer.Argument(help="list this bucket's objects")] = None,
    prefix: Annotated[str, typer.Option(help="only keys starting with this")] = "",
    url: Url = None,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Your buckets, or the objects of one."""
    with s3(url, token) as client:
        if bucket is None:
            found = [
                {"name": b["Name"], "creationDate": b["CreationDate"].isoformat()}
                for b in call(client.list_buckets).get("Buckets", [])
            ]
            if as_json:
                print_json(found)
                return
            t = table("bucket", "created")
            for b in found:
                t.add_row(b["name"], b["creationDate"][:19].replace("T", " "))
            console.print(t)
            return
        items = [
            {"key": o["Key"], "size": o["Size"], "lastModified": o["LastModified"].isoformat()}
            for o in objects(client, bucket, prefix)
        ]
    if as_json:
        print_json(items)
        return
    t = table("key", "size", "modified", title=bucket)
    for o in items:
        t.add_row(o["key"], str(o["size"]), o["lastModified"][:19].replace("T", " "))
    console.print(t)


@app.command("put")
@handles_errors
def put(
    bucket: str,
    paths: Annotated[list[Path], typer.Argument(help="files or directories")],
    prefix: Annotated[str, typer.Option(help="key prefix")] = "",
    url: Url = None,
    token: Token = None,
) -> None:
    """Upload files (a directory's files keep their relative paths as keys)."""
    with s3(url, token) as client:
        for path in paths:
            for key, file in local_files(path).items():
                call(client.upload_file, Filename=str(file), Bucket=bucket, Key=prefix + key)
                err.print(f"{file} -> {bucket}/{prefix}{key}", highlight=False)


@app.command("get")
@handles_errors
def get(
    bucket: str,
    key: Annotated[str, typer.Argument(help="a key, or a prefix with --recursive")],
    dest: Annotated[Path, typer.Argument(help="file or directory")] = Path("."),
    recursive: Annotated[
        bool, typer.Option("--recursive", "-R", help="every key under it")
    ] = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Download an object (or, with --recursive, every object under a prefix)."""
    with s3(url, token) as client:
        keys = [o["Key"] for o in objects(client, bucket, key)] if recursive else [key]
        for k in keys:
            if k.endswith("/"):
                continue
            rel = k[len(key) :].lstrip("/") if recursive else Path(k).name
            target = dest / rel if recursive or dest.is_dir() else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            call(client.download_file, Bucket=bucket, Key=k, Filename=str(target))
            err.print(f"{bucket}/{k} -> {target}", highlight=False)


@app.command("sync")
@handles_errors
def sync(
    directory: Path,
    bucket: str,
    prefix: Annotated[str, typer.Option(help="key prefix")] = "",
    delete: Annotated[bool, typer.Option(help="remove objects with no local file")] = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Make the bucket hold the directory's files: upload what is new or changed."""
    files = local_files(directory)
    with s3(url, token) as client:
        call(client.create_bucket, Bucket=bucket)
        remote = {o["Key"]: o["ETag"].strip('"') for o in objects(client, bucket, prefix)}
        sent = 0
        for key, file in files.items():
            if remote.get(prefix + key) == md5(file):
                continue
            call(client.upload_file, Filename=str(file), Bucket=bucket, Key=prefix + key)
            sent += 1
        gone = sorted(set(remote) - {prefix + k for k in files}) if delete else []
        for i in range(0, len(gone), 1000):
            batch = {"Objects": [{"Key": k} for k in gone[i : i + 1000]], "Quiet": True}
            call(client.delete_objects, Bucket=bucket, Delete=batch)
    err.print(
        f"{sent} uploaded, {len(files) - sent} unchanged"
        + (f", {len(gone)} deleted" if delete else ""),
        highlight=False,
    )


@app.command("delete")
@handles_errors
def delete(
    buckets: list[str],
    force: Annotated[bool, typer.Option(help="delete their objects first")] = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Delete buckets (they must be empty, unless --force)."""
    with s3(url, token) as client:
        for bucket in buckets:
            if force:
                keys = [o["Key"] for o in objects(client, bucket)]
                for i in range(0, len(keys), 1000):
                    batch = {"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True}
                    call(client.delete_objects, Bucket=bucket, Delete=batch)
            call(client.delete_bucket, Bucket=bucket)
            err.print(f"deleted {bucket}", highlight=False)
