/* One block of event-driven pair STDP on a CSR projection, step by step (neuro_plasticity).
 *
 * The compiled form of EventPairSTDP.on_spikes called once per step of a block, followed by
 * the caller's finalize (max(w, 0), pruning mask). Every arithmetic operation is the one the
 * numpy code does, in the same order and precision (float32 weights, float64 traces), so the
 * two give bitwise-equal weights; tests compare them. Built and loaded by native.py.
 *
 * Per step t (spikes pre q[t], post p[t]):
 *   1. columns of the pre spikes (LTD): for synapse s = (i <- j), j in q[t], in ascending s:
 *        sent[o++] = w[s], the weight the spike transmits (before this step's change);
 *        unless i in p[t] (handled in 2): dw = -(eta A- f-(w) y_i(t-)), apply.
 *   2. rows of the post spikes (LTP): for s = (i <- j), i in p[t]:
 *        dw = eta A+ f+(w) x_j(t-); if j in q[t]: dw -= eta A- f-(w) y_i(t-); apply.
 *   3. traces: x_j += e_pre[t] (all-to-all) or x_j = e_pre[t] (nearest) for j in q[t];
 *      y_i likewise.
 * apply: dw *= factor[t]; clip dw to +-max_delta; v = w + dw (double); clip to [lo, hi];
 *        w = (float) v; w = max(w, 0) if floor; w = 0 if pruned[s].
 */
#include <stdint.h>

/* the column loop reads w at scattered synapses: prefetch this many iterations ahead */
#ifndef PREFETCH
#define PREFETCH 8
#endif

typedef struct {
    int64_t soft, nearest, has_md, has_lo, has_hi, floor;
    double c_plus, c_minus, w_min, w_max, md, lo, hi;
} stdp_params;

static inline void apply(float *w, int64_t s, double dw, double fac, const stdp_params *P,
                         const uint8_t *pruned) {
    dw *= fac;
    if (P->has_md) {
        if (dw < -P->md) dw = -P->md;
        if (dw > P->md) dw = P->md;
    }
    double v = (double)w[s] + dw;
    if (P->has_lo && v < P->lo) v = P->lo;
    if (P->has_hi && v > P->hi) v = P->hi;
    float f = (float)v;
    if (P->floor && f < 0.0f) f = 0.0f;
    if (pruned && pruned[s]) f = 0.0f;
    w[s] = f;
}

/* eta A+ f+(w) x as numpy evaluates it: soft: float32(float32(c+) * float32(float32(w_max) - w)) * x */
static inline double ltp(float w, double x, const stdp_params *P) {
    if (P->soft) {
        float a = (float)P->w_max - w;
        float b = (float)P->c_plus * a;
        return (double)b * x;
    }
    return x * P->c_plus;
}

static inline double ltd_size(float w, double y, const stdp_params *P) {
    if (P->soft) {
        float a = w - (float)P->w_min;
        float b = (float)P->c_minus * a;
        return (double)b * y;
    }
    return y * P->c_minus;
}

/* mark_*: 1 for the neurons spiking at the current step (0 between calls). Writes one sent
 * value per column synapse of each pre spike, in the order of q. */
void stdp_block(int64_t k, const int64_t *q_ptr, const int64_t *q, const int64_t *p_ptr,
                const int64_t *p, const int64_t *crow, const int64_t *col, const int64_t *csc_ptr,
                const int64_t *csc_order, const int64_t *csc_rows, double *X, double *Y,
                const double *d_pre, const double *d_post, const double *e_pre,
                const double *e_post, const double *factor, const stdp_params *P, float *w,
                const uint8_t *pruned, uint8_t *mark_pre, uint8_t *mark_post, float *sent) {
    int64_t o = 0;
    for (int64_t t = 0; t < k; t++) {
        const int64_t q0 = q_ptr[t], q1 = q_ptr[t + 1], p0 = p_ptr[t], p1 = p_ptr[t + 1];
        if (q0 == q1 && p0 == p1) continue;
        for (int64_t a = q0; a < q1; a++) mark_pre[q[a]] = 1;
        for (int64_t a = p0; a < p1; a++) mark_post[p[a]] = 1;
        const double dp = d_pre[t], dq = d_post[t], fac = factor[t];
        /* 1. columns of the pre spikes */
        for (int64_t a = q0; a < q1; a++) {
            const int64_t j = q[a];
            const int64_t r1 = csc_ptr[j + 1];
            for (int64_t r = csc_ptr[j]; r < r1; r++) {
                const int64_t s = csc_order[r], i = csc_rows[r];
#if defined(__GNUC__) || defined(__clang__)
                if (r + PREFETCH < r1) __builtin_prefetch(&w[csc_order[r + PREFETCH]], 1);
#endif
                sent[o++] = w[s];
                if (mark_post[i]) continue;
                const double y = Y[i] * dq;
                apply(w, s, -ltd_size(w[s], y, P), fac, P, pruned);
            }
        }
        /* 2. rows of the post spikes */
        for (int64_t a = p0; a < p1; a++) {
            const int64_t i = p[a];
            const int64_t s1 = crow[i + 1];
            for (int64_t s = crow[i]; s < s1; s++) {
                const int64_t j = col[s];
                const double x = X[j] * dp;
                double dw = ltp(w[s], x, P);
                if (mark_pre[j]) dw -= ltd_size(w[s], Y[i] * dq, P);
                apply(w, s, dw, fac, P, pruned);
            }
        }
        /* 3. traces */
        for (int64_t a = q0; a < q1; a++) {
            mark_pre[q[a]] = 0;
            if (P->nearest) X[q[a]] = e_pre[t]; else X[q[a]] += e_pre[t];
        }
        for (int64_t a = p0; a < p1; a++) {
            mark_post[p[a]] = 0;
            if (P->nearest) Y[p[a]] = e_post[t]; else Y[p[a]] += e_post[t];
        }
    }
}
