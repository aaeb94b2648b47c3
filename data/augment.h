// Image augmentation on the host, for float32 CPU batches [N, C, H, W] or [N, H, W] (C = 1),
// contiguous, modified in place. Each random choice is drawn per sample from Philox (core/rng.h)
// keyed by `seed`, so the same seed gives the same batch whatever the thread or batch order.
//
// A Transform is what a DataLoader applies to each batch's inputs: it is called with the batch
// and a seed that the loader derives from its own seed, the epoch and the batch number. It may
// modify the tensor in place (the augmentations here do) or replace it, and must not keep a
// reference to it (the loader reuses the buffer). Throws DtypeError for a non-float32 batch,
// DeviceError for a CUDA one, ShapeError for another rank, ValueError for bad parameters or a
// non-contiguous batch.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace nn::data {

using Transform = std::function<void(Tensor& inputs, uint64_t seed)>;

// Applies `transforms` in order, each with its own seed derived from `seed`.
Transform compose(std::vector<Transform> transforms);
// Pads each image with `padding` zeros on every side and crops back to H x W at an offset
// drawn uniformly per sample (padding 0 leaves the batch unchanged).
Transform random_crop(int64_t padding);
// Mirrors each image left-right with probability p.
Transform random_horizontal_flip(double p = 0.5);
// Adds N(0, stddev^2) noise to every value.
Transform gaussian_noise(double stddev);
// (x - mean[c]) / stddev[c] per channel; mean and stddev hold one value or one per channel.
Transform normalize(std::vector<double> mean, std::vector<double> stddev);

// The same operations as functions on a batch.
void random_crop_(Tensor& images, int64_t padding, uint64_t seed);
void horizontal_flip_(Tensor& images);  // every image
void random_horizontal_flip_(Tensor& images, double p, uint64_t seed);
void gaussian_noise_(Tensor& images, double stddev, uint64_t seed);
void normalize_(Tensor& images, const std::vector<double>& mean, const std::vector<double>& stddev);

}  // namespace nn::data
