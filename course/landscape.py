"""Where famous models sit: parameters and training compute from their published shapes (chapter 10).

The counts use chapter 04's arithmetic (`course.memory.gpt2_parameter_count`:
12·d² + 13·d per block, plus embeddings) and the 6·N·D rule for training FLOPs,
so that GPT-3 and BERT can be placed beside the course's own models without
instantiating 175 billion parameters. Each published figure is stored with its
source, and the tests check that the formulas reproduce it.

BERT differs from a GPT-2-shaped stack in three small places: a token-type
("segment") embedding, a LayerNorm on the embeddings instead of one after the
last block (the same 2·d parameters), and a "pooler" (a d x d layer with a bias
on the first token, for sentence-level tasks).
"""

from __future__ import annotations

from dataclasses import dataclass

from .memory import gpt2_parameter_count
from .validate import positive_int


def bert_parameter_count(n_layer: int, n_embd: int, vocab_size: int = 30522, block_size: int = 512,
                         type_vocab_size: int = 2, pooler: bool = True) -> int:
    """Parameters of a BERT-shaped encoder (the Hugging Face ``BertModel``, no masked-LM head)."""
    positive_int(type_vocab_size, "type_vocab_size")
    d = n_embd
    body = gpt2_parameter_count(n_layer, n_embd, vocab_size, block_size)  # same blocks, same embeddings, one 2d norm
    return body + type_vocab_size * d + ((d * d + d) if pooler else 0)


def training_flops(n_params: float, tokens: float) -> float:
    """About 6·N·D: a forward pass costs 2 FLOPs per parameter per token, the backward pass twice that."""
    if not (n_params > 0 and tokens > 0):  # also refuses NaN
        raise ValueError(f"n_params and tokens must be positive, got {n_params} and {tokens}.")
    return 6.0 * n_params * tokens


@dataclass(frozen=True)
class PublishedModel:
    """A model's published shape and training data, and the figures its authors reported."""

    name: str
    family: str  # "decoder-only", "encoder-only" or "encoder-decoder"
    n_layer: int
    n_embd: int
    n_head: int
    vocab_size: int
    context: int
    train_tokens: float | None  # None where the authors did not publish it
    reported_params: float
    source: str
    reported_flops: float | None = None

    @property
    def params(self) -> int:
        """Parameters counted from the shape (chapter 04's formula; BERT's variant for encoders)."""
        if self.family == "encoder-only":
            return bert_parameter_count(self.n_layer, self.n_embd, self.vocab_size, self.context)
        return gpt2_parameter_count(self.n_layer, self.n_embd, self.vocab_size, self.context)

    @property
    def flops(self) -> float | None:
        """Training FLOPs by 6·N·D (None where the tokens were not published)."""
        return None if self.train_tokens is None else training_flops(self.params, self.train_tokens)


PUBLISHED: tuple[PublishedModel, ...] = (
    PublishedModel("BERT-base", "encoder-only", 12, 768, 12, 30522, 512, 1e6 * 256 * 512, 110e6,
                   "Devlin et al. 2019: L=12, H=768, A=12, 110M; 1M steps of 256 x 512 tokens"),
    PublishedModel("BERT-large", "encoder-only", 24, 1024, 16, 30522, 512, 1e6 * 256 * 512, 340e6,
                   "Devlin et al. 2019: L=24, H=1024, A=16, 340M; 1M steps of 256 x 512 tokens"),
    PublishedModel("GPT-2 small", "decoder-only", 12, 768, 12, 50257, 1024, None, 124e6,
                   "Radford et al. 2019 (the released checkpoint has 124M; the paper says 117M); tokens not published"),
    PublishedModel("GPT-2 XL", "decoder-only", 48, 1600, 25, 50257, 1024, None, 1.5e9,
                   "Radford et al. 2019: 48 layers, d=1600, 1.5B; tokens not published"),
    PublishedModel("GPT-3", "decoder-only", 96, 12288, 96, 50257, 2048, 300e9, 175e9,
                   "Brown et al. 2020, Tables 2.1 and D.1: 96 layers, d=12288, 96 heads, 300B tokens, 3.14e23 FLOPs",
                   reported_flops=3.14e23),
)


@dataclass(frozen=True)
class TrainingRun:
    """How a published model was trained, as its measurers reported it (for cost and energy arithmetic)."""

    model: str
    accelerators: int
    accelerator: str
    peak_flops: float  # the accelerator's dense peak at the training precision, FLOP/s
    days: float
    energy_mwh: float
    co2e_tonnes: float
    source: str

    @property
    def accelerator_hours(self) -> float:
        return self.accelerators * self.days * 24


GPT3_RUN = TrainingRun("GPT-3", 10_000, "V100", 125e12, 14.8, 1287.0, 552.0,
                       "Patterson et al. 2021, Carbon Emissions and Large Neural Network Training, Table 4; "
                       "V100 peak: 125 TFLOP/s (float16 tensor cores), NVIDIA's data sheet")

__all__ = ["GPT3_RUN", "PUBLISHED", "PublishedModel", "TrainingRun", "bert_parameter_count", "training_flops"]
