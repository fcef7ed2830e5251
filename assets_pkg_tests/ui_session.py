"""Drive the Dagster UI for real: `dagster dev` on a free port, Debian's chromium through Playwright.

Used by test_ui_browser.py, and by ``python -m assets_pkg_tests.ui_session OUT.png``, which
takes the README's lineage screenshot (docs/lineage.png) the same way: a fresh data root,
the whole demo at test scale, the UI's global lineage with every group expanded.

Playwright's own browser downloads are not reachable here, so it drives the system chromium
(`apt-get install chromium`) through ``executable_path``. Without the background-networking
flags chromium's first-run traffic makes the closed network refuse its connections.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GROUPS = ("splits", "summary", "logs", "timeseries", "ingest")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
NO_CHROMIUM = ("chromium not found (/usr/bin/chromium, or chromium / chromium-browser on PATH): "
               "`apt-get install -y chromium` (make test does it when it runs as root with apt-get)")
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def find_chromium() -> str | None:
    """The system chromium, or None."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, probe, timeout: float, interval: float = 2.0):
    """Call ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


class DagsterDev:
    """``dagster dev`` (webserver + daemon) as its own process group, with a GraphQL client."""

    def __init__(self, env: dict, log_path: Path):
        self.env = env
        self.log_path = Path(log_path)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> "DagsterDev":
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(self.port),
                 "-w", str(REPO / "workspace.yaml")],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_for(f"dagster dev at {self.url} with the assets_pkg code location loaded (log {self.log_path})",
                 self._loaded, timeout)
        return self

    def _loaded(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            data = self.gql("{ repositoriesOrError { ... on RepositoryConnection { nodes { location { name } } } } }")
        except (OSError, urllib.error.URLError, RuntimeError):
            return False
        nodes = (data.get("repositoriesOrError") or {}).get("nodes") or []
        return any(n["location"]["name"] == "assets_pkg" for n in nodes)

    def stop(self) -> None:
        """SIGTERM to the whole process group (webserver, daemon, code server, run workers),
        SIGKILL what is left after 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # children that outlived the leader still belong to its group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def gql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    # -- the questions the browser test asks ---------------------------------------------------
    def group_names(self) -> set[str]:
        data = self.gql("{ assetNodes { groupName } }")
        return {n["groupName"] for n in data["assetNodes"]}

    def materialization_runs(self, asset: str, partition: str) -> list[str]:
        data = self.gql(
            "query($k: AssetKeyInput!, $p: [String!]) { assetOrError(assetKey: $k) { ... on Asset {"
            " assetMaterializations(partitions: $p) { runId } } } }",
            {"k": {"path": asset.split("/")}, "p": [partition]},
        )
        return [m["runId"] for m in (data["assetOrError"] or {}).get("assetMaterializations") or []]

    def run(self, run_id: str) -> dict:
        data = self.gql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { runId status jobName"
            " tags { key value } } } }", {"id": run_id},
        )
        run = data["runOrError"]
        run["tags"] = {t["key"]: t["value"] for t in run.get("tags", [])}
        return run

    def finished_run(self, run_id: str, timeout: float) -> dict:
        return wait_for(f"run {run_id} to finish",
                        lambda: (lambda r: r if r.get("status") in TERMINAL else None)(self.run(run_id)), timeout)

    def check_executions(self, asset: str, check: str, limit: int = 20) -> list[dict]:
        data = self.gql(
            "query($k: AssetKeyInput!, $c: String!, $n: Int!) { assetCheckExecutions(assetKey: $k,"
            " checkName: $c, limit: $n) { id runId status evaluation { success } } }",
            {"k": {"path": asset.split("/")}, "c": check, "n": limit},
        )
        return data["assetCheckExecutions"]

    def launch(self, job: str, tags: dict) -> str:
        """Launch ``job`` with its defaults, as the launchpad does; return the run id."""
        data = self.gql(
            "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename"
            " ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }"
            " ... on RunConfigValidationInvalid { errors { message } } } }",
            {"p": {"selector": {"repositoryLocationName": "assets_pkg", "repositoryName": "__repository__",
                                "jobName": job},
                   "runConfigData": {},
                   "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]}}},
        )
        result = data["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launching {job} failed: {result}")
        return result["run"]["runId"]


@contextmanager
def dagster_dev(env: dict, log_path: Path):
    """A started :class:`DagsterDev`, always stopped (its whole process group) on exit."""
    server = DagsterDev(env, log_path)
    try:
        yield server.start()
    finally:
        server.stop()


@contextmanager
def browser_page(chromium: str, profile_dir: Path, width: int = 1600, height: int = 1000):
    """A Playwright page in the system chromium, with a fresh profile in ``profile_dir``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile_dir), executable_path=chromium, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
        )
        context.set_default_timeout(30_000)
        try:
            yield context.new_page()
        finally:
            context.close()


def open_ui(page, url: str) -> None:
    """Go to ``url``; dismiss the UI's one-time "Join the Dagster community" dialog."""
    page.goto(url)
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=8_000)
        skip.click()
    except Exception:  # the dialog shows once per browser profile; later pages have none
        pass


def lineage_graph_groups(page, base_url: str) -> dict:
    """Open the global lineage; return {group: its node in the graph (a locator)}."""
    open_ui(page, f"{base_url}/asset-groups")
    graph = page.locator("svg")
    nodes = {g: graph.get_by_text(g, exact=True).first for g in GROUPS}
    for node in nodes.values():
        node.wait_for(state="visible")
    return nodes


def demo_env(data_root: Path) -> dict:
    """The environment of the code location on ``data_root``: every process (demo, dagster
    dev and its code server, assets-pkg) sees the same data root, instance and split settings."""
    from assets_pkg.demo.splits import demo_env as split_env

    env = {**os.environ, **split_env(), "ASSETS_PKG_DATA_DIR": str(data_root),
           "DAGSTER_HOME": str(data_root / ".dagster"), "ASSETS_PKG_AUTOMATION": "on"}
    env.setdefault("PYTHONPATH", str(REPO))
    return env


def run_demo(env: dict, *only: str) -> str:
    args = [sys.executable, "-m", "assets_pkg.cli", "demo", "--scale", "test"] + (["--only", *only] if only else [])
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"assets-pkg demo failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def screenshot_lineage(out: Path) -> Path:
    """The README's screenshot: the whole demo at test scale in a fresh data root, then the
    global lineage as `make ui` shows it, every group expanded, cropped to the graph."""
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit(NO_CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="lineage-") as tmp:
        root = Path(tmp) / "data"
        (root / ".dagster").mkdir(parents=True)
        env = demo_env(root)
        env["ASSETS_PKG_AUTOMATION"] = "off"  # a still picture: no sensor run starts meanwhile
        run_demo(env)
        with dagster_dev(env, Path(tmp) / "dagster-dev.log") as server, \
                browser_page(chromium, Path(tmp) / "profile", 1500, 2000) as page:
            expanded = ",".join(f"global@global:{g}" for g in sorted(GROUPS))  # the UI's own URL state
            open_ui(page, f"{server.url}/asset-groups?{urllib.parse.urlencode({'expanded': expanded})}")
            page.get_by_text("shard_profile", exact=True).first.wait_for(state="visible")
            page.get_by_text("Hide navigation").click()
            page.wait_for_timeout(2000)  # the graph re-centres after the navigation folds
            box = page.evaluate("""() => {
                const r = [...document.querySelectorAll('svg foreignObject')]
                    .map(e => e.getBoundingClientRect()).filter(b => b.width > 0);
                return {x: Math.min(...r.map(b => b.left)), y: Math.min(...r.map(b => b.top)),
                        x2: Math.max(...r.map(b => b.right)), y2: Math.max(...r.map(b => b.bottom))};
            }""")
            margin = 24
            page.screenshot(path=str(out), clip={"x": box["x"] - margin, "y": box["y"] - margin,
                                                 "width": box["x2"] - box["x"] + 2 * margin,
                                                 "height": box["y2"] - box["y"] + 2 * margin})
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "docs" / "lineage.png")
    print(f"wrote {screenshot_lineage(target)}")
