"""Metrics shared by tools/train.py and tools/evaluate.py (numpy + sklearn)."""
import numpy as np


def softmax(z, T=1.0):
    z = np.asarray(z, np.float64) / T
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def sigmoid(z, T=1.0):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64) / T))


def confusion(y, pred, K):
    c = np.zeros((K, K), np.int64)
    np.add.at(c, (np.asarray(y), np.asarray(pred)), 1)
    return c


def per_class(y, pred, K):
    """precision, recall, F1 per class (0 where undefined), support."""
    c = confusion(y, pred, K)
    tp = np.diag(c).astype(float)
    sup = c.sum(1)
    prec = np.divide(tp, c.sum(0), out=np.zeros(K), where=c.sum(0) > 0)
    rec = np.divide(tp, sup, out=np.zeros(K), where=sup > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros(K), where=(prec + rec) > 0)
    return prec, rec, f1, sup


def macro_f1(y, pred, K):
    p, r, f, s = per_class(y, pred, K)
    return float(f[s > 0].mean())


def balanced_accuracy(y, pred, K):
    p, r, f, s = per_class(y, pred, K)
    return float(r[s > 0].mean())


def auc(y, score):
    """Binary ROC AUC (Mann-Whitney, ties counted half); nan if one class is absent."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(score, np.float64)
    n1, n0 = y.sum(), (~y).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ss = s[order]
    i = 0
    while i < len(ss):  # average ranks over ties
        j = i
        while j + 1 < len(ss) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def ovr_auc(y, probs):
    K = probs.shape[1]
    return np.array([auc(np.asarray(y) == k, probs[:, k]) for k in range(K)])


def roc_curve(y, score):
    y = np.asarray(y).astype(bool)
    o = np.argsort(-np.asarray(score), kind="mergesort")
    ys = y[o]
    tpr = np.concatenate([[0], np.cumsum(ys) / max(1, ys.sum())])
    fpr = np.concatenate([[0], np.cumsum(~ys) / max(1, (~ys).sum())])
    thr = np.concatenate([[np.inf], np.asarray(score)[o]])
    return fpr, tpr, thr


def youden_threshold(y, p):
    """Threshold maximising sensitivity + specificity - 1 (midpoint between the
    neighbouring scores, so it generalises rather than sitting on one sample)."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, np.float64)
    if y.all() or (~y).all():
        return 0.5
    u = np.unique(p)
    cands = np.concatenate([[0.0], (u[1:] + u[:-1]) / 2, [1.0]])
    best, bt = -1, 0.5
    for t in cands:
        pr = p >= t
        j = (pr & y).sum() / y.sum() + (~pr & ~y).sum() / (~y).sum() - 1
        if j > best:
            best, bt = j, t
    return float(bt)


def sens_spec(y, p, t):
    y = np.asarray(y).astype(bool)
    pr = np.asarray(p) >= t
    se = (pr & y).sum() / max(1, y.sum())
    sp = (~pr & ~y).sum() / max(1, (~y).sum())
    return float(se), float(sp)


def nll_multi(z, y, T):
    p = softmax(z, T)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())


def nll_bin(z, y, T):
    p = np.clip(sigmoid(z, T), 1e-12, 1 - 1e-12)
    y = np.asarray(y, float)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def fit_temperature(z, y, binary=False):
    """Temperature minimising validation NLL, searched on a log grid in [0.25, 8]
    (a grid, not LBFGS: robust on the tiny validation sets used here)."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 241))
    f = nll_bin if binary else nll_multi
    vals = [f(z, y, T) for T in grid]
    return float(grid[int(np.argmin(vals))])


def ece(conf, correct, bins=10):
    """Expected calibration error with equal-width confidence bins."""
    conf, correct = np.asarray(conf, float), np.asarray(correct, float)
    e, edges = 0.0, np.linspace(0, 1, bins + 1)
    for i in range(bins):
        m = (conf > edges[i]) & (conf <= edges[i + 1]) if i else (conf >= 0) & (conf <= edges[1])
        if m.any():
            e += m.mean() * abs(conf[m].mean() - correct[m].mean())
    return float(e)


def reliability(conf, correct, bins=10):
    conf, correct = np.asarray(conf, float), np.asarray(correct, float)
    edges = np.linspace(0, 1, bins + 1)
    acc, cf, cnt = [], [], []
    for i in range(bins):
        m = (conf > edges[i]) & (conf <= edges[i + 1]) if i else (conf >= 0) & (conf <= edges[1])
        cnt.append(int(m.sum()))
        acc.append(float(correct[m].mean()) if m.any() else float("nan"))
        cf.append(float(conf[m].mean()) if m.any() else float("nan"))
    return edges, np.array(acc), np.array(cf), np.array(cnt)


def dice_iou(pred, gt):
    """pred, gt: boolean [N, H, W] -> per-image dice, iou (nan for empty-empty)."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    inter = (pred & gt).sum((1, 2)).astype(float)
    s = pred.sum((1, 2)) + gt.sum((1, 2))
    union = (pred | gt).sum((1, 2))
    d = np.where(s > 0, 2 * inter / np.maximum(s, 1), np.nan)
    j = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return d, j


def bootstrap_ci(fn, n, groups=None, B=1000, seed=0):
    """95% percentile CI of fn(idx) over resamples of the n items (by group when
    given: patients, not images, are the independent units)."""
    rng = np.random.default_rng(seed)
    if groups is not None:
        groups = np.asarray(groups)
        ug = np.unique(groups)
        members = {g: np.nonzero(groups == g)[0] for g in ug}
    vals = []
    for _ in range(B):
        if groups is None:
            idx = rng.integers(0, n, n)
        else:
            idx = np.concatenate([members[g] for g in rng.choice(ug, len(ug))])
        v = fn(idx)
        if v == v:
            vals.append(v)
    if not vals:
        return float("nan"), float("nan")
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))
