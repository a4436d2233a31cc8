// hd.h: FC_HD marks a function that CPU code and CUDA kernels share (index arithmetic, per-element formulas, the
// dropout hash), so that both backends compute them from one definition. Under nvcc it is __host__ __device__;
// under the host compiler it is nothing.
#pragma once

#if defined(__CUDACC__)
#define FC_HD __host__ __device__ __forceinline__
#else
#define FC_HD inline
#endif
