/* Per-rating SGD over a block grid, stratum by stratum: the speed-of-light probe of mfbench.
 *
 * The same arithmetic and the same visiting order as numba[schedule=blocked]
 * (plugins/strategies/numba.py, blocked_pass and sgd_step): stratum s holds the cells
 * (row_perm[j], col_perm[(j + strata[s]) % blocks]) for j = 0..blocks-1; a cell's ratings
 * are offsets[cell]..offsets[cell + 1] of the stored arrays, visited in stored order. The
 * cells of one stratum share no user and no item range, so threads train them at once with
 * no conflict and the result does not depend on the thread count.
 *
 * One step on rating r of (u, i), with lr2 = 2 lr and decay = 1 - 2 lr reg:
 *     err = <p_u, q_i> [+ mean + b_u + b_i] - r
 *     p_u = p_u * decay - lr2 * err * q_i,  q_i = q_i * decay - lr2 * err * p_u   (pre-step values)
 *     b_u = b_u * decay - lr2 * err,        b_i = b_i * decay - lr2 * err         (biased model)
 * sse[cell] receives the cell's sum of squared errors, each taken before its step.
 *
 * Written plainly on purpose: loops the compiler vectorizes by itself (allowed to reorder the
 * dot product's sum and to fuse multiply-adds, as numba's fastmath={reassoc, contract} allows),
 * no prefetching, no hand-written intrinsics, so it says what a plain compiled loop reaches on
 * the machine. GCC's `omp simd reduction` was measured 3x slower here: it keeps the partial
 * sums in a stack array and adds the tail through memory.
 */
#include <stdint.h>

#define MF_BLOCKED(NAME, REAL)                                                                    \
    static double NAME##_cell(REAL *restrict P, REAL *restrict Q, REAL *restrict bu,             \
                              REAL *restrict bi, int biased, int64_t k,                          \
                              const int32_t *restrict users, const int32_t *restrict items,      \
                              const REAL *restrict values, int64_t lo, int64_t hi, REAL mean,    \
                              REAL lr2, REAL decay)                                              \
    {                                                                                            \
        double total = 0.0;                                                                      \
        for (int64_t t = lo; t < hi; ++t) {                                                      \
            const int64_t u = users[t], i = items[t];                                            \
            REAL *restrict pu = P + u * k;                                                       \
            REAL *restrict qi = Q + i * k;                                                       \
            REAL pred = 0;                                                                       \
            for (int64_t j = 0; j < k; ++j)                                                      \
                pred += pu[j] * qi[j];                                                           \
            if (biased)                                                                          \
                pred += mean + bu[u] + bi[i];                                                    \
            const REAL err = pred - values[t];                                                   \
            const REAL g = lr2 * err;                                                            \
            for (int64_t j = 0; j < k; ++j) {                                                    \
                const REAL p = pu[j], q = qi[j];                                                 \
                pu[j] = p * decay - g * q;                                                       \
                qi[j] = q * decay - g * p;                                                       \
            }                                                                                    \
            if (biased) {                                                                        \
                bu[u] = bu[u] * decay - g;                                                       \
                bi[i] = bi[i] * decay - g;                                                       \
            }                                                                                    \
            total += (double)err * (double)err;                                                  \
        }                                                                                        \
        return total;                                                                            \
    }                                                                                            \
                                                                                                 \
    void NAME(REAL *P, REAL *Q, REAL *bu, REAL *bi, int biased, int64_t k,                       \
              const int32_t *users, const int32_t *items, const REAL *values,                    \
              const int64_t *offsets, int64_t blocks, const int64_t *row_perm,                   \
              const int64_t *col_perm, const int64_t *strata, REAL mean, REAL lr2, REAL decay,   \
              double *sse, int threads)                                                          \
    {                                                                                            \
        _Pragma("omp parallel num_threads(threads) if (threads > 1)")                            \
        for (int64_t s = 0; s < blocks; ++s) {                                                   \
            const int64_t shift = strata[s];                                                     \
            _Pragma("omp for schedule(static)")                                                  \
            for (int64_t j = 0; j < blocks; ++j) {                                               \
                const int64_t cell = row_perm[j] * blocks + col_perm[(j + shift) % blocks];      \
                sse[cell] = NAME##_cell(P, Q, bu, bi, biased, k, users, items, values,           \
                                        offsets[cell], offsets[cell + 1], mean, lr2, decay);     \
            }                                                                                    \
        }                                                                                        \
    }

MF_BLOCKED(mf_blocked_f32, float)
MF_BLOCKED(mf_blocked_f64, double)

/* The ABI version the loader checks, so a stale cached build is never called with new arguments. */
int mf_abi_version(void) { return 1; }
