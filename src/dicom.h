/* dicom.h - private: a DICOM Part 10 file read far enough to decode one frame
 * (src/dicom.c; RLE in src/rle.c). image.c drives it: it inflates a deflated
 * dataset and decodes JPEG frames itself (stb_image lives there), so that this
 * unit calls nothing of image.c. */
#ifndef CSASN_DICOM_H
#define CSASN_DICOM_H

#include <stddef.h>
#include <stdint.h>

/* Sequences may nest this deep (a real file nests 3 or 4); deeper is refused
 * so that a hostile file cannot exhaust the stack. */
#define CSASN__DICOM_MAX_DEPTH 64
/* Ultrasound regions kept (a scanner writes 1 to 4); more are refused. */
#define CSASN__DICOM_MAX_REGIONS 64

enum { CSASN__DCM_NATIVE, CSASN__DCM_RLE, CSASN__DCM_JPEG };
enum { CSASN__PHOTO_MONO1, CSASN__PHOTO_MONO2, CSASN__PHOTO_RGB, CSASN__PHOTO_YBR_FULL,
       CSASN__PHOTO_YBR_FULL_422, CSASN__PHOTO_PALETTE };

/* One item of the Sequence of Ultrasound Regions (0018,6011); -1 = absent. */
typedef struct {
    int64_t x0, y0, x1, y1;     /* RegionLocationMin/Max, inclusive pixels */
    int spatial, type;          /* RegionSpatialFormat, RegionDataType */
    int units_x, units_y;       /* PhysicalUnitsX/YDirection (3 = cm) */
    double dx, dy;              /* PhysicalDeltaX/Y, in those units per pixel */
} csasn__us_region;

typedef struct {
    /* The transfer syntax (meta header). */
    char ts_uid[65];
    int explicit_vr, deflated, codec;   /* codec: CSASN__DCM_* */
    size_t dataset_off;                 /* where the dataset starts in the file */
    /* The image pixel module. */
    int rows, cols, frames, spp, planar, bits_alloc, bits_stored, high_bit, pixrep, photo;
    char photometric[17];
    /* Palette colour lookup tables: descriptor (entries, first mapped, bits) and data. */
    unsigned lut_n[3], lut_first[3], lut_bits[3];
    const uint8_t *lut[3];
    size_t lut_len[3];
    /* What the page may show and the sizes in mm need; nothing that identifies a person. */
    char modality[17], manufacturer[65];
    double pixel_spacing[2];            /* x (column), y (row) in mm; 0 = absent */
    csasn__us_region region[CSASN__DICOM_MAX_REGIONS];
    int n_regions;
    /* Pixel data: native bytes, or (encapsulated) the fragment items. */
    const uint8_t *pixel;
    size_t pixel_len;
    int encapsulated;
    const uint8_t *bot;                 /* Basic Offset Table (item value) */
    size_t bot_len, n_fragments;
    const uint8_t *frag0;               /* first fragment item, after the table */
    size_t frag_len;                    /* bytes of fragment items up to the delimiter */
    const uint8_t *eot, *eotl;          /* Extended Offset Table and Lengths */
    size_t eot_len, eotl_len;
} csasn__dicom;

/* p[n] starts with a 128-byte preamble and "DICM" (image.c tells by those
 * bytes; a bare dataset without them is not taken for DICOM). Reads the meta
 * header: transfer syntax; a syntax this engine does not decode is refused
 * here, by name and UID. */
const char *csasn__dicom_meta(const uint8_t *p, size_t n, csasn__dicom *d);

/* The dataset ds[n] (the file from d->dataset_off, or its inflated bytes):
 * the pixel module, regions, spacing, modality, manufacturer and where the
 * pixel data lies, all checked against each other and against the limits. */
const char *csasn__dicom_parse(const uint8_t *ds, size_t n, csasn__dicom *d);

/* Bytes of the decoded frame (rows x cols x channels x sample bytes); the
 * output of csasn__dicom_decode. */
uint64_t csasn__dicom_out_bytes(const csasn__dicom *d);

/* Encapsulated frame `frame` (1-based): its bytes, pointing into the dataset
 * when it is one fragment, else copied into *owned (free it). */
const char *csasn__dicom_frame_bytes(const csasn__dicom *d, int frame, const uint8_t **p, size_t *n,
                                     uint8_t **owned);

/* Native or RLE frame `frame` (1-based) -> *pix (malloc'd; free it): rows x
 * cols pixels of *nc (1 or 3, gray or R G B) interleaved samples, 8-bit
 * (*is16 = 0) or 16-bit host order, white = *white (2^BitsStored - 1, or the
 * palette's). MONOCHROME1 is inverted, YBR converted to RGB, palette applied. */
const char *csasn__dicom_decode(const csasn__dicom *d, int frame, uint8_t **pix, int *nc, int *is16,
                                float *white);

/* Millimetres per pixel (x, y) for the region x0 <= x < x1, y0 <= y < y1
 * of the frame: from the ultrasound regions when the file has any (only if
 * every region containing it is calibrated in cm along both axes, and they
 * agree), else PixelSpacing / ImagerPixelSpacing. 0 when unknown. */
int csasn__dicom_spacing(const csasn__dicom *d, int64_t x0, int64_t y0, int64_t x1, int64_t y1, double mm[2]);

/* The largest 2D tissue region (RegionDataType 1, RegionSpatialFormat 1)
 * clipped to the frame: 1 and its box, or 0 when there is none. */
int csasn__dicom_tissue_region(const csasn__dicom *d, int64_t *x0, int64_t *y0, int64_t *x1, int64_t *y1);

/* 1 when a colour-flow region (RegionDataType 2) overlaps the box. */
int csasn__dicom_colour_flow(const csasn__dicom *d, int64_t x0, int64_t y0, int64_t x1, int64_t y1);

/* RLE Lossless (PS3.5 Annex G) frame p[n] -> out: rows x cols pixels of spp
 * samples of bps bytes, interleaved, little-endian (src/rle.c). */
const char *csasn__rle_decode(const uint8_t *p, size_t n, int rows, int cols, int spp, int bps, uint8_t *out);

#endif
