"""The profiles calor offers (contract §8.2): names, constants and their defaults."""

from dataclasses import dataclass

from calor.domain.errors import NotFound


@dataclass(frozen=True)
class ProfileConstant:
    name: str
    value: str
    description: str


@dataclass(frozen=True)
class Profile:
    name: str
    constants: tuple[ProfileConstant, ...]
    network: bool = False
    # TCP ports of each instance forwarded to the server's host (domain/network.py)
    forwarded_ports: tuple[int, ...] = ()

    def defaults(self) -> dict[str, str]:
        return {c.name: c.value for c in self.constants}


_DOCKER_CONSTANTS = (
    ProfileConstant("DOCKER_REPO", "library/ubuntu", "image repository"),
    ProfileConstant("DOCKER_TAG", "latest", "image tag"),
    ProfileConstant(
        "DOCKER_CMD",
        "",
        "command run in the image, split into words; ${NAME} is replaced by the instance's "
        'variables and constants; no shell is added (write sh -c "..." for one)',
    ),
    ProfileConstant("DOCKER_WORKDIR", "", "working directory inside the container"),
    ProfileConstant("DOCKER_USER", "", "user the command runs as"),
    ProfileConstant("DOCKER_HOST", "", "hostname inside the container"),
    ProfileConstant("DOCKER_REGISTRY_LOGIN", "", "login for a private registry"),
    ProfileConstant("DOCKER_REGISTRY_PASSWORD", "", "password for a private registry"),
    ProfileConstant("DOCKER_PROGRESS1", "", "regex whose first group is the progress (0-100)"),
    ProfileConstant("DOCKER_PROGRESS2", "", "regex whose first group is the progress (0-100)"),
    ProfileConstant("DOCKER_PROGRESS3", "", "regex whose first group is the progress (0-100)"),
)


def _with_repo(repo: str) -> tuple[ProfileConstant, ...]:
    return tuple(
        ProfileConstant(c.name, repo, c.description) if c.name == "DOCKER_REPO" else c
        for c in _DOCKER_CONSTANTS
    )


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("docker-batch", _DOCKER_CONSTANTS),
        # the same, with the network reachable from the container (every other profile has none)
        Profile("docker-network", _DOCKER_CONSTANTS, network=True),
        # the hosted SSH how-to's profile: port 22 of each instance is forwarded; the image
        # runs sshd with the public key the task gives in DOCKER_SSH
        Profile(
            "docker-network-ssh",
            (
                *_DOCKER_CONSTANTS,
                ProfileConstant("DOCKER_SSH", "", "SSH public key the instance's sshd accepts"),
            ),
            network=True,
            forwarded_ports=(22,),
        ),
        Profile("ubuntu", _with_repo("library/ubuntu")),
        Profile("python", _with_repo("library/python")),
    )
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise NotFound(f"profile {name!r} does not exist; available profiles: {known}") from None
