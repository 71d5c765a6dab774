--- Detached containers. A monitor process, like podman's conmon, starts the
-- container, keeps its output in a log, stays its parent to reap it, and
-- records how it ended; it outlives the lbox that started it.
local core = require "lbox.core"
local errors = require "lbox.errors"
local inside = require "lbox.inside"
local state = require "lbox.state"

local M = {}

local try = errors.try

--- docker's restart policies: "no", "always", "unless-stopped",
-- "on-failure[:N]" -> { name, max } | nil, message
function M.parse_restart(text)
  local name, max = text:match("^([%a-]+):?(%d*)$")
  if name == "on-failure" then
    return { name = name, max = max ~= "" and math.tointeger(tonumber(max)) or nil }
  elseif (name == "no" or name == "always" or name == "unless-stopped") and max == "" then
    return { name = name }
  end
  return nil, string.format("%q: use no, always, unless-stopped or on-failure[:N]", text)
end

--- Should a container that ended with `status` start again under `policy`,
-- after `restarts` restarts? A container lbox stop or rm ended never does.
function M.should_restart(policy, status, restarts, id)
  local recorded = state.read(id)
  if not recorded or recorded.stopping then return false end
  if recorded.restart_requested then return true end -- lbox restart
  if not policy or policy.name == "no" then return false end
  if policy.name == "on-failure" then
    return status.exit_code ~= 0 and (not policy.max or restarts < policy.max)
  end
  return true
end

-- docker's back-off between restarts: 100 ms, doubling, at most a minute
local function backoff_ms(restarts)
  return math.min(100 * 2 ^ (restarts - 1), 60000) // 1
end

local function with_log(box)
  box:after("rootfs", "log", function(c)
    local path = state.dir(c.id) .. "/container.log"
    local fd = try("cannot open the container's log", core.open(path, "append"))
    c.spec.stdio.stdout, c.spec.stdio.stderr = fd, fd
    state.update(c.id, { log = path, monitor = core.getpid() })
  end)
  return box
end

-- Wait for `box`, and while `restart.policy` says so, start it again:
-- `restart.respawn()` makes the same container anew (same id, same layer).
local function keep_running(box, restart)
  if not restart.respawn then return box:wait() end
  box:wait()
  local restarts = 0
  while M.should_restart(restart.policy, box.status, restarts, box.id) do
    restarts = restarts + 1
    -- lbox restart asks for it now; a policy waits
    if not (state.read(box.id) or {}).restart_requested then core.poll({}, backoff_ms(restarts)) end
    if not M.should_restart(restart.policy, box.status, restarts - 1, box.id) then break end
    -- checked and planned again: its image may be gone by now
    local made, fresh = pcall(restart.respawn)
    if not made then break end
    box = with_log(fresh)
    if not pcall(box.start, box) then break end
    state.update(box.id, { restart_count = restarts })
    box:wait()
  end
end

--- Start `box` (a created container) under a monitor in the background.
-- Returns once the container runs; raises why it could not start. With
-- `restart` ({ policy = parse_restart's, respawn = function }), the monitor
-- starts it again when it ends, as the policy or lbox restart says.
-- @return the container's id
function M.detach(box, restart)
  with_log(box)
  local report_read, report_write = try("cannot create a pipe", core.pipe())
  local monitor = try("cannot create the monitor", core.clone(0))
  if monitor == 0 then
    -- the monitor: a session of its own, and nothing of the caller's, its
    -- terminal, pipes, open files (a pipe held open keeps a reader waiting)
    -- or working directory (which it would keep busy)
    core.setsid()
    core.chdir("/")
    local null = core.open("/dev/null", "rw")
    if null then for fd = 0, 2 do core.dup2(null, fd) end end
    if report_write > 3 then core.close_range(3, report_write - 1) end
    core.close_range(report_write + 1)
    -- sync: ready once the container runs; a report if it could not start
    inside.guard(report_write, "the monitor", box.start, box)
    inside.ready(report_write)
    keep_running(box, restart or {})
    core._exit(0)
  end
  core.close(report_write)
  local report, ready = inside.read_report(report_read)
  core.close(report_read)
  if not ready then
    core.waitpid(monitor)
    if report then errors.raise(report.message, report.code) end
    errors.raise("the monitor of the container ended before it started")
  end
  return box.id
end

return M
