"""Optional CPU engine: the checkpoint converted to CTranslate2 int8, for bulk single messages.

``CT2Generator.convert(checkpoint)`` writes ``<checkpoint>/ct2-int8`` once (weights quantized to
int8, vocabulary from the checkpoint's tokenizer, special tokens included);
``CT2Generator.load(checkpoint)`` then serves ``generate_messages`` with the same request/params
shapes as ``generations.sampling.Generator``:

* each row stops at ``<|eom|>`` (``end_token``), inside CTranslate2's own per-row loop;
* every special token but ``<|eom|>`` is suppressed (``suppress_sequences``), so no marker reaches
  the text, as in the torch loop;
* ``sampling_topk`` is always passed explicitly (CTranslate2's default of 1 is greedy); top_k=0
  becomes the whole vocabulary.

What it does not give: per-row seeds. CTranslate2 has one random seed per process, so one snippet
cannot be regenerated alone. CTranslate2 seeds a Generator's worker thread when the Generator is
created, so each call creates one after ``set_random_seed``: a call is reproducible as a whole
(same requests in the same order, same ``batch_seed``, same threads). Results carry the call's
seed and ``Replay(0, 0, row)``, which ``Generator.regenerate`` refuses. No conversations or
streaming either: the torch ``Generator`` does those.

No Django here.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from generations.sampling import GeneratedMessage, Replay, SamplingParams, derive_seed
from trainer.ml.chat_format import EOM, ChatFormat, speaker_token

CT2_DIRNAME = "ct2-int8"


class CT2Generator:
    def __init__(
        self, model_dir: Path, tokenizer: Any, chat_format: ChatFormat, **ct2_options: Any
    ) -> None:
        self.model_dir = model_dir
        self.ct2_options = ct2_options
        self.tokenizer = tokenizer
        self.chat_format = chat_format
        self.eom_id = tokenizer.convert_tokens_to_ids(EOM)
        special = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
        special.discard(self.eom_id)
        self.suppressed = [[tokenizer.convert_ids_to_tokens(i)] for i in sorted(special)]

    @staticmethod
    def convert(
        checkpoint_folder: str | Path, output_dir: str | Path | None = None, *, force: bool = False
    ) -> Path:
        """Convert a checkpoint folder to CTranslate2 int8 (beside it unless ``output_dir``)."""
        from ctranslate2.converters import TransformersConverter

        checkpoint_folder = Path(checkpoint_folder)
        out = Path(output_dir) if output_dir else checkpoint_folder / CT2_DIRNAME
        if (out / "model.bin").is_file() and not force:
            return out
        TransformersConverter(str(checkpoint_folder)).convert(
            str(out), quantization="int8", force=True
        )
        return out

    @classmethod
    def load(
        cls,
        checkpoint_folder: str | Path,
        *,
        model_dir: str | Path | None = None,
        device: str = "cpu",
        compute_type: str = "int8",
        intra_threads: int = 0,
    ) -> CT2Generator:
        """Load (converting first if needed) the CTranslate2 model of a checkpoint folder."""
        from transformers import AutoTokenizer

        checkpoint_folder = Path(checkpoint_folder)
        model_dir = cls.convert(checkpoint_folder, model_dir)
        tokenizer = AutoTokenizer.from_pretrained(checkpoint_folder)
        return cls(
            model_dir,
            tokenizer,
            ChatFormat.load(checkpoint_folder),
            device=device,
            compute_type=compute_type,
            intra_threads=intra_threads,
        )

    def generate_messages(
        self,
        requests: Sequence[tuple[str, str]],
        params: SamplingParams,
        *,
        batch_seed: int | None = None,
        banned_speakers: set[str] | frozenset[str] = frozenset(),
        batch_size: int = 64,
    ) -> list[GeneratedMessage]:
        import ctranslate2

        for slug, _ in requests:
            if slug not in self.chat_format.speakers:
                raise ValueError(f"unknown speaker {slug!r}")
            if slug in banned_speakers:
                raise ValueError(f"speaker {slug!r} has opted out of generation")
        prompts = [
            self.tokenizer.encode(self.chat_format.prompt(s, o), add_special_tokens=False)
            for s, o in requests
        ]
        order = sorted(range(len(requests)), key=lambda i: len(prompts[i]))
        if batch_seed is None:
            batch_seed = params.seed if params.seed is not None else secrets.randbits(63)
        # CTranslate2 seeds its worker thread's generator when the Generator is created (measured:
        # set_random_seed before generate_batch on an existing Generator changes nothing), so a
        # call makes its own Generator: the call as a whole is reproducible.
        ctranslate2.set_random_seed(derive_seed(batch_seed, 0) % 2**32)
        generator = ctranslate2.Generator(str(self.model_dir), **self.ct2_options)
        results: list[GeneratedMessage] = []
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            seed = batch_seed
            greedy = params.temperature <= 0
            out = generator.generate_batch(
                [self.tokenizer.convert_ids_to_tokens(prompts[i]) for i in chunk],
                max_length=params.max_new_tokens,
                include_prompt_in_result=False,
                end_token=[self.eom_id],
                return_end_token=True,
                suppress_sequences=self.suppressed,
                sampling_topk=1 if greedy else params.top_k,
                sampling_topp=1.0 if greedy else params.top_p,
                sampling_temperature=1.0 if greedy else params.temperature,
            )
            for row, (i, res) in enumerate(zip(chunk, out, strict=True)):
                results.append(self._message(i, requests[i], prompts[i], res, params, seed, row))
        results.sort(key=lambda m: m.index)
        return results

    def _message(self, index, request, prompt, res, params, seed, row) -> GeneratedMessage:
        slug, opening = request
        ids = list(res.sequences_ids[0])
        ended = bool(ids) and ids[-1] == self.eom_id
        body = ids[:-1] if ended else ids
        spk = self.tokenizer.convert_tokens_to_ids(speaker_token(slug))
        prefix = prompt[prompt.index(spk) + 1 :]

        def decode(x: list[int]) -> str:
            return self.tokenizer.decode(x, skip_special_tokens=True).strip()

        return GeneratedMessage(
            index=index,
            speaker=slug,
            opening=opening,
            text=decode(prefix + body),
            completion=decode(body),
            seed=seed,
            params=params,
            n_tokens=len(ids),
            stop_reason="eom" if ended else "length",
            # prompt_width 0 marks a CTranslate2 batch: Generator.regenerate refuses it.
            replay=Replay(batch_size=0, prompt_width=0, row=row),
        )
