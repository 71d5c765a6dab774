-- lbox pause CONTAINER...: freeze every process of running containers, as docker pause (the cgroup freezer).
local cgroups = require "lbox.cgroups"
local errors = require "lbox.errors"
local options = require "lbox.options"
local state = require "lbox.state"

local opts, refs = options.command({
  name = "pause", synopsis = { "CONTAINER..." }, summary = "freeze containers",
  description = "Freezes every process of running containers with the cgroup freezer, as docker pause "
    .. "(v2: cgroup.freeze; v1: the freezer controller, which containers run with -d have).",
  operands = { 1 },
}, { ... })
if not opts then return 0 end
-- every name first: a typo freezes nothing
local found = {}
for i, ref in ipairs(refs) do
  found[i] = state.find(ref)
  if found[i].status ~= "running" then
    errors.raise(string.format("cannot pause container %s: it is not running", ref), 1)
  end
end
for i, s in ipairs(found) do
  local group = cgroups.open(s.id)
  if not group then
    errors.raise(string.format("cannot pause container %s: it has no cgroup (run it with -d or a limit)", refs[i]), 1)
  end
  if group:frozen() then
    errors.raise(string.format("container %s is already paused", refs[i]), 1)
  end
  errors.try("cannot pause container " .. refs[i], group:freeze(true))
  state.update(s.id, { paused = true })
  print(refs[i])
end
return 0
