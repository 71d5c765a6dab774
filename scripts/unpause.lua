-- lbox unpause CONTAINER...: thaw containers lbox pause froze.
local cgroups = require "lbox.cgroups"
local errors = require "lbox.errors"
local options = require "lbox.options"
local state = require "lbox.state"

local opts, refs = options.command({
  name = "unpause", synopsis = { "CONTAINER..." }, summary = "thaw paused containers",
  description = "Thaws containers lbox pause froze.",
  operands = { 1 },
}, { ... })
if not opts then return 0 end
-- every name first: a typo thaws nothing
local found = {}
for i, ref in ipairs(refs) do
  found[i] = state.find(ref)
  if found[i].status ~= "running" then
    errors.raise(string.format("cannot unpause container %s: it is not running", ref), 1)
  end
end
for i, s in ipairs(found) do
  local group = cgroups.open(s.id)
  if not group then
    errors.raise(string.format("cannot unpause container %s: it has no cgroup (run it with -d or a limit)", refs[i]), 1)
  end
  if not group:frozen() then
    errors.raise(string.format("container %s is not paused", refs[i]), 1)
  end
  errors.try("cannot unpause container " .. refs[i], group:freeze(false))
  state.update(s.id, { paused = false })
  print(refs[i])
end
return 0
