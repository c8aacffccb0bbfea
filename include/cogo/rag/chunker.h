// Splitting a document's text into overlapping chunks for embedding. Pure; thread-safe.
//
// Paragraphs (blank lines) and sentences (. ! ? then whitespace) are the units; a sentence
// longer than a chunk is split between words into pieces no longer than the overlap (so the
// overlap still works inside it), a word longer than a piece between UTF-8 characters. Units
// are packed into chunks of at most `max_chars` bytes; a chunk also ends at a paragraph break
// once it holds `min_chars`. Each chunk after the first starts with the last
// whole units of the one before that fit in `overlap_chars`, so a fact that straddles a boundary
// is in one chunk whole. Chunks are spans of the original text (offsets in bytes).
//
// Defaults: 800 bytes with 120 of overlap, the middle of what LangChain and LlamaIndex users
// run (500-1000 characters, 50-200 overlap): a paragraph or two, small enough that one chunk is
// about one thing (what retrieval scores), large enough that it still reads on its own.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace cogo::rag {

struct ChunkOptions {
  size_t max_chars = 800;      // bytes per chunk, at most
  size_t overlap_chars = 120;  // bytes of the previous chunk repeated, at most
  size_t min_chars = 400;      // a paragraph break ends a chunk holding at least this much
};

struct Chunk {
  size_t ord = 0;    // 0, 1, 2, ...
  size_t start = 0;  // byte offset in the text
  size_t end = 0;    // one past the last byte
  std::string text;  // text[start, end)
};

// Throws std::invalid_argument when max_chars is 0 or overlap_chars >= max_chars. Empty or
// whitespace-only text gives no chunks.
[[nodiscard]] std::vector<Chunk> SplitText(std::string_view text, const ChunkOptions& options = {});

// "max=800,overlap=120,min=400": part of a document's content hash, so changing the settings
// re-indexes.
[[nodiscard]] std::string Describe(const ChunkOptions& options);

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
[[nodiscard]] bool IsValidUtf8(std::string_view text);

}  // namespace cogo::rag
