#include "cogo/artifacts/api.h"

#include <nlohmann/json.hpp>

namespace cogo::artifacts {
namespace {

using nlohmann::json;

http::Response NotFound() { return http::Error(404, "not_found", "no such artifact"); }

http::Response FileResponse(const ArtifactStore& store, const http::Request& req, const std::string& relative) {
  const auto content = store.Read(std::string(req.Param("task_id")), relative, req.TenantScope());
  if (!content) return NotFound();
  if (relative.ends_with(".json")) {
    if (json::accept(*content)) return http::Json(200, *content);
  }
  return http::Json(200, json{{"path", relative}, {"bytes", content->size()},
                              {"text", *content}}
                             .dump(-1, ' ', false, json::error_handler_t::replace));
}

}  // namespace

std::vector<http::Route> ArtifactRoutes(std::shared_ptr<const ArtifactStore> store) {
  return {
      {"GET", "/api/artifacts/{task_id}", http::Access::kAnyToken, "the files of a task's artifacts",
       [store](const http::Request& req) {
         const auto files = store->List(std::string(req.Param("task_id")), req.TenantScope());
         if (!files) return NotFound();
         json out = {{"taskId", std::string(req.Param("task_id"))}, {"files", json::array()}};
         for (const auto& f : *files) out["files"].push_back({{"path", f.path}, {"bytes", f.bytes}});
         return http::Json(200, out.dump());
       }},
      {"GET", "/api/artifacts/{task_id}/{name}", http::Access::kAnyToken, "one artifact file of a task",
       [store](const http::Request& req) { return FileResponse(*store, req, std::string(req.Param("name"))); }},
      {"GET", "/api/artifacts/{task_id}/{dir}/{name}", http::Access::kAnyToken, "one artifact file of a task's part",
       [store](const http::Request& req) {
         return FileResponse(*store, req, std::string(req.Param("dir")) + "/" + std::string(req.Param("name")));
       }},
  };
}

}  // namespace cogo::artifacts
