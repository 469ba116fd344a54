// Tokenizing texts on a pool of threads, cut at safe points (see parallel_encode.h).
#include "data/parallel_encode.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.h"

namespace attn {

size_t next_safe_cut(std::string_view text, size_t from) {
  auto printable = [&](size_t k) {
    const auto c = static_cast<unsigned char>(text[k]);
    return c > 0x20 && c < 0x7F;
  };
  size_t i = std::max<size_t>(from, 2) - 1;  // a '\n' at from - 1 makes `from` itself a cut
  while ((i = text.find('\n', i)) != std::string_view::npos && i + 1 < text.size()) {
    if (i >= 1 && printable(i - 1) && printable(i + 1)) return i + 1;
    ++i;
  }
  return text.size();
}

int encode_threads(int threads) {
  if (threads > 0) return threads;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

std::vector<std::vector<int32_t>> encode_in_parallel(const Tokenizer& tokenizer, std::span<const std::string_view> texts,
                                                     int threads, size_t* failed) {
  struct Piece {
    size_t text;
    std::string_view bytes;
  };
  std::vector<Piece> pieces;
  for (size_t t = 0; t < texts.size(); ++t) {
    const std::string_view s = texts[t];
    for (size_t begin = 0; begin < s.size();) {
      const size_t end = s.size() - begin <= 2 * kEncodeChunkBytes ? s.size() : next_safe_cut(s, begin + kEncodeChunkBytes);
      pieces.push_back({t, s.substr(begin, end - begin)});
      begin = end;
    }
  }
  std::vector<std::vector<int32_t>> piece_ids(pieces.size());
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  size_t error_piece = pieces.size();
  auto work = [&] {
    for (size_t p; (p = next++) < pieces.size();) {
      try {
        piece_ids[p] = tokenizer.encode(pieces[p].bytes);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (p < error_piece) error_piece = p, error = std::current_exception();
      }
    }
  };
  const int n = std::min<int>(encode_threads(threads), static_cast<int>(std::max<size_t>(pieces.size(), 1)));
  std::vector<std::thread> pool;
  for (int i = 1; i < n; ++i) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) {
    if (failed) *failed = pieces[error_piece].text;
    std::rethrow_exception(error);
  }

  std::vector<std::vector<int32_t>> ids(texts.size());
  for (size_t p = 0; p < pieces.size(); ++p) {
    auto& out = ids[pieces[p].text];
    if (out.empty()) out = std::move(piece_ids[p]);
    else out.insert(out.end(), piece_ids[p].begin(), piece_ids[p].end());
  }
  return ids;
}

}  // namespace attn
