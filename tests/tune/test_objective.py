"""The objective hook: fresh values at the epochs that measured R^2, the latest between; novel accuracy
and the R^2 constraint."""

import numpy as np
import pytest

from hyperrep_ray.tune.objective import (
    OBJECTIVE,
    R2_METRIC,
    R2_PENALTY,
    RAW_OBJECTIVE,
    SampledAccuracyHook,
    bandwidth_key,
)


class CountingHook(SampledAccuracyHook):
    """The hook with its measurement replaced by a counter (the caching is what is tested)."""

    def evaluate(self, model):
        self.calls = getattr(self, "calls", 0) + 1
        return {OBJECTIVE: 0.1 * self.calls, "best_bandwidth": 0.01}


def hook():
    return CountingHook(np.zeros((3, 4), np.float32), np.zeros(3), None, None, "tanh", 1)


def test_measures_at_r2_epochs_and_repeats_the_latest_between():
    h = hook()
    first = h(None, 1, {"train_loss": 1.0})  # first epoch of a (resumed) run: measured
    assert first[OBJECTIVE] == 0.1 and first["objective_epoch"] == 1
    assert h(None, 2, {"train_loss": 1.0})[OBJECTIVE] == 0.1 and h.calls == 1
    at_r2 = h(None, 3, {R2_METRIC: 0.7})
    assert at_r2[OBJECTIVE] == 0.2 and at_r2["objective_epoch"] == 3 and R2_METRIC not in at_r2
    between = h(None, 4, {})
    assert between[R2_METRIC] == 0.7 and between["objective_epoch"] == 3 and h.calls == 2


def test_fresh_copy_forgets_the_state_and_copies_the_anchors():
    h = hook()
    h(None, 1, {})
    anchors = np.zeros((3, 4), np.float32)
    anchors.setflags(write=False)  # as from Ray's object store
    h.anchors_w = anchors
    f = h.fresh()
    assert f.last is None and f.anchors_w.flags.writeable and f.anchors_w is not anchors


def test_bandwidth_keys_have_three_significant_digits():
    assert (
        bandwidth_key(0.002) == "sampled_accuracy_h0.002"
        and bandwidth_key(0.0123456) == "sampled_accuracy_h0.0123"
    )


def test_novel_accuracy_counts_copies_of_a_train_checkpoint_as_zero():
    from hyperrep_ray.tune.objective import novel_accuracy

    ref = np.array([[1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0, 0, 0]], bool)  # train checkpoints' errors
    copy = ref[0]  # accuracy 0.75, novelty 0
    new = np.array([0, 0, 0, 0, 1, 1, 0, 0], bool)  # accuracy 0.75, novelty 1
    value, share, accuracy = novel_accuracy(np.stack([copy, new]), ref, required=0.5)
    assert (value, share, accuracy) == (0.375, 0.5, 0.75)
    assert novel_accuracy(np.stack([copy, new]), ref, required=0.0)[0] == 0.75, "novelty 0 meets 0"


def test_a_trial_below_the_minimum_r2_is_penalised():
    h = SampledAccuracyHook(np.zeros((3, 4), np.float32), np.zeros(3), None, None, "tanh", 1, min_r2=0.1)
    assert h.constrained({OBJECTIVE: 0.6, R2_METRIC: 0.05})[OBJECTIVE] == pytest.approx(0.6 - R2_PENALTY)
    met = h.constrained({OBJECTIVE: 0.6, R2_METRIC: 0.2})
    assert met[OBJECTIVE] == 0.6 and met[RAW_OBJECTIVE] == 0.6 and met["r2_constraint_met"] == 1.0
    assert h.constrained({OBJECTIVE: 0.6, R2_METRIC: float("nan")})[OBJECTIVE] < 0, "NaN R^2 misses it"
