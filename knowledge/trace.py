"""The embedding model as OpenVINO's converter traces it: positional inputs, one output."""

from __future__ import annotations

from typing import Any


def traceable(bert: Any) -> Any:
    """Return `bert` as a module of positional inputs returning only the last hidden state."""
    import torch  # noqa: PLC0415

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            out = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            hidden: torch.Tensor = out.last_hidden_state
            return hidden

    return LastHiddenState().eval()
