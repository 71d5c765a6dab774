--- lbox pause and unpause: freeze or thaw running containers with the
-- cgroup freezer, as docker's, after checking every name first so that a
-- typo changes nothing.
local cgroups = require "lbox.cgroups"
local errors = require "lbox.errors"
local state = require "lbox.state"

local M = {}

--- Freeze (`paused` true) or thaw the containers `refs` names, printing
-- each one done; a container in the wrong state is an error with exit 1.
function M.set(refs, paused)
  local verb = paused and "pause" or "unpause"
  local found = {}
  for i, ref in ipairs(refs) do
    found[i] = state.find(ref)
    if found[i].status ~= "running" then
      errors.raise(string.format("cannot %s container %s: it is not running", verb, ref), 1)
    end
  end
  for i, s in ipairs(found) do
    local group = cgroups.open(s.id)
    if not group then
      errors.raise(string.format("cannot %s container %s: it has no cgroup (run it with -d or a limit)", verb, refs[i]), 1)
    end
    if group:frozen() == paused then
      errors.raise(string.format("container %s is %s", refs[i], paused and "already paused" or "not paused"), 1)
    end
    errors.try("cannot " .. verb .. " container " .. refs[i], group:freeze(paused))
    state.update(s.id, { paused = paused })
    print(refs[i])
  end
end

return M
