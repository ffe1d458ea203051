"""The learned offline model (incidents/nlu): deterministic, multilingual, and not fooled into
the wrong actions issue 13 reports (a room-wide outage fixed on one laptop, a colleague's
account unlocked on the requester, 2 MB of filler mentioning VPN "resolved")."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from agents.llm.base import ToolSpec
from agents.llm.offline import OfflineBackend
from incidents.nlu import analyser, kb, model
from incidents.nlu.slots import extract
from incidents.pipeline import SERVICE_DESK_TOOLS, TRIAGE_TOOL

CONTEXT = "Requester: robin@acme.example\nRequester devices: LT-0042 (ThinkPad T14)\n"


def tools() -> list[ToolSpec]:
    """Every service-desk fix with the real registry's schemas: the model chooses among all."""
    from agents.tools import registry

    known = {tool.name for tool in registry.all_tools()}
    return registry.specs([name for name in SERVICE_DESK_TOOLS if name in known])


def plan(text: str):
    response = OfflineBackend().complete(
        system="You are the resolution agent.",
        messages=[{"role": "user", "content": f"{CONTEXT}Ticket INC00000099: {text}"}],
        tools=tools(),
    )
    return [(use.name, use.input) for use in response.tool_uses]


def triage(text: str) -> dict:
    response = OfflineBackend().complete(
        system="You are the triage agent.",
        messages=[{"role": "user", "content": f"Ticket INC00000099 (Service request):\n{text}"}],
        tools=[TRIAGE_TOOL],
        tool_choice=TRIAGE_TOOL.name,
    )
    return response.tool_uses[0].input


# --------------------------------------------------------------------------- the three wrong actions


def test_room_wide_wifi_outage_is_an_incident_not_a_device_fix():
    text = (
        "Wi-Fi dead in the Saturn training room\n"
        "None of the 14 people in the training can get on the wireless since lunch."
    )
    assert triage(text)["decision"] == "incident"
    assert plan(text) == []  # no diagnostic, no adapter reset on the requester's laptop


def test_an_account_named_for_someone_else_is_not_acted_on():
    text = "Please unlock Bob's account\nBob from logistics can't sign in, his account is locked."
    assert triage(text)["decision"] == "human"
    assert plan(text) == []  # above all: no unlock_account(robin@acme.example)


def test_an_address_of_someone_else_is_not_acted_on():
    text = "Locked account\nCan you unlock kim.doe@acme.example? She is locked out."
    assert plan(text) == []


def test_two_megabytes_of_filler_mentioning_vpn_is_not_auto_resolved():
    filler = ("vpn " + "lorem ipsum dolor sit amet consectetur adipiscing elit " * 8) * 4600
    assert len(filler) > 2_000_000
    result = triage(f"VPN\n{filler}")
    assert result["decision"] == "human"
    assert plan(f"VPN\n{filler}") == []


# --------------------------------------------------------------------------- decisions


@pytest.mark.parametrize(
    ("text", "decision", "tools"),
    [
        (
            "Konto gesperrt\nMein Konto ist seit heute früh gesperrt, bitte entsperren.",
            "auto_resolve",
            ["unlock_account"],
        ),
        (
            "VPN en panne\nLe VPN se coupe avec un délai d'attente depuis ce matin.",
            "auto_resolve",
            ["push_vpn_config"],
        ),
        (
            "Contraseña caducada\nMi contraseña caducó, necesito una nueva.",
            "auto_resolve",
            ["reset_password"],
        ),
        (
            "Wifi valt weg\nDe wifi op mijn laptop valt elke paar minuten weg.",
            "auto_resolve",
            ["run_diagnostic", "reset_network_adapter"],
        ),
        (
            "acount lokced\ni cant log in its lokced after i typed the wrong pasword",
            "auto_resolve",
            ["unlock_account"],
        ),
        (
            "pasword expird\npasword expird over the wekend, need a new one",
            "auto_resolve",
            ["reset_password"],
        ),
    ],
)
def test_multilingual_and_misspelt_requests_get_the_fix(text, decision, tools):
    assert triage(text)["decision"] == decision
    assert [name for name, _ in plan(text)] == tools


@pytest.mark.parametrize(
    ("text", "decision"),
    [
        ("How do I clear a paper jam?\nThe printer by my desk says jam in tray 2.", "answer"),
        ("The fridge in the kitchen is leaking", "redirect"),
        ("Mon bulletin de salaire est faux\nIl manque ma prime.", "redirect"),
        ("Ransom note on the file share\nEvery file has a .crypt extension now.", "human"),
    ],
)
def test_answers_redirects_and_people(text, decision):
    assert triage(text)["decision"] == decision
    assert plan(text) == []


def test_a_how_to_answer_cites_the_knowledge_base_section():
    path = triage("How do I get rid of a paper jam in the printer?")["suggested_path"]
    assert "Printer troubleshooting" in path


def test_low_confidence_goes_to_a_person(monkeypatch):
    real = model.get_model()

    class Unsure:
        def predict(self, text):
            p = real.predict(text)
            return model.Prediction(**{**p.__dict__, "decision_p": 0.3})

    monkeypatch.setattr(analyser, "get_model", lambda: Unsure())
    result = triage("Account locked\nPlease unlock my account.")
    assert result["decision"] == "human" and result["confidence"] == 0.3


def test_slots_find_sites_many_users_and_third_parties():
    room = extract("Nobody in meeting room Everest has Wi-Fi", CONTEXT)
    assert room.many_users and "room everest" in room.site
    bob = extract("Please reset my colleague's password", CONTEXT)
    assert bob.third_party and bob.email == "robin@acme.example"
    own = extract("Please reset my password", CONTEXT)
    assert not own.third_party and not own.many_users


# --------------------------------------------------------------------------- the model itself


TEXTS = [
    "VPN keeps timing out from home",
    "Outlook: how do I share my calendar?",
    "Nobody on floor 2 has network",
    "Mon compte est bloqué",
    "who do I ask about my pension",
]


def test_two_trainings_give_identical_predictions():
    first, second = model.train(), model.train()
    assert [first.predict(t) for t in TEXTS] == [second.predict(t) for t in TEXTS]


def test_a_repeated_text_is_answered_from_the_recent_predictions():
    fitted = model.train()
    first = fitted.predict(TEXTS[0])
    assert fitted.predict(TEXTS[0]) is first  # the plan asks what triage asked: kept
    for text in TEXTS[1:]:
        assert fitted.predict(text) == fitted._predict(text)
    for i in range(model.RECENT_PREDICTIONS):  # only the last few are kept
        fitted.predict(f"printer {i} jams")
    assert len(fitted._recent) == model.RECENT_PREDICTIONS
    assert fitted.predict(TEXTS[0]) is not first and fitted.predict(TEXTS[0]) == first
    import pickle

    copy = pickle.loads(pickle.dumps(fitted))  # noqa: S301 - our own object: no cache in a file
    assert "_recent" not in copy.__dict__ and copy.predict(TEXTS[0]) == first


def test_train_nlu_writes_the_model_that_is_then_loaded(tmp_path, settings):
    settings.NLU_MODEL_DIR = str(tmp_path)
    model.get_model.cache_clear()
    stale = tmp_path / "nlu-0000000000000000.pickle"  # built from older training data
    stale.write_bytes(b"old")
    try:
        call_command("train_nlu")
        [built] = tmp_path.glob("nlu-*.pickle")  # the stale one is gone
        assert built == model.model_path()
        loaded = model.get_model()
        assert loaded.source_hash == model.data_hash()
        assert model.load(built).predict(TEXTS[0]) == loaded.predict(TEXTS[0])
    finally:
        model.get_model.cache_clear()


def test_a_corrupt_model_file_is_retrained_in_process(tmp_path, settings):
    settings.NLU_MODEL_DIR = str(tmp_path)
    model.get_model.cache_clear()
    try:
        model.model_path().write_bytes(b"not a pickle")
        assert model.get_model().predict(TEXTS[0]).intent == "vpn"
        assert model.load(model.model_path()).source_hash == model.data_hash()
    finally:
        model.get_model.cache_clear()


def test_training_examples_are_complete_and_varied():
    examples = model.load_examples()
    assert len(examples) >= 300
    assert {e["decision"] for e in examples} == set(
        TRIAGE_TOOL.input_schema["properties"]["decision"]["enum"]
    )
    assert kb.sections()  # the knowledge base the answers cite is there


def test_a_request_made_for_many_people_is_no_incident_and_no_self_service_fix():
    text = "MFA for the support team\nPlease turn on MFA for all 25 people in customer support."
    assert triage(text)["decision"] == "human"
    assert plan(text) == []


def test_one_text_is_vectorised_exactly_as_sklearn_does_it():
    """The model's own TF-IDF of one text (no sklearn plumbing per call) is sklearn's row, for
    the training texts and for odd input (empty, unknown script, huge, nothing in the
    vocabulary); other feature extractors fall back to sklearn."""
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.pipeline import FeatureUnion

    nlu = model.get_model()
    texts = [e["text"] for e in model.load_examples()[:400]]
    texts += ["", "   ", "ü ñ 日本語 💥", "vpn " * 3000, "zzqx qqzx", "Unlock kim@acme.test NOW!!!"]
    for text in texts:
        mine = nlu.vectorise(model.normalise(text))
        theirs = nlu.features.transform([model.normalise(text)])
        assert mine.shape == theirs.shape
        assert np.allclose(mine.toarray(), theirs.toarray(), rtol=0, atol=1e-12), text[:80]
    counts = FeatureUnion([("c", CountVectorizer().fit(["alpha beta", "beta gamma"]))])
    other = model.NluModel(features=counts, heads={}, source_hash="", decision_given_intent={})
    same = counts.transform(["beta gamma gamma"]).toarray()
    assert np.array_equal(other.vectorise("beta gamma gamma").toarray(), same)
