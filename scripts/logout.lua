-- lbox logout REGISTRY: forget the credentials lbox login stored.
local errors = require "lbox.errors"
local options = require "lbox.options"
local registry = require "lbox.registry"

local opts, args = options.command({
  name = "logout", synopsis = { "REGISTRY" }, summary = "forget a registry's credentials",
  description = "Removes the credentials lbox login stored for REGISTRY.",
  operands = { 1, 1 },
}, { ... })
if not opts then return 0 end
if not registry.logout(args[1]) then errors.raise(string.format("not logged in to %s", args[1])) end
print("Removing login credentials for " .. args[1])
return 0
