-- lbox restart [-t SECONDS] CONTAINER...: stop running detached containers
-- (SIGTERM, then SIGKILL after the grace period) and have their monitors
-- start them again, as docker restart: same id, name and layer.
local cgroups = require "lbox.cgroups"
local core = require "lbox.core"
local errors = require "lbox.errors"
local options = require "lbox.options"
local state = require "lbox.state"
local units = require "lbox.units"

local args = { ... }
local opts, first = options.parse({ { "time", short = "t", value = "SECONDS" } }, args)
if first > #args then errors.raise("usage: lbox restart [-t SECONDS] CONTAINER...") end
local grace = opts.time and (units.integer(opts.time, 0, 86400) or errors.raise("--time: a number of seconds expected")) or 10

-- every name first: a typo restarts nothing
local found = {}
for i = first, #args do
  local s = state.find(args[i])
  -- the monitor of a detached container keeps its spec and starts it again
  if s.status ~= "running" or not s.monitor or not core.kill(s.monitor, 0) then
    errors.raise(string.format("cannot restart container %s: lbox restarts running containers started with -d",
      args[i]), 1)
  end
  found[#found + 1] = s
end

for i, s in ipairs(found) do
  state.update(s.id, { restart_requested = true })
  cgroups.thaw(s.id)
  core.kill(s.pid, core.SIGTERM)
  local function restarted()
    local now = state.current(s.id)
    return now and now.status == "running" and now.pid ~= s.pid
  end
  for round = 1, (grace + 10) * 10 do
    if restarted() then break end
    if round == grace * 10 + 1 then core.kill(s.pid, core.SIGKILL) end
    core.poll({}, 100)
  end
  if not restarted() then errors.raise(string.format("container %s did not start again", args[first + i - 1]), 1) end
  print(args[first + i - 1])
end
return 0
