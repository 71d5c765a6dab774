-- lbox stop [-t SECONDS] CONTAINER...: SIGTERM, then SIGKILL after the grace period.
local cgroups = require "lbox.cgroups"
local core = require "lbox.core"
local errors = require "lbox.errors"
local options = require "lbox.options"
local state = require "lbox.state"
local units = require "lbox.units"

local args = { ... }
local opts, first = options.parse({ { "time", short = "t", value = "SECONDS" } }, args)
if first > #args then errors.raise("usage: lbox stop [-t SECONDS] CONTAINER...") end
local grace = opts.time and (units.integer(opts.time, 0, 86400) or errors.raise("--time: a number of seconds expected")) or 10

-- every name first: a typo stops nothing
local found = {}
for i = first, #args do found[#found + 1] = state.find(args[i]) end

-- one grace period for all of them, as docker
local running, pids = {}, {}
for _, s in ipairs(found) do
  -- no restart policy brings it back, even one waiting to restart it
  state.update(s.id, { stopping = true })
  if s.status == "running" then
    cgroups.thaw(s.id) -- as docker: a paused container is thawed to stop
    core.kill(s.pid, core.SIGTERM)
    running[#running + 1], pids[s.id] = s.id, s.pid
  end
end
local stubborn = state.wait_released(running, grace)
for _, id in ipairs(stubborn) do core.kill(pids[id], core.SIGKILL) end
state.wait_released(stubborn, 10)
for i = first, #args do print(args[i]) end -- as docker: an exited container is already stopped
return 0
