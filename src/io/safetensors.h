// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}},
// then the raw tensor bytes. Readable by PyTorch, HF transformers and numpy tools.
// Only F32 tensors are written here (master weights and optimizer moments).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace attn {

struct TensorView {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
};

struct LoadedTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct SafetensorsFile {
  std::map<std::string, LoadedTensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Writes the file (no atomic rename here: checkpoints write into a temporary directory).
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Reads an F32 (or BF16/F16, converted to float) safetensors file; any inconsistency
// (short file, bad header, offsets out of range or overlapping) throws attn::Error naming the file.
SafetensorsFile read_safetensors(const std::string& path);

// A tensor shape as error messages print it: "[768, 2304]".
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace attn
