-- lbox stop [-t SECONDS] CONTAINER...: SIGTERM, then SIGKILL after the grace period.
local cgroups = require "lbox.cgroups"
local core = require "lbox.core"
local errors = require "lbox.errors"
local options = require "lbox.options"
local state = require "lbox.state"
local units = require "lbox.units"

local opts, containers = options.command({
  name = "stop", synopsis = { "[-t SECONDS] CONTAINER..." }, summary = "stop running containers",
  description = "Sends SIGTERM to each container's PID 1, then SIGKILL to those still running after one "
    .. "grace period for all.",
  options = { { "time", short = "t", value = "SECONDS", help = "grace period before SIGKILL (default: 10)" } },
  operands = { 1 },
}, { ... })
if not opts then return 0 end
local grace = opts.time and (units.integer(opts.time, 0, 86400) or errors.raise("--time: a number of seconds expected")) or 10

-- every name first: a typo stops nothing
local found = {}
for i, ref in ipairs(containers) do found[i] = state.find(ref) end

-- one grace period for all of them, as docker; through pidfds held all
-- along, so that SIGKILL reaches the process SIGTERM did, or none (one whose
-- recorded process is gone already is stopped)
local running, processes = {}, {}
for _, s in ipairs(found) do
  -- no restart policy brings it back, even one waiting to restart it
  state.update(s.id, { stopping = true })
  local process = state.open_process(s)
  if process then
    cgroups.thaw(s.id) -- as docker: a paused container is thawed to stop
    core.pidfd_send_signal(process, core.SIGTERM)
    running[#running + 1], processes[s.id] = s.id, process
  end
end
local stubborn = state.wait_released(running, grace)
for _, id in ipairs(stubborn) do core.pidfd_send_signal(processes[id], core.SIGKILL) end
state.wait_released(stubborn, 10)
for _, process in pairs(processes) do core.close(process) end
for _, ref in ipairs(containers) do print(ref) end -- as docker: an exited container is already stopped
return 0
