/* parallel.h - private to src/kernels/: the fork-join pool the GEMM,
 * depthwise and attention kernels split their outputs over (parallel.c).
 * The thread count itself is set through kernels.h (csasn__set_threads). */
#ifndef CSASN_KERNELS_PARALLEL_H
#define CSASN_KERNELS_PARALLEL_H

/* One part of a job: part in 0..nparts-1, each writing outputs of its own. */
typedef void (*csasn__task_fn)(void *ctx, int part, int nparts);

/* Runs fn(ctx, part, n) for part = 0..n-1, n = min(parts, threads), part 0
 * on the calling thread; returns when every part is done. Returns n (1:
 * fn(ctx, 0, 1) ran alone). */
#ifdef CSASN_THREADS
int csasn__parallel(csasn__task_fn fn, void *ctx, int parts);
#else
/* Built without threads (the single-thread wasm build): the job runs whole,
 * here, inline, so that each kernel's part function inlines into the kernel
 * (called through a pointer in parallel.c instead, the wasm depthwise
 * kernel ran ~13% more instructions in V8). */
static inline int csasn__parallel(csasn__task_fn fn, void *ctx, int parts)
{
    (void)parts;
    fn(ctx, 0, 1);
    return 1;
}
#endif

#endif
