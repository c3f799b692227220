"""The Python client against a real deployment: a coordinator and three node processes on
loopback (made by ``concord demo``, started again here), over mutual TLS."""

import json
import os
import signal
import subprocess
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from concord_client import ROOT, ConcordError, Researcher, pb, phase_name


def binaries() -> Path:
    if "CONCORD_BIN" in os.environ:
        return Path(os.environ["CONCORD_BIN"])
    for profile in ("release", "debug"):
        path = ROOT / "target" / profile
        if (path / "concord").is_file() and (path / "concord-node").is_file():
            return path
    raise RuntimeError("build the binaries first: cargo build --release --bins")


def wait_ready(listen: str, process: subprocess.Popen, log: Path):
    deadline = time.time() + 60
    while time.time() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://{listen}/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{listen} never ready: {log.read_text()}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    bin_dir = binaries()
    work = tmp_path_factory.mktemp("deployment")
    demo = subprocess.run(
        [bin_dir / "concord", "demo", "--nodes", "3", "--work", work, "--plots", work / "plots"],
        capture_output=True,
    )
    assert demo.returncode == 0, demo.stderr.decode()
    started = []
    try:
        names = ["coordinator"] + (work / "nodes.txt").read_text().split()
        for name in names:
            binary = "concord-coordinator" if name == "coordinator" else "concord-node"
            config = work / f"{name}.toml"
            log = work / f"{name}.python.log"
            process = subprocess.Popen(
                [bin_dir / binary, "--config", config],
                stdout=subprocess.DEVNULL,
                stderr=log.open("w"),
            )
            started.append(process)
            settings = tomllib.loads(config.read_text())
            wait_ready(settings["operations"]["listen"], process, log)
        listen = tomllib.loads((work / "coordinator.toml").read_text())["listen"]
        researcher = Researcher(
            f"https://{listen}", tls_dir=work, name="researcher", concord=str(bin_dir / "concord")
        )
        deadline = time.time() + 60
        while len(researcher.members()) < 3:
            assert time.time() < deadline, "the nodes never enrolled"
            time.sleep(0.2)
        yield researcher, work, bin_dir
        researcher.close()
    finally:
        for process in started:
            process.send_signal(signal.SIGINT)
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def test_a_sealed_query_submitted_followed_and_opened_equals_the_cli_result(deployment):
    researcher, work, bin_dir = deployment
    query = researcher.submit("events-by-month-tlp-distribution", start="2025-01", months=12)
    assert query.startswith("q-")
    phases = [phase_name(s) for s in researcher.watch(query)]
    assert phases[-1] == "released", phases
    # a phase may be watched more than once (its status changes as contributions arrive),
    # but once left it never comes back
    moves = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]
    assert len(moves) == len(set(moves)), f"phases only move forward: {phases}"
    # the coordinator holds only the sealed ciphertexts: no cell in the clear
    status = researcher.status(query)
    assert status.sealed and not status.cells
    assert list(status.spec.recipient_key) == list(
        (work / "researcher.ADD-8192.pk").read_bytes()
    )
    # opened by this client (through `concord query open`) = what the CLI prints itself
    opened = researcher.result(query)
    cli = subprocess.run(
        [bin_dir / "concord", "query", "--coordinator", researcher.coordinator, "--tls-dir", work,
         "--name", "researcher", "result", query, "--json"],
        capture_output=True,
    )
    assert cli.returncode == 0, cli.stderr.decode()
    assert opened["rows"] == json.loads(cli.stdout)["rows"]
    assert opened["institutions"] == 3 and opened["window"] == {"first": "2025-01", "months": 12}
    # a pandas table: a column per dimension, then value; one row per cell
    table = researcher.table(query)
    assert list(table.columns) == ["month", "tlp", "distribution", "value"]
    assert len(table) == len(opened["rows"]) == 12 * 6 * 6
    assert table["value"].sum() == sum(r["value"] for r in opened["rows"]) > 0
    assert table.groupby("tlp")["value"].sum()["clear"] > 0
    assert query in [q.query_id for q in researcher.queries()]


def test_refusals_come_back_in_words(deployment):
    researcher, _, _ = deployment
    with pytest.raises(ConcordError, match="min_institutions 5 but 3 institutions are enrolled"):
        researcher.submit("time-to-publish", start="2025-01", min_institutions=5)
    with pytest.raises(ConcordError, match="not-a-template"):
        researcher.submit("not-a-template", start="2025-01")
    with pytest.raises(ConcordError, match="not_found"):
        researcher.status("q-0000000000000000")


def test_a_dp_query_shows_in_the_budget(deployment):
    researcher, _, _ = deployment
    query = researcher.submit(
        "events-by-month-tlp-distribution", start="2025-01", months=6, epsilon=0.5
    )
    final = list(researcher.watch(query))[-1]
    assert phase_name(final) == "released", final.detail
    budget = researcher.budget()
    assert not budget.unreachable
    assert sorted(n.node for n in budget.nodes) == ["node-1", "node-2", "node-3"]
    for node in budget.nodes:
        (spent,) = [s for s in node.spent if s.unit == "event"]
        assert spent.queries == 1 and 0 < spent.epsilon_spent < node.epsilon_budget
    assert pb.QUERY_PHASE_RELEASED == final.phase


def test_bins_auto_sizes_an_overlap_query_from_the_indicators_held(deployment):
    researcher, _, _ = deployment
    before = {q.query_id for q in researcher.queries()}
    query = researcher.submit("indicator-overlap", start="2025-01", months=12, bins="auto")
    phases = [phase_name(s) for s in researcher.watch(query)]
    assert phases[-1] == "released", phases
    # the sizing query ran first, with the same window, and was released
    new = [q for q in researcher.queries() if q.query_id not in before]
    held = [q for q in new if q.spec.template == "indicators-held"]
    assert len(held) == 1, new
    counts = researcher.result(held[0].query_id)
    held_sum = sum(row["value"] for row in counts["rows"])
    assert held_sum > 0
    # the overlap query asked for the bins the sum of the indicators held needs at 5 %
    bins = researcher.status(query).spec.bins
    assert bins % 16384 == 0 and bins > 0
    rate = lambda b: 1 - (1 - 1 / b) ** (held_sum - 1)
    assert rate(bins) <= 0.05 and (bins == 16384 or rate(bins - 16384) > 0.05)
    histogram = researcher.result(query)
    occupied = sum(row["value"] for row in histogram["rows"])
    assert 0 < occupied <= held_sum


def test_the_cli_sizes_the_bins_the_same_way(deployment):
    researcher, work, bin_dir = deployment
    cli = subprocess.run(
        [bin_dir / "concord", "query", "--coordinator", researcher.coordinator, "--tls-dir", work,
         "--name", "researcher", "submit", "--template", "indicator-overlap-by-type",
         "--from", "2025-01", "--bins", "auto"],
        capture_output=True,
    )
    stderr = cli.stderr.decode()
    assert cli.returncode == 0, stderr
    assert "sized by query" in stderr and "merge rate at most" in stderr, stderr
    query = cli.stdout.decode().strip()
    phases = [phase_name(s) for s in researcher.watch(query)]
    assert phases[-1] == "released", phases
    # per type: one histogram per group, bins sized for the largest group
    bins = researcher.status(query).spec.bins
    assert bins % 16384 == 0 and f"{bins} bins per histogram" in stderr, stderr
    # offline, prepare cannot ask the community: it says what to do instead
    prepared = subprocess.run(
        [bin_dir / "concord", "query", "--tls-dir", work, "--name", "researcher", "prepare",
         "--template", "indicator-overlap", "--from", "2025-01", "--bins", "auto"],
        capture_output=True,
    )
    assert prepared.returncode != 0 and "concord query bins" in prepared.stderr.decode()


def test_concord_train_learns_a_model_and_evaluate_scores_it(deployment):
    researcher, work, bin_dir = deployment
    model_path, roc = work / "model.json", work / "roc.svg"
    trained = subprocess.run(
        [bin_dir / "concord", "train", "--coordinator", researcher.coordinator, "--tls-dir", work,
         "--name", "researcher", "--template", "train-to-ids", "--from", "2025-01",
         "--months", "12", "--rounds", "3", "--out", model_path],
        capture_output=True,
    )
    assert trained.returncode == 0, trained.stderr.decode()
    model = json.loads(model_path.read_text())
    # one query per round, each over the three institutions; one coefficient per feature
    assert len(model["queries"]) == 3 and model["institutions"] == 3
    assert model["label"] == "to-ids" and "to-ids" not in model["features"]
    assert len(model["coefficients"]) == len(model["features"]) and model["features"][0] == "bias"
    assert len(model["losses"]) == 3 and model["losses"][-1] < model["losses"][0]
    for query in model["queries"]:
        status = researcher.status(query)
        assert phase_name(status) == "released" and status.sealed and not status.cells
        assert status.spec.template == "train-to-ids"
    # the rounds carried the model: the last round's is the model before the last step
    assert status.spec.training.round == 2 and status.spec.training.rounds == 3
    # scored on one institution's data, with its ROC curve
    data = sorted((work / "data").iterdir())[0]
    evaluated = subprocess.run(
        [bin_dir / "concord", "evaluate", "--model", model_path, "--data", data, "--roc", roc,
         "--json"],
        capture_output=True,
    )
    assert evaluated.returncode == 0, evaluated.stderr.decode()
    scores = json.loads(evaluated.stdout)
    assert scores["samples"] > 0 and 0.0 <= scores["accuracy"] <= 1.0
    assert scores["roc"][0] == [0.0, 0.0] and scores["roc"][-1] == [1.0, 1.0]
    assert roc.read_text().startswith("<svg") and "false-positive rate" in roc.read_text()
    # linear regression, two rounds of it: the model says so, and its loss falls
    linear_path = work / "linear.json"
    linear = subprocess.run(
        [bin_dir / "concord", "train", "--coordinator", researcher.coordinator, "--tls-dir", work,
         "--name", "researcher", "--template", "train-to-ids", "--from", "2025-01",
         "--months", "12", "--rounds", "2", "--objective", "linear", "--out", linear_path],
        capture_output=True,
    )
    assert linear.returncode == 0, linear.stderr.decode()
    linear_model = json.loads(linear_path.read_text())
    assert linear_model["config"]["objective"] == "linear" and len(linear_model["queries"]) == 2
    assert linear_model["losses"][-1] < linear_model["losses"][0]
    # a table is no training template: refused before anything is sent
    refused = subprocess.run(
        [bin_dir / "concord", "train", "--coordinator", researcher.coordinator, "--tls-dir", work,
         "--name", "researcher", "--template", "time-to-publish", "--from", "2025-01",
         "--out", work / "no.json"],
        capture_output=True,
    )
    assert refused.returncode != 0 and "not a training template" in refused.stderr.decode()
