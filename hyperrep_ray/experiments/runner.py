"""All the experiments of the 2022 paper (Section 4.2, Appendix F) on one zoo and its autoencoders, as one
tracked run: ``summary.json``, ``report.md`` and each experiment's tables and figures under ``out/``.

The experiments run in the order of :data:`EXPERIMENTS`, each in a child MLflow run
(:func:`~.tracked.tracked_child`):

- ``in_dataset``: Figure 4 and Table 1 populations (:mod:`~.experiments.in_dataset`);
- ``ensembles``: Figure 5 (:mod:`~.experiments.ensembles`);
- ``transfer``: Table 2 (:mod:`~.experiments.transfer`), skipped when there is no target;
- ``unseen_zoo``: Table 3 (:mod:`~.experiments.unseen_zoo`), skipped without another zoo.

Each experiment computes an :class:`~.result.ExperimentResult` (``summary``: population -> key (a
fine-tuning epoch, or an ensemble size, as a string) -> :func:`~.evaluation.stats.summarize` of the test
accuracies, fractions in [0, 1]; ``tests``: Mann-Whitney U p-values and CLES of every sampled population
against every baseline at every key); :mod:`hyperrep_ray.report.experiment_outputs` draws its tables and
figure. Populations whose name starts with ``B_`` are baselines, every other population is sampled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from hyperrep_ray import tracking
from hyperrep_ray.config import ExperimentsConfig
from hyperrep_ray.data.images import ImageData
from hyperrep_ray.evaluation.results import EXPERIMENTS, ExperimentResult
from hyperrep_ray.experiments.data import default_transfer_target, zoo_data
from hyperrep_ray.experiments.ensembles import ensembles
from hyperrep_ray.experiments.in_dataset import in_dataset, merge_in_dataset, table1, trained_reference
from hyperrep_ray.experiments.inputs import check_epochs
from hyperrep_ray.experiments.novelty import novelty
from hyperrep_ray.experiments.tracked import tracked_child
from hyperrep_ray.experiments.transfer import transfer
from hyperrep_ray.experiments.unseen_zoo import unseen_zoo
from hyperrep_ray.io import write_json, write_text
from hyperrep_ray.progress import Progress
from hyperrep_ray.report.experiment_outputs import experiments_markdown, write_outputs
from hyperrep_ray.runtime import cluster_has_gpus, ensure_ray
from hyperrep_ray.sampling.samplers import DEFAULT_BANDWIDTH

__all__ = ["EXPERIMENTS", "Setup", "resolve_decode_on_driver", "run_experiments"]

NO_OTHER_ZOO = "no other zoo given (other_zoo / --other-zoo): nothing to condition on, so no numbers"


@dataclass(frozen=True)
class Setup:
    """What every experiment of one run is given: the run's arguments with the defaults resolved."""

    ae_dir: str
    baseline_ae_dir: str | None
    zoo: str
    data: ImageData
    config: ExperimentsConfig
    epochs: list[int]
    decode_on_driver: bool
    num_gpus: float
    other_zoo: str | None
    data_root: str | None
    transfer_target: ImageData | None
    other_data: ImageData | None


@dataclass(frozen=True)
class Step:
    """One experiment of the loop: ``compute`` returns the results to draw, the experiment's own last
    (``in_dataset`` draws Table 1 before it); ``skipped`` says why it does not run."""

    name: str
    compute: Callable[[], list[ExperimentResult]] | None = None
    skipped: str | None = None


def resolve_decode_on_driver(config: ExperimentsConfig) -> bool:
    """Whether sampled embeddings are decoded in this process (``config.decode_on_driver``; when None:
    when the Ray cluster has no GPUs) rather than by the Ray Data pipeline's decoder actors (one actor
    pool per population). The numbers are the same either way: the driver sends the decoded weights
    through the same fine-tuning tasks, and saves the seconds of start-up a decoder actor costs per
    population on a CPU; on GPUs the actors decode there."""
    if config.decode_on_driver is not None:
        return config.decode_on_driver
    ensure_ray()
    return not cluster_has_gpus()


def run_in_dataset(s: Setup) -> list[ExperimentResult]:
    """Table 1 first (its fine-tuned B_T is Figure 4's reference), then Figure 4, merged."""
    c = s.config
    on_driver, gpus = s.decode_on_driver, s.num_gpus
    t1 = table1(
        s.ae_dir,
        s.baseline_ae_dir,
        s.zoo,
        s.data,
        c.n,
        s.epochs,
        c.seed,
        bandwidth=c.bandwidth,
        decode_on_driver=on_driver,
        num_gpus=gpus,
    )
    ind = in_dataset(
        s.ae_dir,
        s.zoo,
        s.data,
        c.n,
        c.seed,
        c.methods,
        bandwidth=c.bandwidth,
        gan_epochs=c.gan_epochs,
        gan_steps=c.gan_steps,
        reference=trained_reference(t1),
        decode_on_driver=on_driver,
        num_gpus=gpus,
    )
    return [t1, merge_in_dataset(t1, ind, c.seed)]


def run_ensembles(s: Setup) -> list[ExperimentResult]:
    """B_T trained for the longest fine-tuning of the run (the paper's 25 epochs)."""
    c = s.config
    return [
        ensembles(
            s.ae_dir,
            s.data,
            c.n,
            c.ensemble_sizes,
            c.ensemble_repeats,
            c.seed,
            zoo=s.zoo,
            baseline_ae_dir=s.baseline_ae_dir,
            train_epochs=max(s.epochs),
            bandwidth=c.bandwidth,
            num_gpus=s.num_gpus,
        )
    ]


def run_transfer(s: Setup, target: ImageData) -> list[ExperimentResult]:
    c = s.config
    return [
        transfer(
            s.ae_dir,
            s.zoo,
            s.data,
            target,
            c.n,
            s.epochs,
            c.seed,
            methods=c.transfer_methods,
            bandwidth=c.bandwidth,
            decode_on_driver=s.decode_on_driver,
            num_gpus=s.num_gpus,
        )
    ]


def run_unseen_zoo(s: Setup, other_zoo: str) -> list[ExperimentResult]:
    """Conditioned on ``other_zoo``, scored on its data set (``other_data``, else the one it records)."""
    c = s.config
    other_data = zoo_data(other_zoo, s.data_root) if s.other_data is None else s.other_data
    return [
        unseen_zoo(
            s.ae_dir,
            other_zoo,
            other_data,
            c.n,
            c.seed,
            bandwidth=c.bandwidth,
            repeats=c.ensemble_repeats,
            decode_on_driver=s.decode_on_driver,
            num_gpus=s.num_gpus,
        )
    ]


def run_novelty(s: Setup, in_dataset_result: ExperimentResult) -> list[ExperimentResult]:
    """Novelty of the in-dataset populations and the samplers' accuracy-novelty frontiers."""
    c = s.config
    embeddings = in_dataset_result.extra.get("embeddings", {})
    return [novelty(s.ae_dir, s.zoo, s.data, embeddings, c.methods, c.n, c.seed, data_root=s.data_root)]


def steps(s: Setup, done: Mapping[str, ExperimentResult]) -> Iterator[Step]:
    """The experiments in the order of EXPERIMENTS. A generator: the transfer target is looked for only
    once the experiments before it have run, and novelty reads the in-dataset populations from
    ``done`` (the results so far, by name)."""
    yield Step("in_dataset", partial(run_in_dataset, s))
    if not s.config.novelty:
        yield Step("novelty", skipped="novelty measures switched off (ExperimentsConfig.novelty)")
    elif "in_dataset" in done:
        yield Step("novelty", partial(run_novelty, s, done["in_dataset"]))
    yield Step("ensembles", partial(run_ensembles, s))
    target, why = s.transfer_target, None
    if target is None:
        target, why = default_transfer_target(s.data, s.data_root)
    if target is None:
        yield Step("transfer", skipped=why)
    else:
        yield Step("transfer", partial(run_transfer, s, target))
    if s.other_zoo is None:
        yield Step("unseen_zoo", skipped=NO_OTHER_ZOO)
    else:
        yield Step("unseen_zoo", partial(run_unseen_zoo, s, s.other_zoo))


def computed_and_drawn(compute: Callable[[], list[ExperimentResult]], out: Path) -> ExperimentResult:
    """The last result of ``compute`` (the experiment's own), its ``files`` those of every result
    ``compute`` returned, drawn under ``out``."""
    results = compute()
    files: list[Path] = []
    for r in results:
        r.files = write_outputs(r, out)
        files += r.files
    results[-1].files = files
    return results[-1]


def run_params(s: Setup, out: Path) -> dict[str, Any]:
    """The run's parameters: the experiments' parent MLflow run and ``summary.json``'s ``meta.config``."""
    c = s.config
    return {
        "ae": str(s.ae_dir),
        "baseline_ae": str(s.baseline_ae_dir),
        "zoo": str(s.zoo),
        "other_zoo": str(s.other_zoo),
        "out": str(out),
        "n": c.n,
        "finetune_epochs": s.epochs,
        "seed": c.seed,
        "dataset": s.data.name,
        "methods": list(c.methods),
        "gan_epochs": c.gan_epochs,
        "gan_steps": c.gan_steps,
        "bandwidth": DEFAULT_BANDWIDTH if c.bandwidth is None else float(c.bandwidth),
        "ensemble_sizes": list(c.ensemble_sizes),
        "ensemble_repeats": c.ensemble_repeats,
        "transfer_methods": list(c.transfer_methods),
        "decode_on_driver": s.decode_on_driver,
        "num_gpus": s.num_gpus,
    }


def new_summary(params: dict[str, Any]) -> dict[str, Any]:
    """``summary.json`` before any experiment ran: the run's parameters under ``meta.config``."""
    return {"tests": {}, "skipped": {}, "notes": {}, "meta": {"config": params, "seconds": {}}}


def record(summary: dict[str, Any], result: ExperimentResult, seconds: float) -> None:
    """An experiment's summary, tests, notes and seconds into the run's summary."""
    summary[result.name] = result.summary
    summary["tests"][result.name] = result.tests
    if result.notes:
        summary["notes"][result.name] = result.notes
    summary["meta"]["seconds"][result.name] = round(seconds, 2)
    summary.update(result.sections)


def finish(summary: dict[str, Any], files: Mapping[str, Sequence[Path]], out: Path, seconds: float) -> None:
    """``summary.json`` and ``report.md`` written and logged to the active (parent) run, with the total
    seconds and a ``skipped.<experiment>`` tag per experiment that did not run."""
    import mlflow

    summary["meta"]["seconds"]["total"] = round(seconds, 2)
    summary["meta"]["files"] = {k: [str(p.relative_to(out)) for p in v] for k, v in files.items()}
    path = out / "summary.json"
    write_json(path, summary)
    report = out / "report.md"
    write_text(report, experiments_markdown(summary, files, out))
    mlflow.log_artifact(str(path))
    mlflow.log_artifact(str(report))
    tracking.log_metrics({"seconds": summary["meta"]["seconds"]["total"]})
    for name, why in summary["skipped"].items():
        mlflow.set_tag(f"skipped.{name}", why[:500])


def run_steps(
    s: Setup, out: Path, summary: dict[str, Any], tracking_uri: str | None
) -> dict[str, list[Path]]:
    """Compute and draw each experiment in order (a tracked child run each), recording results and
    skips in ``summary``; returns the files each experiment wrote."""
    files: dict[str, list[Path]] = {}
    done: dict[str, ExperimentResult] = {}
    progress = Progress(len(EXPERIMENTS), "experiments", unit="experiments", every_s=0)
    for i, step in enumerate(steps(s, done)):
        progress.update(i)
        if step.compute is None:
            summary["skipped"][step.name] = step.skipped
            continue
        print(f"[experiments] {step.name} ({i + 1}/{len(EXPERIMENTS)}) started", flush=True)
        draw = partial(computed_and_drawn, step.compute, out)
        result, seconds = tracked_child(step.name, draw, tracking_uri)
        record(summary, result, seconds)
        done[result.name] = result
        files[result.name] = result.files
    progress.update(len(EXPERIMENTS))
    return files


def run_experiments(
    ae_dir: str,
    baseline_ae_dir: str | None,
    zoo: str,
    out: str | Path,
    config: ExperimentsConfig,
    *,
    other_zoo: str | None = None,
    tracking_uri: str | None = None,
    data: ImageData | None = None,
    data_root: str | None = None,
    transfer_target: ImageData | None = None,
    other_data: ImageData | None = None,
    num_gpus: float = 0.0,
    nested: bool = False,
) -> dict[str, Any]:
    """Run every experiment on one zoo and its autoencoders; write ``out/summary.json``,
    ``out/report.md`` and each experiment's tables and figures under ``out/<experiment>/``.

    ``summary.json``: experiment -> population -> key (str) -> {mean, std, median, ci_low, ci_high, n}
    (fractions) for ``in_dataset`` (Figure 4 and Table 1 populations; key = fine-tuning epoch),
    ``ensembles`` (key = ensemble size), ``transfer`` and ``unseen_zoo``; ``tests`` (experiment -> list
    of {population, baseline, epoch | ensemble_size, p_value, cles, n_a, n_b}), ``skipped`` (experiment
    -> why), ``notes`` and ``meta``. ``data`` defaults to the zoo's data set (its zoo.json's split),
    ``transfer_target`` to :func:`~.data.default_transfer_target`, ``other_data`` to ``other_zoo``'s
    data set. Where samples are decoded: :func:`resolve_decode_on_driver`. ``num_gpus``: GPUs per
    decoding, fine-tuning and training task (e.g. 0.25; 0 = CPU only).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = Setup(
        ae_dir,
        baseline_ae_dir,
        zoo,
        zoo_data(zoo, data_root) if data is None else data,
        config,
        check_epochs(config.finetune_epochs),
        resolve_decode_on_driver(config),
        num_gpus,
        other_zoo,
        data_root,
        transfer_target,
        other_data,
    )
    params = run_params(s, out)
    summary = new_summary(params)
    t_all = time.perf_counter()
    note = f"Sampling and evaluation on {zoo} (Figure 4, Table 1, ensembles, transfer, novelty)"
    with tracking.run(
        "experiments", params, tracking_uri, nested=nested, tags={"stage": "experiments"}, description=note
    ):
        tracking.log_zoo_input(zoo)
        files = run_steps(s, out, summary, tracking_uri)
        finish(summary, files, out, time.perf_counter() - t_all)
        tracking.describe(tracking.table1_line(summary))
    return summary
