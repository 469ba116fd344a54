// GPT-2's pre-tokenizer, over bytes and over code points (see pretokenizer.h for the rules).
#include "data/pretokenizer.h"

#include <utf8proc.h>

#include <array>

#include "data/utf8.h"

namespace attn {

namespace {

enum class ByteClass { Letter, Digit, Space, Other };

constexpr ByteClass classify(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) return ByteClass::Letter;
  if (c >= '0' && c <= '9') return ByteClass::Digit;
  if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r') return ByteClass::Space;
  return ByteClass::Other;
}

ByteClass class_at(std::string_view s, size_t i) { return classify(static_cast<unsigned char>(s[i])); }

// Length of the contraction ('s 't 're 've 'm 'll 'd) at i, 0 if none.
size_t contraction_length(std::string_view s, size_t i) {
  if (s[i] != '\'' || i + 1 >= s.size()) return 0;
  const char a = s[i + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 < s.size()) {
    const char b = s[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  return 0;
}

// End of the run of bytes of class `cls` starting at i.
size_t run_end(std::string_view s, size_t i, ByteClass cls) {
  while (i < s.size() && class_at(s, i) == cls) ++i;
  return i;
}

}  // namespace

// ---- over code points, with Unicode classes ---------------------------------------------
namespace {

constexpr std::array<CharClass, 128> ascii_classes() {
  std::array<CharClass, 128> t{};
  for (int c = 0; c < 128; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) t[c] = CharClass::Letter;
    else if (c >= '0' && c <= '9') t[c] = CharClass::Number;
    else if (c == ' ' || (c >= 0x09 && c <= 0x0D)) t[c] = CharClass::Space;
    else t[c] = CharClass::Other;
  }
  return t;
}
constexpr std::array<CharClass, 128> kAsciiClass = ascii_classes();

struct CodePoint {
  CharClass cls;
  size_t len;  // bytes
};

CodePoint code_point_at(std::string_view s, size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return {kAsciiClass[b], 1};
  char32_t cp;
  const size_t len = decode_utf8(s, i, cp);
  return {gpt2_char_class(cp), len};
}

// End of the run of code points of class `cls` starting at i; `count` gets their number.
size_t class_run_end(std::string_view s, size_t i, CharClass cls, size_t* count = nullptr, size_t* last = nullptr) {
  size_t n = 0;
  while (i < s.size()) {
    const CodePoint c = code_point_at(s, i);
    if (c.cls != cls) break;
    if (last) *last = i;
    i += c.len, ++n;
  }
  if (count) *count = n;
  return i;
}

}  // namespace

CharClass gpt2_char_class(char32_t cp) {
  if (cp < 0x80) return kAsciiClass[cp];
  if (is_escaped_byte(cp)) return CharClass::Other;  // an invalid byte: like U+FFFD or a lone surrogate
  if (cp == 0x85) return CharClass::Space;            // NEL: White_Space though category Cc
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
      return CharClass::Letter;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return CharClass::Number;
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
      return CharClass::Space;
    default:
      return CharClass::Other;
  }
}

size_t next_gpt2_word_end(std::string_view s, size_t i) {
  if (const size_t n = contraction_length(s, i)) return i + n;  // 's 't 're 've 'm 'll 'd
  // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": one optional U+0020, then a run of one class.
  const CodePoint first = code_point_at(s, i);
  if (s[i] == ' ' && i + 1 < s.size()) {
    const CodePoint second = code_point_at(s, i + 1);
    if (second.cls != CharClass::Space) return class_run_end(s, i + 1, second.cls);
  }
  if (first.cls != CharClass::Space) return class_run_end(s, i, first.cls);
  // "\s+(?!\S)": the whitespace run, less its last code point when a non-space follows
  // (that one starts the next word, e.g. " " of " word"); "\s+" takes a lone one.
  size_t count = 0, last = i;
  const size_t end = class_run_end(s, i, CharClass::Space, &count, &last);
  if (end == s.size() || count == 1) return end;
  return last;
}

// ---- over bytes (the bpe tokenizer) ---------------------------------------------------
size_t next_word_end(std::string_view s, size_t i) {
  if (const size_t n = contraction_length(s, i)) return i + n;
  // " ?X+" where X is letters, digits or other: an optional single space first.
  size_t j = i;
  if (s[j] == ' ' && j + 1 < s.size() && class_at(s, j + 1) != ByteClass::Space) ++j;
  const ByteClass cls = class_at(s, j);
  if (cls != ByteClass::Space) return run_end(s, j, cls);
  // Whitespace: "\s+(?!\S)" takes the run but leaves its last byte to the next word
  // when a non-space follows; "\s+" takes a single leftover byte.
  const size_t end = run_end(s, i, ByteClass::Space);
  if (end == s.size() || end - i == 1) return end;
  return end - 1;
}

}  // namespace attn
