--- Paths inside a container's root, resolved as the container would see
-- them, in lbox (before pivot_root): symlinks in the image never lead out.
local errors = require "lbox.errors"
local lfs = require "lfs"

local M = {}

M.MAX_LINKS = 40 -- as the kernel's path walk

--- `path` inside `root`, following symlinks as the container would see
-- them: never outside `root`. @return host path
function M.secure_join(root, path)
  local resolved, pending, links = {}, {}, 0
  for part in path:gmatch("[^/]+") do pending[#pending + 1] = part end
  while #pending > 0 do
    local part = table.remove(pending, 1)
    if part == ".." then
      resolved[#resolved] = nil
    elseif part ~= "." then
      local candidate = root .. "/" .. table.concat(resolved, "/") .. (#resolved > 0 and "/" or "") .. part
      if lfs.symlinkattributes(candidate, "mode") == "link" then
        links = links + 1
        if links > M.MAX_LINKS then errors.raise("too many levels of symbolic links in " .. path) end
        local target = lfs.symlinkattributes(candidate, "target")
        if target:sub(1, 1) == "/" then resolved = {} end
        local parts = {}
        for p in target:gmatch("[^/]+") do parts[#parts + 1] = p end
        table.move(pending, 1, #pending, #parts + 1, parts)
        pending = parts
      else
        resolved[#resolved + 1] = part
      end
    end
  end
  return root .. "/" .. table.concat(resolved, "/")
end

return M
