// UTF-8 decoding and encoding with "surrogate escapes" for invalid bytes.
//
// Each byte that does not belong to a well-formed UTF-8 sequence (stray
// continuation bytes, overlong forms, encoded surrogates, code points above
// U+10FFFF, truncated sequences) decodes to its own code point 0xDC00 + byte, like
// Python's errors="surrogateescape", and encodes back to that single byte. Real
// surrogates never come out of the decoder, so bytes -> code points -> bytes is
// exact for any byte string.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace attn {

constexpr char32_t kEscapeBase = 0xDC00;  // escapes are 0xDC80 .. 0xDCFF

constexpr bool is_escaped_byte(char32_t cp) { return cp >= kEscapeBase + 0x80 && cp <= kEscapeBase + 0xFF; }

// Decodes the code point at text[i]; returns the number of bytes it used (>= 1).
inline size_t decode_utf8(std::string_view text, size_t i, char32_t& cp) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const auto cont = [&](size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    return k < text.size() && byte(k) >= lo && byte(k) <= hi;
  };
  const unsigned b0 = byte(i);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  if (b0 >= 0xC2 && b0 <= 0xDF && cont(i + 1)) {
    cp = ((b0 & 0x1F) << 6) | (byte(i + 1) & 0x3F);
    return 2;
  }
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    const unsigned lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
    if (cont(i + 1, lo, hi) && cont(i + 2)) {
      cp = ((b0 & 0x0F) << 12) | ((byte(i + 1) & 0x3F) << 6) | (byte(i + 2) & 0x3F);
      return 3;
    }
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    const unsigned lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
    if (cont(i + 1, lo, hi) && cont(i + 2) && cont(i + 3)) {
      cp = ((b0 & 0x07) << 18) | ((byte(i + 1) & 0x3F) << 12) | ((byte(i + 2) & 0x3F) << 6) |
           (byte(i + 3) & 0x3F);
      return 4;
    }
  }
  cp = kEscapeBase + b0;  // invalid: escape this one byte
  return 1;
}

// Appends the UTF-8 bytes of cp (an escape appends its raw byte).
inline void append_utf8(std::string& out, char32_t cp) {
  if (is_escaped_byte(cp)) {
    out += static_cast<char>(cp - kEscapeBase);
  } else if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace attn
