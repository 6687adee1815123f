"""`salesinbox serve` as `make run` starts it: a process of its own, on the host and port it was told."""

from __future__ import annotations

import subprocess

import httpx

from tests.cli.runner import CLI
from tests.rig.plugin import wait_until
from tests.support.server import free_port


def _first_page(url: str, process: subprocess.Popen) -> httpx.Response:
    def answer() -> httpx.Response | None:
        assert process.poll() is None, process.communicate(timeout=5)
        try:
            return httpx.get(url, follow_redirects=True, timeout=5)
        except httpx.TransportError:
            return None  # not listening yet

    return wait_until(answer, timeout=60, interval=0.2, what=f"an answer at {url}")


def _serving(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(CLI), "serve", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.communicate(timeout=20)  # also closes its stderr pipe
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def test_serve_on_a_fresh_install_answers_with_the_first_run_page_where_it_was_told(cli_env):
    port = free_port()
    process = _serving(cli_env, "--host", "127.0.0.1", "--port", str(port))
    try:
        page = _first_page(f"http://127.0.0.1:{port}/", process)
    finally:
        _stop(process)
    assert page.status_code == 200 and page.url.path == "/setup" and 'data-testid="setup-form"' in page.text


def test_serve_takes_host_and_port_from_the_environment(cli_env):
    port = free_port()
    process = _serving({**cli_env, "SALESINBOX_HOST": "127.0.0.1", "SALESINBOX_PORT": str(port)})
    try:
        page = _first_page(f"http://127.0.0.1:{port}/setup", process)
    finally:
        _stop(process)
    assert page.status_code == 200 and page.url.path == "/setup" and 'data-testid="setup-form"' in page.text
