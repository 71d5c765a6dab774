--- Detached containers. A monitor process, like podman's conmon, starts the
-- container, keeps its output in a log, stays its parent to reap it, and
-- records how it ended; it outlives the lbox that started it.
local core = require "lbox.core"
local errors = require "lbox.errors"
local inside = require "lbox.inside"
local state = require "lbox.state"

local M = {}

local try = errors.try

--- Start `box` (a created container) under a monitor in the background.
-- Returns once the container runs; raises why it could not start.
-- @return the container's id
function M.detach(box)
  box:after("rootfs", "log", function(c)
    local path = state.dir(c.id) .. "/container.log"
    local fd = try("cannot open the container's log", core.open(path, "append"))
    c.spec.stdio.stdout, c.spec.stdio.stderr = fd, fd
    state.update(c.id, { log = path, monitor = core.getpid() })
  end)
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
    box:wait()
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
