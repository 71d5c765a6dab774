-- lbox rm [-f] CONTAINER...: remove containers (-f: running ones too) and
-- all they hold: cgroup, layer, state, log.
local cgroups = require "lbox.cgroups"
local core = require "lbox.core"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local options = require "lbox.options"
local state = require "lbox.state"

local args = { ... }
local opts, first = options.parse({ { "force", short = "f" } }, args)
if first > #args then errors.raise("usage: lbox rm [-f] CONTAINER...") end

for i = first, #args do
  local s = state.find(args[i])
  if s.status == "running" and not opts.force then
    errors.raise(string.format("container %s is running: stop it first, or use rm -f", args[i]))
  end
  -- no restart policy brings it back, even one waiting to restart it
  state.update(s.id, { stopping = true })
  if s.status == "running" then
    cgroups.thaw(s.id) -- a paused container ends only once thawed
    core.kill(s.pid, core.SIGKILL)
    state.wait_released({ s.id }, 10)
  end
  -- what a dead monitor could not remove
  local group = cgroups.open(s.id)
  if group then group:remove() end
  errors.try("cannot remove container " .. args[i], fs.remove_tree(state.dir(s.id)))
  print(args[i])
end
return 0
