// The fused CPU kernels of kernels.cpp (float32, contiguous row-major buffers, OpenMP inside).
// Plain C interface, no torch headers; bindings.cpp wraps them as torch operators.
#pragma once
#include <cstdint>

extern "C" {

// Dropout masks: element i is kept iff hash(seed, i) >= thr; kept values are scaled by `scale`.
// out[i] = (x ? x[i] : 0) + f(y[i]) * mask[i],  f = relu if `relu` else identity. out may alias x or y.
void dropout_fwd(float* out, const float* x, const float* y, int64_t n, uint64_t seed, uint32_t thr,
                 float scale, int relu);
// g_in[i] = g[i] * mask[i]
void dropout_bwd(float* g_in, const float* g, int64_t n, uint64_t seed, uint32_t thr, float scale);
// m[i] = mask[i]
void dropout_mask(float* m, int64_t n, uint64_t seed, uint32_t thr, float scale);

// Released LayerNorm over rows of x (rows, c): y = a * (x - mean) / (std_unbiased + eps) + b.
// Saves mean, r = 1 / (std + eps) and std per row for the backward.
void layer_norm_fwd(const float* x, const float* a, const float* b, float* y, float* mean_out,
                    float* r_out, float* std_out, int64_t rows, int64_t c, float eps);
void layer_norm_bwd(const float* g, const float* x, const float* a, const float* mean, const float* rr,
                    const float* sd, float* dx, float* da, float* db, int64_t rows, int64_t c);

// Attention core per (sample, head) on the node-major Q/K/V projection qkv (N*B, H*3*D), columns
// (head, q|k|v, d): o (N*B, H*D) = (softmax(alpha Q K^T) * mask) V, lse (B*H*N) the log-sum-exps.
void attention_fwd(const float* qkv, float* o, float* lse, int64_t N, int64_t B, int64_t H, int64_t D,
                   float alpha, uint64_t seed, uint32_t thr, float scale, int drop);
void attention_bwd(const float* qkv, const float* go, const float* lse, float* dqkv, int64_t N, int64_t B,
                   int64_t H, int64_t D, float alpha, uint64_t seed, uint32_t thr, float scale, int drop);

// z (N*B, 3C) = [X, T_1 X, T_2 X] interleaved per row, op = [T_1; T_2] (2N, N), x node-major (N*B, C).
void cheb_expand(const float* x, const float* op, float* z, int64_t N, int64_t B, int64_t C);

int max_nodes();      // attention kernels: largest N
int max_head_dim();   // ... and largest D
int num_threads();

}  // extern "C"
