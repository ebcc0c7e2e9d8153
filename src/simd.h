/* simd.h - private: a small 4 x f32 vector layer (ggml simd-mappings style).
 *
 * The kernels in src/kernels/ are written once over these macros and map to
 *   - wasm SIMD128 (wasm_simd128.h) when compiled with -msimd128,
 *   - SSE2 on x86 (the native build uses -msse2),
 *   - a portable struct-of-4 fallback otherwise, or when CSASN_SCALAR is defined.
 * The fallback is what keeps the "__simd" kernels compilable everywhere, so the
 * tests can always compare them with the "__scalar" reference kernels.
 *
 * V4_MADD(c, a, b) is c + a * b. Neither SSE2 nor (non-relaxed) wasm SIMD has
 * a fused multiply-add, so everywhere but one build it is a mul then an add,
 * which keeps native and wasm results bit-identical for the same kernel. The
 * relaxed-SIMD wasm engine (-mrelaxed-simd, built by a newer clang than emcc's:
 * see the Makefile) maps it to f32x4.relaxed_madd, which V8 lowers to one FMA
 * where the CPU has it: one rounding instead of two, so that engine agrees with
 * the others to rounding (tests/test_engines.cjs bounds it), not bit for bit.
 */
#ifndef CSASN_SIMD_H
#define CSASN_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__wasm_simd128__) && !defined(CSASN_SCALAR)
#include <wasm_simd128.h>
#ifdef __wasm_relaxed_simd__
#define CSASN_SIMD_NAME "wasm-relaxed-simd"
#else
#define CSASN_SIMD_NAME "wasm-simd128"
#endif
typedef v128_t csasn__v4;
typedef v128_t csasn__v4i;
#define V4_LOAD(p)        wasm_v128_load(p)
#define V4_STORE(p, a)    wasm_v128_store((p), (a))
#define V4_SPLAT(x)       wasm_f32x4_splat(x)
#define V4_LOAD_SPLAT(p)  wasm_v128_load32_splat(p)
#define V4_ZERO()         wasm_f32x4_splat(0.0f)
#define V4_ADD(a, b)      wasm_f32x4_add((a), (b))
#define V4_SUB(a, b)      wasm_f32x4_sub((a), (b))
#define V4_MUL(a, b)      wasm_f32x4_mul((a), (b))
#define V4_DIV(a, b)      wasm_f32x4_div((a), (b))
#ifdef __wasm_relaxed_simd__
#define V4_MADD(c, a, b)  wasm_f32x4_relaxed_madd((a), (b), (c))
#endif
/* pmin/pmax are plain compare+select (one instruction each on x86, like SSE
 * minps/maxps); they differ from IEEE min/max only for NaN and -0. */
#define V4_MAX(a, b)      wasm_f32x4_pmax((a), (b))
#define V4_MIN(a, b)      wasm_f32x4_pmin((a), (b))
#define V4_AND(a, b)      wasm_v128_and((a), (b))
#define V4_OR(a, b)       wasm_v128_or((a), (b))
#define V4_XOR(a, b)      wasm_v128_xor((a), (b))
#define V4_SQRT(a)        wasm_f32x4_sqrt(a)
#define V4_LT(a, b)       wasm_f32x4_lt((a), (b))           /* all-ones lanes where a < b */
#define V4_SEL(m, a, b)   wasm_v128_bitselect((a), (b), (m)) /* m ? a : b */
#define V4_AS_I(a)        (a)
#define V4I_AS_F(a)       (a)
#define V4I_ADD(a, b)     wasm_i32x4_add((a), (b))
#define V4I_SHL(a, n)     wasm_i32x4_shl((a), (n))
#define V4I_SPLAT(x)      wasm_i32x4_splat(x)
/* In place 4x4 transpose: r0..r3 rows in, columns out. */
#define V4_TRANSPOSE4(r0, r1, r2, r3) do { \
        v128_t t0_ = wasm_i32x4_shuffle((r0), (r1), 0, 4, 1, 5), t1_ = wasm_i32x4_shuffle((r0), (r1), 2, 6, 3, 7); \
        v128_t t2_ = wasm_i32x4_shuffle((r2), (r3), 0, 4, 1, 5), t3_ = wasm_i32x4_shuffle((r2), (r3), 2, 6, 3, 7); \
        (r0) = wasm_i32x4_shuffle(t0_, t2_, 0, 1, 4, 5); (r1) = wasm_i32x4_shuffle(t0_, t2_, 2, 3, 6, 7); \
        (r2) = wasm_i32x4_shuffle(t1_, t3_, 0, 1, 4, 5); (r3) = wasm_i32x4_shuffle(t1_, t3_, 2, 3, 6, 7); \
    } while (0)
static inline float V4_HSUM(csasn__v4 a) {
    return (wasm_f32x4_extract_lane(a, 0) + wasm_f32x4_extract_lane(a, 1)) +
           (wasm_f32x4_extract_lane(a, 2) + wasm_f32x4_extract_lane(a, 3));
}
static inline float V4_HMAX(csasn__v4 a) {
    float x = wasm_f32x4_extract_lane(a, 0), y = wasm_f32x4_extract_lane(a, 1);
    float z = wasm_f32x4_extract_lane(a, 2), w = wasm_f32x4_extract_lane(a, 3);
    x = x > y ? x : y; z = z > w ? z : w;
    return x > z ? x : z;
}

#elif (defined(__SSE2__) || defined(_M_X64)) && !defined(CSASN_SCALAR)
#include <emmintrin.h>
#define CSASN_SIMD_NAME "sse2"
typedef __m128 csasn__v4;
typedef __m128i csasn__v4i;
#define V4_LOAD(p)        _mm_loadu_ps(p)
#define V4_STORE(p, a)    _mm_storeu_ps((p), (a))
#define V4_SPLAT(x)       _mm_set1_ps(x)
#define V4_LOAD_SPLAT(p)  _mm_load1_ps(p)
#define V4_ZERO()         _mm_setzero_ps()
#define V4_ADD(a, b)      _mm_add_ps((a), (b))
#define V4_SUB(a, b)      _mm_sub_ps((a), (b))
#define V4_MUL(a, b)      _mm_mul_ps((a), (b))
#define V4_DIV(a, b)      _mm_div_ps((a), (b))
/* Argument order chosen to match wasm pmax/pmin: pmax(a,b) = a < b ? b : a. */
#define V4_MAX(a, b)      _mm_max_ps((b), (a))
#define V4_MIN(a, b)      _mm_min_ps((b), (a))
#define V4_AND(a, b)      _mm_and_ps((a), (b))
#define V4_OR(a, b)       _mm_or_ps((a), (b))
#define V4_XOR(a, b)      _mm_xor_ps((a), (b))
#define V4_SQRT(a)        _mm_sqrt_ps(a)
#define V4_LT(a, b)       _mm_cmplt_ps((a), (b))
#define V4_SEL(m, a, b)   _mm_or_ps(_mm_and_ps((m), (a)), _mm_andnot_ps((m), (b)))
#define V4_AS_I(a)        _mm_castps_si128(a)
#define V4I_AS_F(a)       _mm_castsi128_ps(a)
#define V4I_ADD(a, b)     _mm_add_epi32((a), (b))
#define V4I_SHL(a, n)     _mm_slli_epi32((a), (n))
#define V4I_SPLAT(x)      _mm_set1_epi32(x)
#define V4_TRANSPOSE4(r0, r1, r2, r3) _MM_TRANSPOSE4_PS((r0), (r1), (r2), (r3))
static inline float V4_HSUM(csasn__v4 a) {
    float t[4];
    _mm_storeu_ps(t, a);
    return (t[0] + t[1]) + (t[2] + t[3]);
}
static inline float V4_HMAX(csasn__v4 a) {
    float t[4];
    _mm_storeu_ps(t, a);
    float x = t[0] > t[1] ? t[0] : t[1], z = t[2] > t[3] ? t[2] : t[3];
    return x > z ? x : z;
}

#else
#define CSASN_SIMD_NAME "scalar"
typedef struct { float v[4]; } csasn__v4;
typedef struct { int32_t v[4]; } csasn__v4i;
#define CSASN__V4_OP(name, expr) \
    static inline csasn__v4 name(csasn__v4 a, csasn__v4 b) { \
        csasn__v4 r; for (int i = 0; i < 4; i++) r.v[i] = (expr); return r; }
CSASN__V4_OP(csasn__v4_add, a.v[i] + b.v[i])
CSASN__V4_OP(csasn__v4_sub, a.v[i] - b.v[i])
CSASN__V4_OP(csasn__v4_mul, a.v[i] * b.v[i])
CSASN__V4_OP(csasn__v4_div, a.v[i] / b.v[i])
CSASN__V4_OP(csasn__v4_max, a.v[i] < b.v[i] ? b.v[i] : a.v[i])
CSASN__V4_OP(csasn__v4_min, b.v[i] < a.v[i] ? b.v[i] : a.v[i])
#undef CSASN__V4_OP
static inline csasn__v4 csasn__v4_load(const float *p) { csasn__v4 r; memcpy(r.v, p, 16); return r; }
static inline void csasn__v4_store(float *p, csasn__v4 a) { memcpy(p, a.v, 16); }
static inline csasn__v4 csasn__v4_splat(float x) { csasn__v4 r = {{x, x, x, x}}; return r; }
static inline csasn__v4i csasn__v4_as_i(csasn__v4 a) { csasn__v4i r; memcpy(r.v, a.v, 16); return r; }
static inline csasn__v4 csasn__v4i_as_f(csasn__v4i a) { csasn__v4 r; memcpy(r.v, a.v, 16); return r; }
static inline csasn__v4i csasn__v4i_add(csasn__v4i a, csasn__v4i b) {
    csasn__v4i r; for (int i = 0; i < 4; i++) r.v[i] = (int32_t)((uint32_t)a.v[i] + (uint32_t)b.v[i]); return r; }
static inline csasn__v4i csasn__v4i_shl(csasn__v4i a, int n) {
    csasn__v4i r; for (int i = 0; i < 4; i++) r.v[i] = (int32_t)((uint32_t)a.v[i] << n); return r; }
static inline csasn__v4i csasn__v4i_splat(int32_t x) { csasn__v4i r = {{x, x, x, x}}; return r; }
static inline csasn__v4 csasn__v4_bits(csasn__v4 a, csasn__v4 b, int op) {
    csasn__v4i x = csasn__v4_as_i(a), y = csasn__v4_as_i(b);
    for (int i = 0; i < 4; i++) x.v[i] = op == 0 ? (x.v[i] & y.v[i]) : op == 1 ? (x.v[i] | y.v[i]) : (x.v[i] ^ y.v[i]);
    return csasn__v4i_as_f(x);
}
static inline csasn__v4 csasn__v4_sqrt(csasn__v4 a) {
    for (int i = 0; i < 4; i++) a.v[i] = __builtin_sqrtf(a.v[i]);
    return a;
}
static inline csasn__v4 csasn__v4_lt(csasn__v4 a, csasn__v4 b) {
    csasn__v4i r; for (int i = 0; i < 4; i++) r.v[i] = a.v[i] < b.v[i] ? -1 : 0; return csasn__v4i_as_f(r); }
static inline csasn__v4 csasn__v4_sel(csasn__v4 m, csasn__v4 a, csasn__v4 b) {
    csasn__v4i mi = csasn__v4_as_i(m), ai = csasn__v4_as_i(a), bi = csasn__v4_as_i(b), r;
    for (int i = 0; i < 4; i++) r.v[i] = (ai.v[i] & mi.v[i]) | (bi.v[i] & ~mi.v[i]);
    return csasn__v4i_as_f(r); }
#define V4_LOAD(p)        csasn__v4_load(p)
#define V4_STORE(p, a)    csasn__v4_store((p), (a))
#define V4_SPLAT(x)       csasn__v4_splat(x)
#define V4_LOAD_SPLAT(p)  csasn__v4_splat(*(p))
#define V4_ZERO()         csasn__v4_splat(0.0f)
#define V4_ADD(a, b)      csasn__v4_add((a), (b))
#define V4_SUB(a, b)      csasn__v4_sub((a), (b))
#define V4_MUL(a, b)      csasn__v4_mul((a), (b))
#define V4_DIV(a, b)      csasn__v4_div((a), (b))
#define V4_MAX(a, b)      csasn__v4_max((a), (b))
#define V4_MIN(a, b)      csasn__v4_min((a), (b))
#define V4_AND(a, b)      csasn__v4_bits((a), (b), 0)
#define V4_OR(a, b)       csasn__v4_bits((a), (b), 1)
#define V4_XOR(a, b)      csasn__v4_bits((a), (b), 2)
#define V4_SQRT(a)        csasn__v4_sqrt(a)
#define V4_LT(a, b)       csasn__v4_lt((a), (b))
#define V4_SEL(m, a, b)   csasn__v4_sel((m), (a), (b))
#define V4_AS_I(a)        csasn__v4_as_i(a)
#define V4I_AS_F(a)       csasn__v4i_as_f(a)
#define V4I_ADD(a, b)     csasn__v4i_add((a), (b))
#define V4I_SHL(a, n)     csasn__v4i_shl((a), (n))
#define V4I_SPLAT(x)      csasn__v4i_splat(x)
#define V4_TRANSPOSE4(r0, r1, r2, r3) do { \
        csasn__v4 *rr_[4] = {&(r0), &(r1), &(r2), &(r3)}; \
        for (int i_ = 0; i_ < 4; i_++) \
            for (int j_ = i_ + 1; j_ < 4; j_++) { \
                float x_ = rr_[i_]->v[j_]; rr_[i_]->v[j_] = rr_[j_]->v[i_]; rr_[j_]->v[i_] = x_; \
            } \
    } while (0)
static inline float V4_HSUM(csasn__v4 a) { return (a.v[0] + a.v[1]) + (a.v[2] + a.v[3]); }
static inline float V4_HMAX(csasn__v4 a) {
    float x = a.v[0] > a.v[1] ? a.v[0] : a.v[1], z = a.v[2] > a.v[3] ? a.v[2] : a.v[3];
    return x > z ? x : z;
}
#endif

#ifndef V4_MADD
#define V4_MADD(c, a, b)  V4_ADD((c), V4_MUL((a), (b)))
#endif

#endif /* CSASN_SIMD_H */
