-- lbox stop [-t SECONDS] CONTAINER...: SIGTERM, then SIGKILL after the grace period.
local core = require "lbox.core"
local options = require "lbox.options"
local state = require "lbox.state"
local stopping = require "lbox.stopping"

local opts, containers = options.command({
  name = "stop", synopsis = { "[-t SECONDS] CONTAINER..." }, summary = "stop running containers",
  description = "Sends SIGTERM to each container's PID 1, then SIGKILL to those still running after one "
    .. "grace period for all.",
  options = { stopping.TIME_OPTION },
  operands = { 1 },
}, { ... })
if not opts then return 0 end
local grace = stopping.grace(opts)

-- every name first: a typo stops nothing
local found = {}
for i, ref in ipairs(containers) do found[i] = state.find(ref) end

-- one grace period for all of them, as docker (one whose recorded process
-- is gone already is stopped)
local running, processes = {}, {}
for _, s in ipairs(found) do
  -- no restart policy brings it back, even one waiting to restart it
  state.update(s.id, { stopping = true })
  local process = state.open_process(s)
  if process then running[#running + 1], processes[#processes + 1] = s.id, process end
end
stopping.terminate(running, processes, grace, function(i) return not state.owned(running[i]) end)
for _, process in ipairs(processes) do core.close(process) end
for _, ref in ipairs(containers) do print(ref) end -- as docker: an exited container is already stopped
return 0
