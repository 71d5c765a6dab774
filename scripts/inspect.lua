-- lbox inspect CONTAINER...: what lbox knows of containers, as JSON.
local cjson = require "cjson"
local errors = require "lbox.errors"
local state = require "lbox.state"

if select("#", ...) == 0 then errors.raise("usage: lbox inspect CONTAINER...") end
local found = {}
for _, ref in ipairs { ... } do found[#found + 1] = state.find(ref) end
print(cjson.encode(found))
return 0
