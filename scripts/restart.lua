-- lbox restart [-t SECONDS] CONTAINER...: stop running detached containers
-- (SIGTERM, then SIGKILL after the grace period) and have their monitors
-- start them again, as docker restart: same id, name and layer.
local cgroups = require "lbox.cgroups"
local core = require "lbox.core"
local errors = require "lbox.errors"
local options = require "lbox.options"
local state = require "lbox.state"
local units = require "lbox.units"

local opts, refs = options.command({
  name = "restart", synopsis = { "[-t SECONDS] CONTAINER..." }, summary = "restart detached containers",
  description = "Stops running detached containers (SIGTERM, then SIGKILL after the grace period) and has "
    .. "their monitors start them again, as docker restart: same id, name and layer.",
  options = { { "time", short = "t", value = "SECONDS", help = "the grace period before SIGKILL (default 10)" } },
  operands = { 1 },
}, { ... })
if not opts then return 0 end
local grace = opts.time and (units.integer(opts.time, 0, 86400) or errors.raise("--time: a number of seconds expected")) or 10

-- every name first: a typo restarts nothing; each PID 1 held by a pidfd
-- (lbox.state.open_process), so that the signals reach the recorded process
local found, processes = {}, {}
for i, ref in ipairs(refs) do
  local s = state.find(ref)
  -- the monitor of a detached container keeps its spec and starts it again
  local process = s.monitor and core.kill(s.monitor, 0) and state.open_process(s)
  if not process then
    for _, held in ipairs(processes) do core.close(held) end
    errors.raise(string.format("cannot restart container %s: lbox restarts running containers started with -d", ref), 1)
  end
  found[i], processes[i] = s, process
end

for i, s in ipairs(found) do
  state.update(s.id, { restart_requested = true })
  cgroups.thaw(s.id)
  core.pidfd_send_signal(processes[i], core.SIGTERM)
  local function restarted()
    local now = state.current(s.id)
    return now and now.status == "running" and (now.pid ~= s.pid or now.pid_start ~= s.pid_start)
  end
  for round = 1, (grace + 10) * 10 do
    if restarted() then break end
    if round == grace * 10 + 1 then core.pidfd_send_signal(processes[i], core.SIGKILL) end
    core.poll({}, 100)
  end
  core.close(processes[i])
  if not restarted() then errors.raise(string.format("container %s did not start again", refs[i]), 1) end
  print(refs[i])
end
return 0
