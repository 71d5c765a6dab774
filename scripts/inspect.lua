-- lbox inspect CONTAINER...: what lbox knows of containers, as JSON.
local cjson = require "cjson"
local options = require "lbox.options"
local state = require "lbox.state"

local opts, refs = options.command({
  name = "inspect", synopsis = { "CONTAINER..." }, summary = "show what lbox knows of containers, as JSON",
  description = "A JSON array with each container's recorded state: id, name, command, status, pid, exit "
    .. "code, times, limits.",
  operands = { 1 },
}, { ... })
if not opts then return 0 end
local found = {}
for _, ref in ipairs(refs) do found[#found + 1] = state.find(ref) end
print(cjson.encode(found))
return 0
