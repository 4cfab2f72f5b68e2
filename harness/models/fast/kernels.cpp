// Fused CPU kernels (float32) for the fast path of harness.models (see native.py for what each does
// and why). Plain C++17 + OpenMP, no torch headers; the interface is kernels.h, and bindings.cpp
// registers them as torch operators (torch.ops.harness.*).
#include "kernels.h"
#include <cstdint>
#include <cmath>
#include <cstring>
#include <algorithm>
#include <omp.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

static inline uint32_t keep_hash(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (uint32_t)(z >> 32);
}

// exp for x <= 0 (softmax arguments), Cephes-style: 2^n * P(r); ~1 ulp; vectorisable.
static inline float exp_neg(float x) {
    x = std::max(x, -87.0f);
    float n = std::nearbyint(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float s;
    std::memcpy(&s, &e, 4);
    return p * s;
}

extern "C" {

// out[i] = (x ? x[i] : 0) + f(y[i]) * (keep(i) ? scale : 0),  f = relu if relu else identity.
// out may alias y or x. thr: drop iff hash < thr.
void dropout_fwd(float* out, const float* x, const float* y, int64_t n, uint64_t seed,
                 uint32_t thr, float scale, int relu) {
    #pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < (n + 4095) / 4096; ++blk) {
        int64_t lo = blk * 4096, hi = std::min(n, lo + 4096);
        #pragma omp simd
        for (int64_t i = lo; i < hi; ++i) {
            float v = y[i];
            if (relu) v = v > 0.0f ? v : 0.0f;
            float m = keep_hash(seed, (uint64_t)i) >= thr ? scale : 0.0f;
            out[i] = (x ? x[i] : 0.0f) + v * m;
        }
    }
}

// g_in[i] = g[i] * (keep(i) ? scale : 0)   (the same mask as dropout_fwd)
void dropout_bwd(float* g_in, const float* g, int64_t n, uint64_t seed, uint32_t thr, float scale) {
    #pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < (n + 4095) / 4096; ++blk) {
        int64_t lo = blk * 4096, hi = std::min(n, lo + 4096);
        #pragma omp simd
        for (int64_t i = lo; i < hi; ++i)
            g_in[i] = keep_hash(seed, (uint64_t)i) >= thr ? g[i] * scale : 0.0f;
    }
}

// mask materialised (tests): m[i] = keep(i) ? scale : 0
void dropout_mask(float* m, int64_t n, uint64_t seed, uint32_t thr, float scale) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) m[i] = keep_hash(seed, (uint64_t)i) >= thr ? scale : 0.0f;
}

// Released LayerNorm: y = a * (x - mean) / (std_unbiased + eps) + b; saves mean, r = 1/(std+eps), std.
void layer_norm_fwd(const float* x, const float* a, const float* b, float* y, float* mean_out,
                    float* r_out, float* std_out, int64_t rows, int64_t c, float eps) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; ++i) {
        const float* xr = x + i * c;
        float* yr = y + i * c;
        double s = 0.0;
        for (int64_t j = 0; j < c; ++j) s += xr[j];
        float mu = (float)(s / c);
        float ss = 0.0f;
        #pragma omp simd reduction(+:ss)
        for (int64_t j = 0; j < c; ++j) { float d = xr[j] - mu; ss += d * d; }
        float sd = std::sqrt(ss / (float)(c - 1));
        float r = 1.0f / (sd + eps);
        #pragma omp simd
        for (int64_t j = 0; j < c; ++j) yr[j] = a[j] * ((xr[j] - mu) * r) + b[j];
        mean_out[i] = mu; r_out[i] = r; std_out[i] = sd;
    }
}

// Backward; da, db (length c) are written (not accumulated).
void layer_norm_bwd(const float* g, const float* x, const float* a, const float* mean,
                    const float* rr, const float* sd, float* dx, float* da, float* db,
                    int64_t rows, int64_t c) {
    int nt = omp_get_max_threads();
    float* acc = new float[(size_t)nt * 2 * c]();
    #pragma omp parallel
    {
        float* pa = acc + (size_t)omp_get_thread_num() * 2 * c;
        float* pb = pa + c;
        #pragma omp for schedule(static)
        for (int64_t i = 0; i < rows; ++i) {
            const float* gr = g + i * c;
            const float* xr = x + i * c;
            float mu = mean[i], r = rr[i];
            float sh = 0.0f, shx = 0.0f;
            #pragma omp simd reduction(+:sh, shx)
            for (int64_t j = 0; j < c; ++j) {
                float xh = (xr[j] - mu) * r;
                float h = gr[j] * a[j];
                sh += h; shx += h * xh;
                pa[j] += gr[j] * xh; pb[j] += gr[j];
            }
            float k = sd[i] > 0.0f ? shx / ((float)(c - 1) * sd[i]) : 0.0f;
            float m = sh / (float)c;
            float* dr = dx + i * c;
            #pragma omp simd
            for (int64_t j = 0; j < c; ++j) {
                float xh = (xr[j] - mu) * r;
                dr[j] = r * (gr[j] * a[j] - m) - k * xh;
            }
        }
    }
    for (int64_t j = 0; j < c; ++j) { da[j] = 0.0f; db[j] = 0.0f; }
    for (int t = 0; t < nt; ++t)
        for (int64_t j = 0; j < c; ++j) { da[j] += acc[(size_t)t * 2 * c + j]; db[j] += acc[(size_t)t * 2 * c + c + j]; }
    delete[] acc;
}

// Attention core. qkv: node-major (N*B, H*3*D) with columns (head, q|k|v, d); o: (N*B, H*D).
// lse: (B*H*N) log-sum-exp of each row of the scaled scores (saved for the backward).
// Dropout on the weights: element (bh, i, j) has index (bh*N + i)*N + j.
// Per (sample, head) everything lives in small local tiles (a few KB, in L1). Rows of scores
// are held in registers as NB vectors of 16 nodes (keys transposed, d-major, nodes padded to
// NP = 16 * NB); outputs as 2 vectors of 16 features (head dim padded to 32).
}  // extern "C"

// Attention core. qkv: node-major (N*B, H*3*D) with columns (head, q|k|v, d); o: (N*B, H*D).
// lse: (B*H*N) log-sum-exp of each row of the scaled scores (saved for the backward).
// Dropout on the weights: element (bh, i, j) has index (bh*N + i)*N + j.
// Work is split by sample: a sample's rows (one per node, far apart in the node-major layout)
// are copied to a local buffer while the next sample's rows are prefetched. Per (sample, head)
// everything lives in small local tiles (a few KB, in L1); a row of scores is held in NB
// registers of 8 nodes (keys transposed, d-major, nodes padded to 8 * NB), an output row in DB
// registers of 8 features (head dim padded to 8 * DB). 8-lane vectors waste fewer lanes on
// 34-node graphs than 16-lane ones, at the same FMA rate on this kind of core.
typedef float v8 __attribute__((vector_size(32)));
typedef int32_t i8v __attribute__((vector_size(32)));
#define MAXN 64
#define MAXD 32

static inline v8 vbroadcast(float x) { return (v8){} + x; }

static inline v8 vexp_neg(v8 x) {   // exp_neg on 8 lanes
    const v8 lo = vbroadcast(-87.0f);
    x = x < lo ? lo : x;
    v8 n = x * 1.44269504088896341f;
    n = __builtin_convertvector(__builtin_convertvector(n + (n >= 0.0f ? vbroadcast(0.5f) : vbroadcast(-0.5f)), i8v), v8);
    v8 r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    v8 p = vbroadcast(1.9875691500E-4f);
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    i8v e = (__builtin_convertvector(n, i8v) + 127) << 23;
    v8 sc;
    std::memcpy(&sc, &e, 32);
    return p * sc;
}

static inline float hmax(v8 v) { float m = v[0]; for (int k = 1; k < 8; ++k) m = std::max(m, v[k]); return m; }
static inline float hsum(v8 v) { float m = 0.0f; for (int k = 0; k < 8; ++k) m += v[k]; return m; }

static inline void prefetch_rows(const float* p, int64_t n, int64_t stride, int64_t len) {
    for (int64_t m = 0; m < n; ++m)
        for (int64_t x = 0; x < len; x += 16) __builtin_prefetch(p + m * stride + x, 0, 3);
}

struct Tiles {
    alignas(64) float KT[MAXD * MAXN];   // [d][j], stride 8*NB
    alignas(64) float VT[MAXD * MAXN];
    alignas(64) float Q[MAXN * MAXD];    // [j][d], stride MAXD (padded with zeros)
    alignas(64) float K[MAXN * MAXD];
    alignas(64) float V[MAXN * MAXD];
    alignas(64) float dK[MAXN * MAXD];
    alignas(64) float dV[MAXN * MAXD];
    alignas(64) float PM[MAXN * MAXN];   // backward: rows of P * mask and of dS
    alignas(64) float DS[MAXN * MAXN];
    alignas(64) float mrow[MAXN];
    alignas(64) v8 valid[MAXN / 8];
    void init(int64_t N) {
        std::memset(this, 0, sizeof(Tiles));
        for (int k = 0; k < MAXN / 8; ++k)
            for (int l = 0; l < 8; ++l) valid[k][l] = (8 * k + l) < N ? 1.0f : 0.0f;
    }
};

// Per-thread scratch, allocated once per thread and kept (allocating it per call in the OpenMP
// workers costs page faults every call: their malloc arenas hand memory back to the kernel).
static Tiles* thread_tiles(int64_t N) {
    static thread_local Tiles* t = nullptr;
    static thread_local int64_t n_for = -1;
    if (!t) t = new Tiles;
    if (n_for != N) { t->init(N); n_for = N; }
    return t;
}

static float* thread_buffer(int slot, int64_t n) {
    static thread_local float* buf[3] = {nullptr, nullptr, nullptr};
    static thread_local int64_t cap[3] = {0, 0, 0};
    if (cap[slot] < n) {
        delete[] buf[slot];
        buf[slot] = new float[n + 16];
        cap[slot] = n;
    }
    return buf[slot];
}

template <int NB, int DB>
static void attn_fwd_tile(const float* base, int64_t rs, float* obase, int64_t ors, float* lse_row,
                          int64_t N, int64_t D, float alpha, uint64_t seed, uint64_t row0, uint32_t thr,
                          float scale, int drop, Tiles& T) {
    constexpr int64_t NP = 8 * NB;
    for (int64_t m = 0; m < N; ++m) {
        const float* km = base + m * rs + D;
        for (int64_t d = 0; d < D; ++d) T.KT[d * NP + m] = km[d];
        std::memcpy(T.V + m * MAXD, km + D, D * 4);
    }
    for (int64_t i = 0; i < N; ++i) {
        const float* q = base + i * rs;
        v8 s[NB];
        #pragma GCC unroll 8
        for (int k = 0; k < NB; ++k) s[k] = (v8){};
        for (int64_t d = 0; d < D; ++d) {
            const v8 qd = vbroadcast(q[d] * alpha);
            const v8* kt = (const v8*)(T.KT + d * NP);
            #pragma GCC unroll 8
            for (int k = 0; k < NB; ++k) s[k] += qd * kt[k];
        }
        v8 mxv = vbroadcast(-INFINITY);
        #pragma GCC unroll 8
        for (int k = 0; k < NB; ++k) { s[k] = T.valid[k] != 0.0f ? s[k] : vbroadcast(-INFINITY); mxv = mxv > s[k] ? mxv : s[k]; }
        const float mx = hmax(mxv);
        v8 zv = (v8){};
        #pragma GCC unroll 8
        for (int k = 0; k < NB; ++k) { s[k] = vexp_neg(s[k] - mx) * T.valid[k]; zv += s[k]; }
        const float z = hsum(zv);
        lse_row[i] = mx + std::log(z);
        const float inv = 1.0f / z;
        if (drop) {
            const uint64_t rowid = row0 + (uint64_t)i * (uint64_t)N;
            #pragma omp simd
            for (int64_t j = 0; j < N; ++j) T.mrow[j] = keep_hash(seed, rowid + j) >= thr ? scale : 0.0f;
            const v8* mv = (const v8*)T.mrow;
            #pragma GCC unroll 8
            for (int k = 0; k < NB; ++k) s[k] = s[k] * mv[k] * inv;
        } else {
            #pragma GCC unroll 8
            for (int k = 0; k < NB; ++k) s[k] = s[k] * inv;
        }
        alignas(64) float p[NP];
        #pragma GCC unroll 8
        for (int k = 0; k < NB; ++k) ((v8*)p)[k] = s[k];
        v8 a[DB];
        #pragma GCC unroll 4
        for (int k = 0; k < DB; ++k) a[k] = (v8){};
        for (int64_t j = 0; j < N; ++j) {
            const v8 pj = vbroadcast(p[j]);
            const v8* vj = (const v8*)(T.V + j * MAXD);
            #pragma GCC unroll 4
            for (int k = 0; k < DB; ++k) a[k] += pj * vj[k];
        }
        alignas(64) float acc[MAXD];
        #pragma GCC unroll 4
        for (int k = 0; k < DB; ++k) ((v8*)acc)[k] = a[k];
        std::memcpy(obase + i * ors, acc, D * 4);
    }
}

template <int NB, int DB>
static void attn_bwd_tile(const float* base, float* dbase, int64_t rs, const float* gbase, int64_t ors,
                          const float* lse_row, int64_t N, int64_t D, float alpha, uint64_t seed,
                          uint64_t row0, uint32_t thr, float scale, int drop, Tiles& T) {
    // pass 1, rows i: recompute P, then dS = P * (dP - rowsum(dP * P)) and dQ_i = dS_i K;
    //   the rows of P * mask and dS are kept in tiles (N x NP, in L1)
    // pass 2, columns j: dV_j = sum_i (P * mask)_ij dO_i,  dK_j = sum_i dS_ij Q_i (in registers)
    constexpr int64_t NP = 8 * NB;
    float* PM = T.PM;
    float* DS = T.DS;
    for (int64_t m = 0; m < N; ++m) {
        const float* row = base + m * rs;
        std::memcpy(T.Q + m * MAXD, row, D * 4);
        std::memcpy(T.K + m * MAXD, row + D, D * 4);
        std::memcpy(T.V + m * MAXD, gbase + m * ors, D * 4);   // V tile holds dO rows here
        for (int64_t d = 0; d < D; ++d) { T.KT[d * NP + m] = row[D + d]; T.VT[d * NP + m] = row[2 * D + d]; }
    }
    for (int64_t i = 0; i < N; ++i) {
        const float* g = T.V + i * MAXD;
        const float* qi = T.Q + i * MAXD;
        v8 t[NB], u[NB];
        #pragma GCC unroll 8
        for (int k = 0; k < NB; ++k) { t[k] = (v8){}; u[k] = (v8){}; }
        for (int64_t d = 0; d < D; ++d) {
            const v8 qd = vbroadcast(qi[d] * alpha), gd = vbroadcast(g[d]);
            const v8* kt = (const v8*)(T.KT + d * NP);
            const v8* vt = (const v8*)(T.VT + d * NP);
            #pragma GCC unroll 8
            for (int k = 0; k < NB; ++k) { t[k] += qd * kt[k]; u[k] += gd * vt[k]; }
        }
        const float l = lse_row[i];
        if (drop) {
            const uint64_t rowid = row0 + (uint64_t)i * (uint64_t)N;
            #pragma omp simd
            for (int64_t j = 0; j < N; ++j) T.mrow[j] = keep_hash(seed, rowid + j) >= thr ? scale : 0.0f;
        }
        const v8* mv = (const v8*)T.mrow;
        v8 dsv = (v8){};
        #pragma GCC unroll 8
        for (int k = 0; k < NB; ++k) {
            const v8 p = vexp_neg(t[k] - l) * T.valid[k];
            const v8 mk = drop ? mv[k] : T.valid[k];
            const v8 gp = u[k] * mk;
            ((v8*)(PM + i * NP))[k] = p * mk;
            u[k] = gp;
            t[k] = p;
            dsv += gp * p;
        }
        const float dsum = hsum(dsv);
        float* dsi = DS + i * NP;
        #pragma GCC unroll 8
        for (int k = 0; k < NB; ++k) ((v8*)dsi)[k] = t[k] * (u[k] - dsum) * alpha;
        v8 dq[DB];
        #pragma GCC unroll 4
        for (int k = 0; k < DB; ++k) dq[k] = (v8){};
        for (int64_t j = 0; j < N; ++j) {
            const v8 sj = vbroadcast(dsi[j]);
            const v8* kj = (const v8*)(T.K + j * MAXD);
            #pragma GCC unroll 4
            for (int k = 0; k < DB; ++k) dq[k] += sj * kj[k];
        }
        alignas(64) float dqa[MAXD];
        #pragma GCC unroll 4
        for (int k = 0; k < DB; ++k) ((v8*)dqa)[k] = dq[k];
        std::memcpy(dbase + i * rs, dqa, D * 4);
    }
    for (int64_t j = 0; j < N; ++j) {
        v8 dk[DB], dv[DB];
        #pragma GCC unroll 4
        for (int k = 0; k < DB; ++k) { dk[k] = (v8){}; dv[k] = (v8){}; }
        for (int64_t i = 0; i < N; ++i) {
            const v8 w = vbroadcast(PM[i * NP + j]), sj = vbroadcast(DS[i * NP + j]);
            const v8* gi = (const v8*)(T.V + i * MAXD);
            const v8* qi = (const v8*)(T.Q + i * MAXD);
            #pragma GCC unroll 4
            for (int k = 0; k < DB; ++k) { dv[k] += w * gi[k]; dk[k] += sj * qi[k]; }
        }
        alignas(64) float ka[MAXD], va[MAXD];
        #pragma GCC unroll 4
        for (int k = 0; k < DB; ++k) { ((v8*)ka)[k] = dk[k]; ((v8*)va)[k] = dv[k]; }
        std::memcpy(dbase + j * rs + D, ka, D * 4);
        std::memcpy(dbase + j * rs + 2 * D, va, D * 4);
    }
}

typedef void (*fwd_tile_fn)(const float*, int64_t, float*, int64_t, float*, int64_t, int64_t, float,
                            uint64_t, uint64_t, uint32_t, float, int, Tiles&);
typedef void (*bwd_tile_fn)(const float*, float*, int64_t, const float*, int64_t, const float*, int64_t,
                            int64_t, float, uint64_t, uint64_t, uint32_t, float, int, Tiles&);

template <int NB>
static fwd_tile_fn pick_fwd(int db) {
    switch (db) { case 1: return attn_fwd_tile<NB, 1>; case 2: return attn_fwd_tile<NB, 2>;
                  case 3: return attn_fwd_tile<NB, 3>; default: return attn_fwd_tile<NB, 4>; }
}
template <int NB>
static bwd_tile_fn pick_bwd(int db) {
    switch (db) { case 1: return attn_bwd_tile<NB, 1>; case 2: return attn_bwd_tile<NB, 2>;
                  case 3: return attn_bwd_tile<NB, 3>; default: return attn_bwd_tile<NB, 4>; }
}
static fwd_tile_fn fwd_tile(int nb, int db) {
    switch (nb) { case 1: return pick_fwd<1>(db); case 2: return pick_fwd<2>(db); case 3: return pick_fwd<3>(db);
                  case 4: return pick_fwd<4>(db); case 5: return pick_fwd<5>(db); case 6: return pick_fwd<6>(db);
                  case 7: return pick_fwd<7>(db); default: return pick_fwd<8>(db); }
}
static bwd_tile_fn bwd_tile(int nb, int db) {
    switch (nb) { case 1: return pick_bwd<1>(db); case 2: return pick_bwd<2>(db); case 3: return pick_bwd<3>(db);
                  case 4: return pick_bwd<4>(db); case 5: return pick_bwd<5>(db); case 6: return pick_bwd<6>(db);
                  case 7: return pick_bwd<7>(db); default: return pick_bwd<8>(db); }
}

extern "C" void attention_fwd(const float* qkv, float* o, float* lse, int64_t N, int64_t B, int64_t H,
                              int64_t D, float alpha, uint64_t seed, uint32_t thr, float scale, int drop) {
    const int64_t rs = B * H * 3 * D;      // row stride between nodes in qkv
    const int64_t ors = B * H * D;         // ... in o
    const int64_t W = H * 3 * D, WO = H * D;
    const fwd_tile_fn tile = fwd_tile((int)((N + 7) / 8), (int)((D + 7) / 8));
    #pragma omp parallel
    {
        Tiles* T = thread_tiles(N);
        float* X = thread_buffer(0, N * W);   // this sample's rows, contiguous
        float* Ob = thread_buffer(1, N * WO);
        #pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            if (b + 1 < B) prefetch_rows(qkv + (b + 1) * W, N, rs, W);
            for (int64_t m = 0; m < N; ++m) std::memcpy(X + m * W, qkv + m * rs + b * W, W * 4);
            for (int64_t h = 0; h < H; ++h) {
                const int64_t bh = b * H + h;
                tile(X + h * 3 * D, W, Ob + h * D, WO, lse + bh * N, N, D, alpha, seed,
                     (uint64_t)(bh * N) * (uint64_t)N, thr, scale, drop, *T);
            }
            for (int64_t m = 0; m < N; ++m) std::memcpy(o + m * ors + b * WO, Ob + m * WO, WO * 4);
        }
    }
}

extern "C" void attention_bwd(const float* qkv, const float* go, const float* lse, float* dqkv, int64_t N,
                              int64_t B, int64_t H, int64_t D, float alpha, uint64_t seed, uint32_t thr,
                              float scale, int drop) {
    const int64_t rs = B * H * 3 * D;
    const int64_t ors = B * H * D;
    const int64_t W = H * 3 * D, WO = H * D;
    const bwd_tile_fn tile = bwd_tile((int)((N + 7) / 8), (int)((D + 7) / 8));
    #pragma omp parallel
    {
        Tiles* T = thread_tiles(N);
        float* X = thread_buffer(0, N * W);
        float* G = thread_buffer(1, N * WO);
        float* DX = thread_buffer(2, N * W);
        #pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            if (b + 1 < B) {
                prefetch_rows(qkv + (b + 1) * W, N, rs, W);
                prefetch_rows(go + (b + 1) * WO, N, ors, WO);
            }
            for (int64_t m = 0; m < N; ++m) {
                std::memcpy(X + m * W, qkv + m * rs + b * W, W * 4);
                std::memcpy(G + m * WO, go + m * ors + b * WO, WO * 4);
            }
            for (int64_t h = 0; h < H; ++h) {
                const int64_t bh = b * H + h;
                tile(X + h * 3 * D, DX + h * 3 * D, W, G + h * D, WO, lse + bh * N, N, D, alpha, seed,
                     (uint64_t)(bh * N) * (uint64_t)N, thr, scale, drop, *T);
            }
            for (int64_t m = 0; m < N; ++m) std::memcpy(dqkv + m * rs + b * W, DX + m * W, W * 4);
        }
    }
}

// Chebyshev graph products on node-major features (rows n*B + b), interleaved with the input
// so that a K = 2 convolution is ONE GEMM with the stacked weights:
//   expand:   Z[:, 0:C] = X,  Z[:, C:2C] = A1 X,  Z[:, 2C:3C] = A2 X          (Z: R x 3C)
// with ``op`` = [A1; A2] (2N x N, row-major): [T1; T2] forward, [T1^T; T2^T] for the gradient.
// Register tiles: NG output nodes x 32 features (4 vectors of 8), accumulated over the N inputs;
// one sample's rows stay in cache while all tiles of the sample are computed.
#define LD8(ptr) ({ v8 _v; std::memcpy(&_v, (ptr), 32); _v; })
// outputs of the graph products are written once and read back only by the next GEMM, long
// after they have left the cache: stream them (no read-for-ownership), when aligned
#ifdef __AVX__
#define ST8(ptr, v) do { v8 _v = (v); float* _p = (ptr); \
    if (((uintptr_t)_p & 31) == 0) _mm256_stream_ps(_p, (__m256)_v); else std::memcpy(_p, &_v, 32); } while (0)
#define STREAM_FENCE() _mm_sfence()
#else
#define ST8(ptr, v) do { v8 _v = (v); std::memcpy((ptr), &_v, 32); } while (0)
#define STREAM_FENCE() do {} while (0)
#endif

// acc(g, q) += t_g * x_q over the N inputs, for 4 output rows (or 1), 32 features
static inline void tile_expand4(const float* x, const float* op, float* z, int64_t N, int64_t B, int64_t C,
                                int64_t b, int64_t c0, int64_t r0) {
    v8 a00 = {}, a01 = {}, a02 = {}, a03 = {}, a10 = {}, a11 = {}, a12 = {}, a13 = {};
    v8 a20 = {}, a21 = {}, a22 = {}, a23 = {}, a30 = {}, a31 = {}, a32 = {}, a33 = {};
    const float* o0 = op + r0 * N;
    for (int64_t m = 0; m < N; ++m) {
        const float* xm = x + (m * B + b) * C + c0;
        const v8 x0 = LD8(xm), x1 = LD8(xm + 8), x2 = LD8(xm + 16), x3 = LD8(xm + 24);
        const v8 t0 = vbroadcast(o0[m]), t1 = vbroadcast(o0[N + m]);
        const v8 t2 = vbroadcast(o0[2 * N + m]), t3 = vbroadcast(o0[3 * N + m]);
        a00 += t0 * x0; a01 += t0 * x1; a02 += t0 * x2; a03 += t0 * x3;
        a10 += t1 * x0; a11 += t1 * x1; a12 += t1 * x2; a13 += t1 * x3;
        a20 += t2 * x0; a21 += t2 * x1; a22 += t2 * x2; a23 += t2 * x3;
        a30 += t3 * x0; a31 += t3 * x1; a32 += t3 * x2; a33 += t3 * x3;
    }
    const v8 acc[4][4] = {{a00, a01, a02, a03}, {a10, a11, a12, a13}, {a20, a21, a22, a23}, {a30, a31, a32, a33}};
    for (int g = 0; g < 4; ++g) {
        const int64_t r = r0 + g, k = r / N, n = r % N;
        float* zr = z + (n * B + b) * 3 * C + (k + 1) * C + c0;
        ST8(zr, acc[g][0]); ST8(zr + 8, acc[g][1]); ST8(zr + 16, acc[g][2]); ST8(zr + 24, acc[g][3]);
    }
}

#define ACC4(i) v8 a##i##0 = {}, a##i##1 = {}, a##i##2 = {}, a##i##3 = {}
#define FMA4(i, t) a##i##0 += t * x0; a##i##1 += t * x1; a##i##2 += t * x2; a##i##3 += t * x3
#define STORE4(i, ptr) ST8(ptr, a##i##0); ST8(ptr + 8, a##i##1); ST8(ptr + 16, a##i##2); ST8(ptr + 24, a##i##3)

static inline void tile_expand6(const float* x, const float* op, float* z, int64_t N, int64_t B, int64_t C,
                                int64_t b, int64_t c0, int64_t r0) {
    ACC4(0); ACC4(1); ACC4(2); ACC4(3); ACC4(4); ACC4(5);
    const float* o0 = op + r0 * N;
    for (int64_t m = 0; m < N; ++m) {
        const float* xm = x + (m * B + b) * C + c0;
        const v8 x0 = LD8(xm), x1 = LD8(xm + 8), x2 = LD8(xm + 16), x3 = LD8(xm + 24);
        { const v8 t = vbroadcast(o0[m]); FMA4(0, t); }
        { const v8 t = vbroadcast(o0[N + m]); FMA4(1, t); }
        { const v8 t = vbroadcast(o0[2 * N + m]); FMA4(2, t); }
        { const v8 t = vbroadcast(o0[3 * N + m]); FMA4(3, t); }
        { const v8 t = vbroadcast(o0[4 * N + m]); FMA4(4, t); }
        { const v8 t = vbroadcast(o0[5 * N + m]); FMA4(5, t); }
    }
#define ZROW(g) (z + (((r0 + g) % N) * B + b) * 3 * C + ((r0 + g) / N + 1) * C + c0)
    STORE4(0, ZROW(0)); STORE4(1, ZROW(1)); STORE4(2, ZROW(2));
    STORE4(3, ZROW(3)); STORE4(4, ZROW(4)); STORE4(5, ZROW(5));
#undef ZROW
}

static inline void tile_expand1(const float* x, const float* op, float* z, int64_t N, int64_t B, int64_t C,
                                int64_t b, int64_t c0, int64_t r0) {
    v8 a0 = {}, a1 = {}, a2 = {}, a3 = {};
    const float* o0 = op + r0 * N;
    for (int64_t m = 0; m < N; ++m) {
        const float* xm = x + (m * B + b) * C + c0;
        const v8 t = vbroadcast(o0[m]);
        a0 += t * LD8(xm); a1 += t * LD8(xm + 8); a2 += t * LD8(xm + 16); a3 += t * LD8(xm + 24);
    }
    const int64_t k = r0 / N, n = r0 % N;
    float* zr = z + (n * B + b) * 3 * C + (k + 1) * C + c0;
    ST8(zr, a0); ST8(zr + 8, a1); ST8(zr + 16, a2); ST8(zr + 24, a3);
}

extern "C" void cheb_expand(const float* x, const float* op, float* z, int64_t N, int64_t B, int64_t C) {
    #pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; ++b) {
        if (b + 1 < B) prefetch_rows(x + (b + 1) * C, N, B * C, C);
        for (int64_t n = 0; n < N; ++n) {
            const float* xs = x + (n * B + b) * C;
            float* zd = z + (n * B + b) * 3 * C;
            for (int64_t c = 0; c < C; c += 8) ST8(zd + c, LD8(xs + c));
        }
        for (int64_t c0 = 0; c0 < C; c0 += 32) {
            int64_t r0 = 0;
            for (; r0 + 6 <= 2 * N; r0 += 6) tile_expand6(x, op, z, N, B, C, b, c0, r0);
            for (; r0 + 4 <= 2 * N; r0 += 4) tile_expand4(x, op, z, N, B, C, b, c0, r0);
            for (; r0 < 2 * N; ++r0) tile_expand1(x, op, z, N, B, C, b, c0, r0);
        }
    }
    STREAM_FENCE();
}

extern "C" {
int max_nodes() { return MAXN; }
int max_head_dim() { return MAXD; }
int num_threads() { return omp_get_max_threads(); }

}  // extern "C"
