// The kernels of kernels.cpp as torch operators, torch.ops.harness.* (CPU, float32, contiguous).
//
// Functional (each returns new tensors) except relu_dropout_, which works in place. Dropout
// seeds are 0-d int64 tensors (so torch.compile can trace the draw); thr and scale as in
// kernels.h. native.py registers the fake (shape) functions for torch.compile.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <optional>
#include <vector>

#include "kernels.h"

namespace {

using at::Tensor;

float* f32(const Tensor& t, const char* what) {
    TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(),
                "harness kernels: ", what, " must be a contiguous float32 CPU tensor");
    return const_cast<float*>(t.const_data_ptr<float>());
}

uint64_t seed_of(const Tensor& s) {
    TORCH_CHECK(s.device().is_cpu() && s.scalar_type() == at::kLong && s.numel() == 1,
                "harness kernels: seed must be a one-element int64 CPU tensor");
    return static_cast<uint64_t>(*s.const_data_ptr<int64_t>());
}

Tensor residual_dropout(const Tensor& x, const Tensor& y, const Tensor& seed, int64_t thr, double scale) {
    TORCH_CHECK(x.sizes() == y.sizes(), "residual_dropout: x and y differ in shape");
    Tensor out = at::empty_like(y);
    dropout_fwd(f32(out, "out"), f32(x, "x"), f32(y, "y"), y.numel(), seed_of(seed), (uint32_t)thr, (float)scale, 0);
    return out;
}

void relu_dropout_(const Tensor& y, const Tensor& seed, int64_t thr, double scale) {
    float* p = f32(y, "y");
    dropout_fwd(p, nullptr, p, y.numel(), seed_of(seed), (uint32_t)thr, (float)scale, 1);
}

Tensor dropout_backward(const Tensor& grad, const Tensor& seed, int64_t thr, double scale) {
    Tensor out = at::empty_like(grad);
    dropout_bwd(f32(out, "out"), f32(grad, "grad"), grad.numel(), seed_of(seed), (uint32_t)thr, (float)scale);
    return out;
}

Tensor dropout_mask_op(int64_t numel, const Tensor& seed, int64_t thr, double scale) {
    Tensor out = at::empty({numel}, at::TensorOptions().dtype(at::kFloat));
    dropout_mask(f32(out, "out"), numel, seed_of(seed), (uint32_t)thr, (float)scale);
    return out;
}

std::tuple<Tensor, Tensor> layer_norm(const Tensor& x, const Tensor& a, const Tensor& b, double eps) {
    TORCH_CHECK(x.dim() == 2, "layer_norm: x must be 2-D");
    const int64_t rows = x.size(0), c = x.size(1);
    Tensor y = at::empty_like(x);
    Tensor stats = at::empty({3, rows}, x.options());
    float* s = f32(stats, "stats");
    layer_norm_fwd(f32(x, "x"), f32(a, "a"), f32(b, "b"), f32(y, "y"), s, s + rows, s + 2 * rows, rows, c, (float)eps);
    return {y, stats};
}

std::tuple<Tensor, Tensor, Tensor> layer_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& a,
                                                       const Tensor& stats) {
    const int64_t rows = x.size(0), c = x.size(1);
    Tensor dx = at::empty_like(x), da = at::empty_like(a), db = at::empty_like(a);
    const float* s = f32(stats, "stats");
    layer_norm_bwd(f32(grad, "grad"), f32(x, "x"), f32(a, "a"), s, s + rows, s + 2 * rows, f32(dx, "dx"),
                   f32(da, "da"), f32(db, "db"), rows, c);
    return {dx, da, db};
}

std::tuple<Tensor, Tensor> attention(const Tensor& qkv, int64_t n, int64_t heads, double alpha, const Tensor& seed,
                                     int64_t thr, double scale, bool drop) {
    const int64_t rows = qkv.size(0), b = rows / n, dk = qkv.size(1) / (3 * heads);
    TORCH_CHECK(n <= max_nodes() && dk <= max_head_dim(), "attention: too many nodes or too wide heads");
    Tensor o = at::empty({rows, heads * dk}, qkv.options());
    Tensor lse = at::empty({b * heads * n}, qkv.options());
    attention_fwd(f32(qkv, "qkv"), f32(o, "o"), f32(lse, "lse"), n, b, heads, dk, (float)alpha,
                  drop ? seed_of(seed) : 0, (uint32_t)thr, (float)scale, drop ? 1 : 0);
    return {o, lse};
}

Tensor attention_backward(const Tensor& qkv, const Tensor& grad_out, const Tensor& lse, int64_t n, int64_t heads,
                          double alpha, const Tensor& seed, int64_t thr, double scale, bool drop) {
    const int64_t rows = qkv.size(0), b = rows / n, dk = qkv.size(1) / (3 * heads);
    Tensor dqkv = at::empty_like(qkv);
    attention_bwd(f32(qkv, "qkv"), f32(grad_out, "grad_out"), f32(lse, "lse"), f32(dqkv, "dqkv"), n, b, heads, dk,
                  (float)alpha, drop ? seed_of(seed) : 0, (uint32_t)thr, (float)scale, drop ? 1 : 0);
    return dqkv;
}

Tensor cheb_expand_op(const Tensor& x, const Tensor& op, int64_t n) {
    const int64_t rows = x.size(0), c = x.size(1);
    TORCH_CHECK(op.dim() == 2 && op.size(0) == 2 * n && op.size(1) == n && rows % n == 0, "cheb_expand: bad shapes");
    Tensor z = at::empty({rows, 3 * c}, x.options());
    cheb_expand(f32(x, "x"), f32(op, "op"), f32(z, "z"), n, rows / n, c);
    return z;
}

std::vector<int64_t> limits() { return {max_nodes(), max_head_dim(), num_threads()}; }

}  // namespace

TORCH_LIBRARY(harness, m) {
    m.def("residual_dropout(Tensor x, Tensor y, Tensor seed, int thr, float scale) -> Tensor");
    m.def("relu_dropout_(Tensor(a!) y, Tensor seed, int thr, float scale) -> ()");
    m.def("dropout_backward(Tensor grad, Tensor seed, int thr, float scale) -> Tensor");
    m.def("dropout_mask(int numel, Tensor seed, int thr, float scale) -> Tensor");
    m.def("layer_norm(Tensor x, Tensor a, Tensor b, float eps) -> (Tensor, Tensor)");
    m.def("layer_norm_backward(Tensor grad, Tensor x, Tensor a, Tensor stats) -> (Tensor, Tensor, Tensor)");
    m.def("attention(Tensor qkv, int n, int heads, float alpha, Tensor seed, int thr, float scale, bool drop)"
          " -> (Tensor, Tensor)");
    m.def("attention_backward(Tensor qkv, Tensor grad_out, Tensor lse, int n, int heads, float alpha, Tensor seed,"
          " int thr, float scale, bool drop) -> Tensor");
    m.def("cheb_expand(Tensor x, Tensor op, int n) -> Tensor");
    m.def("limits() -> int[]", &limits);   // max_nodes, max_head_dim, num_threads
}

TORCH_LIBRARY_IMPL(harness, CPU, m) {
    m.impl("residual_dropout", &residual_dropout);
    m.impl("relu_dropout_", &relu_dropout_);
    m.impl("dropout_backward", &dropout_backward);
    m.impl("dropout_mask", &dropout_mask_op);
    m.impl("layer_norm", &layer_norm);
    m.impl("layer_norm_backward", &layer_norm_backward);
    m.impl("attention", &attention);
    m.impl("attention_backward", &attention_backward);
    m.impl("cheb_expand", &cheb_expand_op);
}
