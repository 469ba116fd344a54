#include "io/safetensors.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/text_file.h"

namespace attn {

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    uint64_t n = 1;
    for (auto d : t.shape) n *= static_cast<uint64_t>(d);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + 4 * n}}};
    offset += 4 * n;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // the format pads the header with spaces to 8 bytes
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  ATTN_CHECK(out.good(), "cannot write '{}'", path);
  const uint64_t hlen = h.size();
  errno = 0;
  out.write(reinterpret_cast<const char*>(&hlen), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& t : tensors) {
    uint64_t n = 1;
    for (auto d : t.shape) n *= static_cast<uint64_t>(d);
    out.write(reinterpret_cast<const char*>(t.data), static_cast<std::streamsize>(4 * n));
  }
  out.flush();
  if (!out.good()) fail("{}", write_failure(path, errno));
}

namespace {
float bf16_to_float(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
float f16_to_float(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0) v = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31) v = mant ? NAN : INFINITY;
  else v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}
}  // namespace

SafetensorsFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  ATTN_CHECK(in.good(), "cannot open '{}'", path);
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  ATTN_CHECK(size >= 8, "'{}' is not a safetensors file (only {} bytes)", path, size);
  uint64_t hlen = 0;
  in.read(reinterpret_cast<char*>(&hlen), 8);
  ATTN_CHECK(hlen <= size - 8 && hlen < (100u << 20), "'{}': corrupt safetensors header length {}", path, hlen);
  std::string h(hlen, '\0');
  in.read(h.data(), static_cast<std::streamsize>(hlen));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(h);
  } catch (const std::exception& e) {
    fail("'{}': corrupt safetensors header: {}", path, e.what());
  }
  ATTN_CHECK(header.is_object(), "'{}': safetensors header is not a JSON object", path);
  const uint64_t data_size = size - 8 - hlen;
  std::vector<char> data(data_size);
  in.read(data.data(), static_cast<std::streamsize>(data_size));
  ATTN_CHECK(in.good() || data_size == 0, "'{}': read failed", path);

  SafetensorsFile file;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      for (const auto& [k, v] : info.items())
        if (v.is_string()) file.metadata[k] = v.get<std::string>();
      continue;
    }
    try {
      const std::string dtype = info.at("dtype").get<std::string>();
      LoadedTensor t;
      t.shape = info.at("shape").get<std::vector<int64_t>>();
      const auto offs = info.at("data_offsets").get<std::vector<uint64_t>>();
      uint64_t n = 1;
      for (auto d : t.shape) {
        ATTN_CHECK(d >= 0, "'{}': tensor '{}' has a negative dimension", path, name);
        n *= static_cast<uint64_t>(d);
      }
      const uint64_t esize = dtype == "F32" ? 4 : (dtype == "BF16" || dtype == "F16") ? 2 : 0;
      ATTN_CHECK(esize != 0, "'{}': tensor '{}' has dtype {} (F32, BF16 or F16 expected)", path, name, dtype);
      ATTN_CHECK(offs.size() == 2 && offs[0] <= offs[1] && offs[1] <= data_size && offs[1] - offs[0] == n * esize,
                 "'{}': tensor '{}' has data offsets outside the file or not matching its shape (truncated file?)",
                 path, name);
      t.data.resize(n);
      const char* src = data.data() + offs[0];
      if (esize == 4) {
        std::memcpy(t.data.data(), src, n * 4);
      } else {
        for (uint64_t i = 0; i < n; ++i) {
          uint16_t b;
          std::memcpy(&b, src + 2 * i, 2);
          t.data[i] = dtype == "BF16" ? bf16_to_float(b) : f16_to_float(b);
        }
      }
      file.tensors.emplace(name, std::move(t));
    } catch (const nlohmann::json::exception& e) {
      fail("'{}': corrupt entry for tensor '{}': {}", path, name, e.what());
    }
  }
  return file;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace attn
