/* measure.h - private: the lesion's diameters from a mask head's output
 * (src/measure.c). */
#ifndef CSASN_MEASURE_H
#define CSASN_MEASURE_H

/* mask[mh][mw] (lesion probability) covers a region of cell_w x cell_h
 * image pixels a cell. The lesion is the largest 4-connected set of cells
 * over 0.5, each cell a rectangle; its longest diameter is the largest
 * distance between two corners of its cells, the perpendicular one its
 * extent across that direction, both measured after scaling x by sx and y
 * by sy (1, 1: pixels; the spacing: mm). Returns 1 and out[2], 0 when no
 * cell is over 0.5 (or out of memory: no size rather than a wrong one). */
int csasn__lesion_diameters(const float *mask, int mh, int mw, double cell_w, double cell_h, double sx,
                            double sy, double out[2]);

#endif
