"""Where the platform listens: its URLs, and ports to probe or to pick for a throwaway one."""

from __future__ import annotations

import dataclasses
import socket

from taskscheduler.settings import Settings


@dataclasses.dataclass(frozen=True)
class Addresses:
    """The platform's URLs, all derived from the host and ports of its settings."""

    host: str
    prefect_port: int
    api_port: int

    @classmethod
    def of(cls, settings: Settings) -> Addresses:
        """The addresses a `Settings` describes."""
        return cls(settings.host, settings.prefect_port, settings.api_port)

    @property
    def ui_url(self) -> str:
        """Address of the Prefect UI."""
        return f"http://{self.host}:{self.prefect_port}"

    @property
    def api_url(self) -> str:
        """Address of the Prefect API, as ``PREFECT_API_URL`` wants it."""
        return f"{self.ui_url}/api"

    @property
    def service_api_url(self) -> str:
        """Address of our REST API."""
        return f"http://{self.host}:{self.api_port}"


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections there."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
