"""Small inputs for the bench/ scripts that study a zoo or an autoencoder, so that ``--quick`` runs
without any: a digits zoo trained by the package's own zoo stage, and a smoke autoencoder trained by
its own autoencoder stage (Ray Train), both under a work directory and reused when already there.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import ROOT, log

sys.path.insert(0, str(ROOT))


#: Where --quick keeps its smoke zoo and autoencoder between scripts (rebuilt when missing).
DEFAULT_WORK = Path(tempfile.gettempdir()) / "hyperrep-bench-smoke"


def smoke_zoo(work: str | Path = DEFAULT_WORK, models: int = 24, epochs: int = 10) -> str:
    """A digits zoo of ``models`` models trained for ``epochs`` epochs (checkpoints 0..epochs)."""
    from hyperrep_ray.config import zoo_preset
    from hyperrep_ray.zoo.train import train_zoo

    out = Path(work) / "smoke-zoo"
    if not (out / "zoo.json").is_file():
        log(f"training a smoke digits zoo ({models} models, {epochs} epochs) in {out}")
        cfg = zoo_preset("smoke", num_models=models, epochs=epochs, population_size=12, models_per_shard=12)
        train_zoo(cfg, str(out), progress=False)
    return str(out)


def smoke_ae(work: str | Path = DEFAULT_WORK, zoo: str | None = None) -> str:
    """A smoke autoencoder (4 epochs, one Ray Train worker) of ``zoo`` (default: :func:`smoke_zoo`)."""
    from hyperrep_ray.autoencoder.stage import run_ae_stage
    from hyperrep_ray.config import ae_preset

    work = Path(work)
    out = work / "smoke-ae"
    if not (out / "anchors.npz").is_file():
        zoo = zoo or smoke_zoo(work)
        log(f"training a smoke autoencoder of {zoo} in {out}")
        cfg = ae_preset("smoke", epochs=4, num_workers=1, epochs_window=(6, 10))
        run_ae_stage(zoo, str(out), cfg, f"sqlite:///{work / 'mlflow.db'}")
    return str(out)
