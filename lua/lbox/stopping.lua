--- What lbox stop and restart share: the grace period option and the
-- SIGTERM, grace period, SIGKILL sequence.
local cgroups = require "lbox.cgroups"
local core = require "lbox.core"
local errors = require "lbox.errors"
local units = require "lbox.units"

local M = {}

--- The -t option of stop and restart (an options.command option entry).
M.TIME_OPTION = { "time", short = "t", value = "SECONDS", help = "grace period before SIGKILL (default: 10)" }

--- The grace period in seconds that `opts` (parsed with TIME_OPTION) gives;
-- raises a user error for one that is not a number of seconds.
function M.grace(opts)
  if not opts.time then return 10 end
  return units.integer(opts.time, 0, 86400) or errors.raise("--time: a number of seconds expected")
end

-- the indices of `pending` for which done(i) is still false after up to
-- `seconds`, looked at every 100 ms
local function wait_done(pending, done, seconds)
  for round = 0, seconds * 10 do
    if round > 0 then core.poll({}, 100) end
    local left = {}
    for _, i in ipairs(pending) do
      if not done(i) then left[#left + 1] = i end
    end
    pending = left
    if #pending == 0 then break end
  end
  return pending
end

--- Stop containers `ids[i]` through pidfds `processes[i]` of their PID 1s,
-- held all along so that SIGKILL reaches the process SIGTERM did: thaw each
-- (as docker, a paused container is thawed to stop), SIGTERM all, and after
-- one grace period for all SIGKILL those for which done(i) is still false;
-- then wait up to 10 s more for them.
-- @return whether done(i) holds for every i
function M.terminate(ids, processes, grace, done)
  local all = {}
  for i, id in ipairs(ids) do
    cgroups.thaw(id)
    core.pidfd_send_signal(processes[i], core.SIGTERM)
    all[i] = i
  end
  local stubborn = wait_done(all, done, grace)
  for _, i in ipairs(stubborn) do core.pidfd_send_signal(processes[i], core.SIGKILL) end
  return #wait_done(stubborn, done, 10) == 0
end

return M
