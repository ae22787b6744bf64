"""Run the official Qarnot Python samples (qarnot/qarnot-samples, not vendored) against calor.

    make samples SAMPLES=<checkout of qarnot-samples> [RUNTIMES="docker host"]

Each sample runs verbatim, as its README says: its own directory, a ``samples.conf`` that
points at a calor server started here (the only file written), and the images it names
present on the Docker engine (no registry is reachable here, so they are built locally: a
busybox root file system under each name, and for ffmpeg an image of this machine's ffmpeg).
Prints one line per sample and runtime, and exits non-zero if one that should run did not.
"""

import argparse
import configparser
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# sample3 runs one task per distribution image; stand-ins with the distribution's name in
# /etc/issue, which is what the sample prints
DISTRIBUTIONS = {
    "library/centos:5": "CentOS release 5 (calor stand-in image)",
    "library/centos:6": "CentOS release 6 (calor stand-in image)",
    "library/ubuntu:14.04": "Ubuntu 14.04 (calor stand-in image)",
    "library/ubuntu:16.04": "Ubuntu 16.04 (calor stand-in image)",
    "library/debian:jessie": "Debian GNU/Linux 8 (calor stand-in image)",
    "opensuse/leap:42.3": "openSUSE Leap 42.3 (calor stand-in image)",
    "archlinux:latest": "Arch Linux (calor stand-in image)",
    # docker-batch's default image (samples 0-2)
    "library/ubuntu:latest": "Ubuntu (calor stand-in image)",
}
FFMPEG_IMAGE = "jrottenberg/ffmpeg:ubuntu"
FFMPEG_ARGS = ["-i", "media/qarnot_computing.mp4", "-t", "1", "-vf", "scale=64:-1", "small.gif"]


@dataclass
class Sample:
    script: str
    args: list[str]
    # what a successful run shows: a check of (its output, its directory) -> problem or None
    check: Callable[[str, Path], str | None]
    # why it cannot run on a runtime (None: it runs)
    cannot: Callable[[str], str | None] = lambda _runtime: None


def _contains(*needles: str) -> Callable[[str, Path], str | None]:
    def check(out: str, _cwd: Path) -> str | None:
        missing = [n for n in needles if n not in out]
        return f"output lacks {missing}" if missing else None

    return check


def _upper_lorem(out: str, cwd: Path) -> str | None:
    result = cwd / "output" / "LOREM.TXT"
    if not result.is_file():
        return "output/LOREM.TXT was not downloaded"
    expected = (cwd / "input" / "lorem.txt").read_text().upper()
    return (
        None if result.read_text() == expected else "output/LOREM.TXT is not lorem.txt upper-cased"
    )


def _all_succeeded(out: str, _cwd: Path) -> str | None:
    """The sample exits 1 when a task failed, and prints states only as they change (the
    last change may be after its last look), so: all submitted, none with errors."""
    submitted = out.count("** Submitting ")
    if submitted != 7:
        return f"{submitted} of 7 tasks submitted"
    return "a task failed" if ">>> Errors" in out else None


def _gif(out: str, cwd: Path) -> str | None:
    gif = cwd / "small.gif"
    return None if gif.is_file() and gif.read_bytes()[:3] == b"GIF" else "small.gif not downloaded"


def _no_ffmpeg_entrypoint(runtime: str) -> str | None:
    if runtime == "host":
        return (
            "its DOCKER_CMD is ffmpeg's arguments for the image's ENTRYPOINT; the host runtime "
            "runs no image, so there is no entrypoint to give them to"
        )
    if not shutil.which("ffmpeg"):
        return "no ffmpeg on this machine to build the jrottenberg/ffmpeg stand-in image from"
    return None


SAMPLES = [
    Sample("sample0_helloworld.py", [], _contains("hello world!")),
    Sample(
        "sample1_helloworld-advanced.py",
        [],
        _contains("Hello world from 0/2!", "Hello world from 1/2!"),
    ),
    Sample("sample2_files.py", [], _upper_lorem),
    Sample("sample3_dockerhub.py", [], _all_succeeded),
    Sample("sample4_ffmpeg.py", FFMPEG_ARGS, _gif, _no_ffmpeg_entrypoint),
]
NOT_RUN = {
    "sample5_blender.py": "the blender profile (Blender with BLEND_* constants) is a hosted "
    "service's profile calor does not have, and its .blend input is not in the repository "
    "snapshot (over 4 MiB)",
    "openfoam/run.py": "needs the hosted service's private image docker/image:default_latest",
    "pyrom/run.py": "needs the pyMOR/FEniCS images from Docker Hub, unreachable here",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def busybox_rootfs(where: Path) -> Path:
    busybox = shutil.which("busybox")
    if busybox is None:
        raise SystemExit(
            "busybox is needed for the stand-in images (apt-get install busybox-static)"
        )
    (where / "bin").mkdir(parents=True)
    (where / "etc").mkdir()
    (where / "tmp").mkdir()
    shutil.copy(busybox, where / "bin" / "busybox")
    for applet in run([busybox, "--list"]).stdout.split():
        if applet != "busybox":
            (where / "bin" / applet).symlink_to("busybox")
    (where / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return where


def docker_import(env: dict[str, str], rootfs: Path, name: str, *changes: str) -> None:
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    flags = [arg for change in changes for arg in ("-c", change)]
    subprocess.run(
        ["docker", "import", *flags, "-", name],
        stdin=tar.stdout,
        env=env,
        check=True,
        capture_output=True,
    )
    tar.wait()


def ffmpeg_rootfs(where: Path) -> Path:
    """This machine's ffmpeg and the libraries it links, as a root file system."""
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg is not None
    files = {Path(ffmpeg).resolve()}
    for line in run(["ldd", ffmpeg]).stdout.splitlines():
        parts = line.split()
        for part in parts:
            if part.startswith("/"):
                files.add(Path(part))
    for f in files:
        target = where / str(f).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f.resolve(), target)
    (where / "usr" / "local" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(ffmpeg).resolve(), where / "usr" / "local" / "bin" / "ffmpeg")
    (where / "tmp").mkdir(exist_ok=True)
    return where


def build_images(env: dict[str, str], work: Path) -> None:
    for name, issue in DISTRIBUTIONS.items():
        rootfs = busybox_rootfs(work / f"rootfs-{len(list(work.iterdir()))}")
        (rootfs / "etc" / "issue").write_text(issue + "\n\\l\n")
        docker_import(env, rootfs, name, "ENV PATH=/bin")
    if shutil.which("ffmpeg"):
        docker_import(
            env,
            ffmpeg_rootfs(work / "rootfs-ffmpeg"),
            FFMPEG_IMAGE,
            "ENV PATH=/usr/local/bin",
            'ENTRYPOINT ["ffmpeg"]',
        )


class Calor:
    """A calor server on free ports with a fresh data directory."""

    def __init__(self, work: Path, runtime: str, docker_host: str | None) -> None:
        self.port = free_port()
        self.data = work / "data"
        env = dict(os.environ, CALOR_RUNTIME=runtime, CALOR_DATA_DIR=str(self.data))
        env["CALOR_STORAGE_PORT"] = str(free_port())
        if docker_host:
            env["DOCKER_HOST"] = docker_host
        self.log = open(work / "server.log", "wb")  # noqa: SIM115 - the server's, for its life
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "calor", "serve", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"calor exited early; see {work / 'server.log'}")
            try:
                if httpx.get(f"{self.url}/settings", timeout=1).status_code == 401:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("calor did not start within 60 s")
            time.sleep(0.2)
        created = run(
            [PYTHON, "-m", "calor", "admin", "user", "create", "--email", "samples@calor.local"],
            env=env,
        )
        self.token = created.stdout.strip().splitlines()[-1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def write_conf(directory: Path, calor: Calor) -> None:
    conf = configparser.ConfigParser()
    # the example's own form: a trailing slash, so the SDK asks for //settings
    conf["cluster"] = {"url": calor.url + "/"}
    conf["client"] = {"token": calor.token}
    with open(directory / "samples.conf", "w") as f:
        conf.write(f)


def run_samples(samples: Path, runtime: str, docker_host: str | None, work: Path) -> list[str]:
    calor = Calor(work, runtime, docker_host)
    failures = []
    try:
        for sample in SAMPLES:
            reason = sample.cannot(runtime)
            if reason:
                print(f"  {runtime:6} {sample.script:32} not run: {reason}")
                continue
            cwd = work / sample.script.removesuffix(".py")
            shutil.copytree(samples / "python", cwd)
            write_conf(cwd, calor)
            started = time.monotonic()
            try:
                done = subprocess.run(
                    [PYTHON, sample.script, *sample.args],
                    cwd=cwd,
                    text=True,
                    capture_output=True,
                    timeout=300,
                )
                out, code = done.stdout + done.stderr, done.returncode
            except subprocess.TimeoutExpired as exc:
                # text=True is not applied to what a timeout caught
                caught = [part or b"" for part in (exc.stdout, exc.stderr)]
                out = "".join(
                    p.decode(errors="replace") if isinstance(p, bytes) else p for p in caught
                )
                code = None
            problem = f"exit code {code}" if code != 0 else sample.check(out, cwd)
            took = time.monotonic() - started
            if problem:
                failures.append(f"{runtime} {sample.script}: {problem}")
                tail = "\n".join(out.splitlines()[-40:])
                print(f"  {runtime:6} {sample.script:32} FAILED: {problem}\n{tail}")
            else:
                print(f"  {runtime:6} {sample.script:32} ok in {took:.1f} s")
    finally:
        calor.stop()
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("samples", type=Path, help="a checkout of qarnot/qarnot-samples")
    parser.add_argument("--runtimes", default="docker host")
    args = parser.parse_args()
    samples: Path = args.samples.resolve()
    if not (samples / "python" / "sample0_helloworld.py").is_file():
        raise SystemExit(f"{samples} is not a checkout of qarnot/qarnot-samples")
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="calor-samples-") as tmp:
        work = Path(tmp)
        for runtime in args.runtimes.split():
            print(f"runtime {runtime}:")
            docker_host = None
            started_engine = None
            if runtime == "docker":
                docker_host = os.environ.get("DOCKER_HOST")
                if not docker_host:
                    started_engine = work / "docker"
                    docker_host = run(
                        [str(ROOT / ".ci" / "docker.sh"), "start", str(started_engine)]
                    ).stdout.strip()
                env = dict(os.environ, DOCKER_HOST=docker_host)
                images = work / "images"
                images.mkdir()
                build_images(env, images)
            try:
                (work / runtime).mkdir()
                failures += run_samples(samples, runtime, docker_host, work / runtime)
            finally:
                if started_engine is not None:
                    subprocess.run([str(ROOT / ".ci" / "docker.sh"), "stop", str(started_engine)])
        for script, reason in NOT_RUN.items():
            print(f"  {'-':6} {script:32} not run: {reason}")
        if failures:
            print("\nfailed:\n" + "\n".join(failures))
            sys.exit(1)


if __name__ == "__main__":
    main()
