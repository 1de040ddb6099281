"""The MetaService status page in a real browser: headless Chromium driven by
Playwright loads `/` of a cluster with two providers, checks that members,
capacities and the key count match `/api/v1/status` and the Python API, then
watches the key count change after 100 puts without a reload. Saves a
screenshot (to docs/status-page.png when MMC_STATUS_SCREENSHOT=1, else into
the test's temporary directory).

Chromium is /usr/bin/chromium (Debian package `chromium`; scripts/test-python.sh
installs it). When it or Playwright is missing or cannot start, the test
fails under CI=true and is skipped with the reason otherwise.
"""

import json
import os
import re
import shutil
import urllib.request
from pathlib import Path

import pytest

import memcache_rs
from conftest import ROOT, Cluster

CHROMIUM = os.environ.get("MMC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable(reason: str):
    """Fails in CI (a browser test must not vanish there), skips elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"status page browser test cannot run: {reason}")
    pytest.skip(reason)


def status(http_addr: str) -> dict:
    with urllib.request.urlopen(f"http://{http_addr}/api/v1/status", timeout=10) as r:
        return json.load(r)


@pytest.fixture(scope="module")
def http_cluster(workdir):
    d = workdir / "status-page"
    d.mkdir(exist_ok=True)
    c = Cluster(d)
    try:
        c.start_meta(http=True)
        c.start_local()
        c.start_local()
        yield c
    finally:
        c.stop_all()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        unavailable(f"Playwright for Python is not installed ({e}); scripts/test-python.sh installs it")
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        unavailable(f"{CHROMIUM} not found; install the Debian package: apt-get install -y chromium")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as e:  # the launch error names what was wrong
            unavailable(f"Chromium at {CHROMIUM} did not start: {e}")
        try:
            yield b
        finally:
            b.close()


def key_count(page) -> int:
    return int(page.text_content("#keys").replace(",", ""))


def test_status_page_shows_the_cluster_and_updates_live(http_cluster, browser, tmp_path):
    c = http_cluster
    s = memcache_rs.DistributedObjectStore()
    assert s.setup(c.local_config(dram_size=0)) == 0
    assert s.init(0, False) == 0
    try:
        for i in range(3):
            assert s.put(f"page-seed-{i}", b"x" * 1000) == 0

        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://{c.http_addr}/", wait_until="load")
        page.wait_for_function("document.querySelectorAll('#members .member').length > 0", timeout=15_000)

        doc = status(c.http_addr)
        assert doc["role"] == "leader"
        assert page.text_content("#role") == "leader"
        assert key_count(page) == doc["keys"] == 3

        # Members with their segment capacities, as the MetaService has them.
        providers = {m["service_id"]: m for m in doc["members"] if m["segments"]}
        assert sorted(providers) == sorted(c.local_ids)
        shown = page.eval_on_selector_all(
            "#members .member",
            "els => els.map(e => ({id: Number(e.dataset.serviceId),"
            " caps: [...e.querySelectorAll('.segment')].map(s => Number(s.dataset.capacity))}))",
        )
        shown_caps = {m["id"]: m["caps"] for m in shown if m["caps"]}
        assert shown_caps == {sid: [seg["capacity"] for seg in m["segments"]] for sid, m in providers.items()}
        assert all(cap == 64 << 20 for caps in shown_caps.values() for cap in caps)
        assert int(page.text_content("#members-count")) == len(doc["members"])

        # 100 puts: the page follows without a reload.
        before = key_count(page)
        for i in range(100):
            assert s.put(f"page-key-{i}", b"y" * 4096) == 0
        page.wait_for_function(
            "Number(document.getElementById('keys').textContent.replace(/,/g, '')) === 103",
            timeout=15_000,
        )
        assert key_count(page) == before + 100 == status(c.http_addr)["keys"]
        # The operations table has rates now (two polls have happened).
        page.wait_for_function("document.getElementById('ops-rate').textContent !== '\u2013'", timeout=15_000)
        assert re.fullmatch(r"[\d.,]+", page.text_content("#ops-rate"))
        assert errors == [], errors

        shot = ROOT / "docs" / "status-page.png" if os.environ.get("MMC_STATUS_SCREENSHOT") == "1" else tmp_path / "status-page.png"
        page.screenshot(path=str(shot), full_page=True)
        assert Path(shot).stat().st_size > 10_000

        # Readable on a phone: nothing wider than a 390 px screen.
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_timeout(300)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.close()
    finally:
        assert s.close() == 0


def test_status_page_asks_for_the_token(browser, workdir):
    """With a cluster token, `/` loads, `/api/v1/status` needs the bearer token,
    and the page sends the one pasted into its field."""
    token = "status-page-token-0123456789abcdef"
    d = workdir / "status-token"
    d.mkdir(exist_ok=True)
    c = Cluster(d)
    c.config.write_text(
        f'[meta]\nlog_level = "warn"\n[meta.security]\ntoken = "{token}"\n[local]\nlog_level = "warn"\n'
    )
    try:
        c.start_meta(http=True)
        page = browser.new_page()
        page.goto(f"http://{c.http_addr}/", wait_until="load")
        page.wait_for_selector("#auth", state="visible", timeout=15_000)
        assert "token" in page.text_content("#state")
        page.fill("#token", token)
        page.click("#auth button")
        page.wait_for_selector("#auth", state="hidden", timeout=15_000)
        page.wait_for_function("document.getElementById('role').textContent === 'leader'", timeout=15_000)
        assert page.evaluate("sessionStorage.getItem('mmc-token')") == token
        page.close()
    finally:
        c.stop_all()
