-- lbox restart [-t SECONDS] CONTAINER...: stop running detached containers
-- (SIGTERM, then SIGKILL after the grace period) and have their monitors
-- start them again, as docker restart: same id, name and layer.
local core = require "lbox.core"
local errors = require "lbox.errors"
local options = require "lbox.options"
local state = require "lbox.state"
local stopping = require "lbox.stopping"

local opts, refs = options.command({
  name = "restart", synopsis = { "[-t SECONDS] CONTAINER..." }, summary = "restart detached containers",
  description = "Stops running detached containers (SIGTERM, then SIGKILL after the grace period) and has "
    .. "their monitors start them again, as docker restart: same id, name and layer.",
  options = { stopping.TIME_OPTION },
  operands = { 1 },
}, { ... })
if not opts then return 0 end
local grace = stopping.grace(opts)

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
  local function restarted()
    local now = state.current(s.id)
    return now and now.status == "running" and (now.pid ~= s.pid or now.pid_start ~= s.pid_start)
  end
  local ok = stopping.terminate({ s.id }, { processes[i] }, grace, restarted)
  core.close(processes[i])
  if not ok then errors.raise(string.format("container %s did not start again", refs[i]), 1) end
  print(refs[i])
end
return 0
