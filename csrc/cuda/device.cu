// device.cu: what fastconv.info() reports about CUDA: the devices the runtime sees.
#include <cuda_runtime.h>
#include <dlfcn.h>

#include "cuda/kernels.h"

namespace fastconv::cuda {

namespace {
thread_local Stream current = nullptr;
}  // namespace

Stream stream() { return current; }

StreamScope::StreamScope(Stream s) : previous_(current) { current = s; }

StreamScope::~StreamScope() { current = previous_; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver / no device: clear the error, report none
    return 0;
  }
  return n;
}

const char* device_status() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  cudaGetLastError();
  if (err == cudaErrorInsufficientDriver) {
    // the runtime says this both when the driver is too old and when there is none at all
    void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
    if (driver == nullptr) driver = dlopen("libcuda.so.1", RTLD_LAZY);
    if (driver == nullptr) return "no CUDA driver is installed (libcuda.so.1 not found)";
    dlclose(driver);
    return "the CUDA driver is older than the CUDA runtime fastconv was built with";
  }
  if (err == cudaErrorNoDevice || (err == cudaSuccess && n == 0)) return "no CUDA device is visible";
  if (err != cudaSuccess) return cudaGetErrorString(err);
  return "";
}

const char* device_name() {
  static thread_local cudaDeviceProp prop;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return prop.name;
}

}  // namespace fastconv::cuda
