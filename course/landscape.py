"""Where famous models sit: parameters and training compute from their published shapes (chapter 10).

The counts use chapter 04's arithmetic (`course.memory.gpt2_parameter_count`:
12·d² + 13·d per block, plus embeddings) and the 6·N·D rule for training FLOPs,
so that GPT-3 and BERT can be placed beside the course's own models without
instantiating 175 billion parameters. Each published figure is stored with its
source, and the tests check that the formulas reproduce it.

BERT differs from a GPT-2-shaped stack in three small places: a token-type
("segment") embedding, a LayerNorm on the embeddings instead of one after the
last block (the same 2·d parameters), and a "pooler" (a d x d layer with a bias
on the first token, for sentence-level tasks). BERT's training tokens follow its
two phases (`phased_tokens`): Devlin et al. (2019, appendix A.2) ran 90% of the
1M steps at sequence length 128 and only the last 10% at 512.

`attention_flops_share` splits chapter 04's training FLOPs per token,
6·N + 12·L·T·d, into its two parts, with N counted as `GPT.flops_per_token`
counts it: the output head included.
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


def non_embedding_params(n_layer: int, n_embd: int, vocab_size: int) -> int:
    """N of chapter 04's 6·N: every parameter of a GPT-2-shaped model but its position embedding.

    The blocks (12·d² + 13·d each), the final LayerNorm (2·d) and the output head (V·d). With tied
    weights the head *is* the token embedding, and it stays in N because its matrix multiply is done
    for every token (`GPT.num_parameters(non_embedding=True)`; Kaplan et al. 2020 leave it out).
    """
    positive_int(vocab_size, "vocab_size")
    return gpt2_parameter_count(n_layer, n_embd, vocab_size, block_size=1) - n_embd  # minus a 1-position embedding


def attention_flops_share(n_layer: int, n_embd: int, vocab_size: int, context: int) -> float:
    """Attention scores' share of the training FLOPs per token at context length T = ``context``.

    12·L·T·d (QKᵀ and the weighted sum of V, forward and backward) over the whole,
    6·N + 12·L·T·d, with N from `non_embedding_params` (the output head included).
    """
    positive_int(context, "context")
    attention = 12 * n_layer * context * n_embd
    return attention / (6 * non_embedding_params(n_layer, n_embd, vocab_size) + attention)


def phased_tokens(steps: int, batch_size: int, phases: tuple[tuple[float, int], ...]) -> float:
    """Training tokens of a run whose sequence length changes: ``phases`` = ((share of steps, length), ...)."""
    positive_int(steps, "steps")
    positive_int(batch_size, "batch_size")
    if not phases or abs(sum(share for share, _ in phases) - 1) > 1e-9 or any(share <= 0 for share, _ in phases):
        raise ValueError(f"phases must be (share of steps, sequence length) pairs whose shares add up to 1; got {phases}.")
    for _, length in phases:
        positive_int(length, "sequence length")
    return steps * batch_size * sum(share * length for share, length in phases)


#: Devlin et al. 2019, section 3.1 and appendix A.2: 1,000,000 steps of 256 sequences, 90% of the
#: steps at sequence length 128 and the last 10% at 512 (to learn the position embeddings).
BERT_TRAIN_TOKENS = phased_tokens(1_000_000, 256, ((0.9, 128), (0.1, 512)))


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
    PublishedModel("BERT-base", "encoder-only", 12, 768, 12, 30522, 512, BERT_TRAIN_TOKENS, 110e6,
                   "Devlin et al. 2019: L=12, H=768, A=12, 110M; 1M steps of 256 sequences, 90% of them of "
                   "128 tokens and 10% of 512 (appendix A.2)"),
    PublishedModel("BERT-large", "encoder-only", 24, 1024, 16, 30522, 512, BERT_TRAIN_TOKENS, 340e6,
                   "Devlin et al. 2019: L=24, H=1024, A=16, 340M; 1M steps of 256 sequences, 90% of them of "
                   "128 tokens and 10% of 512 (appendix A.2)"),
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
    """How a published model was trained: its setup as reported, and the energy and emissions that
    Patterson et al. (2021) *estimated* from that setup (for cost and energy arithmetic)."""

    model: str
    accelerators: int
    accelerator: str
    peak_flops: float  # the accelerator's dense peak at the training precision, FLOP/s
    days: float
    energy_mwh: float  # an estimate from the reported setup, not a metered measurement
    co2e_tonnes: float  # likewise estimated
    source: str

    @property
    def accelerator_hours(self) -> float:
        return self.accelerators * self.days * 24


GPT3_RUN = TrainingRun("GPT-3", 10_000, "V100", 125e12, 14.8, 1287.0, 552.0,
                       "Patterson et al. 2021, Carbon Emissions and Large Neural Network Training, Table 4 "
                       "(energy and CO2e: their estimates from the reported setup); "
                       "V100 peak: 125 TFLOP/s (float16 tensor cores), NVIDIA's data sheet")

__all__ = ["BERT_TRAIN_TOKENS", "GPT3_RUN", "PUBLISHED", "PublishedModel", "TrainingRun", "attention_flops_share",
           "bert_parameter_count", "non_embedding_params", "phased_tokens", "training_flops"]
