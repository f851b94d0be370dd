"""S_KDE30code: the per-dimension KDE as the 2022 authors' code runs it, not as the paper describes it.

The paper (Section 3.2.2) fits one KDE per latent dimension and treats the dimensions as independent.
The authors' code (``sampling_auxiliaries/sample_finetune_auxiliaries.py`` in
HSG-AIML/NeurIPS_2022-Generative_Hyper_Representations) loops over the dimensions and, for each,
fits scikit-learn's ``KernelDensity(kernel="gaussian", bandwidth=0.002)`` to that column and calls
``sample(n, random_state=42)``. scikit-learn's ``sample`` draws, from a fresh ``RandomState(42)``,
first ``n`` uniforms that pick the anchor rows and then ``n`` Gaussians for the noise. With the
same random state in every dimension, every dimension picks the *same* anchor and the *same* noise
draw: sample i is anchor ``a_k(i)`` plus ``h * e_i`` on every coordinate, a noisy copy of one anchor
shifted along the diagonal. So the published S_KDE30 numbers come from re-decoded anchors, much like
our joint KDE (``kde-joint30``), not from the independent-dimension sampler that ``kde30`` implements.

:func:`sample_kde_code` reproduces that draw without the loop (one ``RandomState`` stream, the same
two draws); the tests check it against scikit-learn's per-dimension loop. The anchors are the top
30 % train checkpoints by test accuracy, as in the code (``torch.quantile(test_acc, q=0.7)`` on the
train checkpoints, model x epoch); :func:`hyperrep_ray.sampling.samplers.top_fraction` keeps the
same ranking (its count, ``ceil(0.3 M)``, can differ by one for small M or with tied accuracies).
"""

from __future__ import annotations

import numpy as np

from hyperrep_ray.sampling.checks import check_anchors, check_bandwidth, check_n, finish

__all__ = ["PUBLISHED_BANDWIDTH", "PUBLISHED_RANDOM_STATE", "sample_kde_code"]

#: The bandwidth and random state of the authors' sampling code.
PUBLISHED_BANDWIDTH = 0.002
PUBLISHED_RANDOM_STATE = 42


def sample_kde_code(
    anchors: np.ndarray, n: int, bandwidth: float = PUBLISHED_BANDWIDTH, seed: int = PUBLISHED_RANDOM_STATE
) -> np.ndarray:
    """``n`` embeddings drawn as the authors' per-dimension ``KernelDensity.sample`` loop draws them.

    ``seed`` is the loop's ``random_state`` (the authors': 42). Equal to stacking, for every column j,
    ``KernelDensity(bandwidth=h).fit(anchors[:, [j]]).sample(n, random_state=seed)``, then float32 and
    clipped to [-1, 1] like every sampler here (the code does not clip; with h = 0.002 this only
    touches anchors within a few h of +-1).
    """
    arr = check_anchors(anchors)
    n = check_n(n)
    h = check_bandwidth(bandwidth)
    rs = np.random.RandomState(int(seed))
    rows = (rs.uniform(0.0, 1.0, size=n) * arr.shape[0]).astype(np.int64)  # the anchor pick
    noise = rs.normal(0.0, h, size=n)  # then one Gaussian per sample, the same in every dimension
    return finish(arr[rows] + noise[:, None])
