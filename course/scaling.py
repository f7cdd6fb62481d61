"""Scaling laws from small runs (the foundation of chapter 09, issue 17): losses comparable across
tokenizers, power-law fits with their error, and the compute-optimal model size on an IsoFLOP curve.

- `bits_per_char` turns a loss in nats per token into bits per character of the
  same text, the unit in which a character model and a BPE model can be compared.
- `fit_power_law` fits L(x) = A·x^(-alpha) (+ E, an irreducible loss, if asked) by
  least squares in log-log space and reports the exponent's standard error.
- `local_exponents` gives the slope between neighbouring points (a pure power law
  has one slope everywhere), and `simulated_refits` refits a power law on points
  drawn around it with the scatter of its residuals: the spread of those slopes
  is what the exponent's standard error means.
- `fit_isoflop` fits, at one compute budget, the loss as a parabola in log N and
  reads off the compute-optimal number of parameters N*, with D* = C / (6·N*)
  tokens (training FLOPs C ≈ 6·N·D, chapter 04's `GPT.flops_per_token`).

Every function checks its input and says what is wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


def bits_per_char(loss_nats_per_token: float, n_tokens: int, n_chars: int) -> float:
    """Mean loss per token (nats) → bits per character of the text those tokens encode.

    The text's total code length is loss · n_tokens nats; divided by its
    n_chars characters and by ln 2 it is bits per character. A tokenizer with
    longer tokens has a higher loss per token for the same bits per character.
    """
    if n_tokens <= 0 or n_chars <= 0:
        raise ValueError(f"n_tokens and n_chars must be positive; got {n_tokens} and {n_chars}.")
    if not math.isfinite(loss_nats_per_token) or loss_nats_per_token < 0:
        raise ValueError(f"a cross-entropy loss is a finite number >= 0; got {loss_nats_per_token}.")
    return loss_nats_per_token * n_tokens / (n_chars * math.log(2))


def _positive_pairs(x: Sequence[float], y: Sequence[float], what: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"{what}: x and y must be 1-D and of the same length; got shapes {x.shape} and {y.shape}.")
    if len(x) < 3:
        raise ValueError(f"{what}: need at least 3 points to fit and estimate an error; got {len(x)}.")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(x > 0) and np.all(y > 0)):
        raise ValueError(f"{what}: every x and y must be finite and > 0 (they are logged).")
    if len(np.unique(x)) < 2:
        raise ValueError(f"{what}: x takes a single value; a slope needs at least two.")
    return x, y


@dataclass(frozen=True)
class PowerLaw:
    """L(x) = E + A · x^(-alpha), fitted in log space; ``alpha_stderr`` is the exponent's standard error."""

    A: float
    alpha: float
    E: float
    alpha_stderr: float
    r2: float  # of the straight-line fit of log(L - E) on log x
    n_points: int

    def __call__(self, x) -> np.ndarray:
        return self.E + self.A * np.asarray(x, dtype=np.float64) ** (-self.alpha)

    def describe(self, name: str = "x") -> str:
        offset = f" + {self.E:.3f}" if self.E else ""
        return (f"L({name}) = {self.A:.3g} * {name}^-{self.alpha:.3f}{offset}  "
                f"(alpha = {self.alpha:.3f} +/- {self.alpha_stderr:.3f}, R^2 = {self.r2:.3f}, {self.n_points} points)")


def _line_fit(u: np.ndarray, v: np.ndarray) -> tuple[float, float, float, float]:
    """v = a + b·u by least squares: (a, b, standard error of b, R²)."""
    n = len(u)
    u_mean, v_mean = u.mean(), v.mean()
    sxx = float(((u - u_mean) ** 2).sum())
    b = float(((u - u_mean) * (v - v_mean)).sum() / sxx)
    a = float(v_mean - b * u_mean)
    residual = v - (a + b * u)
    ssr = float((residual ** 2).sum())
    sst = float(((v - v_mean) ** 2).sum())
    stderr = math.sqrt(ssr / (n - 2) / sxx)  # n >= 3: _positive_pairs checks it
    r2 = 1.0 - ssr / sst if sst > 0 else 1.0
    return a, b, stderr, r2


def fit_power_law(x: Sequence[float], loss: Sequence[float], *, irreducible: float | bool = 0.0) -> PowerLaw:
    """Fit L(x) = E + A · x^(-alpha).

    ``irreducible``: 0 (the default) fits a pure power law; a number fixes E;
    ``True`` chooses E in [0, min(L)) to minimise the squared error of the
    log-space line (a grid, then a refinement), which is how the curvature of a
    loss that levels off is taken into account. With E chosen, alpha's standard
    error is the one of the line at that E (it does not include E's uncertainty).
    """
    x, y = _positive_pairs(x, loss, "fit_power_law")
    if irreducible is True:
        E = _best_offset(x, y)
    elif irreducible is False:
        E = 0.0
    else:
        E = float(irreducible)
    if E < 0 or E >= y.min():
        raise ValueError(f"the irreducible loss E must be in [0, min(loss) = {y.min():.4g}); got {E}.")
    a, b, stderr, r2 = _line_fit(np.log(x), np.log(y - E))
    return PowerLaw(A=math.exp(a), alpha=-b, E=E, alpha_stderr=stderr, r2=r2, n_points=len(x))


def _best_offset(x: np.ndarray, y: np.ndarray) -> float:
    """E in [0, min y) that makes log(y - E) most nearly a straight line in log x.

    The squared error is not unimodal in E (it can dip at 0 and again near the
    true floor), so a grid comes first: E = 0 and E = min y - gap for gaps from
    min y down to 1e-6 · min y, on a log scale; golden-section search then refines
    between the best grid point's neighbours.
    """
    u = np.log(x)
    top = float(y.min())

    def ssr(E: float) -> float:
        v = np.log(y - E)
        a, b, _, _ = _line_fit(u, v)
        return float(((v - (a + b * u)) ** 2).sum())

    grid = np.concatenate([[0.0], top - np.geomspace(top, top * 1e-6, 240)[1:]])
    errors = [ssr(E) for E in grid]
    i = int(np.argmin(errors))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    golden = (math.sqrt(5) - 1) / 2
    for _ in range(100):
        c, d = hi - golden * (hi - lo), lo + golden * (hi - lo)
        if ssr(c) < ssr(d):
            hi = d
        else:
            lo = c
    best = (lo + hi) / 2
    return best if ssr(best) < errors[i] else float(grid[i])


def local_exponents(x: Sequence[float], loss: Sequence[float]) -> np.ndarray:
    """-Δ ln L / Δ ln x between neighbouring points, in order of x: the exponent of the power law, piece by piece.

    A pure power law gives the same value for every pair; a loss that levels off towards an
    irreducible E gives values that fall with x; values that *rise* with x mean the curve
    steepens, which a power law (with or without E) cannot describe.
    """
    x, y = _positive_pairs(x, loss, "local_exponents")
    order = np.argsort(x, kind="stable")
    u, v = np.log(x[order]), np.log(y[order])
    if np.any(np.diff(u) == 0):
        raise ValueError("local_exponents: two points have the same x; a slope between them is undefined.")
    return -np.diff(v) / np.diff(u)


def simulated_refits(x: Sequence[float], loss: Sequence[float], fit: PowerLaw, n: int = 200,
                     seed: int = 0) -> list[PowerLaw]:
    """``n`` refits of ``fit`` on points drawn around its line with the scatter of its own residuals.

    The points keep their x; in log space each gets the fitted line plus independent normal
    noise of the residuals' standard deviation (with n - 2 degrees of freedom, as in the
    standard error). The spread of the refitted exponents is what ``fit.alpha_stderr``
    estimates: how far the slope would move if the runs were repeated with fresh,
    independent noise of the size seen. It says nothing about noise that is not independent
    (a curve the line does not follow), nor about points outside the range of x.
    """
    if isinstance(n, bool) or not (isinstance(n, int) and n >= 2):
        raise ValueError(f"simulated_refits: n must be a whole number >= 2; got {n!r}.")
    x, y = _positive_pairs(x, loss, "simulated_refits")
    if len(x) != fit.n_points or not (y.min() > fit.E):
        raise ValueError("simulated_refits: give the points the fit was made on.")
    u, v = np.log(x), np.log(y - fit.E)
    line = math.log(fit.A) - fit.alpha * u
    sigma = math.sqrt(float(((v - line) ** 2).sum()) / (len(x) - 2))
    rng = np.random.default_rng(seed)
    return [fit_power_law(x, fit.E + np.exp(line + rng.normal(0.0, sigma, size=len(x))), irreducible=fit.E)
            for _ in range(n)]


@dataclass(frozen=True)
class IsoFLOP:
    """One compute budget: loss as a parabola in ln N, and the N at its minimum."""

    flops: float
    coefficients: tuple[float, float, float]  # a, b, c of a·u² + b·u + c, u = ln N
    n_opt: float  # parameters at the minimum
    loss_opt: float
    tokens_at_opt: float | None = None  # D* read off the runs' own tokens (when `fit_isoflop` was given them)
    n_range: tuple[float, float] | None = None  # the smallest and largest N the parabola was fitted to

    @property
    def tokens_opt(self) -> float:
        """D*: the tokens that spend the budget on the optimal model.

        Read off the runs' own (N, D) pairs when they were given (which counts
        attention's FLOPs as the runs did); otherwise C / (6 N*), Chinchilla's rule.
        """
        return self.tokens_at_opt if self.tokens_at_opt is not None else self.flops / (6.0 * self.n_opt)

    @property
    def tokens_per_parameter(self) -> float:
        return self.tokens_opt / self.n_opt

    def __call__(self, n_params) -> np.ndarray:
        a, b, c = self.coefficients
        u = np.log(np.asarray(n_params, dtype=np.float64))
        return a * u ** 2 + b * u + c


def fit_isoflop(flops: float, n_params: Sequence[float], loss: Sequence[float],
                tokens: Sequence[float] | None = None, around: int | None = None) -> IsoFLOP:
    """Fit loss = a·(ln N)² + b·ln N + c over runs that all spent ``flops`` training FLOPs.

    The optimum is N* = exp(-b / 2a). It must be a minimum (a > 0) and lie within
    the sizes fitted: an optimum outside them is an extrapolation, and the error
    says to widen the grid. With the runs' ``tokens``, D* is interpolated
    between them (ln D linear in ln N) instead of taken as C / (6 N*).

    A parabola describes a curve only near its minimum. With ``around=k`` only the
    run with the lowest loss and up to k sizes on each side of it are fitted, so
    that models far too small or far too large for the budget do not pull the
    minimum; ``None`` fits every run.
    """
    if not (math.isfinite(flops) and flops > 0):
        raise ValueError(f"flops must be a positive number; got {flops}.")
    n, y = _positive_pairs(n_params, loss, "fit_isoflop")
    d_all = None if tokens is None else _positive_pairs(n_params, tokens, "fit_isoflop tokens")[1]
    if around is not None:
        if isinstance(around, bool) or not (isinstance(around, int) and around >= 1):
            raise ValueError(f"fit_isoflop: around must be a whole number of sizes >= 1 on each side; got {around!r}.")
        order = np.argsort(n, kind="stable")
        best = int(np.argmin(y[order]))
        keep = order[max(0, best - around): best + around + 1]
        n, y = n[keep], y[keep]
        d_all = None if d_all is None else d_all[keep]
    if len(np.unique(n)) < 3:
        raise ValueError("fit_isoflop: a parabola needs at least 3 different model sizes.")
    u = np.log(n)
    a, b, c = (float(v) for v in np.polyfit(u, y, 2))
    if a <= 0:
        raise ValueError("fit_isoflop: the losses do not curve upward on both sides (the parabola opens "
                         "downward): no minimum to read off. Add smaller and larger models to the grid.")
    u_opt = -b / (2 * a)
    if not (u.min() <= u_opt <= u.max()):
        raise ValueError(f"fit_isoflop: the optimum, N = {math.exp(u_opt):,.0f}, lies outside the sizes tried "
                         f"({n.min():,.0f} to {n.max():,.0f}); widen the grid toward it.")
    d_opt = None
    if d_all is not None:
        order = np.argsort(u)
        d_opt = float(np.exp(np.interp(u_opt, u[order], np.log(d_all)[order])))
    return IsoFLOP(flops=float(flops), coefficients=(a, b, c), n_opt=math.exp(u_opt),
                   loss_opt=a * u_opt ** 2 + b * u_opt + c, tokens_at_opt=d_opt,
                   n_range=(float(n.min()), float(n.max())))


__all__ = ["IsoFLOP", "PowerLaw", "bits_per_char", "fit_isoflop", "fit_power_law", "local_exponents",
           "simulated_refits"]
