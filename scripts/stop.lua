-- lbox stop [-t SECONDS] CONTAINER...: SIGTERM, then SIGKILL after the grace period.
local core = require "lbox.core"
local errors = require "lbox.errors"
local options = require "lbox.options"
local state = require "lbox.state"
local units = require "lbox.units"

local args = { ... }
local STOP = {
  name = "stop", synopsis = { "[-t SECONDS] CONTAINER..." }, summary = "stop running containers",
  description = "Sends SIGTERM to each container's PID 1, then SIGKILL to those still running after one "
    .. "grace period for all.",
  options = { { "time", short = "t", value = "SECONDS", help = "grace period before SIGKILL (default: 10)" } },
}
local opts, first = options.command(STOP, args)
if first > #args then options.usage_error(STOP) end
local grace = opts.time and (units.integer(opts.time, 0, 86400) or errors.raise("--time: a number of seconds expected")) or 10

-- every name first: a typo stops nothing
local found = {}
for i = first, #args do found[#found + 1] = state.find(args[i]) end

-- one grace period for all of them, as docker
local running, pids = {}, {}
for _, s in ipairs(found) do
  if s.status == "running" then
    core.kill(s.pid, core.SIGTERM)
    running[#running + 1], pids[s.id] = s.id, s.pid
  end
end
local stubborn = state.wait_released(running, grace)
for _, id in ipairs(stubborn) do core.kill(pids[id], core.SIGKILL) end
state.wait_released(stubborn, 10)
for i = first, #args do print(args[i]) end -- as docker: an exited container is already stopped
return 0
