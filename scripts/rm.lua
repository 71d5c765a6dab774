-- lbox rm [-f] CONTAINER...: remove containers (-f: running ones too) and
-- all they hold: cgroup, layer, state, log.
local cgroups = require "lbox.cgroups"
local core = require "lbox.core"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local index = require "lbox.index"
local network = require "lbox.network"
local options = require "lbox.options"
local state = require "lbox.state"

local opts, containers = options.command({
  name = "rm", synopsis = { "[-f] CONTAINER..." }, summary = "remove containers",
  description = "Removes everything a container holds: cgroup, layer, state, log.",
  options = { { "force", short = "f", help = "kill running containers first" } },
  operands = { 1 },
}, { ... })
if not opts then return 0 end

for _, ref in ipairs(containers) do
  local s = state.find(ref)
  if s.status == "running" then
    -- the wrong state: 1, as kill and exec of a container that does not run
    if not opts.force then
      errors.raise(string.format("container %s is running: stop it first, or use rm -f", ref), 1)
    end
  end
  -- no restart policy brings it back, even one waiting to restart it
  state.update(s.id, { stopping = true })
  if s.status == "running" then
    local process = state.open_process(s)
    if process then
      cgroups.thaw(s.id) -- a paused container ends only once thawed
      core.pidfd_send_signal(process, core.SIGKILL)
      core.close(process)
    end
    state.wait_released({ s.id }, 10)
  end
  -- what a dead monitor could not remove
  local group = cgroups.open(s.id)
  if group then group:remove() end
  errors.try("cannot remove container " .. ref, fs.remove_tree(state.dir(s.id)))
  index.remove(s.id, s.name)
  print(ref)
end
-- and the address leases and port rules of containers whose lbox was killed
network.sweep()
return 0
