--- lbox: containers as Lua values.
--
--     local lbox = require "lbox"
--     local box = lbox.container { command = { "hostname" }, hostname = "demo" }
--     local status = box:start():wait()   -- status.exit_code == 0
--
-- The spec's fields: lbox.spec; the methods (start, wait, exec, kill,
-- stats, destroy, before, after): lbox.container; the reference: lua/API.md.
local container = require "lbox.container"
local network = require "lbox.lazy" "lbox.network"

local lbox = {}

lbox.version = "0.1.0"

--- Make a container from a spec; raises a user error if the spec is wrong.
lbox.container = container.new

--- Run a spec to its end: start, wait, tear down.
-- @return status { exit_code, how, code, oom }
function lbox.run(spec)
  return container.new(spec):start():wait()
end

--- Networks: create(name, { subnet, gateway }), list(), inspect(name),
-- remove(name). A container joins one with its spec's `network` field.
lbox.network = {
  -- loaded when first called
  create = function(...) return network.create(...) end, list = function(...) return network.list(...) end,
  inspect = function(...) return network.inspect(...) end, remove = function(...) return network.remove(...) end,
}

--- OCI bundles: load(bundle_dir) -> a container (not started) of its
-- config.json, to step through in the REPL.
lbox.oci = { load = function(...) return require("lbox.oci").load(...) end }

--- The ordered setup steps, for recipes that change them.
lbox.start_steps = container.start_steps
lbox.init_steps = container.init_steps

return lbox
