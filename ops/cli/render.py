"""How the CLI prints what it found: one place for every human-readable rendering."""

from __future__ import annotations

from ops.audit.trail import IntentTrail, TrailEntry


def _detail(e: TrailEntry) -> str:
    b = e.body
    if e.kind == "intent.analyzed":
        a = b.get("analysis", {}) if isinstance(b.get("analysis"), dict) else {}
        cites = ", ".join(
            f"{c.get('source')}#{c.get('section')}"
            for c in a.get("citations", [])
            if isinstance(c, dict)
        )
        return (
            f" {a.get('recommendation')} ({a.get('confidence')})"
            + (" degraded" if a.get("degraded") else "")
            + (" injection-flagged" if a.get("injection_flagged") else "")
            + (f" cites {cites}" if cites else "")
        )
    if e.kind == "order.filled":
        return f" {b.get('fill_quantity')} @ {b.get('fill_price')} fee {b.get('fee')}"
    if e.kind in ("risk.rejected", "order.rejected", "dead_letter"):
        why = b.get("reasons") or b.get("reason")
        return f" {why}: {b.get('detail') or b.get('error', '')}"
    return ""


def _headline(trail: IntentTrail) -> str:
    head = f"intent {trail.intent_id}: {trail.outcome}"
    if trail.reasons:
        head += f" ({', '.join(trail.reasons)})"
    if trail.verdict is not None and trail.verdict.pending:
        head += f" [{trail.verdict.pending}]"
    return head


def render_trail(trail: IntentTrail) -> str:
    """`intent show`: each event with its time, producer, signature and what it says."""
    lines = [_headline(trail)]
    for e in trail.entries:
        mark = "" if e.fact.trusted else f"  !! not part of the chain: {e.fact.problem}"
        lines.append(
            f"  {e.stored_at:%H:%M:%S.%f} {e.kind:<19} by {e.producer:<9} "
            f"[{e.signature}] {e.fact.subject}{_detail(e)}{mark}"
        )
    if not trail.entries:
        lines.append("  nothing stored for this id (a submission the ingestor has not read yet")
        lines.append("  shows once it is accepted or dead-lettered)")
    return "\n".join(lines)


def render_audit(trail: IntentTrail) -> str:
    """`audit trail`: each event's stream position, provenance and time since submission."""
    lines = [_headline(trail)]
    for e in trail.entries:
        mark = "" if e.fact.trusted else f"  !! {e.fact.problem}"
        lines.append(
            f"  {e.since_submission_s * 1000:>+10.1f} ms  {e.fact.stream:<11} "
            f"#{e.fact.seq:<6} {e.fact.kind:<19} by {e.producer:<9} [{e.signature}] "
            f"{e.fact.subject}{mark}"
        )
    if trail.problems:
        lines.append("problems:")
        lines += [
            f"  {f.stream} #{f.seq}: {what}" if f else f"  {what}" for f, what in trail.problems
        ]
    else:
        lines.append("chain: OK" if trail.terminal else "chain: -")
    return "\n".join(lines)
