"""Transfer learning (2022 paper, Table 2): samples of a source zoo's autoencoder fine-tuned on another
data set, against models trained from scratch there (B_T) and the source zoo's models fine-tuned (B_F)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hyperrep_ray.data.images import ImageData
from hyperrep_ray.evaluation.finetune import HyperLike, check_hyper
from hyperrep_ray.evaluation.ray_pipeline import baseline_finetune_zoo, baseline_from_scratch
from hyperrep_ray.evaluation.results import ExperimentResult
from hyperrep_ray.experiments.data import target_hyper
from hyperrep_ray.experiments.inputs import check_channels, check_epochs, check_methods, check_n
from hyperrep_ray.experiments.populations import concat_rows, evaluate_samples, task_batch_size
from hyperrep_ray.experiments.statistics import summarize_result
from hyperrep_ray.sampling.generate import sample_embeddings
from hyperrep_ray.sampling.samplers import SAMPLERS


def transfer(
    ae_dir: str,
    zoo: str,
    source_data: ImageData,
    target_data: ImageData,
    n: int,
    finetune_epochs: Sequence[int] = (0, 1, 5, 25),
    seed: int = 0,
    *,
    methods: Sequence[str] = ("kde30",),
    hyper: HyperLike | None = None,
    init: str | None = None,
    bandwidth: float | None = None,
    batch_size: int | None = None,
    decode_on_driver: bool = False,
    num_gpus: float = 0.0,
) -> ExperimentResult:
    """Paper Table 2: transfer from the source zoo (its autoencoder ``ae_dir``, its models ``zoo``,
    trained on ``source_data``) to ``target_data``. Populations of ``n`` models, fine-tuned on the target
    with the target's hyperparameters (``hyper``/``init``; default :func:`~.data.target_hyper`): B_T
    (random init, trained from scratch), B_F (the source zoo's models at their last epoch, test split
    first) and the samplers of ``methods`` (default S_KDE30; the paper also has neigh30, gan30).
    ``decode_on_driver``: see :func:`~.experiments.runner.resolve_decode_on_driver`."""
    n = check_n(n)
    epochs = check_epochs(finetune_epochs)
    check_methods(methods)
    check_channels(ae_dir, source_data, target_data)
    th, tinit = target_hyper(target_data)
    hyper = th if hyper is None else hyper
    init = tinit if init is None else init
    bs = task_batch_size(n, batch_size)
    frames = [
        baseline_from_scratch(n, target_data, hyper, init, epochs, seed, batch_size=bs, num_gpus=num_gpus),
        baseline_finetune_zoo(zoo, n, target_data, hyper, epochs, seed, batch_size=bs, num_gpus=num_gpus),
    ]
    for m in methods:
        z = sample_embeddings(ae_dir, n, m, seed, bandwidth)
        df = evaluate_samples(
            z, ae_dir, target_data, hyper, epochs, SAMPLERS[m], seed, bs, decode_on_driver, num_gpus
        )
        frames.append(df)
    notes = []
    if len(frames[1]) < n * len(epochs):
        notes.append(f"B_F has {len(frames[1]) // len(epochs)} models: the source zoo has no more")
    params: dict[str, Any] = {
        "ae": str(ae_dir),
        "zoo": str(zoo),
        "source": source_data.name,
        "target": target_data.name,
        "target_derived_from": target_data.preprocessing.get("derived_from"),
        "target_note": target_data.preprocessing.get("note"),
        "n": n,
        "finetune_epochs": epochs,
        "seed": seed,
        "methods": list(methods),
        "hyper": check_hyper(hyper).model_dump(exclude={"init"}),
        "init": init,
    }
    result = ExperimentResult("transfer", {}, concat_rows(frames), [], params=params, notes=notes)
    return summarize_result(result, "finetune_epoch", seed)
