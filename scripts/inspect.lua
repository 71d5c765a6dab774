-- lbox inspect CONTAINER...: what lbox knows of containers, as JSON.
local cjson = require "cjson"
local options = require "lbox.options"
local state = require "lbox.state"

local INSPECT = {
  name = "inspect", synopsis = { "CONTAINER..." }, summary = "show what lbox knows of containers, as JSON",
  description = "A JSON array with each container's recorded state: id, name, command, status, pid, exit "
    .. "code, times, limits.",
}
local args = { ... }
local _, first = options.command(INSPECT, args)
if first > #args then options.usage_error(INSPECT) end
local found = {}
for i = first, #args do found[#found + 1] = state.find(args[i]) end
print(cjson.encode(found))
return 0
