"""Sharing the project's DVC work, as README's "Remote storage" and "Sweeps across machines" do it.

All on this machine: a bare git repo stands for the team's Git server, a folder for the DVC
remote (a bucket), and clones for the machines. One committed `dvc repro` on small params is
pushed; then a fresh clone pulls it and has nothing to reproduce; another runs an experiment
pulling only what it needs; two "machines" each run part of a sweep in DVC's queue and push
their experiments; one more clone pulls them all, compares them with `dvc exp show`, and
draws `dvc plots diff` of their curves in headless Chromium with the network off. The plots
page of `dvc plots show` is checked there too, against DVC's own page, which stays blank offline.
"""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from browser import open_page
from dvc_support import (drawn, exp_rows, git, link_node_modules, make_repo, ran_stages, run, start_queue,
                         wait_for_queue)

pytestmark = pytest.mark.slow

VEGA_PLOTS = ["Training_loss_per_iteration", "Accuracy_per_epoch", "Loss_per_epoch", "Weight_norms_per_epoch",
              "Update___weight_per_epoch", "Confusion_matrix"]
LINE_PLOTS = VEGA_PLOTS[:5]
# the divs DVC makes for the image plots: dvclive's gallery, the report's first-layer weights
IMAGE_PLOT = "data_live_report_plots_images_misclassified_png"
IMAGE_PLOTS = [IMAGE_PLOT, "data_live_report_plots_images_weights_png"]
# the same plots as `dvc plots show --json` names them
PLOT_NAMES = [name.replace("___", " / ").replace("_", " ") for name in VEGA_PLOTS] + \
    ["data/live/report/plots/images/misclassified.png", "data/live/report/plots/images/weights.png"]
UP_TO_DATE = "Data and pipelines are up to date."


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """(the bare git repo, the DVC remote folder, the first machine's repo), the baseline pushed to both."""
    root = tmp_path_factory.mktemp("sharing")
    server, storage = root / "server.git", root / "storage"
    run(root, "git", "init", "-q", "--bare", "-b", "main", str(server))
    storage.mkdir()
    first = make_repo(root / "first")
    run(first, "dvc", "repro")
    # The team's remote, committed to .dvc/config (a bucket's URL in real life; see README).
    run(first, "dvc", "remote", "add", "-d", "storage", str(storage))
    git(first, "add", "-A")
    git(first, "commit", "-q", "-m", "baseline run, and the team's DVC remote")
    git(first, "remote", "add", "origin", str(server))
    git(first, "push", "-q", "origin", "main")
    run(first, "dvc", "push")
    yield server, storage, first
    run(first, "dvc", "queue", "stop", "--kill", check=False)


def clone(server: Path, dest: Path) -> Path:
    git(dest.parent, "clone", "-q", str(server), str(dest))
    return dest


def test_a_fresh_clone_pulls_and_has_nothing_to_reproduce(shared, tmp_path):
    server, _, first = shared
    repo = clone(server, tmp_path / "clone")
    # Metrics and plot data come with git (cache: false): compared before any pull.
    diff = json.loads(run(repo, "dvc", "metrics", "diff", "HEAD", "--json").stdout)
    assert diff == {}
    assert "data/live/eval/metrics.json" in run(repo, "dvc", "metrics", "show").stdout
    assert not (repo / "data/model/model.npz").exists()
    # So do the plots, every one of them, images too (a plot in a cached output made DVC drop them all).
    plots = json.loads(run(repo, "dvc", "plots", "show", "--json").stdout)
    assert "errors" not in plots, plots.get("errors")
    assert sorted(plots["data"]) == sorted(PLOT_NAMES), sorted(plots["data"])
    run(repo, "dvc", "pull")
    assert UP_TO_DATE in run(repo, "dvc", "status").stdout
    p = run(repo, "dvc", "repro")
    assert ran_stages(p.stdout) == set() and UP_TO_DATE in p.stdout
    for f in ("data/model/model.npz", "data/prepared/x_train.npy", "data/report/report.md"):
        assert sha(repo / f) == sha(first / f)


def test_exp_run_pulls_only_what_it_needs(shared, tmp_path):
    server, _, _ = shared
    repo = clone(server, tmp_path / "ci")
    p = run(repo, "dvc", "exp", "run", "--pull", "--allow-missing", "-S", "train.learning_rate=0.05")
    assert ran_stages(p.stdout) == {"train", "evaluate", "report"}
    assert "Stage 'fetch' didn't change, skipping" in p.stdout
    assert (repo / "data/prepared/x_train.npy").exists()  # pulled: train reads it
    assert not (repo / "data/raw").exists()  # not needed by anything that ran: never pulled
    rows = {r["params"]["train"]["learning_rate"]: r for r in exp_rows(repo) if r["name"]}
    assert 0.1 < rows[0.05]["metrics"]["accuracy"] < 1


def test_a_sweep_across_machines_is_pulled_compared_and_drawn_offline(shared, tmp_path):
    server, _, _ = shared
    share = {"m1": ("0.05,0.2", 2), "m2": ("0.5", 1)}  # machine: (its learning rates, its queue's workers)
    machines = {name: clone(server, tmp_path / name) for name in share}
    for name, (rates, _) in share.items():
        # A fresh machine: nothing pulled; each queued run pulls what it needs.
        run(machines[name], "dvc", "exp", "run", "--queue", "--pull", "--allow-missing",
            "-S", f"train.learning_rate={rates}")
    for name, (_, jobs) in share.items():
        start_queue(machines[name], jobs)  # both machines at once

    def finish(name):
        status = wait_for_queue(machines[name], timeout=300)
        assert status.count("Success") == len(share[name][0].split(",")), status
        run(machines[name], "dvc", "exp", "push", "origin")  # refs to git, cached outputs to the DVC remote

    with ThreadPoolExecutor(len(share)) as pool:  # the machines finish in their own time
        for done in [pool.submit(finish, name) for name in share]:
            done.result()

    collector = clone(server, tmp_path / "collector")
    run(collector, "dvc", "exp", "pull", "origin")
    rows = {r["params"]["train"]["learning_rate"]: r for r in exp_rows(collector) if r["name"]}
    assert set(rows) == {0.05, 0.2, 0.5}
    accuracies = [rows[lr]["metrics"]["accuracy"] for lr in (0.05, 0.2, 0.5)]
    assert len(set(accuracies)) == 3 and all(0.1 < a < 1 for a in accuracies)
    assert all(rows[lr]["train"]["step"] == 3 for lr in rows)
    table = run(collector, "dvc", "exp", "show", "--csv").stdout
    assert all(rows[lr]["name"] in table for lr in rows)
    # The models came too (exp pull fetches the cached outputs from the DVC remote).
    run(collector, "dvc", "exp", "apply", rows[0.5]["name"])
    assert json.loads((collector / "data/live/eval/metrics.json").read_text())["accuracy"] == rows[0.5]["metrics"]["accuracy"]
    assert UP_TO_DATE in run(collector, "dvc", "status").stdout

    names = [rows[lr]["name"] for lr in (0.05, 0.2, 0.5)]
    link_node_modules(collector)
    run(collector, "dvc", "plots", "diff", *names)
    with open_page(collector / "dvc_plots/index.html", viewport=(1400, 1000)) as page:
        got = drawn(page, len(VEGA_PLOTS))
        assert page.outside() == [] and page.errors == []
    for plot in LINE_PLOTS:  # one curve per experiment, each in its revision's colour
        assert all(n > 20 for n in got[plot]["revs"][:3]), (plot, got[plot])
    assert got["Confusion_matrix"]["coloured"] > 1000
    assert sorted(got) == sorted(VEGA_PLOTS + IMAGE_PLOTS)
    for plot in IMAGE_PLOTS:  # each image once per experiment
        assert len(got[plot]["images"]) == 3 and all(w > 0 for w in got[plot]["images"]), got


def test_plots_show_draws_every_plot_offline_where_dvcs_own_page_stays_blank(shared):
    _, _, first = shared
    link_node_modules(first)
    run(first, "dvc", "plots", "show")
    with open_page(first / "dvc_plots/index.html", viewport=(1400, 1000)) as page:
        got = drawn(page, len(VEGA_PLOTS))
        assert page.outside() == [] and page.errors == []
    assert sorted(got) == sorted(VEGA_PLOTS + IMAGE_PLOTS)
    for plot in LINE_PLOTS:
        assert got[plot]["revs"][0] > 20, (plot, got[plot])  # the workspace's curve
    assert got["Confusion_matrix"]["coloured"] > 1000
    assert all(got[plot]["images"][0] > 0 for plot in IMAGE_PLOTS)
    # The norms span decades: their plots use the project's log template (.dvc/plots/log.json).
    specs = json.loads(run(first, "dvc", "plots", "show", "--json").stdout)["data"]
    log_axis = {name: '"scale": {"type": "log"}' in json.dumps(spec[0]["content"])
                for name, spec in specs.items() if spec[0]["type"] == "vega"}
    assert log_axis == {"Training loss per iteration": False, "Accuracy per epoch": False, "Loss per epoch": False,
                        "Weight norms per epoch": True, "Update / weight per epoch": True,
                        "Confusion matrix": False}, log_axis

    # Written elsewhere (-o), the page cannot reach node_modules: it says so, and how to get the plots.
    run(first, "dvc", "plots", "show", "-o", str(first.parent / "elsewhere"))
    with open_page(first.parent / "elsewhere" / "index.html") as page:
        assert page.locator("#no-vega").is_visible()
        assert "without -o" in page.locator("#no-vega").inner_text()
    with open_page(first / "dvc_plots/index.html") as page:
        assert not page.locator("#no-vega").is_visible()

    # The same plots on DVC's own page (its scripts from a CDN): nothing drawn, and it asked the network.
    run(first, "dvc", "config", "--local", "plots.html_template", "")
    try:
        run(first, "dvc", "plots", "show")
        with open_page(first / "dvc_plots/index.html", viewport=(1400, 1000)) as page:
            blank = drawn(page, len(VEGA_PLOTS), timeout_ms=3000)
            assert page.outside() != []
        assert all("revs" not in blank.get(plot, {}) for plot in VEGA_PLOTS), blank
    finally:
        run(first, "dvc", "config", "--local", "--unset", "plots.html_template")
