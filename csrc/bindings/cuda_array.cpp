// cuda_array.cpp: parsing __cuda_array_interface__ (version 2 or 3) and checking device pointers.
#include "bindings/cuda_array.h"

#include <cuda_runtime_api.h>

#include <stdexcept>

namespace fastconv::bind {

DeviceArray device_array(py::handle obj, const char* name) {
  if (!py::hasattr(obj, "__cuda_array_interface__"))
    throw py::type_error(std::string(name) + ": expected a CUDA array (an object with __cuda_array_interface__, "
                         "e.g. a CuPy array), got " + std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  const py::dict cai = obj.attr("__cuda_array_interface__");
  DeviceArray a;
  const py::tuple data = cai["data"];
  a.ptr = data[0].cast<std::uintptr_t>();
  a.readonly = data[1].cast<bool>();
  a.typestr = cai["typestr"].cast<std::string>();
  for (py::handle d : cai["shape"].cast<py::tuple>()) a.shape.push_back(d.cast<std::int64_t>());
  if (cai.contains("mask") && !cai["mask"].is_none())
    throw py::value_error(std::string(name) + ": masked CUDA arrays are not supported");
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    // C-contiguous strides are allowed to be spelled out; extents of 1 may carry any stride
    const py::tuple strides = cai["strides"].cast<py::tuple>();
    std::int64_t expect = static_cast<std::int64_t>(
        a.typestr.size() >= 3 ? std::stoi(a.typestr.substr(2)) : 1);
    for (std::size_t i = a.shape.size(); i-- > 0;) {
      if (a.shape[i] != 1 && strides[i].cast<std::int64_t>() != expect) a.c_contiguous = false;
      expect *= a.shape[i];
    }
  }
  return a;
}

void check_device_pointer(std::uintptr_t ptr, const char* name) {
  if (ptr == 0) return;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, reinterpret_cast<const void*>(ptr)) != cudaSuccess) {
    cudaGetLastError();
    throw py::value_error(std::string(name) + ": pointer is not CUDA memory");
  }
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
    throw py::value_error(std::string(name) + ": pointer is host memory, expected device memory");
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) throw std::runtime_error("cudaGetDevice failed");
  if (attr.type == cudaMemoryTypeDevice && attr.device != dev)
    throw py::value_error(std::string(name) + ": array is on device " + std::to_string(attr.device) +
                          ", the current device is " + std::to_string(dev));
}

std::int64_t dev_dim(py::handle obj, const char* name, int ndim, int i) {
  const DeviceArray a = device_array(obj, name);
  if (static_cast<int>(a.shape.size()) != ndim)
    throw py::value_error(std::string(name) + ": expected a " + std::to_string(ndim) + "-D array, got shape " +
                          shape_str(a.shape));
  return a.shape[static_cast<std::size_t>(i)];
}

cuda::Stream current_stream() {
  // no static py::object: it would outlive the interpreter; the import is a dict lookup once cupy is loaded
  const py::object stream = py::module_::import("cupy.cuda").attr("get_current_stream")();
  return reinterpret_cast<cuda::Stream>(stream.attr("ptr").cast<std::uintptr_t>());
}

}  // namespace fastconv::bind
