"""Bad input never jams anyone: every webhook route and the web chat API fuzzed with
hypothesis (real payloads from tests/fakes, mutated; signed so the parser is reached,
and forged), on SQLite and PostgreSQL. Never a 5xx; a refused request stores nothing.
Then the cases that once jammed someone: a NUL byte or a lone surrogate in a web chat
message, an unstorable row in a group commit, a data error while processing, a signed
Twilio request replayed with a shifted parameter boundary, and media on a foreign host
(which must never receive the account's credentials)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bot.app import Kiezstimme
from bot.storage.models import InboundMessage, OutboundMessage, Resident
from bot.values import Inbound, Rejected
from tests import test_channels
from tests.fakes.listener import RecordingListener
from tests.fakes.telegram import make_callback_update, make_photo_update, make_text_update, make_voice_update
from tests.fakes.twilio import inbound_sms_params, inbound_whatsapp_params, new_sid, sign, status_callback_params
from tests.test_channels import PUBLIC, SECRET, SMS_FROM, WA_FROM, Stack

fakes, stack = test_channels.fakes, test_channels.stack  # the running bot with its fakes (fixtures)

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=False,
)
FORM = "application/x-www-form-urlencoded"
TWILIO_ROUTES = ["/webhooks/twilio/sms", "/webhooks/twilio/whatsapp", "/webhooks/twilio/status"]

# --- the signature Twilio computes, on bytes (so forms that are not UTF-8 can be signed too) -------


def sign_pairs(token: str, url: str, pairs: list[tuple[bytes, bytes]]) -> str:
    """X-Twilio-Signature: HMAC-SHA1 over the URL and every parameter sorted by name (values
    sorted too), each name followed by its value — Twilio's documented algorithm."""
    values: dict[bytes, set[bytes]] = {}
    for key, value in pairs:
        values.setdefault(key, set()).add(value)
    data = url.encode() + b"".join(k + v for k in sorted(values) for v in sorted(values[k]))
    return base64.b64encode(hmac.new(token.encode(), data, hashlib.sha1).digest()).decode()


def form_pairs(body: bytes) -> list[tuple[bytes, bytes]]:
    pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


def sign_raw(token: str, url: str, body: bytes) -> str:
    return sign_pairs(token, url, form_pairs(body))


def test_the_byte_signature_is_twilios() -> None:
    params = inbound_sms_params("+4915112345678", SMS_FROM, "Grüße & 🙂 = +1")
    pairs = [(k.encode(), str(v).encode()) for k, v in params.items()]
    assert sign_pairs("tok", PUBLIC + "/x", pairs) == sign("tok", PUBLIC + "/x", params)


# --- strategies ------------------------------------------------------------------------------------

NASTY = [
    "",
    "\x00",
    "Hallo\x00Welt",
    "\ud800",
    "a\udfffb",
    "\ud83d\ude00",
    "1" * 5000,
    "SM" + "0" * 32 + "\n",
    " +4915112345678",
    "+4915112345678\n",
    "whatsapp:",
    "-1",
    "9" * 30,
    "NaN",
    "%ZZ",
    "&=&=",
    "\u202e\u0645",
    "<Response/>",
    "x" * 70,
]
text_values = st.one_of(st.sampled_from(NASTY), st.text(max_size=40))
form_values = st.one_of(text_values.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=24))
FORM_KEYS = [
    "MessageSid",
    "SmsSid",
    "SmsMessageSid",
    "AccountSid",
    "From",
    "To",
    "Body",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "MessageStatus",
    "ErrorCode",
    "WaId",
    "ButtonPayload",
    "MessageType",
    "NumSegments",
    "Latitude",
]
form_keys = st.one_of(st.sampled_from(FORM_KEYS), st.text(max_size=12)).map(
    lambda t: t.encode("utf-8", "surrogatepass")
)
form_ops = st.lists(
    st.tuples(st.sampled_from(["set", "drop", "repeat"]), form_keys, form_values),
    min_size=1,
    max_size=4,
)


def mutate_form(pairs: list[tuple[bytes, bytes]], ops: list[tuple[str, bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    pairs = list(pairs)
    for op, key, value in ops:
        if op == "set":
            pairs = [(k, v) for k, v in pairs if k != key] + [(key, value)]
        elif op == "drop":
            pairs = [(k, v) for k, v in pairs if k != key]
        else:
            pairs.append((key, value))
    return pairs


def real_form(kind: str, stack: Stack) -> tuple[str, dict[str, Any]]:
    number = "+49151" + str(secrets.randbelow(10**8)).zfill(8)
    if kind == "sms":
        return "/webhooks/twilio/sms", inbound_sms_params(number, SMS_FROM, "Hallo")
    if kind == "mms":
        url = stack.tw.media_url("ME1/photo.jpg")
        return "/webhooks/twilio/sms", inbound_sms_params(number, SMS_FROM, "Foto", media=[(url, "image/jpeg")])
    if kind == "whatsapp":
        return "/webhooks/twilio/whatsapp", inbound_whatsapp_params(number[1:], "Ada", "Hallo", to=WA_FROM)
    return "/webhooks/twilio/status", status_callback_params(new_sid(), "delivered", 30007)


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([2**63, -(2**63) - 1, 2**63 - 1, 0, -1]),
    st.floats(allow_nan=False, allow_infinity=False),
    text_values,
)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _slots(node: Any, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) of a JSON document, to replace one value anywhere in it."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in list(items):
        found.append((node, key))
        _slots(value, found)
    return found


def deep(depth: int) -> bytes:
    return b'{"update_id": 1, "message": ' + b"[" * depth + b"]" * depth + b"}"


RAW_BODIES = [
    b"",
    b"\xff\xfe\xfd",
    b"{",
    b"[]",
    b"null",
    deep(50_000),
    b"[" * 200_000,
    b'{"update_id": ' + b"9" * 5000 + b"}",
    b'{"update_id": 1e999}',
    b'{"update_id": 12, "message": "\\ud800"}',
    b"Body=%FF%FE&From=%2B49151&MessageSid=SM1",
    b"a=" + b"%00" * 300,
    b"&".join(b"k%d=v" % i for i in range(500)),
]
CONTENT_TYPES = [
    FORM,
    FORM + "; charset=utf-8",
    FORM + "; charset=no-such-charset",
    FORM + "; charset=utf-16",
    "application/json",
    "application/json; charset=latin-1",
    "application/json; charset=bogus",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
]


async def count(kz: Kiezstimme, model: type = InboundMessage) -> int:
    async with kz.db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(model))).scalar_one()


async def post(http: TestClient, path: str, body: bytes, headers: dict[str, str]) -> int:
    resp = await http.post(path, data=body, headers={"Connection": "close", **headers})
    await resp.read()
    return resp.status


# --- fuzzing every route ------------------------------------------------------------------------------


@FUZZ
@given(
    kind=st.sampled_from(["sms", "mms", "whatsapp", "status"]),
    ops=form_ops,
    charset=st.sampled_from(["", "; charset=utf-8"]),
)
async def test_fuzz_signed_twilio_forms(
    stack: Stack, kind: str, ops: list[tuple[str, bytes, bytes]], charset: str
) -> None:
    """Real Twilio forms with fields set, dropped or repeated (NUL, lone surrogates as CESU bytes,
    invalid UTF-8, 5,000 digits, shifted ids …), signed so the parser is reached."""
    path, params = real_form(kind, stack)
    pairs = mutate_form([(k.encode(), str(v).encode()) for k, v in params.items()], ops)
    body = urlencode(pairs).encode("ascii")
    headers = {
        "Content-Type": FORM + charset,
        "X-Twilio-Signature": sign_pairs(stack.tw.auth_token, PUBLIC + path, pairs),
    }
    before = await count(stack.kz)
    status = await post(stack.http, path, body, headers)
    assert status < 500
    if status >= 300:
        assert await count(stack.kz) == before, "a refused request stored something"


@FUZZ
@given(
    path=st.sampled_from(TWILIO_ROUTES),
    body=st.one_of(st.sampled_from(RAW_BODIES), st.binary(max_size=200)),
    content_type=st.sampled_from(CONTENT_TYPES),
    signature=st.one_of(
        st.none(),
        st.sampled_from(["", "x", "é", "A" * 28 + "=", "=" * 200]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=40),
    ),
    mutate=st.booleans(),
)
async def test_fuzz_forged_twilio_requests(
    stack: Stack, path: str, body: bytes, content_type: str, signature: str | None, mutate: bool
) -> None:
    """Unsigned and forged requests (random bodies, a real form signed for something else):
    403 (or 415 for the wrong content type) before anything is decoded; nothing stored."""
    if mutate:  # a genuine form, its signature made for another body
        _, params = real_form("sms", stack)
        signature = sign(stack.tw.auth_token, PUBLIC + path, params)
        body = urlencode({**params, "Body": "changed"}).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    before = await count(stack.kz)
    status = await post(stack.http, path, body, headers)
    assert status in (400, 403, 413, 415), status
    assert await count(stack.kz) == before


@FUZZ
@given(
    kind=st.sampled_from(["text", "callback", "voice", "photo"]),
    where=st.integers(min_value=0, max_value=10_000),
    value=json_values,
    raw=st.one_of(st.none(), st.sampled_from(RAW_BODIES)),
)
async def test_fuzz_telegram_updates(stack: Stack, kind: str, where: int, value: Any, raw: bytes | None) -> None:
    """Real updates with one value anywhere replaced (huge or out-of-range ids, NUL bytes, lone
    surrogates, wrong types, nested values), and raw bodies (deeply nested JSON, 5,000 digits)."""
    chat = secrets.randbelow(10**9) + 1
    update = {
        "text": lambda: make_text_update(stack.next_id(), chat, "Hallo\x00"),
        "callback": lambda: make_callback_update(stack.next_id(), chat, "yes", message_id=1),
        "voice": lambda: make_voice_update(stack.next_id(), chat, "file-1", duration=3, file_size=1000),
        "photo": lambda: make_photo_update(stack.next_id(), chat, "file-2"),
    }[kind]()
    slots = _slots(update, [])
    container, key = slots[where % len(slots)]
    container[key] = value
    body = raw if raw is not None else json.dumps(update).encode()
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
    before = await count(stack.kz)
    status = await post(stack.http, "/webhooks/telegram", body, headers)
    assert status < 500
    if status != 200:
        assert await count(stack.kz) == before
    async with stack.kz.db.read() as conn:
        ids = (await conn.execute(select(InboundMessage.provider_id))).scalars().all()
    assert all(len(i) <= 20 for i in ids), "only 64-bit update ids are taken"


def client_ids() -> st.SearchStrategy[Any]:
    good = st.from_regex(r"[A-Za-z0-9_-]{8,40}", fullmatch=True)
    return st.one_of(
        good,
        good.map(lambda t: t + "\n"),
        good.map(lambda t: " " + t),
        good.map(lambda t: t + "\x00"),
        st.sampled_from(["short", "x" * 129, "", "ü" * 10, "a b c d e f g h"]),
        st.integers(),
        st.none(),
        st.lists(st.integers(), max_size=2),
    )


@FUZZ
@given(
    client_id=client_ids(),
    text=st.one_of(text_values, json_values),
    extra=st.dictionaries(st.sampled_from(["lang", "message_id", "ui_lang", "x"]), json_values, max_size=3),
    raw=st.one_of(st.none(), st.sampled_from(RAW_BODIES)),
    content_type=st.sampled_from(["application/json", "application/json; charset=bogus", "text/plain", FORM]),
)
async def test_fuzz_webchat_api(
    kz: Kiezstimme,
    http: TestClient,
    client_id: Any,
    text: Any,
    extra: dict[str, Any],
    raw: bytes | None,
    content_type: str,
) -> None:
    body = raw if raw is not None else json.dumps({"client_id": client_id, "text": text, **extra}).encode()
    before = await count(kz)
    status = await post(http, "/webchat/api/messages", body, {"Content-Type": content_type})
    assert status < 500
    if status != 200:
        assert await count(kz) == before
    if isinstance(client_id, str) and not client_id.strip() == client_id:
        assert status != 200, "a client_id with whitespace or a newline is refused"
    poll = await http.get("/webchat/api/messages", params={"client_id": str(client_id)})
    assert poll.status < 500


async def test_wrong_routes_and_bad_content_encoding(stack: Stack) -> None:
    """Every route with a Content-Encoding its body does not have, and routes that do not exist."""
    before = await count(stack.kz)
    routes = [*TWILIO_ROUTES, "/webhooks/telegram", "/webchat/api/messages"]
    for path in routes:
        for encoding in ["gzip", "deflate", "br", "bogus", "gzip, gzip"]:
            headers = {
                "Content-Encoding": encoding,
                "Content-Type": "application/json" if "twilio" not in path else FORM,
                "X-Telegram-Bot-Api-Secret-Token": SECRET,
                "X-Twilio-Signature": "x",
            }
            status = await post(stack.http, path, b'{"client_id": "abcdefgh12", "text": "hi"}', headers)
            assert status < 500, (path, encoding, status)
    for path in ["/webhooks/", "/webhooks/twilio", "/webhooks/twilio/sms/x", "/webhooks/%00", "/webhooks/telegram/.."]:
        assert await post(stack.http, path, b"x", {}) in (400, 403, 404, 405, 415)
    assert (await stack.http.get("/webhooks/telegram")).status == 405
    assert await count(stack.kz) == before


# --- what once jammed someone, on SQLite and PostgreSQL -----------------------------------------


async def chat(http: TestClient, client_id: str, text: str) -> list[str]:
    body = json.dumps({"client_id": client_id, "text": text}).encode()  # "\ud800" goes as a JSON escape
    resp = await http.post("/webchat/api/messages", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()
    return [m["text"] for m in (await resp.json())["messages"]]


async def test_nul_byte_and_lone_surrogate_do_not_jam_the_resident(kz: Kiezstimme, http: TestClient) -> None:
    client = "nul-and-surrogate-1"
    assert await chat(http, client, "Hallo\x00")
    assert await chat(http, client, "1\ud800")
    assert await chat(http, client, "\ud83d\ude00 Hallo \udfff\x00")
    assert await chat(http, client, "Hallo")  # the next message is answered
    async with kz.db.read() as conn:
        states = (await conn.execute(select(InboundMessage.status))).scalars().all()
    assert set(states) == {"done"}


async def test_a_data_error_while_processing_is_set_aside_not_retried(kz: Kiezstimme, http: TestClient) -> None:
    """A message whose step cannot be written (here a deep-link source the database cannot
    take) is set aside as failed with its reason and counted; the resident's next message is
    answered, and nothing waits to be retried."""
    client = "data-error-client-1"
    poison = Inbound("webchat", client, "poison-1", text="Hallo", extra={"source": "plakat\ud800" + "x" * 80})
    await asyncio.wait_for(kz.inbox.receive(poison, wait=True), 30)
    assert await chat(http, client, "Hallo")
    async with kz.db.read() as conn:
        rows = (await conn.execute(select(InboundMessage.status, InboundMessage.error))).all()
    assert sorted(r.status for r in rows) == ["done", "failed"]
    assert next(r.error for r in rows if r.status == "failed").startswith("data error")
    assert kz.metrics.processed.labels("failed")._value.get() == 1
    await asyncio.sleep(0)
    assert await kz.inbox.inbox.pending_count() == 0


async def test_an_unstorable_row_does_not_fail_its_group_commit(kz: Kiezstimme) -> None:
    """20 messages committed together, one of which cannot be stored (a provider id the
    database cannot take): it alone is refused (400), the 19 others are stored."""
    now = kz.service.clock()
    inbounds = [Inbound("webchat", f"batch-client-{i:04d}", f"batch-{i}", text="Hallo") for i in range(20)]
    inbounds[7] = Inbound("webchat", "batch-client-bad", "SM" + "\ud800" * 40, text="Hallo")
    results = await asyncio.gather(*(kz.service.inbox.store(i, now) for i in inbounds), return_exceptions=True)
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 1 and isinstance(refused[0], Rejected) and refused[0].status == 400
    assert isinstance(results[7], Rejected)
    assert all(isinstance(r, int) for i, r in enumerate(results) if i != 7)
    assert await count(kz) == 19


async def test_an_overlong_message_sid_in_a_burst_fails_no_other_webhook(stack: Stack) -> None:
    forms = [inbound_sms_params(f"+4915112{i:06d}", SMS_FROM, "Hallo") for i in range(20)]
    forms[5]["MessageSid"] = forms[5]["SmsSid"] = forms[5]["SmsMessageSid"] = "SM" + "a" * 5000
    path = "/webhooks/twilio/sms"

    async def one(params: dict[str, Any]) -> int:
        headers = {"X-Twilio-Signature": sign(stack.tw.auth_token, PUBLIC + path, params)}
        resp = await stack.http.post(path, data=params, headers=headers)
        return resp.status

    statuses = await asyncio.gather(*(one(p) for p in forms))
    assert statuses[5] == 400 and [s for i, s in enumerate(statuses) if i != 5] == [200] * 19
    await stack.settle()
    assert await count(stack.kz) == 19
    assert await count(stack.kz, Resident) == 19


async def test_a_signed_request_replayed_with_a_shifted_boundary_is_refused(stack: Stack) -> None:
    """Twilio signs name+value concatenated: moving "NumMedia0" into the end of MessageSid keeps
    the signature valid and would make a new MessageSid — a second message from one capture."""
    path = "/webhooks/twilio/sms"
    params = inbound_sms_params("+4915112340000", SMS_FROM, "Hallo")
    signature = sign(stack.tw.auth_token, PUBLIC + path, params)
    assert (
        await post(
            stack.http, path, urlencode(params).encode(), {"Content-Type": FORM, "X-Twilio-Signature": signature}
        )
        == 200
    )
    await stack.settle()
    sid = params["MessageSid"]
    shifted = {k: v for k, v in params.items() if k not in ("NumMedia", "SmsMessageSid", "SmsSid")}
    # the sorted names around MessageSid: … MessageSid, NumMedia, NumSegments, SmsMessageSid, SmsSid, SmsStatus …
    shifted["MessageSid"] = sid + "NumMedia" + params["NumMedia"]
    shifted["NumSegments"] = params["NumSegments"] + "SmsMessageSid" + sid + "SmsSid" + sid
    assert RequestValidator(stack.tw.auth_token).validate(PUBLIC + path, shifted, signature)  # still signed
    before, sent = await count(stack.kz), len(stack.tw.messages)
    status = await post(
        stack.http, path, urlencode(shifted).encode(), {"Content-Type": FORM, "X-Twilio-Signature": signature}
    )
    assert status == 400
    await stack.settle()
    assert await count(stack.kz) == before and len(stack.tw.messages) == sent


async def test_media_on_a_foreign_host_never_gets_the_credentials(stack: Stack) -> None:
    async with RecordingListener() as foreign:
        # a signed MMS whose MediaUrl names another host: refused, never fetched
        number = "+4915112349999"
        for body in ["Hallo", "1", "1", "1"]:
            assert await stack.sms(number, body) == 200
        url = foreign.url("2010-04-01/Accounts/AC/Messages/MM/Media/ME1")
        params = inbound_sms_params(number, SMS_FROM, "", media=[(url, "image/jpeg")])
        assert await stack.twilio("/webhooks/twilio/sms", params) == 200
        wa = inbound_whatsapp_params(
            "4917612349999", "Ada", "", to=WA_FROM, media=[(foreign.url("x.ogg"), "audio/ogg")]
        )
        assert await stack.twilio("/webhooks/twilio/whatsapp", wa) == 200
        # Twilio's own media URL redirecting to its storage: followed, but without the credentials
        redirected = stack.tw.add_media_redirect("ME2/photo.jpg", foreign.url("storage/ME2.jpg"))
        params = inbound_sms_params("+4915112348888", SMS_FROM, "", media=[(redirected, "image/jpeg")])
        assert await stack.twilio("/webhooks/twilio/sms", params) == 200
        await stack.settle()
        assert foreign.credentials_seen == []
        assert [r.path for r in foreign.requests] == ["/storage/ME2.jpg"]
        assert stack.tw.media_requests == ["ME2/photo.jpg"]


async def test_telegram_files_only_from_the_configured_bot_api_root(stack: Stack) -> None:
    telegram = stack.kz.channels.push["telegram"]
    root = telegram.bot.base_file_url
    assert telegram.own_file_url(f"{root}/voice/file_1.oga")
    for path in ["/etc/hostname", f"{root}/../x", "https://evil.example/file/bot1/x", f"{root}/http://x/y", ""]:
        assert not telegram.own_file_url(path)
    assert await telegram.fetch_media({"file_id": "../../etc/passwd"}) is None
    assert stack.tg.calls_to("getFile") == []


async def test_stored_rows_are_never_bigger_than_their_columns(stack: Stack) -> None:
    """What the adapters let through fits: the inbox's ids and addresses, the outbox's."""
    await stack.sms("+4915112347777", "Hallo\x00")
    await stack.tg_text(4242, "Hallo\x00 \ud800")
    async with stack.kz.db.read() as conn:
        rows = (await conn.execute(select(InboundMessage.provider_id, InboundMessage.status))).all()
        outs = (await conn.execute(select(func.count()).select_from(OutboundMessage))).scalar_one()
    assert {r.status for r in rows} == {"done"} and outs >= 2
    assert all(len(r.provider_id) <= 64 for r in rows)


pytestmark = pytest.mark.timeout(300)
