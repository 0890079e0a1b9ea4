"""Tardis.dev downloads through the real tardis-dev client against a loopback HTTP server (no mocks)."""

from __future__ import annotations

import gzip
import http.server
import logging
import socket
import threading
import time

import pytest

from hyperdapo.data.__main__ import main
from hyperdapo.data.config import TardisConfig
from hyperdapo.data.download import KEY_ENV, download_tardis

CSV = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\nhyperliquid,BTC,1,2,a,buy,100,1\n"


class Server:
    """Serves gzipped CSVs at the client's URL layout /<exchange>/<type>/<yyyy>/<mm>/<dd>/<SYM>.csv.gz."""

    def __init__(self, status: int = 200):
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.requests.append((self.path, self.headers.get("Authorization")))
                if status != 200:
                    self.send_response(status)
                    self.end_headers()
                    return
                body = gzip.compress(f"{CSV}# {self.path}\n".encode())
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def cfg(tmp_path, endpoint, **kw) -> TardisConfig:
    base = dict(symbols=["BTC", "ETH"], data_types=["book_snapshot_25", "trades"], from_date="2024-01-01",
                to_date="2024-01-02", download_dir=str(tmp_path / "raw"), endpoint=endpoint, max_total_s=20)
    return TardisConfig(**{**base, **kw})


def test_download_names_content_and_skip(tmp_path, server, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    paths = download_tardis(cfg(tmp_path, server.url))
    assert sorted(p.name for p in paths) == sorted([
        "hyperliquid_book_snapshot_25_2024-01-01_BTC.csv.gz", "hyperliquid_trades_2024-01-01_BTC.csv.gz",
        "hyperliquid_book_snapshot_25_2024-01-01_ETH.csv.gz", "hyperliquid_trades_2024-01-01_ETH.csv.gz"])
    assert {path for path, _ in server.requests} == {
        f"/hyperliquid/{t}/2024/01/01/{s}.csv.gz" for t in ("book_snapshot_25", "trades") for s in ("BTC", "ETH")}
    content = gzip.decompress(paths[0].read_bytes()).decode()
    assert content.startswith(CSV)
    n = len(server.requests)
    download_tardis(cfg(tmp_path, server.url))  # everything present: skipped, no new request
    assert len(server.requests) == n


def test_key_is_sent_but_never_logged(tmp_path, server, monkeypatch, caplog):
    secret = "TD.secret-key-123"
    monkeypatch.setenv(KEY_ENV, secret)
    with caplog.at_level(logging.DEBUG):
        download_tardis(cfg(tmp_path, server.url, symbols=["SOL"], data_types=["trades"], from_date="2024-01-02",
                            to_date="2024-01-03"))
    assert server.requests and all(auth == f"Bearer {secret}" for _, auth in server.requests)
    assert secret not in caplog.text
    assert secret not in repr(cfg(tmp_path, server.url))


def test_no_key_means_first_of_month_only(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ValueError, match="first day of each month.*2024-01-02"):
        download_tardis(cfg(tmp_path, "http://127.0.0.1:9", from_date="2024-01-01", to_date="2024-01-03"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_reachable_endpoint_that_keeps_failing_is_bounded_by_max_total_s(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    failing = Server(status=500)  # answers (the probe passes), but every download attempt fails: the client retries
    t0 = time.monotonic()
    try:
        with pytest.raises(ConnectionError, match=r"did not finish within data\.tardis\.max_total_s=3 s.*Check"):
            download_tardis(cfg(tmp_path, failing.url, symbols=["BTC"], data_types=["trades"], max_total_s=3))
    finally:
        failing.close()
    assert time.monotonic() - t0 < 10
    assert not list((tmp_path / "raw").glob("*.csv.gz"))


@pytest.fixture
def silent_url():
    """A loopback port whose socket completes TCP connects (the listen backlog) but never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_unreachable_endpoint_fails_fast_naming_the_url(tmp_path, monkeypatch, kind, request):
    # issue 15: with no network the client retried until max_total_s (180 s by default) before failing
    monkeypatch.delenv(KEY_ENV, raising=False)
    url = f"http://127.0.0.1:{_closed_port()}" if kind == "refused" else request.getfixturevalue("silent_url")
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match=rf"download from {url} failed: the endpoint is unreachable.*Check"):
        download_tardis(cfg(tmp_path, url, symbols=["BTC"], data_types=["trades"], max_total_s=30,
                            probe_timeout_s=2))
    assert time.monotonic() - t0 < 10
    assert not list((tmp_path / "raw").glob("*.csv.gz"))


def test_default_probe_bound_is_under_ten_seconds():
    assert 0 < TardisConfig().probe_timeout_s <= 10


def test_cli_download_without_network_fails_fast(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(KEY_ENV, raising=False)
    url = f"http://127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    rc = main(["download", "--asset", "BTC", "--from", "2024-01-01", "--to", "2024-01-02", "--out", str(tmp_path),
               "--endpoint", url])  # default --max-total-s 180
    assert rc == 2 and time.monotonic() - t0 < 10
    out = capsys.readouterr().out
    assert "error:" in out and url in out and "unreachable" in out


def test_no_progress_bar_redraws_when_stderr_is_not_a_terminal(tmp_path, server, monkeypatch, capsys):
    monkeypatch.delenv(KEY_ENV, raising=False)
    download_tardis(cfg(tmp_path, server.url))  # pytest's captured stderr is not a TTY
    assert "tardis files" not in capsys.readouterr().err


@pytest.mark.parametrize(("kw", "key"), [({"to_date": "2024-01-01"}, "to_date"), ({"from_date": "1/1/24"}, "from_date"),
                                         ({"data_types": ["book"]}, "data_types"), ({"max_total_s": 0}, "max_total_s"),
                                         ({"probe_timeout_s": 0}, "probe_timeout_s")])
def test_invalid_config_names_the_key(tmp_path, kw, key):
    with pytest.raises(ValueError, match=f"data.tardis.{key}"):
        cfg(tmp_path, "http://127.0.0.1:9", **kw)
