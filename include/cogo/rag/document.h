// A document as rag/embed receives it, read strictly from a message payload, and its content
// address. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "cogo/rag/chunker.h"

namespace cogo::rag {

// The text cap: 512 KiB keeps a whole document's message under the bus's 1 MiB payload limit
// with room for JSON escaping, and is the indexing workflow's `text` maxLength too
// (config/workflows/indexing.json), so the API refuses bigger text before anything is written.
inline constexpr size_t kDefaultMaxTextBytes = 512 * 1024;

struct DocumentInput {
  std::string doc_id;                        // 1..200 bytes
  std::string title;                         // may be empty
  std::string text;                          // non-empty, at most the cap
  std::optional<std::string> source;         // where it came from (a URL, a path)
  std::optional<std::string> metadata_json;  // a JSON object, passed through
};

// Why a payload is not a document; every reason is a permanent failure of the message.
struct DocumentError {
  std::string reason;  // invalid_input, empty_text, document_too_large, invalid_utf8
  std::string detail;  // names keys, never repeats the content
};

// The payload `{doc_id, title, text, source?, metadata?}` (`__assignment` is the runtime's).
[[nodiscard]] std::variant<DocumentInput, DocumentError> ParseDocument(std::string_view payload_json,
                                                                       size_t max_text_bytes = kDefaultMaxTextBytes);

// SHA-256 (hex) over everything the stored chunks are made from: title, text, source, metadata,
// the embedding model and dimension, and the chunker settings.
[[nodiscard]] std::string ContentHash(const DocumentInput& document, std::string_view model, size_t dimension,
                                      const ChunkOptions& chunking);

}  // namespace cogo::rag
