"""``manage.py train_nlu``: train the offline service-desk model and write it under var/models/."""

import time

from django.core.management.base import BaseCommand

from incidents.nlu import model


class Command(BaseCommand):
    help = (
        "Train the offline model's intent, category, priority and decision classifiers on "
        "incidents/nlu/data/train.jsonl and write them under var/models/ (a no-op when the "
        "file for this training data exists, unless --force)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="train even if built")

    def handle(self, *args, force=False, **options):
        path = model.model_path()
        if path.exists() and not force:
            self.stdout.write(f"NLU model up to date: {path}")
            return
        started = time.monotonic()
        trained = model.train()
        model.save(trained, path)
        model.get_model.cache_clear()
        examples = len(model.load_examples())
        self.stdout.write(
            self.style.SUCCESS(
                f"NLU model trained on {examples} examples in "
                f"{time.monotonic() - started:.1f} s: {path}"
            )
        )
