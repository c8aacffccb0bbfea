#include "cogo/rag/chunker.h"

#include <cstdint>
#include <stdexcept>

namespace cogo::rag {
namespace {

struct Unit {
  size_t start;
  size_t end;
  bool paragraph_start;
};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Cuts at most `limit` bytes, backing off to a UTF-8 character boundary.
size_t CharBoundary(std::string_view text, size_t at) {
  while (at > 0 && at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) --at;
  return at;
}

// [start, end) trimmed of whitespace; start == end when nothing is left.
void Trim(std::string_view text, size_t& start, size_t& end) {
  while (start < end && IsSpace(text[start])) ++start;
  while (end > start && IsSpace(text[end - 1])) --end;
}

// A span longer than `max` as pieces between words, or between characters inside a long word.
void SplitLong(std::string_view text, size_t start, size_t end, size_t max, bool paragraph_start,
               std::vector<Unit>& out) {
  while (start < end) {
    size_t cut = end;
    if (end - start > max) {
      cut = start + max;
      size_t space = cut;
      while (space > start && !IsSpace(text[space])) --space;
      cut = space > start ? space : CharBoundary(text, cut);
      if (cut == start) cut = start + max;  // unreachable for valid UTF-8; guarantees progress
    }
    size_t s = start, e = cut;
    Trim(text, s, e);
    if (s < e) {
      out.push_back({s, e, paragraph_start});
      paragraph_start = false;
    }
    start = cut;
  }
}

std::vector<Unit> Units(std::string_view text, size_t max, size_t piece) {
  std::vector<Unit> units;
  size_t i = 0;
  while (i < text.size()) {
    // A paragraph runs to the next blank line.
    size_t end = i;
    while (end < text.size()) {
      if (text[end] == '\n') {
        size_t j = end + 1;
        while (j < text.size() && text[j] != '\n' && IsSpace(text[j])) ++j;
        if (j < text.size() && text[j] == '\n') break;
      }
      ++end;
    }
    bool paragraph_start = true;
    size_t sentence = i;
    for (size_t p = i; p < end; ++p) {
      const char c = text[p];
      const bool boundary = (c == '.' || c == '!' || c == '?') && (p + 1 == end || IsSpace(text[p + 1]));
      if (boundary || p + 1 == end) {
        size_t s = sentence, e = p + 1;
        Trim(text, s, e);
        if (s < e && e - s <= max) {
          units.push_back({s, e, paragraph_start});
          paragraph_start = false;
        } else if (s < e) {
          SplitLong(text, s, e, piece, paragraph_start, units);
          paragraph_start = false;
        }
        sentence = p + 1;
      }
    }
    i = end;
    while (i < text.size() && IsSpace(text[i])) ++i;
  }
  return units;
}

}  // namespace

std::vector<Chunk> SplitText(std::string_view text, const ChunkOptions& options) {
  if (options.max_chars == 0) throw std::invalid_argument("max_chars must be > 0");
  if (options.overlap_chars >= options.max_chars) {
    throw std::invalid_argument("overlap_chars must be < max_chars");
  }
  // A sentence longer than a chunk becomes word pieces no longer than the overlap, so the
  // overlap still carries whole pieces of it into the next chunk.
  const std::vector<Unit> units =
      Units(text, options.max_chars, options.overlap_chars > 0 ? options.overlap_chars : options.max_chars);
  std::vector<Chunk> chunks;
  size_t first = 0;  // the first unit of the chunk being built
  while (first < units.size()) {
    size_t last = first;  // inclusive
    while (last + 1 < units.size()) {
      const Unit& next = units[last + 1];
      if (next.end - units[first].start > options.max_chars) break;
      if (next.paragraph_start && units[last].end - units[first].start >= options.min_chars) break;
      ++last;
    }
    const size_t start = units[first].start, end = units[last].end;
    chunks.push_back({chunks.size(), start, end, std::string(text.substr(start, end - start))});
    if (last + 1 >= units.size()) break;
    // The next chunk repeats the trailing units of this one that fit in the overlap, but always
    // moves forward by at least one unit.
    size_t next = last + 1;
    while (next - 1 > first && end - units[next - 1].start <= options.overlap_chars &&
           units[last + 1].end - units[next - 1].start <= options.max_chars) {
      --next;
    }
    first = next;
  }
  return chunks;
}

std::string Describe(const ChunkOptions& options) {
  return "max=" + std::to_string(options.max_chars) + ",overlap=" + std::to_string(options.overlap_chars) +
         ",min=" + std::to_string(options.min_chars);
}

bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= text.size()) return false;
      const auto d = static_cast<unsigned char>(text[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

}  // namespace cogo::rag
