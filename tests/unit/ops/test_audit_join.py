"""A submission without an id meets its intent by stream sequence, never by re-deriving its id."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from bus.deadletter import dead_letter
from contracts import Identity
from contracts import subjects as s
from contracts import topology as t
from contracts.base import submission_ref
from contracts.records import DeadLettersPurged, PurgedLetter
from ops.audit.chains import Verdict, evaluate
from ops.audit.facts import Fact, fact_of, join_submissions
from ops.dlq import PURGED_SUBJECT
from tests.support import events
from tests.support.audit import PRICE, Chain, Streams


def idless(streams: Streams, quantity: str = "10") -> Fact:
    """A client's submission without an `intent_id`."""
    body = {"account": "paper-1", "symbol": "AAPL", "side": "buy", "quantity": quantity}
    fact = fact_of(streams.store("intent.submitted.AAPL", json.dumps(body).encode()))
    fact.trusted = True  # unsigned client input is allowed on its subject
    return fact


def accepted_chain(
    streams: Streams, submitted: Fact, quantity: str = "10"
) -> tuple[Chain, list[Fact]]:
    """The rest of a filled chain, accepted under an id only the ingestor knows."""
    chain = Chain(streams, quantity=quantity)  # its intent_id stands for the assigned id
    event = events.intent_accepted(chain.intent, reference_price=PRICE).model_copy(
        update={"submission_seq": submitted.seq}
    )
    acc = streams.event(events.subject_of(event), event)
    ana, analyzed = chain.analyzed(event)
    app, approved = chain.approved(analyzed.event_id)
    fil, fill = chain.filled(approved.event_id)
    pos, _ = chain.posted(fill)
    return chain, [acc, ana, app, fil, pos]


def refused(streams: Streams, submitted: Fact, reason: str = "unknown_account") -> Fact:
    """The ingestor's dead letter of `submitted`, as the runtime builds it."""
    emit = dead_letter(
        agent=Identity.INGESTOR, reason=reason, error="no", subject=submitted.subject,
        headers={}, data=b"{}", stream=t.SUBMISSIONS, stream_seq=submitted.seq, delivery_count=1,
    )  # fmt: skip
    return streams.event(emit.subject, emit.event)


def verdict_of(intent_id: str, facts: list[Fact]) -> Verdict:
    intent_of = {f.key: f.intent_id for f in facts}
    mine = [f for f in facts if f.intent_id == intent_id]
    return evaluate(intent_id, mine, retried={}, intent_of=intent_of, full=True)


def test_an_accepted_submission_without_id_joins_the_intent_its_acceptance_names() -> None:
    streams = Streams()
    sub = idless(streams)
    chain, rest = accepted_chain(streams, sub)
    facts = [sub, *rest]

    join_submissions(facts)

    assert sub.intent_id == str(chain.intent_id)
    verdict = verdict_of(str(chain.intent_id), facts)
    assert verdict.outcome == "filled" and verdict.problems == []


def test_terms_the_ingestor_changed_are_named_after_the_join() -> None:
    streams = Streams()
    sub = idless(streams, quantity="10")
    chain, rest = accepted_chain(streams, sub, quantity="11")
    facts = [sub, *rest]
    join_submissions(facts)
    found = [what for _, what in verdict_of(str(chain.intent_id), facts).problems]
    assert "the accepted intent matches no submission of its id" in found


def test_a_forged_acceptance_does_not_claim_a_submission() -> None:
    streams = Streams()
    sub = idless(streams)
    _, rest = accepted_chain(streams, sub)
    rest[0].trusted = False  # e.g. signed by a key that does not publish intent.accepted
    join_submissions([sub, *rest])
    assert sub.intent_id == str(submission_ref(sub.seq))


def test_a_refused_submission_without_id_and_its_dead_letter_share_its_public_name() -> None:
    streams = Streams()
    sub = idless(streams)
    letter = refused(streams, sub)
    facts = [sub, letter]

    join_submissions(facts)

    name = str(submission_ref(sub.seq))
    assert letter.subject == s.dead_letter(Identity.INGESTOR, name)
    assert sub.intent_id == letter.intent_id == name
    verdict = verdict_of(name, facts)
    assert verdict.outcome == "dead_lettered" and verdict.problems == []


def test_a_submission_nothing_names_yet_is_pending_under_its_public_name() -> None:
    streams = Streams()
    sub = idless(streams)
    join_submissions([sub])
    verdict = verdict_of(str(submission_ref(sub.seq)), [sub])
    assert verdict.outcome == "pending" and verdict.pending == "submitted, not yet accepted"


def test_a_dead_letter_after_the_acceptance_belongs_to_the_accepted_intent() -> None:
    streams = Streams()
    sub = idless(streams)
    chain, rest = accepted_chain(streams, sub)
    letter = refused(streams, sub, reason="max_deliveries")  # the ack never arrived
    facts = [sub, *rest, letter]

    join_submissions(facts)

    assert sub.intent_id == letter.intent_id == str(chain.intent_id)
    verdict = verdict_of(str(chain.intent_id), facts)
    assert verdict.outcome == "filled" and verdict.problems == []


def test_a_purged_dead_letter_still_names_its_submission() -> None:
    streams = Streams()
    sub = idless(streams)
    record = DeadLettersPurged(
        event_id=uuid.uuid4(), producer=Identity.OPS, before=datetime.now(UTC), below_seq=5,
        purged=1, letters=(PurgedLetter(
            dlq_seq=4, agent=Identity.INGESTOR, reason="invalid_payload", intent_id=None,
            original_subject=sub.subject, original_stream=t.SUBMISSIONS,
            original_stream_seq=sub.seq,
        ),),
    )  # fmt: skip
    purge = streams.event(PURGED_SUBJECT, record)
    join_submissions([sub, purge])
    assert sub.intent_id == str(submission_ref(sub.seq))


def test_without_the_join_an_acceptance_of_a_stored_idless_submission_is_no_problem() -> None:
    streams = Streams()
    sub = idless(streams)
    chain, rest = accepted_chain(streams, sub)
    verdict = verdict_of(str(chain.intent_id), [sub, *rest])  # not joined
    assert verdict.outcome == "filled" and verdict.problems == []


def test_an_acceptance_naming_another_intents_submission_is_named() -> None:
    streams = Streams()
    other = Chain(streams)
    sub = other.submitted()  # carries the other intent's id
    chain, rest = accepted_chain(streams, sub)
    facts = [sub, *rest]
    join_submissions(facts)
    found = [what for _, what in verdict_of(str(chain.intent_id), facts).problems]
    assert (
        f"acceptance without submission: SUBMISSIONS #{sub.seq} is intent {other.intent_id}'s"
        in found
    )


def test_an_acceptance_naming_a_submission_never_stored_is_named() -> None:
    streams = Streams()
    ghost = idless(Streams())  # a submission of another stream history: not in these facts
    chain, rest = accepted_chain(streams, ghost)
    found = [what for _, what in verdict_of(str(chain.intent_id), rest).problems]
    assert "acceptance without submission" in found
