#!/usr/bin/env python3
"""Reference vectors for src/stratified.rs, computed independently.

van Elteren's stratified Wilcoxon-Mann-Whitney test and the pooled shift
(ratio) with its confidence interval obtained by inverting that test, written
the slow and obvious way so it shares no code path with the Rust:

* U per stratum from midranks (scipy.stats.rankdata): U = R_new - n(n+1)/2,
  the tie term from numpy.unique counts, weights w = 1/(N+1);
* z = (T - E[T]) / sqrt(Var[T]), two-sided p = 2 * norm.sf(|z|), no
  continuity correction (the weighted statistic has no unit lattice);
* the inversion works on logs: z(delta) is U recomputed on (x, y - delta)
  with the variance held at its observed value, evaluated on every interval
  between consecutive breakpoints (all pairwise differences y - x of every
  stratum); the sign of T - E[T] uses exact fractions.  The estimate is the
  midpoint of [sup{z > 0}, inf{z < 0}]; the CI is {delta : |z| <= z_(1-a/2)}
  with z_(1-a/2) = norm.isf(a/2).  Ratios are exp of those.

Run: python3 scripts/stats-vectors.py   (numpy + scipy)
"""

from fractions import Fraction

import numpy as np
from scipy.stats import norm, rankdata


def stratum_u(x, y):
    """U = #{y > x} + 1/2 #{y = x} from the midrank sum of y."""
    ranks = rankdata(np.concatenate([x, y]))
    n = len(y)
    return ranks[len(x):].sum() - n * (n + 1) / 2


def null_moments(strata):
    """E[T] and Var[T] (tie-corrected) of T = sum w_i U_i."""
    expected, variance = 0.0, 0.0
    for x, y in strata:
        m, n = len(x), len(y)
        big_n = m + n
        w = 1.0 / (big_n + 1)
        _, t = np.unique(np.concatenate([x, y]), return_counts=True)
        ties = float((t.astype(float) ** 3 - t).sum())
        expected += w * m * n / 2
        variance += w * w * (m * n / 12) * ((big_n + 1) - ties / (big_n * (big_n - 1)))
    return expected, variance


def van_elteren(strata):
    used = [(np.asarray(x, float), np.asarray(y, float)) for x, y in strata if len(x) and len(y)]
    stat = sum(stratum_u(x, y) / (len(x) + len(y) + 1) for x, y in used)
    expected, variance = null_moments(used)
    z = (stat - expected) / np.sqrt(variance)
    return stat, expected, variance, z, 2 * norm.sf(abs(z))


def shift_and_ci(strata, alpha):
    """Shift estimate and CI on logs by inverting van Elteren."""
    logs = [(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)))
            for x, y in strata if len(x) and len(y)]
    _, variance = null_moments(logs)
    sd = np.sqrt(variance)

    def excess(delta):
        """T(delta) - E[T] as an exact fraction (weights 1/(N+1))."""
        total = Fraction(0)
        for x, y in logs:
            m, n = len(x), len(y)
            u2 = round(2 * stratum_u(x, y - delta))  # U is a multiple of 1/2
            total += Fraction(u2 - m * n, 2 * (m + n + 1))
        return total

    breaks = np.unique(np.concatenate([np.subtract.outer(y, x).ravel() for x, y in logs]))
    # One point inside each open interval: below all, between neighbours, above all.
    points = np.concatenate([[breaks[0] - 1], (breaks[:-1] + breaks[1:]) / 2, [breaks[-1] + 1]])
    excesses = [excess(d) for d in points]
    zs = [float(e) / sd for e in excesses]

    def sup_where(holds):
        """sup{delta : holds} for a predicate true on a leading run of intervals."""
        k = max((i for i, v in enumerate(holds) if v), default=None)
        if k is None or k == len(points) - 1:
            return None  # empty, or unbounded above
        return breaks[k]  # interval k ends at breaks[k]

    estimate = (sup_where([e > 0 for e in excesses]) + sup_where([e >= 0 for e in excesses])) / 2
    zc = norm.isf(alpha / 2)
    lo = sup_where([z > zc for z in zs])
    hi = sup_where([z >= -zc for z in zs])
    ci = None if lo is None or hi is None else (np.exp(lo), np.exp(hi))
    return np.exp(estimate), ci


CASES = {
    "a: 4 strata x 5 rounds, clear shift": [
        ([201, 198, 205, 199, 203], [214, 219, 212, 220, 216]),
        ([452, 447, 460, 455, 449], [488, 479, 495, 484, 490]),
        ([805, 798, 812, 790, 801], [861, 870, 848, 866, 858]),
        ([1490, 1512, 1505, 1498, 1521], [1610, 1588, 1625, 1602, 1597]),
    ],
    "b: 3 strata, ties, unequal sizes": [
        ([20, 21, 21, 22], [22, 23, 23, 24, 22]),
        ([100, 100, 102, 101, 103, 99], [101, 104, 104, 103]),
        ([55, 57, 56], [58, 57, 59, 60, 58, 61]),
    ],
    "c: A/A": [
        ([301, 296, 310, 305, 299], [303, 298, 307, 300, 306]),
        ([612, 640, 625, 618, 631], [628, 615, 622, 636, 619]),
        ([95, 97, 93, 96, 98], [96, 94, 97, 95, 99]),
        ([1200, 1185, 1230, 1210, 1195], [1190, 1220, 1205, 1215, 1188]),
    ],
}


def main():
    alpha = 0.05
    for name, strata in CASES.items():
        stat, expected, variance, z, p = van_elteren(strata)
        ratio, ci = shift_and_ci(strata, alpha)
        print(name)
        print(f"  T = {stat:.12g}  E[T] = {expected:.12g}  Var[T] = {variance:.12g}")
        print(f"  z = {z:.12g}  p = {p:.12g}")
        ci_text = "none" if ci is None else f"[{ci[0]:.12g}, {ci[1]:.12g}]"
        print(f"  ratio = {ratio:.12g}  95% CI = {ci_text}")


if __name__ == "__main__":
    main()
