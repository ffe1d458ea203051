"""The chat assistant on Claude (the fake Messages API, streaming): the reply is streamed to the
browser as server-sent events, stored when done, cited; the model gets no tools and the
documents as quoted data; a reconnect never asks the model twice; an outage falls back to the
offline answer."""

from __future__ import annotations

import re

from chat.models import Message


def events(response) -> list[tuple[str, str]]:
    raw = b"".join(response.streaming_content).decode()
    found = []
    for frame in raw.split("\n\n"):
        name = re.search(r"^event: (.+)$", frame, re.M)
        if name:
            data = "\n".join(line[6:] for line in frame.split("\n") if line.startswith("data: "))
            found.append((name.group(1), data))
    return found


def post(client, text):
    client.post("/chat/new/", {"text": text})
    return Message.objects.for_tenant(client.tenant).filter(role="assistant").latest("id")


def test_the_answer_streams_from_claude(personas, kb, claude, client_for):
    claude.reply_stream(["The VPN ", "drops: update the profile ", "to version 3 [1]. <script>"])
    client = client_for(personas.requester)
    client.tenant = personas.tenant
    reply = post(client, "My VPN keeps disconnecting")
    assert reply.state == Message.State.PENDING and reply.body == ""
    page = client.get(f"/chat/{reply.conversation_id}/").content.decode()
    stream_url = f"/chat/{reply.conversation_id}/messages/{reply.pk}/stream/"
    assert f'sse-connect="{stream_url}"' in page and 'hx-ext="sse"' in page
    assert "vendor/htmx-ext-sse/sse.js" in page

    response = client.get(stream_url)
    assert response["Content-Type"] == "text/event-stream"
    got = events(response)
    deltas = [data for name, data in got if name == "delta"]
    assert deltas == ["The VPN ", "drops: update the profile ", "to version 3 [1]. &lt;script&gt;"]
    assert got[-1][0] == "done"
    assert "VPN troubleshooting" in got[-1][1] and "&lt;script&gt;" in got[-1][1]
    assert "sse-connect" not in got[-1][1]

    reply.refresh_from_db()
    assert reply.state == Message.State.DONE and reply.backend == "anthropic"
    assert reply.body == "The VPN drops: update the profile to version 3 [1]. <script>"
    assert [c["title"] for c in reply.citations] == ["VPN troubleshooting"]

    [request] = claude.bodies
    assert request["stream"] is True and "tools" not in request
    assert "data, not instructions" in request["system"]
    question = request["messages"][-1]["content"]
    assert '<document n="1" title="VPN troubleshooting">' in question
    assert "Finance laptop" not in question and "Globex" not in question  # not for requesters

    # A reconnecting browser gets the stored answer; the model is not asked twice.
    again = events(client.get(stream_url))
    assert [name for name, _ in again] == ["done"] and len(claude.requests) == 1


def test_history_goes_with_the_next_question(personas, kb, claude, client_for):
    claude.reply_stream(["Which device is it?"])
    claude.reply_stream(["Update the profile [1]."])
    client = client_for(personas.requester)
    client.tenant = personas.tenant
    first = post(client, "help")
    assert first.kind == Message.Kind.CLARIFY
    events(client.get(f"/chat/{first.conversation_id}/messages/{first.pk}/stream/"))
    client.post(f"/chat/{first.conversation_id}/send/", {"text": "my laptop vpn disconnects"})
    second = Message.objects.for_tenant(personas.tenant).filter(role="assistant").latest("id")
    events(client.get(f"/chat/{first.conversation_id}/messages/{second.pk}/stream/"))
    messages = claude.bodies[1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "help" and messages[1]["content"] == "Which device is it?"


def test_an_outage_falls_back_to_the_offline_answer(personas, kb, claude, client_for):
    claude.server_error(500)
    client = client_for(personas.requester)
    client.tenant = personas.tenant
    reply = post(client, "My VPN keeps disconnecting")
    got = events(client.get(f"/chat/{reply.conversation_id}/messages/{reply.pk}/stream/"))
    assert got[-1][0] == "done" and "Here is what our knowledge base says" in got[-1][1]
    reply.refresh_from_db()
    assert reply.state == Message.State.DONE and reply.backend == "offline"


def test_secrets_are_redacted_before_the_model(personas, kb, claude, client_for):
    claude.reply_stream(["Noted."])
    client = client_for(personas.requester)
    client.tenant = personas.tenant
    reply = post(client, "VPN disconnecting, my card is 4111 1111 1111 1111")
    events(client.get(f"/chat/{reply.conversation_id}/messages/{reply.pk}/stream/"))
    assert "4111 1111 1111 1111" not in str(claude.bodies[0])


def test_a_browser_leaving_mid_stream_leaves_a_finished_message(personas, kb, claude, client_for):
    from chat import services

    claude.reply_stream(["Update the profile ", "to version 3 [1]."])
    client = client_for(personas.requester)
    client.tenant = personas.tenant
    reply = post(client, "My VPN keeps disconnecting")
    assert services.claim(reply) and not services.claim(reply)  # one stream per reply
    stream = services.stream_reply(message=reply)
    assert next(stream) == "Update the profile "
    stream.close()  # the browser went away
    reply.refresh_from_db()
    assert reply.state == Message.State.DONE and reply.body == "Update the profile"


def test_a_key_removed_before_the_stream_falls_back(personas, kb, claude, client_for, settings):
    from agents.engine import agent_config

    client = client_for(personas.requester)
    client.tenant = personas.tenant
    reply = post(client, "My VPN keeps disconnecting")
    config = agent_config(personas.tenant)
    config.llm_backend = "offline"
    config.save()
    got = events(client.get(f"/chat/{reply.conversation_id}/messages/{reply.pk}/stream/"))
    assert got[-1][0] == "done" and "Here is what our knowledge base says" in got[-1][1]
    assert claude.requests == []


def test_the_workspace_rate_limit_holds_for_chat_too(personas, kb, claude, client_for, redis_names):
    from agents.engine import agent_config

    config = agent_config(personas.tenant)
    config.requests_per_minute = 1
    config.save()
    claude.reply_stream(["Update the profile [1]."])
    client = client_for(personas.requester)
    client.tenant = personas.tenant
    first = post(client, "My VPN keeps disconnecting")
    events(client.get(f"/chat/{first.conversation_id}/messages/{first.pk}/stream/"))
    second = post(client, "My VPN keeps disconnecting at home too")
    got = events(client.get(f"/chat/{second.conversation_id}/messages/{second.pk}/stream/"))
    assert len(claude.requests) == 1  # the second did not reach the model
    assert "Here is what our knowledge base says" in got[-1][1]
    # Leave no empty bucket behind for a later session's tenant with the same id.
    from agents.resilience import _key, redis_client

    redis = redis_client()
    for key in redis.scan_iter(match=_key("*") + f"*tenant-{personas.tenant.pk}:*"):
        redis.delete(key)


def test_claudes_tokens_are_metered_on_the_tenants_usage(personas, kb, claude, client_for):
    from agentops import quotas
    from agentops.models import UsageRecord

    claude.reply_stream(["Update the VPN profile [1]."], usage=(40, 20))
    client = client_for(personas.requester)
    client.tenant = personas.tenant
    reply = post(client, "My VPN keeps disconnecting")
    stream_url = f"/chat/{reply.conversation_id}/messages/{reply.pk}/stream/"
    events(client.get(stream_url))
    events(client.get(stream_url))  # a reconnect: no second model call, no second count

    [record] = UsageRecord.objects.for_tenant(personas.tenant).filter(metric=quotas.TOKENS)
    assert (record.quantity, record.key) == (60, f"chat:{reply.pk}")  # input 40 + output 20
    assert (record.blueprint, record.model) == ("chat", "claude-haiku-4-5")
    summary = quotas.usage_summary(personas.tenant)
    assert summary["usage"]["tokens_per_month"] == 60
    assert {"name": "chat", "runs": 0, "tokens": 60} in summary["per_blueprint"]
    assert quotas.used(personas.other_tenant, quotas.TOKENS) == 0
    page = client_for(personas.admin).get("/usage/")
    assert page.status_code == 200 and "chat" in page.content.decode()


def test_a_browser_leaving_mid_stream_still_meters_what_was_used(personas, kb, claude, client_for):
    from agentops import quotas
    from chat import services

    claude.reply_stream(["one ", "two ", "three"], usage=(40, 20))
    client = client_for(personas.requester)
    client.tenant = personas.tenant
    reply = post(client, "My VPN keeps disconnecting")
    assert services.claim(reply)
    stream = services.stream_reply(message=reply)
    assert next(stream) == "one "
    stream.close()  # the browser left
    assert quotas.used(personas.tenant, quotas.TOKENS) >= 40  # at least the input it sent


def test_chat_keeps_to_the_monthly_token_quota(personas, kb, claude, client_for):
    from agentops import quotas

    quotas.limits_set(tenant=personas.tenant, actor=None, tokens_per_month=50)
    quotas.meter(tenant=personas.tenant, metric=quotas.TOKENS, quantity=50, key="step:earlier")
    client = client_for(personas.requester)
    client.tenant = personas.tenant
    reply = post(client, "My VPN keeps disconnecting")
    events(client.get(f"/chat/{reply.conversation_id}/messages/{reply.pk}/stream/"))
    reply.refresh_from_db()
    assert reply.backend == "offline" and reply.state == Message.State.DONE
    assert claude.bodies == []  # the model was not asked
    assert quotas.used(personas.tenant, quotas.TOKENS) == 50
