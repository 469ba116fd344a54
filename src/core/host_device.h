// ATTN_HD: functions compiled for both the host and the device (plain inline without CUDA).
#pragma once

#if defined(__CUDACC__)
#define ATTN_HD __host__ __device__ __forceinline__
#else
#define ATTN_HD inline
#endif
