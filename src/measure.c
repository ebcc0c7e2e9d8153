/* measure.c - the lesion's longest and perpendicular diameters from the
 * mask head (src/measure.h), the two sizes TI-RADS and BI-RADS reports use.
 *
 * Largest 4-connected component of the thresholded mask -> the corners of
 * its cells in scaled coordinates -> their convex hull (monotone chain) ->
 * the farthest pair of hull points (the longest diameter) -> the extent of
 * the hull along the normal of that pair (the perpendicular diameter).
 * tests/test_dicom.py recomputes both from the mask with numpy.
 */
#include "measure.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    double x, y;
} pt;

static int cmp_pt(const void *a, const void *b)
{
    const pt *p = a, *q = b;
    if (p->x != q->x)
        return p->x < q->x ? -1 : 1;
    return (p->y > q->y) - (p->y < q->y);
}

static double cross(pt o, pt a, pt b)
{
    return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
}

int csasn__lesion_diameters(const float *mask, int mh, int mw, double cell_w, double cell_h, double sx,
                            double sy, double out[2])
{
    out[0] = out[1] = 0.0;
    if (!mask || mh <= 0 || mw <= 0)
        return 0;
    size_t n = (size_t)mh * (size_t)mw;
    int *label = calloc(n, sizeof *label), *queue = malloc(n * sizeof *queue);
    pt *pts = NULL, *hull = NULL;
    int ok = 0;
    if (!label || !queue)
        goto done;
    /* Components by breadth-first search; keep the largest (the first found on a tie). */
    int best = 0, best_size = 0, next = 0;
    for (size_t s = 0; s < n; s++) {
        if (!(mask[s] > 0.5f) || label[s])
            continue;
        int id = ++next, size = 0;
        size_t head = 0, tail = 0;
        queue[tail++] = (int)s;
        label[s] = id;
        while (head < tail) {
            int c = queue[head++], cy = c / mw, cx = c % mw;
            size++;
            const int nb[4][2] = {{cx - 1, cy}, {cx + 1, cy}, {cx, cy - 1}, {cx, cy + 1}};
            for (int k = 0; k < 4; k++) {
                int x = nb[k][0], y = nb[k][1];
                if (x < 0 || y < 0 || x >= mw || y >= mh)
                    continue;
                size_t j = (size_t)y * (size_t)mw + (size_t)x;
                if (mask[j] > 0.5f && !label[j]) {
                    label[j] = id;
                    queue[tail++] = (int)j;
                }
            }
        }
        if (size > best_size) {
            best_size = size;
            best = id;
        }
    }
    if (!best)
        goto done;
    pts = malloc(4 * (size_t)best_size * sizeof *pts);
    hull = malloc((4 * (size_t)best_size + 1) * sizeof *hull);
    if (!pts || !hull)
        goto done;
    size_t np = 0;
    double cw = cell_w * sx, ch = cell_h * sy;
    for (size_t s = 0; s < n; s++) {
        if (label[s] != best)
            continue;
        double x = (double)(s % (size_t)mw), y = (double)(s / (size_t)mw);
        for (int k = 0; k < 4; k++)
            pts[np++] = (pt){(x + (k & 1)) * cw, (y + (k >> 1)) * ch};
    }
    qsort(pts, np, sizeof *pts, cmp_pt);
    size_t h = 0;
    for (size_t i = 0; i < np; i++) {       /* lower hull */
        while (h >= 2 && cross(hull[h - 2], hull[h - 1], pts[i]) <= 0)
            h--;
        hull[h++] = pts[i];
    }
    for (size_t i = np - 1, lo = h + 1; i-- > 0;) {   /* upper hull */
        while (h >= lo && cross(hull[h - 2], hull[h - 1], pts[i]) <= 0)
            h--;
        hull[h++] = pts[i];
    }
    if (h > 1)
        h--;   /* the last point repeats the first */
    double dmax = -1.0;
    pt a = hull[0], b = hull[0];
    for (size_t i = 0; i < h; i++)
        for (size_t j = i + 1; j < h; j++) {
            double dx = hull[j].x - hull[i].x, dy = hull[j].y - hull[i].y, d = dx * dx + dy * dy;
            if (d > dmax) {
                dmax = d;
                a = hull[i];
                b = hull[j];
            }
        }
    double len = sqrt(dmax);
    if (!(len > 0))
        goto done;
    double vx = -(b.y - a.y) / len, vy = (b.x - a.x) / len, lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < h; i++) {
        double t = hull[i].x * vx + hull[i].y * vy;
        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
    }
    out[0] = len;
    out[1] = hi - lo;
    ok = 1;
done:
    free(label);
    free(queue);
    free(pts);
    free(hull);
    return ok;
}
