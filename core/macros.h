// Portability macros shared by host code and CUDA kernels.
#pragma once

#if defined(__CUDACC__)
#define NN_HOST_DEVICE __host__ __device__
#define NN_DEVICE __device__
#define NN_INLINE __forceinline__
#else
#define NN_HOST_DEVICE
#define NN_DEVICE
#define NN_INLINE inline
#endif
