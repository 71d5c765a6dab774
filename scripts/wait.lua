-- lbox wait CONTAINER...: block until each container ends, then print its
-- exit code, as docker wait.
local core = require "lbox.core"
local errors = require "lbox.errors"
local state = require "lbox.state"

local args = { ... }
if #args == 0 then errors.raise("usage: lbox wait CONTAINER...") end
local found = {}
for i, ref in ipairs(args) do found[i] = state.find(ref) end
for _, s in ipairs(found) do
  -- the owner holds the directory's lock while the container lives
  local lock = core.open(state.dir(s.id) .. "/lock", "rw")
  if lock then
    core.flock(lock, "shared")
    core.close(lock)
  end
  local ended = state.current(s.id)
  if not ended then
    errors.raise(string.format("container %s was removed when it ended", s.id:sub(1, 12)), 1)
  end
  print(ended.exit_code)
end
return 0
