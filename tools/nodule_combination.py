#!/usr/bin/env python3
"""nodule_combination.py - does combining the views of one nodule help? (README.md, "Exam report")

Runs the shipped thyroid model through the C engine (build/csasn classify) on every labelled
DDTI crop, groups crops by nodule (case_id, nodule_part of ../shared/data/ddti/labels.csv) and
compares, on the nodules that have two or more images:

  per view   every image scored on its own (its label is its nodule's)
  combined   one score per nodule: the mean of the calibrated log-odds of its views (what
             src/report.c does), and, for reference, the mean probability and the maximum

Malignancy AUC (TI-RADS 4a-5 vs 2-3) with 95% intervals from a bootstrap over patients
(case_id; 2000 resamples), and the paired difference combined - per view on the same resample.
Most of these crops were in the model's training split (weights/thyroid-ddti.split.json): the
AUCs are optimistic in level; the comparison is what is read.

  /usr/bin/python3 tools/nodule_combination.py [--model weights/thyroid-ddti.csasn] [--json OUT]
"""
import argparse
import csv
import json
import math
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, '..', 'shared', 'data', 'ddti')


def auc(scores, labels):
    s = np.asarray(scores, float)
    y = np.asarray(labels, int)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float('nan')
    # Mann-Whitney with ties counted half
    gt = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(gt / (len(pos) * len(neg)))


def logit(p):
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default=os.path.join(ROOT, 'weights', 'thyroid-ddti.csasn'))
    ap.add_argument('--cli', default=os.path.join(ROOT, 'build', 'csasn'))
    ap.add_argument('--json', default=None)
    ap.add_argument('--resamples', type=int, default=2000)
    a = ap.parse_args()

    rows = [r for r in csv.DictReader(open(os.path.join(DATA, 'labels.csv'))) if r['binary_label'] != '']
    paths = [os.path.join(DATA, r['image']) for r in rows]
    out = subprocess.run([a.cli, 'classify', '--model', a.model, *paths], capture_output=True, text=True, check=True)
    mal = {}
    for line in out.stdout.splitlines():
        j = json.loads(line)
        mal[j['image']] = j['malignancy']
    split = json.load(open(os.path.join(ROOT, 'weights', 'thyroid-ddti.split.json')))
    val = set(split['val'])

    nodules = {}
    for r, p in zip(rows, paths):
        nodules.setdefault((r['case_id'], r['nodule_part']), []).append((mal[p], int(r['binary_label']), 'ddti/' + r['image'] in val))
    multi = {k: v for k, v in nodules.items() if len(v) > 1}
    cases = sorted({k[0] for k in multi})
    by_case = {c: [k for k in multi if k[0] == c] for c in cases}

    def scores(keys):
        view_s, view_y, comb = [], [], {'logodds': [], 'mean': [], 'max': []}
        ny = []
        for k in keys:
            v = multi[k]
            for p, y, _ in v:
                view_s.append(p)
                view_y.append(y)
            lo = sum(logit(p) for p, _, _ in v) / len(v)
            comb['logodds'].append(1 / (1 + math.exp(-lo)))
            comb['mean'].append(sum(p for p, _, _ in v) / len(v))
            comb['max'].append(max(p for p, _, _ in v))
            ny.append(v[0][1])
        return auc(view_s, view_y), {m: auc(s, ny) for m, s in comb.items()}

    keys = list(multi)
    base_view, base_comb = scores(keys)
    rng = np.random.default_rng(0)
    boot = {'view': [], 'logodds': [], 'mean': [], 'max': [], 'diff': []}
    for _ in range(a.resamples):
        pick = rng.choice(len(cases), len(cases), replace=True)
        ks = [k for i in pick for k in by_case[cases[i]]]
        v, c = scores(ks)
        if math.isnan(v) or math.isnan(c['logodds']):
            continue
        boot['view'].append(v)
        for m in c:
            boot[m].append(c[m])
        boot['diff'].append(c['logodds'] - v)
    ci = {k: [float(np.percentile(x, 2.5)), float(np.percentile(x, 97.5))] for k, x in boot.items()}
    n_img = sum(len(v) for v in multi.values())
    n_val = sum(1 for v in multi.values() for _, _, inval in v if inval)
    res = {
        'nodules': len(multi), 'images': n_img, 'patients': len(cases),
        'malignant_nodules': sum(v[0][1] for v in multi.values()),
        'images_in_validation_split': n_val,
        'auc_per_view': base_view, 'auc_per_view_ci': ci['view'],
        'auc_combined_logodds': base_comb['logodds'], 'auc_combined_logodds_ci': ci['logodds'],
        'auc_combined_mean_prob': base_comb['mean'], 'auc_combined_mean_prob_ci': ci['mean'],
        'auc_combined_max': base_comb['max'], 'auc_combined_max_ci': ci['max'],
        'diff_logodds_minus_view': base_comb['logodds'] - base_view, 'diff_ci': ci['diff'],
        'resamples_used': len(boot['diff']),
    }
    # The validation split (never trained on): too few multi-view nodules for an AUC (all
    # malignant), so the calls at the operating point: per view vs combined.
    t = json.loads(subprocess.run([a.cli, 'info', '--model', a.model], capture_output=True, text=True,
                                  check=True).stdout)['csasn.malignancy_threshold']
    vk = [k for k, v in multi.items() if all(inval for _, _, inval in v)]
    vv = [p for k in vk for p, _, _ in multi[k]]
    vc = [1 / (1 + math.exp(-sum(logit(p) for p, _, _ in multi[k]) / len(multi[k]))) for k in vk]
    res['validation'] = {
        'nodules': len(vk), 'images': len(vv), 'malignant_nodules': sum(multi[k][0][1] for k in vk),
        'per_view_called_suspicious': sum(p >= t for p in vv), 'combined_called_suspicious': sum(p >= t for p in vc),
        'nodules_whose_views_disagree': sum(1 for k in vk if len({p >= t for p, _, _ in multi[k]}) > 1),
    }
    res['all_multi_nodules_whose_views_disagree'] = sum(1 for v in multi.values() if len({p >= t for p, _, _ in v}) > 1)
    print(json.dumps(res, indent=1))
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
