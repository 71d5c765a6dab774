--- A module loaded on first use: `local network = lazy "lbox.network"`
-- stands for the module and requires it when a field is first read or
-- written. Loading lbox's modules is most of its start-up's CPU time, and
-- a run without a network, an import or a monitor needs none of theirs.
local M = {}

--- A stand-in for module `name`, forwarding reads, writes and pairs to it.
function M.module(name)
  local proxy = {}
  local function real()
    local loaded = require(name)
    -- later reads go straight to the module
    setmetatable(proxy, { __index = loaded, __newindex = loaded, __pairs = function() return next, loaded, nil end })
    return loaded
  end
  return setmetatable(proxy, {
    __index = function(_, key) return real()[key] end,
    __newindex = function(_, key, value) real()[key] = value end,
    __pairs = function() return next, real(), nil end,
  })
end

setmetatable(M, { __call = function(_, name) return M.module(name) end })

return M
