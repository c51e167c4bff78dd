// Compile the CUDA kernels in this folder as plain C++ for the CPU.
//
// Usage: g++ -std=c++17 -O2 -shared -fPIC -include kernels/host_shim.h driver.cpp
// where driver.cpp #includes a .cu file and names each kernel with
// SHIM_EXPORT(kernel) (kernels/host_shim.py writes it). The export is
//
//   extern "C" void shim_launch_<kernel>(gx, gy, gz, bx, by, bz, void** args)
//
// with `args` an array of pointers to the arguments, as in cuLaunchKernel.
// It runs the grid x block threads one after another, setting blockIdx and
// threadIdx before each call. That is only correct for kernels whose threads
// do not communicate: no __syncthreads, shared memory, warp intrinsics or
// atomics (none of them is defined here, so using one fails to compile).
#pragma once

#include <math.h>

#include <cstddef>
#include <type_traits>
#include <utility>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

static dim3 gridDim, blockDim, blockIdx, threadIdx;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

namespace shim {

template <class... Args, std::size_t... I>
void call(void (*kernel)(Args...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<Args>*>(args[I])...);
}

template <class... Args>
void launch(void (*kernel)(Args...), dim3 grid, dim3 block, void** args) {
    gridDim = grid;
    blockDim = block;
    for (blockIdx.z = 0; blockIdx.z < grid.z; ++blockIdx.z)
        for (blockIdx.y = 0; blockIdx.y < grid.y; ++blockIdx.y)
            for (blockIdx.x = 0; blockIdx.x < grid.x; ++blockIdx.x)
                for (threadIdx.z = 0; threadIdx.z < block.z; ++threadIdx.z)
                    for (threadIdx.y = 0; threadIdx.y < block.y; ++threadIdx.y)
                        for (threadIdx.x = 0; threadIdx.x < block.x; ++threadIdx.x)
                            call(kernel, args, std::index_sequence_for<Args...>{});
}

}  // namespace shim

#define SHIM_EXPORT(kernel)                                                              \
    extern "C" void shim_launch_##kernel(unsigned gx, unsigned gy, unsigned gz,          \
                                         unsigned bx, unsigned by, unsigned bz,          \
                                         void** args) {                                  \
        shim::launch(kernel, dim3{gx, gy, gz}, dim3{bx, by, bz}, args);                  \
    }
