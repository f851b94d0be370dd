"""Tune saves the sweep's MLflow callback with the experiment: it must unpickle by its stable path."""

import pickle
import subprocess
import sys

from ray.tune import Callback

from hyperrep_ray.tune.mlflow_callback import sweep_logger


def test_the_callback_pickles_by_reference_and_without_its_client(tmp_path):
    logger = sweep_logger("sqlite:///x.db", "1", "parent")
    assert isinstance(logger, Callback)
    data = pickle.dumps(logger)
    assert b"hyperrep_ray.tune.mlflow_callback" in data and b"MlflowSweepLogger" in data
    back = pickle.loads(data)
    assert (back.tracking_uri, back.experiment_id, back.parent_run_id) == ("sqlite:///x.db", "1", "parent")
    assert back._runs == {} and back._client is None
    # a fresh process (a restored sweep) finds the class through the module's path alone
    (tmp_path / "cb.pkl").write_bytes(data)
    code = (
        "import pickle, sys; cb = pickle.load(open(sys.argv[1], 'rb')); "
        "print(type(cb).__module__, cb.parent_run_id)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "cb.pkl")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["hyperrep_ray.tune.mlflow_callback", "parent"]
