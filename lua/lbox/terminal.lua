--- The user's terminal while a container has one of its own.
local core = require "lbox.core"

local M = {}

--- Put terminal `fd` in raw mode, so every key (Ctrl-C included) goes to
-- the container's terminal.
-- @return the previous state, for `restore` | nil when fd is not a terminal
function M.make_raw(fd)
  local saved = core.tcgetattr(fd)
  if saved then core.tcsetattr(fd, core.cfmakeraw(saved)) end
  return saved
end

--- Put terminal `fd` back in the state `make_raw` returned.
function M.restore(fd, saved)
  return core.tcsetattr(fd, saved)
end

--- Give terminal `to` the window size of terminal `from`.
function M.copy_size(from, to)
  local rows, cols = core.get_winsize(from)
  if rows then core.set_winsize(to, rows, cols) end
end

return M
