// Vectors as stored in rag_chunks.embedding: little-endian float32, 4 bytes per component.
// Pure; thread-safe.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace cogo::rag {

static_assert(sizeof(float) == 4, "rag vectors are stored as 32-bit floats");

inline std::string EncodeVector(const std::vector<float>& vector) {
  std::string bytes(vector.size() * 4, '\0');
  for (size_t i = 0; i < vector.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &vector[i], 4);
    for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<char>((bits >> (8 * b)) & 0xFF);
  }
  return bytes;
}

// Appends the floats of `bytes` (a multiple of 4 long) to `out`.
inline void DecodeVector(const unsigned char* bytes, size_t size, std::vector<float>& out) {
  for (size_t i = 0; i + 4 <= size; i += 4) {
    const uint32_t bits = static_cast<uint32_t>(bytes[i]) | (static_cast<uint32_t>(bytes[i + 1]) << 8) |
                          (static_cast<uint32_t>(bytes[i + 2]) << 16) | (static_cast<uint32_t>(bytes[i + 3]) << 24);
    float value;
    std::memcpy(&value, &bits, 4);
    out.push_back(value);
  }
}

}  // namespace cogo::rag
