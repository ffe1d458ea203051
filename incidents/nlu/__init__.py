"""The service-desk language model: intents, slots and decisions learned from labelled tickets.

``incidents.nlu.model`` trains and loads the classifiers (scikit-learn, deterministic),
``incidents.nlu.slots`` extracts who, what device, which product, which site and how many
people, ``incidents.nlu.analyser`` turns both into the analysis the offline LLM backend acts
on, and ``incidents.nlu.evaluation`` runs the held-out agent evaluation (``eval_agent``).
"""
