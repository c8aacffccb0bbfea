#include "cogo/rag/document.h"

#include "cogo/base/digest.h"
#include "cogo/config/json_reader.h"

namespace cogo::rag {

std::variant<DocumentInput, DocumentError> ParseDocument(std::string_view payload_json, size_t max_text_bytes) {
  DocumentInput document;
  try {
    const auto doc = config::JsonDocument::Parse(payload_json);
    const auto o = doc.root().AsObject();
    document.doc_id = o.String("doc_id", {.max_bytes = 200});
    document.title = o.StringOr("title", "", {.allow_empty = true, .max_bytes = 1000});
    const auto text = o.Required("text");
    document.text = text.AsString({.allow_empty = true});
    if (auto source = o.Optional("source")) document.source = source->AsString({.max_bytes = 2048});
    if (auto metadata = o.OptionalObject("metadata")) {
      (void)metadata->Entries();
      document.metadata_json = metadata->value().Dump();
    }
    (void)o.Optional("__assignment");
    o.Finish();
  } catch (const config::JsonError& e) {
    return DocumentError{"invalid_input", e.what()};
  }
  if (document.text.size() > max_text_bytes) {
    return DocumentError{"document_too_large", "text is " + std::to_string(document.text.size()) +
                                                   " bytes; the cap is " + std::to_string(max_text_bytes)};
  }
  for (const auto* field : {&document.doc_id, &document.title, &document.text}) {
    if (!IsValidUtf8(*field)) return DocumentError{"invalid_utf8", "doc_id, title and text must be UTF-8"};
  }
  if (document.text.find_first_not_of(" \t\r\n\f\v") == std::string::npos) {
    return DocumentError{"empty_text", "text has nothing but whitespace"};
  }
  return document;
}

std::string ContentHash(const DocumentInput& document, std::string_view model, size_t dimension,
                        const ChunkOptions& chunking) {
  // Length-prefixed fields: no two different documents serialise the same.
  std::string bytes;
  const auto add = [&bytes](std::string_view field) {
    bytes += std::to_string(field.size());
    bytes += ':';
    bytes += field;
  };
  add("rag-document-v1");
  add(document.title);
  add(document.text);
  add(document.source ? "s" + *document.source : "-");
  add(document.metadata_json ? "m" + *document.metadata_json : "-");
  add(model);
  add(std::to_string(dimension));
  add(Describe(chunking));
  return base::Sha256Hex(bytes);
}

}  // namespace cogo::rag
