"""Title-clustered Gaussian scores with analytic discrepancy measures: the estimators' ground truth.

A :class:`GaussianCase` draws the three score distributions of :func:`avplug.evaluation.
discrepancy.title_scores` for T titles of M snippets each, with the pair structure of a held-out
set (every snippet: its S+ score, min(p, M - 1) S- partners in its title, p S!= partners in other
titles), a title effect a_t ~ N(0, title_sd^2) shared by all scores of a title and a title's own
strength of correspondence c_t ~ N(0, match_sd^2) (some titles pair sound and picture more
plainly) on its matched pairs::

    S+  of snippet i of title t:            mu_+  + a_t + c_t             + sd_+  * e
    S-  of a pair (i, j) inside title t:    mu_-  + a_t                   + sd_-  * e
    S!= of a pair (i of t, j of s), s != t: mu_!= + (a_t + a_s) / sqrt(2) + sd_!= * e

with e ~ N(0, 1) drawn per score.  Over the population of titles each distribution is a normal,
N(mu, title_sd^2 + sd^2) (plus match_sd^2 for S+), so the four measures have closed forms (:meth:`GaussianCase.truth`),
while a finite held-out set sees only T title effects: its scores are clustered, and an interval
that resamples snippets instead of titles is too narrow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from avplug.evaluation.discrepancy import KL_PAIRS, TitleScores


def gaussian_kl(mu_p: float, sd_p: float, mu_q: float, sd_q: float) -> float:
    """KL(N(mu_p, sd_p^2) || N(mu_q, sd_q^2)) in nats."""
    return math.log(sd_q / sd_p) + (sd_p**2 + (mu_p - mu_q) ** 2) / (2 * sd_q**2) - 0.5


@dataclass(frozen=True)
class GaussianCase:
    """Means and within-title sds of S+, S-, S!=, and the sds of the title effects a_t and c_t."""

    name: str
    means: tuple[float, float, float]
    sds: tuple[float, float, float]
    title_sd: float
    match_sd: float = 0.0

    def _marginal(self, key: str) -> tuple[float, float]:
        i = ("S+", "S-", "S!=").index(key)
        return self.means[i], math.hypot(self.sds[i], self.title_sd, self.match_sd if key == "S+" else 0.0)

    def truth(self) -> dict[str, float]:
        """The analytic measures: the three KLs of the population normals and their gap."""
        kl = {name: gaussian_kl(*self._marginal(p), *self._marginal(q)) for name, (p, q) in KL_PAIRS.items()}
        kl["gap"] = kl["KL(S!=||S+)"] - kl["KL(S-||S+)"]
        return kl

    def draw(self, seed: int, *, titles: int, snippets_per_title: int, pairs_per_snippet: int = 16) -> dict[str, TitleScores]:
        """One held-out set: ``{"S+", "S-", "S!="}`` as :class:`TitleScores`, from ``seed`` only."""
        if titles < 2 or snippets_per_title < 2:
            raise ValueError(f"need >= 2 titles of >= 2 snippets, got {titles} x {snippets_per_title}")
        rng = np.random.default_rng(seed)
        effect = rng.normal(0.0, self.title_sd, titles)
        match = rng.normal(0.0, self.match_sd, titles)
        (mu_plus, mu_minus, mu_diff), (sd_plus, sd_minus, sd_diff) = self.means, self.sds
        snippet_title = np.repeat(np.arange(titles), snippets_per_title)
        same = np.repeat(snippet_title, min(pairs_per_snippet, snippets_per_title - 1))
        video = np.repeat(snippet_title, pairs_per_snippet)
        audio = (video + rng.integers(1, titles, video.size)) % titles  # a uniform other title
        return {
            "S+": TitleScores(mu_plus + (effect + match)[snippet_title] + sd_plus * rng.normal(size=snippet_title.size),
                              snippet_title, snippet_title),
            "S-": TitleScores(mu_minus + effect[same] + sd_minus * rng.normal(size=same.size), same, same),
            "S!=": TitleScores(mu_diff + (effect[video] + effect[audio]) / math.sqrt(2) + sd_diff * rng.normal(size=video.size),
                               video, audio),
        }


#: The benchmark's and the tests' cases: no structure at all (every measure 0); the paper's picture
#: (S+ above S- above S!=) with titles alike in how plainly they pair sound and picture; and the
#: same with titles unequal in it (match_sd), which makes the finite set of titles matter most.
CASES = {
    "equal": GaussianCase("equal", means=(0.0, 0.0, 0.0), sds=(1.0, 1.0, 1.0), title_sd=0.3),
    "paper": GaussianCase("paper", means=(2.0, 0.8, 0.5), sds=(1.0, 1.0, 0.9), title_sd=0.3),
    "uneven": GaussianCase("uneven", means=(2.0, 0.8, 0.5), sds=(1.0, 1.0, 0.9), title_sd=0.3, match_sd=0.7),
}
