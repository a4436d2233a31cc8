// kernels.h: the CUDA kernels' host entry points, as the bindings (compiled by the host compiler) see them. Every
// pointer is device memory, every launch goes to stream() (CuPy's current stream, set by the binding) and
// nothing synchronises the device except the functions that return a value to the host (the losses). The
// semantics of each entry point are those of its namesake in csrc/cpu/*.h, with the same signature (the stream is
// the thread's: StreamScope); float and double are instantiated.
#pragma once
#include <cstdint>

struct CUstream_st;  // cudaStream_t is CUstream_st*: the bindings need no CUDA header

namespace fastconv::cuda {

using Stream = CUstream_st*;

// The stream this thread's launches go to (the legacy default stream unless a StreamScope is alive): the bindings
// set CuPy's current stream for the duration of a call, so the kernels' signatures equal the CPU kernels'.
Stream stream();

class StreamScope {
 public:
  explicit StreamScope(Stream s);
  ~StreamScope();
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;

 private:
  Stream previous_;
};

// number of visible devices (0 when there is no driver or no device), why there is none ("" when there is one:
// no device, a driver older than the runtime, the runtime's message), and the name of the current one
int device_count();
const char* device_status();
const char* device_name();

// activation (cpu/activation.h)
template <typename T> void relu_forward(const T* x, T* out, std::int64_t n);
template <typename T> void relu_backward(const T* dout, const T* out, T* dx, std::int64_t n);
template <typename T> void sigmoid_forward(const T* x, T* out, std::int64_t n);
template <typename T> void sigmoid_backward(const T* dout, const T* out, T* dx, std::int64_t n);
template <typename T> void leaky_relu_forward(const T* x, T* out, std::int64_t n, double alpha);
template <typename T> void leaky_relu_backward(const T* dout, const T* out, T* dx, std::int64_t n, double alpha);
template <typename T> void tanh_forward(const T* x, T* out, std::int64_t n);
template <typename T> void tanh_backward(const T* dout, const T* out, T* dx, std::int64_t n);

// dropout (cpu/dropout.h): the same mask as the CPU for a seed
template <typename T>
void dropout_forward(const T* x, T* out, std::uint8_t* mask, std::int64_t n, double ratio, std::uint64_t seed);
template <typename T> void dropout_backward(const T* dout, const std::uint8_t* mask, T* dx, std::int64_t n);

// loss (cpu/loss.h); the forward losses wait for the stream to return the loss
template <typename T> void softmax_forward(const T* x, T* y, std::int64_t N, std::int64_t K);
template <typename T>
double softmax_ce_forward_labels(const T* x, const std::int64_t* t, T* y, std::int64_t N, std::int64_t K);
template <typename T>
double softmax_ce_forward_dense(const T* x, const T* t, T* y, std::int64_t N, std::int64_t K);
template <typename T>
void softmax_ce_backward_labels(const T* y, const std::int64_t* t, T* dx, std::int64_t N, std::int64_t K,
                                double dout);
template <typename T>
void softmax_ce_backward_dense(const T* y, const T* t, T* dx, std::int64_t N, std::int64_t K, double dout);

// gemm (cpu/gemm/gemm.h): C (M, N) = alpha * op(A) op(B) + beta * C, row-major, op = transpose when trans_*;
// lda/ldb/ldc are row strides in elements; beta == 0 never reads C. bias (N,), when given, is added to every row
// of the result (the affine layer's epilogue).
template <typename T>
void gemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, T alpha, const T* A,
          std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc, const T* bias);

// affine (cpu/affine.h): out = x W + b; backward dx = dout W^T, dW = x^T dout, db = column sums of dout
template <typename T>
void affine_forward(const T* x, const T* W, const T* b, T* out, std::int64_t N, std::int64_t D, std::int64_t M);
template <typename T>
void affine_backward(const T* x, const T* W, const T* dout, T* dx, T* dW, T* db, std::int64_t N, std::int64_t D,
                     std::int64_t M);

// optim (cpu/optim.h): in-place fused updates, the reference's bits (common/optim_step.h)
template <typename T> void sgd_update(T* p, const T* g, std::int64_t n, double lr, double weight_decay);
template <typename T>
void momentum_update(T* p, const T* g, T* v, std::int64_t n, double lr, double momentum, double weight_decay);
template <typename T>
void nesterov_update(T* p, const T* g, T* v, std::int64_t n, double lr, double momentum, double weight_decay);
template <typename T>
void adagrad_update(T* p, const T* g, T* h, std::int64_t n, double lr, double eps, double weight_decay);
template <typename T>
void rmsprop_update(T* p, const T* g, T* h, std::int64_t n, double lr, double decay_rate, double eps,
                    double weight_decay);
template <typename T>
void adam_update(T* p, const T* g, T* m, T* v, std::int64_t n, double lr_t, double beta1, double beta2, double eps,
                 double weight_decay);
template <typename T>
void adadelta_update(T* p, const T* g, T* h, T* d, std::int64_t n, double lr, double rho, double eps,
                     double weight_decay);
template <typename T>
void keras_nesterov_update(T* p, const T* g, T* v, std::int64_t n, double lr, double momentum, double weight_decay);
template <typename T>
void keras_adagrad_update(T* p, const T* g, T* h, std::int64_t n, double lr, double eps, double weight_decay);
template <typename T>
void keras_rmsprop_update(T* p, const T* g, T* h, std::int64_t n, double lr, double rho, double eps,
                          double weight_decay);

}  // namespace fastconv::cuda
