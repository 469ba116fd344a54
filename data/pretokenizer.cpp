// GPT-2-style pre-tokenizer over bytes (see pretokenizer.h for the rules).
#include "data/pretokenizer.h"

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
