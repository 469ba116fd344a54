// Row-major Eigen views of plain buffers (pointer + sizes), as the CPU layers
// (model/cpu_layers.h) and the CPU attention (attention/cpu_attention.cpp) use them.
#pragma once
#include <Eigen/Core>

namespace attn {

template <typename S>
using RowMat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename S>
using MatMap = Eigen::Map<RowMat<S>>;
template <typename S>
using ConstMatMap = Eigen::Map<const RowMat<S>>;
template <typename S>
using StridedMatMap = Eigen::Map<RowMat<S>, 0, Eigen::OuterStride<>>;
template <typename S>
using ConstStridedMatMap = Eigen::Map<const RowMat<S>, 0, Eigen::OuterStride<>>;
template <typename S>
using ArrMap = Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>>;
template <typename S>
using ConstArrMap = Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>;

}  // namespace attn
