"""How a conversation is written as text for the model, shared by training and generation.

A session is ``<|conv|>`` followed by messages and ``<|eoc|>``; each message is one speaker token,
the text, and ``<|eom|>``::

    <|conv|><|spk:alice|> anyone up for pho?<|eom|><|spk:bob|> always<|eom|><|eoc|>

Why one added special token per speaker rather than plain names ("Alice: ..."): the next speaker
is a single softmax step over speaker tokens, which lets generation refuse an opted-out voice by
masking one logit, stops names from bleeding into message text, and keeps friends whose names share
a first BPE piece apart ("Sam" and "Samantha" both start with "S"/"Sam" in GPT-2's BPE). Measured
with GPT-2's tokenizer on ten typical first names, a "\nName: " header costs 4.8 tokens on average
(4 to 6) against one token here, on messages that average about ten tokens in chat exports. The
price is resizing the embedding matrix per run, which fine-tuning does anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CONV = "<|conv|>"
EOM = "<|eom|>"
EOC = "<|eoc|>"
PAD = "<|pad|>"
FORMAT_FILE = "joe_format.json"


def speaker_token(slug: str) -> str:
    return f"<|spk:{slug}|>"


@dataclass(frozen=True)
class ChatFormat:
    """The speakers a checkpoint knows, slug -> display name, saved beside the checkpoint."""

    speakers: dict[str, str]

    @property
    def special_tokens(self) -> list[str]:
        return [CONV, EOM, EOC, PAD] + [speaker_token(s) for s in sorted(self.speakers)]

    def message(self, slug: str, text: str) -> str:
        return f"{speaker_token(slug)} {text.strip()}{EOM}"

    def session(self, messages: list[tuple[str, str]]) -> str:
        return CONV + "".join(self.message(s, t) for s, t in messages) + EOC

    def prompt(self, slug: str | None = None, opening: str = "") -> str:
        """Text to generate from: a given speaker's message, or (slug None) let the model pick."""
        if slug is None:
            return CONV
        return (
            f"{CONV}{speaker_token(slug)} {opening.strip()}".rstrip()
            if opening
            else (f"{CONV}{speaker_token(slug)}")
        )

    def save(self, folder: Path) -> None:
        (Path(folder) / FORMAT_FILE).write_text(json.dumps({"speakers": self.speakers}, indent=1))

    @classmethod
    def load(cls, folder: Path) -> ChatFormat:
        data = json.loads((Path(folder) / FORMAT_FILE).read_text())
        return cls(speakers=dict(data["speakers"]))
