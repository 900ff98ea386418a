"""What executor Python workers keep between tasks.

This lives in an importable module on purpose: job.py runs as `__main__` on the
driver, and cloudpickle ships `__main__`'s globals by value with every task, so a
cache defined there would be new (and the model rebuilt) for every task. A module
of the installed package is imported once per worker process and kept.
"""

import fruits

# One featurizer per Python worker, keyed by the model and settings it was built with.
_FEATURIZER: dict[tuple, fruits.Featurizer] = {}
# One PCA per Python worker, keyed by its bytes' digest.
_PCA: dict[str, fruits._native.Pca] = {}


def featurizer(broadcast, source, settings, digest):
    """The worker's featurizer, built from the broadcast bytes on first use."""
    # Worker-side Broadcast objects carry no id: key by what the driver sent.
    key = (source, digest, tuple(sorted(settings.items())))
    if key not in _FEATURIZER:
        _FEATURIZER.clear()
        _FEATURIZER[key] = fruits.Featurizer(broadcast.value, source, **settings)
    return _FEATURIZER[key]


def pca(broadcast, digest):
    """The worker's PCA (`fruits._native.Pca`), decoded from the broadcast bytes on first use."""
    if digest not in _PCA:
        _PCA.clear()
        _PCA[digest] = fruits._native.Pca.from_bytes(broadcast.value)
    return _PCA[digest]
