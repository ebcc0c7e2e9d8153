/* parallel.c - the kernels' thread pool (src/kernels/parallel.h).
 *
 * A minimal fork-join pool for the threaded wasm build (emcc -pthread,
 * used when the page is cross-origin isolated) and, natively, for tests and
 * benchmarks that ask for it with csasn__set_threads. Work is split by output
 * columns (GEMM), output rows (depthwise) or query blocks (attention): every
 * output is computed by exactly the same instructions as with one thread, so
 * results are bit-identical whatever the thread count.
 *
 * Helpers are started lazily on the first parallel call, spin briefly
 * between jobs (a forward pass is ~150 back-to-back parallel calls) and then
 * sleep on a condition variable. A helper that has not started running yet
 * (a pthread in the browser starts in a Worker of emscripten's pool) is not
 * waited for: until every helper has checked in, calls run on one thread. */
#include "kernels.h"
#include "parallel.h"

#include <assert.h>
#include <stdint.h>

#ifdef CSASN_THREADS
#include <pthread.h>
#include <stdatomic.h>
static struct {
    pthread_mutex_t mu;
    pthread_cond_t go, fin;
    atomic_uint gen;            /* bumped once per job */
    atomic_int pending;         /* helpers still inside the current job */
    atomic_int alive;           /* helpers that have started running */
    int started;                /* helpers created (caller's thread only) */
    int want;                   /* threads to use, 1..CSASN__MAX_THREADS */
    csasn__task_fn fn;
    void *ctx;
    int nparts;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, CSASN_THREADS, NULL, NULL, 1};

static void *helper_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    unsigned seen = atomic_load_explicit(&pool.gen, memory_order_acquire);
    atomic_fetch_add(&pool.alive, 1);
    for (;;) {
        for (int spin = 0; spin < 20000 && atomic_load_explicit(&pool.gen, memory_order_acquire) == seen; spin++)
            ;
        if (atomic_load_explicit(&pool.gen, memory_order_acquire) == seen) {
            pthread_mutex_lock(&pool.mu);
            while (atomic_load_explicit(&pool.gen, memory_order_acquire) == seen) pthread_cond_wait(&pool.go, &pool.mu);
            pthread_mutex_unlock(&pool.mu);
        }
        seen = atomic_load_explicit(&pool.gen, memory_order_acquire);
        if (id < pool.nparts) pool.fn(pool.ctx, id, pool.nparts);
        if (atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel) == 1) {
            /* the last one out wakes the caller if it went to sleep (under
             * mu: the caller re-checks pending under mu before waiting) */
            pthread_mutex_lock(&pool.mu);
            pthread_cond_signal(&pool.fin);
            pthread_mutex_unlock(&pool.mu);
        }
    }
    return NULL;
}

void csasn__set_threads(int n)
{
    pool.want = n < 1 ? 1 : n > CSASN__MAX_THREADS ? CSASN__MAX_THREADS : n;
}

int csasn__threads(void) { return pool.want; }

int csasn__parallel(csasn__task_fn fn, void *ctx, int parts)
{
    assert(fn && parts >= 1);
    int n = parts < pool.want ? parts : pool.want;
    while (pool.started < n - 1) {
        pthread_t t;
        if (pthread_create(&t, NULL, helper_main, (void *)(intptr_t)(pool.started + 1))) break;
        pthread_detach(t);
        pool.started++;
    }
    if (n > pool.started + 1) n = pool.started + 1;
    if (n < 2 || atomic_load(&pool.alive) < pool.started) {
        fn(ctx, 0, 1);
        return 1;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.nparts = n;
    atomic_store_explicit(&pool.pending, pool.started, memory_order_relaxed);
    pthread_mutex_lock(&pool.mu);
    atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
    pthread_cond_broadcast(&pool.go);
    pthread_mutex_unlock(&pool.mu);
    fn(ctx, 0, n);
    /* the parts are even, so the helpers are usually done or nearly: spin a
     * little, then sleep (on a loaded machine a spinning caller would take
     * the core a descheduled helper needs) */
    for (int spin = 0; spin < 2000 && atomic_load_explicit(&pool.pending, memory_order_acquire); spin++)
        ;
    if (atomic_load_explicit(&pool.pending, memory_order_acquire)) {
        pthread_mutex_lock(&pool.mu);
        while (atomic_load_explicit(&pool.pending, memory_order_acquire)) pthread_cond_wait(&pool.fin, &pool.mu);
        pthread_mutex_unlock(&pool.mu);
    }
    return n;
}
#else
void csasn__set_threads(int n) { (void)n; }   /* built without threads: always 1 */
int csasn__threads(void) { return 1; }
#endif
