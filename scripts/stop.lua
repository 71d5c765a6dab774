-- lbox stop [-t SECONDS] CONTAINER...: SIGTERM, then SIGKILL after the grace period.
local core = require "lbox.core"
local errors = require "lbox.errors"
local options = require "lbox.options"
local state = require "lbox.state"
local units = require "lbox.units"

local args = { ... }
local opts, first = options.parse({ { "time", short = "t", value = "SECONDS" } }, args)
if first > #args then errors.raise("usage: lbox stop [-t SECONDS] CONTAINER...") end
local grace = opts.time and (units.integer(opts.time, 0, 86400) or errors.raise("--time: a number of seconds expected")) or 10

for i = first, #args do
  local s = state.find(args[i])
  if s.status == "running" then
    core.kill(s.pid, core.SIGTERM)
    if not state.wait_released(s.id, grace) then
      core.kill(s.pid, core.SIGKILL)
      state.wait_released(s.id, 10)
    end
  end
  print(args[i]) -- as docker: an exited container is already stopped
end
return 0
