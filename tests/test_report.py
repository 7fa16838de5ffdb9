"""The demo's figures and its Snakemake report, opened in headless Chromium.

These read the demo's results (`snakemake --cores all --directory demo all`, which CI runs
before the tests); without them they fail and say so. The browser is Debian's `chromium`
driven through `chromedriver` (selenium), on the report file alone: no network.
Set ZAR_REPORT_SCREENSHOTS=DIR to keep a screenshot of every view of the report.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zar.plan as plan
from demo_results import DEMO, ROOT, demo_config, require
from zar.report import plots
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def demo_cfg():
    cfg = demo_config()
    require(plan.all_targets(cfg))
    return cfg


def demo_figures(cfg) -> list[str]:
    """Every figure of the demo: the PNGs in the figure jobs' folders and the ablation plots.
    Each table's folder holds one per-class figure per result file of that table."""
    from zar.report.figures import perclass_name

    out = []
    for target in plan.figure_targets(cfg):
        if target.endswith(".png"):
            out.append(target)
            continue
        found = sorted(str(p.relative_to(DEMO)) for p in (DEMO / target).glob("*.png"))
        if "/perclass/table" in target:
            table = int(target.rsplit("table", 1)[1])
            want = [f"{target}/{perclass_name(r, cfg['results_dir'] + '/')}" for r in plan.table_inputs(cfg, table)]
            assert found == sorted(want), target
        else:  # t-SNE and attention: one figure per zero-shot dataset
            assert found == sorted(f"{target}/{d}.png" for d in cfg["zeroshot"]["datasets"]), target
        out += found
    return out


def _kind(path: str) -> str:
    name = path.split("/figures/", 1)[1]
    if name.startswith("ablation_table"):
        return "ablation"
    return "cost" if name == "testtime_cost.png" else name.split("/", 1)[0]


def test_every_demo_figure_is_a_non_empty_png_of_its_size(demo_cfg):
    figures = demo_figures(demo_cfg)
    assert {_kind(f) for f in figures} == {"perclass", "ablation", "cost", "tsne", "attention"}
    for f in figures:
        path = DEMO / f
        with Image.open(path) as im:
            assert im.format == "PNG", f
            assert im.size == plots.pixel_size(_kind(f)), f
            px = np.asarray(im.convert("RGB"), dtype=np.float64)
        assert px.std() > 5 and len(np.unique(px.reshape(-1, 3), axis=0)) > 16, f"{f} looks blank"
        data = path.with_suffix(".csv")
        assert data.is_file() and len(data.read_text().splitlines()) > 1, f"{f}: no data beside it"


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for exe in (CHROMIUM, CHROMEDRIVER):
        if not Path(exe).exists():
            pytest.fail(f"{exe} is missing: apt-get install -y chromium chromium-driver (make setup does it)")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1600,1000",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions",
                # the report is one self-contained file: no host name resolves, so nothing leaves the machine
                "--host-resolver-rules=MAP * ~NOTFOUND"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def _retry(action, what: str):
    """Run a find-and-click again when React re-rendered the element in between."""
    import time

    from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException

    for _ in range(20):
        try:
            return action()
        except (StaleElementReferenceException, ElementClickInterceptedException, IndexError):
            time.sleep(0.25)
    pytest.fail(f"the report's page kept changing under {what}")


def _click_menu(driver, label: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def click():
        items = [a for a in driver.find_elements(By.XPATH, "//a[span]") if a.text.strip() == label]
        if not items:
            return False
        items[0].click()
        return True

    WebDriverWait(driver, 30).until(lambda d: _retry(click, label), f"no menu entry {label!r} in the report")


def test_report_shows_every_table_and_figure_in_chromium(demo_cfg, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    report = tmp_path / "report.html"
    out = subprocess.run([sys.executable, "-m", "snakemake", "--directory", "demo", "--report", str(report)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and report.is_file(), out.stderr[-3000:]
    shots = os.environ.get("ZAR_REPORT_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
    expected = {f for f in plan.all_tables(demo_cfg) if f.endswith(".html")} | set(demo_figures(demo_cfg))
    driver = _browser()
    try:
        driver.get(report.as_uri())
        WebDriverWait(driver, 60).until(lambda d: d.execute_script("return typeof app !== 'undefined'"))
        assert set(driver.execute_script("return Object.keys(results)")) == expected
        categories = driver.execute_script(
            "return Object.fromEntries(Object.entries(categories).map(([c, s]) => [c, Object.keys(s)]))")
        assert sorted(categories) == ["1. Tables", "2. Per-class analysis", "3. Ablations",
                                      "4. t-SNE of video embeddings", "5. Attention maps", "6. Test-time methods"]
        if shots:
            driver.save_screenshot(f"{shots}/00_home.png")
        seen: set[str] = set()
        for cat, subs in categories.items():
            for sub in subs:
                driver.execute_script("app.setView({navbarMode: 'menu'})")  # what the "Results" breadcrumb does
                _click_menu(driver, cat)
                if len(subs) > 1:
                    _click_menu(driver, sub)
                rows = WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.XPATH, "//table/tbody/tr"),
                                                       f"{cat} / {sub}: no results listed")
                for i in range(len(rows)):
                    before = driver.execute_script("return app.state.resultPath || null")
                    _retry(lambda: driver.find_elements(By.XPATH, "//table/tbody/tr")[i]
                           .find_element(By.XPATH, "./td[last()]//a[1]").click(), f"{cat} / {sub} row {i + 1}")
                    path = WebDriverWait(driver, 30).until(lambda d: d.execute_script(
                        "const p = app.state.resultPath; return p !== arguments[0] ? p : null;", before),
                        f"{cat} / {sub} row {i + 1}: its view button shows nothing")
                    assert path in expected and path not in seen, path
                    seen.add(path)
                    _check_shown(driver, path)
                    if shots and (path.endswith(".html") or path.endswith(("split1.png", "k400.png"))
                                  or "ablation" in path):
                        driver.save_screenshot(f"{shots}/{len(seen):03d}_{path.replace('/', '_')}.png")
        assert seen == expected, f"never shown: {sorted(expected - seen)[:5]}"
    finally:
        driver.quit()


def _check_shown(driver, path: str) -> None:
    """The result's image (loaded, at its full size) or HTML page (a table with rows) is on screen."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    mime = driver.execute_script("return results[arguments[0]].mime_type", path)
    if mime == "image/png":
        def shown(d):
            return d.execute_script(
                "const uri = results[arguments[0]].data_uri;"
                "const img = Array.from(document.images).find(i => i.src === uri);"
                "if (!img || !img.complete || img.naturalWidth === 0) return null;"
                "const r = img.getBoundingClientRect();"
                "return [img.naturalWidth, img.naturalHeight, r.width, r.height];", path)

        w, h, rw, rh = WebDriverWait(driver, 30).until(shown)
        with Image.open(DEMO / path) as im:
            assert (w, h) == im.size, path
        assert rw > 100 and rh > 100, f"{path}: shown at {rw}x{rh}"
    elif mime == "text/html":
        frame = WebDriverWait(driver, 30).until(lambda d: next(
            (f for f in d.find_elements(By.TAG_NAME, "iframe")
             if f.get_attribute("src") == d.execute_script("return results[arguments[0]].data_uri", path)), None))
        assert frame.is_displayed() and frame.size["width"] > 300 and frame.size["height"] > 300, path
        driver.switch_to.frame(frame)
        try:
            table = WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.TAG_NAME, "table"))[0]
            assert table.is_displayed() and table.size["height"] > 20, path
            assert len(table.find_elements(By.TAG_NAME, "tr")) >= 2, path
            assert "ours" in table.text and "Table" in driver.find_element(By.TAG_NAME, "h1").text, path
        finally:
            driver.switch_to.default_content()
    else:
        pytest.fail(f"{path}: the report cannot show a {mime}")

