"""The default embedding runtime: all-MiniLM-L6-v2 as an int8 OpenVINO model built once per
machine (knowledge/minilm_openvino.py). Its vectors must stay those of the real model, whatever
the batch, and the build must happen once, whoever asks first."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from knowledge import minilm_openvino
from knowledge.embeddings import backend_problem, get_embedder

# Not the calibration text (the demo knowledge base): what people and runbooks write.
HELD_OUT = [
    "My laptop won't connect to the office Wi-Fi since this morning's update.",
    "How do I get a licence for Visio? My manager approved it last week.",
    "The badge reader on the third floor rejects my card.",
    "Outlook asks for my password again and again and then says it cannot reach the server.",
    "Step 4: restart the print spooler service, clear the queue folder, and send a test page. "
    "If the printer still shows offline, check the IP address on its front panel against the "
    "print server's port settings and update the port when the lease changed.",
    "VPN",
    " ".join(["The disk is almost full and backups fail every night at two."] * 12),
]


@pytest.fixture
def openvino_minilm(settings):
    settings.KNOWLEDGE_EMBEDDING_BACKEND = "minilm"
    settings.KNOWLEDGE_EMBEDDING_RUNTIME = "openvino"
    assert backend_problem("minilm") is None
    return get_embedder()


def _cosines(a, b) -> np.ndarray:
    return (np.asarray(a) * np.asarray(b)).sum(axis=1)


def test_int8_vectors_agree_with_float32_torch(openvino_minilm, settings):
    settings.KNOWLEDGE_EMBEDDING_RUNTIME = "torch"
    settings.KNOWLEDGE_EMBEDDING_QUANTIZE = False  # the reference: sentence-transformers, fp32
    reference = get_embedder()
    assert reference.name == "all-MiniLM-L6-v2"
    assert openvino_minilm.name == "all-MiniLM-L6-v2-ov-int8"  # another name: re-embedded

    cos = _cosines(openvino_minilm.embed(HELD_OUT), reference.embed(HELD_OUT))
    # With the pinned chain (pyproject.toml): 0.9954-0.9971 for six texts, 0.9895 for the
    # long 170-word-piece one, mean 0.9954. Torch's dynamic int8 gave about 0.93.
    assert cos.min() >= 0.985, cos
    assert cos.mean() >= 0.995, cos


def test_static_batches_give_the_vectors_of_single_texts(openvino_minilm):
    texts = HELD_OUT + [
        f"Ticket {i}: user cannot log in after the password change" for i in range(5)
    ]
    assert len(texts) > minilm_openvino.STATIC_BATCH  # one static batch and a dynamic remainder
    together = openvino_minilm._openvino.embed(texts)
    alone = np.vstack([openvino_minilm._openvino.embed([t]) for t in texts])
    assert _cosines(together, alone).min() >= 0.998
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-3)


def test_long_and_empty_inputs(openvino_minilm):
    long_text = "network " * 3000  # far over 256 word pieces: truncated, not an error
    vectors = openvino_minilm.embed([long_text, "", "a"])
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)
    assert abs(np.linalg.norm(vectors[0]) - 1.0) < 1e-3
    assert openvino_minilm.embed([]) == []


def test_the_model_is_built_once_by_whoever_asks_first(tmp_path, monkeypatch):
    calls = []

    def fake_build(target: Path) -> Path:
        calls.append(target)
        target.mkdir(parents=True)
        (target / "model.xml").write_text("<net/>")
        return target

    monkeypatch.setattr(minilm_openvino, "build", fake_build)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(minilm_openvino.ensure_built(tmp_path)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert set(results) == {minilm_openvino.model_dir(tmp_path)}


def test_the_cache_key_follows_the_recipe(monkeypatch):
    before = minilm_openvino.cache_key()
    monkeypatch.setattr(minilm_openvino, "RECIPE", minilm_openvino.RECIPE + "-next")
    assert minilm_openvino.cache_key() != before


def test_a_missing_openvino_is_a_clear_problem(settings, monkeypatch):
    import importlib.util

    settings.KNOWLEDGE_EMBEDDING_RUNTIME = "openvino"
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name)
    )
    problem = backend_problem("minilm")
    assert "openvino" in problem and "make run" in problem


def test_an_unknown_runtime_stops_the_settings():
    env = {**os.environ, "KNOWLEDGE_EMBEDDING_RUNTIME": "gpu", "DJANGO_SETTINGS_MODULE": ""}
    done = subprocess.run(
        [sys.executable, "-c", "import agentops.settings"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "KNOWLEDGE_EMBEDDING_RUNTIME must be 'openvino' or 'torch'" in done.stderr


def test_a_damaged_model_is_built_again_and_old_ones_are_removed(tmp_path, monkeypatch, settings):
    """A truncated model file (a disk that filled up mid-write) is discarded and rebuilt;
    a build removes the models of older recipes and a killed builder's scratch files."""
    good = minilm_openvino.ensure_built(settings.KNOWLEDGE_MODEL_DIR)
    target = minilm_openvino.model_dir(tmp_path)
    shutil.copytree(good, target)
    with open(target / "model.bin", "r+b") as damaged:
        damaged.truncate(1000)
    (tmp_path / "minilm-int8-oldrecipe").mkdir()
    (tmp_path / ".build-killed").mkdir()
    builds = []

    def rebuild(into: Path) -> Path:
        builds.append(into)
        shutil.copytree(good, into)
        return into

    monkeypatch.setattr(minilm_openvino, "build", rebuild)
    model = minilm_openvino.OpenVINOMiniLM(tmp_path, threads=1)
    assert builds == [target]
    vector = model.embed(["VPN keeps dropping"])[0]
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-3
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [target.name]
