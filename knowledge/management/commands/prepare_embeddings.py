"""``manage.py prepare_embeddings``: build the int8 MiniLM model for the openvino runtime (once
per machine, about 30 s), so that no worker or web request waits for it. ``make run`` and
``make test`` call it; a no-op when the model is built or another backend is configured."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from knowledge.embeddings import backend_problem


class Command(BaseCommand):
    help = "Build the embedding model the configured backend needs (openvino runtime: int8 MiniLM)."

    def handle(self, *args, **options):
        if settings.KNOWLEDGE_EMBEDDING_BACKEND != "minilm" or (
            settings.KNOWLEDGE_EMBEDDING_RUNTIME != "openvino"
        ):
            self.stdout.write("Nothing to build for this embedding backend.")
            return
        problem = backend_problem("minilm")
        if problem:
            raise CommandError(problem)
        from knowledge import minilm_openvino

        target = minilm_openvino.model_dir(settings.KNOWLEDGE_MODEL_DIR)
        if (target / "model.xml").exists():
            self.stdout.write(f"The int8 MiniLM model is ready ({target}).")
            return
        self.stdout.write(
            "Building the int8 MiniLM model for OpenVINO (once per machine, about 30 s) ..."
        )
        started = time.monotonic()
        minilm_openvino.ensure_built(settings.KNOWLEDGE_MODEL_DIR)
        self.stdout.write(f"Built {target} in {time.monotonic() - started:.0f} s.")
