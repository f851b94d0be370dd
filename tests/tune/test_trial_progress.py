"""The sweep's progress callback: a line per trial with the time left, one per finished trial, and it
survives the pickling Tune does with the experiment state."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

from hyperrep_ray.tune.trial_progress import trial_progress


def test_trial_lines_and_pickle_round_trip(capsys):
    cb = trial_progress(epochs=3, trials=2, run=None)
    trial = SimpleNamespace(trial_id="abc")
    for epoch in (1, 2, 3):
        cb.on_trial_result(0, [], trial, {"epoch": epoch})
    cb.on_trial_complete(0, [], trial)
    out = capsys.readouterr().out
    assert "tune trial trial_abc: 3/3 epochs, done in" in out
    assert "tune: 1/2 trials" in out
    again = pickle.loads(pickle.dumps(cb))
    assert type(again).__name__ == "TrialProgress" and again.epochs == 3 and again.per_trial == {}
