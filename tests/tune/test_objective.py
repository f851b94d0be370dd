"""The objective hook: fresh sampled accuracy at the epochs that measured R^2, the latest value between."""

import numpy as np

from hyperrep_ray.tune.objective import OBJECTIVE, R2_METRIC, SampledAccuracyHook, bandwidth_key


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
